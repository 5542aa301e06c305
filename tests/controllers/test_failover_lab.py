"""The failover engine end to end on the lab (real probes, health, SSH, database — see
``failover_lab``; the lab, and the prober with the health evaluator, each run in a process of
their own, as they would beside ``tiandi serve``): a cut primary moves the site to its backup,
a cut backup to the satellite, a primary back and stable brings it home after the hold-down; a
flapping link is damped; an SSH session lost mid-change is rolled back and alarmed; a change
interrupted by a killed process is settled on restart. Every change is checked with
``show ip route`` on the lab router.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controllers import audit
from controllers.audit import AuditRecord
from controllers.failover.machine import AlarmKind, Cause, PinKind
from controllers.failover.models import FailoverChange, FailoverEvent
from inventory.document import InventoryDoc
from tests.controllers.failover_lab import (
    FAST_POLICY,
    Interference,
    LabRig,
    build_engine,
    lab_network,
    lab_rig,
    lab_secrets,
    make_runner,
    sqlite_copy,
)
from tests.controllers.failover_support import counties

pytestmark = pytest.mark.slow


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InventoryDoc, int]]:
    doc, offset = lab_network()
    for name, value in lab_secrets(doc).items():
        monkeypatch.setenv(name, value)
    yield doc, offset


@pytest.fixture
def db(sqlite_template: Path, tmp_path: Path) -> sessionmaker[Session]:
    return sqlite_copy(sqlite_template, tmp_path / "failover.db")


def events(rig: LabRig, site: str, kind: str | None = None) -> list[FailoverEvent]:
    with rig.session_factory() as session:
        stmt = select(FailoverEvent).where(FailoverEvent.site == site).order_by(FailoverEvent.id)
        if kind is not None:
            stmt = stmt.where(FailoverEvent.kind == kind)
        return list(session.scalars(stmt))


def router_of(doc: InventoryDoc, site: str) -> str:
    s = next(x for x in doc.sites if x.name == site)
    return s.links[0].router


def test_cut_primary_then_backup_then_failback_after_hold_down(
    network: tuple[InventoryDoc, int], db: sessionmaker[Session], tmp_path: Path
) -> None:
    doc, offset = network
    site = counties(doc)[0]
    router = router_of(doc, site)

    async def scenario() -> None:
        policy = FAST_POLICY.but(flap_max_switches=4)
        async with lab_rig(doc, offset, db, tmp_path, policy=policy, external=True) as rig:
            primary, backup, sat = rig.site_links(site)
            machine = rig.engine.machine(site)
            assert await rig.gateway(router) == rig.next_hop(primary)

            cut_primary = rig.fault("cut_link", link=primary)
            took = await rig.until(lambda: machine.current == backup, 20, "primary cut -> backup")
            assert await rig.gateway(router) == rig.next_hop(backup)  # show ip route says so
            assert took < 10  # ~2.2 s on an idle machine (bench/failover.py measures it)

            cut_backup = rig.fault("cut_link", link=backup)
            await rig.until(lambda: machine.current == sat, 20, "backup cut -> satellite")
            assert await rig.gateway(router) == rig.next_hop(sat)

            rig.clear(cut_primary)  # the backup stays cut: the primary is the way home
            back_up = asyncio.get_running_loop().time()
            await rig.until(
                lambda: machine.links[primary].health.value == "up", 30, "primary healthy again"
            )
            up_at = asyncio.get_running_loop().time()
            await rig.until(lambda: machine.current == primary, 30, "failback to the primary")
            failback_at = asyncio.get_running_loop().time()
            assert failback_at - up_at >= FAST_POLICY.hold_down_s - 0.1  # the hold-down held
            assert failback_at - back_up < 30
            assert await rig.gateway(router) == rig.next_hop(primary)
            rig.clear(cut_backup)
            await rig.engine.idle()

            switched = events(rig, site, "switched")
            assert [(e.cause, e.to_link) for e in switched] == [
                ("failover", backup),
                ("failover", sat),
                ("failback", primary),
            ]
            assert all(e.ok and e.commands and e.verification for e in switched)
            first_sent = switched[0].commands or []
            assert f"ip route 0.0.0.0 0.0.0.0 {rig.next_hop(backup)} 1" in first_sent[0]
            decided = events(rig, site, "decided")
            assert "down for" in decided[0].reason and "loss" in decided[0].reason
            assert ">= hold-down 2 s" in decided[2].reason
            with rig.session_factory() as session:
                trail = session.scalars(
                    select(AuditRecord.action).where(AuditRecord.target == site)
                ).all()
                assert trail.count("failover.switched") == 3
                assert audit.verify(session).ok

    asyncio.run(scenario())


def test_a_flapping_primary_is_damped_and_pinned_with_an_alarm(
    network: tuple[InventoryDoc, int], db: sessionmaker[Session], tmp_path: Path
) -> None:
    doc, offset = network
    site = counties(doc)[1]
    router = router_of(doc, site)

    async def scenario() -> None:
        policy = FAST_POLICY.but(flap_max_switches=1)
        async with lab_rig(doc, offset, db, tmp_path, policy=policy, external=True) as rig:
            primary, backup, _sat = rig.site_links(site)
            machine = rig.engine.machine(site)
            # down 2 s, up 12 s: up long enough for a failback (health ~4.5 s + hold-down 2 s)
            rig.fault("flap", link=primary, down=2.0, up=12.0)
            await rig.until(
                lambda: machine.pin is not None and machine.pin.kind is PinKind.DAMPING,
                45,
                "flap damping",
            )
            await rig.engine.idle()
            # one failover, then the failback that would have been the second switch became a
            # pin on the backup: the most stable link (the primary changed health 3 times)
            assert machine.pin is not None and machine.pin.link == backup
            switched = events(rig, site, "switched")
            assert [(e.cause, e.to_link) for e in switched] == [("failover", backup)]
            await asyncio.sleep(8.0)  # through the next down phase: nothing moves any more
            assert len(events(rig, site, "switched")) == 1
            assert machine.current == backup
            assert await rig.gateway(router) == rig.next_hop(backup)
            alarms = [e for e in events(rig, site, "alarm") if e.cause == AlarmKind.FLAPPING]
            assert len(alarms) == 1
            assert "1 automatic switches in the last 120 s (limit 1)" in alarms[0].reason
            assert f"pinned to the most stable link {backup}" in alarms[0].reason
            assert primary in {e.from_link for e in switched}

    asyncio.run(scenario())


def test_an_ssh_session_lost_mid_change_is_rolled_back_and_alarmed(
    network: tuple[InventoryDoc, int], db: sessionmaker[Session], tmp_path: Path
) -> None:
    doc, offset = network
    site = counties(doc)[2]
    router = router_of(doc, site)

    async def scenario() -> None:
        async with lab_rig(doc, offset, db, tmp_path, external=True) as rig:
            primary, backup, sat = rig.site_links(site)
            machine = rig.engine.machine(site)
            rig.fault("cut_link", link=sat)  # so the only way out is the backup
            await rig.until(lambda: machine.links[sat].health.value == "down", 20, "sat down")
            rig.interference.drop.add(router)  # the next configuration session dies after sending
            rig.fault("cut_link", link=primary)
            await rig.until(
                lambda: bool(events(rig, site, "switch_failed")), 30, "the failed change"
            )
            (failed,) = events(rig, site, "switch_failed")
            assert failed.ok is False and "rolled back" in failed.reason
            assert failed.commands is not None
            assert f"{router}: ip route 0.0.0.0 0.0.0.0 {rig.next_hop(backup)} 1" in failed.commands
            # the rollback re-installed the primary's route and removed the backup's
            assert (
                f"{router}: ip route 0.0.0.0 0.0.0.0 {rig.next_hop(primary)} 1" in failed.commands
            )
            assert "lost" in (failed.reason or "")
            alarm = [e for e in events(rig, site, "alarm") if e.cause == "change_failed"]
            assert alarm and "rolled back" in alarm[0].reason
            # after the retry pause the move is made again, on a healthy session
            await rig.until(lambda: machine.current == backup, 30, "retried onto the backup")
            assert await rig.gateway(router) == rig.next_hop(backup)
            assert rig.interference.hits == [f"drop {router}"]
            with rig.session_factory() as session:
                statuses = session.scalars(
                    select(FailoverChange.status)
                    .where(FailoverChange.site == site)
                    .order_by(FailoverChange.id)
                ).all()
            assert statuses == ["rolled_back", "done"]

    asyncio.run(scenario())


def test_a_change_interrupted_by_a_killed_process_is_settled_on_restart(
    network: tuple[InventoryDoc, int], db: sessionmaker[Session], tmp_path: Path
) -> None:
    doc, offset = network
    site = counties(doc)[3]
    router = router_of(doc, site)

    async def scenario() -> None:
        async with lab_rig(doc, offset, db, tmp_path, external=True) as rig:
            primary, backup, _sat = rig.site_links(site)
            rig.interference.freeze.add(router)  # the process "dies" right after sending
            rig.fault("cut_link", link=primary)
            await rig.until(
                lambda: rig.interference.hits == [f"freeze {router}"], 20, "change in flight"
            )
            await rig.engine.abandon()  # killed: no verification, no outcome written
            with rig.session_factory() as session:
                assert session.scalars(
                    select(FailoverChange.status).where(FailoverChange.site == site)
                ).all() == ["intent"]
            # the router has the new route (the commands went out before the "kill")
            assert await rig.gateway(router) == rig.next_hop(backup)

            # restart: a new engine (new SSH runner) on the same database and lab
            runner = make_runner(tmp_path / "second", None)
            (tmp_path / "second").mkdir()
            try:
                with rig.session_factory() as session:
                    from controllers.failover.drivers_adapter import DriverRouterControl

                    control = DriverRouterControl.from_session(session, runner)
                engine = build_engine(rig.session_factory, control)
                await engine.start()
                try:
                    assert engine.machine(site).current == backup
                    await engine.idle()
                finally:
                    await engine.stop()
            finally:
                await runner.close()

            with rig.session_factory() as session:
                change = session.scalars(
                    select(FailoverChange).where(FailoverChange.site == site)
                ).one()
                assert change.status == "recovered"
                assert f"the router uses {backup}" in (change.verification or "")
            recovered = events(rig, site, "recovered")
            assert len(recovered) == 1 and "left half-done by a restart" in recovered[0].reason
            assert recovered[0].cause == Cause.FAILOVER.value

    asyncio.run(scenario())


def test_interference_is_off_by_default() -> None:
    assert Interference().drop == set() and Interference().freeze == set()
