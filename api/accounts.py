"""API users and API tokens: the tables, and every change to them (each one audited).

The API routers and the ``tiandi users`` command both go through these functions, so the rules
(one enabled admin at least, no password or token in the audit trail) hold whichever door is used.
Passwords are stored as argon2id hashes, API tokens as SHA-256 digests; neither appears in a repr,
a log line or an audit record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Enum, ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from api import security
from api.roles import Role
from controllers import audit
from controllers.audit import UTCDateTime
from inventory.errors import Conflict, NotFound, TiandiError
from inventory.model import Base

USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{1,63}$"

_role_type = Enum(
    Role,
    native_enum=False,
    create_constraint=False,
    length=16,
    values_callable=lambda e: [m.value for m in e],
)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_role_type)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="owner", order_by="ApiToken.id")

    def __repr__(self) -> str:
        return f"User(username={self.username!r}, role={self.role!s}, disabled={self.disabled})"

    def public(self) -> dict[str, Any]:
        """What the audit trail records about a user: never the password hash."""
        return {"username": self.username, "role": str(self.role), "disabled": self.disabled}


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_role_type)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    owner: Mapped[User] = relationship(back_populates="tokens")

    def __repr__(self) -> str:
        return f"ApiToken(id={self.id}, name={self.name!r}, role={self.role!s}, token=REDACTED)"

    def public(self) -> dict[str, Any]:
        """What the audit trail records about a token: never the token or its digest."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner.username,
            "role": str(self.role),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class LoginFailed(TiandiError):
    """Wrong user name or password (deliberately not saying which)."""


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}; `tiandi users list` shows them")
    return user


def _enabled_admins(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(User).where(User.role == Role.ADMIN, ~User.disabled)
        )
        or 0
    )


def _keep_an_admin(session: Session, user: User, *, role: Role, disabled: bool) -> None:
    was_admin = user.role is Role.ADMIN and not user.disabled
    stays_admin = role is Role.ADMIN and not disabled
    if was_admin and not stays_admin and _enabled_admins(session) <= 1:
        raise Conflict(
            f"{user.username!r} is the only enabled admin; make another user admin first, "
            "or nobody could manage users any more"
        )


def create_user(
    session: Session, *, username: str, role: Role, password: str | None, actor: str
) -> tuple[User, str | None]:
    """Add a user. Without a password one is generated and returned (to show once)."""
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"a user named {username!r} already exists")
    generated = security.generate_password() if password is None else None
    secret = password if password is not None else generated
    assert secret is not None
    if len(secret) < security.PASSWORD_MIN_LENGTH:
        raise TiandiError(
            f"a password needs at least {security.PASSWORD_MIN_LENGTH} characters; "
            "or leave it out to have one generated"
        )
    user = User(
        username=username,
        password_hash=security.hash_password(secret),
        role=role,
        disabled=False,
        created_at=datetime.now(UTC),
    )
    session.add(user)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="user.create",
        target_type="user",
        target=username,
        before=None,
        after=user.public(),
    )
    return user, generated


def update_user(
    session: Session,
    user: User,
    *,
    actor: str,
    role: Role | None = None,
    disabled: bool | None = None,
) -> User:
    """Change a user's role and/or disable or enable them. Through the API this takes effect on
    their next request; made elsewhere (the CLI), within ``ApiConfig.account_cache_seconds``
    (``api.account_cache``)."""
    new_role = user.role if role is None else role
    new_disabled = user.disabled if disabled is None else disabled
    if (new_role, new_disabled) == (user.role, user.disabled):
        return user
    audit.lock_chain(session)  # serializes the "last admin" check with other account changes
    _keep_an_admin(session, user, role=new_role, disabled=new_disabled)
    before = user.public()
    user.role, user.disabled = new_role, new_disabled
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="user.update",
        target_type="user",
        target=user.username,
        before=before,
        after=user.public(),
    )
    return user


def set_password(session: Session, user: User, *, password: str | None, actor: str) -> str | None:
    """Replace a user's password; without one a new one is generated and returned."""
    generated = security.generate_password() if password is None else None
    secret = password if password is not None else generated
    assert secret is not None
    if len(secret) < security.PASSWORD_MIN_LENGTH:
        raise TiandiError(f"a password needs at least {security.PASSWORD_MIN_LENGTH} characters")
    user.password_hash = security.hash_password(secret)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="user.password",
        target_type="user",
        target=user.username,
        before=None,
        after={"username": user.username, "password": "changed"},
    )
    return generated


def authenticate(session: Session, username: str, password: str) -> User:
    """The user whose password this is; LoginFailed otherwise, taking the same time either way."""
    user = session.scalar(select(User).where(User.username == username))
    if not security.verify_password(user.password_hash if user else None, password):
        raise LoginFailed("incorrect user name or password")
    assert user is not None
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    return user


def create_api_token(
    session: Session,
    *,
    owner: User,
    name: str,
    role: Role,
    expires_at: datetime | None,
    actor: str,
) -> tuple[ApiToken, str]:
    """A new API token for ``owner``; returns the row and the token, which is never stored."""
    clash = select(ApiToken.id).where(
        ApiToken.owner_id == owner.id, ApiToken.name == name, ApiToken.revoked_at.is_(None)
    )
    if session.scalar(clash) is not None:
        raise Conflict(f"you already have an API token named {name!r}; revoke it or pick another")
    token, digest = security.new_api_token()
    row = ApiToken(
        name=name,
        owner=owner,
        token_hash=digest,
        role=role,
        created_at=datetime.now(UTC),
        expires_at=expires_at.astimezone(UTC) if expires_at else None,
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="api_token.create",
        target_type="api_token",
        target=f"{owner.username}/{name}",
        before=None,
        after=row.public(),
    )
    return row, token


def revoke_api_token(session: Session, row: ApiToken, *, actor: str) -> None:
    if row.revoked_at is not None:
        return
    before = row.public()
    row.revoked_at = datetime.now(UTC)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="api_token.revoke",
        target_type="api_token",
        target=f"{row.owner.username}/{row.name}",
        before=before,
        after=row.public(),
    )


def find_api_token(session: Session, token: str) -> ApiToken | None:
    return session.scalar(
        select(ApiToken).where(ApiToken.token_hash == security.api_token_digest(token))
    )
