"""The agent's object tree: scalars and table columns, read live, walked in OID order.

A ``View`` is a static, sorted list of MIB objects shared by every device of a kind; values
come from the device's state at request time through getter functions that return the value
already BER-encoded (or ``None`` when the instance does not exist on this device). Nothing is
materialised per device, so 6,000 devices cost no more memory than one.

GET finds the one object whose OID prefixes the requested OID (bisect), GETNEXT the first
instance after it: within that object, then in the objects after it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from lab.snmp import ber
from lab.snmp.ber import Oid
from lab.state import Device, LabNetwork

RowT = TypeVar("RowT")


@dataclass(slots=True)
class DeviceInfo:
    """What the agent fixed for a device at start: identity values and derived addresses."""

    sys_descr: bytes  # encoded TLVs, constant for the device's lifetime
    sys_object_id: bytes
    sys_contact: bytes
    sys_name: bytes
    sys_location: bytes
    sys_services: bytes
    engine_id: bytes
    mac: bytes
    satellite_link: str | None = None  # the link this terminal serves, if any
    max_message_size: int = 1472


@dataclass(slots=True)
class Ctx:
    """One request's view of one device: state, the instant it is read at, and row caches."""

    net: LabNetwork
    device: Device
    info: DeviceInfo
    now: float
    engine_boots: int
    cache: dict[int, Any] = field(default_factory=dict)


class MibObject(Protocol):
    @property
    def oid(self) -> Oid: ...

    def get(self, ctx: Ctx, suffix: Oid) -> bytes | None:
        """The encoded value of instance ``oid + suffix``, or None (noSuchInstance)."""

    def next_after(self, ctx: Ctx, suffix: Oid | None) -> tuple[Oid, bytes] | None:
        """The first instance whose suffix is greater than ``suffix`` (None: the first one)."""


class Scalar:
    """A scalar object: one instance, ``oid.0``."""

    __slots__ = ("getter", "oid")

    def __init__(self, oid: Oid, getter: Callable[[Ctx], bytes | None]) -> None:
        self.oid = oid
        self.getter = getter

    def get(self, ctx: Ctx, suffix: Oid) -> bytes | None:
        return self.getter(ctx) if suffix == (0,) else None

    def next_after(self, ctx: Ctx, suffix: Oid | None) -> tuple[Oid, bytes] | None:
        if suffix is not None and suffix >= (0,):
            return None
        value = self.getter(ctx)
        return None if value is None else ((0,), value)


class Rows(Generic[RowT]):
    """A table's rows for one request, sorted by index."""

    __slots__ = ("by_index", "indices", "rows")

    def __init__(self, pairs: Iterable[tuple[Oid, RowT]]) -> None:
        ordered = sorted(pairs, key=lambda p: p[0])
        self.indices = [p[0] for p in ordered]
        self.rows = [p[1] for p in ordered]
        self.by_index = dict(ordered)


class Table(Generic[RowT]):
    """A conceptual table: a function listing (index, row) for a device, and its columns."""

    def __init__(self, rows: Callable[[Ctx], Iterable[tuple[Oid, RowT]]]) -> None:
        self._rows = rows

    def rows(self, ctx: Ctx) -> Rows[RowT]:
        key = id(self)
        cached: Rows[RowT] | None = ctx.cache.get(key)
        if cached is None:
            cached = Rows(self._rows(ctx))
            ctx.cache[key] = cached
        return cached

    def column(self, oid: Oid, getter: Callable[[Ctx, RowT], bytes | None]) -> Column[RowT]:
        return Column(self, oid, getter)


class Column(Generic[RowT]):
    __slots__ = ("getter", "oid", "table")

    def __init__(
        self, table: Table[RowT], oid: Oid, getter: Callable[[Ctx, RowT], bytes | None]
    ) -> None:
        self.table = table
        self.oid = oid
        self.getter = getter

    def get(self, ctx: Ctx, suffix: Oid) -> bytes | None:
        row = self.table.rows(ctx).by_index.get(suffix)
        return None if row is None else self.getter(ctx, row)

    def next_after(self, ctx: Ctx, suffix: Oid | None) -> tuple[Oid, bytes] | None:
        rows = self.table.rows(ctx)
        start = 0 if suffix is None else bisect_right(rows.indices, suffix)
        for i in range(start, len(rows.rows)):
            value = self.getter(ctx, rows.rows[i])
            if value is not None:
                return rows.indices[i], value
        return None


class View:
    """A sorted set of MIB objects; no object's OID may prefix another's."""

    def __init__(self, objects: Iterable[MibObject]) -> None:
        self.objects: list[MibObject] = sorted(objects, key=lambda o: o.oid)
        self.keys: list[Oid] = [o.oid for o in self.objects]
        for a, b in zip(self.keys, self.keys[1:], strict=False):
            if b[: len(a)] == a:
                raise ValueError(f"MIB object {a} prefixes {b}")

    def get(self, ctx: Ctx, oid: Oid) -> bytes:
        """Value TLV for a GET: the value, noSuchInstance or noSuchObject."""
        pos = bisect_right(self.keys, oid) - 1
        if pos >= 0:
            key = self.keys[pos]
            if oid[: len(key)] == key:
                value = self.objects[pos].get(ctx, oid[len(key) :])
                return ber.NO_SUCH_INSTANCE_TLV if value is None else value
        return ber.NO_SUCH_OBJECT_TLV

    def next(self, ctx: Ctx, oid: Oid) -> tuple[Oid, bytes] | None:
        """The first instance after ``oid`` and its value, or None (endOfMibView)."""
        pos = bisect_right(self.keys, oid)
        if pos > 0:
            key = self.keys[pos - 1]
            if oid[: len(key)] == key:
                found = self.objects[pos - 1].next_after(ctx, oid[len(key) :])
                if found is not None:
                    return key + found[0], found[1]
        objects = self.objects
        for i in range(pos, len(objects)):
            found = objects[i].next_after(ctx, None)
            if found is not None:
                return objects[i].oid + found[0], found[1]
        return None
