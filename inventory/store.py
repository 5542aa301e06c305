"""Moving whole inventories between the document form and the database.

``apply_document`` makes the database equal to a validated document (upsert by name, and with
``prune`` delete what the document no longer has) inside the caller's transaction, so a failure
changes nothing. Ids of objects that survive are kept: other tables point at them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, selectinload

from inventory.document import (
    CredentialProfileDoc,
    DeviceDoc,
    InventoryDoc,
    LinkDoc,
    MaintenanceWindowDoc,
    SatellitePoolDoc,
    SiteDoc,
)
from inventory.enums import Tier
from inventory.model import (
    Base,
    CredentialProfile,
    Device,
    Link,
    MaintenanceWindow,
    SatellitePool,
    Site,
)
from inventory.secrets import SecretRef

R = TypeVar("R", bound=Base)


@dataclass
class ApplySummary:
    """What an import changed, per object kind: counts of created/updated/deleted."""

    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)

    def bump(self, bucket: str, kind: str) -> None:
        counts = getattr(self, bucket)
        counts[kind] = counts.get(kind, 0) + 1

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"created": self.created, "updated": self.updated, "deleted": self.deleted}


def _ref(value: str | None) -> SecretRef | None:
    return SecretRef.parse(value) if value else None


def _str(ref: SecretRef | None) -> str | None:
    return str(ref) if ref is not None else None


# ---- row -> document -------------------------------------------------------------------------


def profile_doc(p: CredentialProfile) -> CredentialProfileDoc:
    return CredentialProfileDoc(
        name=p.name,
        kind=p.kind,
        snmp_version=p.snmp_version,
        community=_ref(p.community_ref),
        user=p.snmp_user,
        auth_protocol=p.auth_protocol,
        auth_key=_ref(p.auth_key_ref),
        priv_protocol=p.priv_protocol,
        priv_key=_ref(p.priv_key_ref),
        username=p.ssh_username,
        password=_ref(p.ssh_password_ref),
        private_key=_ref(p.ssh_private_key_ref),
    )


def pool_doc(p: SatellitePool) -> SatellitePoolDoc:
    return SatellitePoolDoc(name=p.name, capacity_kbps=p.capacity_kbps, description=p.description)


def device_doc(d: Device) -> DeviceDoc:
    return DeviceDoc(
        name=d.name,
        kind=d.kind,
        vendor=d.vendor,
        platform=d.platform,
        model=d.model,
        mgmt_address=d.mgmt_address,
        snmp_port=d.snmp_port,
        ssh_port=d.ssh_port,
        snmp_profile=d.snmp_profile.name if d.snmp_profile else None,
        ssh_profile=d.ssh_profile.name if d.ssh_profile else None,
    )


def link_doc(lk: Link) -> LinkDoc:
    return LinkDoc(
        name=lk.name,
        role=lk.role,
        router=lk.router.name,
        interface=lk.interface,
        capacity_kbps=lk.capacity_kbps,
        probe_address=lk.probe_address,
        carrier=lk.carrier,
        terminal=lk.terminal.name if lk.terminal else None,
        satellite_pool=lk.satellite_pool.name if lk.satellite_pool else None,
    )


def window_doc(w: MaintenanceWindow) -> MaintenanceWindowDoc:
    return MaintenanceWindowDoc.model_validate(
        {"start": w.starts_at, "end": w.ends_at, "reason": w.reason}
    )


def _window_rows(windows: list[MaintenanceWindowDoc]) -> list[tuple[str, str, str | None]]:
    return [(w.start.isoformat(), w.end.isoformat(), w.reason) for w in windows]


def site_doc(s: Site, with_children: bool = True) -> SiteDoc:
    return SiteDoc(
        name=s.name,
        display_name=s.display_name,
        tier=s.tier,
        parent=s.parent.name if s.parent else None,
        province_code=s.province_code,
        latitude=s.latitude,
        longitude=s.longitude,
        maintenance=[window_doc(w) for w in s.maintenance],
        devices=[device_doc(d) for d in s.devices] if with_children else [],
        links=[link_doc(lk) for lk in s.links] if with_children else [],
    )


def load_document(session: Session, sites: ColumnElement[bool] | None = None) -> InventoryDoc:
    """The whole inventory as a document, in creation order (so import→export round-trips).

    ``sites`` restricts the sites (with their devices and links) to those matching a filter on
    ``Site``; pools and profiles are always complete.
    """
    pools = session.scalars(select(SatellitePool).order_by(SatellitePool.id)).all()
    profiles = session.scalars(select(CredentialProfile).order_by(CredentialProfile.id)).all()
    query = select(Site) if sites is None else select(Site).where(sites)
    site_rows = session.scalars(
        query.order_by(Site.id).options(
            selectinload(Site.parent),
            selectinload(Site.maintenance),
            selectinload(Site.devices).selectinload(Device.snmp_profile),
            selectinload(Site.devices).selectinload(Device.ssh_profile),
            selectinload(Site.links).selectinload(Link.router),
            selectinload(Site.links).selectinload(Link.terminal),
            selectinload(Site.links).selectinload(Link.satellite_pool),
        )
    ).all()
    return InventoryDoc(
        satellite_pools=[pool_doc(p) for p in pools],
        credential_profiles=[profile_doc(p) for p in profiles],
        sites=[site_doc(s) for s in site_rows],
    )


# ---- document -> rows ------------------------------------------------------------------------


def _set(row: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed


def _upsert(
    session: Session,
    summary: ApplySummary,
    kind: str,
    existing: dict[str, R],
    factory: Callable[[], R],
    name: str,
    values: dict[str, Any],
) -> R:
    row = existing.get(name)
    if row is None:
        row = factory()
        _set(row, {"name": name, **values})
        session.add(row)
        existing[name] = row
        summary.bump("created", kind)
    elif _set(row, values):
        summary.bump("updated", kind)
    return row


def _by_name(session: Session, model: type[R]) -> dict[str, R]:
    return {row.name: row for row in session.scalars(select(model))}  # type: ignore[attr-defined]


def _prune(session: Session, summary: ApplySummary, kind: str, rows: Iterable[Base]) -> None:
    for row in rows:
        session.delete(row)
        summary.bump("deleted", kind)


_TIER_DEPTH = {Tier.MINISTRY: 0, Tier.PROVINCE: 1, Tier.PREFECTURE: 2, Tier.COUNTY: 3}


def apply_document(session: Session, doc: InventoryDoc, *, prune: bool = True) -> ApplySummary:
    """Make the database hold ``doc``; flushes, never commits: the caller owns the transaction."""
    summary = ApplySummary()
    pools = _by_name(session, SatellitePool)
    profiles = _by_name(session, CredentialProfile)
    # Windows are compared for every site below: load them in one query, not 1,500.
    sites = {
        r.name: r for r in session.scalars(select(Site).options(selectinload(Site.maintenance)))
    }
    devices = _by_name(session, Device)
    links = _by_name(session, Link)

    for p in doc.satellite_pools:
        _upsert(
            session,
            summary,
            "satellite_pools",
            pools,
            SatellitePool,
            p.name,
            {"capacity_kbps": p.capacity_kbps, "description": p.description},
        )
    for c in doc.credential_profiles:
        _upsert(
            session,
            summary,
            "credential_profiles",
            profiles,
            CredentialProfile,
            c.name,
            {
                "kind": c.kind,
                "snmp_version": c.snmp_version,
                "community_ref": _str(c.community),
                "snmp_user": c.user,
                "auth_protocol": c.auth_protocol,
                "auth_key_ref": _str(c.auth_key),
                "priv_protocol": c.priv_protocol,
                "priv_key_ref": _str(c.priv_key),
                "ssh_username": c.username,
                "ssh_password_ref": _str(c.password),
                "ssh_private_key_ref": _str(c.private_key),
            },
        )

    # Sites first without parents, so a child may precede its parent in the document.
    # Only a site that existed and was not already counted is "updated" by a new parent
    # (after the flush below, new rows are no longer in session.new).
    unchanged_sites = set(sites)
    for s in doc.sites:
        counted = summary.updated.get("sites", 0)
        _upsert(
            session,
            summary,
            "sites",
            sites,
            Site,
            s.name,
            {
                "display_name": s.display_name,
                "tier": s.tier,
                "province_code": s.province_code,
                "latitude": s.latitude,
                "longitude": s.longitude,
            },
        )
        if summary.updated.get("sites", 0) != counted:
            unchanged_sites.discard(s.name)
    session.flush()
    for s in doc.sites:
        row = sites[s.name]
        wanted = _window_rows(s.maintenance)
        have = [(w.starts_at, w.ends_at, w.reason) for w in row.maintenance]
        if wanted != have:
            row.maintenance = [
                MaintenanceWindow(starts_at=a, ends_at=b, reason=r) for a, b, r in wanted
            ]
            if s.name in unchanged_sites:
                unchanged_sites.discard(s.name)
                summary.bump("updated", "sites")
        parent_id = sites[s.parent].id if s.parent else None
        if row.parent_id != parent_id:
            row.parent_id = parent_id
            if s.name in unchanged_sites:
                summary.bump("updated", "sites")

    for s in doc.sites:
        for d in s.devices:
            _upsert(
                session,
                summary,
                "devices",
                devices,
                Device,
                d.name,
                {
                    "site": sites[s.name],
                    "kind": d.kind,
                    "vendor": d.vendor,
                    "platform": d.platform,
                    "model": d.model,
                    "mgmt_address": d.mgmt_address,
                    "snmp_port": d.snmp_port,
                    "ssh_port": d.ssh_port,
                    "snmp_profile": profiles[d.snmp_profile] if d.snmp_profile else None,
                    "ssh_profile": profiles[d.ssh_profile] if d.ssh_profile else None,
                },
            )
    session.flush()

    wanted_links = {lk.name for s in doc.sites for lk in s.links}
    if prune:
        # Removed links go first: a link that changes role may otherwise collide with
        # the (site, role) uniqueness of one being removed.
        _prune(session, summary, "links", [r for n, r in links.items() if n not in wanted_links])
        session.flush()
    # Links that change role step aside first: two links trading roles would otherwise collide
    # on the (site, role) uniqueness in the middle of the flush. The placeholder role never
    # outlives this transaction.
    doc_roles = {lk.name: lk.role for s in doc.sites for lk in s.links}
    moving = [r for n, r in links.items() if n in doc_roles and r.role != doc_roles[n]]
    if moving:
        for moving_link in moving:
            moving_link.role = f"moving-{moving_link.id}"  # type: ignore[assignment]
        session.flush()
    for s in doc.sites:
        for lk in s.links:
            _upsert(
                session,
                summary,
                "links",
                links,
                Link,
                lk.name,
                {
                    "site": sites[s.name],
                    "router": devices[lk.router],
                    "role": lk.role,
                    "interface": lk.interface,
                    "capacity_kbps": lk.capacity_kbps,
                    "probe_address": lk.probe_address,
                    "carrier": lk.carrier,
                    "terminal": devices[lk.terminal] if lk.terminal else None,
                    "satellite_pool": pools[lk.satellite_pool] if lk.satellite_pool else None,
                },
            )
    session.flush()

    if prune:
        wanted_devices = {d.name for s in doc.sites for d in s.devices}
        _prune(
            session, summary, "devices", [r for n, r in devices.items() if n not in wanted_devices]
        )
        session.flush()
        wanted_sites = {s.name for s in doc.sites}
        gone = sorted(
            (r for n, r in sites.items() if n not in wanted_sites),
            key=lambda r: -_TIER_DEPTH[r.tier],
        )
        for row in gone:  # deepest first, so no parent is deleted under a child
            session.delete(row)
            session.flush()
            summary.bump("deleted", "sites")
        _prune(
            session,
            summary,
            "credential_profiles",
            [r for n, r in profiles.items() if n not in {c.name for c in doc.credential_profiles}],
        )
        _prune(
            session,
            summary,
            "satellite_pools",
            [r for n, r in pools.items() if n not in {p.name for p in doc.satellite_pools}],
        )
        session.flush()
    return summary
