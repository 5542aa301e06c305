"""Request dependencies as ``Annotated`` aliases: the session, the config, who is asking, and roles.

Every route states the role it needs through :func:`require` (see :func:`role_router`); the app
refuses to start if a route outside :data:`PUBLIC_PATHS` has none.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api import accounts, security
from api.account_cache import AccountCache, ApiTokenRow, UserRow, VerifiedToken
from api.config import ApiConfig
from api.errors import Forbidden, NotAuthenticated, responses
from api.roles import Role

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/auth/token"})
"""Routes anyone may call; every other route needs a role."""

REQUIRED_ROLE_ATTR = "__tiandi_required_role__"


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        event.listen(session, "after_commit", request.app.state.forget_cached)
        yield session


def forget_cached(app: Any) -> Callable[[Session], None]:
    """What runs after every commit through :data:`SessionDep`: whatever this process changed
    (a user, an API token, the inventory) holds from the next request on, not after the caches'
    time limits (see :mod:`api.account_cache`, :mod:`api.inventory_index`)."""

    def forget(_: Session) -> None:
        app.state.account_cache.clear()
        app.state.inventory_index.invalidate()

    return forget


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
    """Who is asking, with the role they hold now (from the database, through the
    :class:`~api.account_cache.AccountCache`: at most a few seconds old)."""

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


def _read_api_token(factory: sessionmaker[Session], token: str) -> ApiTokenRow | None:
    with factory() as session:
        row = accounts.find_api_token(session, token)
        if row is None:
            return None
        owner = row.owner
        return ApiTokenRow(
            id=row.id,
            name=row.name,
            role=row.role,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            owner=UserRow(owner.username, owner.role, owner.disabled),
        )


def _read_user(factory: sessionmaker[Session], username: str) -> UserRow | None:
    with factory() as session:
        found = session.execute(
            select(accounts.User.username, accounts.User.role, accounts.User.disabled).where(
                accounts.User.username == username
            )
        ).first()
    return UserRow(found[0], found[1], found[2]) if found is not None else None


async def _from_api_token(
    cache: AccountCache, factory: sessionmaker[Session], token: str
) -> Principal:
    key = ("api_token", security.api_token_digest(token))
    row = cache.get(key)
    if row is None:
        row = await run_in_threadpool(
            cache.load, key, functools.partial(_read_api_token, factory, token)
        )
        if row is None:
            raise NotAuthenticated("unknown API token")
    assert isinstance(row, ApiTokenRow)
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


def _verify(cache: AccountCache, token: str, key: str) -> str:
    """The user an access token names: its signature is checked once, then cached."""
    cached = ("access_token", hashlib.sha256(token.encode("utf-8")).hexdigest())
    hit = cache.get(cached)
    if isinstance(hit, VerifiedToken) and time.time() < hit.expires_at:
        return hit.username
    generation = cache.generation()
    try:
        username, expires_at = security.verify_access_token(token, key=key)
    except security.TokenInvalid as err:
        raise NotAuthenticated(str(err)) from err
    cache.put(cached, VerifiedToken(username, expires_at), generation)
    return username


async def _from_access_token(
    cache: AccountCache, factory: sessionmaker[Session], token: str, key: str
) -> Principal:
    username = _verify(cache, token, key)
    cached = ("user", username)
    user = cache.get(cached)
    if user is None:
        user = await run_in_threadpool(
            cache.load, cached, functools.partial(_read_user, factory, username)
        )
        if user is None:
            raise NotAuthenticated(f"the access token names user {username!r}, who does not exist")
    assert isinstance(user, UserRow)
    if user.disabled:
        raise NotAuthenticated(f"user {username!r} is disabled")
    return Principal(username=user.username, role=user.role, user_role=user.role)


async def current_principal(
    request: Request,
    _password: Annotated[str | None, Depends(_password_flow)],
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_token)],
) -> Principal:
    # async: the signature check is cheap and the user row comes from the AccountCache; the
    # database is read (in a worker thread) only when the row is not cached
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
    state = request.app.state
    cache: AccountCache = state.account_cache
    factory: sessionmaker[Session] = state.session_factory
    cache.read_from(factory)
    if token.startswith(security.API_TOKEN_PREFIX):
        return await _from_api_token(cache, factory, token)
    config: ApiConfig = state.config
    return await _from_access_token(cache, factory, token, config.secret_key)


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
