"""`/failover`: each site's failover state and events; manual switch, pin and release.

The failover engine is a runtime object: ``tiandi serve`` runs it and hands it to
``create_app`` as a :class:`~controllers.failover.service.FailoverService`. Without it, state
and events are still read from the database (without live link health), and every action
answers 503.

Actions need the ``operator`` role. A switch (or a pin that moves the site) of a ministry or
provincial node, or of more than a configured number of sites at once, is not carried out: it
answers ``status: pending_approval`` with the approval a *different* operator or admin must
give at ``POST /approvals/{id}/approve``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import func, select

from api.deps import OperatorDep, SessionDep, role_router
from api.errors import ErrorOut, responses
from api.listing import DEFAULTS, LimitQuery, NamePath, OffsetQuery
from api.roles import Role
from api.schemas import Page
from controllers.failover.approvals import SelfApproval
from controllers.failover.engine import ChangeOutcome, EngineNotRunning
from controllers.failover.machine import Refused
from controllers.failover.models import (
    FailoverApproval,
    FailoverEvent,
    FailoverPin,
    FailoverSiteState,
)
from controllers.failover.service import ActionResult, FailoverService, Requester
from inventory.document import Name
from inventory.enums import LinkRole, Tier
from inventory.errors import NotFound
from inventory.model import Link, Site

NOT_RUNNING = (
    "the failover engine is not running in this process; it runs in `tiandi serve` "
    "(start the server with the engine to switch, pin or release sites)"
)
LAST_EVENTS = 20
MAX_BULK = 2000


def install(app: FastAPI, service: FailoverService | None) -> None:
    """Give ``app`` the running failover service (or None) and the answers for its errors."""
    app.state.failover = service

    def body(detail: str) -> dict[str, Any]:
        return ErrorOut(detail=detail).model_dump()

    def not_running(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse(body(str(err)), status_code=503, headers={"Retry-After": "30"})

    def refused(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse(body(str(err)), status_code=409)

    def self_approval(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse(body(str(err)), status_code=403)

    app.add_exception_handler(EngineNotRunning, not_running)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(SelfApproval, self_approval)


def service_of(request: Request) -> FailoverService:
    service: FailoverService | None = getattr(request.app.state, "failover", None)
    if service is None or not service.engine.running:
        raise EngineNotRunning(NOT_RUNNING)
    return service


def optional_service(request: Request) -> FailoverService | None:
    service: FailoverService | None = getattr(request.app.state, "failover", None)
    return service if service is not None and service.engine.running else None


def failover_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = responses(*(c for c in codes if c != 503))
    if 503 in codes:
        described[503] = {
            "model": ErrorOut,
            "description": "The failover engine does not run in this process (it runs in "
            "`tiandi serve`)",
        }
    if 409 in codes:
        described[409] = {
            "model": ErrorOut,
            "description": "Refused in the site's current state: the link is down or unknown, "
            "a change is in progress, the site is pinned elsewhere (the detail says which)",
        }
    return described


router = role_router(prefix="/failover", tag="failover", role=Role.VIEWER)


# ---- bodies ----------------------------------------------------------------------------------


class LinkStateOut(BaseModel):
    name: str
    role: LinkRole
    health: str = Field(description="up, degraded, down or unknown", examples=["up"])
    for_s: float = Field(description="seconds in this health")
    reason: str = Field(examples=["loss 0.0% < 1%, rtt 21.3 ms <= 120 ms"])


class PinOut(BaseModel):
    link: str
    kind: str = Field(description="operator, or damping (set by flap damping)")
    actor: str
    reason: str
    expires_at: datetime


class AlarmStateOut(BaseModel):
    kind: str = Field(examples=["all_links_down"])
    message: str


class EventOut(BaseModel):
    id: int
    at: datetime
    site: str
    kind: str = Field(
        description="decided, switched, switch_failed, alarm, alarm_cleared, deferred, "
        "suppressed, pinned, released, pin_expired, maintenance, discovered, reconciled, "
        "recovered, rolled_back, recovery_failed, unchanged",
        examples=["switched"],
    )
    cause: str | None = Field(
        description="failover, failback, damping, manual, pin; or the alarm kind"
    )
    from_link: str | None
    to_link: str | None
    state: str | None
    reason: str = Field(description="why, with the numbers")
    numbers: dict[str, Any] | None
    commands: list[str] | None = Field(description="configuration lines sent, per device")
    verification: str | None = Field(description="what the read-back showed")
    ok: bool | None
    actor: str
    change_id: int | None


class SiteFailoverOut(BaseModel):
    site: str
    tier: Tier
    live: bool = Field(description="false: the engine does not run here; state from the database")
    state: str = Field(
        description="normal, failed_over, switching, all_down, no_route or unknown",
        examples=["failed_over"],
    )
    current_link: str | None
    preferred_link: str | None
    switching_to: str | None
    pin: PinOut | None
    maintenance: bool
    links: list[LinkStateOut]
    alarms: list[AlarmStateOut]
    recent_switches: int = Field(description="automatic switches within the flap window")
    updated_at: datetime | None
    verified_at: datetime | None = Field(description="when the router last confirmed it")
    events: list[EventOut] = Field(description=f"the last {LAST_EVENTS} events, newest first")


class OutcomeOut(BaseModel):
    site: str
    from_link: str | None
    to_link: str
    cause: str
    ok: bool
    link: str | None = Field(description="what the router uses afterwards (read back)")
    change_id: int | None
    commands: list[str]
    verification: str
    error: str | None
    rolled_back: bool
    duration_s: float


class ApprovalOut(BaseModel):
    id: int
    action: str = Field(examples=["switch"])
    sites: list[str]
    link: str = Field(description="a link name, or a role for several sites")
    params: dict[str, Any]
    reason: str
    why_needed: str
    status: str = Field(
        description="pending, approved, executed, failed, rejected or expired",
        examples=["pending"],
    )
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    result: dict[str, Any] | None


class ActionOut(BaseModel):
    status: str = Field(
        description="done, failed, unchanged, pending_approval, pinned or released",
        examples=["done"],
    )
    message: str
    outcomes: list[OutcomeOut] = Field(default_factory=list)
    approval: ApprovalOut | None = None


class SwitchIn(BaseModel):
    link: str = Field(
        min_length=1,
        max_length=63,
        description="a link of the site, by name or by role (primary, backup, satellite)",
        examples=["backup"],
    )
    reason: str = Field(min_length=1, max_length=500, examples=["primary carrier works 01-05h"])


class BulkSwitchIn(BaseModel):
    sites: list[Name] = Field(min_length=1, max_length=MAX_BULK)
    role: LinkRole = Field(examples=["backup"])
    reason: str = Field(min_length=1, max_length=500, examples=["province backbone maintenance"])


class PinIn(BaseModel):
    link: str = Field(min_length=1, max_length=63, examples=["backup"])
    minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60, examples=[120])
    reason: str = Field(min_length=1, max_length=500, examples=["test the backup carrier"])


class ProgressOut(BaseModel):
    queued: int
    running: int
    done: int
    failed: int
    busy: bool
    last_burst: dict[str, float] | None = Field(
        description="the last mass event: sites done, failed, seconds"
    )


# ---- converting ------------------------------------------------------------------------------


def event_out(row: FailoverEvent) -> EventOut:
    return EventOut(
        id=row.id,
        at=row.at,
        site=row.site,
        kind=row.kind,
        cause=row.cause,
        from_link=row.from_link,
        to_link=row.to_link,
        state=row.state,
        reason=row.reason,
        numbers=row.numbers,
        commands=row.commands,
        verification=row.verification,
        ok=row.ok,
        actor=row.actor,
        change_id=row.change_id,
    )


def approval_out(row: FailoverApproval) -> ApprovalOut:
    return ApprovalOut(
        id=row.id,
        action=row.action,
        sites=list(row.sites),
        link=row.link,
        params=dict(row.params or {}),
        reason=row.reason,
        why_needed=row.why_needed,
        status=row.status,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        expires_at=row.expires_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
        result=row.result,
    )


def _outcome_out(o: ChangeOutcome) -> OutcomeOut:
    return OutcomeOut(
        site=o.site,
        from_link=o.from_link,
        to_link=o.to_link,
        cause=o.cause,
        ok=o.ok,
        link=o.link,
        change_id=o.change_id,
        commands=list(o.commands),
        verification=o.verification,
        error=o.error,
        rolled_back=o.rolled_back,
        duration_s=round(o.duration_s, 3),
    )


def action_out(result: ActionResult) -> ActionOut:
    return ActionOut(
        status=result.status,
        message=result.message,
        outcomes=[_outcome_out(o) for o in result.outcomes],
        approval=approval_out(result.approval) if result.approval is not None else None,
    )


def _who(principal: Any) -> Requester:
    return Requester(actor=principal.actor, username=principal.username)


# ---- reading ---------------------------------------------------------------------------------


@router.get(
    "/sites/{site}",
    summary="Failover state of a site",
    response_model=SiteFailoverOut,
    responses=failover_responses(404, 422),
)
def get_site(site: NamePath, session: SessionDep, request: Request) -> SiteFailoverOut:
    """State, current link, pin, link health and alarms (live when the engine runs here, else
    from the database), and the site's last events."""
    row = session.scalar(select(Site).where(Site.name == site))
    if row is None:
        raise NotFound(f"no site named {site!r}")
    stored = session.get(FailoverSiteState, row.id)
    events = session.scalars(
        select(FailoverEvent)
        .where(FailoverEvent.site == site)
        .order_by(FailoverEvent.id.desc())
        .limit(LAST_EVENTS)
    ).all()
    links = sorted(row.links, key=lambda lk: list(LinkRole).index(lk.role))
    service = optional_service(request)
    if service is not None and site in service.engine.machines:
        status = service.status_sync(site)
        pin = status.pin
        return SiteFailoverOut(
            site=site,
            tier=row.tier,
            live=True,
            state=status.state.value,
            current_link=status.current,
            preferred_link=status.preferred,
            switching_to=status.switching_to,
            pin=None
            if pin is None
            else PinOut(
                link=pin.link,
                kind=pin.kind.value,
                actor=pin.actor,
                reason=pin.reason,
                expires_at=service.pin_expiry(pin.until),
            ),
            maintenance=status.maintenance,
            links=[
                LinkStateOut(
                    name=lk.name,
                    role=lk.role,
                    health=lk.health.value,
                    for_s=lk.for_s,
                    reason=lk.reason,
                )
                for lk in status.links
            ],
            alarms=[AlarmStateOut(kind=a.kind.value, message=a.message) for a in status.alarms],
            recent_switches=status.recent_switches,
            updated_at=stored.updated_at if stored else None,
            verified_at=stored.verified_at if stored else None,
            events=[event_out(e) for e in events],
        )
    current = (
        session.get(Link, stored.current_link_id) if stored and stored.current_link_id else None
    )
    pin_row = session.scalar(
        select(FailoverPin)
        .where(FailoverPin.site_id == row.id, FailoverPin.released_at.is_(None))
        .order_by(FailoverPin.id.desc())
        .limit(1)
    )
    pin_out = None
    if pin_row is not None:
        pin_link = session.get(Link, pin_row.link_id)
        if pin_link is not None and pin_row.expires_at > _now(service):
            pin_out = PinOut(
                link=pin_link.name,
                kind=pin_row.kind,
                actor=pin_row.actor,
                reason=pin_row.reason,
                expires_at=pin_row.expires_at,
            )
    return SiteFailoverOut(
        site=site,
        tier=row.tier,
        live=False,
        state=stored.state if stored else "unknown",
        current_link=current.name if current else None,
        preferred_link=links[0].name if links else None,
        switching_to=None,
        pin=pin_out,
        maintenance=False,
        links=[
            LinkStateOut(
                name=lk.name,
                role=lk.role,
                health="unknown",
                for_s=0.0,
                reason="the failover engine does not run in this process",
            )
            for lk in links
        ],
        alarms=[],
        recent_switches=0,
        updated_at=stored.updated_at if stored else None,
        verified_at=stored.verified_at if stored else None,
        events=[event_out(e) for e in events],
    )


def _now(service: FailoverService | None) -> datetime:
    return service.engine.wall() if service is not None else datetime.now(UTC)


@router.get(
    "/events",
    summary="List failover events",
    response_model=Page[EventOut],
    responses=failover_responses(422),
)
def list_events(
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=63, description="only this site")] = None,
    kind: Annotated[
        str | None, Query(max_length=32, description="only this kind, e.g. switched")
    ] = None,
    cause: Annotated[
        str | None, Query(max_length=16, description="failover, failback, damping, manual, pin")
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="at or after (with a zone)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="before (with a zone)")] = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[EventOut]:
    """Newest first."""
    where = []
    if site is not None:
        where.append(FailoverEvent.site == site)
    if kind is not None:
        where.append(FailoverEvent.kind == kind)
    if cause is not None:
        where.append(FailoverEvent.cause == cause)
    if since is not None:
        where.append(FailoverEvent.at >= since)
    if until is not None:
        where.append(FailoverEvent.at < until)
    total = session.scalar(select(func.count()).select_from(FailoverEvent).where(*where))
    rows = session.scalars(
        select(FailoverEvent)
        .where(*where)
        .order_by(FailoverEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page[EventOut](
        items=[event_out(r) for r in rows], total=total or 0, limit=limit, offset=offset
    )


@router.get(
    "/progress",
    summary="Progress of site changes",
    response_model=ProgressOut,
    responses=failover_responses(503),
)
async def get_progress(request: Request) -> ProgressOut:
    """Changes queued, running and finished in the current burst (a mass event moves hundreds
    of sites at once), and the last burst's totals."""
    p = await service_of(request).progress()
    last = None
    if p.last_burst is not None:
        last = {"done": p.last_burst[0], "failed": p.last_burst[1], "seconds": p.last_burst[2]}
    return ProgressOut(
        queued=p.queued,
        running=p.running,
        done=p.done,
        failed=p.failed,
        busy=p.busy,
        last_burst=last,
    )


# ---- actions ---------------------------------------------------------------------------------


@router.post(
    "/sites/{site}/switch",
    summary="Switch a site to a link",
    response_model=ActionOut,
    responses=failover_responses(404, 409, 413, 422, 503),
)
async def switch_site(
    site: NamePath, body: SwitchIn, request: Request, who: OperatorDep
) -> ActionOut:
    """Moves the site's default route now and answers with the verified outcome (commands
    sent, read-back). A switch to a link other than the most preferred pins the site there for
    the manual-pin period. Ministry and provincial nodes answer `pending_approval` instead."""
    service = service_of(request)
    return action_out(await service.switch(site, body.link, reason=body.reason, who=_who(who)))


@router.post(
    "/switch",
    summary="Switch several sites",
    response_model=ActionOut,
    responses=failover_responses(404, 409, 413, 422, 503),
)
async def switch_sites(body: BulkSwitchIn, request: Request, who: OperatorDep) -> ActionOut:
    """Moves every listed site to its link of `role`, with bounded SSH concurrency. More sites
    than the configured limit, or any ministry/provincial node, needs a second person's
    approval first (`pending_approval`)."""
    service = service_of(request)
    result = await service.switch_many(body.sites, body.role, reason=body.reason, who=_who(who))
    return action_out(result)


@router.post(
    "/sites/{site}/pin",
    summary="Pin a site to a link",
    response_model=ActionOut,
    responses=failover_responses(404, 409, 413, 422, 503),
)
async def pin_site(site: NamePath, body: PinIn, request: Request, who: OperatorDep) -> ActionOut:
    """Keeps the site on the link for `minutes` (moving it there first if needed): no automatic
    move until the pin expires or is released."""
    service = service_of(request)
    result = await service.pin(
        site, body.link, minutes=body.minutes, reason=body.reason, who=_who(who)
    )
    return action_out(result)


@router.delete(
    "/sites/{site}/pin",
    summary="Release a site's pin",
    response_model=ActionOut,
    responses=failover_responses(404, 422, 503),
)
async def release_site(site: NamePath, request: Request, who: OperatorDep) -> ActionOut:
    """Ends an operator's pin or a flap-damping pin; automatic failover resumes at once."""
    service = service_of(request)
    return action_out(await service.release(site, who=_who(who)))
