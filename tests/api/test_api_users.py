"""Managing users over the API (admin only), every change audited, no password kept or logged."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.roles import Role
from controllers.audit import AuditRecord
from tests.api.support import PASSWORD, Users


def login(client: TestClient, username: str, password: str) -> int:
    r = client.post("/auth/token", data={"username": username, "password": password})
    return int(r.status_code)


def test_creating_users_with_and_without_a_password(
    client: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    r = client.post("/users", json={"username": "zhang.wei", "role": "operator"}, headers=admin)
    assert r.status_code == 201
    body = r.json()
    assert body["user"]["role"] == "operator"
    generated = body["password"]
    assert len(generated) >= 20
    assert login(client, "zhang.wei", generated) == 200

    chosen = {"username": "li.na", "password": "a-long-enough-password"}
    r = client.post("/users", json=chosen, headers=admin)
    assert r.status_code == 201
    assert r.json()["password"] is None
    assert r.json()["user"]["role"] == "viewer"
    assert login(client, "li.na", "a-long-enough-password") == 200

    assert client.post("/users", json=chosen, headers=admin).status_code == 409
    short = client.post("/users", json={"username": "x.y", "password": "short"}, headers=admin)
    assert short.status_code == 422
    bad = client.post("/users", json={"username": "Bad Name"}, headers=admin)
    assert bad.status_code == 422

    with session_factory() as session:
        records = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "user.create")
        ).all()
        dumped = json.dumps([[r.before, r.after] for r in records])
    assert [r.target for r in records][-2:] == ["zhang.wei", "li.na"]
    assert generated not in dumped and "a-long-enough-password" not in dumped
    assert "argon2" not in dumped


def test_listing_and_reading_users(client: TestClient, admin: dict[str, str], users: Users) -> None:
    users.add("li.na")
    users.add("zhang.wei", Role.OPERATOR)
    r = client.get("/users", headers=admin)
    assert [u["username"] for u in r.json()["items"]] == ["admin1", "li.na", "zhang.wei"]
    r = client.get("/users", params={"role": "operator"}, headers=admin)
    assert [u["username"] for u in r.json()["items"]] == ["zhang.wei"]
    r = client.get("/users/li.na", headers=admin)
    assert r.json()["role"] == "viewer" and r.json()["disabled"] is False
    assert "password" not in r.text
    assert client.get("/users/nobody", headers=admin).status_code == 404


def test_changing_role_disabling_and_enabling(
    client: TestClient, admin: dict[str, str], users: Users, session_factory: sessionmaker[Session]
) -> None:
    users.add("li.na")
    r = client.patch("/users/li.na", json={"role": "operator"}, headers=admin)
    assert r.status_code == 200 and r.json()["role"] == "operator"
    r = client.patch("/users/li.na", json={"disabled": True}, headers=admin)
    assert r.json()["disabled"] is True
    assert login(client, "li.na", PASSWORD) == 401
    client.patch("/users/li.na", json={"disabled": False}, headers=admin)
    assert login(client, "li.na", PASSWORD) == 200
    with session_factory() as session:
        updates = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "user.update")
        ).all()
    assert (updates[0].before, updates[0].after) == (
        {"username": "li.na", "role": "viewer", "disabled": False},
        {"username": "li.na", "role": "operator", "disabled": False},
    )
    assert all(u.actor == "admin1" for u in updates)


def test_the_last_enabled_admin_stays(
    client: TestClient, admin: dict[str, str], users: Users
) -> None:
    r = client.patch("/users/admin1", json={"role": "viewer"}, headers=admin)
    assert r.status_code == 409
    assert "only enabled admin" in r.json()["detail"]
    assert client.patch("/users/admin1", json={"disabled": True}, headers=admin).status_code == 409
    users.add("deputy", Role.ADMIN)
    r = client.patch("/users/admin1", json={"role": "operator"}, headers=admin)
    assert r.status_code == 200


def test_resetting_a_password(client: TestClient, admin: dict[str, str], users: Users) -> None:
    users.add("li.na")
    r = client.post("/users/li.na/password", headers=admin)
    assert r.status_code == 200
    new = r.json()["password"]
    assert login(client, "li.na", PASSWORD) == 401
    assert login(client, "li.na", new) == 200
    assert client.post("/users/nobody/password", headers=admin).status_code == 404
