"""`/approvals`: the two-person rule for high-impact manual failover actions (operator).

A switch of a ministry or provincial node, or of many sites at once, asked at ``/failover``,
waits here as a pending approval. A *different* operator or admin approves it (it then runs,
and the answer carries the verified outcome) or rejects it; nobody may decide their own
request (403). Requests expire. Every step is in the audit trail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from api.deps import OperatorDep, SessionDep, role_router
from api.listing import DEFAULTS, LimitQuery, OffsetQuery
from api.roles import Role
from api.routers.failover import (
    ActionOut,
    ApprovalOut,
    action_out,
    approval_out,
    failover_responses,
    optional_service,
    service_of,
)
from api.schemas import Page
from controllers.failover import approvals
from controllers.failover.models import ApprovalStatus, FailoverApproval
from controllers.failover.service import Requester
from inventory.errors import NotFound

router = role_router(prefix="/approvals", tag="approvals", role=Role.OPERATOR)

ApprovalId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the approval's number")]


class DecisionIn(BaseModel):
    reason: str | None = Field(
        default=None, max_length=500, examples=["checked with the provincial NOC"]
    )


def _now(request: Request) -> datetime:
    service = optional_service(request)
    return service.engine.wall() if service is not None else datetime.now(UTC)


@router.get(
    "",
    summary="List approvals",
    response_model=Page[ApprovalOut],
    responses=failover_responses(422),
)
def list_approvals(
    session: SessionDep,
    request: Request,
    status: Annotated[ApprovalStatus | None, Query(description="only this status")] = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[ApprovalOut]:
    """Newest first. Requests past their expiry are marked expired (and audited) first."""
    if approvals.expire_due(session, _now(request)):
        session.commit()
    where = [] if status is None else [FailoverApproval.status == status.value]
    total = session.scalar(select(func.count()).select_from(FailoverApproval).where(*where))
    rows = session.scalars(
        select(FailoverApproval)
        .where(*where)
        .order_by(FailoverApproval.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page[ApprovalOut](
        items=[approval_out(r) for r in rows], total=total or 0, limit=limit, offset=offset
    )


@router.get(
    "/{approval_id}",
    summary="Get an approval",
    response_model=ApprovalOut,
    responses=failover_responses(404, 422),
)
def get_approval(approval_id: ApprovalId, session: SessionDep) -> ApprovalOut:
    row = session.get(FailoverApproval, approval_id)
    if row is None:
        raise NotFound(f"no approval #{approval_id}")
    return approval_out(row)


@router.post(
    "/{approval_id}/approve",
    summary="Approve and carry out a request",
    response_model=ActionOut,
    responses=failover_responses(404, 409, 413, 422, 503),
)
async def approve(
    approval_id: ApprovalId, body: DecisionIn, request: Request, who: OperatorDep
) -> ActionOut:
    """Only someone other than the requester may approve (403 otherwise); an expired or
    decided request answers 409. The action then runs at once, as the requester's, approved by
    you; the answer carries its verified outcome and the approval's final status."""
    service = service_of(request)
    result = await service.approve(
        approval_id, who=Requester(who.actor, who.username), reason=body.reason
    )
    return action_out(result)


@router.post(
    "/{approval_id}/reject",
    summary="Reject a request",
    response_model=ApprovalOut,
    responses=failover_responses(404, 409, 413, 422),
)
def reject(
    approval_id: ApprovalId,
    body: DecisionIn,
    session: SessionDep,
    request: Request,
    who: OperatorDep,
) -> ApprovalOut:
    """Only someone other than the requester may reject (403 otherwise)."""
    row = approvals.decide(
        session,
        approval_id,
        approve=False,
        decided_by=who.actor,
        decider=who.username,
        reason=body.reason,
        now=_now(request),
    )
    out = approval_out(row)
    session.commit()
    return out
