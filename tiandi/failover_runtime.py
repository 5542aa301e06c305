"""The failover engine as ``tiandi serve`` runs it: its own thread and event loop, fed from the
state file.

Only one engine may run per database: it holds ``controllers.failover.lease.EngineLease``
while it runs, and a second ``tiandi serve`` with failover on refuses to start, saying so.

Wiring (the only place that knows all of it): ``SshRunner`` (Tiandi's known-hosts store
``<data dir>/ssh/known_hosts``, the ``ssh_host_keys`` policy) → ``DriverRouterControl`` (the
inventory's routers) → ``FailoverEngine`` → ``FailoverService``, which the API's failover and
approval routes call across threads.

Why a thread of its own: the engine's event loop then never waits for an API request, and the
API's loop never runs the engine's callbacks; SSH work happens in the runner's worker threads
either way. Why the prober is *not* in this process: during a mass move, dozens of netmiko
threads hold the GIL in turns, and a prober sharing it measured up to 0.8 s of false jitter
(see ``bench/failover.py``). The prober publishes link health to ``<data dir>/state.db``
(``monitors.state_store``); :class:`HealthFeed` reads what changed every ``feed_every_s``
(0.2 s: the engine learns of a cut at most that much later than the prober) and hands it to
the engine. A link whose health is older than ``stale_after_s`` — the prober stopped — is given
to the engine as ``unknown``: it is then neither left nor chosen on stale evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from controllers.drivers import HostKeyPolicy, KnownHostsStore, SshRunner, SshSettings
from controllers.failover.approvals import ApprovalRules
from controllers.failover.drivers_adapter import DriverRouterControl
from controllers.failover.engine import EngineConfig, FailoverEngine
from controllers.failover.lease import EngineLease
from controllers.failover.policy import PolicySet
from controllers.failover.service import FailoverService
from inventory.errors import TiandiError
from monitors.linkstate import Health, LinkHealthReport
from monitors.state_store import StateStore
from tiandi.settings import Settings

log = logging.getLogger(__name__)

STALE_AFTER_S = 30.0
"""Health older than this is no evidence (the same limit the API shows ``unknown`` after)."""


class FailoverStartFailed(TiandiError):
    """The engine could not start (its database, the inventory, or the SSH settings)."""


class HealthFeed:
    """What changed in the state file's link health since the last look, for the engine.

    Every :meth:`poll` reads the links whose health changed lately (a handful of rows); every
    ``full_every_s`` it reads every link's marks (health, since, evaluated at) — which also
    catches anything the short reads missed and finds links gone stale — and the whole report
    of those that changed. (Reading every whole report five times a second cost the API process
    more CPU than its requests.) A report is passed on when its link's health, or the moment it
    entered it, differs from what was passed on last; a link not evaluated for
    ``stale_after_s`` is passed on once as ``unknown``.
    """

    OVERLAP_S = 2.0  # re-read a little of the past: a change is committed after it is decided

    def __init__(
        self,
        state: StateStore,
        *,
        stale_after_s: float = STALE_AFTER_S,
        full_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.stale_after_s = stale_after_s
        self.full_every_s = full_every_s
        self.clock = clock
        self._fed: dict[str, tuple[Health, float]] = {}  # link -> (health, since) passed on
        self._at: dict[str, float] = {}  # link -> newest evaluation read
        self._last: dict[str, LinkHealthReport] = {}  # link -> last whole report read
        self._last_poll: float | None = None
        self._last_full: float | None = None

    def poll(self) -> list[LinkHealthReport]:
        """Reports to give the engine now (blocking: reads the state file)."""
        now = self.clock()
        full = self._last_full is None or now - self._last_full >= self.full_every_s
        out: list[LinkHealthReport] = []
        if full or self._last_poll is None:
            self._last_full = now
            for link, health, since, at in self.state.link_marks():
                if self._is_news(link, health, since, at, now):
                    report = self.state.link_report(link)
                    if report is not None and self._take(report, now):
                        out.append(report)
        else:
            for report in self.state.link_reports(changed_after=self._last_poll - self.OVERLAP_S):
                if self._take(report, now):
                    out.append(report)
        self._last_poll = now
        if full:
            out += self._stale(now)
        return out

    def _is_news(self, link: str, health: Health, since: float, at: float, now: float) -> bool:
        if at < self._at.get(link, at):
            return False  # older than what was read already
        self._at[link] = at
        return now - at <= self.stale_after_s and self._fed.get(link) != (health, since)

    def _take(self, report: LinkHealthReport, now: float) -> bool:
        """Record ``report``; whether it is news for the engine."""
        if report.at < self._at.get(report.link, report.at):
            return False
        self._at[report.link] = report.at
        self._last[report.link] = report
        if now - report.at > self.stale_after_s:
            return False  # left to the staleness pass
        if self._fed.get(report.link) == (report.health, report.since):
            return False
        self._fed[report.link] = (report.health, report.since)
        return True

    def _stale(self, now: float) -> list[LinkHealthReport]:
        out: list[LinkHealthReport] = []
        for link, at in self._at.items():
            age = now - at
            last = self._last.get(link)
            if age <= self.stale_after_s or last is None:
                continue
            fed = self._fed.get(link)
            if fed is not None and fed[0] is Health.UNKNOWN:
                continue
            self._fed[link] = (Health.UNKNOWN, now)
            out.append(
                replace(
                    last,
                    health=Health.UNKNOWN,
                    since=now,
                    at=now,
                    reason=f"no health from the monitor for {age:.0f} s: is the prober running?",
                )
            )
        return out


@dataclass
class FailoverOptions:
    """What ``tiandi serve`` tunes; the policies' defaults live in ``controllers.failover``."""

    data_dir: Path = Path("tiandi-data")
    port_offset: int = 0  # added to every SSH port (a lab started with one)
    feed_every_s: float = 0.2
    stale_after_s: float = STALE_AFTER_S
    engine: EngineConfig | None = None
    policies: PolicySet = field(default_factory=PolicySet)
    approvals: ApprovalRules = field(default_factory=ApprovalRules)


class FailoverRuntime:
    """Starts the engine on a thread of its own, fed by :class:`HealthFeed`; see the module."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        options: FailoverOptions | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.options = options or FailoverOptions()
        policy = HostKeyPolicy(settings.ssh_host_keys)
        if policy is HostKeyPolicy.TRUST_ON_FIRST_USE:
            log.warning(
                "SSH host keys: TRUST ON FIRST USE (TIANDI_SSH_HOST_KEYS=tofu): an unknown "
                "device key is recorded without an operator's check; use it on labs only"
            )
        self.ssh = SshSettings(workers=settings.ssh_workers, host_key_policy=policy)
        self.engine: FailoverEngine | None = None
        self.service: FailoverService | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def known_hosts_path(self) -> Path:
        return KnownHostsStore.in_data_dir(self.options.data_dir).path

    def start(self, timeout_s: float = 120.0) -> FailoverService:
        """Start the engine (it has read its state and settled half-done changes on return);
        routers are reconciled in the background."""
        self.known_hosts_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._main, name="failover", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise FailoverStartFailed(f"the failover engine did not start within {timeout_s:g} s")
        if self._error is not None or self.service is None:
            raise FailoverStartFailed(
                f"the failover engine could not start: {self._error}"
            ) from self._error
        return self.service

    def stop(self, timeout_s: float = 30.0) -> None:
        """Let running changes finish (the engine drains for up to 10 s), then close."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("failover: the engine did not stop within %g s", timeout_s)
            self._thread = None

    # ---- the engine's thread -------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as err:  # reported to start() or logged; the thread ends
            if not self._ready.is_set():
                self._error = err
                self._ready.set()
            else:
                log.error("failover: the engine stopped on an error: %s", err, exc_info=True)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        opts = self.options
        bind = self.session_factory.kw.get("bind")
        lease = await asyncio.to_thread(EngineLease.acquire, bind) if bind is not None else None
        runner = SshRunner(KnownHostsStore(self.known_hosts_path), self.ssh)
        state = StateStore(opts.data_dir / "state.db")
        engine: FailoverEngine | None = None
        try:

            def control() -> DriverRouterControl:
                with self.session_factory() as session:
                    return DriverRouterControl.from_session(
                        session, runner, port_offset=opts.port_offset
                    )

            config = opts.engine or EngineConfig(
                max_concurrency=self.settings.failover_max_concurrency
            )
            engine = FailoverEngine(
                self.session_factory,
                await asyncio.to_thread(control),
                policies=opts.policies,
                config=config,
            )
            await engine.start()
            self.engine = engine
            self.service = FailoverService(engine, self.session_factory, opts.approvals)
            self._ready.set()
            await self._feed(engine, HealthFeed(state, stale_after_s=opts.stale_after_s))
        finally:
            if engine is not None:
                await engine.stop()
            await runner.close()
            await asyncio.to_thread(state.close)
            if lease is not None:
                await asyncio.to_thread(lease.release)

    async def _feed(self, engine: FailoverEngine, feed: HealthFeed) -> None:
        assert self._stopping is not None
        fed = 0
        while not self._stopping.is_set():
            try:
                reports = await asyncio.to_thread(feed.poll)
            except Exception as err:  # the state file may be mid-replacement: try again
                log.error("failover: reading link health from the state file failed: %s", err)
                reports = []
            if reports:
                engine.observe_many(reports)
                if fed == 0:
                    log.info("failover: link health arrives (%d links)", len(reports))
                fed += len(reports)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.feed_every_s)
