"""The SNMP poll engine: which device is due, what to ask it, what its answers become.

**Schedule.** Every device is polled every ``interval_s`` (default 60 s). Devices are spread
evenly over the interval by a deterministic phase (their rank by a hash of the name: 6,000
devices at 60 s start 100 per second, the same second every minute, across restarts). A failing
device backs off — the interval, then twice, four times ..., at most ``max_backoff_s`` (5 min) —
and goes back to its phase as soon as it answers. At most ``concurrency`` devices are polled at
once (a semaphore), of which at most ``first_contact_concurrency`` for the very first time (v3
engine discovery costs ~3x a poll's CPU: a cold start of thousands must not queue answers past
their timeouts). A poll that outlasts its interval makes the device skip slots (counted as
overruns); one device never has two polls in flight. Each device's poll has its own deadline;
one device's failure never delays another's.

**Requests.** From the device's profile (``monitors.profiles``) a plan is built once per device:
the scalars' OIDs and the tables' column roots. A device with tables is walked with GETBULK, its
scalars folded into the first request as non-repeaters (GETNEXT of ``x`` answers ``x.0``), so a
router is usually read in one or two requests; a device with scalars only is read with GET (in
chunks of ``get_chunk``). ``max-repetitions`` follows the number of rows seen last time (or the
table's row counter, ``rows_from``, on a first poll), within ``max_varbinds`` per answer; a
table whose rows number what its counter (ifNumber) says and what the last full walk found ends
without a request just to see its end (every ``verify_every``-th walk goes to the end anyway).
An answer that is ``tooBig`` splits the GET, or halves the repetitions. A column (or scalar) the
device does not have is replaced by its profile ``fallback`` from the next poll on
(ifHCInOctets → ifInOctets on a 32-bit agent).

**Results.** Each poll gives a ``DeviceResult`` (ok, or the ``PollFailure`` with its cause);
values become ``Sample``s (``docs/metrics.md``) handed to the ``MetricSink`` — batching is the
sink's business — and the device's snapshot in the ``LatestStore``. Counters go through
``monitors.counters`` (wraps, restarts seen in sysUpTime, implausible rates dropped), each
reading timed half-way between its request and its answer. A failed poll writes
``device,reachable=false``. Anything unexpected inside one device's poll is caught,
logged with its traceback and recorded as that device's ``INTERNAL`` failure.

``poll_once(devices)`` polls now, concurrently, and returns the results (tests, benches,
``tiandi poll --once``); ``run()`` is the scheduled loop, ended by ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from monitors.counters import CounterReading, counter_rate
from monitors.errors import MetricsError
from monitors.latest import LatestStore, RowState
from monitors.profiles import (
    COUNTER_TYPES,
    ColumnSpec,
    Profile,
    ProfileSet,
    ScalarSpec,
    TableSpec,
    ValueSpec,
    ValueType,
)
from monitors.sinks.base import FieldValue, MetricSink, Sample
from monitors.snmp.base import (
    FailureCause,
    Oid,
    PollFailure,
    SnmpTarget,
    SnmpTransport,
    ValueKind,
    VarBind,
)
from monitors.snmp.pysnmp_transport import format_oid, is_too_big, name_profile
from monitors.targets import PollTarget

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

_NUMERIC_KINDS: Final = frozenset(
    {
        ValueKind.INTEGER,
        ValueKind.COUNTER32,
        ValueKind.GAUGE32,
        ValueKind.TIMETICKS,
        ValueKind.COUNTER64,
    }
)
_ABSENT: Final = frozenset(
    {ValueKind.NO_SUCH_OBJECT, ValueKind.NO_SUCH_INSTANCE, ValueKind.END_OF_MIB_VIEW}
)


@dataclass(frozen=True, slots=True)
class PollerConfig:
    interval_s: float = 60.0
    concurrency: int = 128  # devices polled at once
    first_contact_concurrency: int = 32  # of which polled for the very first time (v3
    # discovery costs ~3x the CPU of a poll: a cold start of thousands of devices must not queue
    # answers past their timeouts); a device that failed once no longer counts as first contact
    max_backoff_s: float = 300.0  # a failing device is retried at most this far apart
    device_deadline_s: float | None = None  # whole poll of one device; None: from its target
    get_chunk: int = 32  # varbinds per GET
    max_varbinds: int = 60  # per GETBULK answer we aim for (fits a 1,472-byte message)
    first_repetitions: int = 1  # before the number of rows is known (then: row counters)
    max_requests: int = 64  # per device poll: a walk that does not end is an error
    verify_every: int = 10  # a table with rows_from is walked to its end every Nth poll anyway
    stop_grace_s: float = 5.0  # stop(): how long in-flight polls may finish


@dataclass(frozen=True, slots=True)
class DeviceResult:
    """One device's poll: what it gave, or why not."""

    device: str
    ok: bool
    failure: PollFailure | None = None
    profile: str | None = None
    samples: int = 0
    values: int = 0  # variable bindings read
    requests: int = 0
    response_ms: float | None = None


@dataclass
class PollerStats:
    polls: int = 0
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # by cause
    overruns: int = 0  # slots skipped because the device's poll was still running
    samples: int = 0
    values: int = 0
    requests: int = 0
    sink_errors: int = 0
    rounds: int = 0  # poll_once calls
    last_round_s: float | None = None


# ---- schedule maths (pure) ------------------------------------------------------------------


def phases(devices: Iterable[str], interval_s: float) -> dict[str, float]:
    """Each device's offset in ``[0, interval_s)``: evenly spread, by rank of a stable hash."""
    ranked = sorted(
        set(devices), key=lambda d: (hashlib.blake2b(d.encode(), digest_size=8).digest(), d)
    )
    n = len(ranked)
    return {d: interval_s * i / n for i, d in enumerate(ranked)}


def backoff_s(consecutive_failures: int, interval_s: float, max_backoff_s: float) -> float:
    """Wait before the next try: the interval after 1 failure, then x2 each time, capped."""
    if consecutive_failures <= 0:
        return interval_s
    doubled = interval_s * float(2 ** min(consecutive_failures - 1, 60))
    return min(doubled, max(max_backoff_s, interval_s))


def next_slot(start: float, phase: float, interval_s: float, after: float) -> float:
    """The first time ``start + phase + k * interval_s`` (k integer) that is > ``after``."""
    base = start + phase
    if after < base:
        return base
    k = math.floor((after - base) / interval_s) + 1
    return base + k * interval_s


# ---- per-device plan ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    table: TableSpec
    spec: ColumnSpec
    root: Oid
    type: ValueType
    factor: float | None
    name: str  # the object read (the fallback's name when it stands in)
    fallback: bool


@dataclass(frozen=True, slots=True)
class _Scalar:
    spec: ScalarSpec
    oid: Oid
    type: ValueType
    factor: float | None
    name: str
    fallback: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    scalars: tuple[_Scalar, ...]
    folded: tuple[_Scalar, ...]  # read as GETBULK non-repeaters (OID ends in .0)
    got: tuple[_Scalar, ...]  # read with GET
    columns: tuple[_Column, ...]


def _plan(profile: Profile, fallbacks: frozenset[str]) -> _Plan:
    scalars = []
    for s in profile.scalars:
        use = s.fallback is not None and s.name in fallbacks
        fb = s.fallback
        scalars.append(
            _Scalar(
                s,
                fb.oid if use and fb else s.oid,
                fb.type if use and fb else s.type,
                fb.factor if use and fb else s.factor,
                fb.name if use and fb else s.name,
                use,
            )
        )
    columns = []
    for t in profile.tables:
        for c in t.columns:
            key = f"{t.name}/{c.name}"
            use = c.fallback is not None and key in fallbacks
            fb = c.fallback
            columns.append(
                _Column(
                    t,
                    c,
                    fb.oid if use and fb else c.oid,
                    fb.type if use and fb else c.type,
                    fb.factor if use and fb else c.factor,
                    fb.name if use and fb else c.name,
                    use,
                )
            )
    folded = tuple(s for s in scalars if columns and len(s.oid) > 2 and s.oid[-1] == 0)
    got = tuple(s for s in scalars if s not in folded)
    return _Plan(tuple(scalars), folded, got, tuple(columns))


@dataclass
class _Device:
    """The engine's memory of one device (counters, plan, schedule)."""

    target: PollTarget
    profile: Profile | None
    plan: _Plan | None = None
    fallbacks: frozenset[str] = frozenset()
    counters: dict[tuple[str, Oid, Oid], CounterReading] = field(default_factory=dict)
    rows: int | None = None  # most rows in a table at the last poll (None: not polled yet)
    full_rows: dict[str, int] = field(default_factory=dict)  # table -> rows of last full walk
    count_unreliable: set[str] = field(default_factory=set)  # tables whose rows_from lied
    walks: int = 0
    failures: int = 0
    running: bool = False
    next_due: float = 0.0
    phase: float = 0.0
    logged: set[str] = field(default_factory=set)

    def once(self, key: str) -> bool:
        if key in self.logged:
            return False
        self.logged.add(key)
        return True


@dataclass(frozen=True, slots=True)
class _Decoding:
    """What every value of one poll is read with."""

    dev: _Device
    read: _Read
    at: float  # monotonic time of the first answer
    uptime: int | None  # sysUpTime of this poll, ticks
    before: Mapping[tuple[str, Oid, Oid], CounterReading]  # the previous poll's counters


class _Abort(Exception):
    """A request failed: the device's poll ends with this failure."""

    def __init__(self, failure: PollFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


@dataclass
class _Read:
    """What one poll read, before it becomes samples."""

    scalars: dict[Oid, VarBind] = field(default_factory=dict)
    columns: dict[Oid, list[VarBind]] = field(default_factory=dict)  # root -> rows in order
    requests: int = 0
    values: int = 0
    first_answer: float | None = None  # monotonic
    first_answer_ns: int | None = None  # wall clock
    when: dict[Oid, float] = field(default_factory=dict)  # value -> when the agent read it
    counted: set[str] = field(default_factory=set)  # tables whose walk ended by rows_from


# ---- the engine -----------------------------------------------------------------------------


class Poller:
    """Polls devices on a schedule. See the module documentation."""

    def __init__(
        self,
        transport: SnmpTransport,
        profiles: ProfileSet,
        *,
        sink: MetricSink | None = None,
        latest: LatestStore | None = None,
        config: PollerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.transport = transport
        self.profiles = profiles
        self.sink = sink
        self.latest = latest
        self.config = config or PollerConfig()
        self.stats = PollerStats()
        self._clock = clock
        self._wall_ns = wall_ns
        self._devices: dict[str, _Device] = {}
        self._sem = asyncio.Semaphore(self.config.concurrency)
        self._first_sem = asyncio.Semaphore(
            max(1, min(self.config.first_contact_concurrency, self.config.concurrency))
        )
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._start = clock()
        self._tasks: set[asyncio.Task[DeviceResult]] = set()
        self._unprofiled: set[str] = set()  # devices already reported as matching no profile

    # ---- targets ---------------------------------------------------------------------------

    def set_targets(self, targets: Sequence[PollTarget]) -> None:
        """Poll these devices from now on (keeps the counters of devices that stay)."""
        old = self._devices
        new: dict[str, _Device] = {}
        phase = phases((t.device for t in targets), self.config.interval_s)
        for t in targets:
            dev = old.get(t.device)
            profile = self.profiles.match(t.kind, t.vendor, t.platform, t.model)
            if dev is None or dev.profile is not profile or dev.target.snmp != t.snmp:
                dev = _Device(target=t, profile=profile)
                if profile is None and t.device not in self._unprofiled:
                    self._unprofiled.add(t.device)
                    log.error(
                        "poll %s (site %s): no SNMP device profile matches kind=%s vendor=%s "
                        "platform=%s model=%s; add one to monitors/profiles/",
                        t.device,
                        t.site,
                        t.kind,
                        t.vendor,
                        t.platform,
                        t.model,
                    )
            else:
                dev.target = t
            dev.phase = phase[t.device]
            new[t.device] = dev
        self._devices = new
        if self.latest is not None:
            self.latest.set_targets(targets)
        now = self._clock()
        self._heap = []
        for name, dev in new.items():
            if not dev.running:
                dev.next_due = next_slot(self._start, dev.phase, self.config.interval_s, now - 1e-9)
                self._push(dev.next_due, name)
        self._wake.set()

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self._devices)

    def oid_count(self, device: str) -> int:
        """How many objects one poll of ``device`` asks for (table columns count once)."""
        dev = self._devices.get(device)
        if dev is None or dev.profile is None:
            return 0
        plan = dev.plan or _plan(dev.profile, dev.fallbacks)
        return len(plan.scalars) + len(plan.columns) * (dev.rows or 0)

    # ---- polling now -----------------------------------------------------------------------

    async def poll_once(self, devices: Iterable[str] | None = None) -> list[DeviceResult]:
        """Poll ``devices`` (default: all) now, at most ``concurrency`` at once."""
        names = list(self._devices) if devices is None else list(devices)
        started = self._clock()

        async def one(name: str) -> DeviceResult:
            dev = self._devices.get(name)
            if dev is None:
                return DeviceResult(
                    name, False, PollFailure(FailureCause.CONFIG, "not a known device")
                )
            if dev.running:
                return DeviceResult(
                    name,
                    False,
                    PollFailure(FailureCause.INTERNAL, "a poll of this device is in progress"),
                )
            async with self._sem:
                return await self._poll(dev)

        results = await asyncio.gather(*(one(n) for n in names))
        self.stats.rounds += 1
        self.stats.last_round_s = self._clock() - started
        return list(results)

    # ---- the scheduled loop ----------------------------------------------------------------

    async def run(self) -> None:
        """Poll every device on its schedule until ``stop()``; then let in-flight polls end."""
        self._stop.clear()
        log.info(
            "poller: %d devices every %g s, %d at once",
            len(self._devices),
            self.config.interval_s,
            self.config.concurrency,
        )
        try:
            while not self._stop.is_set():
                now = self._clock()
                while self._heap and self._heap[0][0] <= now and not self._stop.is_set():
                    due, _, name = heapq.heappop(self._heap)
                    dev = self._devices.get(name)
                    if dev is None or due != dev.next_due:
                        continue  # removed, or rescheduled since
                    if dev.running:
                        self.stats.overruns += 1
                        dev.next_due = due + self.config.interval_s
                        self._push(dev.next_due, name)
                        continue
                    if not await self._acquire():
                        break
                    dev.running = True
                    task = asyncio.create_task(self._scheduled(dev), name=f"poll-{name}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    now = self._clock()
                wait = self._heap[0][0] - self._clock() if self._heap else self.config.interval_s
                if wait > 0 and not self._stop.is_set():
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            await self._drain()

    def stop(self) -> None:
        """Ask ``run()`` to return (after in-flight polls end, or ``stop_grace_s``)."""
        self._stop.set()
        self._wake.set()

    async def _acquire(self) -> bool:
        """Take a concurrency slot; False (holding none) if ``stop()`` came first."""
        if not self._sem.locked():
            await self._sem.acquire()
            return True
        acquire = asyncio.ensure_future(self._sem.acquire())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        acquire.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquire
        holding = acquire.done() and not acquire.cancelled()
        if holding and self._stop.is_set():
            self._sem.release()
            return False
        return holding

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=self.config.stop_grace_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _scheduled(self, dev: _Device) -> DeviceResult:
        try:
            result = await self._poll(dev, locked=True)
        finally:
            self._sem.release()
            dev.running = False
        now = self._clock()
        if self._devices.get(dev.target.device) is dev:
            if result.ok:
                due = next_slot(self._start, dev.phase, self.config.interval_s, now)
                missed = round((due - dev.next_due) / self.config.interval_s) - 1
                if missed > 0:  # the poll outlasted its interval: those slots were skipped
                    self.stats.overruns += missed
                dev.next_due = due
            else:
                wait = backoff_s(dev.failures, self.config.interval_s, self.config.max_backoff_s)
                dev.next_due = max(now, dev.next_due + wait)
            self._push(dev.next_due, dev.target.device)
            self._wake.set()
        return result

    def _push(self, due: float, name: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, name))

    # ---- one device ------------------------------------------------------------------------

    async def _poll(self, dev: _Device, *, locked: bool = False) -> DeviceResult:
        """Poll one device and record the outcome. Never raises (but for cancellation)."""
        if not locked:
            dev.running = True
        try:
            if dev.rows is None and dev.failures == 0 and dev.target.snmp is not None:
                async with self._first_sem:
                    return await self._poll_guarded(dev)
            return await self._poll_guarded(dev)
        finally:
            if not locked:
                dev.running = False

    async def _poll_guarded(self, dev: _Device) -> DeviceResult:
        target = dev.target
        self.stats.polls += 1
        profile_name = dev.profile.name if dev.profile else None
        snmp = target.snmp
        if target.problem is not None or snmp is None:
            failure = target.problem or PollFailure(FailureCause.CONFIG, "no SNMP target")
            return await self._failed(dev, failure, _Read())
        if dev.profile is None:
            failure = PollFailure(
                FailureCause.CONFIG,
                f"no SNMP device profile matches kind={target.kind} vendor={target.vendor} "
                f"platform={target.platform}; add one to monitors/profiles/",
            )
            return await self._failed(dev, failure, _Read())
        if dev.plan is None:
            dev.plan = _plan(dev.profile, dev.fallbacks)
        read = _Read()
        started = self._clock()
        deadline = self.config.device_deadline_s or _deadline(snmp)
        try:
            async with asyncio.timeout(deadline):
                await self._read(dev, snmp, dev.plan, read)
        except _Abort as abort:
            return await self._failed(
                dev, name_profile(abort.failure, target.credential_profile), read
            )
        except TimeoutError:
            failure = PollFailure(
                FailureCause.TIMEOUT,
                f"the poll did not finish within {deadline:g} s ({read.requests} request(s) "
                "answered); the device is slow or the walk too long",
            )
            return await self._failed(dev, failure, read)
        except Exception as err:  # a bug on our side: recorded for this device, round goes on
            log.exception("poll %s (site %s): internal error", target.device, target.site)
            failure = PollFailure(FailureCause.INTERNAL, f"{type(err).__name__}: {err}")
            return await self._failed(dev, failure, read)
        response_ms = (self._clock() - started) * 1000.0
        try:
            samples, values, rows = self._decode(dev, dev.plan, read, response_ms)
        except Exception as err:
            log.exception("poll %s (site %s): decoding failed", target.device, target.site)
            failure = PollFailure(FailureCause.INTERNAL, f"{type(err).__name__}: {err}")
            return await self._failed(dev, failure, read)
        self._adapt(dev, dev.plan, read)
        if dev.failures:
            log.info(
                "poll %s (site %s): answers again after %d failure(s)",
                target.device,
                target.site,
                dev.failures,
            )
        dev.failures = 0
        at_mono = read.first_answer if read.first_answer is not None else started
        at_ns = read.first_answer_ns if read.first_answer_ns is not None else self._wall_ns()
        if self.latest is not None:
            self.latest.record_success(
                target,
                profile=profile_name,
                at=at_ns / 1e9,
                at_monotonic=at_mono,
                response_ms=response_ms,
                values=values,
                rows=rows,
            )
        await self._write(samples)
        self.stats.ok += 1
        self.stats.samples += len(samples)
        self.stats.values += read.values
        self.stats.requests += read.requests
        return DeviceResult(
            target.device,
            True,
            None,
            profile_name,
            len(samples),
            read.values,
            read.requests,
            response_ms,
        )

    async def _failed(self, dev: _Device, failure: PollFailure, read: _Read) -> DeviceResult:
        target = dev.target
        dev.failures += 1
        self.stats.failures[failure.cause.value] += 1
        self.stats.requests += read.requests
        if dev.failures == 1 or dev.once(f"fail:{failure.cause}"):
            level = logging.ERROR if failure.cause is FailureCause.CONFIG else logging.WARNING
            log.log(level, "poll %s (site %s): %s", target.device, target.site, failure)
        profile = dev.profile.name if dev.profile else None
        now_ns = self._wall_ns()
        if self.latest is not None:
            self.latest.record_failure(target, failure, at=now_ns / 1e9, profile=profile)
        if target.snmp is not None:
            await self._write(
                [Sample("device", self._tags(target, kind=True), {"reachable": False}, now_ns)]
            )
        return DeviceResult(target.device, False, failure, profile, 0, 0, read.requests, None)

    async def _write(self, samples: list[Sample]) -> None:
        if self.sink is None or not samples:
            return
        try:
            await self.sink.write(samples)
        except MetricsError as err:
            self.stats.sink_errors += 1
            log.error("poller: the metric sink refused %d points: %s", len(samples), err)

    # ---- talking to the device -------------------------------------------------------------

    def _mark(self, read: _Read) -> None:
        if read.first_answer is None:
            read.first_answer = self._clock()
            read.first_answer_ns = self._wall_ns()

    async def _request_get(
        self, snmp: SnmpTarget, oids: Sequence[Oid], read: _Read
    ) -> list[VarBind]:
        if read.requests >= self.config.max_requests:
            raise _Abort(_too_many(read))
        read.requests += 1
        sent = self._clock()
        result = await self.transport.get(snmp, oids)
        if isinstance(result, PollFailure):
            if is_too_big(result) and len(oids) > 1:
                half = len(oids) // 2
                first = await self._request_get(snmp, oids[:half], read)
                return first + await self._request_get(snmp, oids[half:], read)
            raise _Abort(result)
        self._mark(read)
        answered = (sent + self._clock()) / 2
        for vb in result:
            read.when[vb.oid] = answered
        read.values += len(result)
        return result

    async def _read(self, dev: _Device, snmp: SnmpTarget, plan: _Plan, read: _Read) -> None:
        chunk = max(1, self.config.get_chunk)
        got = [s.oid for s in plan.got]
        for i in range(0, len(got), chunk):
            for vb in await self._request_get(snmp, got[i : i + chunk], read):
                read.scalars[vb.oid] = vb
        if plan.columns:
            await self._walk(dev, snmp, plan, read)

    async def _walk(self, dev: _Device, snmp: SnmpTarget, plan: _Plan, read: _Read) -> None:
        roots = [c.root for c in plan.columns]
        limits = {c.root: c.table.max_rows for c in plan.columns}
        rows: dict[Oid, list[VarBind]] = {r: [] for r in roots}
        last: dict[Oid, Oid] = {r: r for r in roots}
        pending = list(roots)
        folded = [s.oid[:-1] for s in plan.folded]
        budget = max(1, self.config.max_varbinds)
        reps = dev.rows + 1 if dev.rows is not None else self.config.first_repetitions
        counts = self._row_counts(dev, plan)
        counters = {  # table -> OID of the scalar counting its rows
            c.table.name: s.oid
            for c in plan.columns
            for s in plan.scalars
            if c.table.rows_from == s.spec.name
        }
        dev.walks += 1
        while pending:
            reps = max(1, min(reps, max(1, (budget - len(folded)) // len(pending))))
            if read.requests >= self.config.max_requests:
                raise _Abort(_too_many(read))
            read.requests += 1
            sent = self._clock()
            result = await self.transport.bulk(snmp, folded, [last[r] for r in pending], reps)
            if isinstance(result, PollFailure):
                if is_too_big(result) and reps > 1:
                    reps //= 2
                    budget = max(1, budget // 2)
                    continue
                if is_too_big(result) and folded:
                    for vb in await self._request_get(snmp, [s.oid for s in plan.folded], read):
                        read.scalars[vb.oid] = vb
                    folded = []
                    continue
                raise _Abort(result)
            self._mark(read)
            # When the agent read these values: best estimated half-way between request and
            # answer (our own delays in handling the answer fall after it).
            answered = (sent + self._clock()) / 2
            read.values += len(result)
            nonrep, rest = result[: len(folded)], result[len(folded) :]
            for asked, vb in zip(folded, nonrep, strict=False):
                wanted = (*asked, 0)
                read.scalars[wanted] = (
                    vb if vb.oid == wanted else VarBind(wanted, ValueKind.NO_SUCH_OBJECT, None)
                )
            folded = []
            done: set[Oid] = set()
            width = len(pending)
            for i, vb in enumerate(rest):
                root = pending[i % width]
                if root in done:
                    continue
                n = len(root)
                if vb.kind is ValueKind.END_OF_MIB_VIEW or vb.oid[:n] != root or len(vb.oid) == n:
                    done.add(root)
                    continue
                column = rows[root]
                if len(column) >= limits[root]:
                    done.add(root)
                    if dev.once(f"rows:{format_oid(root)}"):
                        log.warning(
                            "poll %s: more than %d rows under %s; the rest is not read "
                            "(raise max_rows in the profile if they are wanted)",
                            dev.target.device,
                            limits[root],
                            format_oid(root),
                        )
                    continue
                column.append(vb)
                read.when[vb.oid] = answered
                last[root] = vb.oid
            if not rest and pending:
                # Only the non-repeaters fitted: ask again, smaller.
                reps = 1
                budget = max(1, len(pending))
            pending = [r for r in pending if r not in done]
            for table, (count_oid, table_roots) in counts.items():
                # The table has as many rows as its counter says and as the last full walk
                # found: it is complete, no request just to see where it ends.
                if table in read.counted or not all(r in pending for r in table_roots):
                    continue
                count = _integer(read.scalars.get(count_oid))
                if count is None or dev.full_rows.get(table) != count:
                    continue
                if all(len(rows[r]) == count for r in table_roots):
                    read.counted.add(table)
                    pending = [r for r in pending if r not in table_roots]
            if pending:
                # Continuing: ask for the rows not read yet and the end — as many as the last
                # poll found, or the table's row counter says; without either, twice as many.
                least = min(len(rows[r]) for r in pending)
                expected: int | None = dev.rows
                if expected is None:
                    counted = [
                        rows_said
                        for c in plan.columns
                        if c.root in pending
                        and (
                            rows_said := _integer(read.scalars.get(counters.get(c.table.name, ())))
                        )
                        is not None
                    ]
                    expected = max(counted) if counted else None
                reps = max(1, expected - least + 1) if expected is not None else reps * 2
        read.columns = rows
        self._check_counts(dev, plan, read)

    def _row_counts(self, dev: _Device, plan: _Plan) -> dict[str, tuple[Oid, list[Oid]]]:
        """Tables whose walk may end by their row counter this time: table -> (counter, roots)."""
        every = self.config.verify_every
        if every > 0 and dev.walks % every == 0:
            return {}  # walk to the end, to check the counter still tells the truth
        out: dict[str, tuple[Oid, list[Oid]]] = {}
        for c in plan.columns:
            t = c.table
            if t.rows_from is None or t.name in dev.count_unreliable:
                continue
            counter = next((s for s in plan.scalars if s.spec.name == t.rows_from), None)
            if counter is not None:
                out.setdefault(t.name, (counter.oid, []))[1].append(c.root)
        return out

    def _check_counts(self, dev: _Device, plan: _Plan, read: _Read) -> None:
        """After a walk to the end: remember the rows, and whether the counter agreed."""
        for c in plan.columns:
            t = c.table
            if t.rows_from is None or t.name in read.counted:
                continue
            found = max(len(read.columns.get(x.root, ())) for x in plan.columns if x.table is t)
            counter = next((s for s in plan.scalars if s.spec.name == t.rows_from), None)
            count = _integer(read.scalars.get(counter.oid)) if counter is not None else None
            if count is not None and count != found and t.name not in dev.count_unreliable:
                dev.count_unreliable.add(t.name)
                log.info(
                    "poll %s: %s says %d rows but table %s has %d; walking it to the end "
                    "from now on",
                    dev.target.device,
                    t.rows_from,
                    count,
                    t.name,
                    found,
                )
            dev.full_rows[t.name] = found

    # ---- answers to samples ----------------------------------------------------------------

    def _tags(self, target: PollTarget, *, kind: bool = False) -> dict[str, str]:
        tags = {"device": target.device, "site": target.site}
        if target.province:
            tags["province"] = target.province
        if kind:
            tags["kind"] = target.kind.value
        return tags

    def _decode(
        self, dev: _Device, plan: _Plan, read: _Read, response_ms: float
    ) -> tuple[list[Sample], dict[str, FieldValue], list[RowState]]:
        target = dev.target
        at = read.first_answer if read.first_answer is not None else self._clock()
        at_ns = read.first_answer_ns if read.first_answer_ns is not None else self._wall_ns()
        previous = dev.counters
        dev.counters = {}  # only what this poll read: rows that went away are forgotten
        uptime: int | None = None
        for s in plan.scalars:
            if s.spec.role == "uptime":
                vb = read.scalars.get(s.oid)
                if vb is not None and isinstance(vb.value, int) and vb.kind in _NUMERIC_KINDS:
                    uptime = vb.value
        ctx = _Decoding(dev, read, at, uptime, previous)
        groups: dict[str, dict[str, FieldValue]] = {
            "device": {"reachable": True, "response_ms": round(response_ms, 3)}
        }
        for s in plan.scalars:
            vb = read.scalars.get(s.oid)
            if vb is None or vb.kind in _ABSENT:
                continue
            fields = groups.setdefault(s.spec.measurement, {})
            self._fields(ctx, s.spec, s.type, s.factor, s.name, vb, fields, ("", s.oid, ()), None)
        base = self._tags(target)
        samples: list[Sample] = []
        values: dict[str, FieldValue] = {}
        served = target.served_link
        for measurement, fields in groups.items():
            if not fields:
                continue
            tags = dict(base)
            if measurement == "device":
                tags["kind"] = target.kind.value
            elif served is not None:
                tags["link"] = served.link
                tags["role"] = served.role.value
            samples.append(Sample(measurement, tags, fields, at_ns))
            for name, value in fields.items():
                values[f"{measurement}.{name}"] = value
        rows_out: list[RowState] = []
        by_table: dict[str, list[_Column]] = {}
        for c in plan.columns:
            by_table.setdefault(c.table.name, []).append(c)
        most = 0
        for columns in by_table.values():
            table = columns[0].table
            cells: dict[Oid, dict[str, VarBind]] = {}
            for c in columns:
                n = len(c.root)
                for vb in read.columns.get(c.root, ()):
                    cells.setdefault(vb.oid[n:], {})[c.spec.name] = vb
            most = max(most, len(cells))
            for index in sorted(cells):
                row = cells[index]
                row_tags: dict[str, str] = {}
                for c in columns:
                    vb = row.get(c.spec.name)
                    if c.spec.tag and vb is not None:
                        text = _text(vb)
                        if text:
                            row_tags[c.spec.tag] = text
                for c in columns:
                    if c.spec.tag and c.spec.tag not in row_tags:
                        row_tags[c.spec.tag] = format_oid(index)
                if table.links_by is not None:
                    ref = target.link_for_interface(row_tags.get(table.links_by, ""))
                    if ref is not None:
                        row_tags["link"] = ref.link
                        row_tags["role"] = ref.role.value
                fields = {}
                ceiling = self._ceilings(columns, row)
                for c in columns:
                    vb = row.get(c.spec.name)
                    if vb is None or vb.kind in _ABSENT:
                        continue
                    self._fields(
                        ctx,
                        c.spec,
                        c.type,
                        c.factor,
                        c.name,
                        vb,
                        fields,
                        (table.name, c.root, index),
                        ceiling,
                    )
                if not fields:
                    continue
                measurement = table.measurement or table.name  # set: the loader checks it
                samples.append(Sample(measurement, {**base, **row_tags}, fields, at_ns))
                rows_out.append(RowState(measurement, row_tags, fields))
        dev.rows = most
        return samples, values, rows_out

    def _ceilings(self, columns: Sequence[_Column], row: Mapping[str, VarBind]) -> dict[str, float]:
        """The values of the columns other columns take their plausible maximum from."""
        wanted = {c.spec.rate.max_from for c in columns if c.spec.rate and c.spec.rate.max_from}
        out: dict[str, float] = {}
        for c in columns:
            if c.spec.name in wanted:
                vb = row.get(c.spec.name)
                if vb is not None and vb.kind in _NUMERIC_KINDS and isinstance(vb.value, int):
                    out[c.spec.name] = vb.value * (c.factor if c.factor is not None else 1.0)
        return out

    def _fields(
        self,
        ctx: _Decoding,
        spec: ValueSpec,
        vtype: ValueType,
        factor: float | None,
        name: str,
        vb: VarBind,
        out: dict[str, FieldValue],
        key: tuple[str, Oid, Oid],
        ceilings: Mapping[str, float] | None,
    ) -> None:
        dev = ctx.dev
        value = _convert(vtype, factor, spec, vb)
        if value is None:
            if dev.once(f"type:{name}"):
                log.warning(
                    "poll %s: %s (%s) answered %s, the profile expects %s; not written",
                    dev.target.device,
                    name,
                    format_oid(vb.oid),
                    vb.kind,
                    vtype,
                )
            return
        if spec.field is not None:
            out[spec.field] = value
        if spec.rate is None or vtype not in COUNTER_TYPES or not isinstance(value, int):
            return
        bits = 64 if vb.kind is ValueKind.COUNTER64 else 32
        if value >= 2**bits:
            return
        # A counter's time is that of the answer that carried it (a walk may take several).
        reading = CounterReading(value, ctx.read.when.get(vb.oid, ctx.at), ctx.uptime)
        previous = ctx.before.get(key)
        dev.counters[key] = reading
        ceiling = None
        if ceilings is not None and spec.rate.max_from is not None:
            ceiling = ceilings.get(spec.rate.max_from)
        rate = counter_rate(previous, reading, bits=bits, scale=spec.rate.factor, max_rate=ceiling)
        if rate.per_second is not None:
            out[spec.rate.field] = rate.per_second
        elif rate.reason is not None and rate.reason.value not in ("first",):
            log.debug(
                "poll %s: %s %s: no rate (%s)",
                dev.target.device,
                name,
                format_oid(vb.oid),
                rate.reason,
            )

    def _adapt(self, dev: _Device, plan: _Plan, read: _Read) -> None:
        """Switch to fallbacks for objects this device turned out not to have."""
        use = set(dev.fallbacks)
        for s in plan.scalars:
            if s.spec.fallback is None or s.fallback:
                continue
            vb = read.scalars.get(s.oid)
            if vb is not None and vb.kind in _ABSENT:
                use.add(s.spec.name)
        tables_with_rows = {c.table.name for c in plan.columns if read.columns.get(c.root)}
        for c in plan.columns:
            if c.spec.fallback is None or c.fallback or c.table.name not in tables_with_rows:
                continue
            if not read.columns.get(c.root):
                use.add(f"{c.table.name}/{c.spec.name}")
        if use != dev.fallbacks:
            added = sorted(use - dev.fallbacks)
            log.info(
                "poll %s: the device lacks %s; reading the profile's fallbacks from now on",
                dev.target.device,
                ", ".join(added),
            )
            dev.fallbacks = frozenset(use)
            assert dev.profile is not None
            dev.plan = _plan(dev.profile, dev.fallbacks)


# ---- helpers --------------------------------------------------------------------------------


def _deadline(snmp: SnmpTarget) -> float:
    """A whole device poll may take a few requests' worth of timeouts and retries."""
    return max(10.0, 4 * snmp.timeout_s * (snmp.retries + 1))


def _too_many(read: _Read) -> PollFailure:
    return PollFailure(
        FailureCause.MALFORMED,
        f"the walk did not end after {read.requests} requests; the agent keeps answering "
        "(a loop in its tables?)",
    )


def _integer(vb: VarBind | None) -> int | None:
    if vb is None or vb.kind not in _NUMERIC_KINDS or not isinstance(vb.value, int):
        return None
    return vb.value


def _text(vb: VarBind) -> str:
    v = vb.value
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace").rstrip("\x00").strip()
    if isinstance(v, tuple):
        return format_oid(v)
    return "" if v is None else str(v)


def scale(value: int, factor: float) -> float:
    """``value x factor``, exact for decimal factors (-452 x 0.1 is -45.2, not -45.2000...01)."""
    if 0 < factor < 1:
        inverse = 1.0 / factor
        whole = round(inverse)
        if abs(inverse - whole) < 1e-9:
            return value / whole
    return value * factor


def _convert(
    vtype: ValueType, factor: float | None, spec: ValueSpec, vb: VarBind
) -> FieldValue | None:
    """A variable binding as the profile says, or None if its type does not fit."""
    value = vb.value
    if vtype is ValueType.STRING:
        if (
            vb.kind is ValueKind.OCTETS
            or vb.kind is ValueKind.IPADDRESS
            or vb.kind is ValueKind.OID
        ):
            return _text(vb)
        return str(value) if isinstance(value, int) else None
    if vb.kind not in _NUMERIC_KINDS or not isinstance(value, int):
        return None
    if vtype is ValueType.SCALED:
        return scale(value, factor if factor is not None else 1.0)
    if vtype is ValueType.TRUTH:
        return value in (spec.true_values or (1,))
    if vtype is ValueType.LABEL:
        labels = spec.labels or {}
        return labels.get(value, f"unknown({value})")
    return value  # gauge, enum, counters
