"""Live state: device state, link health, site status, metric series and alarms.

The data come from the monitor running in this process (``tiandi serve``), handed to
``create_app`` as a :class:`~api.monitoring_view.MonitoringView`; without one every route here
answers 503. Names are checked against the inventory (404 for an unknown name), held in memory
by :class:`~api.inventory_index.InventoryIndex`; what the monitor has not measured yet is
reported as ``unknown`` / not polled, not as an error.

The three per-object reads (device state, link health, site status) are ``async``: they do no
I/O but the monitor's single-row reads (memory, or its local SQLite state file, well under a
millisecond), so a worker-thread hop would cost more than it saves. The others stay ``def``.

Reading is the ``viewer`` role; acknowledging an alarm is ``operator`` and is written to the
audit trail (alarms themselves live in the monitor's memory — see ``monitors.alarms``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import OperatorDep, SessionDep, role_router
from api.errors import ErrorOut, ProblemOut, responses
from api.inventory_index import InventoryIndex, InventorySnapshot
from api.listing import DEFAULTS, LimitQuery, NamePath, OffsetQuery, ProvinceQuery, SiteQuery
from api.monitoring_view import DeviceState, MonitoringView
from api.roles import Role
from api.schemas import Page
from controllers import audit
from inventory.enums import DeviceKind, LinkRole, Tier
from inventory.errors import NotFound, Problem, TiandiError
from monitors.alarms import Alarm, AlarmKind, Severity
from monitors.errors import MetricsQueryError
from monitors.linkstate import Health, LinkHealthReport
from monitors.sinks.base import plan_query, too_many_points

NOT_RUNNING = "monitoring is not running in this process (start it with tiandi serve)"


class MonitoringUnavailable(TiandiError):
    """This process runs no monitor, or the metric store cannot answer."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SeriesRejected(TiandiError):
    """A metric series request is too large or malformed; the message says how to narrow it."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def _error(detail: str, problems: list[Problem] | None = None) -> dict[str, Any]:
    return ErrorOut(
        detail=detail,
        problems=[ProblemOut(path=p.path, reason=p.reason) for p in problems or []],
    ).model_dump()


def install(app: FastAPI, view: MonitoringView | None) -> None:
    """Give ``app`` the running monitor (or None) and the answers for the errors above."""
    app.state.monitoring = view

    def unavailable(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, MonitoringUnavailable)
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
        return JSONResponse(_error(str(err)), status_code=503, headers=headers)

    def rejected(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, SeriesRejected)
        return JSONResponse(_error(str(err), err.problems), status_code=422)

    app.add_exception_handler(MonitoringUnavailable, unavailable)
    app.add_exception_handler(SeriesRejected, rejected)


async def get_inventory(request: Request) -> InventorySnapshot:
    # the inventory index (names -> site, role, kind...): in memory, fresh as api.inventory_index
    # says; after the monitor in a route's parameters, so that no monitor answers 503 first
    index: InventoryIndex = request.app.state.inventory_index
    return await index.snapshot()


InventoryDep = Annotated[InventorySnapshot, Depends(get_inventory)]


async def get_monitoring(request: Request) -> MonitoringView:
    # async: it only reads app.state, and a sync dependency would cost a threadpool hop
    view: MonitoringView | None = getattr(request.app.state, "monitoring", None)
    if view is None:
        raise MonitoringUnavailable(NOT_RUNNING)
    return view


MonitoringDep = Annotated[MonitoringView, Depends(get_monitoring)]


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = responses(*codes)
    described[503] = {
        "model": ErrorOut,
        "description": "No monitor runs in this process, or the metric store cannot answer",
    }
    return described


router = role_router(prefix="", tag="monitoring", role=Role.VIEWER)


# ---- bodies ----------------------------------------------------------------------------------


class InterfaceOut(BaseModel):
    name: str = Field(examples=["GigabitEthernet0/0/0"])
    oper_up: bool | None = Field(description="ifOperStatus up; null if not polled")
    in_bps: float | None = None
    out_bps: float | None = None
    link: str | None = Field(default=None, description="the link riding on this interface")


class DeviceStateOut(BaseModel):
    device: str = Field(examples=["gd-shaoguan-qujiang-r1"])
    site: str
    kind: DeviceKind
    reachable: bool | None = Field(description="the last poll got an answer; null: not polled")
    polled_at: datetime | None = None
    last_ok_at: datetime | None = Field(default=None, description="the last successful poll")
    error: str | None = Field(default=None, examples=["timeout: no answer after 2 retries"])
    values: dict[str, float | int | bool | str] = Field(
        default_factory=dict,
        description="latest value per measurement.field (docs/metrics.md)",
        examples=[{"device.uptime_s": 86400.0, "device.response_ms": 12.5}],
    )
    interfaces: list[InterfaceOut] = Field(default_factory=list)


class LinkHealthOut(BaseModel):
    link: str = Field(examples=["gd-shaoguan-qujiang-primary"])
    site: str
    role: LinkRole
    health: Health
    since: datetime | None = Field(description="when the link entered this health")
    evaluated_at: datetime | None
    reason: str = Field(examples=["loss 35.0% >= 20% for 3.0 s"])
    loss_pct: float | None = Field(description="probe loss over the window, %")
    rtt_ms: float | None = Field(description="mean round-trip time over the window")
    jitter_ms: float | None = Field(description="mean |ΔRTT| of consecutive probes")
    samples: int = Field(description="probe results in the window")
    interface_up: bool | None = Field(description="ifOperStatus of the link's interface")


class AlarmOut(BaseModel):
    id: int
    kind: AlarmKind
    target: str = Field(description="the link, device or site the alarm is about")
    site: str
    province: str | None
    severity: Severity
    message: str
    active: bool
    raised_at: datetime
    updated_at: datetime
    cleared_at: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    suppressed: bool = Field(description="hidden by default: maintenance, or behind a parent")
    suppressed_reason: str | None
    behind_parent: str | None = Field(description="the unreachable ancestor site, if any")


class MaintenanceOut(BaseModel):
    start: datetime
    end: datetime
    reason: str | None


SiteStatusWord = Literal["ok", "degraded", "outage", "unreachable_behind_parent", "unknown"]


class SiteStatusOut(BaseModel):
    site: str
    tier: Tier
    status: SiteStatusWord = Field(
        description="outage: the site is cut off; unreachable_behind_parent: so is an ancestor, "
        "which explains it; degraded: a link is not up or a device unreachable"
    )
    reason: str
    behind_parent: str | None
    maintenance: MaintenanceOut | None = Field(description="the window covering now, if any")
    links: list[LinkHealthOut]
    devices: list[DeviceStateOut]
    alarms: list[AlarmOut] = Field(description="the site's active alarms")


class SeriesPointOut(BaseModel):
    time: datetime
    value: float | int | bool | str


class SeriesOut(BaseModel):
    measurement: str
    field: str
    tags: dict[str, str]
    start: datetime
    end: datetime
    every_s: float | None
    agg: str | None
    points: list[SeriesPointOut]


# ---- conversions -----------------------------------------------------------------------------


class _Clock:
    """Wall-clock times for the monitor's monotonic ones, taken once per request."""

    def __init__(self) -> None:
        self.mono = time.monotonic()
        self.wall = datetime.now(UTC)

    def wall_of(self, mono: float) -> datetime:
        return self.wall - timedelta(seconds=self.mono - mono)


def _health_out(
    name: str, site: str, role: LinkRole, report: LinkHealthReport | None, clock: _Clock
) -> LinkHealthOut:
    if report is None:
        return LinkHealthOut(
            link=name,
            site=site,
            role=role,
            health=Health.UNKNOWN,
            since=None,
            evaluated_at=None,
            reason="not monitored yet (the monitor follows inventory changes within a minute)",
            loss_pct=None,
            rtt_ms=None,
            jitter_ms=None,
            samples=0,
            interface_up=None,
        )
    q = report.quality
    return LinkHealthOut(
        link=name,
        site=site,
        role=role,
        health=report.health,
        since=clock.wall_of(report.since),
        evaluated_at=clock.wall_of(report.at),
        reason=report.reason,
        loss_pct=q.loss_pct if q else None,
        rtt_ms=q.rtt_ms if q else None,
        jitter_ms=q.jitter_ms if q else None,
        samples=q.samples if q else 0,
        interface_up=report.interface_up,
    )


def _device_out(
    name: str, site: str, kind: DeviceKind, state: DeviceState | None
) -> DeviceStateOut:
    if state is None:
        return DeviceStateOut(
            device=name, site=site, kind=kind, reachable=None, error="not polled yet"
        )
    return DeviceStateOut(
        device=name,
        site=site,
        kind=kind,
        reachable=state.reachable,
        polled_at=state.polled_at,
        last_ok_at=state.last_ok_at,
        error=state.error,
        values=dict(state.values),
        interfaces=[
            InterfaceOut(
                name=i.name, oper_up=i.oper_up, in_bps=i.in_bps, out_bps=i.out_bps, link=i.link
            )
            for i in state.interfaces
        ],
    )


def _alarm_out(a: Alarm) -> AlarmOut:
    return AlarmOut(
        id=a.id,
        kind=a.kind,
        target=a.target,
        site=a.site,
        province=a.province,
        severity=a.severity,
        message=a.message,
        active=a.active,
        raised_at=a.raised_at,
        updated_at=a.updated_at,
        cleared_at=a.cleared_at,
        acked_by=a.acked_by,
        acked_at=a.acked_at,
        suppressed=a.suppressed,
        suppressed_reason=a.suppressed_reason,
        behind_parent=a.behind_parent,
    )


# ---- state -----------------------------------------------------------------------------------


@router.get(
    "/devices/{name}/state",
    summary="A device's latest poll",
    response_model=DeviceStateOut,
    responses=_responses(404, 422),
)
async def device_state(
    name: NamePath, view: MonitoringDep, inventory: InventoryDep
) -> DeviceStateOut:
    """Reachability, the last poll's error, the latest value of every polled field and the
    interfaces' status, from the monitor's memory."""
    found = inventory.devices.get(name)
    if found is None:
        raise NotFound(f"no device named {name!r}")
    kind, site = found
    return _device_out(name, site, kind, view.devices.device_state(name))


@router.get(
    "/links/{name}/health",
    summary="A link's health",
    response_model=LinkHealthOut,
    responses=_responses(404, 422),
)
async def link_health(
    name: NamePath, view: MonitoringDep, inventory: InventoryDep
) -> LinkHealthOut:
    """`up | degraded | down | unknown` with the probe figures behind it and the reason for the
    last change (hysteresis: see `monitors/health.py`)."""
    found = inventory.links.get(name)
    if found is None:
        raise NotFound(f"no link named {name!r}")
    role, site = found
    return _health_out(name, site, role, view.health.report(name), _Clock())


@router.get(
    "/sites/{name}/status",
    summary="A site's status: links, devices, alarms",
    response_model=SiteStatusOut,
    responses=_responses(404, 422),
)
async def site_status(
    name: NamePath, view: MonitoringDep, inventory: InventoryDep
) -> SiteStatusOut:
    """Every link's health and every device's latest state, the site's active alarms, and one
    word for the site. A site behind an unreachable parent is `unreachable_behind_parent`, not
    an outage of its own."""
    site = inventory.sites.get(name)
    if site is None:
        raise NotFound(f"no site named {name!r}")
    clock = _Clock()
    link_out = [_health_out(n, name, r, view.health.report(n), clock) for n, r in site.links]
    device_out = [_device_out(n, name, k, view.devices.device_state(n)) for n, k in site.devices]
    alarms = view.alarms.alarms(active=True, site=name)
    maintenance = None
    for start, end, reason in site.windows:
        begins, ends = datetime.fromisoformat(start), datetime.fromisoformat(end)
        if begins <= clock.wall < ends:
            maintenance = MaintenanceOut(start=begins, end=ends, reason=reason)
            break
    condition = view.alarms.site_condition(name)
    behind = condition.behind_parent if condition is not None else None
    status: SiteStatusWord
    if condition is not None and condition.outage is not None:
        if behind is not None:
            status, reason = "unreachable_behind_parent", f"parent {behind!r} is unreachable"
        else:
            status, reason = "outage", condition.outage
    else:
        bad_links = [lk.link for lk in link_out if lk.health in (Health.DOWN, Health.DEGRADED)]
        dead = [d.device for d in device_out if d.reachable is False]
        known = [lk for lk in link_out if lk.health is not Health.UNKNOWN]
        if bad_links or dead:
            status = "degraded"
            parts = []
            if bad_links:
                parts.append("link(s) " + ", ".join(f"{n} {h}" for n, h in _healths(link_out)))
            if dead:
                parts.append(f"unreachable: {', '.join(dead)}")
            reason = "; ".join(parts)
        elif not known and all(d.reachable is None for d in device_out):
            status, reason = "unknown", "nothing measured yet"
        else:
            status, reason = "ok", "every measured link up and device reachable"
    return SiteStatusOut(
        site=name,
        tier=site.tier,
        status=status,
        reason=reason,
        behind_parent=behind,
        maintenance=maintenance,
        links=link_out,
        devices=device_out,
        alarms=[_alarm_out(a) for a in alarms],
    )


def _healths(links: list[LinkHealthOut]) -> list[tuple[str, str]]:
    return [
        (lk.link, str(lk.health)) for lk in links if lk.health in (Health.DOWN, Health.DEGRADED)
    ]


# ---- metric series ---------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
TagQuery = Annotated[str | None, Query(min_length=1, max_length=63)]


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise SeriesRejected(
            f"every={text!r} is not a duration",
            [Problem("query.every", "a number with an optional unit: 500ms, 60s, 5m, 1h, 1d")],
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2) or "s"])


def _problem_path(message: str) -> str:
    if "every" in message or "points" in message:
        return "query.every"
    if "aggregation" in message:
        return "query.agg"
    if "measurement" in message or "field" in message:
        return "query.field"
    return "query.start"


@router.get(
    "/metrics/series",
    summary="A metric series",
    response_model=SeriesOut,
    responses=_responses(422),
)
async def metric_series(
    view: MonitoringDep,
    measurement: Annotated[
        str,
        Query(min_length=1, max_length=64, examples=["link_probe"], description="docs/metrics.md"),
    ],
    field: Annotated[str, Query(min_length=1, max_length=64, examples=["rtt_ms"])],
    site: TagQuery = None,
    device: TagQuery = None,
    link: TagQuery = None,
    province: TagQuery = None,
    start: Annotated[
        AwareDatetime | None, Query(description="inclusive; default: an hour before end")
    ] = None,
    end: Annotated[AwareDatetime | None, Query(description="exclusive; default: now")] = None,
    every: Annotated[
        str | None,
        Query(
            max_length=16,
            description="bucket width (500ms, 60s, 5m, 1h, 1d); without it, raw points",
            examples=["60s"],
        ),
    ] = None,
    agg: Annotated[
        Literal["mean", "max", "min", "last"], Query(description="per bucket, with every")
    ] = "mean",
) -> SeriesOut:
    """One field of one measurement, of every series matching the tag filters (merged), over
    `[start, end)`: raw, or one `agg` per `every` bucket (aligned on the epoch). Bounded: a
    request that could return more points than the store allows, or spans too long a range, is
    refused with 422 and says how to narrow it."""
    if view.metrics is None:
        raise MonitoringUnavailable("no metric store is readable in this process")
    end_at = end or datetime.now(UTC)
    start_at = start or end_at - timedelta(hours=1)
    width = _duration(every) if every is not None else None
    tags = {
        k: v
        for k, v in (("site", site), ("device", device), ("link", link), ("province", province))
        if v is not None
    }
    try:
        plan = plan_query(
            measurement,
            field,
            tags=tags,
            start=start_at,
            end=end_at,
            every=width,
            agg=agg,
            limits=view.query_limits,
        )
    except MetricsQueryError as err:
        raise SeriesRejected(str(err), [Problem(_problem_path(str(err)), str(err))]) from err
    try:
        points = await view.metrics.series(
            measurement, field, tags=tags, start=start_at, end=end_at, every=width, agg=agg
        )
    except MetricsQueryError as err:
        if str(err) == str(too_many_points(plan)):
            raise SeriesRejected(str(err), [Problem("query.every", str(err))]) from err
        raise MonitoringUnavailable(f"the metric store failed: {err}", retry_after=5) from err
    return SeriesOut(
        measurement=measurement,
        field=field,
        tags=tags,
        start=start_at,
        end=end_at,
        every_s=width.total_seconds() if width is not None else None,
        agg=agg if width is not None else None,
        points=[
            SeriesPointOut(time=datetime.fromtimestamp(ts / 1e9, UTC), value=value)
            for ts, value in points
        ],
    )


# ---- alarms ----------------------------------------------------------------------------------


@router.get(
    "/alarms", summary="List alarms", response_model=Page[AlarmOut], responses=_responses(422)
)
def list_alarms(
    view: MonitoringDep,
    active: Annotated[
        bool | None, Query(description="only active (true) or only cleared (false) alarms")
    ] = None,
    severity: Severity | None = None,
    site: SiteQuery = None,
    province: ProvinceQuery = None,
    suppressed: Annotated[
        bool | None, Query(description="only suppressed (true) or only unsuppressed (false)")
    ] = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[AlarmOut]:
    """Active alarms first, most severe first, newest first. Alarms live in the monitor's memory:
    a restart forgets cleared alarms and acknowledgements (the audit trail keeps who
    acknowledged what)."""
    found = view.alarms.alarms(
        active=active, severity=severity, site=site, province=province, suppressed=suppressed
    )
    return Page[AlarmOut](
        items=[_alarm_out(a) for a in found[offset : offset + limit]],
        total=len(found),
        limit=limit,
        offset=offset,
    )


@router.post(
    "/alarms/{alarm_id}/ack",
    summary="Acknowledge an alarm",
    response_model=AlarmOut,
    responses=_responses(404, 422),
)
def acknowledge_alarm(
    alarm_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    who: OperatorDep,  # before the monitor: a viewer gets 403 whether or not one runs
    session: SessionDep,
    view: MonitoringDep,
) -> AlarmOut:
    """Marks the alarm acknowledged by the caller (a second acknowledgement keeps the first) and
    writes it to the audit trail."""
    now = datetime.now(UTC)
    alarm = view.alarms.acknowledge(alarm_id, who.actor, now)
    if alarm.acked_at == now and alarm.acked_by == who.actor:
        audit.append(
            session,
            actor=who.actor,
            action="alarm.ack",
            target_type="alarm",
            target=str(alarm.id),
            before=None,
            after={
                "kind": str(alarm.kind),
                "target": alarm.target,
                "site": alarm.site,
                "severity": str(alarm.severity),
                "message": alarm.message,
                "active": alarm.active,
            },
            at=now,
        )
        session.commit()
    return _alarm_out(alarm)
