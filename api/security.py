"""Passwords (argon2id), signed access tokens (JWT, HS256) and API tokens (random, stored hashed).

Nothing here touches the database; :mod:`api.accounts` and :mod:`api.deps` do.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from inventory.errors import TiandiError

API_TOKEN_PREFIX = "tdk_"
"""API tokens start with this, so they are told apart from access tokens (and found by scanners)."""

PASSWORD_MIN_LENGTH = 12
_ISSUER = "tiandi"
_hasher = PasswordHasher()


TOKEN_EXPIRED = "the access token has expired; log in again"


class TokenInvalid(TiandiError):
    """An access token cannot be used; the message says why (expired, bad signature...)."""


# ---- passwords ---------------------------------------------------------------------------------


def generate_password() -> str:
    """A random password of 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check a password; with no stored hash (unknown user) spend the same time and say no."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)


# ---- access tokens (JWT) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"AccessToken(token=REDACTED, expires_at={self.expires_at.isoformat()})"


def issue_access_token(
    username: str, *, key: str, minutes: int, now: datetime | None = None
) -> AccessToken:
    """A signed token naming the user; the role is deliberately not in it (it is re-read)."""
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    expires = issued + timedelta(minutes=minutes)
    claims = {"sub": username, "iat": issued, "exp": expires, "iss": _ISSUER}
    return AccessToken(jwt.encode(claims, key, algorithm="HS256"), expires)


def read_access_token(token: str, *, key: str) -> str:
    """The user name a valid token was issued to; TokenInvalid says what is wrong otherwise."""
    return verify_access_token(token, key=key)[0]


def verify_access_token(token: str, *, key: str) -> tuple[str, float]:
    """(user name, expiry as epoch seconds) of a valid token; TokenInvalid otherwise. The token
    stays valid while ``time.time() < expiry`` (as PyJWT checks ``exp``, without leeway)."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            issuer=_ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError as err:
        raise TokenInvalid(TOKEN_EXPIRED) from err
    except jwt.InvalidSignatureError as err:
        raise TokenInvalid("the access token's signature is invalid") from err
    except jwt.DecodeError as err:
        raise TokenInvalid("the bearer token is malformed (not a Tiandi token)") from err
    except jwt.InvalidTokenError as err:
        raise TokenInvalid(f"the access token is invalid: {err}") from err
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise TokenInvalid("the access token names no user")
    return subject, float(claims["exp"])


# ---- API tokens --------------------------------------------------------------------------------


def new_api_token() -> tuple[str, str]:
    """A fresh API token and the digest to store; the token itself is shown once, never kept."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, api_token_digest(token)


def api_token_digest(token: str) -> str:
    """SHA-256 of an API token (a long random token needs no slow hash)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
