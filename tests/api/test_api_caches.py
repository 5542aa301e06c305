"""The API's two caches: who is asking (``api.account_cache``) and the inventory index of the
live-state routes (``api.inventory_index``). Changes made through the API hold on the next
request; changes made elsewhere (the CLI) hold once the documented time is over, not before.

Time is a fake clock handed to each cache, so "once the time is over" is exact, not a sleep.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from api import inventory_index, security
from api.account_cache import AccountCache, UserRow, VerifiedToken
from api.app import create_app
from api.config import ApiConfig
from api.inventory_index import InventoryIndex
from api.roles import Role
from controllers import audit
from inventory.model import MaintenanceWindow, Site
from tests.api.monitoring_support import in_memory_view
from tests.api.support import Users
from tests.harness.samples import small_inventory
from tiandi.cli import app as cli

QUJIANG = "guangdong-shaoguan-qujiang"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tiandi(database_url: str, *args: str) -> Result:
    """The real CLI, as an operator runs it beside the API (its own engine and sessions)."""
    env = {"TIANDI_DATABASE_URL": database_url, "TIANDI_ENVIRONMENT": "development"}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(
    session_factory: sessionmaker[Session], api_config: ApiConfig, clock: Clock, seeded: Any
) -> FastAPI:
    built = create_app(session_factory, api_config, monitoring=in_memory_view())
    built.state.account_cache = AccountCache(ttl_s=api_config.account_cache_seconds, clock=clock)
    built.state.inventory_index = InventoryIndex(lambda: built.state.session_factory, clock=clock)
    return built


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- who is asking -----------------------------------------------------------------------------


def test_the_default_account_cache_time_is_five_seconds(api_config: ApiConfig) -> None:
    assert ApiConfig(secret_key="k" * 32).account_cache_seconds == 5.0
    with pytest.raises(ValueError, match="account_cache_seconds"):
        ApiConfig(secret_key="k" * 32, account_cache_seconds=61)


def test_a_user_disabled_with_the_cli_is_refused_once_the_cache_time_is_over(
    client: TestClient, users: Users, database_url: str, clock: Clock
) -> None:
    users.add("boss", Role.ADMIN)
    users.add("li.na")
    token = users.token("li.na")
    assert client.get("/sites", headers=bearer(token)).status_code == 200
    tiandi(database_url, "users", "disable", "li.na")
    clock.now += 4.9  # the row read 4.9 s ago is still used: the change is not seen yet
    assert client.get("/sites", headers=bearer(token)).status_code == 200
    clock.now += 0.1
    r = client.get("/sites", headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["detail"] == "user 'li.na' is disabled"


def test_a_role_lowered_with_the_cli_holds_once_the_cache_time_is_over(
    client: TestClient, users: Users, database_url: str, clock: Clock
) -> None:
    users.add("boss", Role.ADMIN)
    users.add("deputy", Role.OPERATOR)
    token = users.token("deputy")
    assert client.get("/auth/me", headers=bearer(token)).json()["role"] == "operator"
    tiandi(database_url, "users", "set-role", "deputy", "viewer")
    assert client.get("/auth/me", headers=bearer(token)).json()["role"] == "operator"
    clock.now += 5.0
    assert client.get("/auth/me", headers=bearer(token)).json()["role"] == "viewer"


def test_an_api_token_revoked_through_the_api_stops_at_once_though_it_was_cached(
    client: TestClient, users: Users
) -> None:
    users.add("zhang.wei", Role.OPERATOR)
    created = client.post(
        "/auth/api-tokens", json={"name": "grafana"}, headers=users.headers("zhang.wei")
    ).json()
    token = str(created["token"])
    assert client.get("/sites", headers=bearer(token)).status_code == 200  # now cached
    r = client.delete(f"/auth/api-tokens/{created['id']}", headers=users.headers("zhang.wei"))
    assert r.status_code == 204
    r = client.get("/sites", headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["detail"].startswith("API token 'grafana' was revoked at")


def test_a_cached_access_token_is_still_refused_once_it_expires(
    client: TestClient, app: FastAPI, users: Users, api_config: ApiConfig
) -> None:
    users.add("li.na")
    issued = security.issue_access_token(
        "li.na",
        key=api_config.secret_key,
        minutes=1,
        now=datetime.now(UTC) - timedelta(minutes=2),
    )
    # As the cache would hold it had the token been checked while it was valid.
    cache: AccountCache = app.state.account_cache
    digest = hashlib.sha256(issued.token.encode("utf-8")).hexdigest()
    cache.put(
        ("access_token", digest),
        VerifiedToken("li.na", issued.expires_at.timestamp()),
        cache.generation(),
    )
    r = client.get("/sites", headers=bearer(issued.token))
    assert r.status_code == 401
    assert r.json()["detail"] == "the access token has expired; log in again"


def test_the_account_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    clock = Clock()
    cache = AccountCache(ttl_s=5.0, max_entries=3, clock=clock)
    rows = {name: UserRow(name, Role.VIEWER, False) for name in "abcde"}
    for name in "abc":
        cache.put(("user", name), rows[name], cache.generation())
    assert cache.get(("user", "a")) == rows["a"]  # a is now the most recently used
    cache.put(("user", "d"), rows["d"], cache.generation())
    cache.put(("user", "e"), rows["e"], cache.generation())
    assert len(cache) == 3
    assert cache.get(("user", "b")) is None and cache.get(("user", "c")) is None
    assert cache.get(("user", "a")) == rows["a"]
    clock.now += 5.0
    assert cache.get(("user", "a")) is None  # and nothing outlives the time limit


def test_a_row_read_before_a_clear_is_not_kept_after_it() -> None:
    cache = AccountCache()
    generation = cache.generation()  # a request starts reading the row...
    cache.clear()  # ...an account change commits meanwhile...
    cache.put(("user", "a"), UserRow("a", Role.ADMIN, False), generation)
    assert cache.get(("user", "a")) is None  # ...so the row it read may be stale: dropped


def test_concurrent_misses_of_one_row_read_it_once() -> None:
    cache = AccountCache()
    reads: list[str] = []
    started = threading.Barrier(8)

    def read() -> UserRow:
        reads.append("a")
        time.sleep(0.05)
        return UserRow("a", Role.VIEWER, False)

    def request() -> None:
        started.wait()
        assert cache.load(("user", "a"), read) == UserRow("a", Role.VIEWER, False)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == ["a"]


# ---- the inventory index -----------------------------------------------------------------------


def _status(client: TestClient, headers: dict[str, str], site: str = QUJIANG) -> dict[str, Any]:
    answer = client.get(f"/sites/{site}/status", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _devices(client: TestClient, headers: dict[str, str]) -> set[str]:
    return {d["device"] for d in _status(client, headers)["devices"]}


def _import_without_the_endpoint(database_url: str, tmp_path: Path) -> None:
    """``tiandi inventory import`` of the sample inventory, less qujiang's video endpoint."""
    raw = small_inventory()
    site = next(s for s in raw["sites"] if s["name"] == QUJIANG)
    site["devices"] = [d for d in site["devices"] if d["name"] != f"{QUJIANG}-ep1"]
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    tiandi(database_url, "inventory", "import", str(path))


def test_an_inventory_change_through_the_api_shows_on_the_next_request(
    client: TestClient, viewer: dict[str, str], admin: dict[str, str]
) -> None:
    assert f"{QUJIANG}-ep1" in _devices(client, viewer)  # the index is loaded
    assert client.delete(f"/devices/{QUJIANG}-ep1", headers=admin).status_code == 204
    assert f"{QUJIANG}-ep1" not in _devices(client, viewer)
    r = client.get(f"/devices/{QUJIANG}-ep1/state", headers=viewer)
    assert r.status_code == 404
    assert r.json()["detail"] == f"no device named '{QUJIANG}-ep1'"


def test_a_cli_import_shows_once_the_index_is_rechecked(
    client: TestClient, app: FastAPI, viewer: dict[str, str], database_url: str, clock: Clock,
    tmp_path: Path,
) -> None:  # fmt: skip
    index: InventoryIndex = app.state.inventory_index
    assert f"{QUJIANG}-ep1" in _devices(client, viewer)
    loads = index.loads
    _import_without_the_endpoint(database_url, tmp_path)
    assert f"{QUJIANG}-ep1" in _devices(client, viewer)  # not rechecked yet: the old snapshot
    assert index.loads == loads
    # Past the recheck time, a request still gets the snapshot it has at once, and sets off a
    # background check, which sees the audit trail move and reloads.
    clock.now += inventory_index.RECHECK_S
    assert f"{QUJIANG}-ep1" in _devices(client, viewer)
    deadline = time.monotonic() + 10
    while index.loads == loads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert index.loads == loads + 1
    assert f"{QUJIANG}-ep1" not in _devices(client, viewer)


def test_after_an_idle_spell_a_request_waits_for_the_check(
    client: TestClient, viewer: dict[str, str], database_url: str, clock: Clock, tmp_path: Path
) -> None:
    assert f"{QUJIANG}-ep1" in _devices(client, viewer)
    _import_without_the_endpoint(database_url, tmp_path)
    clock.now += inventory_index.STALE_LIMIT_S
    assert f"{QUJIANG}-ep1" not in _devices(client, viewer)


def test_an_unchanged_audit_trail_costs_no_reload_until_the_maximum_age(
    client: TestClient,
    app: FastAPI,
    viewer: dict[str, str],
    session_factory: sessionmaker[Session],
    clock: Clock,
) -> None:
    index: InventoryIndex = app.state.inventory_index
    assert _status(client, viewer)["maintenance"] is None
    loads = index.loads
    now = datetime.now(UTC)
    with session_factory() as session, session.begin():  # a hand-made write: no audit record
        site_id = session.scalar(select(Site.id).where(Site.name == QUJIANG))
        assert site_id is not None
        session.add(
            MaintenanceWindow(
                site_id=site_id,
                starts_at=(now - timedelta(hours=1)).isoformat(),
                ends_at=(now + timedelta(hours=1)).isoformat(),
                reason="fibre splice",
            )
        )
    for _ in range(3):  # rechecked (waiting for it each time): the trail did not move
        clock.now += inventory_index.STALE_LIMIT_S
        assert _status(client, viewer)["maintenance"] is None
    assert index.loads == loads
    clock.now += inventory_index.MAX_AGE_S
    assert _status(client, viewer)["maintenance"]["reason"] == "fibre splice"
    assert index.loads == loads + 1


def test_a_snapshot_of_another_database_is_never_used(
    session_factory: sessionmaker[Session], seeded: Any
) -> None:
    source = [session_factory]
    index = InventoryIndex(lambda: source[0])
    assert QUJIANG in asyncio.run(index.snapshot()).sites
    source[0] = sessionmaker()  # tests point an app at another database this way: none here
    with pytest.raises(UnboundExecutionError):
        asyncio.run(index.snapshot())


@pytest.mark.parametrize(
    ("action", "reloads"),
    [("failover.switched", False), ("alarm.ack", False), ("site.update", True)],
)
def test_failover_and_alarm_records_do_not_reload_the_index(
    client: TestClient,
    app: FastAPI,
    viewer: dict[str, str],
    session_factory: sessionmaker[Session],
    clock: Clock,
    action: str,
    reloads: bool,
) -> None:
    index: InventoryIndex = app.state.inventory_index
    _status(client, viewer)
    loads = index.loads
    for _ in range(3):  # the failover engine records its decisions all the time
        with session_factory() as session, session.begin():
            audit.append(
                session,
                actor="failover-engine",
                action=action,
                target_type="site",
                target=QUJIANG,
                before=None,
                after={"reason": "test"},
            )
        clock.now += inventory_index.STALE_LIMIT_S
        _status(client, viewer)
    assert (index.loads > loads) is reloads
