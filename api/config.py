"""What the API needs from the composition root, handed to ``create_app`` as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass, field

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """API settings. ``secret_key`` signs access tokens and never appears in ``repr``."""

    secret_key: str = field(repr=False)
    access_token_minutes: int = 30
    max_body_bytes: int = MIB  # POST /inventory/import has its own, larger limit
    version: str = "0.1.0"
    account_cache_seconds: float = 5.0
    """How long a user's or API token's row is used before it is read again: a change made
    outside this process (``tiandi users disable``) holds within it (``api.account_cache``)."""

    def __post_init__(self) -> None:
        if len(self.secret_key) < 32:
            raise ValueError(
                "the token signing key must be at least 32 characters; set TIANDI_SECRET_KEY "
                "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if not 1 <= self.access_token_minutes <= 24 * 60:
            raise ValueError("access_token_minutes must be between 1 and 1440")
        if not 0 <= self.account_cache_seconds <= 60:
            raise ValueError("account_cache_seconds must be between 0 (no cache) and 60")
