"""Logging in, access tokens, API tokens, and the difference between 401 and 403."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import argon2
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from api import security
from api.accounts import ApiToken, User
from api.config import ApiConfig
from api.roles import Role
from controllers.audit import AuditRecord
from tests.api.support import PASSWORD, PRODUCTION_HASHER, Users

SITE = {"name": "hainan", "tier": "province", "parent": "ministry", "province_code": "46"}


def login(client: TestClient, username: str, password: str) -> tuple[int, dict[str, object]]:
    r = client.post("/auth/token", data={"username": username, "password": password})
    return r.status_code, r.json()


def problems(r: Any) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {p["path"]: p["reason"] for p in r.json()["problems"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- logging in --------------------------------------------------------------------------------


def test_login_gives_a_short_lived_token_that_works(
    client: TestClient, users: Users, api_config: ApiConfig
) -> None:
    users.add("zhang.wei", Role.OPERATOR)
    r = client.post("/auth/token", data={"username": "zhang.wei", "password": PASSWORD})
    status, body = r.status_code, r.json()
    assert status == 200
    assert r.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == api_config.access_token_minutes * 60
    claims = jwt.decode(str(body["access_token"]), api_config.secret_key, algorithms=["HS256"])
    assert claims["sub"] == "zhang.wei"
    assert "role" not in claims, "the role is re-read on every request, never trusted from a token"
    me = client.get("/auth/me", headers=bearer(str(body["access_token"])))
    assert me.status_code == 200
    assert me.json() == {
        "username": "zhang.wei",
        "role": "operator",
        "user_role": "operator",
        "api_token": None,
    }


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    client: TestClient, users: Users
) -> None:
    users.add("zhang.wei")
    wrong = client.post("/auth/token", data={"username": "zhang.wei", "password": "not-it-at-all"})
    unknown = client.post("/auth/token", data={"username": "nobody", "password": "not-it-at-all"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["detail"] == "incorrect user name or password"
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"] == "Bearer"


def test_an_unknown_user_costs_a_password_check_too(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    class Counting(argon2.PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            checked.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(security, "_hasher", Counting(time_cost=1, memory_cost=1024, parallelism=1))
    security._dummy_hash.cache_clear()
    assert login(client, "nobody", "whatever-password")[0] == 401
    assert len(checked) == 1, "an unknown user must be checked against a dummy hash"


def test_a_disabled_user_cannot_log_in(client: TestClient, users: Users) -> None:
    users.add("li.na", disabled=True)
    status, body = login(client, "li.na", PASSWORD)
    assert status == 401
    assert body["detail"] == "user 'li.na' is disabled"


def test_passwords_are_argon2id_hashes(
    session_factory: sessionmaker[Session], users: Users
) -> None:
    users.add("li.na")
    with session_factory() as session:
        stored = session.scalar(select(User.password_hash).where(User.username == "li.na"))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_production_hashing_parameters_are_not_weakened() -> None:
    # The suite hashes cheaply (see conftest); the service uses at least RFC 9106's low-memory
    # profile.
    assert PRODUCTION_HASHER.type is argon2.Type.ID
    assert PRODUCTION_HASHER.memory_cost >= 64 * 1024
    assert PRODUCTION_HASHER.time_cost >= 3


# ---- 401: no usable credentials ----------------------------------------------------------------


# These are answered before any database is asked: the app under test has none.


def test_no_token_is_a_401_that_says_so(bare_client: TestClient) -> None:
    r = bare_client.get("/sites")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["detail"].startswith("missing bearer token")


def test_another_scheme_is_a_401(bare_client: TestClient) -> None:
    r = bare_client.get("/sites", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert r.status_code == 401
    assert "must be 'Bearer <token>'" in r.json()["detail"]


def test_an_expired_token_is_a_401_that_says_expired(
    bare_client: TestClient, api_config: ApiConfig
) -> None:
    old = security.issue_access_token(
        "zhang.wei",
        key=api_config.secret_key,
        minutes=30,
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    r = bare_client.get("/sites", headers=bearer(old.token))
    assert r.status_code == 401
    assert r.json()["detail"] == "the access token has expired; log in again"
    assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_a_tampered_token_is_a_401(bare_client: TestClient, api_config: ApiConfig) -> None:
    token = security.issue_access_token("viewer.one", key=api_config.secret_key, minutes=30)
    header, payload, signature = token.token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = "boss"
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    forged = f"{header}.{forged_payload}.{signature}"
    r = bare_client.post("/sites", json=SITE, headers=bearer(forged))
    assert r.status_code == 401
    assert r.json()["detail"] == "the access token's signature is invalid"


def test_a_token_signed_with_another_key_is_a_401(bare_client: TestClient) -> None:
    foreign = security.issue_access_token("boss", key="x" * 48, minutes=30).token
    r = bare_client.get("/sites", headers=bearer(foreign))
    assert r.status_code == 401
    assert "signature is invalid" in r.json()["detail"]


def test_a_token_with_alg_none_is_a_401(bare_client: TestClient) -> None:
    now = datetime.now(UTC)
    claims = {"sub": "boss", "iss": "tiandi", "iat": now, "exp": now + timedelta(minutes=5)}
    unsigned = jwt.encode(claims, key="", algorithm="none")
    r = bare_client.get("/sites", headers=bearer(unsigned))
    assert r.status_code == 401


def test_garbage_is_a_401_that_says_malformed(bare_client: TestClient) -> None:
    r = bare_client.get("/sites", headers=bearer("not-a-token"))
    assert r.status_code == 401
    assert "malformed" in r.json()["detail"]


def test_a_token_of_a_user_who_does_not_exist_is_a_401(client: TestClient, users: Users) -> None:
    r = client.get("/sites", headers=bearer(users.token("ghost")))
    assert r.status_code == 401
    assert r.json()["detail"] == "the access token names user 'ghost', who does not exist"


def test_disabling_a_user_stops_their_existing_tokens(client: TestClient, users: Users) -> None:
    users.add("boss", Role.ADMIN)
    users.add("zhang.wei", Role.OPERATOR)
    token = users.token("zhang.wei")
    assert client.get("/sites", headers=bearer(token)).status_code == 200
    r = client.patch("/users/zhang.wei", json={"disabled": True}, headers=users.headers("boss"))
    assert r.status_code == 200
    r = client.get("/sites", headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["detail"] == "user 'zhang.wei' is disabled"


# ---- 403: authenticated, role too low ----------------------------------------------------------


def test_a_too_low_role_is_a_403_naming_both_roles(
    client: TestClient, viewer: dict[str, str], seeded: object
) -> None:
    r = client.post("/sites", json=SITE, headers=viewer)
    assert r.status_code == 403
    assert r.json()["detail"] == "this needs role admin or above; 'viewer1' has role viewer"
    assert "WWW-Authenticate" not in r.headers


def test_a_role_change_takes_effect_on_the_next_request(
    client: TestClient, users: Users, session_factory: sessionmaker[Session], seeded: object
) -> None:
    users.add("boss", Role.ADMIN)
    users.add("deputy", Role.ADMIN)
    token = users.token("deputy")  # issued while an admin
    with session_factory() as session, session.begin():
        session.execute(update(User).where(User.username == "deputy").values(role=Role.VIEWER))
    r = client.post("/sites", json=SITE, headers=bearer(token))
    assert r.status_code == 403
    assert "'deputy' has role viewer" in r.json()["detail"]


# ---- API tokens --------------------------------------------------------------------------------


def _new_api_token(
    client: TestClient, headers: dict[str, str], **body: object
) -> dict[str, object]:
    r = client.post("/auth/api-tokens", json={"name": "grafana", **body}, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["Cache-Control"] == "no-store"
    created: dict[str, object] = r.json()
    return created


def test_an_api_token_is_shown_once_stored_hashed_and_works(
    client: TestClient, users: Users, session_factory: sessionmaker[Session], seeded: object
) -> None:
    users.add("zhang.wei", Role.OPERATOR)
    created = _new_api_token(client, users.headers("zhang.wei"))
    token = str(created["token"])
    assert token.startswith("tdk_") and len(token) > 40
    again = client.post(
        "/auth/api-tokens", json={"name": "grafana"}, headers=users.headers("zhang.wei")
    )
    assert again.status_code == 409
    assert created["role"] == "operator"  # by default, the creator's role
    assert client.get("/sites", headers=bearer(token)).status_code == 200
    me = client.get("/auth/me", headers=bearer(token)).json()
    assert me["api_token"] == "grafana"
    listed = client.get("/auth/api-tokens", headers=users.headers("zhang.wei")).json()
    assert listed["total"] == 1
    assert "token" not in listed["items"][0]
    with session_factory() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        dump = session.execute(text("SELECT * FROM api_tokens")).all()
        assert token not in repr(dump)
        assert "REDACTED" in repr(row)


def test_a_revoked_api_token_stops_working(client: TestClient, users: Users) -> None:
    users.add("zhang.wei", Role.OPERATOR)
    created = _new_api_token(client, users.headers("zhang.wei"))
    r = client.delete(f"/auth/api-tokens/{created['id']}", headers=users.headers("zhang.wei"))
    assert r.status_code == 204
    r = client.get("/sites", headers=bearer(str(created["token"])))
    assert r.status_code == 401
    assert r.json()["detail"].startswith("API token 'grafana' was revoked at")
    # revoking twice is fine
    r = client.delete(f"/auth/api-tokens/{created['id']}", headers=users.headers("zhang.wei"))
    assert r.status_code == 204


def test_an_expired_api_token_is_a_401(
    client: TestClient, users: Users, session_factory: sessionmaker[Session]
) -> None:
    users.add("zhang.wei")
    soon = datetime.now(UTC) + timedelta(days=1)
    created = _new_api_token(client, users.headers("zhang.wei"), expires_at=soon.isoformat())
    with session_factory() as session, session.begin():
        session.execute(
            update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    r = client.get("/sites", headers=bearer(str(created["token"])))
    assert r.status_code == 401
    assert "expired at" in r.json()["detail"]


def test_an_unknown_api_token_is_a_401(client: TestClient) -> None:
    r = client.get("/sites", headers=bearer("tdk_" + "x" * 43))
    assert r.status_code == 401
    assert r.json()["detail"] == "unknown API token"


def test_an_api_token_is_capped_at_its_role(
    client: TestClient, users: Users, seeded: object
) -> None:
    users.add("boss", Role.ADMIN)
    created = _new_api_token(client, users.headers("boss"), role="viewer")
    r = client.post("/sites", json=SITE, headers=bearer(str(created["token"])))
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "this needs role admin or above; 'boss' has role admin, "
        "capped at viewer by API token 'grafana'"
    )


def test_an_api_token_cannot_exceed_its_owners_role(client: TestClient, users: Users) -> None:
    users.add("li.na")
    r = client.post(
        "/auth/api-tokens", json={"name": "x", "role": "admin"}, headers=users.headers("li.na")
    )
    assert r.status_code == 403
    assert "at most at your own role viewer" in r.json()["detail"]


def test_a_demoted_owner_demotes_their_api_tokens(
    client: TestClient, users: Users, session_factory: sessionmaker[Session], seeded: object
) -> None:
    users.add("boss", Role.ADMIN)
    users.add("deputy", Role.ADMIN)
    created = _new_api_token(client, users.headers("deputy"), role="admin")
    client.patch("/users/deputy", json={"role": "viewer"}, headers=users.headers("boss"))
    r = client.post("/sites", json=SITE, headers=bearer(str(created["token"])))
    assert r.status_code == 403


def test_a_disabled_owner_disables_their_api_tokens(client: TestClient, users: Users) -> None:
    users.add("boss", Role.ADMIN)
    users.add("li.na")
    created = _new_api_token(client, users.headers("li.na"))
    client.patch("/users/li.na", json={"disabled": True}, headers=users.headers("boss"))
    r = client.get("/sites", headers=bearer(str(created["token"])))
    assert r.status_code == 401
    assert r.json()["detail"] == "user 'li.na' is disabled"


def test_an_api_token_cannot_create_api_tokens(client: TestClient, users: Users) -> None:
    users.add("li.na")
    created = _new_api_token(client, users.headers("li.na"))
    r = client.post(
        "/auth/api-tokens", json={"name": "more"}, headers=bearer(str(created["token"]))
    )
    assert r.status_code == 403
    assert "log in with your password" in r.json()["detail"]


def test_api_token_expiry_must_be_aware_and_in_the_future(client: TestClient, users: Users) -> None:
    users.add("li.na")
    h = users.headers("li.na")
    naive = client.post(
        "/auth/api-tokens", json={"name": "x", "expires_at": "2030-01-01T00:00:00"}, headers=h
    )
    past = client.post(
        "/auth/api-tokens", json={"name": "x", "expires_at": "2020-01-01T00:00:00Z"}, headers=h
    )
    assert problems(naive) == {"body.expires_at": "Input should have timezone info"}
    assert problems(past) == {"body.expires_at": "Value error, expires_at is in the past"}


def test_only_the_owner_or_an_admin_revokes_a_token(client: TestClient, users: Users) -> None:
    users.add("boss", Role.ADMIN)
    users.add("li.na")
    users.add("wang.fang")
    created = _new_api_token(client, users.headers("li.na"))
    path = f"/auth/api-tokens/{created['id']}"
    assert client.delete(path, headers=users.headers("wang.fang")).status_code == 404
    listed = client.get("/auth/api-tokens", headers=users.headers("wang.fang")).json()
    assert listed["total"] == 0
    assert client.get("/auth/api-tokens", headers=users.headers("boss")).json()["total"] == 1
    assert client.delete(path, headers=users.headers("boss")).status_code == 204


def test_api_token_changes_are_audited_without_the_token(
    client: TestClient, users: Users, session_factory: sessionmaker[Session]
) -> None:
    users.add("li.na")
    created = _new_api_token(client, users.headers("li.na"))
    client.delete(f"/auth/api-tokens/{created['id']}", headers=users.headers("li.na"))
    with session_factory() as session:
        records = session.scalars(
            select(AuditRecord).where(AuditRecord.target_type == "api_token")
        ).all()
        assert [r.action for r in records] == ["api_token.create", "api_token.revoke"]
        assert all(r.target == "li.na/grafana" and r.actor == "li.na" for r in records)
        dumped = json.dumps([[r.before, r.after] for r in records])
    assert str(created["token"]) not in dumped
    assert hashlib.sha256(str(created["token"]).encode()).hexdigest() not in dumped


# ---- own password ------------------------------------------------------------------------------


def test_changing_my_password(client: TestClient, users: Users) -> None:
    users.add("li.na")
    h = users.headers("li.na")
    wrong = client.post(
        "/auth/password",
        json={"current_password": "not-my-password", "new_password": "a-new-long-password"},
        headers=h,
    )
    assert wrong.status_code == 403
    short = client.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=h
    )
    assert short.status_code == 422
    ok = client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "a-new-long-password"},
        headers=h,
    )
    assert ok.status_code == 204
    assert login(client, "li.na", PASSWORD)[0] == 401
    assert login(client, "li.na", "a-new-long-password")[0] == 200
