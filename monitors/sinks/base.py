"""The contract of a metric sink: the point type, writing, reading, and query bounds.

A :class:`Sample` is one InfluxDB point: a measurement, a tag set, one or more fields and a
timestamp in nanoseconds since the Unix epoch (UTC). ``docs/metrics.md`` lists the measurements
Tiandi writes, with their tags, fields and units.

Three protocols, each satisfied structurally (no base class to inherit):

- :class:`MetricSink` — ``write(points)``, ``flush()``, ``close()``. Implementations:
  ``influx_v1.InfluxV1Sink``, ``influx_v2.InfluxV2Sink``, ``embedded.EmbeddedStore``, and the
  wrappers ``batching.BatchingSink`` and ``spool.SpoolingSink``.
- :class:`LineProtocolSink` — ``write_lines(body, points, on_wire=None)``: a store that accepts
  pre-serialised line protocol. The spool keeps and replays batches in that form.
- :class:`MetricQuery` — ``series(...)``: one field of one measurement over a bounded time range,
  raw or aggregated per time bucket. Implementations: ``InfluxV1Sink`` (InfluxQL over ``/query``)
  and ``EmbeddedStore``; both answer the same question with the same numbers.

Delivery order: a sink applies ``write`` calls in the order they were made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol, TypeAlias, TypeGuard, get_args

from monitors.errors import MetricsQueryError

FieldValue: TypeAlias = float | int | bool | str
"""A field value as InfluxDB stores it: float, signed 64-bit integer, boolean or string."""

Aggregation: TypeAlias = Literal["mean", "max", "min", "last"]
AGGREGATIONS: Final[frozenset[str]] = frozenset(get_args(Aggregation))

SeriesPoint: TypeAlias = tuple[int, FieldValue]
"""``(timestamp in ns since the epoch, value)``; for a bucketed series, the bucket's start."""

NS_PER_S: Final = 1_000_000_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Sample:
    """One point: ``measurement,tag=v,... field=v,... time_ns``.

    Tags are strings; a tag whose value is empty is not written (InfluxDB has no empty tags).
    Fields are ``float``, ``int`` (signed 64-bit; larger values are written as floats), ``bool``
    or ``str``; a non-finite float (NaN, ±inf) is not written, since InfluxDB cannot store it.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int


class MetricSink(Protocol):
    """Somewhere points go. ``write`` may buffer; ``flush`` pushes buffers out; ``close`` ends."""

    async def write(self, points: Sequence[Sample]) -> None:
        """Store (or accept for storing) ``points``; raise ``MetricsWriteError`` on failure."""
        ...

    async def flush(self) -> None:
        """Return once everything written so far has been handed to the store (or spooled)."""
        ...

    async def close(self) -> None:
        """Flush, then release connections, threads and files. The sink is unusable afterwards."""
        ...


class LineProtocolSink(Protocol):
    """A store that takes a batch already serialised as line protocol (UTF-8, ns precision)."""

    @property
    def target(self) -> str:
        """Where the points go (a URL), for messages and logs; never contains a secret."""
        ...

    async def write_lines(
        self, body: bytes, points: int, on_wire: Callable[[], object] | None = None
    ) -> None:
        """Store the ``points`` lines in ``body``; raise ``MetricsWriteError`` unless stored.

        ``on_wire``, if given, is called (at most once, on the event loop) as soon as the request
        no longer needs the event loop to reach the store — for HTTP, once the whole body has
        been handed to the socket — so that the caller can start CPU-heavy work (serialising the
        next batch) while the store works, instead of holding up this request. It is a hint: an
        implementation may call it late or not at all, and a caller must not wait for it
        unboundedly.
        """
        ...

    async def close(self) -> None: ...


class MetricQuery(Protocol):
    """Reads one field of one measurement, bounded in time range and number of points."""

    async def series(
        self,
        measurement: str,
        field: str,
        *,
        tags: Mapping[str, str] | None = None,
        start: datetime,
        end: datetime,
        every: timedelta | None = None,
        agg: Aggregation = "mean",
    ) -> list[SeriesPoint]:
        """Points with ``start <= time < end`` of every series matching ``tags`` (all equal).

        Without ``every``: the raw points, oldest first. With ``every``: one point per non-empty
        bucket of that width, buckets aligned on the epoch (as InfluxQL ``GROUP BY time()``),
        timestamped with the bucket's start, valued ``agg`` of the points in it. Series that
        match the tags are merged, not kept apart. Raises ``MetricsQueryError`` if the range is
        too long or could return more than the store's ``max_points``.
        """
        ...


def is_aggregation(name: str) -> TypeGuard[Aggregation]:
    return name in AGGREGATIONS


# ---- query bounds (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """How much one ``series`` call may ask for."""

    max_points: int = 10_000
    max_range: timedelta = field(default=timedelta(days=400))


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """A validated ``series`` request in integers: ``[start_ns, end_ns)``, bucket width or None."""

    measurement: str
    field: str
    tags: tuple[tuple[str, str], ...]
    start_ns: int
    end_ns: int
    every_ns: int | None
    agg: Aggregation
    max_points: int


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of a time-zone aware datetime (exact, no float rounding)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MetricsQueryError(
            f"time {moment.isoformat()} has no time zone — pass an aware datetime "
            "(e.g. 2024-05-01T08:00:00+08:00 or ...Z)"
        )
    return to_ns_delta(moment - EPOCH)


def _span(ns: int) -> str:
    """A short human duration for messages: 90 s, 3.5 h, 14 d."""
    seconds = ns / NS_PER_S
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7_200:
        return f"{seconds / 60:g} min"
    if seconds < 172_800:
        return f"{seconds / 3_600:g} h"
    return f"{seconds / 86_400:g} d"


def plan_query(
    measurement: str,
    field: str,
    *,
    tags: Mapping[str, str] | None,
    start: datetime,
    end: datetime,
    every: timedelta | None,
    agg: str,
    limits: QueryLimits,
) -> QueryPlan:
    """Check a ``series`` request against ``limits``; the error says how to narrow it."""
    if not measurement or not field:
        raise MetricsQueryError("measurement and field must both be given (see docs/metrics.md)")
    if not is_aggregation(agg):
        raise MetricsQueryError(
            f"unknown aggregation {agg!r} — use one of {', '.join(sorted(AGGREGATIONS))}"
        )
    start_ns, end_ns = to_ns(start), to_ns(end)
    if end_ns <= start_ns:
        raise MetricsQueryError(
            f"empty time range: end {end.isoformat()} is not after start {start.isoformat()}"
        )
    range_ns = end_ns - start_ns
    max_range_ns = to_ns_delta(limits.max_range)
    if range_ns > max_range_ns:
        raise MetricsQueryError(
            f"time range of {_span(range_ns)} is longer than the limit of {_span(max_range_ns)} "
            "— narrow start/end"
        )
    every_ns: int | None = None
    if every is not None:
        every_ns = to_ns_delta(every)
        if every_ns <= 0:
            raise MetricsQueryError(f"every must be positive, got {every}")
        # Buckets are aligned on the epoch, so a range can touch one bucket more than it spans.
        buckets = math.ceil(range_ns / every_ns) + 1
        if buckets > limits.max_points:
            widest = math.ceil(range_ns / max(limits.max_points - 1, 1) / NS_PER_S)
            raise MetricsQueryError(
                f"the query could return {buckets} points ({_span(range_ns)} in buckets of "
                f"{_span(every_ns)}), more than the limit of {limits.max_points} — narrow "
                f"start/end or set every to at least {widest} s"
            )
    if tags and any(not key for key in tags):
        raise MetricsQueryError("a tag filter has an empty tag name — remove it")
    return QueryPlan(
        measurement=measurement,
        field=field,
        tags=tuple(sorted((tags or {}).items())),
        start_ns=start_ns,
        end_ns=end_ns,
        every_ns=every_ns,
        agg=agg,
        max_points=limits.max_points,
    )


def to_ns_delta(delta: timedelta) -> int:
    """Exact nanoseconds of a timedelta."""
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def too_many_points(plan: QueryPlan) -> MetricsQueryError:
    """The error for a raw query whose range holds more than ``max_points`` points."""
    return MetricsQueryError(
        f"more than {plan.max_points} raw points of {plan.measurement}.{plan.field} in "
        f"{_span(plan.end_ns - plan.start_ns)} — narrow start/end, filter by more tags, or set "
        "every (e.g. 60 s) to aggregate"
    )
