"""`/sites`: the ministry, provinces, prefectures and counties."""

from __future__ import annotations

from fastapi import Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api import inventory_edits
from api.deps import AdminDep, SessionDep, role_router
from api.errors import responses
from api.inventory_edits import SITES
from api.listing import (
    DEFAULTS,
    LimitQuery,
    NamePath,
    OffsetQuery,
    ProvinceQuery,
    in_province,
    page,
)
from api.listing import one as get_one
from api.roles import Role
from api.schemas import Page, SiteIn
from inventory.enums import Tier
from inventory.model import Site

router = role_router(prefix="/sites", tag="sites", role=Role.VIEWER)


@router.get("", summary="List sites", response_model=Page[SiteIn], responses=responses(422))
def list_sites(
    session: SessionDep,
    province: ProvinceQuery = None,
    tier: Tier | None = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[SiteIn]:
    """Sites by name, optionally only those of one province and/or one tier."""
    stmt = select(Site).options(selectinload(Site.parent), selectinload(Site.maintenance))
    if province is not None:
        stmt = stmt.where(in_province(province, Site.id))
    if tier is not None:
        stmt = stmt.where(Site.tier == tier)
    return page(session, stmt, Site.name, SITES.to_body, limit, offset)


@router.get("/{name}", summary="Get a site", response_model=SiteIn, responses=responses(404, 422))
def get_site(name: NamePath, session: SessionDep) -> SiteIn:
    return SITES.to_body(get_one(session, Site, name, "site"))


@router.post(
    "",
    status_code=201,
    summary="Create a site",
    response_model=SiteIn,
    responses=responses(409, 413, 422),
)
def create_site(body: SiteIn, session: SessionDep, who: AdminDep) -> SiteIn:
    """The parent must exist and have the tier above (province under the ministry...)."""
    out = inventory_edits.create(session, SITES, body, actor=who.actor)
    session.commit()
    return out


@router.put(
    "/{name}",
    summary="Replace a site",
    response_model=SiteIn,
    responses=responses(404, 409, 413, 422),
)
def replace_site(name: NamePath, body: SiteIn, session: SessionDep, who: AdminDep) -> SiteIn:
    """Replace a site's fields (devices and links stay); a new `name` renames it."""
    out = inventory_edits.replace(session, SITES, name, body, actor=who.actor)
    session.commit()
    return out


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete a site",
    responses=responses(404, 409, 422),
)
def delete_site(name: NamePath, session: SessionDep, who: AdminDep) -> None:
    """Only a site without child sites, devices and links can be deleted (409 lists them)."""
    inventory_edits.delete(session, SITES, name, actor=who.actor)
    session.commit()
