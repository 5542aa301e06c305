"""The engine's schedule and limits, with a fake transport that satisfies ``SnmpTransport``:
even phases, backoff and its reset, the concurrency limit, overruns, a clean stop, per-device
failures as data, tooBig splitting, fallbacks, row counts — no network."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from inventory.enums import DeviceKind, SnmpVersion
from monitors.latest import LatestStore
from monitors.poller import Poller, PollerConfig, backoff_s, next_slot, phases
from monitors.profiles import load_profiles
from monitors.snmp.base import (
    FailureCause,
    GetResult,
    Oid,
    PollFailure,
    SnmpCredentials,
    SnmpTarget,
    ValueKind,
    VarBind,
)
from monitors.snmp.pysnmp_transport import error_status_failure
from monitors.targets import PollTarget
from tests.monitors.poller_support import MemorySink

SYS_UPTIME: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
IF_NUMBER: Oid = (1, 3, 6, 1, 2, 1, 2, 1, 0)


# ---- pure schedule maths -----------------------------------------------------------------------


def test_phases_spread_devices_evenly_and_deterministically() -> None:
    names = [f"county-{i}-r1" for i in range(6_000)]
    first = phases(names, 60.0)
    assert first == phases(reversed(names), 60.0)
    offsets = sorted(first.values())
    assert offsets[0] == 0.0 and offsets[-1] < 60.0
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(offsets)}
    assert gaps == {0.01}  # 100 devices a second, every second of the minute
    per_second = [sum(1 for o in offsets if s <= o < s + 1) for s in range(60)]
    assert set(per_second) == {100}


def test_backoff_doubles_up_to_five_minutes() -> None:
    assert [backoff_s(n, 60.0, 300.0) for n in range(6)] == [60, 60, 120, 240, 300, 300]
    assert backoff_s(10_000, 60.0, 300.0) == 300
    assert backoff_s(3, 600.0, 300.0) == 600  # never more often than the interval


def test_next_slot_keeps_the_phase() -> None:
    assert next_slot(100.0, 7.0, 60.0, 50.0) == 107.0
    assert next_slot(100.0, 7.0, 60.0, 107.0) == 167.0
    assert next_slot(100.0, 7.0, 60.0, 300.0) == 347.0


# ---- a fake transport ---------------------------------------------------------------------------


@dataclass
class FakeTransport:
    """Answers sysUpTime (and a small ifTable); per device: a delay, a failure, a script."""

    delay: Callable[[str], float] = lambda _device: 0.0
    fail: Callable[[str], PollFailure | None] = lambda _device: None
    calls: list[tuple[float, str, str]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    running: set[str] = field(default_factory=set)
    overlapped: bool = False
    rows: int = 3
    get_limit: int | None = None  # GETs with more varbinds answer tooBig
    bulk_limit: int | None = None  # GETBULK answers cut to whole repetitions within this

    async def _enter(self, target: SnmpTarget, what: str) -> PollFailure | None:
        self.calls.append((time.monotonic(), target.device, what))
        if target.device in self.running:
            self.overlapped = True
        self.running.add(target.device)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay(target.device))
        finally:
            self.in_flight -= 1
            self.running.discard(target.device)
        return self.fail(target.device)

    async def get(self, target: SnmpTarget, oids: Sequence[Oid]) -> GetResult:
        failure = await self._enter(target, f"get{len(oids)}")
        if failure is not None:
            return failure
        if self.get_limit is not None and len(oids) > self.get_limit:
            return error_status_failure(1, 0, oids)
        return [self._value(tuple(o)) for o in oids]

    def _value(self, oid: Oid) -> VarBind:
        if oid == SYS_UPTIME:
            return VarBind(oid, ValueKind.TIMETICKS, 123_456)
        if oid == IF_NUMBER:
            return VarBind(oid, ValueKind.INTEGER, self.rows)
        return VarBind(oid, ValueKind.NO_SUCH_OBJECT, None)

    async def bulk(
        self,
        target: SnmpTarget,
        non_repeaters: Sequence[Oid],
        repeaters: Sequence[Oid],
        max_repetitions: int,
    ) -> GetResult:
        failure = await self._enter(target, f"bulk{len(repeaters)}x{max_repetitions}")
        if failure is not None:
            return failure
        out = [self._value((*o, 0)) for o in non_repeaters]
        # ifTable / ifXTable columns with `rows` rows; past the last row: the next column.
        cursors = list(repeaters)
        reps = max_repetitions
        if self.bulk_limit is not None and repeaters:
            reps = min(reps, max(0, (self.bulk_limit - len(out)) // len(repeaters)))
        for _ in range(reps):
            for i, after in enumerate(cursors):
                nxt = _next(after, self.rows)
                out.append(nxt)
                cursors[i] = nxt.oid
        return out

    async def close(self) -> None:
        return None


def _next(after: Oid, rows: int) -> VarBind:
    """GETNEXT in a MIB holding IF-MIB columns 1..20 (ifTable) and 1..19 (ifXTable)."""
    for table, width in (((1, 3, 6, 1, 2, 1, 2, 2, 1), 20), ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1), 19)):
        n = len(table)
        if after[:n] < table:
            return _cell(table, 1, 1)
        if after[:n] == table:
            col = after[n] if len(after) > n else 1
            idx = after[n + 1] if len(after) > n + 1 else 0
            if idx < rows:
                return _cell(table, col, idx + 1)
            if col < width:
                return _cell(table, col + 1, 1)
    return VarBind(after, ValueKind.END_OF_MIB_VIEW, None)


def _cell(table: Oid, column: int, row: int) -> VarBind:
    oid = (*table, column, row)
    if column == 1 and len(table) == 10:  # ifName
        return VarBind(oid, ValueKind.OCTETS, f"Gi0/0/{row - 1}".encode())
    if column in (6, 10) and len(table) == 10:  # HC octets
        return VarBind(oid, ValueKind.COUNTER64, 1_000 * row)
    if column == 15 and len(table) == 10:  # ifHighSpeed
        return VarBind(oid, ValueKind.GAUGE32, 100)
    return VarBind(oid, ValueKind.INTEGER, 1)


def targets(n: int, kind: DeviceKind = DeviceKind.VIDEO_ENDPOINT) -> list[PollTarget]:
    creds = SnmpCredentials(SnmpVersion.V2C, community="x")
    platform = {DeviceKind.ROUTER: "junos", DeviceKind.VIDEO_ENDPOINT: "other"}[kind]
    return [
        PollTarget(
            device=f"dev{i:02d}",
            site=f"site{i}",
            province="prov",
            kind=kind,
            vendor="acme",
            platform=platform,
            model=None,
            credential_profile="p",
            snmp=SnmpTarget(f"dev{i:02d}", "127.0.0.1", 161, creds, timeout_s=0.5, retries=0),
        )
        for i in range(n)
    ]


def poller(transport: FakeTransport, config: PollerConfig, **kw: object) -> Poller:
    return Poller(transport, load_profiles(), config=config, **kw)  # type: ignore[arg-type]


async def run_for(p: Poller, seconds: float) -> float:
    task = asyncio.create_task(p.run())
    await asyncio.sleep(seconds)
    p.stop()
    started = time.monotonic()
    await asyncio.wait_for(task, 5)
    return time.monotonic() - started


# ---- the scheduled loop -------------------------------------------------------------------------


def test_devices_are_polled_on_their_phase_every_interval() -> None:
    transport = FakeTransport()
    p = poller(transport, PollerConfig(interval_s=0.4))
    p.set_targets(targets(8))

    asyncio.run(run_for(p, 1.3))
    firsts: dict[str, float] = {}
    per_device: dict[str, list[float]] = {}
    for at, dev, _ in transport.calls:
        firsts.setdefault(dev, at)
        per_device.setdefault(dev, []).append(at)
    starts = sorted(firsts.values())
    assert len(starts) == 8
    spread = starts[-1] - starts[0]
    assert 0.25 < spread < 0.4  # spread over the interval, not all at once
    for times in per_device.values():
        assert len(times) in (3, 4)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap == pytest.approx(0.4, abs=0.08) for gap in gaps)


def test_a_failing_device_backs_off_and_comes_back_on_success() -> None:
    broken = {"dev00"}

    def fail(device: str) -> PollFailure | None:
        if device in broken:
            return PollFailure(FailureCause.TIMEOUT, "no answer")
        return None

    transport = FakeTransport(fail=fail)
    latest = LatestStore()
    p = poller(transport, PollerConfig(interval_s=0.1, max_backoff_s=0.4), latest=latest)
    p.set_targets(targets(2))

    async def scenario() -> list[float]:
        task = asyncio.create_task(p.run())
        await asyncio.sleep(1.55)
        broken.clear()
        await asyncio.sleep(0.5)
        p.stop()
        await asyncio.wait_for(task, 5)
        return [at for at, dev, _ in transport.calls if dev == "dev00"]

    times = asyncio.run(scenario())
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(times)]
    # 0.1 s (1 failure), 0.2, 0.4, 0.4 (capped) ... then, answering again, every 0.1 s.
    assert gaps[:4] == [0.1, 0.2, 0.4, 0.4], gaps
    assert gaps[-3:] == [0.1, 0.1, 0.1], gaps
    snap = latest.device("dev00")
    assert snap is not None and snap.status.reachable is True
    assert snap.status.failure_cause is FailureCause.TIMEOUT  # the last failure is kept
    other = [at for at, dev, _ in transport.calls if dev == "dev01"]
    assert len(other) >= 18  # the failing neighbour changed nothing for it


def test_concurrency_is_limited_and_a_device_never_overlaps_itself() -> None:
    transport = FakeTransport(delay=lambda d: 0.5 if d == "dev00" else 0.05)
    p = poller(transport, PollerConfig(interval_s=0.2, concurrency=3))
    p.set_targets(targets(10))
    asyncio.run(run_for(p, 1.2))
    assert transport.most_in_flight <= 3
    assert not transport.overlapped
    assert p.stats.overruns >= 1  # dev00 takes longer than its interval: skipped, counted


def test_stop_ends_the_loop_even_with_a_hung_poll() -> None:
    transport = FakeTransport(delay=lambda d: 30.0 if d == "dev00" else 0.0)
    p = poller(transport, PollerConfig(interval_s=0.2, stop_grace_s=0.3))
    p.set_targets(targets(3))
    took = asyncio.run(run_for(p, 0.5))
    assert took < 1.0


def test_poll_once_gives_per_device_results_and_internal_errors_are_data() -> None:
    def fail(device: str) -> PollFailure | None:
        if device == "dev01":
            raise RuntimeError("a bug in a transport")
        if device == "dev02":
            return PollFailure(FailureCause.MALFORMED, "garbage")
        return None

    sink = MemorySink()
    p = poller(FakeTransport(fail=fail), PollerConfig(), sink=sink)
    ts = targets(4)
    ts[3] = replace(
        ts[3],
        snmp=None,
        problem=PollFailure(FailureCause.CONFIG, "credential profile 'p': secret missing"),
    )
    p.set_targets(ts)
    results = asyncio.run(p.poll_once())
    assert [r.ok for r in results] == [True, False, False, False]
    assert results[1].failure is not None and results[1].failure.cause is FailureCause.INTERNAL
    assert "a bug in a transport" in results[1].failure.detail
    assert results[2].failure == PollFailure(FailureCause.MALFORMED, "garbage")
    assert results[3].failure is not None and results[3].failure.cause is FailureCause.CONFIG
    assert results[0].profile == "generic_snmp"
    assert [pt.fields for pt in sink.of("device", device="dev00")] == [
        {"reachable": True, "response_ms": pytest.approx(0, abs=50), "uptime_s": 1234.56}
    ]
    assert sink.of("device", device="dev02")[0].fields == {"reachable": False}
    assert not sink.of("device", device="dev03")  # never polled: nothing measured


# ---- what is asked -------------------------------------------------------------------------------


def test_a_router_walk_ends_by_ifnumber_once_the_table_size_is_known() -> None:
    transport = FakeTransport(rows=3, bulk_limit=2 + 8 * 3)  # room for 3 rows, not the end
    p = poller(transport, PollerConfig(verify_every=3))
    p.set_targets(targets(1, DeviceKind.ROUTER))  # vendor acme: the generic_router profile
    sink = MemorySink()
    p.sink = sink

    async def rounds(n: int) -> list[int]:
        out = []
        for _ in range(n):
            (r,) = await p.poll_once()
            assert r.ok, r
            out.append(r.requests)
        return out

    requests = asyncio.run(rounds(4))
    # First: a walk to the end, which takes a second request to see it; then one request, as
    # ifNumber says 3 and the last full walk found 3; every 3rd walk goes to the end again.
    assert requests == [2, 1, 1, 2]
    rows = sink.of("interface")
    assert {pt.tags["ifname"] for pt in rows} == {"Gi0/0/0", "Gi0/0/1", "Gi0/0/2"}
    assert all(pt.fields["speed_bps"] == 100e6 for pt in rows)


def test_too_big_answers_split_the_get() -> None:
    transport = FakeTransport(get_limit=3)
    p = poller(transport, PollerConfig())
    terminal = replace(
        targets(1)[0], kind=DeviceKind.SATELLITE_TERMINAL, vendor="comtech", platform="comtech_cdm"
    )
    p.set_targets([terminal])
    (result,) = asyncio.run(p.poll_once())
    assert result.ok and result.profile == "comtech_cdm"
    sizes = [int(what[3:]) for _, _, what in transport.calls]
    assert sizes[0] == 12  # sysUpTime + 11 modem objects: tooBig, split in halves ...
    answered = [n for n in sizes if n <= 3]
    assert sum(answered) == 12  # ... until every object was asked exactly once


def test_oid_count_reports_what_a_poll_reads() -> None:
    p = poller(FakeTransport(rows=3), PollerConfig())
    p.set_targets(targets(1, DeviceKind.ROUTER))
    asyncio.run(p.poll_once())
    assert p.oid_count("dev00") == 2 + 8 * 3  # sysUpTime, ifNumber, 8 columns x 3 rows


def test_a_device_no_profile_matches_is_a_config_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "routers.yaml").write_text(
        "name: routers\nmatch: {kind: router}\nscalars:\n"
        "  - {name: sysUpTime, oid: 1.3.6.1.2.1.1.3.0, type: scaled, factor: 0.01,\n"
        "     measurement: device, field: uptime_s, role: uptime}\n",
        encoding="utf-8",
    )
    transport = FakeTransport()
    p = Poller(transport, load_profiles(tmp_path))
    with caplog.at_level(logging.ERROR, logger="monitors.poller"):
        p.set_targets(targets(2))
        p.set_targets(targets(2))  # an inventory reload: not said again
        results = asyncio.run(p.poll_once())
    assert not transport.calls
    for r in results:
        assert r.failure is not None and r.failure.cause is FailureCause.CONFIG
        assert "no SNMP device profile matches kind=video_endpoint" in r.failure.detail
    said = [r for r in caplog.records if "no SNMP device profile" in r.getMessage()]
    assert len(said) == 2 + 2  # once per device at set_targets, once per device's first failure
