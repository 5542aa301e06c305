"""The failover engine: the thin I/O around the per-site state machines.

It feeds link-health reports (and the clock, and maintenance windows) into one
:class:`~controllers.failover.machine.SiteMachine` per site and carries out their decisions:

- a :class:`~controllers.failover.machine.Switch` becomes a job on a priority queue, worked by
  ``max_concurrency`` workers (the bound on SSH sessions at once): sites in a conference first,
  then hubs before counties, then first come first served. For each job an *intent* row is
  committed before the router is touched; then :class:`~controllers.failover.control.
  RouterControl` moves the default route, verifies it and rolls back on failure; the outcome
  (commands sent, the read-back, error) is stored and the machine told. A site never has two
  changes at once (the machine waits for the outcome; a per-site lock guards the router);
- alarms and notes are stored as events. Every event and every change goes to the audit trail
  in the same transaction;
- during a mass event (many sites queued) progress is logged every ``progress_every_s`` and
  readable from :meth:`FailoverEngine.progress`.

Database writes run in one thread of their own, in submission order, batched into one
transaction when they queue up, so the event loop never blocks and a site's records keep their
order; only change intents, which a change waits for, are committed ahead of the queue.

Start-up (:meth:`FailoverEngine.start`) rebuilds each machine from the database (last known
link, active pin, recent automatic switches for flap damping), then settles every change left
``intent`` by a crash: if the router already has the target link the change is marked
``recovered``, otherwise it is rolled back to the link it started from. Finally every site's
router is read in the background; where it disagrees with the database, the router wins and a
``reconciled`` event says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from controllers.failover import approvals, store
from controllers.failover.control import ChangeResult, RouterControl, RouteReading
from controllers.failover.machine import (
    ENGINE_ACTOR,
    NO_CONFERENCES,
    Alarm,
    ConferenceActivity,
    Decision,
    LinkSpec,
    Note,
    Pin,
    SiteMachine,
    SiteStatus,
    Switch,
)
from controllers.failover.models import ChangeStatus
from controllers.failover.policy import PolicySet
from controllers.failover.topology import TIER_RANK, SiteInfo, Topology, load_topology
from inventory.errors import NotFound, TiandiError
from monitors.linkstate import LinkHealthReport

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

T = TypeVar("T")
Clock = Callable[[], float]
WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class EngineNotRunning(TiandiError):
    """The failover engine is not running (not started, or stopped)."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How the engine runs. ``max_concurrency``: SSH sessions at once (and change workers)."""

    max_concurrency: int = 32
    change_timeout_s: float = 60.0
    read_timeout_s: float = 30.0
    tick_s: float = 1.0
    topology_refresh_s: float = 60.0
    approvals_expire_every_s: float = 10.0
    progress_every_s: float = 1.0
    db_batch: int = 64
    reconcile_on_start: bool = True

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if min(self.change_timeout_s, self.read_timeout_s, self.tick_s) <= 0:
            raise ValueError("timeouts and tick_s must be positive")


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """What became of one switch."""

    site: str
    from_link: str | None
    to_link: str
    cause: str
    ok: bool
    link: str | None  # what the router uses afterwards (as read back)
    change_id: int | None
    commands: tuple[str, ...] = ()
    verification: str = ""
    error: str | None = None
    rolled_back: bool = False
    duration_s: float = 0.0


@dataclass
class Progress:
    """Changes of the current burst (since the engine was last idle) and of the last one."""

    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    burst_started: float | None = None
    last_burst: tuple[int, int, float] | None = None  # (done, failed, seconds)

    @property
    def busy(self) -> bool:
        return self.queued + self.running > 0

    def line(self, now: float) -> str:
        total = self.queued + self.running + self.done + self.failed
        took = now - self.burst_started if self.burst_started is not None else 0.0
        return (
            f"{self.done + self.failed}/{total} site changes finished in {took:.1f} s "
            f"({self.done} ok, {self.failed} failed), {self.running} running, "
            f"{self.queued} waiting"
        )


@dataclass(order=True)
class _Job:
    priority: tuple[int, int, int]
    switch: Switch = field(compare=False)
    waiter: asyncio.Future[ChangeOutcome] | None = field(compare=False, default=None)
    approval_id: int | None = field(compare=False, default=None)


_Write = Callable[[Session], Any]


class FailoverEngine:
    """Runs every site's failover machine; see the module docstring."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        router: RouterControl,
        *,
        policies: PolicySet | None = None,
        conference: ConferenceActivity = NO_CONFERENCES,
        config: EngineConfig | None = None,
        clock: Clock = time.monotonic,
        wall: WallClock = utc_now,
        on_alarm: Callable[[Alarm], None] | None = None,
        topology: Topology | None = None,
        actor: str = ENGINE_ACTOR,
    ) -> None:
        self.session_factory = session_factory
        self.router = router
        self.policies = policies or PolicySet()
        self.conference = conference
        self.config = config or EngineConfig()
        self.clock = clock
        self.wall = wall
        self.on_alarm = on_alarm
        self.actor = actor
        self.topology = topology or Topology()
        self._fixed_topology = topology is not None
        self.machines: dict[str, SiteMachine] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.PriorityQueue[_Job] | None = None
        self._writes: asyncio.Queue[tuple[_Write, asyncio.Future[Any] | None, bool]] | None = None
        self._ssh: asyncio.Semaphore | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._generation: dict[str, int] = {}
        self._seq = itertools.count()
        self._db_pool: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._pins: dict[str, Pin | None] = {}
        self._persisted: dict[str, tuple[str | None, str]] = {}
        self._progress = Progress()
        self._running = False
        self.reconciled = asyncio.Event()

    # ---- life cycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Load the topology and the stored state, settle half-done changes, start working."""
        if self._running:
            return
        self.loop = asyncio.get_running_loop()
        self._db_pool = ThreadPoolExecutor(1, thread_name_prefix="failover-db")
        self._queue = asyncio.PriorityQueue()
        self._writes = asyncio.Queue()
        self._ssh = asyncio.Semaphore(self.config.max_concurrency)
        self.reconciled = asyncio.Event()
        self._tasks.append(self.loop.create_task(self._writer(), name="failover-db-writer"))
        if not self._fixed_topology:
            self.topology = await self._read(load_topology)
        stored = await self._read(
            functools.partial(store.load_state, now=self.wall(), flap_window=self._flap_window())
        )
        open_sites = {i.site for i in stored.intents}
        self._build_machines(self.topology.sites.values(), stored, open_sites)
        self._running = True
        for n in range(self.config.max_concurrency):
            self._tasks.append(self.loop.create_task(self._worker(), name=f"failover-worker-{n}"))
        await self._recover(stored.intents)
        self._tasks.append(self.loop.create_task(self._ticker(), name="failover-tick"))
        self._tasks.append(self.loop.create_task(self._progress_log(), name="failover-progress"))
        if self.config.reconcile_on_start:
            sites = [s for s in self.machines if s not in open_sites]
            self._tasks.append(
                self.loop.create_task(self._reconcile(sites), name="failover-reconcile")
            )
        else:
            self.reconciled.set()
        log.info(
            "failover: engine started for %d sites (%d half-done changes settled)",
            len(self.machines),
            len(stored.intents),
        )

    async def stop(self, *, drain_s: float = 10.0) -> None:
        """Stop deciding; let running changes finish (up to ``drain_s``), flush the records."""
        if not self._running:
            return
        self._running = False
        workers = [t for t in self._tasks if t.get_name().startswith("failover-worker")]
        others = [
            t for t in self._tasks if t not in workers and t.get_name() != "failover-db-writer"
        ]
        for task in others:
            task.cancel()
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                self._queue.task_done()
                self._progress.queued -= 1
                if job.waiter is not None and not job.waiter.done():
                    job.waiter.set_exception(EngineNotRunning("the failover engine stopped"))
        deadline = time.monotonic() + drain_s  # real time: the engine's clock may be a test's
        while self._progress.running > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in workers:
            task.cancel()
        await asyncio.gather(*others, *workers, return_exceptions=True)
        if self._writes is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._writes.join(), timeout=drain_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._db_pool is not None:
            self._db_pool.shutdown(wait=True)
            self._db_pool = None
        log.info("failover: engine stopped")

    async def abandon(self) -> None:
        """Drop everything at once, as a killed process would: no draining, no final writes.
        (Tests use it to leave the database exactly as a crash mid-change leaves it.)"""
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._db_pool is not None:
            self._db_pool.shutdown(wait=True, cancel_futures=True)
            self._db_pool = None

    def _flap_window(self) -> timedelta:
        p = self.policies
        policies = [p.default, *p.by_tier.values(), *p.by_site.values()]
        return timedelta(seconds=max(x.flap_window_s for x in policies))

    def _build_machines(
        self, sites: Iterable[SiteInfo], stored: store.StoredState, open_sites: set[str]
    ) -> None:
        now, wall = self.clock(), self.wall()
        for info in sites:
            if info.name in self.machines:
                continue
            policy = self.policies.for_site(info.name, info.tier)
            current = stored.current.get(info.name)
            if current is not None and info.link(current) is None:
                current = None
            known = info.name in stored.current and info.name not in open_sites
            machine = SiteMachine(
                info.name,
                [LinkSpec(lk.name, lk.role) for lk in info.links],
                policy,
                current=current,
                current_known=known,
                conference=self.conference,
            )
            pin = stored.pins.get(info.name)
            restored_pin = None
            if pin is not None:
                until = now + (pin.expires_at - wall).total_seconds()
                restored_pin = Pin(pin.link, until, pin.kind, pin.actor, pin.reason)
            times = [
                now - (wall - t).total_seconds() for t in stored.switch_times.get(info.name, ())
            ]
            machine.restore(pin=restored_pin, switch_times=times)
            self.machines[info.name] = machine
            self._pins[info.name] = machine.pin
            self._persisted[info.name] = (machine.current, machine.state().value)
            self._generation[info.name] = 0

    # ---- inputs --------------------------------------------------------------------------

    def observe(self, report: LinkHealthReport) -> None:
        """A health report (call in the engine's loop; :meth:`submit` from anywhere else)."""
        if not self._running:
            return
        machine = self.machines.get(report.site)
        if machine is None:
            return
        self._handle(machine, machine.observe(report))

    def observe_many(self, reports: Iterable[LinkHealthReport]) -> None:
        for report in reports:
            self.observe(report)

    def submit(self, report: LinkHealthReport) -> None:
        """Thread-safe :meth:`observe`."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.observe, report)

    def tick(self) -> None:
        """Let time act on every machine (maintenance windows begin and end here too)."""
        if not self._running:
            return
        now, wall = self.clock(), self.wall()
        for name, machine in self.machines.items():
            info = self.topology.sites.get(name)
            decisions: list[Decision] = []
            if info is not None:
                active = info.in_maintenance(wall)
                if active != machine.maintenance:
                    decisions += machine.set_maintenance(active, now)
            decisions += machine.tick(now)
            self._handle(machine, decisions)

    # ---- operator actions (call in the engine's loop) ------------------------------------

    def machine(self, site: str) -> SiteMachine:
        machine = self.machines.get(site)
        if machine is None:
            raise NotFound(f"no site named {site!r} with links under failover")
        return machine

    def site_info(self, site: str) -> SiteInfo:
        info = self.topology.sites.get(site)
        if info is None:
            raise NotFound(f"no site named {site!r} with links under failover")
        return info

    async def switch(
        self,
        site: str,
        link: str,
        *,
        actor: str,
        reason: str,
        approval_id: int | None = None,
    ) -> ChangeOutcome | None:
        """Move ``site`` to ``link`` now and wait for the verified outcome (None: it is on that
        link already). Raises ``Refused`` when the machine will not do it."""
        self._require_running()
        machine = self.machine(site)
        decisions = machine.switch(link, self.clock(), actor=actor, reason=reason)
        return await self._run_manual(machine, decisions, approval_id)

    async def pin(
        self,
        site: str,
        link: str,
        *,
        until: datetime,
        actor: str,
        reason: str,
        approval_id: int | None = None,
    ) -> ChangeOutcome | None:
        """Pin ``site`` to ``link`` until ``until`` (moving it there first if needed)."""
        self._require_running()
        machine = self.machine(site)
        now = self.clock()
        until_mono = now + (until - self.wall()).total_seconds()
        decisions = machine.pin_to(link, until_mono, now, actor=actor, reason=reason)
        return await self._run_manual(machine, decisions, approval_id, pin_actor=actor)

    def release(self, site: str, *, actor: str) -> list[Decision]:
        self._require_running()
        machine = self.machine(site)
        decisions = machine.release(self.clock(), actor=actor)
        self._handle(machine, decisions, pin_actor=actor)
        return decisions

    def status(self, site: str) -> SiteStatus:
        return self.machine(site).status(self.clock())

    def progress(self) -> Progress:
        p = self._progress
        return Progress(p.queued, p.running, p.done, p.failed, p.burst_started, p.last_burst)

    def pin_expiry(self, pin: Pin) -> datetime:
        return self.wall() + timedelta(seconds=pin.until - self.clock())

    async def idle(self, timeout_s: float = 30.0) -> None:
        """Wait until no change is queued or running and every record is written."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._progress.busy and (self._writes is None or self._writes.empty()):
                if self._writes is not None:
                    left = max(0.1, deadline - time.monotonic())
                    await asyncio.wait_for(self._writes.join(), left)
                if not self._progress.busy:
                    return
            await asyncio.sleep(0.01)
        raise TimeoutError(f"the failover engine was still busy after {timeout_s:g} s")

    def _require_running(self) -> None:
        if not self._running:
            raise EngineNotRunning("the failover engine is not running")

    async def _run_manual(
        self,
        machine: SiteMachine,
        decisions: list[Decision],
        approval_id: int | None,
        pin_actor: str | None = None,
    ) -> ChangeOutcome | None:
        assert self.loop is not None
        waiter: asyncio.Future[ChangeOutcome] | None = None
        if any(isinstance(d, Switch) for d in decisions):
            waiter = self.loop.create_future()
        self._handle(
            machine, decisions, waiter=waiter, approval_id=approval_id, pin_actor=pin_actor
        )
        if waiter is None:
            return None
        return await waiter

    # ---- handling decisions --------------------------------------------------------------

    def _handle(
        self,
        machine: SiteMachine,
        decisions: Sequence[Decision],
        *,
        waiter: asyncio.Future[ChangeOutcome] | None = None,
        approval_id: int | None = None,
        pin_actor: str | None = None,
    ) -> None:
        wall = self.wall()
        for d in decisions:
            if isinstance(d, Switch):
                self._record(
                    functools.partial(
                        store.record_event,
                        at=wall,
                        site=d.site,
                        kind="decided",
                        reason=d.reason,
                        actor=d.actor,
                        cause=d.cause.value,
                        from_link=d.from_link,
                        to_link=d.to_link,
                        state=machine.state().value,
                        numbers=d.numbers,
                    )
                )
                self._enqueue(d, waiter, approval_id)
                waiter, approval_id = None, None
            elif isinstance(d, Alarm):
                kind = "alarm_cleared" if d.cleared else "alarm"
                log.log(
                    logging.INFO if d.cleared else logging.WARNING,
                    "failover: site %s %s %s: %s",
                    d.site,
                    kind.replace("_", " "),
                    d.kind.value,
                    d.message,
                )
                self._record(
                    functools.partial(
                        store.record_event,
                        at=wall,
                        site=d.site,
                        kind=kind,
                        reason=f"{d.kind.value}: {d.message}",
                        actor=self.actor,
                        cause=d.kind.value,
                        state=machine.state().value,
                        numbers=d.numbers,
                        ok=d.cleared,
                    )
                )
                if self.on_alarm is not None:
                    try:
                        self.on_alarm(d)
                    except Exception:  # an alarm sink's failure must not stop failover
                        log.exception("failover: the alarm callback failed for %s", d.site)
            elif isinstance(d, Note):
                log.info("failover: site %s %s: %s", d.site, d.kind, d.message)
                self._record(
                    functools.partial(
                        store.record_event,
                        at=wall,
                        site=d.site,
                        kind=d.kind,
                        reason=d.message,
                        actor=self.actor,
                        state=machine.state().value,
                        numbers=d.numbers,
                    )
                )
        self._sync_pin(machine, pin_actor)
        self._persist(machine)

    def _enqueue(
        self,
        sw: Switch,
        waiter: asyncio.Future[ChangeOutcome] | None,
        approval_id: int | None,
    ) -> None:
        assert self._queue is not None
        info = self.topology.sites.get(sw.site)
        in_call = 0 if self.conference.in_call(sw.site) else 1
        manual = 0 if not sw.automatic else 1
        tier = TIER_RANK.get(info.tier, 9) if info is not None else 9
        job = _Job((min(in_call, manual), tier, next(self._seq)), sw, waiter, approval_id)
        if not self._progress.busy:
            self._progress.burst_started = self.clock()
            self._progress.done = self._progress.failed = 0
        self._progress.queued += 1
        self._queue.put_nowait(job)

    def _sync_pin(self, machine: SiteMachine, actor: str | None) -> None:
        old, new = self._pins.get(machine.site), machine.pin
        if old == new:
            return
        self._pins[machine.site] = new
        info = self.topology.sites.get(machine.site)
        if info is None:
            return
        wall = self.wall()
        if new is None:
            expired = old is not None and old.until <= self.clock()
            by = "expired" if expired else (actor or self.actor)
            self._record(functools.partial(store.release_pins, site_id=info.id, at=wall, by=by))
            return
        link = info.link(new.link)
        if link is None:
            return
        self._record(
            functools.partial(
                store.save_pin,
                site_id=info.id,
                link_id=link.id,
                kind=new.kind,
                actor=new.actor,
                reason=new.reason,
                at=wall,
                expires_at=self.pin_expiry(new),
            )
        )

    def _persist(self, machine: SiteMachine, *, verified: bool = False) -> None:
        key = (machine.current, machine.state().value)
        if key == self._persisted.get(machine.site) and not verified:
            return
        if not machine.current_known:
            return  # nothing new to store: the database keeps the last known link
        self._persisted[machine.site] = key
        info = self.topology.sites.get(machine.site)
        if info is None:
            return
        link = info.link(machine.current) if machine.current is not None else None
        self._record(
            functools.partial(
                store.save_site_state,
                site_id=info.id,
                link_id=link.id if link is not None else None,
                state=key[1],
                at=self.wall(),
                verified=verified,
            )
        )

    # ---- changes -------------------------------------------------------------------------

    def _lock(self, site: str) -> asyncio.Lock:
        lock = self._locks.get(site)
        if lock is None:
            lock = self._locks[site] = asyncio.Lock()
        return lock

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            self._progress.queued -= 1
            self._progress.running += 1
            outcome: ChangeOutcome | BaseException
            try:
                outcome = await self._run_change(job)
            except asyncio.CancelledError:
                self._progress.running -= 1
                self._queue.task_done()
                raise
            except Exception as err:  # a bug must not kill the worker: record it as a failure
                log.exception("failover: change of %s failed unexpectedly", job.switch.site)
                outcome = err
            self._progress.running -= 1
            ok = isinstance(outcome, ChangeOutcome) and outcome.ok
            if ok:
                self._progress.done += 1
            else:
                self._progress.failed += 1
            p = self._progress
            if not p.busy and p.burst_started is not None:
                p.last_burst = (p.done, p.failed, self.clock() - p.burst_started)
            self._queue.task_done()
            if job.waiter is not None and not job.waiter.done():
                if isinstance(outcome, BaseException):
                    job.waiter.set_exception(outcome)
                else:
                    job.waiter.set_result(outcome)

    async def _run_change(self, job: _Job) -> ChangeOutcome:
        sw = job.switch
        machine = self.machines[sw.site]
        async with self._lock(sw.site):
            self._generation[sw.site] = self._generation.get(sw.site, 0) + 1
            try:
                change = await self._write(
                    functools.partial(
                        store.open_change, sw=sw, at=self.wall(), approval_id=job.approval_id
                    ),
                    urgent=True,
                )
                change_id: int = change.id
            except Exception as err:
                error = f"the change intent could not be stored ({err}); nothing was changed"
                log.error("failover: %s: %s", sw.site, error)
                result = ChangeResult(False, sw.from_link, True, (), "not attempted", error=error)
                self._finish(machine, sw, None, result)
                return self._outcome(sw, None, result)
            t0 = self.clock()
            assert self._ssh is not None
            async with self._ssh:
                try:
                    result = await asyncio.wait_for(
                        self.router.move(sw.site, sw.from_link, sw.to_link),
                        self.config.change_timeout_s,
                    )
                except TimeoutError:
                    result = await self._settle_interrupted(
                        sw, f"no verified result within {self.config.change_timeout_s:g} s"
                    )
                except Exception as err:  # a driver bug is data too: settle from the router
                    result = await self._settle_interrupted(sw, f"{type(err).__name__}: {err}")
            if not result.duration_s:
                result = _with_duration(result, self.clock() - t0)
            self._generation[sw.site] += 1
            self._finish(machine, sw, change_id, result)
        if job.waiter is not None:
            # Someone waits for this outcome (an operator): answer once it is on record.
            await self._flush()
        return self._outcome(sw, change_id, result)

    async def _settle_interrupted(self, sw: Switch, why: str) -> ChangeResult:
        """The move raised or timed out: find out where the router is, roll back if needed."""
        reading = await self._read_route(sw.site)
        if reading.ok and reading.link == sw.to_link:
            return ChangeResult(
                True,
                sw.to_link,
                True,
                (),
                f"{why}; but the router uses {sw.to_link}: {reading.detail}",
            )
        if sw.from_link is None:
            return ChangeResult(
                False,
                reading.link if reading.ok else None,
                reading.ok,
                (),
                f"{why}; router reads {reading.detail}",
                error=why,
            )
        try:
            back = await asyncio.wait_for(
                self.router.move(sw.site, sw.to_link, sw.from_link), self.config.change_timeout_s
            )
        except Exception as err:  # the rollback's failure is reported, not raised
            return ChangeResult(
                False,
                None,
                False,
                (),
                f"{why}; rollback failed: {type(err).__name__}: {err}",
                error=f"{why}; rollback failed",
            )
        return ChangeResult(
            False,
            back.link,
            back.known,
            back.commands,
            f"{why}; rollback to {sw.from_link}: {back.verification}",
            rolled_back=back.ok,
            error=why if back.ok else f"{why}; rollback failed: {back.error}",
        )

    def _finish(
        self, machine: SiteMachine, sw: Switch, change_id: int | None, result: ChangeResult
    ) -> None:
        now, wall = self.clock(), self.wall()
        if change_id is not None:
            status = (
                ChangeStatus.DONE
                if result.ok
                else ChangeStatus.ROLLED_BACK
                if result.rolled_back
                else ChangeStatus.FAILED
            )
            self._record(
                functools.partial(
                    store.close_change,
                    change_id=change_id,
                    status=status,
                    at=wall,
                    commands=result.commands,
                    verification=result.verification,
                    error=result.error,
                )
            )
        if result.ok:
            decisions = machine.applied(sw.to_link, now)
            log.info(
                "failover: site %s moved %s -> %s (%s) in %.2f s",
                sw.site,
                sw.from_link,
                sw.to_link,
                sw.cause.value,
                result.duration_s,
            )
        else:
            current = result.link if result.known else machine.current
            decisions = machine.failed(
                sw.to_link,
                now,
                current=current,
                known=result.known or machine.current_known,
                error=result.error or result.verification,
            )
        self._record(
            functools.partial(
                store.record_event,
                at=wall,
                site=sw.site,
                kind="switched" if result.ok else "switch_failed",
                reason=(
                    f"{sw.cause.value} {sw.from_link} -> {sw.to_link} "
                    + ("verified" if result.ok else f"failed: {result.error}")
                    + (", rolled back" if result.rolled_back else "")
                    + f" in {result.duration_s:.2f} s"
                ),
                actor=sw.actor,
                cause=sw.cause.value,
                from_link=sw.from_link,
                to_link=sw.to_link,
                state=machine.state().value,
                numbers={"duration_s": round(result.duration_s, 3)},
                commands=result.commands,
                verification=result.verification,
                ok=result.ok,
                change_id=change_id,
            )
        )
        self._persist(machine, verified=result.known)
        self._handle(machine, decisions)
        if not machine.current_known:
            self._spawn(self._read_later(sw.site))

    @staticmethod
    def _outcome(sw: Switch, change_id: int | None, result: ChangeResult) -> ChangeOutcome:
        return ChangeOutcome(
            site=sw.site,
            from_link=sw.from_link,
            to_link=sw.to_link,
            cause=sw.cause.value,
            ok=result.ok,
            link=result.link,
            change_id=change_id,
            commands=result.commands,
            verification=result.verification,
            error=result.error,
            rolled_back=result.rolled_back,
            duration_s=result.duration_s,
        )

    async def _read_route(self, site: str) -> RouteReading:
        try:
            return await asyncio.wait_for(
                self.router.current_link(site), self.config.read_timeout_s
            )
        except TimeoutError:
            return RouteReading(False, None, f"no answer within {self.config.read_timeout_s:g} s")
        except Exception as err:  # unreachable routers are data
            return RouteReading(False, None, f"{type(err).__name__}: {err}")

    # ---- recovery and reconciliation -----------------------------------------------------

    async def _recover(self, intents: Sequence[store.OpenIntent]) -> None:
        """Settle every change a crash left half-done, before any new change is made."""
        if not intents:
            return
        latest: dict[str, store.OpenIntent] = {}
        for intent in intents:
            latest[intent.site] = intent  # an older intent of the same site is superseded
        assert self._ssh is not None
        ssh = self._ssh

        async def settle(intent: store.OpenIntent) -> None:
            machine = self.machines.get(intent.site)
            async with self._lock(intent.site), ssh:
                if machine is None or latest.get(intent.site) is not intent:
                    await self._write(
                        functools.partial(
                            store.close_change,
                            change_id=intent.id,
                            status=ChangeStatus.FAILED,
                            at=self.wall(),
                            commands=(),
                            verification="superseded or site gone",
                            error="interrupted by a restart; superseded",
                        )
                    )
                    return
                await self._settle_intent(machine, intent)

        await asyncio.gather(*(settle(i) for i in intents))

    async def _settle_intent(self, machine: SiteMachine, intent: store.OpenIntent) -> None:
        reading = await self._read_route(intent.site)
        wall = self.wall()
        if reading.ok and reading.link == intent.to_link:
            status, ok, rolled_back = ChangeStatus.RECOVERED, True, False
            commands: tuple[str, ...] = ()
            verification = f"after a restart the router uses {intent.to_link}: {reading.detail}"
            current: str | None = intent.to_link
            known = True
            kind, error = "recovered", None
        elif intent.from_link is not None:
            try:
                back = await asyncio.wait_for(
                    self.router.move(intent.site, intent.to_link, intent.from_link),
                    self.config.change_timeout_s,
                )
            except Exception as err:  # reported below
                back = ChangeResult(False, None, False, (), f"{type(err).__name__}: {err}")
            ok, rolled_back, commands = False, back.ok, back.commands
            status = ChangeStatus.ROLLED_BACK if back.ok else ChangeStatus.FAILED
            verification = (
                f"after a restart the router read {reading.detail}; rollback to "
                f"{intent.from_link}: {back.verification}"
            )
            current, known = back.link, back.known
            kind = "rolled_back" if back.ok else "recovery_failed"
            error = "interrupted by a restart" + ("" if back.ok else f"; rollback: {back.error}")
        else:
            status, ok, rolled_back, commands = ChangeStatus.FAILED, False, False, ()
            verification = f"after a restart the router read {reading.detail}"
            current, known = reading.link, reading.ok
            kind, error = "recovery_failed", "interrupted by a restart"
        await self._write(
            functools.partial(
                store.close_change,
                change_id=intent.id,
                status=status,
                at=wall,
                commands=commands,
                verification=verification,
                error=error,
            )
        )
        machine.current, machine.current_known = current, known
        if status is ChangeStatus.RECOVERED and intent.cause in ("failover", "failback", "damping"):
            machine.switch_times.append(self.clock())
        reason = (
            f"change #{intent.id} ({intent.cause} {intent.from_link} -> {intent.to_link}) was "
            f"left half-done by a restart: "
            + ("finished, the router already had it" if ok else "rolled back")
            + ("" if ok or rolled_back else " failed")
        )
        log.warning("failover: site %s: %s", intent.site, reason)
        self._record(
            functools.partial(
                store.record_event,
                at=wall,
                site=intent.site,
                kind=kind,
                reason=reason,
                actor=self.actor,
                cause=intent.cause,
                from_link=intent.from_link,
                to_link=intent.to_link,
                state=machine.state().value,
                commands=commands,
                verification=verification,
                ok=ok or rolled_back,
                change_id=intent.id,
            )
        )
        self._persist(machine, verified=known)

    async def _reconcile(self, sites: Sequence[str]) -> None:
        """Read every site's router; where it disagrees with the database, it wins."""
        assert self._ssh is not None
        ssh = self._ssh

        async def one(site: str) -> None:
            machine = self.machines.get(site)
            if machine is None:
                return
            async with ssh:
                generation = self._generation.get(site, 0)
                if machine.pending is not None:
                    return
                reading = await self._read_route(site)
            if (
                not self._running
                or machine.pending is not None
                or self._generation.get(site, 0) != generation
            ):
                return  # a change happened meanwhile: its own read-back is fresher
            if not reading.ok:
                log.warning("failover: site %s: router not readable (%s)", site, reading.detail)
                return
            stored = machine.current if machine.current_known else None
            if not machine.current_known or reading.link != machine.current:
                first = not machine.current_known and stored is None
                reason = (
                    f"first reading: the router uses {reading.link or 'no default route'} "
                    f"({reading.detail})"
                    if first
                    else f"the database said {stored or 'nothing'}, the router uses "
                    f"{reading.link or 'no default route'} ({reading.detail}); the router wins"
                )
                self._record(
                    functools.partial(
                        store.record_event,
                        at=self.wall(),
                        site=site,
                        kind="discovered" if first else "reconciled",
                        reason=reason,
                        actor=self.actor,
                        from_link=stored,
                        to_link=reading.link,
                        verification=reading.detail,
                        ok=True,
                    )
                )
            decisions = machine.set_current(reading.link, self.clock())
            self._persist(machine, verified=True)
            self._handle(machine, decisions)

        try:
            await asyncio.gather(*(one(s) for s in sites))
        finally:
            self.reconciled.set()

    # ---- background ----------------------------------------------------------------------

    async def _ticker(self) -> None:
        last_refresh = last_expiry = self.clock()
        while True:
            await asyncio.sleep(self.config.tick_s)
            self.tick()
            now = self.clock()
            if now - last_expiry >= self.config.approvals_expire_every_s:
                last_expiry = now
                self._record(functools.partial(approvals.expire_due, now=self.wall()))
            if now - last_refresh >= self.config.topology_refresh_s:
                last_refresh = now
                if not self._fixed_topology:
                    try:
                        await self.refresh_topology()
                    except Exception:  # keep the old topology; try again next time
                        log.exception("failover: reloading the topology failed")
                self._read_unknown()

    def _read_unknown(self) -> None:
        """Read the routers of sites whose current link nobody knows (unreadable at start, or
        a change that left them unreadable): until then their machines decide nothing."""
        unknown = [
            name for name, m in self.machines.items() if not m.current_known and m.pending is None
        ]
        if unknown:
            self._spawn(self._reconcile(unknown))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A background task of the engine (cancelled by stop); finished ones are let go."""
        if self.loop is None or not self._running:
            coro.close()
            return
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(self.loop.create_task(coro))

    async def _read_later(self, site: str) -> None:
        await asyncio.sleep(
            self.machines[site].policy.retry_after_s if site in self.machines else 0
        )
        await self._reconcile([site])

    async def refresh_topology(self) -> None:
        """Follow the inventory: new sites get a machine (their router is read), removed ones
        are dropped; a site whose links changed starts afresh."""
        topo = await self._read(load_topology)
        reload = getattr(self.router, "reload", None)  # a router side that follows the inventory
        if callable(reload):
            await self._read(reload)
        changed = [
            name
            for name, info in topo.sites.items()
            if name in self.topology.sites and self.topology.sites[name].links != info.links
        ]
        for name in list(self.machines):
            if (name not in topo.sites or name in changed) and self.machines[name].pending is None:
                del self.machines[name]
        self.topology = topo
        stored = await self._read(
            functools.partial(store.load_state, now=self.wall(), flap_window=self._flap_window())
        )
        new = [name for name in topo.sites if name not in self.machines]
        self._build_machines((topo.sites[n] for n in new), stored, set(new))
        if new:
            self._spawn(self._reconcile(new))

    async def _progress_log(self) -> None:
        while True:
            await asyncio.sleep(self.config.progress_every_s)
            p = self._progress
            if p.busy and p.queued + p.running + p.done + p.failed > 1:
                log.info("failover: mass event: %s", p.line(self.clock()))

    # ---- database ------------------------------------------------------------------------

    def _transaction(self, fns: Sequence[_Write]) -> list[Any]:
        """Run writes in one transaction; if that fails, each in its own (one bad write must not
        lose the others). Returns a result or an exception per write."""
        try:
            with self.session_factory() as session, session.begin():
                results = [fn(session) for fn in fns]
                session.flush()
                for r in results:  # load ids before the session closes
                    getattr(r, "id", None)
            return results
        except Exception as err:
            if len(fns) == 1:
                return [err]
        out: list[Any] = []
        for fn in fns:
            try:
                with self.session_factory() as session, session.begin():
                    r = fn(session)
                    getattr(r, "id", None)
                out.append(r)
            except Exception as err:  # handed back to the waiting caller
                out.append(err)
        return out

    async def _writer(self) -> None:
        assert self._writes is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._writes.get()]
            while len(batch) < self.config.db_batch and not self._writes.empty():
                batch.append(self._writes.get_nowait())
            # Intents go first, in a transaction of their own: a change waits for its intent
            # to be committed, records of what already happened can wait for them.
            urgent = [w for w in batch if w[2]]
            ordered = [w for w in batch if not w[2]]
            for group in (urgent, ordered):
                if group:
                    await self._run_group(loop, group)

    async def _run_group(
        self, loop: asyncio.AbstractEventLoop, group: list[tuple[_Write, Any, bool]]
    ) -> None:
        assert self._writes is not None
        try:
            results = await loop.run_in_executor(
                self._db_pool, self._transaction, [fn for fn, _, _ in group]
            )
        except Exception as err:  # the pool is gone (shutting down)
            results = [err] * len(group)
        for (fn, fut, _urgent), result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                if fut is None:
                    log.error(
                        "failover: a record could not be written (%s): %s",
                        getattr(fn, "func", fn).__name__,
                        result,
                    )
                elif not fut.done():
                    fut.set_exception(result)
            elif fut is not None and not fut.done():
                fut.set_result(result)
            self._writes.task_done()

    def _record(self, fn: _Write) -> None:
        """Queue a write; failures are logged."""
        if self._writes is not None:
            self._writes.put_nowait((fn, None, False))

    async def _write(self, fn: _Write, *, urgent: bool = False) -> Any:
        """Queue a write and wait until it is committed. ``urgent`` writes (intents) may be
        committed before writes queued earlier; the others keep their order."""
        assert self._writes is not None and self.loop is not None
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._writes.put_nowait((fn, fut, urgent))
        return await fut

    async def _flush(self) -> None:
        """Wait until every record queued so far is committed (writes run in order)."""
        await self._write(lambda _session: None)

    async def _read(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.session_factory() as session:
                return fn(session)

        assert self.loop is not None
        return await self.loop.run_in_executor(self._db_pool, run)


def _with_duration(result: ChangeResult, seconds: float) -> ChangeResult:
    return dataclasses.replace(result, duration_s=seconds)
