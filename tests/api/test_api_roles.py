"""Every route declares its role, the OpenAPI document says so, and the roles hold."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from api.app import _check_roles, create_app
from api.config import ApiConfig
from api.deps import PUBLIC_PATHS, required_role
from api.roles import Role
from tests.api.support import Users

DOCS = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}


@pytest.fixture(scope="module")
def bare_app() -> FastAPI:
    """The app without a database: for what can be checked without one."""
    return create_app(sessionmaker(), ApiConfig(secret_key=secrets.token_urlsafe(48)))


def _api_routes(app: FastAPI) -> list[Any]:
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def test_every_route_but_the_public_ones_requires_a_role(bare_app: FastAPI) -> None:
    seen_public = set()
    for ctx in iter_route_contexts(bare_app.routes):
        if not isinstance(ctx.original_route, APIRoute):
            assert ctx.path in DOCS, f"unexpected route {ctx.path}"
            continue
        role = required_role(ctx.dependant)
        if ctx.path in PUBLIC_PATHS:
            assert role is None
            seen_public.add(ctx.path)
        else:
            assert role is not None, f"{ctx.methods} {ctx.path} requires no role"
    assert seen_public == {"/healthz", "/readyz", "/auth/token"} == set(PUBLIC_PATHS)
    assert len(_api_routes(bare_app)) > 30


def test_an_app_with_a_route_that_needs_no_role_refuses_to_start(bare_app: FastAPI) -> None:
    app = create_app(sessionmaker(), ApiConfig(secret_key=secrets.token_urlsafe(48)))

    @app.get("/leak")
    def leak() -> dict[str, str]:
        return {"secret": "everyone can read this"}

    with pytest.raises(RuntimeError, match=r"/leak requires no role"):
        _check_roles(app)


def test_a_short_signing_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        ApiConfig(secret_key="changethis")
    assert "secret_key" not in repr(ApiConfig(secret_key="k" * 40))


@pytest.fixture(scope="module")
def openapi(bare_app: FastAPI) -> dict[str, Any]:
    return bare_app.openapi()


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in openapi["paths"].items()
        for method, op in item.items()
    ]


def test_every_operation_is_documented(openapi: dict[str, Any]) -> None:
    for method, path, op in _operations(openapi):
        where = f"{method} {path}"
        assert op.get("summary"), where
        assert op.get("tags"), where
        responses = op["responses"]
        ok = [code for code in responses if code.startswith("2")]
        assert len(ok) == 1, where
        if ok[0] != "204":
            assert "schema" in responses[ok[0]]["content"]["application/json"], where
        if path in PUBLIC_PATHS:
            assert "x-required-role" not in op, where
            assert "**Role:** none (public)" in op["description"], where
        else:
            role = op["x-required-role"]
            assert f"**Role:** `{role}` or above." in op["description"], where
            assert {"401", "403"} <= set(responses), where
            assert op["security"] == [{"accessToken": []}, {"apiToken": []}], where
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in responses, where
        if "{" in path:
            assert "404" in responses, where
        if method in ("POST", "PUT") and path.split("/")[1] in (
            "sites",
            "devices",
            "links",
            "credential-profiles",
            "satellite-pools",
        ):
            assert {"409", "413"} <= set(responses), where
        for code, response in responses.items():
            if code[0] in "45" and path != "/readyz":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, f"{where} {code}"


def test_inventory_bodies_carry_examples(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for name in ("SiteIn", "DeviceIn", "LinkIn", "UserCreate", "ApiTokenCreate"):
        found = {k: v for k, v in schemas.items() if k in (name, f"{name}-Input")}
        assert found, name
        assert all(s.get("examples") for s in found.values()), name
    profile_post = openapi["paths"]["/credential-profiles"]["post"]
    assert profile_post["requestBody"]["content"]["application/json"]["examples"]


_MATRIX: list[tuple[str, str, Any, dict[Role | None, int]]] = [
    ("GET", "/sites", None, {None: 401, Role.VIEWER: 200, Role.OPERATOR: 200, Role.ADMIN: 200}),
    (
        "POST",
        "/sites",
        {"name": "hainan", "tier": "province", "parent": "ministry"},
        {None: 401, Role.VIEWER: 403, Role.OPERATOR: 403, Role.ADMIN: 201},
    ),
    (
        "PUT",
        "/satellite-pools/vsat-hub-a",
        {"name": "vsat-hub-a", "capacity_kbps": 200_000},
        {None: 401, Role.VIEWER: 403, Role.OPERATOR: 403, Role.ADMIN: 200},
    ),
    (
        "DELETE",
        "/devices/ministry-mcu1",
        None,
        {None: 401, Role.VIEWER: 403, Role.OPERATOR: 403, Role.ADMIN: 204},
    ),
    ("GET", "/users", None, {None: 401, Role.VIEWER: 403, Role.OPERATOR: 403, Role.ADMIN: 200}),
    ("GET", "/audit", None, {None: 401, Role.VIEWER: 403, Role.OPERATOR: 403, Role.ADMIN: 200}),
    (
        "GET",
        "/inventory/export",
        None,
        {None: 401, Role.VIEWER: 403, Role.OPERATOR: 403, Role.ADMIN: 200},
    ),
    ("GET", "/auth/me", None, {None: 401, Role.VIEWER: 200, Role.OPERATOR: 200, Role.ADMIN: 200}),
    ("GET", "/healthz", None, {None: 200, Role.VIEWER: 200, Role.OPERATOR: 200, Role.ADMIN: 200}),
]


def test_the_role_matrix(client: TestClient, users: Users, seeded: object) -> None:
    for method, path, body, expected in _MATRIX:
        for role, status in expected.items():
            headers = users.as_role(role) if role else {}
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == status, f"{role} {method} {path}: {r.status_code} {r.text}"
