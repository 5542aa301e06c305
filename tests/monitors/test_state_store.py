"""The state file shared by the monitor processes and the API."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from inventory.errors import NotFound
from monitors.alarms import Alarm, AlarmKind, Severity, SiteCondition
from monitors.linkstate import Health, LinkHealthReport, LinkQuality
from monitors.state_store import DeviceRow, StateStore

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def alarm(aid: int, **kw: object) -> Alarm:
    base: dict[str, object] = {
        "id": aid,
        "kind": AlarmKind.LINK_DOWN,
        "target": f"link-{aid}",
        "site": "qujiang",
        "province": "guangdong",
        "severity": Severity.MAJOR,
        "message": "down",
        "raised_at": T0 + timedelta(seconds=aid),
        "updated_at": T0 + timedelta(seconds=aid),
    }
    base.update(kw)
    return Alarm(**base)  # type: ignore[arg-type]


def test_links_devices_interfaces_sites_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    report = LinkHealthReport(
        "qujiang-primary",
        "qujiang",
        Health.DOWN,
        10.0,
        12.5,
        LinkQuality(100.0, None, None, 30),
        False,
        "loss 100.0% >= 80% for 3.0 s",
    )
    store.put_links([report])
    assert store.link_report("qujiang-primary") == report
    assert store.link_report("nowhere") is None

    store.put_interfaces([("qujiang-primary", False, 11.0), ("qujiang-backup", None, None)])
    assert store.interfaces() == {
        "qujiang-primary": (False, 11.0),
        "qujiang-backup": (None, None),
    }
    row = DeviceRow(
        "qujiang-r1",
        "qujiang",
        False,
        1.7e9,
        1.6e9,
        "timeout: no answer",
        None,
        {"device.uptime_s": 3600.0, "device.reachable": False, "x.nan": float("nan")},
        (("Gi0/0/0", True, 1.0, 2.0, "qujiang-primary"),),
    )
    store.put_devices([row])
    back = store.device("qujiang-r1")
    assert back is not None and back.fields == {
        "device.uptime_s": 3600.0,
        "device.reachable": False,
    }
    assert back.interfaces == row.interfaces and back.error == "timeout: no answer"
    assert store.device_conditions() == [("qujiang-r1", False, "timeout: no answer", None)]

    store.put_sites({"qujiang": SiteCondition("all 3 link(s) down", "guangdong", None)})
    assert store.site_condition("qujiang") == SiteCondition("all 3 link(s) down", "guangdong", None)

    store.reset("health")
    assert store.link_report("qujiang-primary") is None and store.site_condition("qujiang") is None
    assert store.device("qujiang-r1") is not None  # the poller's rows are the poller's
    store.reset("poller")
    assert store.device("qujiang-r1") is None and store.interfaces() == {}


def test_alarms_filters_acknowledgements_and_ids_across_restarts(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.put_alarms(
        [
            alarm(1),
            alarm(
                2,
                severity=Severity.WARNING,
                kind=AlarmKind.LINK_DEGRADED,
                site="luding",
                province="sichuan",
            ),
            alarm(
                3,
                cleared_at=T0 + timedelta(minutes=1),
                suppressed=True,
                suppressed_reason="maintenance",
            ),
        ]
    )
    assert [a.id for a in store.alarms()] == [1, 2, 3]  # active first, then by severity
    assert [a.id for a in store.alarms(active=False)] == [3]
    assert [a.id for a in store.alarms(provinces=["sichuan"])] == [2]
    assert [a.id for a in store.alarms(provinces=[])] == []
    assert [a.id for a in store.alarms(severity=Severity.WARNING)] == [2]
    assert [a.id for a in store.alarms(suppressed=True, site="qujiang")] == [3]
    assert store.alarms(active=False)[0].suppressed_reason == "maintenance"

    acked = store.acknowledge(1, "zhang.wei", T0)
    assert acked.acked_by == "zhang.wei" and acked.acked_at == T0
    assert store.acknowledge(1, "li.na", T0 + timedelta(hours=1)).acked_by == "zhang.wei"
    store.put_alarms([alarm(1, message="down again")])  # the monitor updates: the ack stays
    assert store.alarms(site="qujiang", active=True)[0].acked_by == "zhang.wei"
    with pytest.raises(NotFound, match="no alarm 99"):
        store.acknowledge(99, "ops", T0)

    store.reset("health")
    assert store.alarms() == []
    assert store.next_alarm_id() == 2  # the acknowledged id 1 is never handed out again


def test_pruning_keeps_the_newest_cleared(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.put_alarms([alarm(i, cleared_at=T0) for i in range(1, 6)] + [alarm(6)])
    store.acknowledge(1, "ops", T0)
    assert store.prune_alarms(keep_cleared=2) == 3
    assert [a.id for a in store.alarms()] == [6, 5, 4]
    assert store.next_alarm_id() == 7


def test_readers_on_other_threads_see_the_writes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    other = StateStore(tmp_path / "state.db")  # as another process would open it
    store.put_alarms([alarm(1)])
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.extend(a.id for a in other.alarms()))
    thread.start()
    thread.join()
    assert seen == [1]
