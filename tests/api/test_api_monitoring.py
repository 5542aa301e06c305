"""The monitoring routes on both databases, with an in-memory monitor (``monitoring_support``).

Inventory names are checked against the real database; state, health and alarms come from the
monitor's parts; metric series from a real embedded store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.config import ApiConfig
from api.monitoring_view import DeviceState, InterfaceState
from api.routers.monitoring import NOT_RUNNING
from controllers.audit import AuditRecord
from monitors.alarms import DeviceCondition
from monitors.linkstate import Health
from monitors.sinks.base import QueryLimits, Sample
from monitors.sinks.embedded import EmbeddedStore
from tests.api.monitoring_support import InMemoryMonitor, in_memory_monitor

QUJIANG = "guangdong-shaoguan-qujiang"
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """An embedded store with one minute of link_probe points (one per second) for qujiang."""
    store = EmbeddedStore(tmp_path / "metrics.db", query_limits=QueryLimits(max_points=100))
    base = int(T0.timestamp()) * 1_000_000_000
    points = [
        Sample(
            "link_probe",
            {"link": f"{QUJIANG}-primary", "site": QUJIANG, "role": "primary"},
            {"rtt_ms": 20.0 + i % 10, "loss_pct": 0.0},
            base + i * 1_000_000_000,
        )
        for i in range(60)
    ]
    asyncio.run(store.write(points))
    yield store
    asyncio.run(store.close())


@pytest.fixture
def monitor(store: EmbeddedStore) -> InMemoryMonitor:
    return in_memory_monitor(metrics=store)


@pytest.fixture
def live(
    seeded: dict[str, Any],
    session_factory: sessionmaker[Session],
    api_config: ApiConfig,
    monitor: InMemoryMonitor,
) -> Iterator[TestClient]:
    app = create_app(session_factory, api_config, monitoring=monitor.view)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_without_a_monitor_the_routes_answer_503(
    client: TestClient, seeded: dict[str, Any], viewer: dict[str, str], operator: dict[str, str]
) -> None:
    for path in (
        f"/devices/{QUJIANG}-r1/state",
        f"/links/{QUJIANG}-primary/health",
        f"/sites/{QUJIANG}/status",
        "/metrics/series?measurement=link_probe&field=rtt_ms",
        "/alarms",
    ):
        answer = client.get(path, headers=viewer)
        assert answer.status_code == 503, path
        assert answer.json() == {"detail": NOT_RUNNING, "problems": []}
    assert client.post("/alarms/1/ack", headers=operator).status_code == 503
    assert client.get("/alarms").status_code == 401  # no token: 401 before anything else


def test_device_state_from_the_latest_poll(
    live: TestClient, monitor: InMemoryMonitor, viewer: dict[str, str]
) -> None:
    name = f"{QUJIANG}-r1"
    fresh = live.get(f"/devices/{name}/state", headers=viewer)
    assert fresh.status_code == 200
    assert fresh.json()["reachable"] is None and fresh.json()["error"] == "not polled yet"

    polled = datetime.now(UTC)
    monitor.devices.states[name] = DeviceState(
        device=name,
        reachable=True,
        polled_at=polled,
        last_ok_at=polled,
        values={"device.uptime_s": 3600.0, "device.reachable": True},
        interfaces=(InterfaceState("Gi0/0/0", True, 1.5e6, 2e5, f"{QUJIANG}-primary"),),
    )
    body = live.get(f"/devices/{name}/state", headers=viewer).json()
    assert body["site"] == QUJIANG and body["kind"] == "router" and body["reachable"] is True
    assert body["values"] == {"device.uptime_s": 3600.0, "device.reachable": True}
    assert body["interfaces"][0]["link"] == f"{QUJIANG}-primary"
    missing = live.get("/devices/nowhere-r9/state", headers=viewer)
    assert missing.status_code == 404 and "nowhere-r9" in missing.json()["detail"]


def test_link_health_with_its_numbers(
    live: TestClient, monitor: InMemoryMonitor, viewer: dict[str, str]
) -> None:
    link = f"{QUJIANG}-primary"
    unknown = live.get(f"/links/{link}/health", headers=viewer).json()
    assert unknown["health"] == "unknown" and unknown["samples"] == 0

    monitor.health.set(
        link,
        QUJIANG,
        Health.DOWN,
        loss=100.0,
        rtt=None,
        reason="loss 100.0% >= 80% for 3.0 s",
        age_s=42.0,
    )
    body = live.get(f"/links/{link}/health", headers=viewer).json()
    assert body["health"] == "down" and body["role"] == "primary" and body["site"] == QUJIANG
    assert body["reason"] == "loss 100.0% >= 80% for 3.0 s"
    assert body["loss_pct"] == 100.0 and body["rtt_ms"] is None
    since = datetime.fromisoformat(body["since"])
    assert abs((datetime.now(UTC) - since).total_seconds() - 42.0) < 5.0
    assert live.get("/links/no-such-link/health", headers=viewer).status_code == 404


def test_site_status_ok_degraded_outage_and_behind_parent(
    live: TestClient, monitor: InMemoryMonitor, viewer: dict[str, str]
) -> None:
    def status(site: str) -> dict[str, Any]:
        answer = live.get(f"/sites/{site}/status", headers=viewer)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    assert status(QUJIANG)["status"] == "unknown"
    for role in ("primary", "backup", "sat"):
        monitor.health.set(f"{QUJIANG}-{role}", QUJIANG, Health.UP)
    ok = status(QUJIANG)
    assert ok["status"] == "ok"
    assert [lk["link"] for lk in ok["links"]] == [
        f"{QUJIANG}-primary",
        f"{QUJIANG}-backup",
        f"{QUJIANG}-sat",
    ]
    assert {d["device"] for d in ok["devices"]} == {
        f"{QUJIANG}-r1",
        f"{QUJIANG}-sat1",
        f"{QUJIANG}-ep1",
    }

    monitor.health.set(f"{QUJIANG}-primary", QUJIANG, Health.DEGRADED, loss=7.0)
    degraded = status(QUJIANG)
    assert degraded["status"] == "degraded" and f"{QUJIANG}-primary degraded" in degraded["reason"]

    # Guangdong's node is cut off, and with it qujiang (all its links down): behind the parent.
    for link in ("guangdong-primary", "guangdong-backup"):
        monitor.health.set(link, "guangdong", Health.DOWN, loss=100.0)
    for role in ("primary", "backup", "sat"):
        monitor.health.set(f"{QUJIANG}-{role}", QUJIANG, Health.DOWN, loss=100.0)
    monitor.evaluate()
    province = status("guangdong")
    assert province["status"] == "outage" and province["reason"] == "all 2 link(s) down"
    behind = status(QUJIANG)
    assert behind["status"] == "unreachable_behind_parent"
    assert behind["behind_parent"] == "guangdong"
    assert all(a["suppressed"] for a in behind["alarms"])
    assert live.get("/sites/nowhere/status", headers=viewer).status_code == 404


def test_site_status_shows_the_maintenance_window(
    live: TestClient, viewer: dict[str, str], admin: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    site = live.get("/sites/sichuan-luding", headers=viewer).json()
    site["maintenance"] = [
        {
            "start": (now - timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(),
            "reason": "carrier fibre work",
        }
    ]
    assert live.put("/sites/sichuan-luding", json=site, headers=admin).status_code == 200
    body = live.get("/sites/sichuan-luding/status", headers=viewer).json()
    assert body["maintenance"]["reason"] == "carrier fibre work"


def test_metric_series_raw_aggregated_and_bounded(live: TestClient, viewer: dict[str, str]) -> None:
    base = {
        "measurement": "link_probe",
        "field": "rtt_ms",
        "link": f"{QUJIANG}-primary",
        "start": T0.isoformat(),
        "end": (T0 + timedelta(minutes=1)).isoformat(),
    }
    raw = live.get("/metrics/series", params=base, headers=viewer)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert len(body["points"]) == 60 and body["every_s"] is None
    assert body["points"][3] == {"time": "2026-05-01T08:00:03Z", "value": 23.0}

    buckets = live.get(
        "/metrics/series", params={**base, "every": "10s", "agg": "max"}, headers=viewer
    )
    assert [p["value"] for p in buckets.json()["points"]] == [29.0] * 6

    other_site = live.get(
        "/metrics/series", params={**base, "site": "sichuan-luding"}, headers=viewer
    )
    assert other_site.json()["points"] == []

    # 100 points at most: a day in 1 s buckets is refused, and the answer says how to narrow it
    day = {**base, "end": (T0 + timedelta(days=1)).isoformat(), "every": "1s"}
    refused = live.get("/metrics/series", params=day, headers=viewer)
    assert refused.status_code == 422
    assert "more than the limit of 100" in refused.json()["detail"]
    assert "set every to at least" in refused.json()["detail"]
    assert refused.json()["problems"][0]["path"] == "query.every"

    bad_every = live.get("/metrics/series", params={**base, "every": "soon"}, headers=viewer)
    assert bad_every.status_code == 422 and bad_every.json()["problems"][0]["path"] == "query.every"
    backwards = {**base, "start": base["end"], "end": base["start"]}
    assert live.get("/metrics/series", params=backwards, headers=viewer).status_code == 422
    naive = {**base, "start": "2026-05-01T08:00:00"}
    assert live.get("/metrics/series", params=naive, headers=viewer).status_code == 422


def test_raw_points_beyond_the_limit_are_refused(
    live: TestClient, store: EmbeddedStore, viewer: dict[str, str]
) -> None:
    base = int(T0.timestamp()) * 1_000_000_000
    extra = [
        Sample("link_probe", {"link": "x", "site": QUJIANG}, {"rtt_ms": 1.0}, base + i * 10**8)
        for i in range(200)
    ]
    asyncio.run(store.write(extra))
    params = {
        "measurement": "link_probe",
        "field": "rtt_ms",
        "start": T0.isoformat(),
        "end": (T0 + timedelta(minutes=1)).isoformat(),
    }
    answer = live.get("/metrics/series", params=params, headers=viewer)
    assert answer.status_code == 422
    assert "narrow start/end" in answer.json()["detail"]


def _raise_alarms(monitor: InMemoryMonitor) -> None:
    monitor.health.set(f"{QUJIANG}-primary", QUJIANG, Health.DOWN, loss=100.0)
    monitor.health.set("sichuan-luding-backup", "sichuan-luding", Health.DEGRADED, loss=6.0)
    monitor.conditions["ministry-mcu1"] = DeviceCondition(False, "timeout: no answer")
    monitor.evaluate()


def test_alarms_filters_and_pages(
    live: TestClient, monitor: InMemoryMonitor, viewer: dict[str, str]
) -> None:
    _raise_alarms(monitor)

    def alarms(**params: Any) -> dict[str, Any]:
        answer = live.get("/alarms", params=params, headers=viewer)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    everything = alarms()
    assert everything["total"] == 3
    assert [a["severity"] for a in everything["items"]] == ["major", "major", "warning"]
    assert {a["kind"] for a in everything["items"]} == {
        "link_down",
        "link_degraded",
        "device_unreachable",
    }
    assert [a["target"] for a in alarms(site=QUJIANG)["items"]] == [f"{QUJIANG}-primary"]
    assert alarms(province="44")["total"] == 1
    assert alarms(province="guangdong")["total"] == 1
    assert alarms(province="51")["items"][0]["target"] == "sichuan-luding-backup"
    assert alarms(severity="warning")["total"] == 1
    page = alarms(limit=2, offset=2)
    assert page["total"] == 3 and len(page["items"]) == 1

    monitor.health.set(f"{QUJIANG}-primary", QUJIANG, Health.UP)
    monitor.evaluate()
    assert alarms(active=True)["total"] == 2
    cleared = alarms(active=False)["items"]
    assert len(cleared) == 1 and cleared[0]["cleared_at"] is not None and not cleared[0]["active"]
    assert (
        live.get("/alarms", params={"severity": "apocalyptic"}, headers=viewer).status_code == 422
    )


def test_a_viewer_cannot_acknowledge_an_operator_can_and_it_is_audited(
    live: TestClient,
    monitor: InMemoryMonitor,
    viewer: dict[str, str],
    operator: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    _raise_alarms(monitor)
    alarm_id = live.get("/alarms", params={"site": QUJIANG}, headers=viewer).json()["items"][0][
        "id"
    ]

    refused = live.post(f"/alarms/{alarm_id}/ack", headers=viewer)
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]

    acked = live.post(f"/alarms/{alarm_id}/ack", headers=operator)
    assert acked.status_code == 200, acked.text
    assert acked.json()["acked_by"] == "operator1" and acked.json()["acked_at"] is not None
    again = live.post(f"/alarms/{alarm_id}/ack", headers=operator).json()
    assert again["acked_at"] == acked.json()["acked_at"]  # the first acknowledgement stays

    listed = live.get("/alarms", params={"site": QUJIANG}, headers=viewer).json()["items"][0]
    assert listed["acked_by"] == "operator1"
    with session_factory() as session:
        records = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "alarm.ack")
        ).all()
        assert [(r.actor, r.target) for r in records] == [("operator1", str(alarm_id))]
        assert records[0].after is not None and records[0].after["kind"] == "link_down"

    assert live.post("/alarms/999999/ack", headers=operator).status_code == 404
    assert live.post("/alarms/0/ack", headers=operator).status_code == 422
