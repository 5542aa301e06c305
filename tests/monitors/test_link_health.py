"""Link health with hysteresis, driven by a fake clock and a simulated probe stream (no sleeps)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from inventory.enums import LinkRole
from monitors.health import (
    DEFAULT_POLICIES,
    SATELLITE,
    TERRESTRIAL,
    HealthBoard,
    HealthPolicy,
    LinkEvidence,
    LinkHealth,
    LinkRef,
    ProbeReading,
)
from monitors.linkstate import Health, LinkHealthReport, LinkQuality

REF = LinkRef("gd-qujiang-primary", "gd-qujiang", LinkRole.PRIMARY)
SAT = LinkRef("gd-qujiang-satellite", "gd-qujiang", LinkRole.SATELLITE)


@dataclass
class Stream:
    """Probe results one per second, summarised as the prober does (30 s window, last 5)."""

    window_s: float = 30.0
    recent: int = 5
    results: deque[tuple[float, float | None]] = field(default_factory=deque)  # (t, rtt or lost)

    def add(self, t: float, rtt: float | None) -> None:
        self.results.append((t, rtt))
        while self.results and self.results[0][0] < t - self.window_s:
            self.results.popleft()

    def reading(self, t: float) -> ProbeReading:
        rows = list(self.results)
        rtts = [r for _, r in rows if r is not None]
        lost = len(rows) - len(rtts)
        diffs = [abs(a - b) for a, b in itertools.pairwise(rtts)]
        last = [r for _, r in rows[-self.recent :]]
        return ProbeReading(
            quality=LinkQuality(
                loss_pct=100.0 * lost / len(rows),
                rtt_ms=sum(rtts) / len(rtts) if rtts else None,
                jitter_ms=sum(diffs) / len(diffs) if diffs else None,
                samples=len(rows),
            ),
            recent_loss_pct=100.0 * sum(r is None for r in last) / len(last),
            at=rows[-1][0],
        )


@dataclass
class Sim:
    """A link under a fake clock: ``run`` feeds one probe per second and records transitions."""

    ref: LinkRef = REF
    policy: HealthPolicy = TERRESTRIAL
    t: float = 1000.0
    stream: Stream = field(default_factory=Stream)
    interface_up: bool | None = True
    changes: list[LinkHealthReport] = field(default_factory=list)
    health: LinkHealth = field(init=False)

    def __post_init__(self) -> None:
        self.health = LinkHealth(self.ref, self.policy, self.t)

    @property
    def state(self) -> Health:
        return self.health.report.health

    def step(self, rtt: float | None, *, probe: bool = True) -> LinkHealthReport | None:
        self.t += 1.0
        if probe:
            self.stream.add(self.t, rtt)
        reading = self.stream.reading(self.t) if self.stream.results else None
        evidence = LinkEvidence(
            reading, self.interface_up, self.t if self.interface_up is not None else None
        )
        changed = self.health.update(evidence, self.t)
        if changed is not None:
            self.changes.append(changed)
        return changed

    def run(self, seconds: int, rtt: Callable[[int], float | None] | float | None) -> None:
        for i in range(seconds):
            self.step(rtt(i) if callable(rtt) else rtt)

    def healthy(self) -> None:
        """Bring the link to UP from start-up."""
        self.run(15, 20.0)
        assert self.state is Health.UP


def test_unknown_until_enough_probe_results_then_up_with_the_numbers() -> None:
    sim = Sim()
    assert sim.state is Health.UNKNOWN and sim.health.report.reason == "not evaluated yet"
    sim.run(5, 20.0)
    assert sim.state is Health.UNKNOWN
    assert sim.health.report.reason == "waiting for 10 probe results (5 so far)"
    sim.run(5, 20.0)
    assert sim.state is Health.UP
    assert sim.changes[-1].reason == "loss 0.0% < 5%, rtt 20.0 ms <= 150 ms, jitter 0.0 ms <= 30 ms"
    assert sim.changes[-1].since == sim.t


def test_a_cut_is_down_after_the_hold_and_not_before() -> None:
    sim = Sim()
    sim.healthy()
    cut_at = sim.t
    sim.run(3, None)  # the last 5 probes hold 3 losses: 60 %, below 80 %
    assert sim.state is Health.UP
    sim.step(None)  # 4 of 5 lost: the down condition starts
    sim.run(2, None)
    assert sim.state is Health.UP  # held 2 s of 3
    sim.step(None)
    assert sim.state is Health.DOWN
    report = sim.changes[-1]
    assert report.reason == "loss 100.0% >= 80% for 3.0 s"
    assert report.since - cut_at == 7.0  # 4 probes to see it, 3 s to believe it
    assert report.quality is not None and report.quality.loss_pct > 20.0


def test_interface_down_is_down_after_the_hold_even_while_probes_answer() -> None:
    sim = Sim()
    sim.healthy()
    sim.interface_up = False
    sim.run(3, 20.0)
    assert sim.state is Health.UP
    sim.step(20.0)
    assert sim.state is Health.DOWN
    assert sim.changes[-1].reason == "interface down for 3.0 s"
    assert sim.changes[-1].interface_up is False


def test_recovery_goes_through_degraded_and_up_needs_the_long_hold() -> None:
    sim = Sim()
    sim.healthy()
    sim.run(20, None)
    assert sim.state is Health.DOWN
    restored = sim.t
    sim.run(70, 20.0)
    states = [(c.health, c.since - restored) for c in sim.changes[-2:]]
    # recent loss < 20 % after 4 good probes, held 10 s: degraded ("recovering")
    assert states[0] == (Health.DEGRADED, 15.0)
    assert sim.changes[-2].reason.startswith(
        "recovering: loss 0.0% < 20% and interface up for 10.0"
    )
    # the 30 s window is clean 30 s after the restore, then 30 s more of clean probes
    assert states[1][0] is Health.UP and states[1][1] >= 30.0 + 30.0
    assert sim.changes[-1].reason.endswith("for 30.0 s")


def test_loss_degrades_after_its_hold_and_sitting_on_the_threshold_does_not_flap() -> None:
    sim = Sim()
    sim.healthy()
    sim.run(60, lambda i: None if i % 10 == 0 else 20.0)  # 10 % loss: 3 of 30
    degraded = [c for c in sim.changes if c.health is Health.DEGRADED]
    assert len(degraded) == 1 and degraded[0].reason.startswith("loss ")
    assert "% >= 5% for 10.0 s" in degraded[0].reason
    # 3.3 % loss: better than the degraded limit, worse than the up limit: stays degraded
    sim.run(120, lambda i: None if i % 30 == 0 else 20.0)
    assert sim.state is Health.DEGRADED
    assert [c.health for c in sim.changes] == [Health.UP, Health.DEGRADED]


def test_rtt_limits_depend_on_the_role() -> None:
    terrestrial = Sim()
    terrestrial.healthy()
    terrestrial.run(30, 200.0)
    assert terrestrial.state is Health.UP  # the 30 s window's mean lags: 141 ms so far
    terrestrial.run(5, 200.0)
    assert terrestrial.state is Health.DEGRADED
    assert terrestrial.changes[-1].reason.startswith("rtt ")
    assert "ms > 150 ms for 10.0 s" in terrestrial.changes[-1].reason

    satellite = Sim(ref=SAT, policy=SATELLITE)
    satellite.run(40, 620.0)
    assert satellite.state is Health.UP  # 620 ms is a healthy GEO hop
    satellite.run(40, 950.0)
    assert satellite.state is Health.DEGRADED
    assert "ms > 900 ms for 10.0 s" in satellite.changes[-1].reason
    assert DEFAULT_POLICIES[LinkRole.SATELLITE] is SATELLITE
    assert DEFAULT_POLICIES[LinkRole.BACKUP] is TERRESTRIAL


def test_jitter_degrades() -> None:
    sim = Sim()
    sim.healthy()
    sim.run(40, lambda i: 20.0 if i % 2 else 100.0)  # mean |dRTT| 80 ms, mean RTT 60 ms
    assert sim.state is Health.DEGRADED
    assert sim.changes[-1].reason.startswith("jitter ") and "> 30 ms" in sim.changes[-1].reason


def test_rtt_wandering_around_the_limit_never_changes_the_state() -> None:
    sim = Sim()
    sim.healthy()
    # 2 s at 170 ms, 2 s at 130 ms: the window's mean crosses 150 ms for 2 s at a time
    sim.run(300, lambda i: 170.0 if (i // 2) % 2 else 130.0)
    assert sim.state is Health.UP and len(sim.changes) == 1
    # once degraded, between the up limit (120 ms) and the degraded one (150 ms) is not enough
    sim.run(40, 200.0)
    assert sim.state is Health.DEGRADED
    sim.run(120, 130.0)
    assert sim.state is Health.DEGRADED
    sim.run(70, 100.0)
    assert sim.state is Health.UP
    assert "rtt 100.0 ms <= 120 ms" in sim.changes[-1].reason


def test_fast_flapping_input_does_not_flap_the_output() -> None:
    sim = Sim()
    sim.healthy()
    sim.run(600, lambda i: None if (i // 2) % 2 else 20.0)  # 2 s dead, 2 s alive, for 10 min
    assert [c.health for c in sim.changes] == [Health.UP, Health.DEGRADED]


def test_slow_flapping_is_damped_into_staying_down() -> None:
    sim = Sim()
    sim.healthy()
    # 8 s dead, 16 s alive, for 10 minutes: without damping, 25 rounds of down/degraded
    sim.run(600, lambda i: None if i % 24 < 8 else 20.0)
    downs = [c for c in sim.changes if c.health is Health.DOWN]
    assert 1 <= len(downs) <= 3
    assert sim.state is Health.DOWN
    assert len(sim.changes) <= 6
    recovering = [c for c in sim.changes if c.reason.startswith("recovering")]
    assert all("downs in 600 s" in c.reason for c in recovering[1:])
    # once it stays alive, the damped hold (at most flap_max_hold_s) lets it recover
    sim.run(400, 20.0)
    assert sim.state is Health.UP


def test_stale_probes_make_it_unknown_and_fresh_ones_bring_it_back() -> None:
    sim = Sim()
    sim.healthy()
    for _ in range(10):
        sim.step(None, probe=False)
    assert sim.state is Health.UP  # 10 s without a result: still fresh enough
    sim.step(None, probe=False)
    assert sim.state is Health.UNKNOWN
    assert sim.changes[-1].reason == "no probe result for 11.0 s; interface up"
    sim.step(20.0)
    assert sim.state is Health.UP


def test_no_probes_and_no_interface_status_is_unknown_with_the_reason() -> None:
    sim = Sim()
    sim.interface_up = None
    sim.step(None, probe=False)
    assert sim.state is Health.UNKNOWN and sim.health.report.reason == "never probed"


def test_a_scaled_policy_scales_every_time() -> None:
    fast = TERRESTRIAL.scaled(0.1)
    assert (fast.down_hold_s, fast.up_hold_s, fast.probe_stale_s) == pytest.approx((0.3, 3.0, 1.0))
    assert fast.down_loss_pct == TERRESTRIAL.down_loss_pct


def test_inconsistent_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="up <= degraded <= down"):
        HealthPolicy(up_loss_pct=10.0, degraded_loss_pct=5.0)
    with pytest.raises(ValueError, match="up_rtt_ms"):
        HealthPolicy(up_rtt_ms=200.0, degraded_rtt_ms=150.0)


def test_the_board_follows_the_inventory() -> None:
    board = HealthBoard()
    board.set_links([REF, SAT], now=0.0)
    assert {r.link for r in board.links()} == {REF.link, SAT.link}
    assert board.policy_for(LinkRole.SATELLITE) is SATELLITE
    reading = ProbeReading(LinkQuality(0.0, 20.0, 1.0, 30), 0.0, at=1.0)
    changed = board.evaluate(REF.link, LinkEvidence(reading), now=1.0)
    assert changed is not None and changed.health is Health.UP
    assert board.evaluate(REF.link, LinkEvidence(reading), now=1.5) is None
    report = board.report(REF.link)
    assert report is not None and report.at == 1.5 and report.since == 1.0

    moved = LinkRef(REF.link, "elsewhere", LinkRole.PRIMARY)
    board.set_links([moved], now=2.0)
    assert board.report(SAT.link) is None
    fresh = board.report(REF.link)
    assert fresh is not None and fresh.health is Health.UNKNOWN and fresh.site == "elsewhere"
    with pytest.raises(KeyError):
        board.evaluate(SAT.link, LinkEvidence(), now=3.0)
