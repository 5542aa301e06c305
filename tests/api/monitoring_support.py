"""An in-memory monitor for API tests: fakes that satisfy the MonitoringView protocols.

``in_memory_view()`` gives a view over the small sample inventory with nothing measured yet;
tests set link reports and device states on its parts, then call ``evaluate`` to raise alarms.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from api.monitoring_view import DeviceState, MonitoringView
from inventory.validation import validate_or_raise
from monitors.alarms import AlarmBook, DeviceCondition, Topology
from monitors.linkstate import Health, LinkHealthReport, LinkQuality
from monitors.sinks.base import Aggregation, QueryLimits, SeriesPoint, plan_query
from tests.harness.samples import small_inventory


@dataclass
class FakeDevices:
    states: dict[str, DeviceState] = field(default_factory=dict)

    def device_state(self, device: str) -> DeviceState | None:
        return self.states.get(device)


@dataclass
class FakeHealth:
    reports: dict[str, LinkHealthReport] = field(default_factory=dict)

    def report(self, link: str) -> LinkHealthReport | None:
        return self.reports.get(link)

    def set(
        self,
        link: str,
        site: str,
        health: Health,
        *,
        loss: float = 0.0,
        rtt: float | None = 20.0,
        reason: str = "test",
        age_s: float = 5.0,
    ) -> LinkHealthReport:
        now = time.monotonic()
        report = LinkHealthReport(
            link=link,
            site=site,
            health=health,
            since=now - age_s,
            at=now,
            quality=LinkQuality(loss_pct=loss, rtt_ms=rtt, jitter_ms=1.0, samples=30),
            interface_up=health is not Health.DOWN,
            reason=reason,
        )
        self.reports[link] = report
        return report


@dataclass
class EmptyMetrics:
    """A metric store holding nothing, with the real query bounds."""

    limits: QueryLimits = field(default_factory=QueryLimits)

    async def series(
        self,
        measurement: str,
        field: str,
        *,
        tags: Mapping[str, str] | None = None,
        start: datetime,
        end: datetime,
        every: timedelta | None = None,
        agg: Aggregation = "mean",
    ) -> list[SeriesPoint]:
        plan_query(
            measurement, field, tags=tags, start=start, end=end, every=every, agg=agg,
            limits=self.limits,
        )  # fmt: skip
        return []


@dataclass
class InMemoryMonitor:
    topology: Topology
    devices: FakeDevices
    health: FakeHealth
    alarms: AlarmBook
    view: MonitoringView
    conditions: dict[str, DeviceCondition] = field(default_factory=dict)

    def evaluate(self, now: datetime | None = None) -> None:
        self.alarms.evaluate(self.health.reports, self.conditions, now or datetime.now(UTC))


def in_memory_monitor(raw: dict[str, Any] | None = None, metrics: Any = None) -> InMemoryMonitor:
    topology = Topology.from_document(validate_or_raise(raw or small_inventory()))
    devices, health, alarms = FakeDevices(), FakeHealth(), AlarmBook(topology)
    store = metrics if metrics is not None else EmptyMetrics()
    limits = getattr(store, "query_limits", None) or getattr(store, "limits", QueryLimits())
    view = MonitoringView(
        devices=devices, health=health, alarms=alarms, metrics=store, query_limits=limits
    )
    return InMemoryMonitor(topology, devices, health, alarms, view)


def in_memory_view() -> MonitoringView:
    return in_memory_monitor().view
