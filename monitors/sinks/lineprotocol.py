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

Speed: escaped series prefixes (measurement plus sorted tags) are cached, so a poller writing the
same 10,000 series every minute escapes each name once, and each list of field names gets a small
compiled formatter that writes a whole line in one f-string (see :class:`LineEncoder`); the caches
are bounded. ``tests/monitors/test_lineprotocol_differential.py`` holds this encoder to the bytes
of the simpler one it replaced, ``tests/monitors/test_lineprotocol.py`` to influxdb-client's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

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


_FieldFormatter: TypeAlias = Callable[[Mapping[str, FieldValue], str, str], "str | None"]
"""``(fields, series_prefix, " <time>") -> line``, or None if the values do not fit it."""


class LineEncoder:
    """Serialises :class:`Sample` batches; keeps bounded caches of series keys (measurement and
    escaped, sorted tags) and of field formatters (one per list of field names).

    Safe to share between coroutines; the caches are plain dicts, so sharing between threads is
    safe too (at worst a cache entry is computed twice).

    How a point is written (the hot path of every metric write: about 2.3 µs for the 4-field
    interface points of ``bench/sink_overhead.py``, a quarter of it float ``repr``):

    1. one tuple of the measurement, the tag keys and values and the field names (all as given,
       in insertion order) finds the escaped series prefix ``measurement,k=v,... `` and the
       formatter for those fields in one dict lookup;
    2. the formatter is a small function compiled for that list of field names and the value
       types seen first (see :func:`_compile_formatter`): it unpacks the values, checks each one
       is of that exact type and writable (finite float, 64-bit integer), and builds the line in
       one f-string. A point whose values do not fit (another type, NaN, a huge integer) takes
       the general path instead, value by value — same bytes, just slower.
    """

    def __init__(self, cache_size: int = 200_000) -> None:
        self._cache_size = cache_size
        # (measurement, *field names, _SEP, *tag keys, *tag values) -> (formatter, prefix + " ",
        # field plan); None if the point cannot be written (its measurement).
        self._series: dict[tuple[object, ...], _SeriesEntry | None] = {}
        # field names in insertion order -> (formatter, field plan)
        self._fields: dict[tuple[str, ...], tuple[_FieldFormatter, list[tuple[str, str]]]] = {}
        self._tag_pairs: dict[tuple[str, str], str] = {}

    def series_key(self, measurement: str, tags: Mapping[str, str]) -> str | None:
        """``measurement,k=v,...`` (escaped, tags sorted); None if the point cannot be written."""
        if not measurement or measurement.startswith("#"):
            return None
        parts = [escape_measurement(measurement)]
        pairs = self._tag_pairs  # "key=value" escaped: tag values repeat across series
        for key, value in sorted(tags.items()):
            if key and value:
                text = pairs.get((key, value))
                if text is None:
                    text = f"{escape_key(key)}={escape_tag_value(value)}"
                    if len(pairs) >= self._cache_size:
                        pairs.clear()
                    pairs[key, value] = text
                parts.append(text)
        return ",".join(parts)

    @staticmethod
    def field_plan(names: Iterable[str]) -> list[tuple[str, str]]:
        """``[(name, "escaped_name=")]`` sorted by name, empty names left out."""
        return [(name, escape_key(name) + "=") for name in sorted(names) if name]

    def encode(self, points: Iterable[Sample]) -> EncodedBatch:
        lines: list[str] = []
        append = lines.append
        skipped = 0
        series = self._series
        cache_size = self._cache_size
        last_time: object = None
        time_text = ""
        for point in points:
            tags = point.tags
            fields = point.fields
            # flat, no (key, value) pair tuples to build and hash; _SEP keeps field names and
            # tags apart
            cache_key = (point.measurement, *fields, _SEP, *tags, *tags.values())
            try:
                entry = series[cache_key]
            except KeyError:
                entry = self._series_entry(point.measurement, tags, fields)
                if len(series) >= cache_size:
                    series.clear()
                series[cache_key] = entry
            if entry is None:
                skipped += 1
                continue
            time_ns = point.time_ns
            if time_ns != last_time:
                last_time = time_ns
                time_text = f" {time_ns}"
            line = entry[0](fields, entry[1], time_text)
            if line is not None:
                append(line)
                continue
            prefix = entry[1]
            text = _format_fields(entry[2], fields)
            if text:
                append(f"{prefix}{text}{time_text}")
            else:
                skipped += 1
        return EncodedBatch("\n".join(lines).encode("utf-8"), len(lines), skipped)

    def _series_entry(
        self, measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue]
    ) -> _SeriesEntry | None:
        prefix = self.series_key(measurement, tags)
        if prefix is None:
            return None
        names = tuple(fields)
        compiled = self._fields.get(names)
        if compiled is None:
            formatter = _compile_formatter(names, tuple(fields.values())) or _general_only
            compiled = (formatter, self.field_plan(names))
            if len(self._fields) >= self._cache_size:
                self._fields.clear()
            self._fields[names] = compiled
        return (compiled[0], prefix + " ", compiled[1])


# (formatter, escaped series prefix + " ", field plan for the general path)
_SeriesEntry: TypeAlias = tuple["_FieldFormatter", str, list[tuple[str, str]]]
_SEP: Final = object()  # in a series cache key, between the field names and the tags


def _general_only(fields: Mapping[str, FieldValue], prefix: str, time_text: str) -> None:
    """The formatter of field lists with a value type no formatter is compiled for."""
    return None


def _format_fields(plan: list[tuple[str, str]], fields: Mapping[str, FieldValue]) -> str:
    """The general path: ``k=v,...`` value by value; unwritable values left out."""
    text = ""
    for name, key in plan:
        value = fields[name]
        if type(value) is float:
            formatted = float.__repr__(value)
            if formatted[-2:] == ".0":
                formatted = formatted[:-2]
            elif formatted[-1] in "nf":  # nan, inf, -inf: InfluxDB cannot store them
                continue
        elif type(value) is int and INT64_MIN <= value <= INT64_MAX:
            formatted = int.__repr__(value) + "i"
        elif type(value) is str:
            formatted = '"' + value.translate(_STRING_ESCAPES) + '"'
        else:
            general = format_field_value(value)
            if general is None:
                continue
            formatted = general
        text = f"{text},{key}{formatted}" if text else key + formatted
    return text


def _trim_float_zeros(text: str) -> str:
    """``a=1.0,b=2i,c=3.0`` -> ``a=1,b=2i,c=3``: for field text holding no string value, where
    ``.0,`` can only end a float (an escaped key has no bare comma) and ``.0`` at the end too."""
    text = text.replace(".0,", ",")
    return text[:-2] if text[-2:] == ".0" else text


_FORMATTER_GLOBALS: Final[dict[str, Any]] = {
    "__builtins__": {},
    "float": float,
    "int": int,
    "bool": bool,
    "str": str,
    "type": type,
    "repr": float.__repr__,
    "BOOL": ("false", "true"),
    "SE": _STRING_ESCAPES,
    "DQ": '"',
    "TRIM": _trim_float_zeros,
}


def _compile_formatter(
    names: tuple[str, ...], sample_values: tuple[FieldValue, ...]
) -> _FieldFormatter | None:
    """A function writing a whole line for points with these field names (in this insertion
    order) and the exact value types of ``sample_values``; None if a type is not one of float,
    int, bool, str (those points always take the general path).

    For ``names=("in_bps", "up")`` and a float and a bool it is, with ``K0 = "in_bps="`` and
    ``K1 = ",up="`` (escaped keys in sorted order, the comma included)::

        def formatter(fields, prefix, time_text):
            v0, v1 = fields.values()
            if not (type(v0) is float and v0 - v0 == 0.0 and type(v1) is bool):
                return None
            text = f"{K0}{v0!r}{K1}{BOOL[v1]}"
            if ".0" in text:
                text = TRIM(text)
            return f"{prefix}{text}{time_text}"

    The generated source holds nothing but generated identifiers, the two int64 bounds and
    fixed expressions: names and keys are passed in as values (``K0``...), never pasted in.
    """
    kinds = [type(value) for value in sample_values]
    if any(kind not in (float, int, bool, str) for kind in kinds):
        return None
    order = sorted((name, slot) for slot, name in enumerate(names) if name)
    if not order:
        return None
    namespace: dict[str, Any] = dict(_FORMATTER_GLOBALS)
    checks: list[str] = []
    pieces: list[str] = []
    setup: list[str] = []
    has_str = str in kinds
    for position, (name, slot) in enumerate(order):
        var = f"v{slot}"
        key = ("," if position else "") + escape_key(name) + "="
        namespace[f"K{position}"] = key
        pieces.append(f"{{K{position}}}")
        kind = kinds[slot]
        if kind is float:
            checks.append(f"type({var}) is float and {var} - {var} == 0.0")
            if has_str:  # ".0," could sit inside a string value: trim each float on its own
                setup.append(f"r{slot} = repr({var})")
                setup.append(f'if r{slot}[-2:] == ".0": r{slot} = r{slot}[:-2]')
                pieces.append(f"{{r{slot}}}")
            else:
                pieces.append(f"{{{var}!r}}")
        elif kind is int:
            checks.append(f"type({var}) is int and {INT64_MIN} <= {var} <= {INT64_MAX}")
            pieces.append(f"{{{var}}}i")
        elif kind is bool:
            checks.append(f"type({var}) is bool")
            pieces.append(f"{{BOOL[{var}]}}")
        else:
            checks.append(f"type({var}) is str")
            pieces.append(f"{{DQ}}{{{var}.translate(SE)}}{{DQ}}")
    unpack = ", ".join(f"v{slot}" for slot in range(len(names)))
    source = [
        "def formatter(fields, prefix, time_text):",
        f"    {unpack}, = fields.values()",
        f"    if not ({' and '.join(checks)}):",
        "        return None",
        *(f"    {line}" for line in setup),
        f'    text = f"{"".join(pieces)}"',
    ]
    if float in kinds and not has_str:
        source += ['    if ".0" in text:', "        text = TRIM(text)"]
    source.append('    return f"{prefix}{text}{time_text}"')
    exec("\n".join(source), namespace)  # generated identifiers only, see above
    formatter: _FieldFormatter = namespace["formatter"]
    return formatter


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
