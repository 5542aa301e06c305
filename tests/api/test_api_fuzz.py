"""The API fuzzed from its own OpenAPI document (schemathesis), in-process, on a seeded database.

Three callers: nobody (no token), a viewer and an admin. Every operation that needs a role above
the caller's answers 401 (no token) or 403 (too low a role) — never 2xx, never 5xx — so no write
succeeds without the right role. The admin gets no 5xx from any operation, and answers that
match the documented status codes, content types and response schemas.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import sessionmaker

from api import security
from api.app import create_app
from api.config import ApiConfig
from api.roles import Role
from inventory.db import make_engine, make_session_factory
from tests.api.monitoring_support import in_memory_view
from tests.api.support import FAST_HASHER, Users, seed
from tests.harness.postgres import PostgresServer
from tiandi.migrate import upgrade

# Bounded so the whole API suite stays within two minutes on two cores.
_CONFIG: dict[str, Any] = {
    "seed": 20261130,
    "generation": {"database": "none"},
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": False},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
}


# The schema is read at import time, so the app is built here once and pointed at a database
# per backend below (``app.state`` is where ``create_app`` keeps the session factory).
CONFIG = ApiConfig(secret_key=secrets.token_urlsafe(48))
# Subsystems that run beside the API get in-memory fakes here: without one their routes rightly
# answer 503, which the admin's no-5xx check would (and should) report.
APP = create_app(sessionmaker(), CONFIG, monitoring=in_memory_view())


def _schema(mode: str, max_examples: int) -> Any:
    generation = {**_CONFIG["generation"], "mode": mode, "max-examples": max_examples}
    config = schemathesis.Config.from_dict({**_CONFIG, "generation": generation})
    return schemathesis.openapi.from_asgi("/openapi.json", APP, config=config)


def _needs(operation: Any) -> Role | None:
    role = operation.definition.raw.get("x-required-role")
    return Role(role) if role else None


def _beyond(role: Role | None) -> Any:
    """Only the operations that need more than ``role`` (None: nobody)."""

    def match(ctx: Any) -> bool:
        needed = _needs(ctx.operation)
        return needed is not None and (role is None or not role.allows(needed))

    return match


# Callers without the role get a few positive examples per operation (a body that is not even
# JSON is rejected, 422, before authentication is looked at); the admin gets more, of any kind.
anonymous = _schema("positive", 5).include(_beyond(None))
as_viewer = _schema("positive", 5).include(_beyond(Role.VIEWER))
as_admin = _schema("all", 8)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def callers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Role, dict[str, str]]]:
    """One seeded database per backend for the whole module (a database per operation would
    cost more than the fuzzing); returns the headers of a viewer and an admin."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'tiandi.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(security, "_hasher", FAST_HASHER)
            seed(factory)
            users = Users(factory, CONFIG)
            APP.state.session_factory = factory
            yield {role: users.as_role(role) for role in (Role.VIEWER, Role.ADMIN)}
    finally:
        APP.state.session_factory = sessionmaker()
        engine.dispose()
        if request.param == "postgresql":
            server.drop_database(url)


# The database is shared by all examples and operations, on purpose: the fuzzer builds on what
# earlier examples created (and deleted).
_SETTINGS = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ]
)


@anonymous.parametrize()  # type: ignore[untyped-decorator]
@_SETTINGS
def test_without_a_token_only_public_routes_answer(case: Any, callers: Any) -> None:
    response = case.call()
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"][0].startswith("Bearer")


@as_viewer.parametrize()  # type: ignore[untyped-decorator]
@_SETTINGS
def test_a_viewer_cannot_do_what_needs_more(case: Any, callers: Any) -> None:
    response = case.call(headers=callers[Role.VIEWER])
    assert response.status_code == 403, response.text
    assert f"needs role {_needs(case.operation)}" in response.json()["detail"]


@as_admin.parametrize()  # type: ignore[untyped-decorator]
@_SETTINGS
def test_an_admin_gets_no_server_error_and_documented_answers(case: Any, callers: Any) -> None:
    response = case.call(headers=callers[Role.ADMIN])
    # This app runs no failover engine, so the routes that act through it answer their
    # documented 503; their behaviour with a running engine is tested in
    # tests/controllers/test_failover_api.py. Everything before the engine (auth, body and
    # parameter validation) is still fuzzed here.
    if (
        case.operation.path.startswith(("/failover", "/approvals"))
        and response.status_code == 503
        and "failover engine is not running" in response.text
    ):
        return
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
