"""`/devices`: routers, satellite terminals, video endpoints and MCUs."""

from __future__ import annotations

from fastapi import Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api import inventory_edits
from api.deps import AdminDep, SessionDep, role_router
from api.errors import responses
from api.inventory_edits import DEVICES
from api.listing import (
    DEFAULTS,
    LimitQuery,
    NamePath,
    OffsetQuery,
    ProvinceQuery,
    SiteQuery,
    in_province,
    page,
    site_named,
)
from api.listing import one as get_one
from api.roles import Role
from api.schemas import DeviceIn, Page
from inventory.enums import DeviceKind
from inventory.model import Device

router = role_router(prefix="/devices", tag="devices", role=Role.VIEWER)


@router.get("", summary="List devices", response_model=Page[DeviceIn], responses=responses(422))
def list_devices(
    session: SessionDep,
    province: ProvinceQuery = None,
    site: SiteQuery = None,
    kind: DeviceKind | None = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[DeviceIn]:
    """Devices by name, optionally of one province or site and/or one kind."""
    stmt = select(Device).options(
        selectinload(Device.site),
        selectinload(Device.snmp_profile),
        selectinload(Device.ssh_profile),
    )
    if province is not None:
        stmt = stmt.where(in_province(province, Device.site_id))
    if site is not None:
        stmt = stmt.where(site_named(site, Device.site_id))
    if kind is not None:
        stmt = stmt.where(Device.kind == kind)
    return page(session, stmt, Device.name, DEVICES.to_body, limit, offset)


@router.get(
    "/{name}", summary="Get a device", response_model=DeviceIn, responses=responses(404, 422)
)
def get_device(name: NamePath, session: SessionDep) -> DeviceIn:
    return DEVICES.to_body(get_one(session, Device, name, "device"))


@router.post(
    "",
    status_code=201,
    summary="Create a device",
    response_model=DeviceIn,
    responses=responses(409, 413, 422),
)
def create_device(body: DeviceIn, session: SessionDep, who: AdminDep) -> DeviceIn:
    """The site must exist; SNMP/SSH profiles must exist and be of that kind."""
    out = inventory_edits.create(session, DEVICES, body, actor=who.actor)
    session.commit()
    return out


@router.put(
    "/{name}",
    summary="Replace a device",
    response_model=DeviceIn,
    responses=responses(404, 409, 413, 422),
)
def replace_device(name: NamePath, body: DeviceIn, session: SessionDep, who: AdminDep) -> DeviceIn:
    """Replace a device; a new `name` renames it (links follow), a new `site` moves it.
    A change that would leave a link without a router at its site is a 409."""
    out = inventory_edits.replace(session, DEVICES, name, body, actor=who.actor)
    session.commit()
    return out


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete a device",
    responses=responses(404, 409, 422),
)
def delete_device(name: NamePath, session: SessionDep, who: AdminDep) -> None:
    """A device still used by a link (as router or terminal) cannot be deleted (409)."""
    inventory_edits.delete(session, DEVICES, name, actor=who.actor)
    session.commit()
