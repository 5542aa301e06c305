"""Reading and writing the failover tables, each write with its audit record in one transaction.

Every function works in the caller's transaction (flushes, never commits), so an event and its
audit record, or a change intent and its audit record, are stored together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from controllers import audit
from controllers.failover.machine import AUTOMATIC_CAUSES, PinKind, Switch
from controllers.failover.models import (
    ChangeStatus,
    FailoverChange,
    FailoverEvent,
    FailoverPin,
    FailoverSiteState,
)
from inventory.model import Link, Site


def _json(value: Any) -> Any:
    """Numbers as JSON keeps them (NaN/inf become None: JSON has no such values)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def record_event(
    session: Session,
    *,
    at: datetime,
    site: str,
    kind: str,
    reason: str,
    actor: str,
    cause: str | None = None,
    from_link: str | None = None,
    to_link: str | None = None,
    state: str | None = None,
    numbers: Mapping[str, Any] | None = None,
    commands: Sequence[str] | None = None,
    verification: str | None = None,
    ok: bool | None = None,
    change_id: int | None = None,
) -> FailoverEvent:
    """One event row and its audit record (``failover.<kind>`` on target ``site:<name>``)."""
    row = FailoverEvent(
        at=at,
        site=site,
        kind=kind,
        cause=cause,
        from_link=from_link,
        to_link=to_link,
        state=state,
        reason=reason,
        numbers=_json(dict(numbers)) if numbers is not None else None,
        commands=list(commands) if commands is not None else None,
        verification=verification,
        ok=ok,
        actor=actor,
        change_id=change_id,
    )
    session.add(row)
    session.flush()
    after: dict[str, Any] = {"event": row.id, "kind": kind, "reason": reason}
    for key, value in (
        ("cause", cause),
        ("link", to_link),
        ("state", state),
        ("ok", ok),
        ("change", change_id),
        ("verification", verification),
    ):
        if value is not None:
            after[key] = value
    if commands is not None:
        after["commands"] = list(commands)
    if numbers:
        after["numbers"] = row.numbers
    audit.append(
        session,
        actor=actor,
        action=f"failover.{kind}",
        target_type="site",
        target=site,
        before={"link": from_link} if from_link is not None else None,
        after=after,
        at=at,
    )
    return row


def open_change(
    session: Session, sw: Switch, *, at: datetime, approval_id: int | None = None
) -> FailoverChange:
    """The intent, written (and committed) before the router is touched. Not audited by
    itself: the ``decided`` event before it and the ``switched``/``switch_failed`` event after
    it are, and both name the change."""
    row = FailoverChange(
        site=sw.site,
        from_link=sw.from_link,
        to_link=sw.to_link,
        cause=sw.cause.value,
        actor=sw.actor,
        reason=sw.reason,
        numbers=_json(dict(sw.numbers)),
        status=ChangeStatus.INTENT.value,
        created_at=at,
        approval_id=approval_id,
    )
    session.add(row)
    session.flush()
    return row


def close_change(
    session: Session,
    change_id: int,
    *,
    status: ChangeStatus,
    at: datetime,
    commands: Sequence[str],
    verification: str,
    error: str | None,
) -> FailoverChange | None:
    row = session.get(FailoverChange, change_id)
    if row is None:
        return None
    row.status = status.value
    row.finished_at = at
    row.commands = list(commands)
    row.verification = verification
    row.error = error
    session.flush()
    return row


def save_site_state(
    session: Session,
    *,
    site_id: int,
    link_id: int | None,
    state: str,
    at: datetime,
    verified: bool,
) -> None:
    row = session.get(FailoverSiteState, site_id)
    if row is None:
        if session.get(Site, site_id) is None:
            return  # the site was deleted meanwhile
        row = FailoverSiteState(site_id=site_id, state=state, updated_at=at)
        session.add(row)
    if link_id is not None and session.get(Link, link_id) is None:
        link_id = None
    row.current_link_id = link_id
    row.state = state
    row.updated_at = at
    if verified:
        row.verified_at = at
    session.flush()


def release_pins(session: Session, *, site_id: int, at: datetime, by: str) -> int:
    result = session.execute(
        update(FailoverPin)
        .where(FailoverPin.site_id == site_id, FailoverPin.released_at.is_(None))
        .values(released_at=at, released_by=by)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def save_pin(
    session: Session,
    *,
    site_id: int,
    link_id: int,
    kind: PinKind,
    actor: str,
    reason: str,
    at: datetime,
    expires_at: datetime,
) -> FailoverPin | None:
    """The site's new pin; any earlier open pin of the site is released (superseded)."""
    if session.get(Site, site_id) is None or session.get(Link, link_id) is None:
        return None
    release_pins(session, site_id=site_id, at=at, by=f"superseded by {actor}")
    row = FailoverPin(
        site_id=site_id,
        link_id=link_id,
        kind=kind.value,
        actor=actor,
        reason=reason,
        created_at=at,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row


# ---- loading after a restart ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredPin:
    site: str
    link: str
    kind: PinKind
    actor: str
    reason: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class OpenIntent:
    id: int
    site: str
    from_link: str | None
    to_link: str
    cause: str
    actor: str
    created_at: datetime


@dataclass(frozen=True)
class StoredState:
    current: Mapping[str, str | None] = field(default_factory=dict)  # sites with a state row
    pins: Mapping[str, StoredPin] = field(default_factory=dict)
    switch_times: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    intents: Sequence[OpenIntent] = ()


def load_state(session: Session, *, now: datetime, flap_window: timedelta) -> StoredState:
    """What the engine needs to rebuild its machines: each site's last known link, its active
    pin, its automatic switches within the flap window, and the changes left half-done."""
    current: dict[str, str | None] = {}
    rows = session.execute(
        select(Site.name, Link.name)
        .select_from(FailoverSiteState)
        .join(Site, Site.id == FailoverSiteState.site_id)
        .outerjoin(Link, Link.id == FailoverSiteState.current_link_id)
    ).all()
    for site_name, link_name in rows:
        current[site_name] = link_name
    pins: dict[str, StoredPin] = {}
    pin_rows = session.execute(
        select(FailoverPin, Site.name, Link.name)
        .join(Site, Site.id == FailoverPin.site_id)
        .join(Link, Link.id == FailoverPin.link_id)
        .where(FailoverPin.released_at.is_(None), FailoverPin.expires_at > now)
        .order_by(FailoverPin.id)
    ).all()
    for pin, site_name, link_name in pin_rows:
        pins[site_name] = StoredPin(
            site_name, link_name, PinKind(pin.kind), pin.actor, pin.reason, pin.expires_at
        )
    times: dict[str, list[datetime]] = {}
    done = session.execute(
        select(FailoverChange.site, FailoverChange.finished_at)
        .where(
            FailoverChange.status.in_([ChangeStatus.DONE.value, ChangeStatus.RECOVERED.value]),
            FailoverChange.cause.in_([c.value for c in AUTOMATIC_CAUSES]),
            FailoverChange.finished_at >= now - flap_window,
        )
        .order_by(FailoverChange.id)
    ).all()
    for site_name, finished in done:
        if finished is not None:
            times.setdefault(site_name, []).append(finished)
    intents = [
        OpenIntent(r.id, r.site, r.from_link, r.to_link, r.cause, r.actor, r.created_at)
        for r in session.scalars(
            select(FailoverChange)
            .where(FailoverChange.status == ChangeStatus.INTENT.value)
            .order_by(FailoverChange.id)
        )
    ]
    return StoredState(current, pins, times, intents)
