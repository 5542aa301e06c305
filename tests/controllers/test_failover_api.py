"""The failover API: roles, answers without an engine (503), site state, events, switch, pin."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api import security
from api.app import create_app
from api.config import ApiConfig
from api.roles import Role
from monitors.linkstate import Health
from tests.api.support import FAST_HASHER, Users
from tests.controllers.failover_support import (
    Stack,
    api_stack,
    counties,
    links_of,
    report,
    seed,
    small_network,
)


@pytest.fixture
def stack(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    with api_stack(session_factory, monkeypatch) as built:
        yield built


def test_the_role_of_every_failover_route(stack: Stack) -> None:
    site = counties(stack.doc)[0]
    viewer = stack.headers("zhou.min", Role.VIEWER)
    operator = stack.headers("li.na")
    body = {"link": "backup", "reason": "drill"}
    matrix: list[tuple[str, str, Any, dict[str, int]]] = [
        ("GET", f"/failover/sites/{site}", None, {"none": 401, "viewer": 200, "operator": 200}),
        ("GET", "/failover/events", None, {"none": 401, "viewer": 200}),
        ("GET", "/failover/progress", None, {"none": 401, "viewer": 200}),
        ("POST", f"/failover/sites/{site}/switch", body, {"none": 401, "viewer": 403}),
        ("POST", f"/failover/sites/{site}/pin", body, {"none": 401, "viewer": 403}),
        ("DELETE", f"/failover/sites/{site}/pin", None, {"none": 401, "viewer": 403}),
        (
            "POST",
            "/failover/switch",
            {"sites": [site], "role": "backup", "reason": "x"},
            {"none": 401, "viewer": 403},
        ),
        ("GET", "/approvals", None, {"none": 401, "viewer": 403, "operator": 200}),
        ("POST", "/approvals/1/approve", {}, {"none": 401, "viewer": 403}),
        ("POST", "/approvals/1/reject", {}, {"none": 401, "viewer": 403}),
    ]
    who = {"none": {}, "viewer": viewer, "operator": operator}
    for method, path, payload, expected in matrix:
        for role, status in expected.items():
            r = stack.client.request(method, path, json=payload, headers=who[role])
            assert r.status_code == status, f"{role} {method} {path}: {r.status_code} {r.text}"
    assert stack.router.moves == []


def test_an_operator_switches_a_county_and_sees_it(stack: Stack) -> None:
    site = counties(stack.doc)[0]
    primary, backup, _sat = links_of(stack.doc, site)
    li = stack.headers("li.na")
    r = stack.client.post(
        f"/failover/sites/{site}/switch",
        json={"link": "backup", "reason": "primary carrier works"},
        headers=li,
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["status"] == "done"
    (outcome,) = result["outcomes"]
    assert (outcome["from_link"], outcome["to_link"], outcome["link"]) == (primary, backup, backup)
    assert outcome["commands"] and outcome["verification"] == f"default route via {backup}"

    state = stack.client.get(f"/failover/sites/{site}", headers=li).json()
    assert state["live"] is True
    assert (state["state"], state["current_link"], state["preferred_link"]) == (
        "failed_over",
        backup,
        primary,
    )
    assert state["pin"]["link"] == backup and state["pin"]["actor"] == "li.na"
    assert state["pin"]["reason"] == "manual switch: primary carrier works"
    assert [lk["health"] for lk in state["links"]] == ["up", "up", "up"]
    assert [e["kind"] for e in state["events"]][:2] == ["switched", "decided"]

    released = stack.client.delete(f"/failover/sites/{site}/pin", headers=li).json()
    assert released["status"] == "released"
    stack.on_engine(lambda: None)
    stack.thread.run(stack.engine.idle())
    assert stack.router.current[site] == primary  # failback at once: the primary is held down


def test_refusals_are_409_with_the_reason(stack: Stack) -> None:
    site = counties(stack.doc)[1]
    _p, _b, sat = links_of(stack.doc, site)
    li = stack.headers("li.na")
    now = stack.engine.clock()
    stack.on_engine(stack.engine.observe, report(site, sat, Health.DOWN, now))
    r = stack.client.post(
        f"/failover/sites/{site}/switch", json={"link": sat, "reason": "x"}, headers=li
    )
    assert r.status_code == 409
    assert "never moves a site onto a link that is down" in r.json()["detail"]
    r = stack.client.post(
        f"/failover/sites/{site}/switch", json={"link": "nope", "reason": "x"}, headers=li
    )
    assert r.status_code == 409 and "give one of" in r.json()["detail"]
    r = stack.client.post(
        "/failover/sites/atlantis/switch", json={"link": "backup", "reason": "x"}, headers=li
    )
    assert r.status_code == 404


def test_pin_and_events_listing(stack: Stack) -> None:
    a, b = counties(stack.doc)[2:4]
    li = stack.headers("li.na")
    r = stack.client.post(
        f"/failover/sites/{a}/pin",
        json={"link": "satellite", "minutes": 15, "reason": "vsat drill"},
        headers=li,
    )
    assert r.status_code == 200 and r.json()["status"] == "done", r.text
    r = stack.client.post(
        f"/failover/sites/{b}/pin", json={"link": "primary", "reason": "hold"}, headers=li
    )
    assert r.json()["status"] == "pinned"
    stack.thread.run(stack.engine.idle())

    page = stack.client.get("/failover/events", params={"site": a, "limit": 2}, headers=li)
    body = page.json()
    assert body["total"] >= 3 and len(body["items"]) == 2
    assert body["items"][0]["id"] > body["items"][1]["id"]  # newest first
    switched = stack.client.get(
        "/failover/events", params={"kind": "switched", "cause": "pin"}, headers=li
    ).json()
    assert [e["site"] for e in switched["items"]] == [a]
    assert switched["items"][0]["actor"] == "li.na"
    assert stack.client.get("/failover/progress", headers=li).json()["busy"] is False


@pytest.fixture
def bare(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Users, Any]]:
    monkeypatch.setattr(security, "_hasher", FAST_HASHER)
    security._dummy_hash.cache_clear()
    doc = small_network()
    seed(session_factory, doc)
    config = ApiConfig(secret_key=secrets.token_urlsafe(48))
    app = create_app(session_factory, config)  # no engine: as `tiandi api` without it
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, Users(session_factory, config), doc
    security._dummy_hash.cache_clear()


def test_without_the_engine_actions_answer_503_and_reads_come_from_the_database(
    bare: tuple[TestClient, Users, Any],
) -> None:
    client, users, doc = bare
    users.add("li.na", Role.OPERATOR)
    li = users.headers("li.na")
    site = counties(doc)[0]
    for method, path, body in [
        ("POST", f"/failover/sites/{site}/switch", {"link": "backup", "reason": "x"}),
        ("POST", f"/failover/sites/{site}/pin", {"link": "backup", "reason": "x"}),
        ("DELETE", f"/failover/sites/{site}/pin", None),
        ("POST", "/failover/switch", {"sites": [site], "role": "backup", "reason": "x"}),
        ("GET", "/failover/progress", None),
        ("POST", "/approvals/1/approve", {}),
    ]:
        r = client.request(method, path, json=body, headers=li)
        assert r.status_code == 503, f"{method} {path}: {r.status_code}"
        assert "it runs in `tiandi serve`" in r.json()["detail"]
    state = client.get(f"/failover/sites/{site}", headers=li).json()
    assert (state["live"], state["state"], state["current_link"]) == (False, "unknown", None)
    assert [lk["health"] for lk in state["links"]] == ["unknown"] * 3
    assert client.get("/failover/events", headers=li).json()["total"] == 0
    assert client.get("/approvals", headers=li).json()["items"] == []
    assert client.get("/failover/sites/atlantis", headers=li).status_code == 404
