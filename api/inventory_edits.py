"""Inventory writes through the API, checked by the same rules as an imported YAML file.

A write is made on a document view of the inventory (the ``InventoryDoc`` shape, built with the
row converters of ``inventory.store``), checked with ``inventory.validation.check_references`` and
only then written with ``inventory.store.apply_document``: the API has no rules of its own to
drift from the YAML's.

The view holds every satellite pool and credential profile but only the sites the change can
touch: the object's own site(s), its parent and child sites, the sites of whatever refers to it
or it refers to, and the ministry. That keeps a write on a national inventory well under a second
(the whole document takes seconds to load). Problems the change introduces in the object written
are answered 422 with body paths (``body.router``); problems it would cause in *other* objects (a
device still used as a router, a second primary link at a site) are a 409 naming those objects.
Problems already present before the change (including those of a partial view) are not blamed
on it. Name uniqueness is checked against the database.

Every write first takes the audit chain's lock (:func:`controllers.audit.lock_chain`), so writes
are serialized: the check and the write see the same inventory, and the audit record follows in
the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.schemas import DeviceIn, LinkIn, SiteIn
from controllers import audit
from inventory.document import CredentialProfileDoc, InventoryDoc, SatellitePoolDoc
from inventory.enums import Tier
from inventory.errors import Conflict, InventoryInvalid, NotFound, Problem
from inventory.model import CredentialProfile, Device, Link, SatellitePool, Site
from inventory.store import (
    apply_document,
    device_doc,
    link_doc,
    load_document,
    pool_doc,
    profile_doc,
    site_doc,
)
from inventory.validation import check_references

_PATH = re.compile(
    r"^(?P<top>sites|credential_profiles|satellite_pools)\[(?P<i>\d+)\]"
    r"(?:\.(?P<sub>devices|links)\[(?P<j>\d+)\])?(?P<rest>.*)$"
)
_LIST_MORE = 10


def _within(path: str, target: str) -> bool:
    return path == target or path.startswith((f"{target}.", f"{target}["))


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LIST_MORE])
    more = len(names) - _LIST_MORE
    return f"{shown} and {more} more" if more > 0 else shown


def load_view(session: Session, site_ids: Iterable[int]) -> InventoryDoc:
    """All pools and profiles, and these sites (plus the ministry) with their devices and links."""
    return load_document(session, or_(Site.id.in_(set(site_ids)), Site.tier == Tier.MINISTRY))


class Draft:
    """A view of the inventory, edited in memory, checked, then written."""

    def __init__(self, session: Session, site_ids: Iterable[int]) -> None:
        audit.lock_chain(session)
        self.session = session
        self.doc = load_view(session, site_ids)
        self._known = {(p.path, p.reason) for p in check_references(self.doc)}

    def check(self, target: str) -> None:
        """Raise InventoryInvalid/Conflict for problems the edit of ``target`` introduced."""
        new = [p for p in check_references(self.doc) if (p.path, p.reason) not in self._known]
        own = [p for p in new if _within(p.path, target)]
        if own:
            raise InventoryInvalid([Problem(f"body{p.path[len(target) :]}", p.reason) for p in own])
        if new:
            lines = "\n".join(f"  - {self.describe(p)}" for p in new)
            raise Conflict(
                f"the change would break other inventory objects; nothing was changed:\n{lines}"
            )

    def describe(self, problem: Problem) -> str:
        """A problem located by object names instead of list positions."""
        m = _PATH.match(problem.path)
        if m is None:
            return str(problem)
        i, rest = int(m["i"]), m["rest"].lstrip(".")
        if m["top"] == "credential_profiles":
            what = f"credential profile {self.doc.credential_profiles[i].name!r}"
        elif m["top"] == "satellite_pools":
            what = f"satellite pool {self.doc.satellite_pools[i].name!r}"
        else:
            site = self.doc.sites[i]
            what = f"site {site.name!r}"
            if m["sub"] is not None:
                j = int(m["j"])
                item = site.devices[j] if m["sub"] == "devices" else site.links[j]
                noun = "device" if m["sub"] == "devices" else "link"
                what = f"{noun} {item.name!r} at site {site.name!r}"
        return f"{what}, {rest}: {problem.reason}" if rest else f"{what}: {problem.reason}"

    def save(self, model: type[Any] | None = None, old: str = "", new: str = "") -> None:
        """Write the view (renaming ``model`` row ``old`` to ``new`` first, if given)."""
        if model is not None and old != new:
            row = self.session.scalar(select(model).where(model.name == old))
            assert row is not None, "checked by the caller under the lock"
            row.name = new
            self.session.flush()
        apply_document(self.session, self.doc, prune=False)

    # ---- where things are -----------------------------------------------------------------

    def site_index(self, name: str | None) -> int | None:
        return next((i for i, s in enumerate(self.doc.sites) if s.name == name), None)

    def device_at(self, name: str | None) -> tuple[int, int] | None:
        for i, s in enumerate(self.doc.sites):
            for j, d in enumerate(s.devices):
                if d.name == name:
                    return i, j
        return None

    def link_at(self, name: str | None) -> tuple[int, int] | None:
        for i, s in enumerate(self.doc.sites):
            for j, lk in enumerate(s.links):
                if lk.name == name:
                    return i, j
        return None

    def require_site(self, name: str) -> int:
        i = self.site_index(name)
        if i is None:
            raise InventoryInvalid([Problem("body.site", f"unknown site {name!r}")])
        return i


B = TypeVar("B", bound=BaseModel)


@dataclass(frozen=True)
class Kind(Generic[B]):
    """How one kind of inventory object sits in the document and in the database."""

    label: str  # "site", also the audit target_type
    model: type[Any]
    to_body: Callable[[Any], B]  # a database row as a body
    # The sites a change can touch, from the row as it is (None: new) and the body.
    neighbours: Callable[[Session, Any, B | None], set[int]]
    put: Callable[[Draft, str | None, B], str]  # place a body (replacing name), return its path
    rename_refs: Callable[[InventoryDoc, str, str], None]
    referrers: Callable[[Session, Any], list[str]]  # what still refers to a row


def _ids(session: Session, stmt: Any) -> set[int]:
    return {i for i in session.scalars(stmt) if i is not None}


def _site_named(name: str | None) -> Any:
    return select(Site.id).where(Site.name == name)


# ---- sites -------------------------------------------------------------------------------------


def _site_neighbours(session: Session, row: Site | None, body: SiteIn | None) -> set[int]:
    ids = _ids(session, _site_named(body.parent)) if body and body.parent else set()
    if row is not None:
        ids |= {row.id} | ({row.parent_id} if row.parent_id else set())
        ids |= _ids(session, select(Site.id).where(Site.parent_id == row.id))
    return ids


def _site_put(d: Draft, old: str | None, body: SiteIn) -> str:
    new = body.to_doc()
    i = d.site_index(old) if old is not None else None
    if i is None:
        d.doc.sites.append(new)
        return f"sites[{len(d.doc.sites) - 1}]"
    new.devices, new.links = d.doc.sites[i].devices, d.doc.sites[i].links
    d.doc.sites[i] = new
    return f"sites[{i}]"


def _site_rename(doc: InventoryDoc, old: str, new: str) -> None:
    for s in doc.sites:
        if s.parent == old:
            s.parent = new


def _site_referrers(session: Session, row: Site) -> list[str]:
    found = []
    children = session.scalars(
        select(Site.name).where(Site.parent_id == row.id).order_by(Site.name)
    )
    if names := list(children):
        found.append(f"child sites {_names(names)}")
    if names := sorted(d.name for d in row.devices):
        found.append(f"devices {_names(names)}")
    if names := sorted(lk.name for lk in row.links):
        found.append(f"links {_names(names)}")
    return found


SITES: Kind[SiteIn] = Kind(
    "site",
    Site,
    lambda row: SiteIn.of(site_doc(row, with_children=False)),
    _site_neighbours,
    _site_put,
    _site_rename,
    _site_referrers,
)


# ---- devices -----------------------------------------------------------------------------------


def _device_neighbours(session: Session, row: Device | None, body: DeviceIn | None) -> set[int]:
    ids = _ids(session, _site_named(body.site)) if body else set()
    if row is not None:
        ids.add(row.site_id)
        using = or_(Link.router_id == row.id, Link.terminal_id == row.id)
        ids |= _ids(session, select(Link.site_id).where(using))
    return ids


def _device_put(d: Draft, old: str | None, body: DeviceIn) -> str:
    si = d.require_site(body.site)
    new = body.to_doc()
    at = d.device_at(old) if old is not None else None
    if at is not None:
        i, j = at
        if i == si:
            d.doc.sites[i].devices[j] = new
            return f"sites[{i}].devices[{j}]"
        del d.doc.sites[i].devices[j]  # moves to another site
    d.doc.sites[si].devices.append(new)
    return f"sites[{si}].devices[{len(d.doc.sites[si].devices) - 1}]"


def _device_rename(doc: InventoryDoc, old: str, new: str) -> None:
    for s in doc.sites:
        for lk in s.links:
            if lk.router == old:
                lk.router = new
            if lk.terminal == old:
                lk.terminal = new


def _device_referrers(session: Session, row: Device) -> list[str]:
    links = session.scalars(
        select(Link.name)
        .where(or_(Link.router_id == row.id, Link.terminal_id == row.id))
        .order_by(Link.name)
    )
    names = list(links)
    return [f"links {_names(names)}"] if names else []


DEVICES: Kind[DeviceIn] = Kind(
    "device",
    Device,
    lambda row: DeviceIn.of(device_doc(row), row.site.name),
    _device_neighbours,
    _device_put,
    _device_rename,
    _device_referrers,
)


# ---- links -------------------------------------------------------------------------------------


def _link_neighbours(session: Session, row: Link | None, body: LinkIn | None) -> set[int]:
    ids = set()
    if body is not None:
        ids |= _ids(session, _site_named(body.site))
        named = [n for n in (body.router, body.terminal) if n]
        ids |= _ids(session, select(Device.site_id).where(Device.name.in_(named)))
    if row is not None:
        ids.add(row.site_id)
    return ids


def _link_put(d: Draft, old: str | None, body: LinkIn) -> str:
    si = d.require_site(body.site)
    new = body.to_doc()
    at = d.link_at(old) if old is not None else None
    if at is not None:
        i, j = at
        if i == si:
            d.doc.sites[i].links[j] = new
            return f"sites[{i}].links[{j}]"
        del d.doc.sites[i].links[j]
    d.doc.sites[si].links.append(new)
    return f"sites[{si}].links[{len(d.doc.sites[si].links) - 1}]"


def _nothing_refers(*_: Any) -> list[str]:
    return []


def _no_refs(*_: Any) -> None:
    return None


LINKS: Kind[LinkIn] = Kind(
    "link",
    Link,
    lambda row: LinkIn.of(link_doc(row), row.site.name),
    _link_neighbours,
    _link_put,
    _no_refs,
    _nothing_refers,
)


# ---- credential profiles -----------------------------------------------------------------------


def _put_top(items: list[Any], old: str | None, body: Any, key: str) -> str:
    i = next((i for i, x in enumerate(items) if x.name == old), None)
    if i is None:
        items.append(body)
        i = len(items) - 1
    else:
        items[i] = body
    return f"{key}[{i}]"


def _profile_neighbours(
    session: Session, row: CredentialProfile | None, _: CredentialProfileDoc | None
) -> set[int]:
    if row is None:
        return set()
    using = or_(Device.snmp_profile_id == row.id, Device.ssh_profile_id == row.id)
    return _ids(session, select(Device.site_id).where(using))


def _profile_put(d: Draft, old: str | None, body: CredentialProfileDoc) -> str:
    return _put_top(d.doc.credential_profiles, old, body, "credential_profiles")


def _profile_rename(doc: InventoryDoc, old: str, new: str) -> None:
    for s in doc.sites:
        for dev in s.devices:
            if dev.snmp_profile == old:
                dev.snmp_profile = new
            if dev.ssh_profile == old:
                dev.ssh_profile = new


def _profile_referrers(session: Session, row: CredentialProfile) -> list[str]:
    devices = session.scalars(
        select(Device.name)
        .where(or_(Device.snmp_profile_id == row.id, Device.ssh_profile_id == row.id))
        .order_by(Device.name)
    )
    names = list(devices)
    return [f"devices {_names(names)}"] if names else []


PROFILES: Kind[CredentialProfileDoc] = Kind(
    "credential_profile",
    CredentialProfile,
    profile_doc,
    _profile_neighbours,
    _profile_put,
    _profile_rename,
    _profile_referrers,
)


# ---- satellite pools ---------------------------------------------------------------------------


def _pool_neighbours(
    session: Session, row: SatellitePool | None, _: SatellitePoolDoc | None
) -> set[int]:
    if row is None:
        return set()
    return _ids(session, select(Link.site_id).where(Link.satellite_pool_id == row.id))


def _pool_put(d: Draft, old: str | None, body: SatellitePoolDoc) -> str:
    return _put_top(d.doc.satellite_pools, old, body, "satellite_pools")


def _pool_rename(doc: InventoryDoc, old: str, new: str) -> None:
    for s in doc.sites:
        for lk in s.links:
            if lk.satellite_pool == old:
                lk.satellite_pool = new


def _pool_referrers(session: Session, row: SatellitePool) -> list[str]:
    links = session.scalars(
        select(Link.name).where(Link.satellite_pool_id == row.id).order_by(Link.name)
    )
    names = list(links)
    return [f"links {_names(names)}"] if names else []


POOLS: Kind[SatellitePoolDoc] = Kind(
    "satellite_pool",
    SatellitePool,
    pool_doc,
    _pool_neighbours,
    _pool_put,
    _pool_rename,
    _pool_referrers,
)


# ---- the three writes --------------------------------------------------------------------------


def _json(body: BaseModel | None) -> dict[str, Any] | None:
    return None if body is None else body.model_dump(mode="json")


def _label(kind: Kind[Any]) -> str:
    return kind.label.replace("_", " ")


def _row(session: Session, kind: Kind[Any], name: str) -> Any:
    return session.scalar(select(kind.model).where(kind.model.name == name))


def create(session: Session, kind: Kind[B], body: B, *, actor: str) -> B:
    """Add a new object; 409 if the name is taken, 422/409 if a rule would break."""
    name = getattr(body, "name")  # noqa: B009 - every inventory body has a name
    audit.lock_chain(session)
    if _row(session, kind, name) is not None:
        raise Conflict(f"a {_label(kind)} named {name!r} already exists")
    draft = Draft(session, kind.neighbours(session, None, body))
    draft.check(kind.put(draft, None, body))
    draft.save()
    audit.append(
        session,
        actor=actor,
        action=f"{kind.label}.create",
        target_type=kind.label,
        target=name,
        before=None,
        after=_json(body),
    )
    return body


def replace(session: Session, kind: Kind[B], name: str, body: B, *, actor: str) -> B:
    """Replace an object (a different ``name`` in the body renames it; references follow)."""
    new_name = getattr(body, "name")  # noqa: B009
    audit.lock_chain(session)
    row = _row(session, kind, name)
    if row is None:
        raise NotFound(f"no {_label(kind)} named {name!r}")
    before = kind.to_body(row)
    if new_name != name and _row(session, kind, new_name) is not None:
        raise Conflict(f"cannot rename to {new_name!r}: a {_label(kind)} of that name exists")
    draft = Draft(session, kind.neighbours(session, row, body))
    if new_name != name:
        kind.rename_refs(draft.doc, name, new_name)
    draft.check(kind.put(draft, name, body))
    if before == body:
        return body
    draft.save(kind.model, name, new_name)
    audit.append(
        session,
        actor=actor,
        action=f"{kind.label}.update",
        target_type=kind.label,
        target=new_name,
        before=_json(before),
        after=_json(body),
    )
    return body


def delete(session: Session, kind: Kind[Any], name: str, *, actor: str) -> None:
    """Delete an object nothing refers to any more; 409 naming what still does otherwise."""
    audit.lock_chain(session)
    row = _row(session, kind, name)
    if row is None:
        raise NotFound(f"no {_label(kind)} named {name!r}")
    if still := kind.referrers(session, row):
        raise Conflict(
            f"{_label(kind)} {name!r} is still referred to by {'; '.join(still)}; "
            "delete or change those first"
        )
    before = _json(kind.to_body(row))
    session.delete(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action=f"{kind.label}.delete",
        target_type=kind.label,
        target=name,
        before=before,
        after=None,
    )
