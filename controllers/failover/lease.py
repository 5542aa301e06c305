"""One failover engine per network: a lease on the database, held while the engine runs.

Two engines on one inventory would both read health and both move routers — fighting over
every site in a mass event. The engine therefore takes an exclusive lease on the database
before it starts and keeps it until it stops:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection kept
  open for the purpose; it ends with the connection, so a crashed engine never leaves it held;
- SQLite: an ``flock`` on ``<database file>.failover-lock`` (one machine; released by the
  kernel when the process dies). The file also says who holds it, for the error message.

The lease is refused at once (never waited for), with what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text

from inventory.errors import TiandiError

ADVISORY_KEY = 0x7469_616E_6469_4641  # "tiandiFA": the failover engine's lease
_ADVICE = (
    "run one failover engine per network: stop the other `tiandi serve`, or start this one "
    "with --no-failover"
)


class LeaseHeld(TiandiError):
    """Another failover engine holds the lease on this database."""


class EngineLease:
    """Held from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, connection: Connection | None, lock_file: IO[str] | None) -> None:
        self._connection = connection
        self._file = lock_file

    @classmethod
    def acquire(cls, engine: Engine) -> EngineLease:
        """Take the lease on ``engine``'s database, or raise :class:`LeaseHeld`."""
        url = engine.url
        if url.get_backend_name() == "sqlite":
            return cls(None, _lock_sqlite(url.database))
        connection = engine.connect()
        try:
            got = connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY})
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if not got:
            holder = _pg_holder(connection)
            connection.close()
            raise LeaseHeld(
                f"another failover engine holds the lease on "
                f"{url.render_as_string(hide_password=True)}{holder}; {_ADVICE}"
            )
        return cls(connection, None)

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # the connection may already be gone
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                self._connection.commit()
            self._connection.close()
            self._connection = None
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _lock_sqlite(database: str | None) -> IO[str] | None:
    if not database or database == ":memory:":
        return None  # a private in-memory database: no other engine can share it
    path = Path(database).resolve().with_name(Path(database).name + ".failover-lock")
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LeaseHeld(
            f"another failover engine holds the lease on {database} ({holder}); {_ADVICE}"
        ) from None
    handle.seek(0)
    handle.truncate()
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n")
    handle.flush()
    return handle


def _pg_holder(connection: Connection) -> str:
    """`` (held by pid N from ADDRESS)``, if PostgreSQL lets this user see it."""
    with contextlib.suppress(Exception):
        row = connection.execute(
            text(
                "SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"
            ),
            {"k": ADVISORY_KEY},
        ).first()
        if row is not None:
            return f" (held by server pid {row[0]} from {row[1] or 'a local socket'})"
    return ""
