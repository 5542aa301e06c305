"""``HealthFeed``: what the failover engine in ``tiandi serve`` learns from the state file.

A real state file (SQLite, as the prober writes it) and a fake clock: changes are passed on
once, unchanged reports are not repeated, a link whose prober stopped becomes ``unknown`` once,
and comes back when fresh reports arrive again.
"""

from __future__ import annotations

from pathlib import Path

from monitors.linkstate import Health, LinkHealthReport, LinkQuality
from monitors.state_store import StateStore
from tiandi.failover_runtime import HealthFeed


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def report(link: str, health: Health, since: float, at: float) -> LinkHealthReport:
    return LinkHealthReport(
        link=link,
        site="bj-tongzhou",
        health=health,
        since=since,
        at=at,
        quality=LinkQuality(loss_pct=0.0, rtt_ms=21.5, jitter_ms=1.2, samples=10),
        interface_up=True,
        reason="loss 0.0% < 1%",
    )


def test_changes_are_passed_on_once(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    clock = Clock()
    feed = HealthFeed(state, stale_after_s=30.0, clock=clock)
    state.put_links([report("p", Health.UP, 990.0, 999.0), report("b", Health.UP, 980.0, 999.0)])
    first = feed.poll()
    assert {(r.link, r.health) for r in first} == {("p", Health.UP), ("b", Health.UP)}
    assert first[0].quality is not None and first[0].quality.rtt_ms == 21.5

    # the prober re-evaluates every round (new ``at``), nothing changed: nothing to pass on
    clock.now = 1001.0
    state.put_links([report("p", Health.UP, 990.0, 1000.5), report("b", Health.UP, 980.0, 1000.5)])
    assert feed.poll() == []

    clock.now = 1002.0
    state.put_links([report("p", Health.DOWN, 1001.8, 1001.8)])
    changed = feed.poll()
    assert [(r.link, r.health, r.since) for r in changed] == [("p", Health.DOWN, 1001.8)]
    assert feed.poll() == []  # the overlap re-reads that row: still passed on only once


def test_an_older_row_never_replaces_a_newer_one(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    clock = Clock(1010.0)
    feed = HealthFeed(state, clock=clock)
    state.put_links([report("p", Health.DOWN, 1009.0, 1009.5)])
    assert [r.health for r in feed.poll()] == [Health.DOWN]
    # a late commit of an earlier evaluation, within the overlap the feed re-reads
    state.put_links([report("p", Health.UP, 1009.2, 1009.3)])
    clock.now = 1010.2
    assert feed.poll() == []


def test_a_stale_link_is_passed_on_as_unknown_once_then_recovers(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    clock = Clock(1000.0)
    feed = HealthFeed(state, stale_after_s=30.0, full_every_s=0.0, clock=clock)
    state.put_links([report("p", Health.UP, 900.0, 999.0)])
    assert [r.health for r in feed.poll()] == [Health.UP]

    clock.now = 1029.0  # 30 s after the last evaluation: not yet stale
    assert feed.poll() == []
    clock.now = 1031.0
    stale = feed.poll()
    assert [(r.link, r.health, r.at) for r in stale] == [("p", Health.UNKNOWN, 1031.0)]
    assert "no health from the monitor for 32 s" in stale[0].reason
    clock.now = 1040.0
    assert feed.poll() == []  # told once

    # the prober is back: its (unchanged) UP is news again after the unknown
    state.put_links([report("p", Health.UP, 900.0, 1039.5)])
    back = feed.poll()
    assert [(r.health, r.since) for r in back] == [(Health.UP, 900.0)]


def test_reports_already_stale_at_start_are_not_used(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    state.put_links([report("p", Health.DOWN, 100.0, 200.0)])  # a prober long gone
    feed = HealthFeed(state, stale_after_s=30.0, clock=Clock(1000.0))
    assert feed.poll() == []  # never its old DOWN: the engine starts every link unknown


class CountingStore(StateStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[tuple[str, int]] = []

    def link_reports(self, changed_after: float | None = None) -> list[LinkHealthReport]:
        found = super().link_reports(changed_after)
        self.reads.append(("reports", len(found)))
        return found

    def link_marks(self) -> list[tuple[str, Health, float, float]]:
        found = super().link_marks()
        self.reads.append(("marks", len(found)))
        return found

    def link_report(self, link: str) -> LinkHealthReport | None:
        self.reads.append(("report", 1))
        return super().link_report(link)


def test_between_full_reads_only_changed_rows_are_read(tmp_path: Path) -> None:
    state = CountingStore(tmp_path / "state.db")
    clock = Clock(1000.0)
    feed = HealthFeed(state, stale_after_s=30.0, full_every_s=5.0, clock=clock)
    links = [f"l{i}" for i in range(200)]
    state.put_links(report(n, Health.UP, 900.0, 999.9) for n in links)
    assert len(feed.poll()) == 200
    assert state.reads.count(("report", 1)) == 200  # first sight: every whole report
    state.reads.clear()
    for step in range(1, 30):  # the prober re-publishes every row; one link goes down
        clock.now = 1000.0 + step * 0.2
        state.put_links(report(n, Health.UP, 900.0, clock.now - 0.1) for n in links[1:])
        if step == 10:
            state.put_links([report("l0", Health.DOWN, clock.now - 0.1, clock.now - 0.1)])
        out = feed.poll()
        assert [(r.link, r.health) for r in out] == ([("l0", Health.DOWN)] if step == 10 else [])
    # one full read of the marks after 5 s, and no whole report (nothing new by then); the
    # short reads return the one changed row at most
    assert state.reads.count(("marks", 200)) == 1
    assert ("report", 1) not in state.reads
    assert max(n for kind, n in state.reads if kind == "reports") <= 1


def test_a_link_first_seen_with_an_old_since_arrives_with_the_next_full_read(
    tmp_path: Path,
) -> None:
    state = StateStore(tmp_path / "state.db")
    clock = Clock(1000.0)
    feed = HealthFeed(state, stale_after_s=30.0, full_every_s=5.0, clock=clock)
    assert feed.poll() == []  # the prober has not written yet
    state.put_links([report("p", Health.UP, 900.0, 1000.5)])  # up for long: an old ``since``
    clock.now = 1001.0
    assert feed.poll() == []  # not a change of the last seconds: the short read skips it
    clock.now = 1005.0
    assert [(r.link, r.health) for r in feed.poll()] == [("p", Health.UP)]
