"""The prober against the lab's UDP echo responders: quality, faults, health end to end.

The lab answers each link's probe address with the link's loss/latency/jitter (``lab/probes.py``)
and stays silent while the link is cut. Probes run fast here (every 20 ms, 3 s window) and the
health policy is scaled to match, so a cut and a recovery take seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import pytest

from inventory.document import InventoryDoc
from inventory.enums import LinkRole
from inventory.generator import generate
from lab.build import lab_secret_defaults
from lab.runner import Lab, LabConfig
from monitors.health import TERRESTRIAL, HealthBoard, LinkEvidence, LinkRef
from monitors.linkstate import Health, LinkHealthReport
from monitors.probes import MEASUREMENT, ProbeConfig, ProbeEngine, ProbeTarget
from monitors.sinks.base import Sample

FAST = ProbeConfig(
    interval_s=0.02, timeout_s=1.0, window_s=3.0, recent_probes=5, write_every_s=0.5, tick_s=0.005
)
COUNTY = "bj-tongzhou"


@dataclass
class ListSink:
    points: list[Sample] = field(default_factory=list)

    async def write(self, points: Sequence[Sample]) -> None:
        self.points.extend(points)

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
def doc(monkeypatch: pytest.MonkeyPatch) -> InventoryDoc:
    d = generate(provinces=1, counties=3, seed=0)
    for name, value in lab_secret_defaults(d).items():
        monkeypatch.setenv(name, value)
    return d


def targets(doc: InventoryDoc, site: str = COUNTY) -> list[ProbeTarget]:
    return [
        ProbeTarget(lk.name, s.name, lk.role.value, str(lk.probe_address), province="beijing")
        for s in doc.sites
        if s.name == site
        for lk in s.links
    ]


@asynccontextmanager
async def running(
    doc: InventoryDoc, config: ProbeConfig, sink: ListSink | None = None
) -> AsyncIterator[tuple[Lab, ProbeEngine]]:
    offset = random.Random().randrange(20_000, 60_000, 10)
    lab = await Lab.start(
        LabConfig(doc=doc, faces=("probes",), control=None, port_offset=offset, seed=1)
    )
    engine = ProbeEngine(
        replace(config, port=7 + offset),
        sink=sink,
        targets=targets(doc),
        rng=random.Random(3),
    )
    await engine.start()
    try:
        yield lab, engine
    finally:
        await engine.close()
        await lab.stop()


def test_a_healthy_link_measures_the_lab_latency_and_no_loss(doc: InventoryDoc) -> None:
    sink = ListSink()

    async def scenario() -> None:
        async with running(doc, FAST, sink) as (lab, engine):
            await asyncio.sleep(3.2)
            for target in targets(doc):
                link = lab.net.links[target.link]
                _, latency, jitter = link.effective()
                reading = engine.reading(target.link)
                assert reading is not None, target.link
                q = reading.quality
                assert q.samples >= 100, (target.link, q)
                assert q.loss_pct <= 1.0, (target.link, q)
                assert q.rtt_ms is not None and abs(q.rtt_ms - latency) < 0.05 * latency + 3.0
                assert q.jitter_ms is not None and abs(q.jitter_ms - jitter) < 0.5 * jitter + 1.0
                assert reading.recent_loss_pct == 0.0
            stats = engine.stats
            assert stats.sent > 400 and stats.unmatched == 0 and stats.send_errors == 0
            assert engine.quality("not-a-link") is None

    asyncio.run(scenario())
    written = [p for p in sink.points if p.tags["link"] == f"{COUNTY}-primary"]
    assert 3 <= len(written) <= 8  # every 0.5 s, not every probe
    point = written[-1]
    assert point.measurement == MEASUREMENT
    assert point.tags == {
        "link": f"{COUNTY}-primary",
        "site": COUNTY,
        "role": "primary",
        "province": "beijing",
    }
    assert set(point.fields) == {"loss_pct", "rtt_ms", "jitter_ms", "probes"}
    assert isinstance(point.fields["probes"], int) and isinstance(point.fields["rtt_ms"], float)
    assert abs(point.time_ns - time.time_ns()) < 60 * 10**9


def test_loss_is_measured_within_tolerance(doc: InventoryDoc) -> None:
    async def scenario() -> None:
        async with running(doc, FAST) as (lab, engine):
            name = f"{COUNTY}-backup"
            lab.book.apply("link_quality", {"link": name, "loss_pct": 30})
            await asyncio.sleep(3.0 + FAST.timeout_s + 0.3)  # a whole window under the fault
            reading = engine.reading(name)
            assert reading is not None
            q = reading.quality
            # 150 probes: the standard deviation of the estimate is 3.7 points
            assert 30.0 - 15.0 <= q.loss_pct <= 30.0 + 15.0, q
            other = engine.reading(f"{COUNTY}-primary")
            assert other is not None and other.quality.loss_pct <= 1.0

    asyncio.run(scenario())


def test_a_cut_is_down_within_the_hold_and_recovers_after_the_recovery_hold(
    doc: InventoryDoc,
) -> None:
    policy = TERRESTRIAL.scaled(0.1)  # down 0.3 s, clear 1 s, degraded 1 s, up 3 s
    board = HealthBoard(policies=dict.fromkeys(LinkRole, policy))
    name = f"{COUNTY}-primary"
    board.set_links([LinkRef(name, COUNTY, LinkRole.PRIMARY)], now=time.monotonic())
    changes: list[tuple[float, LinkHealthReport]] = []

    async def watch(engine: ProbeEngine, until: float) -> None:
        while time.monotonic() < until:
            now = time.monotonic()
            changed = board.evaluate(name, LinkEvidence(engine.reading(name)), now)
            if changed is not None:
                changes.append((now, changed))
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        async with running(doc, FAST) as (lab, engine):
            await watch(engine, time.monotonic() + 1.5)
            assert board.report(name) is not None
            assert [c.health for _, c in changes] == [Health.UP]

            cut_at = time.monotonic()
            lab.book.apply("cut_link", {"link": name})
            await watch(engine, cut_at + 2.5)
            down = [(t, c) for t, c in changes if c.health is Health.DOWN]
            assert len(down) == 1
            # the timeout (1 s), 4 more probes (0.08 s), the hold (0.3 s), and evaluation
            assert 1.3 <= down[0][0] - cut_at < 2.0
            assert down[0][1].reason.startswith("loss 100.0% >= 80% for 0.")

            restored_at = time.monotonic()
            lab.book.apply("restore_link", {"link": name})
            await watch(engine, restored_at + 9.0)
            after = [(t - restored_at, c.health) for t, c in changes if t > restored_at]
            assert [h for _, h in after] == [Health.DEGRADED, Health.UP]
            # DEGRADED after the clear hold (1 s); UP once the 3 s window is clean and 3 s more
            assert 1.0 <= after[0][0] < 2.5
            assert 6.0 <= after[1][0] < 8.5

    asyncio.run(scenario())


def test_replies_from_elsewhere_or_forged_are_not_counted(doc: InventoryDoc) -> None:
    async def scenario() -> None:
        async with running(doc, FAST) as (_lab, engine):
            await asyncio.sleep(0.3)
            sock = engine._sock
            assert sock is not None
            port = sock.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
                forger.sendto(b"TDP1" + bytes(20), ("127.0.0.1", port))  # wrong nonce
                forger.sendto(b"short", ("127.0.0.1", port))
            await asyncio.sleep(0.2)
            assert engine.stats.unmatched == 2

    asyncio.run(scenario())


def test_targets_follow_the_inventory(doc: InventoryDoc) -> None:
    async def scenario() -> None:
        async with running(doc, FAST) as (_lab, engine):
            await asyncio.sleep(0.5)
            keep = targets(doc)[:1]
            engine.set_targets(keep)
            assert [t.link for t in engine.targets()] == [keep[0].link]
            assert engine.reading(f"{COUNTY}-backup") is None
            sent = engine.stats.sent
            await asyncio.sleep(0.3)
            # one link left at 50 probes/s
            assert 5 <= engine.stats.sent - sent <= 25
            assert engine.stats.links == 1

    asyncio.run(scenario())
