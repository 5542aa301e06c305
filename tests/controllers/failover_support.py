"""Helpers for the failover tests: a generated inventory in the database, a fake router side,
health reports, and an engine running on its own loop in a thread (for API tests).

``FakeRouter`` satisfies ``controllers.failover.control.RouterControl`` (habit 13: a fake that
keeps the Protocol, not a mock); the lab tests use the real drivers instead.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api import security
from api.app import create_app
from api.config import ApiConfig
from api.roles import Role
from controllers.failover.approvals import ApprovalRules
from controllers.failover.control import ChangeResult, RouteReading
from controllers.failover.engine import EngineConfig, FailoverEngine
from controllers.failover.service import FailoverService
from inventory.document import InventoryDoc
from inventory.generator import generate
from inventory.store import apply_document
from monitors.linkstate import Health, LinkHealthReport, LinkQuality
from tests.api.support import FAST_HASHER, Users

T = TypeVar("T")


def small_network(counties: int = 4) -> InventoryDoc:
    """Ministry, two provinces and ``counties`` counties (seeded: the same every time)."""
    return generate(provinces=2, counties=counties, seed=1)


def seed(session_factory: sessionmaker[Session], doc: InventoryDoc) -> None:
    with session_factory() as session, session.begin():
        apply_document(session, doc)


def links_of(doc: InventoryDoc, site: str) -> list[str]:
    """The site's link names, primary first."""
    s = next(x for x in doc.sites if x.name == site)
    order = {"primary": 0, "backup": 1, "satellite": 2}
    return [lk.name for lk in sorted(s.links, key=lambda lk: order[lk.role.value])]


def counties(doc: InventoryDoc) -> list[str]:
    return [s.name for s in doc.sites if s.tier.value == "county"]


def provinces(doc: InventoryDoc) -> list[str]:
    return [s.name for s in doc.sites if s.tier.value == "province"]


class FakeClock:
    def __init__(self, t: float = 10_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def report(
    site: str, link: str, health: Health, at: float, since: float | None = None
) -> LinkHealthReport:
    loss = {Health.UP: 0.0, Health.DEGRADED: 8.0, Health.DOWN: 100.0}.get(health)
    return LinkHealthReport(
        link=link,
        site=site,
        health=health,
        since=at if since is None else since,
        at=at,
        quality=None if loss is None else LinkQuality(loss, 25.0, 2.0, 10),
        interface_up=health is not Health.DOWN,
        reason=f"test: {health.value}",
    )


@dataclass
class FakeRouter:
    """The router side in memory. ``fail``: target link -> error (verification fails, rolled
    back);
    ``hang``: sites whose move applies the change and then never returns (a crash mid-change);
    ``unreadable``: sites whose routers cannot be read."""

    current: dict[str, str | None] = field(default_factory=dict)
    fail: dict[str, str] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    unreadable: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    moves: list[tuple[str, str | None, str]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    @classmethod
    def on_primary(cls, doc: InventoryDoc) -> FakeRouter:
        return cls({s.name: links_of(doc, s.name)[0] for s in doc.sites if s.links})

    async def current_link(self, site: str) -> RouteReading:
        self.reads.append(site)
        if site in self.unreadable:
            return RouteReading(False, None, f"{site}-r1: unreachable (test)")
        link = self.current.get(site)
        return RouteReading(True, link, f"{site}-r1: gateway of {link} (test)")

    async def move(self, site: str, from_link: str | None, to_link: str) -> ChangeResult:
        self.moves.append((site, from_link, to_link))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            commands = (f"{site}-r1: ip route 0.0.0.0 0.0.0.0 <{to_link}> 1",)
            if site in self.hang:
                self.current[site] = to_link
                await asyncio.Event().wait()  # never returns: the process "dies" here
            error = self.fail.get(to_link)
            if error is not None:
                return ChangeResult(
                    False,
                    self.current.get(site),
                    True,
                    (*commands, f"{site}-r1: no ip route 0.0.0.0 0.0.0.0 <{to_link}>"),
                    f"verification failed: {error}; rolled back",
                    rolled_back=True,
                    error=error,
                )
            self.current[site] = to_link
            return ChangeResult(True, to_link, True, commands, f"default route via {to_link}")
        finally:
            self.in_flight -= 1


class EngineThread:
    """An event loop in a thread, for running an engine beside a synchronous TestClient."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        async def go() -> Any:
            return fn(*args)

        return self.run(go())

    def start(self, engine: FailoverEngine) -> FailoverEngine:
        self.run(engine.start())
        return engine

    def close(self, engine: FailoverEngine | None = None) -> None:
        if engine is not None:
            self.run(engine.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


# ---- the API with a running engine --------------------------------------------------------


class WallClock:
    """The engine's wall clock, which tests may move forward (approval expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Stack:
    client: TestClient
    users: Users
    engine: FailoverEngine
    router: FakeRouter
    thread: EngineThread
    wall: WallClock
    doc: InventoryDoc
    known: set[str] = field(default_factory=set)

    def headers(self, name: str, role: Role = Role.OPERATOR) -> dict[str, str]:
        """Headers of user ``name`` (created with ``role`` on first use)."""
        if name not in self.known:
            self.users.add(name, role)
            self.known.add(name)
        return self.users.headers(name)

    def on_engine(self, fn: Any, *args: Any) -> Any:
        return self.thread.call(fn, *args)


@contextmanager
def api_stack(
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    *,
    max_sites: int = 3,
    counties: int = 8,
) -> Iterator[Stack]:
    """The real app on the database, with a running engine (fake router side), every link up."""
    monkeypatch.setattr(security, "_hasher", FAST_HASHER)
    security._dummy_hash.cache_clear()
    doc = small_network(counties=counties)
    seed(session_factory, doc)
    router = FakeRouter.on_primary(doc)
    wall = WallClock()
    thread = EngineThread()
    engine = FailoverEngine(
        session_factory, router, config=EngineConfig(max_concurrency=4, tick_s=0.05), wall=wall
    )
    thread.start(engine)
    thread.run(engine.idle())
    now = time.monotonic()
    thread.call(
        engine.observe_many,
        [
            report(s.name, lk.name, Health.UP, now, since=now - 10_000)
            for s in doc.sites
            for lk in s.links
        ],
    )
    config = ApiConfig(secret_key=secrets.token_urlsafe(48))
    service = FailoverService(engine, session_factory, ApprovalRules(max_sites=max_sites))
    app = create_app(session_factory, config, failover=service)
    users = Users(session_factory, config)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Stack(client, users, engine, router, thread, wall, doc)
    finally:
        thread.close(engine)
        security._dummy_hash.cache_clear()
