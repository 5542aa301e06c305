"""The part of the inventory the failover engine works on, read once into plain frozen values.

Sites with their links (preference order comes from the role), the routers those links ride,
and the maintenance windows; nothing here keeps a session open. The engine reloads it when the
inventory changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inventory.enums import DeviceKind, LinkRole, Tier
from inventory.model import Device, Link, Site

TIER_RANK = {Tier.MINISTRY: 0, Tier.PROVINCE: 1, Tier.PREFECTURE: 2, Tier.COUNTY: 3}
ROLE_RANK = {role: i for i, role in enumerate(LinkRole)}


@dataclass(frozen=True, slots=True)
class RouterInfo:
    id: int
    name: str
    site: str
    platform: str
    mgmt_address: str
    ssh_port: int


@dataclass(frozen=True, slots=True)
class LinkInfo:
    id: int
    name: str
    site: str
    role: LinkRole
    router: str
    interface: str
    next_hop: str  # the far end: the next hop of the default route over this link


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class SiteInfo:
    id: int
    name: str
    tier: Tier
    parent: str | None
    province_code: str | None
    links: tuple[LinkInfo, ...]  # in preference order
    maintenance: tuple[Window, ...] = ()

    def link(self, name: str) -> LinkInfo | None:
        return next((lk for lk in self.links if lk.name == name), None)

    def link_by_role(self, role: LinkRole) -> LinkInfo | None:
        return next((lk for lk in self.links if lk.role is role), None)

    def in_maintenance(self, at: datetime) -> bool:
        return any(w.covers(at) for w in self.maintenance)

    @property
    def routers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(lk.router for lk in self.links))


@dataclass(frozen=True)
class Topology:
    sites: Mapping[str, SiteInfo] = field(default_factory=dict)
    routers: Mapping[str, RouterInfo] = field(default_factory=dict)

    def site_of_link(self, link: str) -> SiteInfo | None:
        for site in self.sites.values():
            if site.link(link) is not None:
                return site
        return None

    def link_ids(self) -> dict[str, int]:
        return {lk.name: lk.id for s in self.sites.values() for lk in s.links}

    @classmethod
    def of(cls, sites: Iterable[SiteInfo], routers: Iterable[RouterInfo] = ()) -> Topology:
        return cls({s.name: s for s in sites}, {r.name: r for r in routers})


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:  # the inventory only stores aware times; be safe anyway
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def load_topology(session: Session) -> Topology:
    """Every site that has at least one link, with its links, routers and maintenance windows."""
    sites = session.scalars(
        select(Site).options(
            selectinload(Site.links).selectinload(Link.router),
            selectinload(Site.maintenance),
            selectinload(Site.parent),
        )
    ).all()
    out: list[SiteInfo] = []
    routers: dict[str, RouterInfo] = {}
    for site in sites:
        if not site.links:
            continue
        links = sorted(site.links, key=lambda lk: ROLE_RANK[lk.role])
        infos = []
        for lk in links:
            dev: Device = lk.router
            if dev.kind is DeviceKind.ROUTER and dev.name not in routers:
                routers[dev.name] = RouterInfo(
                    dev.id, dev.name, site.name, dev.platform, dev.mgmt_address, dev.ssh_port
                )
            infos.append(
                LinkInfo(
                    lk.id, lk.name, site.name, lk.role, dev.name, lk.interface, lk.probe_address
                )
            )
        windows = tuple(Window(_aware(w.starts_at), _aware(w.ends_at)) for w in site.maintenance)
        out.append(
            SiteInfo(
                site.id,
                site.name,
                site.tier,
                site.parent.name if site.parent is not None else None,
                site.province_code,
                tuple(infos),
                windows,
            )
        )
    return Topology.of(out, routers.values())
