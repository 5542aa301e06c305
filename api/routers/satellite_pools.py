"""`/satellite-pools`: shared satellite capacity that sites on satellite draw from."""

from __future__ import annotations

from fastapi import Response
from sqlalchemy import select

from api import inventory_edits
from api.deps import AdminDep, SessionDep, role_router
from api.errors import responses
from api.inventory_edits import POOLS
from api.listing import DEFAULTS, LimitQuery, NamePath, OffsetQuery, page
from api.listing import one as get_one
from api.roles import Role
from api.schemas import Page
from inventory.document import SatellitePoolDoc
from inventory.model import SatellitePool

router = role_router(prefix="/satellite-pools", tag="satellite pools", role=Role.VIEWER)


@router.get(
    "",
    summary="List satellite pools",
    response_model=Page[SatellitePoolDoc],
    responses=responses(422),
)
def list_pools(
    session: SessionDep,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[SatellitePoolDoc]:
    return page(session, select(SatellitePool), SatellitePool.name, POOLS.to_body, limit, offset)


@router.get(
    "/{name}",
    summary="Get a satellite pool",
    response_model=SatellitePoolDoc,
    responses=responses(404, 422),
)
def get_pool(name: NamePath, session: SessionDep) -> SatellitePoolDoc:
    return POOLS.to_body(get_one(session, SatellitePool, name, "satellite pool"))


@router.post(
    "",
    status_code=201,
    summary="Create a satellite pool",
    response_model=SatellitePoolDoc,
    responses=responses(409, 413, 422),
)
def create_pool(body: SatellitePoolDoc, session: SessionDep, who: AdminDep) -> SatellitePoolDoc:
    out = inventory_edits.create(session, POOLS, body, actor=who.actor)
    session.commit()
    return out


@router.put(
    "/{name}",
    summary="Replace a satellite pool",
    response_model=SatellitePoolDoc,
    responses=responses(404, 409, 413, 422),
)
def replace_pool(
    name: NamePath, body: SatellitePoolDoc, session: SessionDep, who: AdminDep
) -> SatellitePoolDoc:
    out = inventory_edits.replace(session, POOLS, name, body, actor=who.actor)
    session.commit()
    return out


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete a satellite pool",
    responses=responses(404, 409, 422),
)
def delete_pool(name: NamePath, session: SessionDep, who: AdminDep) -> None:
    """A pool still used by satellite links cannot be deleted (409 lists them)."""
    inventory_edits.delete(session, POOLS, name, actor=who.actor)
    session.commit()
