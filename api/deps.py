"""Request dependencies as ``Annotated`` aliases: the session, the config, who is asking, and roles.

Every route states the role it needs through :func:`require` (see :func:`role_router`); the app
refuses to start if a route outside :data:`PUBLIC_PATHS` has none.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api import accounts, security
from api.config import ApiConfig
from api.errors import Forbidden, NotAuthenticated, responses
from api.roles import Role

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/auth/token"})
"""Routes anyone may call; every other route needs a role."""

REQUIRED_ROLE_ATTR = "__tiandi_required_role__"


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        yield session


async def get_config(request: Request) -> ApiConfig:
    # async: a pure attribute read must not cost a thread-pool hop on every request
    config: ApiConfig = request.app.state.config
    return config


SessionDep = Annotated[Session, Depends(get_session)]
ConfigDep = Annotated[ApiConfig, Depends(get_config)]

# Both schemes read the same ``Authorization: Bearer`` header; they are declared so the OpenAPI
# document offers the password login and shows that API tokens are accepted too.
_password_flow = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    scheme_name="accessToken",
    description="Log in with user name and password at POST /auth/token",
    auto_error=False,
)
_api_token = HTTPBearer(
    scheme_name="apiToken",
    description="An API token (tdk_...) created at POST /auth/api-tokens",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, with the role they hold right now (re-read from the database)."""

    username: str
    role: Role
    user_role: Role
    token_id: int | None = None
    token_name: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names them."""
        return f"{self.username}/token:{self.token_name}" if self.token_name else self.username

    @property
    def via_api_token(self) -> bool:
        return self.token_id is not None


def _from_api_token(session: Session, token: str) -> Principal:
    row = accounts.find_api_token(session, token)
    if row is None:
        raise NotAuthenticated("unknown API token")
    now = datetime.now(UTC)
    if row.revoked_at is not None:
        raise NotAuthenticated(
            f"API token {row.name!r} was revoked at {row.revoked_at:%Y-%m-%d %H:%M} UTC"
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise NotAuthenticated(
            f"API token {row.name!r} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC"
        )
    owner = row.owner
    if owner.disabled:
        raise NotAuthenticated(f"user {owner.username!r} is disabled")
    return Principal(
        username=owner.username,
        role=Role.lowest(owner.role, row.role),
        user_role=owner.role,
        token_id=row.id,
        token_name=row.name,
    )


def _from_access_token(session: Session, token: str, key: str) -> Principal:
    try:
        username = security.read_access_token(token, key=key)
    except security.TokenInvalid as err:
        raise NotAuthenticated(str(err)) from err
    user = session.scalar(select(accounts.User).where(accounts.User.username == username))
    if user is None:
        raise NotAuthenticated(f"the access token names user {username!r}, who does not exist")
    if user.disabled:
        raise NotAuthenticated(f"user {username!r} is disabled")
    return Principal(username=user.username, role=user.role, user_role=user.role)


def current_principal(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    _password: Annotated[str | None, Depends(_password_flow)],
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_token)],
) -> Principal:
    header = request.headers.get("Authorization")
    if not header:
        raise NotAuthenticated(
            "missing bearer token: send 'Authorization: Bearer <token>' with an access token "
            "from POST /auth/token or an API token",
            token_given=False,
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated(
            "the Authorization header must be 'Bearer <token>'", token_given=False
        )
    if token.startswith(security.API_TOKEN_PREFIX):
        return _from_api_token(session, token)
    return _from_access_token(session, token, config.secret_key)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


@functools.cache
def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """The dependency that admits holders of ``role`` or above (one function per role, so
    FastAPI runs it once per request however often a route mentions it)."""

    async def check(principal: PrincipalDep) -> Principal:  # pure: no thread-pool hop
        if not principal.role.allows(role):
            held = f"{principal.username!r} has role {principal.user_role}"
            if principal.role is not principal.user_role:
                held += f", capped at {principal.role} by API token {principal.token_name!r}"
            raise Forbidden(f"this needs role {role} or above; {held}")
        return principal

    check.__name__ = f"require_{role}"
    setattr(check, REQUIRED_ROLE_ATTR, role)
    return check


ViewerDep = Annotated[Principal, Depends(require(Role.VIEWER))]
OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]


def required_role(dependant: Dependant) -> Role | None:
    """The highest role any dependency in this tree requires, or None if none does."""
    found: list[Role] = []

    def walk(dep: Dependant) -> None:
        role = getattr(dep.call, REQUIRED_ROLE_ATTR, None)
        if isinstance(role, Role):
            found.append(role)
        for sub in dep.dependencies:
            walk(sub)

    walk(dependant)
    return max(found, key=lambda r: r.rank) if found else None


class _DocumentedRouter(APIRouter):
    """Writes the role each route needs into its OpenAPI description and ``x-required-role``."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        route = self.routes[-1]
        assert isinstance(route, APIRoute)
        role = required_role(route.dependant)
        if role is None:
            note = "**Role:** none (public)."
        else:
            note = f"**Role:** `{role}` or above."
            route.openapi_extra = {**(route.openapi_extra or {}), "x-required-role": str(role)}
        route.description = f"{note}\n\n{route.description or ''}".strip()


def role_router(*, prefix: str, tag: str, role: Role, **kwargs: Any) -> APIRouter:
    """A router whose every route needs at least ``role``; single routes may ask for more with
    ``AdminDep``/``OperatorDep`` parameters. The way routers are built in this package."""
    return _DocumentedRouter(
        prefix=prefix,
        tags=[tag],
        dependencies=[Depends(require(role))],
        responses=responses(401, 403),
        **kwargs,
    )


def public_router(*, prefix: str = "", tag: str, **kwargs: Any) -> APIRouter:
    """A router for the few routes anyone may call; their paths must be in PUBLIC_PATHS."""
    return _DocumentedRouter(prefix=prefix, tags=[tag], **kwargs)
