"""Real servers for the test session — PostgreSQL and InfluxDB — on loopback only.

The servers are started by session fixtures in ``tests/conftest.py`` the first time a test asks
for them, so a test run that needs none starts none. A missing server binary skips the tests that
need it on a developer machine and fails them in CI (``CI=true``), where it is a broken setup.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn

import pytest

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries the tail of its log."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def missing_binary(what: str, debian_package: str) -> NoReturn:
    """Skip (developer machine) or fail (CI) because a server binary is not installed."""
    reason = (
        f"{what} is not installed; install the Debian package {debian_package!r} "
        f"(apt-get install -y {debian_package}, or run `make test-deps` as root)"
    )
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (held open until all are found)."""
    with ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(sock.getsockname()[1])
        return ports


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        return f"(no log at {path}: {err.strerror})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


def wait_until(ready: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Call ``ready`` until it returns True or ``timeout`` seconds pass; return the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
