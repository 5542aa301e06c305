"""What the API asks of failover: manual actions behind the two-person rule, and live state.

:class:`FailoverService` wraps a running :class:`~controllers.failover.engine.FailoverEngine`
and the database. Its coroutines may be awaited from any event loop: work that touches the
engine runs on the engine's own loop (the same one under ``tiandi serve``; another thread's in
tests), so the machines are only ever touched from one thread.

A manual switch or pin that would move a ministry or provincial node, or more than
``ApprovalRules.max_sites`` sites at once, is not carried out: it becomes a pending approval
(:mod:`controllers.failover.approvals`) that another operator approves, which then runs it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from controllers.failover import approvals
from controllers.failover.approvals import ApprovalRules
from controllers.failover.engine import ChangeOutcome, EngineNotRunning, FailoverEngine, Progress
from controllers.failover.machine import Refused, SiteStatus
from controllers.failover.models import FailoverApproval
from controllers.failover.topology import SiteInfo
from inventory.enums import LinkRole

T = TypeVar("T")

MAX_PIN = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks: ``actor`` as the audit trail names them, ``username`` for the two-person rule."""

    actor: str
    username: str


@dataclass(frozen=True)
class ActionResult:
    """``status``: ``done`` (every change verified), ``failed`` (at least one was not, see
    ``outcomes``), ``unchanged`` (nothing to do), ``pending_approval`` (see ``approval``),
    ``pinned``/``released``."""

    status: str
    message: str
    outcomes: Sequence[ChangeOutcome] = field(default_factory=tuple)
    approval: FailoverApproval | None = None


class FailoverService:
    """The API's handle on the failover engine (see the module docstring)."""

    def __init__(
        self,
        engine: FailoverEngine,
        session_factory: sessionmaker[Session],
        rules: ApprovalRules | None = None,
    ) -> None:
        self.engine = engine
        self.session_factory = session_factory
        self.rules = rules or ApprovalRules()

    # ---- running on the engine's loop ----------------------------------------------------

    async def _on_engine(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self.engine.loop
        if loop is None or not self.engine.running or loop.is_closed():
            raise EngineNotRunning(
                "the failover engine is not running in this process; it runs in `tiandi serve`"
            )
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            return await make()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), loop))

    async def _call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return await self._on_engine(run)

    def call_sync(self, fn: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Run ``fn`` on the engine's loop from a thread that is not that loop's (a ``def``
        endpoint's worker thread) and wait for its result."""
        loop = self.engine.loop
        if loop is None or not self.engine.running or loop.is_closed():
            raise EngineNotRunning(
                "the failover engine is not running in this process; it runs in `tiandi serve`"
            )

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout_s)

    # ---- reading -------------------------------------------------------------------------

    async def status(self, site: str) -> SiteStatus:
        return await self._call(lambda: self.engine.status(site))

    def status_sync(self, site: str) -> SiteStatus:
        return self.call_sync(lambda: self.engine.status(site))

    async def progress(self) -> Progress:
        return await self._call(self.engine.progress)

    def pin_expiry(self, until_mono: float) -> datetime:
        return self.engine.wall() + timedelta(seconds=until_mono - self.engine.clock())

    # ---- resolving what is asked ---------------------------------------------------------

    def _site(self, name: str) -> SiteInfo:
        return self.engine.site_info(name)

    @staticmethod
    def _link_of(site: SiteInfo, link: str) -> str:
        """A link name of the site, or a role (primary/backup/satellite) of one of its links."""
        if site.link(link) is not None:
            return link
        try:
            role = LinkRole(link)
        except ValueError:
            role = None
        found = site.link_by_role(role) if role is not None else None
        if found is None:
            names = ", ".join(lk.name for lk in site.links)
            raise Refused(
                f"site {site.name} has no link {link!r}; give one of {names} or a role "
                "(primary, backup, satellite)"
            )
        return found.name

    async def _precheck(self, site: str, link: str, *, pin: bool = False) -> None:
        def check() -> None:
            machine = self.engine.machine(site)
            if pin and machine.current == link:
                return
            if machine.pending is not None:
                raise Refused(
                    f"a change of site {site} to {machine.pending.to_link} is in progress; "
                    "retry when it is done"
                )
            view = machine.links[link]
            if view.health.value == "down":
                raise Refused(
                    f"{link} is down ({view.evidence()}); Tiandi never moves a site onto a "
                    "link that is down"
                )

        await self._call(check)

    async def _ask_approval(
        self,
        *,
        action: str,
        sites: Sequence[str],
        link: str,
        params: dict[str, Any],
        reason: str,
        why: str,
        who: Requester,
    ) -> ActionResult:
        ask = functools.partial(
            self._ask_approval_sync,
            action=action,
            sites=sites,
            link=link,
            params=params,
            reason=reason,
            why=why,
            who=who,
        )
        return await asyncio.to_thread(ask)

    def _ask_approval_sync(
        self,
        *,
        action: str,
        sites: Sequence[str],
        link: str,
        params: dict[str, Any],
        reason: str,
        why: str,
        who: Requester,
    ) -> ActionResult:
        now = self.engine.wall()
        with self.session_factory() as session, session.begin():
            row = approvals.request(
                session,
                action=action,
                sites=sites,
                link=link,
                params=params,
                reason=reason,
                why_needed=why,
                requested_by=who.actor,
                requester=who.username,
                now=now,
                ttl=self.rules.ttl,
            )
        return ActionResult(
            "pending_approval",
            f"approval #{row.id} needed because {why}; another operator or admin must approve "
            f"it (POST /approvals/{row.id}/approve) before {row.expires_at.isoformat()}",
            approval=row,
        )

    # ---- actions -------------------------------------------------------------------------

    async def switch(
        self, site: str, link: str, *, reason: str, who: Requester, approved: int | None = None
    ) -> ActionResult:
        info = self._site(site)
        name = self._link_of(info, link)
        await self._precheck(site, name)
        if approved is None:
            why = self.rules.why_needed([(info.name, info.tier)])
            if why is not None:
                return await self._ask_approval(
                    action="switch",
                    sites=[site],
                    link=name,
                    params={},
                    reason=reason,
                    why=why,
                    who=who,
                )
        outcome = await self._on_engine(
            lambda: self.engine.switch(
                site, name, actor=who.actor, reason=reason, approval_id=approved
            )
        )
        return _result([outcome], f"{site} is on {name}")

    async def switch_many(
        self, sites: Sequence[str], role: LinkRole, *, reason: str, who: Requester
    ) -> ActionResult:
        infos = [self._site(s) for s in dict.fromkeys(sites)]
        for info in infos:
            if info.link_by_role(role) is None:
                raise Refused(f"site {info.name} has no {role.value} link")
        why = self.rules.why_needed([(i.name, i.tier) for i in infos])
        if why is not None:
            return await self._ask_approval(
                action="switch",
                sites=[i.name for i in infos],
                link=role.value,
                params={},
                reason=reason,
                why=why,
                who=who,
            )
        return await self._run_many([i.name for i in infos], role.value, reason, who, None)

    async def _run_many(
        self,
        sites: Sequence[str],
        link: str,
        reason: str,
        who: Requester,
        approved: int | None,
    ) -> ActionResult:
        async def one(site: str) -> ChangeOutcome | BaseException | None:
            try:
                name = self._link_of(self._site(site), link)
                return await self._on_engine(
                    lambda: self.engine.switch(
                        site, name, actor=who.actor, reason=reason, approval_id=approved
                    )
                )
            except (Refused, EngineNotRunning) as err:
                return err

        results = await asyncio.gather(*(one(s) for s in sites))
        outcomes = [r for r in results if isinstance(r, ChangeOutcome)]
        refused = [
            f"{s}: {r}" for s, r in zip(sites, results, strict=True) if isinstance(r, Exception)
        ]
        result = _result(outcomes, f"{len(outcomes)} site(s) on their {link} link")
        if refused:
            return ActionResult(
                "failed",
                f"{len(refused)} of {len(sites)} site(s) refused: {'; '.join(refused)}; "
                f"{result.message}",
                result.outcomes,
            )
        return result

    async def pin(
        self,
        site: str,
        link: str,
        *,
        minutes: float,
        reason: str,
        who: Requester,
        approved: int | None = None,
    ) -> ActionResult:
        info = self._site(site)
        name = self._link_of(info, link)
        if not 0 < minutes <= MAX_PIN.total_seconds() / 60:
            raise Refused(f"a pin lasts between 1 second and {MAX_PIN.days} days")
        await self._precheck(site, name, pin=True)
        moves = await self._call(lambda: self.engine.machine(site).current != name)
        if approved is None and moves:
            why = self.rules.why_needed([(info.name, info.tier)])
            if why is not None:
                return await self._ask_approval(
                    action="pin",
                    sites=[site],
                    link=name,
                    params={"minutes": minutes},
                    reason=reason,
                    why=why,
                    who=who,
                )
        until = self.engine.wall() + timedelta(minutes=minutes)
        outcome = await self._on_engine(
            lambda: self.engine.pin(
                site, name, until=until, actor=who.actor, reason=reason, approval_id=approved
            )
        )
        if outcome is None:
            return ActionResult("pinned", f"{site} pinned to {name} until {until.isoformat()}")
        result = _result([outcome], f"{site} moved to and pinned on {name}")
        return result

    async def release(self, site: str, *, who: Requester) -> ActionResult:
        self._site(site)
        decisions = await self._call(lambda: self.engine.release(site, actor=who.actor))
        if any(getattr(d, "kind", "") == "released" for d in decisions):
            return ActionResult("released", f"{site} released; automatic failover resumes")
        return ActionResult("unchanged", f"{site} was not pinned")

    # ---- approvals -----------------------------------------------------------------------

    def reject(self, approval_id: int, *, who: Requester, reason: str | None) -> FailoverApproval:
        with self.session_factory() as session, session.begin():
            return approvals.decide(
                session,
                approval_id,
                approve=False,
                decided_by=who.actor,
                decider=who.username,
                reason=reason,
                now=self.engine.wall(),
            )

    async def approve(
        self, approval_id: int, *, who: Requester, reason: str | None
    ) -> ActionResult:
        """Approve a pending request and carry it out (as its requester, approved by ``who``)."""
        if not self.engine.running:
            raise EngineNotRunning(
                "the failover engine is not running in this process; it runs in `tiandi serve`"
            )
        row = await asyncio.to_thread(self._decide, approval_id, who, reason)
        requester = Requester(f"{row.requested_by} (approved by {who.actor})", row.requester)
        reason_text = f"{row.reason} [approval #{row.id}]"
        try:
            if row.action == "pin":
                minutes = float(row.params.get("minutes", 60))
                result = await self.pin(
                    row.sites[0],
                    row.link,
                    minutes=minutes,
                    reason=reason_text,
                    who=requester,
                    approved=row.id,
                )
            elif len(row.sites) == 1:
                result = await self.switch(
                    row.sites[0], row.link, reason=reason_text, who=requester, approved=row.id
                )
            else:
                result = await self._run_many(row.sites, row.link, reason_text, requester, row.id)
        except Exception as err:
            result = ActionResult("failed", f"carrying out approval #{row.id} failed: {err}")
        ok = result.status in ("done", "unchanged", "pinned")
        summary = {
            "status": result.status,
            "message": result.message,
            "outcomes": [
                {"site": o.site, "to_link": o.to_link, "ok": o.ok, "error": o.error}
                for o in result.outcomes
            ],
        }
        final = await asyncio.to_thread(self._finish, row.id, ok, summary)
        return ActionResult(result.status, result.message, result.outcomes, final)

    def _decide(self, approval_id: int, who: Requester, reason: str | None) -> FailoverApproval:
        with self.session_factory() as session, session.begin():
            return approvals.decide(
                session,
                approval_id,
                approve=True,
                decided_by=who.actor,
                decider=who.username,
                reason=reason,
                now=self.engine.wall(),
            )

    def _finish(self, approval_id: int, ok: bool, summary: dict[str, Any]) -> FailoverApproval:
        with self.session_factory() as session, session.begin():
            return approvals.finish(
                session, approval_id, ok=ok, result=summary, now=self.engine.wall()
            )


def _result(outcomes: Sequence[ChangeOutcome | None], what: str) -> ActionResult:
    changed = [o for o in outcomes if o is not None]
    if not changed:
        return ActionResult("unchanged", f"nothing to do: {what} already")
    failed = [o for o in changed if not o.ok]
    if failed:
        detail = "; ".join(f"{o.site} -> {o.to_link}: {o.error}" for o in failed)
        return ActionResult("failed", f"{len(failed)} change(s) failed: {detail}", changed)
    return ActionResult("done", f"verified: {what}", changed)
