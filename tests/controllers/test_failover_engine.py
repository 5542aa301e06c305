"""The failover engine on a real database (SQLite and PostgreSQL) with a fake router side:
decisions carried out and recorded with the audit trail, state rebuilt after a restart,
half-done changes settled, the router believed over the database, mass events bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controllers import audit
from controllers.audit import AuditRecord
from controllers.failover.engine import EngineConfig, FailoverEngine
from controllers.failover.machine import Cause, PinKind, SiteState, Switch
from controllers.failover.models import (
    ChangeStatus,
    FailoverChange,
    FailoverEvent,
    FailoverPin,
    FailoverSiteState,
)
from controllers.failover.policy import FailoverPolicy, PolicySet
from inventory.model import Link, MaintenanceWindow, Site
from monitors.linkstate import Health
from tests.controllers.failover_support import (
    FakeClock,
    FakeRouter,
    counties,
    links_of,
    report,
    seed,
    small_network,
)

POLICY = PolicySet.uniform(
    FailoverPolicy(hold_down_s=60.0, flap_max_switches=4, retry_after_s=10.0)
)
CONFIG = EngineConfig(max_concurrency=4, tick_s=3600.0, change_timeout_s=5.0, read_timeout_s=2.0)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


def engine_for(
    session_factory: sessionmaker[Session],
    router: FakeRouter,
    clock: FakeClock,
    **kwargs: object,
) -> FailoverEngine:
    return FailoverEngine(
        session_factory,
        router,
        policies=POLICY,
        config=kwargs.pop("config", CONFIG),  # type: ignore[arg-type]
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


async def started(engine: FailoverEngine) -> FailoverEngine:
    await engine.start()
    await asyncio.wait_for(engine.reconciled.wait(), 10)
    await engine.idle()
    return engine


def all_up(engine: FailoverEngine, clock: FakeClock, sites: list[str], since: float = 0.0) -> None:
    for site in sites:
        for link in engine.topology.sites[site].links:
            engine.observe(report(site, link.name, Health.UP, clock(), since=since))


def events(session_factory: sessionmaker[Session], site: str) -> list[FailoverEvent]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(FailoverEvent).where(FailoverEvent.site == site).order_by(FailoverEvent.id)
            )
        )


def stored_link(session_factory: sessionmaker[Session], site: str) -> str | None:
    with session_factory() as session:
        row = session.execute(
            select(Link.name)
            .select_from(FailoverSiteState)
            .join(Site, Site.id == FailoverSiteState.site_id)
            .outerjoin(Link, Link.id == FailoverSiteState.current_link_id)
            .where(Site.name == site)
        ).first()
        return row[0] if row else None


def test_a_cut_primary_is_moved_recorded_and_audited(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network()
    seed(session_factory, doc)
    site = counties(doc)[0]
    primary, backup, _sat = links_of(doc, site)

    async def scenario() -> None:
        clock, router = FakeClock(), FakeRouter.on_primary(doc)
        engine = await started(engine_for(session_factory, router, clock))
        try:
            assert stored_link(session_factory, site) == primary  # written by the reconcile
            all_up(engine, clock, [site])
            clock.advance(1)
            engine.observe(report(site, primary, Health.DOWN, clock()))
            await engine.idle()
            assert router.current[site] == backup
            assert engine.status(site).state is SiteState.FAILED_OVER
        finally:
            await engine.stop()

    run(scenario)
    assert stored_link(session_factory, site) == backup
    kinds = [e.kind for e in events(session_factory, site)]
    assert kinds[-2:] == ["decided", "switched"]
    decided, switched = events(session_factory, site)[-2:]
    assert decided.cause == "failover" and "down for 0.0 s" in decided.reason
    assert decided.numbers is not None and decided.numbers["from_health"] == "down"
    assert switched.ok is True and switched.commands and "ip route" in switched.commands[0]
    assert switched.verification == f"default route via {backup}"
    with session_factory() as session:
        change = session.scalars(select(FailoverChange)).one()
        assert (change.status, change.from_link, change.to_link) == ("done", primary, backup)
        assert change.finished_at is not None and change.finished_at.tzinfo is UTC
        actions = session.scalars(
            select(AuditRecord.action).where(AuditRecord.target == site).order_by(AuditRecord.id)
        ).all()
        assert actions[-2:] == ["failover.decided", "failover.switched"]
        assert audit.verify(session).ok


def test_a_failed_change_is_recorded_with_its_rollback_and_an_alarm(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network()
    seed(session_factory, doc)
    site = counties(doc)[0]
    primary, backup, sat = links_of(doc, site)

    async def scenario() -> None:
        clock, router = FakeClock(), FakeRouter.on_primary(doc)
        router.fail[backup] = "the gateway of last resort is not set"
        alarms: list[str] = []
        engine = await started(
            engine_for(session_factory, router, clock, on_alarm=lambda a: alarms.append(a.kind))
        )
        try:
            all_up(engine, clock, [site])
            engine.observe(report(site, primary, Health.DOWN, clock()))
            await engine.idle()
            # backup refused: rolled back, alarmed, and the satellite took the site instead
            assert [m[2] for m in router.moves] == [backup, sat]
            assert "change_failed" in alarms
        finally:
            await engine.stop()

    run(scenario)
    router_side_effects = events(session_factory, site)
    kinds = [e.kind for e in router_side_effects]
    assert "switch_failed" in kinds and "alarm" in kinds
    failed = next(e for e in router_side_effects if e.kind == "switch_failed")
    assert failed.ok is False and "rolled back" in failed.reason
    assert failed.commands is not None and any("no ip route" in c for c in failed.commands)
    with session_factory() as session:
        statuses = session.scalars(select(FailoverChange.status).order_by(FailoverChange.id)).all()
        assert statuses == ["rolled_back", "done"]
        assert audit.verify(session).ok


def test_a_restart_rebuilds_pins_and_flap_history(session_factory: sessionmaker[Session]) -> None:
    doc = small_network()
    seed(session_factory, doc)
    a, b = counties(doc)[:2]
    a_links, b_links = links_of(doc, a), links_of(doc, b)
    router = FakeRouter.on_primary(doc)

    async def first() -> None:
        clock = FakeClock()
        engine = await started(engine_for(session_factory, router, clock))
        try:
            all_up(engine, clock, [a, b])
            outcome = await engine.switch(a, a_links[1], actor="li.na", reason="carrier works")
            assert outcome is not None and outcome.ok
            engine.observe(report(b, b_links[0], Health.DOWN, clock()))
            await engine.idle()
        finally:
            await engine.stop()

    async def second() -> None:
        clock = FakeClock(50_000.0)  # a new process: another monotonic origin
        engine = await started(engine_for(session_factory, router, clock))
        try:
            ma, mb = engine.machine(a), engine.machine(b)
            assert ma.current == a_links[1] and mb.current == b_links[1]
            assert ma.pin is not None
            assert (ma.pin.link, ma.pin.kind, ma.pin.actor) == (
                a_links[1],
                PinKind.OPERATOR,
                "li.na",
            )
            assert 3500 < ma.pin.until - clock() <= 3600
            assert mb.recent_switches(clock()) == 1  # the automatic failover, for damping
            assert ma.recent_switches(clock()) == 0  # manual switches do not count
        finally:
            await engine.stop()

    run(first)
    run(second)
    with session_factory() as session:
        pins = session.scalars(select(FailoverPin)).all()
        assert [(p.kind, p.actor, p.released_at) for p in pins] == [("operator", "li.na", None)]


def test_a_change_left_half_done_is_finished_on_restart(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network()
    seed(session_factory, doc)
    site = counties(doc)[0]
    primary, backup, _sat = links_of(doc, site)
    router = FakeRouter.on_primary(doc)
    router.hang.add(site)

    async def crash() -> None:
        clock = FakeClock()
        engine = await started(engine_for(session_factory, router, clock))
        all_up(engine, clock, [site])
        engine.observe(report(site, primary, Health.DOWN, clock()))
        for _ in range(200):
            if router.moves:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await engine.abandon()  # killed while the router has the change, before verifying

    async def restart() -> None:
        router.hang.clear()
        clock = FakeClock(90_000.0)
        engine = await started(engine_for(session_factory, router, clock))
        try:
            assert engine.machine(site).current == backup
            assert engine.machine(site).current_known
        finally:
            await engine.stop()

    run(crash)
    with session_factory() as session:
        assert session.scalars(select(FailoverChange.status)).all() == ["intent"]
    run(restart)
    with session_factory() as session:
        change = session.scalars(select(FailoverChange)).one()
        assert change.status == ChangeStatus.RECOVERED.value
        assert "the router uses" in (change.verification or "")
    assert [e.kind for e in events(session_factory, site)][-1] == "recovered"
    assert stored_link(session_factory, site) == backup


def test_a_change_left_half_done_is_rolled_back_on_restart(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network()
    seed(session_factory, doc)
    site = counties(doc)[0]
    primary, backup, _sat = links_of(doc, site)
    router = FakeRouter.on_primary(doc)
    router.hang.add(site)

    async def crash() -> None:
        clock = FakeClock()
        engine = await started(engine_for(session_factory, router, clock))
        all_up(engine, clock, [site])
        engine.observe(report(site, primary, Health.DOWN, clock()))
        for _ in range(200):
            if router.moves:
                break
            await asyncio.sleep(0.01)
        await engine.abandon()

    async def restart() -> None:
        router.hang.clear()
        router.current[site] = "garbage-half-state"  # neither the old nor the new link
        clock = FakeClock(90_000.0)
        engine = await started(engine_for(session_factory, router, clock))
        try:
            assert router.moves[-1] == (site, backup, primary)  # rolled back to where it was
            assert engine.machine(site).current == primary
        finally:
            await engine.stop()

    run(crash)
    run(restart)
    with session_factory() as session:
        change = session.scalars(select(FailoverChange)).one()
        assert change.status == ChangeStatus.ROLLED_BACK.value
        assert change.error == "interrupted by a restart"
    assert [e.kind for e in events(session_factory, site)][-1] == "rolled_back"


def test_the_router_wins_when_it_disagrees_with_the_database(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network()
    seed(session_factory, doc)
    site, other = counties(doc)[:2]
    primary, backup, _ = links_of(doc, site)
    router = FakeRouter.on_primary(doc)

    async def once() -> None:
        engine = await started(engine_for(session_factory, router, FakeClock()))
        await engine.stop()

    run(once)
    assert stored_link(session_factory, site) == primary
    router.current[site] = backup  # someone changed the router by hand
    router.unreadable.add(other)
    run(once)
    assert stored_link(session_factory, site) == backup
    (reconciled,) = [e for e in events(session_factory, site) if e.kind == "reconciled"]
    assert f"the database said {primary}, the router uses {backup}" in reconciled.reason
    # an unreadable router keeps what the database knew
    assert stored_link(session_factory, other) == links_of(doc, other)[0]


def test_a_mass_event_is_bounded_and_sites_in_calls_go_first(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network(counties=24)
    seed(session_factory, doc)
    sites = counties(doc)
    in_call = set(sites[-3:])

    class Calls:
        def in_call(self, site: str) -> bool:
            return site in in_call

    async def scenario() -> None:
        clock, router = FakeClock(), FakeRouter.on_primary(doc)
        router.delay_s = 0.02
        engine = await started(
            engine_for(
                session_factory,
                router,
                clock,
                conference=Calls(),
                config=EngineConfig(max_concurrency=3, tick_s=3600.0, progress_every_s=0.01),
            )
        )
        try:
            all_up(engine, clock, sites)
            router.moves.clear()
            for site in sites:  # the province's backbone fails: every primary at once
                engine.observe(report(site, links_of(doc, site)[0], Health.DOWN, clock()))
            progress = engine.progress()
            assert progress.queued + progress.running == len(sites)
            await engine.idle()
            assert router.max_in_flight == 3
            assert {m[0] for m in router.moves[:3]} == in_call
            assert all(router.current[s] == links_of(doc, s)[1] for s in sites)
            last = engine.progress().last_burst
            assert last is not None and last[:2] == (len(sites), 0)
        finally:
            await engine.stop()

    run(scenario)


def test_a_maintenance_window_suppresses_automatic_moves(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network()
    seed(session_factory, doc)
    site = counties(doc)[0]
    primary, _backup, _ = links_of(doc, site)
    now = datetime.now(UTC)
    with session_factory() as session, session.begin():
        site_id = session.scalars(select(Site.id).where(Site.name == site)).one()
        session.add(
            MaintenanceWindow(
                site_id=site_id,
                starts_at=(now - timedelta(hours=1)).isoformat(),
                ends_at=(now + timedelta(hours=1)).isoformat(),
                reason="fibre work",
            )
        )

    async def scenario() -> None:
        clock, router = FakeClock(), FakeRouter.on_primary(doc)
        engine = await started(engine_for(session_factory, router, clock))
        try:
            all_up(engine, clock, [site])
            engine.tick()  # the window is found active
            engine.observe(report(site, primary, Health.DOWN, clock()))
            await engine.idle()
            assert router.moves == []
            assert engine.status(site).maintenance
        finally:
            await engine.stop()

    run(scenario)
    kinds = [e.kind for e in events(session_factory, site)]
    assert "maintenance" in kinds and "suppressed" in kinds


def test_manual_switch_pin_and_release_are_recorded(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network()
    seed(session_factory, doc)
    site = counties(doc)[0]
    primary, backup, sat = links_of(doc, site)

    async def scenario() -> None:
        clock, router = FakeClock(), FakeRouter.on_primary(doc)
        engine = await started(engine_for(session_factory, router, clock))
        try:
            all_up(engine, clock, [site])
            until = datetime.now(UTC) + timedelta(minutes=30)
            outcome = await engine.pin(site, sat, until=until, actor="li.na", reason="vsat test")
            assert outcome is not None and outcome.ok and outcome.cause == Cause.PIN.value
            assert router.current[site] == sat
            decisions = engine.release(site, actor="wang.fang")
            assert any(isinstance(d, Switch) for d in decisions)  # fails back at once
            await engine.idle()
            assert router.current[site] == primary
        finally:
            await engine.stop()

    run(scenario)
    with session_factory() as session:
        (pin,) = session.scalars(select(FailoverPin)).all()
        assert (pin.kind, pin.actor, pin.released_by) == ("operator", "li.na", "wang.fang")
        assert pin.released_at is not None
    kinds = [e.kind for e in events(session_factory, site)]
    assert kinds.count("switched") == 2 and "pinned" in kinds and "released" in kinds
    assert backup  # unused, documents the link order


def test_the_engine_follows_the_inventory(session_factory: sessionmaker[Session]) -> None:
    small = small_network(counties=2)
    bigger = small_network(counties=3)  # the same network with one more county
    seed(session_factory, small)
    new_site = next(s for s in counties(bigger) if s not in counties(small))

    class Reloading(FakeRouter):
        reloads = 0

        def reload(self, session: Session) -> None:
            type(self).reloads += 1

    async def scenario() -> None:
        router = Reloading.on_primary(bigger)
        engine = await started(engine_for(session_factory, router, FakeClock()))
        try:
            assert new_site not in engine.machines
            seed(session_factory, bigger)
            await engine.refresh_topology()
            await engine.idle()
            for _ in range(100):
                if engine.machine(new_site).current_known:
                    break
                await asyncio.sleep(0.02)
            assert engine.machine(new_site).current == links_of(bigger, new_site)[0]
            assert Reloading.reloads == 1
        finally:
            await engine.stop()

    run(scenario)
    assert stored_link(session_factory, new_site) == links_of(bigger, new_site)[0]


def test_a_router_unreadable_at_start_is_read_again_later(
    session_factory: sessionmaker[Session],
) -> None:
    doc = small_network()
    seed(session_factory, doc)
    site = counties(doc)[0]

    async def scenario() -> None:
        clock, router = FakeClock(), FakeRouter.on_primary(doc)
        router.unreadable.add(site)
        config = EngineConfig(max_concurrency=2, tick_s=0.02, topology_refresh_s=1.0)
        engine = await started(engine_for(session_factory, router, clock, config=config))
        try:
            assert not engine.machine(site).current_known  # nothing stored, nothing read
            router.unreadable.clear()
            clock.advance(2.0)  # the engine's clock: time for another look
            for _ in range(200):
                if engine.machine(site).current_known:
                    break
                await asyncio.sleep(0.01)
            assert engine.machine(site).current == links_of(doc, site)[0]
        finally:
            await engine.stop()

    run(scenario)
