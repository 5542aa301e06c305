"""Filtered, paginated listings: shared query parameters and the province filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Path, Query
from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from api.schemas import DEFAULT_LIMIT, MAX_LIMIT, Page
from inventory.enums import Tier
from inventory.errors import NotFound
from inventory.model import Site

T = TypeVar("T")

LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}")
]
OffsetQuery = Annotated[int, Query(ge=0, le=2**31 - 1, description="how many matches to skip")]
ProvinceQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=63,
        description="only what lies in this province: its GB/T 2260 code (44 or 440000) or the "
        "name of its province site",
        examples=["44"],
    ),
]
SiteQuery = Annotated[
    str | None, Query(min_length=1, max_length=63, description="only what is at this site")
]
NamePath = Annotated[
    str, Path(max_length=63, description="the object's name", examples=["guangdong-shaoguan"])
]
DEFAULTS = {"limit": DEFAULT_LIMIT, "offset": 0}


def in_province(province: str, site_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """A condition on ``site_id`` (sites.id or a site_id column): the site is the province's
    site, below it in the site tree, or carries a division code of that province."""
    root, child = aliased(Site), aliased(Site)
    if province.isdigit():
        prefix = province[:2]  # GB/T 2260: the first two digits are the province
        roots = select(root.id).where(
            root.tier == Tier.PROVINCE, root.province_code.startswith(prefix)
        )
        coded = select(child.id).where(child.province_code.startswith(prefix))
    else:
        roots = select(root.id).where(root.tier == Tier.PROVINCE, root.name == province)
        coded = select(child.id).where(false())
    below = aliased(Site)
    level1 = select(below.id).where(below.parent_id.in_(roots))
    level2_site = aliased(Site)
    level2 = select(level2_site.id).where(level2_site.parent_id.in_(level1))
    return or_(site_id.in_(roots), site_id.in_(level1), site_id.in_(level2), site_id.in_(coded))


def site_named(name: str, site_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    here = aliased(Site)
    return site_id.in_(select(here.id).where(here.name == name))


def page(
    session: Session,
    stmt: Select[Any],
    order_by: InstrumentedAttribute[Any],
    to_body: Callable[[Any], T],
    limit: int,
    offset: int,
) -> Page[T]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = session.scalars(stmt.order_by(order_by).limit(limit).offset(offset))
    return Page[T](items=[to_body(r) for r in rows], total=total or 0, limit=limit, offset=offset)


def one(session: Session, model: type[Any], name: str, label: str) -> Any:
    row = session.scalar(select(model).where(model.name == name))
    if row is None:
        raise NotFound(f"no {label} named {name!r}")
    return row
