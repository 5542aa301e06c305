"""What the monitoring routes need from a running monitor, handed to ``create_app`` as one value.

``tiandi serve`` builds the monitor (pollers, probes, health, alarms, the metric store) in
``tiandi.monitoring_runtime`` and passes a :class:`MonitoringView` of it to ``create_app``;
without one, the monitoring routes answer 503. Tests build a view from in-memory parts.

Every part is read from the API while the monitor runs elsewhere (its own loop or process), so
each returns immutable snapshots (frozen dataclasses) and must be safe to call from any thread.
``devices.device_state``, ``health.report``, ``alarms.site_condition`` and ``alarms.alarms``
with ``site=`` are called on the API's event loop itself (the per-object routes are ``async``):
they must not block — an in-memory read or a single-row read of a local file (SQLite state
file: tens of microseconds) — or every request waits. Other calls come from worker threads;
``metrics`` is awaited on the API's loop and hops to the monitor's loop itself if it has to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from monitors.alarms import Alarm, Severity, SiteCondition
from monitors.linkstate import LinkHealthReport
from monitors.sinks.base import FieldValue, MetricQuery, QueryLimits


@dataclass(frozen=True, slots=True)
class InterfaceState:
    """One interface of a device as last polled."""

    name: str
    oper_up: bool | None
    in_bps: float | None = None
    out_bps: float | None = None
    link: str | None = None  # the link riding on it, if any


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device's latest poll: reachability, when, why not, and the latest values."""

    device: str
    reachable: bool | None  # None: not polled yet
    polled_at: datetime | None = None
    last_ok_at: datetime | None = None
    error: str | None = None  # the last poll's failure ("timeout: ...", "auth_failed: ...")
    values: Mapping[str, FieldValue] = field(default_factory=dict)  # "measurement.field"
    interfaces: tuple[InterfaceState, ...] = ()


class DeviceStates(Protocol):
    def device_state(self, device: str) -> DeviceState | None: ...


class LinkHealthSource(Protocol):
    def report(self, link: str) -> LinkHealthReport | None: ...


class AlarmStore(Protocol):
    def alarms(
        self,
        *,
        active: bool | None = None,
        severity: Severity | None = None,
        site: str | None = None,
        province: str | None = None,
        suppressed: bool | None = None,
    ) -> list[Alarm]: ...

    def acknowledge(self, alarm_id: int, user: str, now: datetime) -> Alarm: ...

    def site_condition(self, site: str) -> SiteCondition | None: ...


@dataclass(frozen=True)
class MonitoringView:
    """The running monitor as the API sees it. ``metrics`` is None when no store is readable.

    Times in ``LinkHealthReport`` are monotonic seconds of this process (``time.monotonic``);
    the routes turn them into wall-clock times.
    """

    devices: DeviceStates
    health: LinkHealthSource
    alarms: AlarmStore
    metrics: MetricQuery | None = None
    query_limits: QueryLimits = field(default_factory=QueryLimits)
