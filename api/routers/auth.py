"""`/auth`: log in for an access token, who am I, own password, API tokens."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Path, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from api import accounts, security
from api.accounts import ApiToken, User
from api.deps import (
    ConfigDep,
    SessionDep,
    ViewerDep,
    public_router,
    role_router,
)
from api.errors import Forbidden, NotAuthenticated, responses
from api.listing import DEFAULTS, LimitQuery, OffsetQuery
from api.login_throttle import LoginThrottle, TooManyLogins
from api.roles import Role
from api.schemas import (
    AccessTokenOut,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenOut,
    Me,
    Page,
    PasswordChange,
)
from inventory.errors import NotFound

log = logging.getLogger(__name__)

TokenId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the token's id")]

public = public_router(prefix="/auth", tag="auth")
router = role_router(prefix="/auth", tag="auth", role=Role.VIEWER)


@public.post(
    "/token",
    summary="Log in",
    response_model=AccessTokenOut,
    responses=responses(401, 413, 422, 429),
)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    config: ConfigDep,
    request: Request,
    response: Response,
) -> AccessTokenOut:
    """OAuth2 password flow: user name and password in, a short-lived bearer token out.
    A wrong password and an unknown user get the same answer. After 5 failures for one user
    name from one address (or 20 from one address) within 5 minutes, attempts are refused with
    429 before the password is checked, until the oldest failure is 5 minutes old."""
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client is not None else "unknown"
    try:
        throttle.check(form.username, client)
    except TooManyLogins:
        log.warning("login refused for %r from %s: too many failures", form.username, client)
        raise
    try:
        user = accounts.authenticate(session, form.username, form.password)
    except accounts.LoginFailed as err:
        throttle.failed(form.username, client)
        log.info("login failed for %r from %s", form.username, client)
        raise NotAuthenticated(str(err), token_given=False) from err
    throttle.succeeded(form.username, client)
    if user.disabled:
        raise NotAuthenticated(f"user {user.username!r} is disabled", token_given=False)
    session.commit()  # a password hash upgraded on login
    token = security.issue_access_token(
        user.username, key=config.secret_key, minutes=config.access_token_minutes
    )
    log.info("login %r", user.username)
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 5.1: never cache a token
    return AccessTokenOut(
        access_token=token.token,
        expires_in=config.access_token_minutes * 60,
        expires_at=token.expires_at,
    )


@router.get("/me", summary="Who am I", response_model=Me)
def me(who: ViewerDep) -> Me:
    """The user behind the token, the role in effect and the user's own role."""
    return Me(
        username=who.username, role=who.role, user_role=who.user_role, api_token=who.token_name
    )


@router.post(
    "/password",
    status_code=204,
    response_class=Response,
    summary="Change my password",
    responses=responses(413, 422),
)
def change_password(body: PasswordChange, session: SessionDep, who: ViewerDep) -> None:
    """Needs the current password; tokens already issued stay valid until they expire."""
    user = accounts.get_user(session, who.username)
    if not security.verify_password(user.password_hash, body.current_password.get_secret_value()):
        raise Forbidden("the current password is not correct")
    accounts.set_password(
        session, user, password=body.new_password.get_secret_value(), actor=who.actor
    )
    session.commit()


def _token_out(row: ApiToken) -> ApiTokenOut:
    return ApiTokenOut(
        id=row.id,
        name=row.name,
        owner=row.owner.username,
        role=row.role,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


@router.post(
    "/api-tokens",
    status_code=201,
    summary="Create an API token",
    response_model=ApiTokenCreated,
    responses=responses(409, 413, 422),
)
def create_api_token(
    body: ApiTokenCreate, session: SessionDep, who: ViewerDep, response: Response
) -> ApiTokenCreated:
    """A token for automation, capped at a role no higher than yours; shown once, stored hashed.
    Needs a password login: an API token cannot create further API tokens."""
    if who.via_api_token:
        raise Forbidden("API tokens cannot create API tokens; log in with your password")
    role = body.role or who.role
    if not who.role.allows(role):
        raise Forbidden(f"a token can be capped at most at your own role {who.role}, not {role}")
    owner = accounts.get_user(session, who.username)
    row, token = accounts.create_api_token(
        session, owner=owner, name=body.name, role=role, expires_at=body.expires_at, actor=who.actor
    )
    session.commit()
    response.headers["Cache-Control"] = "no-store"
    return ApiTokenCreated(**_token_out(row).model_dump(), token=token)


@router.get(
    "/api-tokens",
    summary="List API tokens",
    response_model=Page[ApiTokenOut],
    responses=responses(422),
)
def list_api_tokens(
    session: SessionDep,
    who: ViewerDep,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[ApiTokenOut]:
    """Your tokens (an admin sees everyone's), newest first; never the tokens themselves."""
    where = [] if who.role is Role.ADMIN else [User.username == who.username]
    total = session.scalar(select(func.count()).select_from(ApiToken).join(User).where(*where))
    rows = session.scalars(
        select(ApiToken)
        .join(User)
        .where(*where)
        .options(selectinload(ApiToken.owner))
        .order_by(ApiToken.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page[ApiTokenOut](
        items=[_token_out(r) for r in rows], total=total or 0, limit=limit, offset=offset
    )


@router.delete(
    "/api-tokens/{token_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API token",
    responses=responses(404, 422),
)
def revoke_api_token(token_id: TokenId, session: SessionDep, who: ViewerDep) -> None:
    """Your own token (an admin: anyone's); it stops working at once. Revoking twice is fine."""
    row = session.get(ApiToken, token_id)
    if row is None or (who.role is not Role.ADMIN and row.owner.username != who.username):
        raise NotFound(f"no API token {token_id} of yours")
    accounts.revoke_api_token(session, row, actor=who.actor)
    session.commit()
