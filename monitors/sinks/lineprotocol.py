"""InfluxDB line protocol serialisation, byte-for-byte what ``influxdb-client`` writes.

``measurement[,tag=value...] field=value[,field=value...] timestamp_ns`` — one line per point,
following https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/ :

- measurement: ``,`` and space are escaped with a backslash; tag keys, tag values and field keys
  also escape ``=``. Line protocol cannot carry a newline, carriage return or tab in these
  positions; like influxdb-client they are written as the two characters ``\\n``, ``\\r``, ``\\t``.
  A tag value ending in a backslash gets a space appended (else the backslash would escape the
  delimiter that follows), as influxdb-client does.
- tags are sorted by key (as InfluxDB wants them); a tag with an empty key or value is left out
  (InfluxDB has no empty tags). Fields are sorted by key too.
- field values: floats in Python's shortest round-trip form with a trailing ``.0`` removed;
  signed 64-bit integers with the ``i`` suffix (an integer outside that range is written as a
  float, since InfluxDB 1.x would reject the whole line); booleans ``true``/``false``; strings in
  double quotes with ``"`` and ``\\`` escaped. A NaN or infinite float is left out (InfluxDB
  cannot store it).
- timestamp: integer nanoseconds (write with ``precision=ns``).

A point that cannot be written at all — no field left, an empty measurement, or a measurement
starting with ``#`` (InfluxDB reads that line as a comment) — is skipped and counted in
:attr:`EncodedBatch.skipped`, never sent as a broken line that would fail the whole batch.

Speed: escaped names and whole series keys (measurement plus sorted tags) are cached, so a poller
writing the same 10,000 series every minute escapes each name once; the caches are bounded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from monitors.sinks.base import FieldValue, Sample

_MEASUREMENT_ESCAPES: Final = str.maketrans(
    {",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
)
_KEY_ESCAPES: Final = str.maketrans(
    {",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
)
_STRING_ESCAPES: Final = str.maketrans({'"': '\\"', "\\": "\\\\"})

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(name: str) -> str:
    """Escape a tag key or field key."""
    return name.translate(_KEY_ESCAPES)


def escape_tag_value(value: str) -> str:
    escaped = value.translate(_KEY_ESCAPES)
    return escaped + " " if escaped.endswith("\\") else escaped


def _float_text(value: float) -> str:
    text = float.__repr__(value)
    return text[:-2] if text.endswith(".0") else text


def format_field_value(value: FieldValue) -> str | None:
    """The line-protocol text of one field value, or None if it cannot be stored (NaN, inf)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return int.__repr__(value) + "i"
        return _float_text(float(value))
    if isinstance(value, float):
        return _float_text(float(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        return '"' + str(value).translate(_STRING_ESCAPES) + '"'
    raise TypeError(
        f"field value {value!r} of type {type(value).__name__} cannot be written to InfluxDB — "
        "use float, int, bool or str"
    )


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A batch as line protocol: ``points`` lines in ``body``; ``skipped`` points had no line."""

    body: bytes
    points: int
    skipped: int


class LineEncoder:
    """Serialises :class:`Sample` batches; keeps bounded caches of series keys (measurement and
    escaped, sorted tags) and of field plans (sorted names, escaped keys).

    Safe to share between coroutines; the caches are plain dicts, so sharing between threads is
    safe too (at worst a cache entry is computed twice).
    """

    def __init__(self, cache_size: int = 200_000) -> None:
        self._cache_size = cache_size
        self._series: dict[tuple[str, ...], str | None] = {}
        self._plans: dict[tuple[str, ...], list[tuple[str, str]]] = {}

    def series_key(self, measurement: str, tags: Mapping[str, str]) -> str | None:
        """``measurement,k=v,...`` (escaped, tags sorted); None if the point cannot be written."""
        if not measurement or measurement.startswith("#"):
            return None
        parts = [escape_measurement(measurement)]
        for key, value in sorted(tags.items()):
            if key and value:
                parts.append(f"{escape_key(key)}={escape_tag_value(value)}")
        return ",".join(parts)

    @staticmethod
    def field_plan(names: Iterable[str]) -> list[tuple[str, str]]:
        """``[(name, "escaped_name=")]`` sorted by name, empty names left out."""
        return [(name, escape_key(name) + "=") for name in sorted(names) if name]

    def encode(self, points: Iterable[Sample]) -> EncodedBatch:
        # The hot path of every metric write (about 3 µs a point here, half of it float repr):
        # cached series keys and field plans, exact-type dispatch, no call per common value.
        lines: list[str] = []
        append = lines.append
        skipped = 0
        series = self._series
        plans = self._plans
        cache_size = self._cache_size
        float_repr = float.__repr__
        int_repr = int.__repr__
        for point in points:
            tags = point.tags
            # keys then values, flat: no (key, value) pair tuples to build and hash
            cache_key = (point.measurement, *tags, *tags.values())
            prefix = series.get(cache_key, "")
            if prefix == "":
                prefix = self.series_key(point.measurement, tags)
                if len(series) >= cache_size:
                    series.clear()
                series[cache_key] = prefix
            if prefix is None:
                skipped += 1
                continue
            fields = point.fields
            names = tuple(fields)
            plan = plans.get(names)
            if plan is None:
                if len(plans) >= cache_size:
                    plans.clear()
                plan = plans[names] = self.field_plan(names)
            text = ""
            for name, key in plan:
                value = fields[name]
                if type(value) is float:
                    formatted = float_repr(value)
                    if formatted[-2:] == ".0":
                        formatted = formatted[:-2]
                    elif formatted[-1] in "nf":  # nan, inf, -inf: InfluxDB cannot store them
                        continue
                elif type(value) is int and INT64_MIN <= value <= INT64_MAX:
                    formatted = int_repr(value) + "i"
                elif type(value) is str:
                    formatted = '"' + value.translate(_STRING_ESCAPES) + '"'
                else:
                    general = format_field_value(value)
                    if general is None:
                        continue
                    formatted = general
                text = f"{text},{key}{formatted}" if text else key + formatted
            if not text:
                skipped += 1
                continue
            append(f"{prefix} {text} {point.time_ns}")
        return EncodedBatch("\n".join(lines).encode("utf-8"), len(lines), skipped)


def log_skipped(log: logging.Logger, skipped: int, total: int, target: str) -> None:
    """Say that points were skipped: at WARNING the first time, then at DEBUG (a device that
    reports NaN every poll must not flood the log; the count is in the sink's stats)."""
    level = logging.WARNING if total == skipped else logging.DEBUG
    log.log(
        level,
        "%d point(s) had nothing InfluxDB can store (no finite field value, or an empty "
        "measurement name or one starting with '#') and were not written to %s; %d since start%s",
        skipped,
        target,
        total,
        " (further ones are logged at DEBUG)" if level == logging.WARNING else "",
    )


_default_encoder = LineEncoder()


def encode_batch(points: Iterable[Sample]) -> EncodedBatch:
    """Serialise ``points`` with a shared :class:`LineEncoder`."""
    return _default_encoder.encode(points)


def to_line(point: Sample) -> str:
    """One point as a line (no newline); empty if the point cannot be written."""
    return LineEncoder(cache_size=1).encode([point]).body.decode("utf-8")
