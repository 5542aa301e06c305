"""The fast line-protocol encoder (series entries and compiled field formatters) against the
encoder it replaced (``lineprotocol_before.py``): the same bytes, point counts and skip counts for
every batch — in particular batches where one list of field names comes with changing value
types, NaN/inf, integers outside 64 bits, float subclasses, and ``.0`` in keys, tag values and
string values, which is where a formatter specialised on the first point could go wrong."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitors.sinks.base import FieldValue, Sample
from monitors.sinks.lineprotocol import INT64_MAX, INT64_MIN, LineEncoder
from tests.monitors.lineprotocol_before import LineEncoderBefore

T0 = 1_700_000_000 * 1_000_000_000
# pieces rather than characters, so that ".0," and "nan" turn up often
PIECES = [*",= \\\"'\n\r\t#{}[]:;|", ".0", ".0,", "0", "nan", "inf", "天", "é", "\u00a0"]
text = st.lists(
    st.one_of(st.sampled_from(PIECES), st.characters(exclude_categories=["Cs"])), max_size=6
).map("".join)


class Ratio(float):
    """A float subclass (as numpy's float64 is): written like a float, but not ``type is float``."""


class Count(int):
    """An int subclass (as an IntEnum member is)."""


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, -3.0, 10.0, 1e15, 1e16, 1e22, 0.1, 1.5e-7, 2.0**63]),
)
field_value: st.SearchStrategy[Any] = st.one_of(
    floats,
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-(2**70), 2**70),
    st.sampled_from([INT64_MIN, INT64_MAX, INT64_MIN - 1, INT64_MAX + 1, 0, -1]),
    st.booleans(),
    text,
    floats.map(Ratio),
    st.integers(-5, 5).map(Count),
)


@st.composite
def batches(draw: st.DrawFn) -> list[Sample]:
    """Points drawn from a few measurements, tag sets and field-name lists, so that series and
    formatters are reused (cache hits) with values of changing types."""
    measurements = draw(
        st.lists(st.one_of(text, st.just("#c"), st.just("")), min_size=1, max_size=3)
    )
    tag_sets = draw(st.lists(st.dictionaries(text, text, max_size=4), min_size=1, max_size=3))
    name_lists = draw(st.lists(st.lists(text, max_size=5, unique=True), min_size=1, max_size=3))
    times = [T0, T0 + 60_000_000_000, *draw(st.lists(st.integers(0, INT64_MAX), max_size=2))]
    points = []
    for _ in range(draw(st.integers(1, 25))):
        names = draw(st.sampled_from(name_lists))
        fields: dict[str, FieldValue] = {name: draw(field_value) for name in names}
        points.append(
            Sample(
                draw(st.sampled_from(measurements)),
                draw(st.sampled_from(tag_sets)),
                fields,
                draw(st.sampled_from(times)),
            )
        )
    return points


SHARED = LineEncoder(cache_size=64)  # lives across examples: stale entries must not leak
SHARED_BEFORE = LineEncoderBefore(cache_size=64)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_the_fast_encoder_writes_the_same_bytes_as_the_one_before(batch: list[Sample]) -> None:
    expected = LineEncoderBefore().encode(batch)
    assert LineEncoder().encode(batch) == expected
    assert LineEncoder(cache_size=2).encode(batch) == expected  # eviction on nearly every point
    assert SHARED.encode(batch) == SHARED_BEFORE.encode(batch) == expected
    # once more, now every series and formatter is cached
    assert SHARED.encode(batch) == expected


def test_one_field_list_with_changing_types_takes_the_general_path_when_it_must() -> None:
    tags = {"site": "county-1.0", "ifname": "Gi0/0.0"}
    values: list[dict[str, FieldValue]] = [
        {"in_bps": 1.0, "up": True, "n": 3},  # the formatter is compiled for float, bool, int
        {"in_bps": 2.5, "up": False, "n": -7},
        {"in_bps": 7, "up": True, "n": 3.0},  # other types
        {"in_bps": math.nan, "up": True, "n": 3},  # NaN is left out
        {"in_bps": math.inf, "up": True, "n": 2**64},  # inf left out, a huge int as a float
        {"in_bps": Ratio(4.0), "up": 1, "n": Count(2)},  # subclasses
        {"in_bps": "x.0,y", "up": "1.0", "n": 100.0},  # strings holding ".0,"
        {"in_bps": math.nan, "up": math.inf, "n": -math.inf},  # nothing left: skipped
    ]
    batch = [Sample("if.0", tags, fields, T0 + n) for n, fields in enumerate(values)]
    encoder = LineEncoder()
    for _ in range(2):
        encoded = encoder.encode(batch)
        assert encoded == LineEncoderBefore().encode(batch)
        assert (encoded.points, encoded.skipped) == (7, 1)
    assert encoded.body.decode().splitlines()[:3] == [
        "if.0,ifname=Gi0/0.0,site=county-1.0 in_bps=1,n=3i,up=true 1700000000000000000",
        "if.0,ifname=Gi0/0.0,site=county-1.0 in_bps=2.5,n=-7i,up=false 1700000000000000001",
        "if.0,ifname=Gi0/0.0,site=county-1.0 in_bps=7i,n=3,up=true 1700000000000000002",
    ]


def test_tag_and_field_names_do_not_mix_in_the_cache() -> None:
    # the same strings, split in every way between field names, tag keys and tag values: a
    # cache key that did not keep them apart would hand one point the line of another
    names = ["a", "b", "c", "d", "e", "f"]
    batch = []
    for pairs in range(4):
        for fields_first in (True, False):
            if fields_first:
                field_names, rest = names[: len(names) - 2 * pairs], names[len(names) - 2 * pairs :]
            else:
                rest, field_names = names[: 2 * pairs], names[2 * pairs :]
            tags = dict(zip(rest[:pairs], rest[pairs:], strict=True))
            batch.append(Sample("m", tags, dict.fromkeys(field_names, 1.5), 1))
    expected = [LineEncoderBefore().encode([point]).body for point in batch]
    assert LineEncoder().encode(batch).body.split(b"\n") == [line for line in expected if line]
