"""A throw-away PostgreSQL server for one test session.

``initdb`` + ``pg_ctl`` in a temporary directory, listening only on 127.0.0.1 on a free port with
its unix socket inside that directory, durability switched off for speed. PostgreSQL refuses to
run as root, so under root (CI) every server command runs as the ``postgres`` user through
``runuser``; on a developer machine it runs as the current user. The bootstrap superuser is named
``postgres`` either way, with trust authentication (a test server on loopback only).
"""

from __future__ import annotations

import functools
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.harness import LOOPBACK, ServerStartError, free_ports, log_tail, wait_until

SERVICE_USER = "postgres"
SUPERUSER = "postgres"
DEBIAN_PACKAGE = "postgresql"

_SETTINGS = {
    "listen_addresses": f"'{LOOPBACK}'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %d '",
}


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout), or None."""
    candidates = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if version.isdigit() and (initdb.parent / "pg_ctl").exists():
            candidates.append((int(version), initdb.parent))
    if candidates:
        return max(candidates)[1]
    on_path = shutil.which("initdb")  # other distributions / a developer's own build
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    return None


class PostgresServer:
    """A running server; create databases on it with :meth:`create_database`."""

    host = LOOPBACK
    user = SUPERUSER

    def __init__(self, bindir: Path, root: Path, port: int, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.run_as = run_as
        self.datadir = root / "data"
        self.socket_dir = root / "sock"
        self.log_path = root / "postgres.log"
        self.startup_seconds = 0.0
        self._names = itertools.count(1)

    # ---- life cycle ----------------------------------------------------------------------

    @classmethod
    def start(cls, bindir: Path, timeout: float = 60.0) -> PostgresServer:
        t0 = time.monotonic()
        run_as = SERVICE_USER if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="tiandi-pg-"))
        (port,) = free_ports(1)
        server = cls(bindir, root, port, run_as)
        try:
            server.socket_dir.mkdir()
            if run_as is not None:
                try:
                    account = pwd.getpwnam(run_as)
                except KeyError:
                    raise ServerStartError(
                        f"running as root but there is no {run_as!r} user to run PostgreSQL as; "
                        f"install the Debian package {DEBIAN_PACKAGE!r}, which creates it"
                    ) from None
                for path in (root, server.socket_dir):
                    os.chown(path, account.pw_uid, account.pw_gid)
            server._initdb(timeout)
            server._pg_ctl_start(timeout)
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - t0
        return server

    def _command(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bindir / tool), *args]
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def _run(self, tool: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._command(tool, *args),
            cwd=self.root,  # the server user may not be able to enter the caller's directory
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _initdb(self, timeout: float) -> None:
        done = self._run(
            "initdb",
            "--pgdata",
            str(self.datadir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
            timeout=timeout,
        )
        if done.returncode != 0:
            raise ServerStartError(
                f"initdb failed (exit {done.returncode}) in {self.datadir}:\n"
                f"{done.stdout}\n{done.stderr}"
            )
        settings = dict(_SETTINGS, port=str(self.port))
        settings["unix_socket_directories"] = f"'{self.socket_dir}'"
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# tiandi test server\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _pg_ctl_start(self, timeout: float) -> None:
        done = self._run(
            "pg_ctl",
            "--pgdata",
            str(self.datadir),
            "--log",
            str(self.log_path),
            "--wait",
            "--timeout",
            str(int(timeout)),
            "start",
            timeout=timeout + 10,
        )
        if done.returncode != 0:
            raise ServerStartError(
                f"PostgreSQL did not start on {LOOPBACK}:{self.port} within {timeout:.0f} s "
                f"(pg_ctl exit {done.returncode}: {done.stderr.strip() or done.stdout.strip()})"
                f"\n--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}"
            )
        if not wait_until(self._accepts_queries, timeout=min(timeout, 15.0), interval=0.1):
            raise ServerStartError(
                f"PostgreSQL on {LOOPBACK}:{self.port} started but does not answer queries"
                f"\n--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}"
            )

    def _accepts_queries(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def stop(self) -> None:
        """Stop at once (nothing here is worth a clean shutdown) and remove every file."""
        if (self.datadir / "postmaster.pid").exists():
            self._run(
                "pg_ctl",
                "--pgdata",
                str(self.datadir),
                "--mode",
                "immediate",
                "--wait",
                "stop",
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- clients -------------------------------------------------------------------------

    def conninfo(self, dbname: str = "postgres") -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} dbname={dbname} "
            "connect_timeout=5 sslmode=disable"
        )

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit psycopg connection (CREATE/DROP DATABASE cannot run in a transaction)."""
        return psycopg.connect(self.conninfo(dbname), autocommit=True)

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL of one database on this server."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    @property
    def server_version(self) -> str:
        with self.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        assert row is not None
        return str(row[0])

    @functools.cached_property
    def version_num(self) -> int:
        with self.connect() as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
        assert row is not None
        return int(str(row[0]))

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create an empty database (or a copy of ``template``) and return its SQLAlchemy URL."""
        name = name or f"t{os.getpid()}_{next(self._names)}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and '_'")
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
            if self.version_num >= 150000:
                # A file copy of a small template is 2-4x faster than the WAL-logged default.
                query = sql.SQL("{} STRATEGY FILE_COPY").format(query)
        with self.connect() as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name_or_url: str) -> None:
        """Drop a database even if clients are still connected to it."""
        name = make_url(name_or_url).database if "://" in name_or_url else name_or_url
        if not name:
            raise ValueError(f"no database name in {name_or_url!r}")
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
