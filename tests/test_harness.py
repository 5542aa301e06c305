"""The test harness itself, against the real servers it starts."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session, sessionmaker

from inventory.db import make_engine
from tests.harness import in_ci, missing_binary
from tests.harness.influx import InfluxQueryError, InfluxServer
from tests.harness.postgres import PostgresServer
from tiandi.migrate import current_heads

# ---- InfluxDB ---------------------------------------------------------------------------------


def test_influxdb_writes_line_protocol_and_answers_influxql(influxdb_server: InfluxServer) -> None:
    db = influxdb_server.create_database()
    lines = "\n".join(
        [
            "link_health,site=guangdong-shaoguan-qujiang,link=primary loss_pct=0.5,rtt_ms=21.5 "
            "1767225600",
            "link_health,site=guangdong-shaoguan-qujiang,link=primary loss_pct=1.5,rtt_ms=23.5 "
            "1767225660",
            "link_health,site=sichuan-luding,link=satellite loss_pct=0,rtt_ms=612 1767225600",
        ]
    )
    with httpx.Client(base_url=influxdb_server.url, timeout=10) as client:
        written = client.post("/write", params={"db": db, "precision": "s"}, content=lines)
        assert written.status_code == 204, written.text
        answer = client.get(
            "/query",
            params={
                "db": db,
                "epoch": "s",
                "q": "SELECT mean(rtt_ms), max(loss_pct), count(rtt_ms) FROM link_health "
                "GROUP BY site ORDER BY time",
            },
        )
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["results"]
    by_site = {s["tags"]["site"]: s["values"] for s in result["series"]}
    assert by_site == {
        "guangdong-shaoguan-qujiang": [[0, 22.5, 1.5, 2]],
        "sichuan-luding": [[0, 612, 0, 1]],
    }
    assert result["series"][0]["columns"] == ["time", "mean", "max", "count"]


def test_influxdb_helpers_and_errors(influxdb_server: InfluxServer) -> None:
    assert influxdb_server.url.startswith("http://127.0.0.1:")
    assert influxdb_server.database == "tiandi_test"
    names = influxdb_server.query("SHOW DATABASES")["results"][0]["series"][0]["values"]
    assert ["tiandi_test"] in names

    influxdb_server.write("probe,link=l1 up=1i 1767225600\nprobe,link=l2 up=0i 1767225600")
    got = influxdb_server.query("SELECT sum(up) FROM probe", db=influxdb_server.database, epoch="s")
    assert got["results"][0]["series"][0]["values"] == [[0, 1]]

    with pytest.raises(InfluxQueryError, match="unable to parse"):
        influxdb_server.write("not line protocol")
    with pytest.raises(InfluxQueryError, match="database not found"):
        influxdb_server.query("SELECT * FROM probe", db="no_such_db")


def test_influxdb_listens_on_loopback_only(influxdb_server: InfluxServer) -> None:
    config = (influxdb_server.root / "influxd.conf").read_text(encoding="utf-8")
    binds = [
        line.split("=", 1)[1].strip() for line in config.splitlines() if "bind-address" in line
    ]
    assert len(binds) == 2
    assert all(b.startswith('"127.0.0.1:') for b in binds)
    # Its log goes to its own file, and the server is the version this project targets.
    assert "InfluxDB starting" in influxdb_server.log_path.read_text(encoding="utf-8")
    with httpx.Client(timeout=5) as client:
        ping = client.get(f"{influxdb_server.url}/ping")
    assert ping.status_code == 204
    assert ping.headers["X-Influxdb-Version"].startswith("1.")


# ---- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_server_answers_queries(postgres_server: PostgresServer) -> None:
    major = postgres_server.bindir.parent.name  # /usr/lib/postgresql/<major>/bin
    with psycopg.connect(postgres_server.conninfo()) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        settings: dict[object, object] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (["listen_addresses", "fsync", "synchronous_commit", "full_page_writes"],),
            ).fetchall()
        )
        answer = conn.execute("SELECT %s::int + 1, current_user", (41,)).fetchone()
    assert version is not None
    if major.isdigit():
        assert str(version[0]).startswith(f"{major}.")
    assert settings == {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    assert answer == (42, "postgres")
    assert postgres_server.admin_url == (
        f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/postgres"
    )


def test_postgres_create_and_drop_database(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x int)"))
            conn.execute(text("INSERT INTO t VALUES (7)"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalar_one() == 7
        # Dropping works while a client still holds a connection (WITH (FORCE)).
        postgres_server.drop_database(url)
    finally:
        engine.dispose()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(postgres_server.conninfo(url.rsplit("/", 1)[1])).close()


# ---- migrated databases -----------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2])
def test_database_url_is_fresh_empty_and_at_head(
    database_url: str, session_factory: sessionmaker[Session], attempt: int
) -> None:
    engine = session_factory.kw["bind"]
    tables = set(inspect(engine).get_table_names())
    assert {"sites", "devices", "links", "credential_profiles", "satellite_pools"} <= tables
    with session_factory() as session:
        heads = session.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert tuple(heads) == current_heads()
        for table in ("sites", "devices", "links", "credential_profiles", "satellite_pools"):
            assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
        # Write something: the next test's database must not see it (the second attempt on
        # each backend would find this row if databases were shared or reused).
        session.execute(text("INSERT INTO satellite_pools (name, capacity_kbps) VALUES ('x', 1)"))
        session.commit()
    if database_url.startswith("sqlite"):
        assert Path(database_url.removeprefix("sqlite:///")).exists()
    else:
        assert database_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")


# ---- skip locally, fail in CI -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_server_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    assert in_ci() is (ci == "true")
    with pytest.raises(outcome, match="apt-get install -y influxdb"):
        missing_binary("InfluxDB (influxd)", "influxdb")
