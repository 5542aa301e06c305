"""Helpers shared by the API tests (fixtures live in ``conftest.py``)."""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker

from api import accounts, security
from api.config import ApiConfig
from api.roles import Role
from inventory.store import apply_document
from inventory.validation import validate_or_raise
from tests.harness.samples import small_inventory

PASSWORD = "correct-horse-battery"
# The production parameters cost ~0.4 s per hash on a CI core, which would dominate the suite
# without testing anything more; a test pins the production parameters instead.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PRODUCTION_HASHER = security._hasher


class Users:
    """Creates users straight in the database and mints their access tokens."""

    def __init__(self, session_factory: sessionmaker[Session], config: ApiConfig) -> None:
        self.session_factory = session_factory
        self.config = config
        self._by_role: dict[Role, str] = {}

    def add(
        self,
        name: str,
        role: Role = Role.VIEWER,
        *,
        password: str = PASSWORD,
        disabled: bool = False,
    ) -> str:
        with self.session_factory() as session, session.begin():
            user, _ = accounts.create_user(
                session, username=name, role=role, password=password, actor="test"
            )
            if disabled:
                user.disabled = True
        return name

    def token(self, name: str, **kwargs: Any) -> str:
        minutes = kwargs.pop("minutes", self.config.access_token_minutes)
        issued = security.issue_access_token(
            name, key=self.config.secret_key, minutes=minutes, **kwargs
        )
        return issued.token

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(name)}"}

    def as_role(self, role: Role) -> dict[str, str]:
        """Headers of a user holding ``role`` (created on first use)."""
        if role not in self._by_role:
            self._by_role[role] = self.add(f"{role}1", role)
        return self.headers(self._by_role[role])


def seed(session_factory: sessionmaker[Session]) -> dict[str, Any]:
    """Put the small sample inventory in the database; returns the raw document."""
    raw = small_inventory()
    with session_factory() as session, session.begin():
        apply_document(session, validate_or_raise(raw))
    return raw
