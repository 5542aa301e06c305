"""Bad input and broken databases: answered with a status and a reason, never a stack trace."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from api.app import create_app
from api.config import MIB, ApiConfig
from inventory.db import make_engine, make_session_factory
from tests.harness.samples import small_inventory


def _too_big() -> bytes:
    return json.dumps({"name": "x", "tier": "county", "display_name": "x" * MIB}).encode()


def test_an_oversized_body_is_a_413_before_it_is_parsed(
    client: TestClient, admin: dict[str, str]
) -> None:
    headers = {**admin, "Content-Type": "application/json"}
    r = client.post("/sites", content=_too_big(), headers=headers)
    assert r.status_code == 413
    assert r.json()["detail"] == (
        "the request body is larger than 1048576 bytes (1 MiB); send less at a time"
    )
    # without a Content-Length (chunked), the limit holds as the body streams in
    chunks = iter([b"[" + b"1," * (MIB // 2), b"1," * (MIB // 2) + b"1]"])
    r = client.post("/sites", content=chunks, headers=headers)
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert r.json() == {
        "detail": "the request body is larger than 1048576 bytes (1 MiB); send less at a time",
        "problems": [],
    }
    # even before authentication
    r = client.post("/sites", content=_too_big(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_the_import_takes_a_larger_body(client: TestClient, admin: dict[str, str]) -> None:
    doc = small_inventory()
    doc["satellite_pools"][0]["description"] = "x" * (2 * MIB)
    r = client.post("/inventory/import", json=doc, headers=admin)
    assert r.status_code == 200, r.text[:200]


def test_invalid_json_is_a_422_with_its_location(client: TestClient, admin: dict[str, str]) -> None:
    headers = {**admin, "Content-Type": "application/json"}
    r = client.post("/sites", content=b'{"name": "x", "tier": }', headers=headers)
    assert r.status_code == 422
    (problem,) = r.json()["problems"]
    assert problem["path"] == "body"
    assert problem["reason"] == "JSON decode error at character 22: Expecting value"
    r = client.post("/sites", content=b'{"name": "\xff"}', headers=headers)
    assert r.status_code == 422
    assert r.json()["problems"][0]["path"] == "body"
    assert "not UTF-8" in r.json()["problems"][0]["reason"]


def test_unknown_paths_and_methods_answer_in_the_same_shape(bare_client: TestClient) -> None:
    r = bare_client.get("/nowhere")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found", "problems": []})
    r = bare_client.patch("/sites")
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]


def test_a_wrong_body_shape_is_a_422_naming_each_field(
    client: TestClient, admin: dict[str, str]
) -> None:
    r = client.post("/devices", json={"name": "x", "kind": "toaster", "extra": 1}, headers=admin)
    assert r.status_code == 422
    paths = {p["path"] for p in r.json()["problems"]}
    assert {"body.kind", "body.extra", "body.vendor", "body.site"} <= paths


# ---- database failures -------------------------------------------------------------------------


@pytest.fixture
def failing_app(client: TestClient, app: FastAPI) -> FastAPI:
    """The app with routes that fail the ways a database can (added after the role check)."""

    def integrity() -> None:
        raise IntegrityError(
            "INSERT INTO sites (name) VALUES (?)",
            {"name": "secret-ish"},
            Exception("UNIQUE constraint failed: sites.name"),
        )

    def unreachable() -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused\nmore detail"))

    def broken() -> None:
        raise ProgrammingError("SELECT * FROM nope", {}, Exception("no such table: nope"))

    def bug() -> None:
        raise ZeroDivisionError("division by zero in the password=hunter2 handler")

    for path, fn in (("/t/integrity", integrity), ("/t/down", unreachable)):
        app.add_api_route(path, fn)
    app.add_api_route("/t/broken", broken)
    app.add_api_route("/t/bug", bug)
    return app


def test_database_errors_never_reach_the_client_as_a_trace(
    client: TestClient, failing_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    r = client.get("/t/integrity")
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "the database refused the change because it conflicts with existing data "
        "(UNIQUE constraint failed: sites.name); nothing was changed"
    )
    assert "INSERT" not in r.text and "secret-ish" not in r.text
    r = client.get("/t/down")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    assert r.json()["detail"] == "the database is unavailable; retry in a moment"
    for path in ("/t/broken", "/t/bug"):
        r = client.get(path)
        assert r.status_code == 500
        detail = r.json()["detail"]
        assert detail.startswith("internal error; the server log has the details under reference")
        assert "Traceback" not in r.text and "nope" not in r.text and "hunter2" not in r.text
        reference = detail.rsplit(" ", 1)[1]
        assert any(reference in rec.getMessage() for rec in caplog.records)


@pytest.fixture(params=["sqlite", "postgresql"])
def dead_database_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/missing/dir/tiandi.db"
    else:
        url = "postgresql+psycopg://tiandi@127.0.0.1:9/tiandi?connect_timeout=2"
    engine = make_engine(url)
    app = create_app(make_session_factory(engine), ApiConfig(secret_key=secrets.token_urlsafe(48)))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    engine.dispose()


def test_readyz_says_why_the_database_is_unreachable(dead_database_client: TestClient) -> None:
    assert dead_database_client.get("/healthz").json() == {"status": "ok"}
    r = dead_database_client.get("/readyz")
    assert r.status_code == 503
    body: dict[str, Any] = r.json()
    assert body["status"] == "unavailable"
    assert body["database"].startswith("unreachable: ")
    assert len(body["database"]) > len("unreachable: ")


def test_a_request_while_the_database_is_down_is_a_503(dead_database_client: TestClient) -> None:
    r = dead_database_client.get("/sites", headers={"Authorization": "Bearer tdk_whatever"})
    assert r.status_code == 503
    assert "Traceback" not in r.text


def test_readyz_when_the_database_answers(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}
