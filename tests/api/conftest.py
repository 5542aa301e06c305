"""The API under test: the real app on a real, migrated database (SQLite and PostgreSQL).

``database_url`` / ``session_factory`` come from ``tests/conftest.py``; helpers are in
``tests/api/support.py``. Password hashing uses cheap argon2 parameters here (see support).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api import security
from api.app import create_app
from api.config import ApiConfig
from api.roles import Role
from tests.api.support import FAST_HASHER, Users, seed


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(security, "_hasher", FAST_HASHER)
    security._dummy_hash.cache_clear()
    yield
    security._dummy_hash.cache_clear()


@pytest.fixture
def api_config() -> ApiConfig:
    return ApiConfig(secret_key=secrets.token_urlsafe(48), access_token_minutes=30)


@pytest.fixture
def bare_client(api_config: ApiConfig) -> Iterator[TestClient]:
    """The app without any database, for what must be answered before one is asked."""
    with TestClient(create_app(sessionmaker(), api_config), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def app(session_factory: sessionmaker[Session], api_config: ApiConfig) -> FastAPI:
    return create_app(session_factory, api_config)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # Server errors come back as responses, as a real client would see them.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def users(session_factory: sessionmaker[Session], api_config: ApiConfig) -> Users:
    return Users(session_factory, api_config)


@pytest.fixture
def admin(users: Users) -> dict[str, str]:
    return users.as_role(Role.ADMIN)


@pytest.fixture
def operator(users: Users) -> dict[str, str]:
    return users.as_role(Role.OPERATOR)


@pytest.fixture
def viewer(users: Users) -> dict[str, str]:
    return users.as_role(Role.VIEWER)


@pytest.fixture
def seeded(session_factory: sessionmaker[Session]) -> dict[str, Any]:
    """The small sample inventory, in the database; returns the raw document."""
    return seed(session_factory)
