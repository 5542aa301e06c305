"""`/audit`: the hash-chained trail of every change (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import AwareDatetime
from sqlalchemy import func, select

from api.deps import SessionDep, role_router
from api.errors import responses
from api.listing import DEFAULTS, LimitQuery, OffsetQuery
from api.roles import Role
from api.schemas import AuditOut, Page, VerifyOut
from controllers import audit
from controllers.audit import AuditRecord

router = role_router(prefix="/audit", tag="audit", role=Role.ADMIN)


def _out(rec: AuditRecord) -> AuditOut:
    return AuditOut(
        id=rec.id,
        at=rec.at,
        actor=rec.actor,
        action=rec.action,
        target_type=rec.target_type,
        target=rec.target,
        before=rec.before,
        after=rec.after,
        prev_hash=rec.prev_hash,
        hash=rec.hash,
    )


@router.get(
    "", summary="List audit records", response_model=Page[AuditOut], responses=responses(422)
)
def list_audit(
    session: SessionDep,
    actor: Annotated[str | None, Query(max_length=160, description="exactly this actor")] = None,
    target_type: Annotated[
        str | None, Query(max_length=64, description="site, device, link, user...")
    ] = None,
    target: Annotated[str | None, Query(max_length=255, description="exactly this target")] = None,
    since: Annotated[
        AwareDatetime | None,
        Query(description="records at or after this time (with a time zone)"),
    ] = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[AuditOut]:
    """Newest first."""
    where = []
    if actor is not None:
        where.append(AuditRecord.actor == actor)
    if target_type is not None:
        where.append(AuditRecord.target_type == target_type)
    if target is not None:
        where.append(AuditRecord.target == target)
    if since is not None:
        where.append(AuditRecord.at >= since)
    total = session.scalar(select(func.count()).select_from(AuditRecord).where(*where))
    rows = session.scalars(
        select(AuditRecord)
        .where(*where)
        .order_by(AuditRecord.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page[AuditOut](
        items=[_out(r) for r in rows], total=total or 0, limit=limit, offset=offset
    )


@router.get("/verify", summary="Verify the audit chain", response_model=VerifyOut)
def verify_chain(session: SessionDep) -> VerifyOut:
    """Recomputes every record's hash and link; names the first broken record. A deleted tail
    is only detectable against a copy of `head_hash` kept elsewhere."""
    result = audit.verify(session)
    return VerifyOut(
        ok=result.ok,
        checked=result.checked,
        first_broken_id=result.first_broken_id,
        reason=result.reason,
        head_hash=result.head_hash,
    )
