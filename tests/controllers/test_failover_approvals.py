"""The two-person rule: a high-impact manual failover action waits for a different operator,
who approves (it runs) or rejects it; nobody decides their own request; requests expire; every
step is audited. In the database, and end to end through the API with a running engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.roles import Role
from controllers import audit
from controllers.audit import AuditRecord
from controllers.failover import approvals
from controllers.failover.approvals import ApprovalClosed, ApprovalRules, SelfApproval
from controllers.failover.models import FailoverApproval
from inventory.enums import Tier
from tests.controllers.failover_support import (
    Stack,
    api_stack,
    counties,
    links_of,
    provinces,
)

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


# ---- the rule ---------------------------------------------------------------------------------


def test_which_actions_need_a_second_person() -> None:
    rules = ApprovalRules(max_sites=3)
    assert rules.why_needed([("c1", Tier.COUNTY)]) is None
    assert rules.why_needed([(f"c{i}", Tier.COUNTY) for i in range(3)]) is None
    why = rules.why_needed([(f"c{i}", Tier.COUNTY) for i in range(4)])
    assert why == "it moves 4 sites at once (more than 3)"
    why = rules.why_needed([("guangdong", Tier.PROVINCE)])
    assert why is not None and "guangdong (province)" in why
    assert "ministry or province node" in (rules.why_needed([("ministry", Tier.MINISTRY)]) or "")
    with pytest.raises(ValueError):
        ApprovalRules(max_sites=0)


# ---- in the database ------------------------------------------------------------------------


def _request(session: Session, who: str = "li.na", now: datetime = T0) -> FailoverApproval:
    return approvals.request(
        session,
        action="switch",
        sites=["guangdong"],
        link="guangdong-backup",
        params={},
        reason="backbone works",
        why_needed="it moves guangdong (province)",
        requested_by=f"{who}/token:cli" if who == "li.na" else who,
        requester=who,
        now=now,
        ttl=timedelta(minutes=30),
    )


def test_nobody_decides_their_own_request(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, session.begin():
        row = _request(session)
    for approve in (True, False):
        with session_factory() as session, session.begin(), pytest.raises(SelfApproval) as err:
            approvals.decide(
                session, row.id, approve=approve, decided_by="li.na/token:other",
                decider="li.na", reason=None, now=T0 + timedelta(minutes=1),
            )  # fmt: skip
        assert "a different operator or admin" in str(err.value)
    with session_factory() as session, session.begin():
        done = approvals.decide(
            session, row.id, approve=True, decided_by="wang.fang", decider="wang.fang",
            reason="checked", now=T0 + timedelta(minutes=2),
        )  # fmt: skip
        assert (done.status, done.decided_by) == ("approved", "wang.fang")
    with session_factory() as session, session.begin(), pytest.raises(ApprovalClosed):
        approvals.decide(
            session, row.id, approve=False, decided_by="zhao.lei", decider="zhao.lei",
            reason=None, now=T0 + timedelta(minutes=3),
        )  # fmt: skip
    with session_factory() as session, session.begin():
        final = approvals.finish(
            session, row.id, ok=True, result={"status": "done"}, now=T0 + timedelta(minutes=3)
        )
        assert final.status == "executed"
    with session_factory() as session:
        trail = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.target_type == "approval")
            .order_by(AuditRecord.id)
        ).all()
        assert [(r.action, r.actor) for r in trail] == [
            ("failover.approval.request", "li.na/token:cli"),
            ("failover.approval.approve", "wang.fang"),
            ("failover.approval.execute", "wang.fang"),
        ]
        assert trail[1].before is not None and trail[1].before["status"] == "pending"
        assert audit.verify(session).ok


def test_requests_expire(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, session.begin():
        row = _request(session)
        other = _request(session, now=T0 + timedelta(minutes=20))
    late = T0 + timedelta(minutes=30)
    with session_factory() as session, session.begin(), pytest.raises(ApprovalClosed) as err:
        approvals.decide(
            session, row.id, approve=True, decided_by="wang.fang", decider="wang.fang",
            reason=None, now=late,
        )  # fmt: skip
    assert "expired" in str(err.value) and "ask for a new one" in str(err.value)
    with session_factory() as session, session.begin():
        expired = approvals.expire_due(session, late)
        assert [r.id for r in expired] == [row.id]
    with session_factory() as session:
        assert session.get(FailoverApproval, row.id).status == "expired"  # type: ignore[union-attr]
        assert session.get(FailoverApproval, other.id).status == "pending"  # type: ignore[union-attr]
        actions = session.scalars(
            select(AuditRecord.action).where(AuditRecord.target == str(row.id))
        ).all()
        assert actions[-1] == "failover.approval.expire"


# ---- end to end through the API -------------------------------------------------------------


@pytest.fixture
def stack(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    with api_stack(session_factory, monkeypatch) as built:
        yield built


def test_a_province_switch_needs_a_second_operator(stack: Stack) -> None:
    province = provinces(stack.doc)[0]
    backup = links_of(stack.doc, province)[1]
    li, wang = stack.headers("li.na"), stack.headers("wang.fang")
    r = stack.client.post(
        f"/failover/sites/{province}/switch",
        json={"link": "backup", "reason": "backbone works"},
        headers=li,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "pending_approval"
    assert "province" in body["message"] and "POST /approvals/" in body["message"]
    approval = body["approval"]
    assert (approval["status"], approval["requested_by"], approval["link"]) == (
        "pending",
        "li.na",
        backup,
    )
    assert stack.router.moves == []

    mine = stack.client.post(f"/approvals/{approval['id']}/approve", json={}, headers=li)
    assert mine.status_code == 403
    assert "requested by li.na themself" in mine.json()["detail"]
    assert "different operator or admin" in mine.json()["detail"]
    assert stack.router.moves == []

    ok = stack.client.post(
        f"/approvals/{approval['id']}/approve", json={"reason": "checked"}, headers=wang
    )
    assert ok.status_code == 200, ok.text
    result = ok.json()
    assert result["status"] == "done"
    assert result["approval"]["status"] == "executed"
    assert result["approval"]["decided_by"] == "wang.fang"
    (outcome,) = result["outcomes"]
    assert (outcome["site"], outcome["to_link"], outcome["ok"]) == (province, backup, True)
    assert stack.router.current[province] == backup

    again = stack.client.post(f"/approvals/{approval['id']}/approve", json={}, headers=wang)
    assert again.status_code == 409

    admin = stack.headers("root", Role.ADMIN)
    trail = stack.client.get("/audit", params={"target": str(approval["id"])}, headers=admin)
    assert [r["action"] for r in reversed(trail.json()["items"])] == [
        "failover.approval.request",
        "failover.approval.approve",
        "failover.approval.execute",
    ]
    site_trail = stack.client.get("/audit", params={"target": province}, headers=admin).json()
    switched = [r for r in site_trail["items"] if r["action"] == "failover.switched"]
    assert switched and "approved by wang.fang" in switched[0]["actor"]


def test_a_request_can_be_rejected_and_then_never_runs(stack: Stack) -> None:
    province = provinces(stack.doc)[0]
    li, wang = stack.headers("li.na"), stack.headers("wang.fang")
    body = stack.client.post(
        f"/failover/sites/{province}/pin",
        json={"link": "satellite", "minutes": 30, "reason": "vsat drill"},
        headers=li,
    ).json()
    assert body["status"] == "pending_approval"
    approval_id = body["approval"]["id"]
    assert (
        stack.client.post(f"/approvals/{approval_id}/reject", json={}, headers=li).status_code
        == 403
    )
    r = stack.client.post(
        f"/approvals/{approval_id}/reject", json={"reason": "not tonight"}, headers=wang
    )
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert (
        stack.client.post(f"/approvals/{approval_id}/approve", json={}, headers=wang).status_code
        == 409
    )
    assert stack.router.moves == []
    listed = stack.client.get("/approvals", params={"status": "rejected"}, headers=wang).json()
    assert [a["id"] for a in listed["items"]] == [approval_id]


def test_an_expired_request_cannot_be_approved(stack: Stack) -> None:
    province = provinces(stack.doc)[1]
    li, wang = stack.headers("li.na"), stack.headers("wang.fang")
    body = stack.client.post(
        f"/failover/sites/{province}/switch", json={"link": "backup", "reason": "x"}, headers=li
    ).json()
    approval_id = body["approval"]["id"]
    stack.wall.offset = timedelta(minutes=31)
    r = stack.client.post(f"/approvals/{approval_id}/approve", json={}, headers=wang)
    assert r.status_code == 409 and "expired" in r.json()["detail"]
    listed = stack.client.get("/approvals", headers=wang).json()
    assert listed["items"][0]["status"] == "expired"
    assert stack.router.moves == []


def test_many_sites_at_once_need_approval_and_run_together(stack: Stack) -> None:
    sites = counties(stack.doc)[:5]  # more than max_sites=3
    others = counties(stack.doc)[5:7]
    li, wang = stack.headers("li.na"), stack.headers("wang.fang")
    few = stack.client.post(
        "/failover/switch",
        json={"sites": others, "role": "backup", "reason": "carrier A works"},
        headers=li,
    )
    assert few.status_code == 200 and few.json()["status"] == "done"
    assert len(few.json()["outcomes"]) == 2
    many = stack.client.post(
        "/failover/switch",
        json={"sites": sites, "role": "satellite", "reason": "regional drill"},
        headers=li,
    ).json()
    assert many["status"] == "pending_approval"
    assert "5 sites at once (more than 3)" in many["message"]
    r = stack.client.post(f"/approvals/{many['approval']['id']}/approve", json={}, headers=wang)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "done", r.json()["message"]
    assert {o["site"] for o in r.json()["outcomes"]} == set(sites)
    assert all(stack.router.current[s] == links_of(stack.doc, s)[2] for s in sites)
