"""The exception root of Tiandi and the inventory's own errors.

Every error Tiandi raises on purpose derives from ``TiandiError``; the message says what was wrong
and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass


class TiandiError(Exception):
    """Root of every error Tiandi raises on purpose."""


class SecretUnavailable(TiandiError):
    """A referenced secret (env var or file) cannot be read."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an inventory document, located precisely."""

    path: str  # e.g. "sites[12].links[0].router"
    reason: str
    file: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.path}: {self.reason}"


class InventoryInvalid(TiandiError):
    """An inventory document has problems; all of them are listed, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"inventory has {len(problems)} problem(s); fix them and retry, nothing was changed:\n"
            f"{lines}"
        )


class NotFound(TiandiError):
    """A named or numbered inventory object does not exist."""


class Conflict(TiandiError):
    """A write would break a uniqueness or reference rule of the inventory."""
