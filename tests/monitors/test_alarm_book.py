"""Alarms: raise/clear, acknowledgement, suppression behind a parent and in maintenance. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from inventory.errors import NotFound
from inventory.validation import validate_or_raise
from monitors.alarms import (
    AlarmBook,
    AlarmKind,
    AlarmPolicy,
    DeviceCondition,
    Severity,
    Topology,
    site_conditions,
)
from monitors.linkstate import Health, LinkHealthReport
from tests.harness.samples import site, small_inventory

QUJIANG = "guangdong-shaoguan-qujiang"
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def topology(raw: dict[str, Any] | None = None) -> Topology:
    return Topology.from_document(validate_or_raise(raw or small_inventory()))


def report(link: str, health: Health, reason: str = "test") -> LinkHealthReport:
    site_name = link.rsplit("-", 1)[0]
    return LinkHealthReport(link, site_name, health, 0.0, 0.0, None, None, reason)


class World:
    """Link health and device conditions to evaluate, and the book."""

    def __init__(self, raw: dict[str, Any] | None = None, **policy: Any) -> None:
        self.book = AlarmBook(topology(raw), AlarmPolicy(**policy))
        self.links: dict[str, LinkHealthReport] = {}
        self.devices: dict[str, DeviceCondition] = {}

    def link(self, name: str, health: Health, reason: str = "test") -> None:
        self.links[name] = report(name, health, reason)

    def cut_site(self, name: str) -> None:
        for lk in self.book.topology.site_links[name]:
            self.link(lk, Health.DOWN)

    def evaluate(self, at: datetime = T0) -> list[tuple[str, AlarmKind, str]]:
        return [
            (c.change, c.alarm.kind, c.alarm.target)
            for c in self.book.evaluate(self.links, self.devices, at)
        ]


def test_the_topology_knows_provinces_and_memberships() -> None:
    topo = topology()
    assert topo.sites[QUJIANG].province == "guangdong"
    assert topo.sites[QUJIANG].province_code == "44"
    assert topo.sites["ministry"].province is None
    assert topo.site_links[QUJIANG] == (f"{QUJIANG}-primary", f"{QUJIANG}-backup", f"{QUJIANG}-sat")
    assert topo.in_province(QUJIANG, "440000") and topo.in_province(QUJIANG, "guangdong")
    assert not topo.in_province(QUJIANG, "51")


def test_a_link_alarm_is_raised_updated_and_cleared() -> None:
    w = World()
    w.link(f"{QUJIANG}-primary", Health.DOWN, "loss 100.0% >= 80% for 3.0 s")
    assert w.evaluate() == [("raised", AlarmKind.LINK_DOWN, f"{QUJIANG}-primary")]
    alarm = w.book.alarms(active=True)[0]
    assert alarm.severity is Severity.MAJOR and alarm.site == QUJIANG
    assert alarm.province == "guangdong" and not alarm.suppressed
    assert alarm.message == f"primary link {QUJIANG}-primary down: loss 100.0% >= 80% for 3.0 s"
    assert w.evaluate(T0 + timedelta(seconds=1)) == []  # nothing changed

    w.link(f"{QUJIANG}-primary", Health.DEGRADED, "recovering: ...")
    changes = w.evaluate(T0 + timedelta(seconds=2))
    assert ("cleared", AlarmKind.LINK_DOWN, f"{QUJIANG}-primary") in changes
    assert ("raised", AlarmKind.LINK_DEGRADED, f"{QUJIANG}-primary") in changes
    w.link(f"{QUJIANG}-primary", Health.UP)
    w.evaluate(T0 + timedelta(seconds=3))
    assert w.book.alarms(active=True) == []
    history = w.book.alarms(active=False)
    assert [a.kind for a in history] == [AlarmKind.LINK_DOWN, AlarmKind.LINK_DEGRADED]
    assert history[0].cleared_at == T0 + timedelta(seconds=2)

    w.link(f"{QUJIANG}-primary", Health.DOWN)
    w.evaluate(T0 + timedelta(seconds=4))
    again = w.book.alarms(active=True)[0]
    assert again.id > alarm.id  # a new occurrence is a new alarm


def test_severity_by_role_and_device_kind() -> None:
    w = World()
    w.link(f"{QUJIANG}-backup", Health.DOWN)
    w.devices[f"{QUJIANG}-r1"] = DeviceCondition(False, "timeout: no answer after 1 retry")
    w.devices[f"{QUJIANG}-ep1"] = DeviceCondition(False, "auth_failed: wrong digest")
    w.devices[f"{QUJIANG}-sat1"] = DeviceCondition(True)
    w.evaluate()
    by_target = {a.target: a for a in w.book.alarms()}
    assert by_target[f"{QUJIANG}-backup"].severity is Severity.MINOR
    router = by_target[f"{QUJIANG}-r1"]
    assert router.kind is AlarmKind.DEVICE_UNREACHABLE and router.severity is Severity.MAJOR
    assert router.message == f"router {QUJIANG}-r1 unreachable: timeout: no answer after 1 retry"
    assert by_target[f"{QUJIANG}-ep1"].severity is Severity.MINOR
    assert f"{QUJIANG}-sat1" not in by_target
    # the only router is unreachable: the site is cut off
    outage = by_target[QUJIANG]
    assert outage.kind is AlarmKind.SITE_UNREACHABLE and outage.severity is Severity.CRITICAL
    assert outage.message == f"site {QUJIANG} unreachable: router(s) {QUJIANG}-r1 unreachable"


def test_a_site_behind_an_unreachable_parent_is_reported_as_such() -> None:
    w = World()
    w.cut_site("guangdong")
    w.cut_site(QUJIANG)
    w.link("sichuan-luding-primary", Health.DOWN)
    w.evaluate()
    alarms = {(a.kind, a.target): a for a in w.book.alarms()}
    parent = alarms[(AlarmKind.SITE_UNREACHABLE, "guangdong")]
    assert parent.message == "site guangdong unreachable: all 2 link(s) down"
    assert not parent.suppressed and parent.behind_parent is None

    child = alarms[(AlarmKind.SITE_UNREACHABLE, QUJIANG)]
    assert child.message == f"site {QUJIANG} unreachable behind parent 'guangdong'"
    assert child.suppressed and child.suppressed_reason == "behind unreachable parent 'guangdong'"
    assert child.behind_parent == "guangdong"
    link = alarms[(AlarmKind.LINK_DOWN, f"{QUJIANG}-primary")]
    assert link.suppressed and link.behind_parent == "guangdong"
    # another province is not affected
    assert not alarms[(AlarmKind.LINK_DOWN, "sichuan-luding-primary")].suppressed

    shown = w.book.alarms(active=True, suppressed=False)
    assert {a.target for a in shown} == {
        "guangdong",
        "guangdong-primary",
        "guangdong-backup",
        "sichuan-luding-primary",
    }

    # the province comes back, the county does not: now it is the county's own outage
    for lk in ("guangdong-primary", "guangdong-backup"):
        w.link(lk, Health.UP)
    changes = w.evaluate(T0 + timedelta(minutes=1))
    assert ("updated", AlarmKind.SITE_UNREACHABLE, QUJIANG) in changes
    own = next(a for a in w.book.alarms(active=True) if a.target == QUJIANG)
    assert own.message == f"site {QUJIANG} unreachable: all 3 link(s) down"
    assert not own.suppressed and own.raised_at == T0


def test_site_conditions_follow_ancestors_not_just_parents() -> None:
    topo = topology()
    links = {lk: report(lk, Health.DOWN) for lk in topo.site_links["guangdong"]}
    conditions = site_conditions(topo, links, {}, T0)
    assert conditions["guangdong"].outage == "all 2 link(s) down"
    assert conditions["guangdong-shaoguan"].behind_parent == "guangdong"  # no links itself
    assert conditions[QUJIANG].behind_parent == "guangdong"  # two levels down
    assert conditions["sichuan-luding"].behind_parent is None


def test_a_maintenance_window_suppresses_the_site_alarms_while_it_lasts() -> None:
    raw = small_inventory()
    site(raw, QUJIANG)["maintenance"] = [
        {
            "start": "2026-12-01T09:00:00+08:00",
            "end": "2026-12-01T11:00:00+08:00",
            "reason": "carrier fibre work",
        }
    ]
    w = World(raw)
    w.link(f"{QUJIANG}-primary", Health.DOWN)
    w.link("sichuan-luding-primary", Health.DOWN)
    w.evaluate(T0 - timedelta(hours=2))  # 08:00 +08:00: before the window
    assert not any(a.suppressed for a in w.book.alarms())

    w.evaluate(T0)  # 10:00 +08:00: inside
    alarm = next(a for a in w.book.alarms() if a.site == QUJIANG)
    assert alarm.suppressed
    assert alarm.suppressed_reason == (
        "maintenance until 2026-12-01T11:00:00+08:00: carrier fibre work"
    )
    assert not next(a for a in w.book.alarms() if a.site == "sichuan-luding").suppressed

    w.evaluate(T0 + timedelta(hours=1))  # 11:00 +08:00: the window has ended
    assert not any(a.suppressed for a in w.book.alarms())


def test_acknowledgement_keeps_the_first_and_outlives_the_clear() -> None:
    w = World()
    w.link(f"{QUJIANG}-primary", Health.DOWN)
    w.evaluate()
    alarm = w.book.alarms()[0]
    acked = w.book.acknowledge(alarm.id, "zhang.wei", T0 + timedelta(minutes=1))
    assert acked.acked_by == "zhang.wei" and acked.acked_at == T0 + timedelta(minutes=1)
    again = w.book.acknowledge(alarm.id, "li.na", T0 + timedelta(minutes=2))
    assert again.acked_by == "zhang.wei"
    # an update keeps the acknowledgement; the clear keeps it in the history
    w.link(f"{QUJIANG}-primary", Health.DOWN, "another reason")
    w.evaluate(T0 + timedelta(minutes=3))
    assert w.book.alarms()[0].acked_by == "zhang.wei"
    w.link(f"{QUJIANG}-primary", Health.UP)
    w.evaluate(T0 + timedelta(minutes=4))
    cleared = w.book.alarms(active=False)[0]
    assert cleared.acked_by == "zhang.wei" and not cleared.active
    with pytest.raises(NotFound, match="no alarm 999"):
        w.book.acknowledge(999, "zhang.wei", T0)


def test_a_cleared_alarm_can_still_be_acknowledged() -> None:
    w = World()
    w.link(f"{QUJIANG}-primary", Health.DOWN)
    w.evaluate()
    w.link(f"{QUJIANG}-primary", Health.UP)
    w.evaluate(T0 + timedelta(seconds=5))
    alarm_id = w.book.alarms(active=False)[0].id
    assert w.book.acknowledge(alarm_id, "ops", T0).acked_by == "ops"
    assert w.book.alarms(active=False)[0].acked_by == "ops"


def test_esno_low_has_hysteresis() -> None:
    w = World()
    terminal = f"{QUJIANG}-sat1"
    for esno, active in [(8.0, False), (5.5, True), (6.5, True), (6.9, True), (7.2, False)]:
        w.devices[terminal] = DeviceCondition(True, esno_db=esno)
        w.evaluate()
        assert bool(w.book.alarms(active=True)) is active, esno
    low = w.book.alarms(active=False)[0]
    assert low.kind is AlarmKind.ESNO_LOW and low.severity is Severity.WARNING
    assert low.message == (
        f"satellite terminal {terminal}: Es/No 6.9 dB (low below 6 dB, clears at 7 dB)"
    )
    with pytest.raises(ValueError, match="hysteresis"):
        AlarmPolicy(esno_low_db=7.0, esno_clear_db=6.0)


def test_filters_and_order() -> None:
    w = World()
    w.cut_site(QUJIANG)
    w.link("sichuan-luding-sat", Health.DEGRADED)
    w.devices["ministry-mcu1"] = DeviceCondition(False, "timeout")
    w.evaluate()
    everything = w.book.alarms()
    assert [a.severity for a in everything][:1] == [Severity.CRITICAL]
    assert [a.severity.rank for a in everything] == sorted(
        (a.severity.rank for a in everything), reverse=True
    )
    assert {a.target for a in w.book.alarms(province="51")} == {"sichuan-luding-sat"}
    assert {a.site for a in w.book.alarms(province="44")} == {QUJIANG}
    assert w.book.alarms(severity=Severity.WARNING)[0].target == "sichuan-luding-sat"
    assert {a.target for a in w.book.alarms(site="ministry")} == {"ministry-mcu1"}
    assert w.book.site_condition(QUJIANG) is not None
    assert {a.kind for a in w.book.active_for_site(QUJIANG)} == {
        AlarmKind.SITE_UNREACHABLE,
        AlarmKind.LINK_DOWN,
    }


def test_the_history_is_bounded() -> None:
    w = World(history=3)
    for i in range(6):
        w.link(f"{QUJIANG}-primary", Health.DOWN)
        w.evaluate(T0 + timedelta(seconds=2 * i))
        w.link(f"{QUJIANG}-primary", Health.UP)
        w.evaluate(T0 + timedelta(seconds=2 * i + 1))
    kept = w.book.alarms(active=False)
    assert len(kept) == 3
    with pytest.raises(NotFound):
        w.book.acknowledge(1, "ops", T0)  # fell out of the history
    assert w.book.acknowledge(kept[0].id, "ops", T0).acked_by == "ops"


def test_objects_gone_from_the_inventory_clear_their_alarms() -> None:
    w = World()
    w.link(f"{QUJIANG}-primary", Health.DOWN)
    w.evaluate()
    raw = small_inventory()
    raw["sites"] = [s for s in raw["sites"] if s["name"] != QUJIANG]
    w.book.set_topology(topology(raw))
    assert w.evaluate(T0 + timedelta(seconds=1)) == [
        ("cleared", AlarmKind.LINK_DOWN, f"{QUJIANG}-primary")
    ]
