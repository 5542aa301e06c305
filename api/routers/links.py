"""`/links`: each site's primary, backup and satellite links."""

from __future__ import annotations

from fastapi import Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api import inventory_edits
from api.deps import AdminDep, SessionDep, role_router
from api.errors import responses
from api.inventory_edits import LINKS
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
from api.schemas import LinkIn, Page
from inventory.enums import LinkRole
from inventory.model import Link

router = role_router(prefix="/links", tag="links", role=Role.VIEWER)


@router.get("", summary="List links", response_model=Page[LinkIn], responses=responses(422))
def list_links(
    session: SessionDep,
    province: ProvinceQuery = None,
    site: SiteQuery = None,
    role: LinkRole | None = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[LinkIn]:
    """Links by name, optionally of one province or site and/or one role."""
    stmt = select(Link).options(
        selectinload(Link.site),
        selectinload(Link.router),
        selectinload(Link.terminal),
        selectinload(Link.satellite_pool),
    )
    if province is not None:
        stmt = stmt.where(in_province(province, Link.site_id))
    if site is not None:
        stmt = stmt.where(site_named(site, Link.site_id))
    if role is not None:
        stmt = stmt.where(Link.role == role)
    return page(session, stmt, Link.name, LINKS.to_body, limit, offset)


@router.get("/{name}", summary="Get a link", response_model=LinkIn, responses=responses(404, 422))
def get_link(name: NamePath, session: SessionDep) -> LinkIn:
    return LINKS.to_body(get_one(session, Link, name, "link"))


@router.post(
    "",
    status_code=201,
    summary="Create a link",
    response_model=LinkIn,
    responses=responses(409, 413, 422),
)
def create_link(body: LinkIn, session: SessionDep, who: AdminDep) -> LinkIn:
    """The router must be a router at the same site; a satellite link names the site's
    terminal and a satellite pool; a site has at most one link per role (409)."""
    out = inventory_edits.create(session, LINKS, body, actor=who.actor)
    session.commit()
    return out


@router.put(
    "/{name}",
    summary="Replace a link",
    response_model=LinkIn,
    responses=responses(404, 409, 413, 422),
)
def replace_link(name: NamePath, body: LinkIn, session: SessionDep, who: AdminDep) -> LinkIn:
    out = inventory_edits.replace(session, LINKS, name, body, actor=who.actor)
    session.commit()
    return out


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete a link",
    responses=responses(404, 409, 422),
)
def delete_link(name: NamePath, session: SessionDep, who: AdminDep) -> None:
    inventory_edits.delete(session, LINKS, name, actor=who.actor)
    session.commit()
