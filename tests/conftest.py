"""Session-wide fixtures: real PostgreSQL and InfluxDB servers and migrated databases.

Fixture contract (other test packages rely on these names):

- ``postgres_server`` (session): :class:`tests.harness.postgres.PostgresServer` — ``.admin_url``,
  ``.url(dbname)``, ``.create_database(name=None, template=None) -> url``, ``.drop_database``.
- ``influxdb_server`` (session): :class:`tests.harness.influx.InfluxServer` — ``.url``,
  ``.database`` (``tiandi_test``), ``.query(q) -> dict``, ``.write(lines)``,
  ``.create_database()``.
- ``database_url`` (function, params ``sqlite`` / ``postgresql``): URL of a fresh, empty database
  migrated to head.
- ``session_factory`` (function): a ``sessionmaker`` bound to an engine on ``database_url``.

Servers start on first use only; tests that use them are marked ``postgres`` / ``influx``.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from inventory.db import make_engine, make_session_factory
from tests.harness import influx, missing_binary, postgres
from tests.harness.influx import InfluxServer
from tests.harness.postgres import PostgresServer
from tiandi.migrate import upgrade

POSTGRES_TEMPLATE = "tiandi_template"

_SERVER_MARKS = {"postgres_server": "postgres", "influxdb_server": "influx"}
_STARTED: list[str] = []  # one line per server started, shown in the terminal summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _STARTED:
        terminalreporter.write_line(f"test server: {line}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that asks for a server, so ``-m "not postgres"`` deselects it."""
    for item in items:
        for fixture, mark in _SERVER_MARKS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(mark)


# ---- servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = postgres.find_bindir()
    if bindir is None:
        missing_binary("PostgreSQL (initdb/pg_ctl)", postgres.DEBIAN_PACKAGE)
    server = PostgresServer.start(bindir)
    _STARTED.append(
        f"PostgreSQL {server.server_version.split()[0]} on {server.host}:{server.port}, "
        f"started in {server.startup_seconds:.2f} s"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def influxdb_server() -> Iterator[InfluxServer]:
    influxd = influx.find_influxd()
    if influxd is None:
        missing_binary("InfluxDB (influxd)", influx.DEBIAN_PACKAGE)
    server = InfluxServer.start(influxd)
    _STARTED.append(f"InfluxDB at {server.url}, started in {server.startup_seconds:.2f} s")
    try:
        yield server
    finally:
        server.stop()


# ---- migrated databases -----------------------------------------------------------------------
# Each backend is migrated once per session into a template that every test then copies; the
# migrations are read when the session starts, so a migration added since the last run counts.


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "tiandi.db"
    upgrade(f"sqlite:///{path}")
    # Fold any write-ahead log into the file, so copying the one file copies everything.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    upgrade(postgres_server.create_database(POSTGRES_TEMPLATE))
    return POSTGRES_TEMPLATE


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty Tiandi database at the head migration, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "tiandi.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database(template=request.getfixturevalue("postgres_template"))
    try:
        yield url
    finally:
        server.drop_database(url)


@pytest.fixture
def session_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()
