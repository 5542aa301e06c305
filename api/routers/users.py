"""`/users`: who may use the API, with which role (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response
from sqlalchemy import func, select

from api import accounts
from api.accounts import User
from api.deps import AdminDep, SessionDep, role_router
from api.errors import responses
from api.listing import DEFAULTS, LimitQuery, OffsetQuery
from api.roles import Role
from api.schemas import NewPassword, Page, UserCreate, UserCreated, UserOut, UserUpdate

router = role_router(prefix="/users", tag="users", role=Role.ADMIN)

UsernamePath = Annotated[str, Path(max_length=64, description="the user name")]


def _out(user: User) -> UserOut:
    return UserOut(
        username=user.username, role=user.role, disabled=user.disabled, created_at=user.created_at
    )


@router.get("", summary="List users", response_model=Page[UserOut], responses=responses(422))
def list_users(
    session: SessionDep,
    role: Role | None = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[UserOut]:
    where = [] if role is None else [User.role == role]
    total = session.scalar(select(func.count()).select_from(User).where(*where))
    rows = session.scalars(
        select(User).where(*where).order_by(User.username).limit(limit).offset(offset)
    )
    return Page[UserOut](
        items=[_out(u) for u in rows], total=total or 0, limit=limit, offset=offset
    )


@router.get(
    "/{username}", summary="Get a user", response_model=UserOut, responses=responses(404, 422)
)
def get_user(username: UsernamePath, session: SessionDep) -> UserOut:
    return _out(accounts.get_user(session, username))


@router.post(
    "",
    status_code=201,
    summary="Create a user",
    response_model=UserCreated,
    responses=responses(409, 413, 422),
)
def create_user(
    body: UserCreate, session: SessionDep, who: AdminDep, response: Response
) -> UserCreated:
    """Without a password, a random one is generated and returned this once."""
    password = body.password.get_secret_value() if body.password else None
    user, generated = accounts.create_user(
        session, username=body.username, role=body.role, password=password, actor=who.actor
    )
    session.commit()
    response.headers["Cache-Control"] = "no-store"
    return UserCreated(user=_out(user), password=generated)


@router.patch(
    "/{username}",
    summary="Change a user's role or disable/enable them",
    response_model=UserOut,
    responses=responses(404, 409, 413, 422),
)
def update_user(
    username: UsernamePath, body: UserUpdate, session: SessionDep, who: AdminDep
) -> UserOut:
    """Takes effect on the user's next request, tokens included. The last enabled admin
    cannot be demoted or disabled (409)."""
    user = accounts.get_user(session, username)
    accounts.update_user(session, user, actor=who.actor, role=body.role, disabled=body.disabled)
    session.commit()
    return _out(user)


@router.post(
    "/{username}/password",
    summary="Reset a user's password",
    response_model=NewPassword,
    responses=responses(404, 422),
)
def reset_password(
    username: UsernamePath, session: SessionDep, who: AdminDep, response: Response
) -> NewPassword:
    """Sets a new random password and returns it this once."""
    user = accounts.get_user(session, username)
    generated = accounts.set_password(session, user, password=None, actor=who.actor)
    session.commit()
    assert generated is not None
    response.headers["Cache-Control"] = "no-store"
    return NewPassword(password=generated)
