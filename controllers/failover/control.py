"""What the failover engine needs from the routers: a small contract, implemented elsewhere.

:class:`RouterControl` reads which link carries a site's default route and moves it to another
link — verifying the result and rolling back on failure *itself*. A failure on a device is data
(:class:`ChangeResult` / :class:`RouteReading` with ``ok=False``), never an exception that stops
the engine. ``controllers.failover.drivers_adapter`` implements it over the SSH drivers of
``controllers.drivers``; tests implement it with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RouteReading:
    """Which link carries the site's default route, as read from its router(s)."""

    ok: bool  # False: the routers could not be read; ``link`` means nothing then
    link: str | None  # None with ok=True: the site has no usable default route
    detail: str  # what was read, e.g. "gd-r1: S* 0.0.0.0/0 [1/0] via 127.64.0.2"


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """The outcome of moving a site's default route, verified by reading it back."""

    ok: bool  # True: the route is on the target link and the read-back says so
    link: str | None  # the link carrying the default route afterwards, as read back
    known: bool  # False: even the state afterwards could not be read
    commands: tuple[str, ...]  # every configuration line sent, in order (no secrets)
    verification: str  # the read-back, in words
    rolled_back: bool = False  # the change was undone (verification failed, error, timeout)
    error: str | None = None
    duration_s: float = 0.0


class RouterControl(Protocol):
    """The router side of failover. Implementations serialize changes per device themselves."""

    async def current_link(self, site: str) -> RouteReading:
        """Read which link the site's default route uses now."""
        ...

    async def move(self, site: str, from_link: str | None, to_link: str) -> ChangeResult:
        """Move the site's default route from ``from_link`` to ``to_link``, verify it by
        reading back, and roll back to the previous state if that fails or times out."""
        ...
