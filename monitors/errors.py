"""Errors of the monitoring package: metric writes and reads, later polling and probing.

Every class derives from :class:`inventory.errors.TiandiError`; the message says what was wrong and
what to do about it, and the attributes carry what a caller needs to decide (retry or not, when).
"""

from __future__ import annotations

from inventory.errors import TiandiError


class MetricsError(TiandiError):
    """A metric store (InfluxDB, the embedded store) could not do what was asked."""


class MetricsWriteError(MetricsError):
    """A batch of points was not stored.

    ``retryable`` is False for an answer that can never succeed as sent (bad line protocol, an
    unknown database, refused credentials, a batch too large): the spool moves such a batch to its
    dead-letter segment instead of retrying it forever. ``retry_after`` (seconds) is set when the
    server said how long to wait (HTTP ``Retry-After`` on 429/503).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class MetricsQueryError(MetricsError):
    """A metric series could not be read: a bad or too large query, or the store failed."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
