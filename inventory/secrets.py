"""Secret references: credentials are named by where they live (env var or file), never stored.

The inventory, the database, the API and every log hold only the reference (``env:NAME`` or
``file:/path``). The value is read at the moment a poller or driver needs it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inventory.errors import SecretUnavailable

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives. ``str()`` gives the stored form; the value is never held here."""

    source: Literal["env", "file"]
    name: str

    def __post_init__(self) -> None:
        # The name is not echoed: a malformed reference is often the secret itself pasted in.
        if self.source == "env" and not _ENV_NAME.match(self.name):
            raise ValueError(
                f"an env reference must name an environment variable (letters, digits and '_', "
                f"not starting with a digit), got {len(self.name)} other characters; never put "
                "the secret itself in the inventory"
            )
        if self.source == "file" and not self.name.startswith("/"):
            raise ValueError(
                f"a file reference must be an absolute path, got {len(self.name)} characters "
                "not starting with '/'; never put the secret itself in the inventory"
            )

    @classmethod
    def parse(cls, stored: str) -> SecretRef:
        source, sep, name = stored.partition(":")
        if not sep or source not in ("env", "file") or not name:
            raise ValueError(
                f"a secret reference looks like 'env:VAR_NAME' or 'file:/abs/path', got a value "
                f"of {len(stored)} characters; never put the secret itself in the inventory"
            )
        return cls(source, name)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"

    def to_document(self) -> dict[str, str]:
        return {self.source: self.name}

    def resolve(self) -> str:
        """Read the secret now. Raises SecretUnavailable naming the reference, never the value."""
        if self.source == "env":
            value = os.environ.get(self.name)
            if value is None:
                raise SecretUnavailable(
                    f"environment variable {self.name} is not set; export it in the service's "
                    "environment (e.g. a systemd EnvironmentFile)"
                )
            return value
        try:
            return Path(self.name).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise SecretUnavailable(
                f"cannot read secret file {self.name}: {err.strerror}; create it readable by the "
                "tiandi user (mode 0640)"
            ) from err
