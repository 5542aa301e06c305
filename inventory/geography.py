"""China's real provincial-level nodes and county-level divisions, as the generator places sites.

The tables live in ``inventory/data/`` (see its README for sources and rebuild steps) and are read
once per process.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class ProvincialNode:
    """One of the 37 provincial-level nodes: province, XPCC or separately-listed city."""

    slug: str  # site name, e.g. "guangdong", "xinjiang-bingtuan", "dalian"
    abbr: str  # prefix of its counties' slugs, e.g. "gd"
    code: str  # GB/T 2260: two digits, four for the separately-listed cities, "66" for XPCC
    name: str  # official Chinese name
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class County:
    """A county-level division: district, county, county-level city or banner."""

    node: str  # slug of the provincial node it reports to
    adcode: str  # six-digit GB/T 2260 code
    slug: str  # e.g. "gd-shaoguan-qujiang"
    name: str  # Chinese, with its prefecture, e.g. "韶关市曲江区"
    latitude: float
    longitude: float


def _rows(filename: str) -> list[dict[str, str]]:
    text = (resources.files("inventory") / "data" / filename).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@functools.cache
def provincial_nodes() -> tuple[ProvincialNode, ...]:
    """All 37 nodes: the 31 by code, then XPCC, then 大连, 青岛, 宁波, 厦门, 深圳."""
    return tuple(
        ProvincialNode(
            slug=r["slug"],
            abbr=r["abbr"],
            code=r["code"],
            name=r["name"],
            latitude=float(r["latitude"]),
            longitude=float(r["longitude"]),
        )
        for r in _rows("provincial_nodes.csv")
    )


@functools.cache
def counties() -> tuple[County, ...]:
    """Every county-level division, grouped by node in node order, by code within a node."""
    return tuple(
        County(
            node=r["node"],
            adcode=r["adcode"],
            slug=r["slug"],
            name=r["name"],
            latitude=float(r["latitude"]),
            longitude=float(r["longitude"]),
        )
        for r in _rows("counties.csv")
    )
