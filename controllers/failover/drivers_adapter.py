"""``RouterControl`` over the SSH device drivers (``controllers.drivers``).

A site's default route leaves by the link whose next hop (its far-end / probe address) is the
router's gateway of last resort. Moving it to a link:

1. on the router that carries the target link, ``move_to_link`` makes that link's next hop the
   only static default — the driver reads, plans make-before-break, sends, verifies by reading
   back, and rolls back on its own if anything fails;
2. at a site with several routers (a provincial node has its backup on a second router), every
   other router of the site that still holds a static default has it removed (the driver's
   ``rollback`` to an empty set of static defaults, verified). If that fails, step 1 is rolled
   back too, so the site is left as it was.

Device failures come back as data (``ChangeResult.ok=False`` with what was sent and undone);
only programming errors raise. Commands are reported as ``device: line`` for the audit trail.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from controllers.drivers.base import (
    Change,
    DefaultRoute,
    DeviceTarget,
    RouterDriver,
    router_for,
)
from controllers.drivers.session import SshRunner
from controllers.errors import DriverError
from controllers.failover.control import ChangeResult, RouteReading
from controllers.failover.topology import ROLE_RANK
from inventory.document import InventoryDoc
from inventory.enums import DeviceKind
from inventory.errors import TiandiError
from inventory.model import Device, Link


@dataclass(frozen=True, slots=True)
class _SiteRouters:
    site: str
    routers: tuple[str, ...]  # the site's routers, the one carrying the preferred link first
    link_router: Mapping[str, str]  # link name -> router name


def _commands(device: str, change: Change | None) -> list[str]:
    if change is None:
        return []
    return [f"{device}: {line}" for line in change.commands]


def _rolled_back(err: DriverError) -> bool:
    rb = err.rollback
    if err.change is None or not err.change.commands:
        return True  # nothing was sent: nothing to undo
    return rb is not None and (rb.verification is None or rb.verification.ok)


class DriverRouterControl:
    """Moves default routes with the registered router drivers (one runner for all)."""

    def __init__(
        self,
        targets: Iterable[DeviceTarget],
        runner: SshRunner,
        *,
        save: bool = False,
        port_offset: int = 0,
    ) -> None:
        self.runner = runner
        self.save = save
        self.port_offset = port_offset  # added to every SSH port (a lab started with one)
        self._index(targets)

    def _index(self, targets: Iterable[DeviceTarget]) -> None:
        """Build the maps aside, then swap them in (a reload may run in another thread)."""
        by_name: dict[str, DeviceTarget] = {}
        sites: dict[str, dict[str, str]] = {}
        ranks: dict[str, dict[str, int]] = {}
        for given in targets:
            site = given.site
            if site is None or not given.links:
                continue
            target = given
            if self.port_offset:
                target = dataclasses.replace(given, port=given.port + self.port_offset)
            by_name[target.name] = target
            for link in target.links:
                sites.setdefault(site, {})[link.name] = target.name
                rank = ROLE_RANK[link.role]
                per_site = ranks.setdefault(site, {})
                per_site[target.name] = min(per_site.get(target.name, 99), rank)
        index = {
            site: _SiteRouters(
                site, tuple(sorted(ranks[site], key=lambda r: (ranks[site][r], r))), links
            )
            for site, links in sites.items()
        }
        self.targets: dict[str, DeviceTarget] = by_name
        self.sites: dict[str, _SiteRouters] = index

    # ---- building ------------------------------------------------------------------------

    @classmethod
    def from_document(
        cls, doc: InventoryDoc, runner: SshRunner, *, save: bool = False, port_offset: int = 0
    ) -> DriverRouterControl:
        names = [
            dev.name
            for site in doc.sites
            for dev in site.devices
            if dev.kind is DeviceKind.ROUTER and any(lk.router == dev.name for lk in site.links)
        ]
        targets = [DeviceTarget.from_document(doc, n) for n in names]
        return cls(targets, runner, save=save, port_offset=port_offset)

    @classmethod
    def from_session(
        cls, session: Session, runner: SshRunner, *, save: bool = False, port_offset: int = 0
    ) -> DriverRouterControl:
        return cls(cls.targets_in(session), runner, save=save, port_offset=port_offset)

    def reload(self, session: Session) -> None:
        """Follow the inventory (the engine calls it when it reloads its topology)."""
        self._index(self.targets_in(session))

    @staticmethod
    def targets_in(session: Session) -> list[DeviceTarget]:
        """Every router that carries links and has an SSH profile, as driver targets."""
        links = session.scalars(
            select(Link).options(
                selectinload(Link.router).selectinload(Device.ssh_profile),
                selectinload(Link.router).selectinload(Device.site),
            )
        ).all()
        by_router: dict[int, list[Link]] = {}
        routers: dict[int, Device] = {}
        for link in links:
            by_router.setdefault(link.router_id, []).append(link)
            routers[link.router_id] = link.router
        targets = []
        for rid, dev in routers.items():
            if dev.kind is not DeviceKind.ROUTER or dev.ssh_profile is None:
                continue
            targets.append(DeviceTarget.from_model(dev, by_router[rid]))
        return targets

    # ---- RouterControl -------------------------------------------------------------------

    def _site(self, site: str) -> _SiteRouters:
        found = self.sites.get(site)
        if found is None:
            raise TiandiError(f"site {site!r} has no router with links and an SSH profile")
        return found

    def _driver(self, router: str) -> RouterDriver:
        return router_for(self.targets[router], self.runner)

    async def _read_all(self, site: _SiteRouters) -> list[tuple[str, DefaultRoute | DriverError]]:
        async def one(router: str) -> tuple[str, DefaultRoute | DriverError]:
            try:
                return router, await self._driver(router).default_route()
            except DriverError as err:
                return router, err

        return list(await asyncio.gather(*(one(r) for r in site.routers)))

    @staticmethod
    def _describe(readings: Sequence[tuple[str, DefaultRoute | DriverError]]) -> str:
        parts = []
        for router, r in readings:
            if isinstance(r, DriverError):
                parts.append(f"{router}: unreadable ({r.detail})")
            elif r.gateway is None:
                parts.append(f"{router}: no gateway of last resort")
            else:
                via = f" (link {r.link})" if r.link else " (no link of the inventory)"
                parts.append(f"{router}: gateway {r.gateway} [{r.distance}]{via}")
        return "; ".join(parts)

    async def current_link(self, site: str) -> RouteReading:
        try:
            routers = self._site(site)
        except TiandiError as err:
            return RouteReading(False, None, str(err))
        readings = await self._read_all(routers)
        detail = self._describe(readings)
        if any(isinstance(r, DriverError) for _, r in readings):
            return RouteReading(False, None, detail)
        used = [
            (r.distance or 255, self._rank(routers, r.link), r.link)
            for _, r in readings
            if isinstance(r, DefaultRoute) and r.gateway is not None and r.link is not None
        ]
        if not used:
            return RouteReading(True, None, detail)
        return RouteReading(True, min(used)[2], detail)

    def _rank(self, site: _SiteRouters, link: str) -> int:
        router = site.link_router.get(link)
        found = self.targets[router].link_by_name(link) if router is not None else None
        return ROLE_RANK[found.role] if found is not None else 9

    async def move(self, site: str, from_link: str | None, to_link: str) -> ChangeResult:
        t0 = asyncio.get_running_loop().time()
        try:
            routers = self._site(site)
        except TiandiError as err:
            return ChangeResult(False, from_link, False, (), "not attempted", error=str(err))
        router = routers.link_router.get(to_link)
        if router is None:
            return ChangeResult(
                False,
                from_link,
                False,
                (),
                "not attempted",
                error=f"{to_link} is not a link of a router of {site}",
            )
        commands: list[str] = []
        driver = self._driver(router)
        try:
            change = await driver.move_to_link(to_link, 1, save=self.save)
        except DriverError as err:
            commands += _commands(router, err.change) + _commands(router, err.rollback)
            reading = await self.current_link(site)
            return ChangeResult(
                False,
                reading.link,
                reading.ok,
                tuple(commands),
                f"{err.detail}; now: {reading.detail}",
                rolled_back=_rolled_back(err) and bool(err.change and err.change.commands),
                error=str(err),
                duration_s=asyncio.get_running_loop().time() - t0,
            )
        commands += _commands(router, change)
        verified = change.verification.reason if change.verification else "verified"
        # Other routers of the site give up their default routes (make-before-break).
        for other in routers.routers:
            if other == router:
                continue
            problem = await self._clear(other, commands)
            if problem is not None:
                undo = await self._undo(driver, router, change, commands)
                reading = await self.current_link(site)
                return ChangeResult(
                    False,
                    reading.link,
                    reading.ok,
                    tuple(commands),
                    f"{router}: {verified}; {problem}; {undo}; now: {reading.detail}",
                    rolled_back=undo.startswith("rolled back"),
                    error=problem,
                    duration_s=asyncio.get_running_loop().time() - t0,
                )
        return ChangeResult(
            True,
            to_link,
            True,
            tuple(commands),
            f"{router}: {verified}",
            duration_s=asyncio.get_running_loop().time() - t0,
        )

    async def _clear(self, router: str, commands: list[str]) -> str | None:
        """Remove every static default of ``router``; None if done (or nothing to do)."""
        driver = self._driver(router)
        try:
            state = await driver.default_route()
            if not state.configured:
                return None
            wipe = Change(
                device=router,
                operation="clear_default_route",
                commands=(),
                before=(),
                after=state.configured,
                started_at=datetime.now(UTC),
                duration_s=0.0,
            )
            done = await driver.rollback(wipe)
        except DriverError as err:
            commands += _commands(router, err.change)
            return f"{router}: could not remove its default route: {err.detail}"
        commands += _commands(router, done)
        return None

    @staticmethod
    async def _undo(driver: RouterDriver, router: str, change: Change, commands: list[str]) -> str:
        try:
            back = await driver.rollback(change)
        except DriverError as err:
            commands += _commands(router, err.change)
            return f"rollback of {router} FAILED: {err.detail}"
        commands += _commands(router, back)
        return f"rolled back {router}"
