"""Tiandi's own SSH known-hosts store: an OpenSSH ``known_hosts`` file under the data directory.

Host keys are checked against this file only (never ``~/.ssh/known_hosts``). Entries are named
as OpenSSH names them: ``host`` on port 22, ``[host]:port`` otherwise; hashed names
(``|1|salt|hash``, ``HashKnownHosts yes``) and comma-separated names are read too, so a file
prepared with ``ssh-keyscan`` works. ``@cert-authority`` and ``@revoked`` lines are not used for
matching (a ``@revoked`` key is never accepted).

A key enters the store by an explicit act: the operator's trust action (``SshRunner.trust``) or,
when the deployment enables it, trust-on-first-use; both log loudly. A *changed* key is never
replaced automatically: ``replace`` is the operator's decision after checking the fingerprint.

The file is plain text; reading it is pure parsing (tested without a network). Writes are
serialised by a thread lock and an ``flock`` on the file (the API and the engine may share it),
and a replacement is written to a temporary file and renamed, so a crash never truncates it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

KNOWN_HOSTS_FILE = "known_hosts"


@dataclass(frozen=True, slots=True)
class HostKey:
    """A public host key: its algorithm name and base64 blob, as a known_hosts line holds."""

    key_type: str
    blob: str

    def __post_init__(self) -> None:
        if not self.key_type or any(c.isspace() for c in self.key_type):
            raise ValueError("a host key type is one word, e.g. ssh-ed25519")
        try:
            base64.b64decode(self.blob, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a host key blob is base64 text") from None

    @classmethod
    def parse(cls, text: str) -> HostKey:
        """``ssh-ed25519 AAAA...`` (a trailing comment is ignored)."""
        parts = text.split()
        if len(parts) < 2:
            raise ValueError("expected '<key type> <base64 key>'")
        return cls(parts[0], parts[1])

    @property
    def fingerprint(self) -> str:
        """OpenSSH's ``SHA256:...`` fingerprint (what ``ssh-keygen -lf`` prints)."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def __str__(self) -> str:
        return f"{self.key_type} {self.blob}"


def host_entry(host: str, port: int) -> str:
    """The name a known_hosts line uses for ``host:port`` (what paramiko and OpenSSH look up)."""
    return host if port == 22 else f"[{host}]:{port}"


def _hashed_match(pattern: str, name: str) -> bool:
    """``|1|base64(salt)|base64(HMAC-SHA1(salt, name))``."""
    try:
        _, magic, salt64, hash64 = pattern.split("|")
        if magic != "1":
            return False
        salt = base64.b64decode(salt64)
        expected = base64.b64decode(hash64)
    except (ValueError, binascii.Error):
        return False
    actual = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
    return hmac.compare_digest(actual, expected)


def _names_match(field: str, name: str) -> bool:
    for pattern in field.split(","):
        if pattern.startswith("|"):
            if _hashed_match(pattern, name):
                return True
        elif pattern == name:
            return True
    return False


@dataclass(frozen=True, slots=True)
class _Line:
    names: str
    key: HostKey | None  # None: a line not used for matching (comment, marker, malformed)
    revoked: bool
    text: str


def _parse_line(text: str) -> _Line:
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return _Line("", None, False, text)
    parts = stripped.split()
    marker = parts[0] if parts[0].startswith("@") else None
    if marker is not None:
        parts = parts[1:]
    if len(parts) < 3:
        return _Line("", None, False, text)
    try:
        key = HostKey(parts[1], parts[2])
    except ValueError:
        return _Line("", None, False, text)
    if marker == "@revoked":
        return _Line(parts[0], key, True, text)
    if marker is not None:  # @cert-authority: Tiandi does not use host certificates
        return _Line("", None, False, text)
    return _Line(parts[0], key, False, text)


def parse_known_hosts(text: str) -> list[tuple[str, HostKey, bool]]:
    """(names field, key, revoked) for every usable line. Pure."""
    out: list[tuple[str, HostKey, bool]] = []
    for raw in text.splitlines():
        line = _parse_line(raw)
        if line.key is not None:
            out.append((line.names, line.key, line.revoked))
    return out


def keys_for(text: str, name: str) -> tuple[tuple[HostKey, ...], tuple[HostKey, ...]]:
    """(accepted keys, revoked keys) recorded for ``name`` in a known_hosts text. Pure."""
    good: list[HostKey] = []
    revoked: list[HostKey] = []
    for names, key, is_revoked in parse_known_hosts(text):
        if _names_match(names, name):
            (revoked if is_revoked else good).append(key)
    return tuple(dict.fromkeys(good)), tuple(dict.fromkeys(revoked))


class KnownHostKeyConflict(ValueError):
    """A different key is already recorded for the host (use ``replace=True`` deliberately)."""


class KnownHostsStore:
    """The known-hosts file Tiandi keeps. Safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int], str] | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> KnownHostsStore:
        return cls(data_dir / "ssh" / KNOWN_HOSTS_FILE)

    def __repr__(self) -> str:
        return f"KnownHostsStore({str(self.path)!r})"

    # ---- reading ----

    def _text(self) -> str:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return ""
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._cache is not None and self._cache[0] == stamp:
                return self._cache[1]
            text = self.path.read_text(encoding="utf-8")
            self._cache = (stamp, text)
            return text

    def lookup(self, name: str) -> tuple[HostKey, ...]:
        """The keys recorded for ``name`` (``host`` or ``[host]:port``), revoked ones excluded."""
        good, revoked = keys_for(self._text(), name)
        return tuple(k for k in good if k not in revoked)

    def revoked(self, name: str) -> tuple[HostKey, ...]:
        return keys_for(self._text(), name)[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.lookup(name))

    # ---- writing ----

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                self._cache = None

    def add(self, name: str, key: HostKey, *, replace: bool = False) -> bool:
        """Record ``key`` for ``name``; returns False if it was already recorded.

        A different key already recorded raises ``KnownHostKeyConflict`` unless ``replace``,
        which drops every other key of ``name`` (the operator re-trusting a replaced device).
        """
        if any(c.isspace() for c in name) or not name:
            raise ValueError("a known_hosts name has no spaces")
        with self._locked():
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            recorded, _ = keys_for(text, name)
            if key in recorded and (not replace or recorded == (key,)):
                return False
            if recorded and not replace:
                raise KnownHostKeyConflict(
                    f"{name} already has a different host key recorded "
                    f"({recorded[0].fingerprint}); replace it deliberately"
                )
            if replace and recorded:
                kept = [
                    raw
                    for raw in text.splitlines()
                    if (line := _parse_line(raw)).key is None
                    or line.revoked
                    or not _names_match(line.names, name)
                ]
                self._write_all("".join(f"{line}\n" for line in kept) + f"{name} {key}\n")
            else:
                self._append(text, f"{name} {key}\n")
        return True

    def remove(self, name: str) -> int:
        """Forget every key of ``name``; returns how many lines went."""
        with self._locked():
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return 0
            kept: list[str] = []
            gone = 0
            for raw in text.splitlines():
                line = _parse_line(raw)
                if line.key is not None and not line.revoked and _names_match(line.names, name):
                    gone += 1
                else:
                    kept.append(raw)
            if gone:
                self._write_all("".join(f"{line}\n" for line in kept))
            return gone

    def _append(self, text: str, line: str) -> None:
        prefix = "" if not text or text.endswith("\n") else "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (prefix + line).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_all(self, text: str) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
