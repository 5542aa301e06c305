"""The two-person rule for high-impact manual failover actions.

A manual switch (or a pin that moves a site) of a ministry or provincial node, or of more sites
at once than :attr:`ApprovalRules.max_sites`, is not carried out at once: it becomes a pending
:class:`~controllers.failover.models.FailoverApproval` that a *different* user holding operator
or admin approves (then it runs) or rejects, before it expires. Every step — request, approval,
rejection, expiry, execution — is appended to the audit trail in the same transaction as the
change of the approval itself.

Identity is the user name, not the token: an operator cannot approve their own request through
a second API token either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controllers import audit
from controllers.failover.models import ApprovalStatus, FailoverApproval
from inventory.enums import Tier
from inventory.errors import Conflict, NotFound, TiandiError

SYSTEM_ACTOR = "failover-engine"


class SelfApproval(TiandiError):
    """The user deciding an approval is the one who requested it."""


class ApprovalClosed(Conflict):
    """The approval was already decided, or has expired."""


@dataclass(frozen=True, slots=True)
class ApprovalRules:
    """When a manual action needs a second person, and how long a request waits for one.

    ``max_sites = 5``: an operator moving a handful of counties by hand is routine work; more
    than that at once is a regional intervention that deserves a second pair of eyes.
    ``ttl = 30 min``: long enough to reach a colleague at night, short enough that the request
    is not approved against a network that has changed since.
    """

    tiers: frozenset[Tier] = field(
        default_factory=lambda: frozenset({Tier.MINISTRY, Tier.PROVINCE})
    )
    max_sites: int = 5
    ttl: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.max_sites < 1:
            raise ValueError("max_sites must be at least 1")
        if self.ttl <= timedelta(0):
            raise ValueError("ttl must be positive")

    def why_needed(self, sites: Sequence[tuple[str, Tier]]) -> str | None:
        """Why this action needs a second person, or None if it does not."""
        high = [f"{name} ({tier.value})" for name, tier in sites if tier in self.tiers]
        reasons = []
        if high:
            shown = ", ".join(high[:5]) + (f" and {len(high) - 5} more" if len(high) > 5 else "")
            reasons.append(f"it moves {shown}: a {' or '.join(sorted(self.tiers))} node")
        if len(sites) > self.max_sites:
            reasons.append(f"it moves {len(sites)} sites at once (more than {self.max_sites})")
        return "; ".join(reasons) or None


def _snapshot(row: FailoverApproval) -> dict[str, Any]:
    return {
        "id": row.id,
        "action": row.action,
        "sites": row.sites,
        "link": row.link,
        "params": row.params,
        "reason": row.reason,
        "status": row.status,
        "requested_by": row.requested_by,
        "expires_at": row.expires_at.isoformat(),
        "decided_by": row.decided_by,
        "decision_reason": row.decision_reason,
    }


def request(
    session: Session,
    *,
    action: str,
    sites: Sequence[str],
    link: str,
    params: dict[str, Any],
    reason: str,
    why_needed: str,
    requested_by: str,
    requester: str,
    now: datetime,
    ttl: timedelta,
) -> FailoverApproval:
    """Create a pending approval (flushed and audited in the caller's transaction)."""
    row = FailoverApproval(
        action=action,
        sites=list(sites),
        link=link,
        params=params,
        reason=reason,
        why_needed=why_needed,
        status=ApprovalStatus.PENDING.value,
        requested_by=requested_by,
        requester=requester,
        requested_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=requested_by,
        action="failover.approval.request",
        target_type="approval",
        target=str(row.id),
        before=None,
        after={**_snapshot(row), "why_needed": why_needed},
        at=now,
    )
    return row


def _locked(session: Session, approval_id: int) -> FailoverApproval:
    # The chain lock first (SQLite's write lock, a PostgreSQL advisory lock): two deciders of
    # the same request are serialized, and the second sees the first one's decision.
    audit.lock_chain(session)
    row = session.scalar(
        select(FailoverApproval).where(FailoverApproval.id == approval_id).with_for_update()
    )
    if row is None:
        raise NotFound(f"no approval #{approval_id}")
    return row


def _expire(session: Session, row: FailoverApproval, now: datetime) -> None:
    before = _snapshot(row)
    row.status = ApprovalStatus.EXPIRED.value
    row.decided_at = now
    row.decided_by = SYSTEM_ACTOR
    row.decision_reason = f"nobody decided before {row.expires_at.isoformat()}"
    session.flush()
    audit.append(
        session,
        actor=SYSTEM_ACTOR,
        action="failover.approval.expire",
        target_type="approval",
        target=str(row.id),
        before=before,
        after=_snapshot(row),
        at=now,
    )


def expire_due(session: Session, now: datetime) -> list[FailoverApproval]:
    """Mark every pending approval past its expiry as expired (audited); returns them."""
    due = select(FailoverApproval.id).where(
        FailoverApproval.status == ApprovalStatus.PENDING.value,
        FailoverApproval.expires_at <= now,
    )
    if session.scalar(due.limit(1)) is None:
        return []  # nothing due: no need for the write lock
    audit.lock_chain(session)
    rows = session.scalars(
        select(FailoverApproval)
        .where(
            FailoverApproval.status == ApprovalStatus.PENDING.value,
            FailoverApproval.expires_at <= now,
        )
        .order_by(FailoverApproval.id)
        .with_for_update()
    ).all()
    for row in rows:
        _expire(session, row, now)
    return list(rows)


def decide(
    session: Session,
    approval_id: int,
    *,
    approve: bool,
    decided_by: str,
    decider: str,
    reason: str | None,
    now: datetime,
) -> FailoverApproval:
    """Approve or reject a pending request; the decider must not be its requester.

    An approved request becomes ``approved``: the caller carries it out and records the outcome
    with :func:`finish` (in a later transaction). Raises
    :class:`SelfApproval`, :class:`ApprovalClosed` (decided already, or expired — which is
    recorded), or ``NotFound``.
    """
    row = _locked(session, approval_id)
    if row.status != ApprovalStatus.PENDING.value:
        raise ApprovalClosed(
            f"approval #{row.id} is {row.status}"
            + (f" (decided by {row.decided_by})" if row.decided_by else "")
            + "; only a pending request can be approved or rejected"
        )
    if row.expires_at <= now:
        # Not written here: the caller's transaction is rolled back by the error; the engine's
        # periodic expire_due (and GET /approvals) records the expiry.
        raise ApprovalClosed(
            f"approval #{row.id} expired at {row.expires_at.isoformat()}; ask for a new one"
        )
    if row.requester == decider:
        raise SelfApproval(
            f"approval #{row.id} was requested by {decider} themself; the two-person rule "
            "needs a different operator or admin to approve or reject it"
        )
    before = _snapshot(row)
    row.decided_by = decided_by
    row.decided_at = now
    row.decision_reason = reason
    row.status = (ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED).value
    session.flush()
    audit.append(
        session,
        actor=decided_by,
        action="failover.approval." + ("approve" if approve else "reject"),
        target_type="approval",
        target=str(row.id),
        before=before,
        after=_snapshot(row),
        at=now,
    )
    return row


def finish(
    session: Session, approval_id: int, *, ok: bool, result: dict[str, Any], now: datetime
) -> FailoverApproval:
    """Record how carrying out an approved request went (audited)."""
    row = _locked(session, approval_id)
    before = _snapshot(row)
    row.status = (ApprovalStatus.EXECUTED if ok else ApprovalStatus.FAILED).value
    row.result = result
    session.flush()
    audit.append(
        session,
        actor=row.decided_by or SYSTEM_ACTOR,
        action="failover.approval.execute",
        target_type="approval",
        target=str(row.id),
        before=before,
        after={**_snapshot(row), "ok": ok, "result": result},
        at=now,
    )
    return row
