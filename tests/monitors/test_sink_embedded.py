"""The embedded SQLite store: writes, reads, aggregates, retention, and the same answers as
InfluxDB — a differential test writes the same points into both and compares every query."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from monitors.errors import MetricsQueryError
from monitors.sinks.base import Aggregation, QueryLimits, Sample
from monitors.sinks.embedded import EmbeddedStore
from monitors.sinks.influx_v1 import InfluxV1Config, InfluxV1Sink
from tests.harness.influx import InfluxServer

T = TypeVar("T")
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000
S_NS = 1_000_000_000
MINUTE_NS = 60 * S_NS
HOUR = timedelta(hours=1)


def run(path: Path, scenario: Callable[[EmbeddedStore], Awaitable[T]], **kwargs: Any) -> T:
    async def main() -> T:
        store = EmbeddedStore(path, **kwargs)
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


def interface_points() -> list[Sample]:
    points = []
    for link, offset in (("county-1-primary", 0), ("county-1-backup", 1000)):
        for minute in range(10):
            points.append(
                Sample(
                    "interface",
                    {"site": "county-1", "link": link, "device": "county-1-r1", "role": ""},
                    {
                        "in_bps": float(offset + minute * 10),
                        "in_octets": offset + minute,
                        "up": minute % 2 == 0,
                        "descr": f"minute {minute}",
                    },
                    T0_NS + minute * MINUTE_NS,
                )
            )
    return points


def test_points_come_back_with_their_values_and_types(tmp_path: Path) -> None:
    async def scenario(store: EmbeddedStore) -> dict[str, Any]:
        await store.write(interface_points())
        tags = {"link": "county-1-primary"}
        return {
            f: await store.series("interface", f, tags=tags, start=T0, end=T0 + HOUR)
            for f in ("in_bps", "in_octets", "up", "descr")
        }

    got = run(tmp_path / "m.db", scenario)
    times = [T0_NS + m * MINUTE_NS for m in range(10)]
    assert got["in_bps"] == list(zip(times, [m * 10.0 for m in range(10)], strict=True))
    assert all(type(v) is float for _, v in got["in_bps"])
    assert got["in_octets"] == list(zip(times, range(10), strict=True))
    assert all(type(v) is int for _, v in got["in_octets"])
    assert got["up"] == list(zip(times, [m % 2 == 0 for m in range(10)], strict=True))
    assert got["descr"] == list(zip(times, [f"minute {m}" for m in range(10)], strict=True))


def test_a_point_written_again_replaces_the_first(tmp_path: Path) -> None:
    async def scenario(store: EmbeddedStore) -> list[Any]:
        await store.write([Sample("m", {"a": "1"}, {"f": 1.0}, T0_NS)])
        await store.write([Sample("m", {"a": "1"}, {"f": 2.0}, T0_NS)])
        return await store.series("m", "f", start=T0, end=T0 + HOUR)

    assert run(tmp_path / "m.db", scenario) == [(T0_NS, 2.0)]


def test_aggregates_per_bucket_merge_the_matching_series(tmp_path: Path) -> None:
    async def scenario(store: EmbeddedStore) -> dict[str, Any]:
        await store.write(interface_points())
        out: dict[str, Any] = {}
        for agg in ("mean", "max", "min", "last"):
            out[agg] = await store.series(
                "interface",
                "in_bps",
                tags={"site": "county-1"},
                start=T0 + timedelta(minutes=1),
                end=T0 + timedelta(minutes=10),
                every=timedelta(minutes=5),
                agg=agg,
            )
        out["last_up"] = await store.series(
            "interface", "up", start=T0, end=T0 + HOUR, every=HOUR, agg="last"
        )
        return out

    got = run(tmp_path / "m.db", scenario)
    first, second = T0_NS, T0_NS + 5 * MINUTE_NS
    assert got["mean"] == [(first, (100 + 4100) / 8), (second, (350 + 5350) / 10)]
    assert got["max"] == [(first, 1040.0), (second, 1090.0)]
    assert got["min"] == [(first, 10.0), (second, 50.0)]
    assert [ts for ts, _ in got["last"]] == [first, second]
    assert got["last_up"] == [(T0_NS, False)]


def test_tag_filters_and_an_empty_value_meaning_no_such_tag(tmp_path: Path) -> None:
    async def scenario(store: EmbeddedStore) -> dict[str, Any]:
        await store.write(interface_points())
        await store.write([Sample("interface", {"site": "county-2"}, {"in_bps": 5.0}, T0_NS)])

        async def ask(field: str, tags: dict[str, str]) -> list[Any]:
            return await store.series("interface", field, tags=tags, start=T0, end=T0 + HOUR)

        return {
            "no_link": await ask("in_bps", {"link": ""}),
            "no_role": await ask("in_bps", {"role": ""}),
            "both": await ask("in_bps", {"site": "county-1", "link": "county-1-backup"}),
            "unknown": await ask("in_bps", {"x": "y"}),
            "no_field": await ask("nope", {}),
        }

    got = run(tmp_path / "m.db", scenario)
    assert got["no_link"] == [(T0_NS, 5.0)]
    assert len(got["no_role"]) == 21  # the empty role tag was never stored
    assert [v for _, v in got["both"]] == [1000.0 + 10 * m for m in range(10)]
    assert got["unknown"] == [] and got["no_field"] == []


def test_a_type_conflict_is_rejected_and_counted(tmp_path: Path) -> None:
    async def scenario(store: EmbeddedStore) -> list[Any]:
        await store.write([Sample("m", {}, {"f": 1}, T0_NS)])
        await store.write([Sample("m", {}, {"f": "one", "g": 2.0}, T0_NS + 1)])
        assert store.rejected_values == 1
        with pytest.raises(MetricsQueryError, match=r"needs a numeric field.*use agg=last"):
            await store.series("m2", "s", start=T0, end=T0 + HOUR, every=HOUR, agg="mean")
        return await store.series("m", "f", start=T0, end=T0 + HOUR)

    async def with_strings(store: EmbeddedStore) -> list[Any]:
        await store.write([Sample("m2", {}, {"s": "x"}, T0_NS)])
        return await scenario(store)

    assert run(tmp_path / "m.db", with_strings) == [(T0_NS, 1)]


def test_query_bounds_apply(tmp_path: Path) -> None:
    async def scenario(store: EmbeddedStore) -> None:
        await store.write(interface_points())
        with pytest.raises(MetricsQueryError, match="more than 5 raw points"):
            await store.series("interface", "in_bps", start=T0, end=T0 + HOUR)
        with pytest.raises(MetricsQueryError, match="set every to at least"):
            await store.series(
                "interface", "in_bps", start=T0, end=T0 + HOUR, every=timedelta(seconds=1)
            )

    run(tmp_path / "m.db", scenario, query_limits=QueryLimits(max_points=5))


def test_data_survive_a_reopen(tmp_path: Path) -> None:
    async def first(store: EmbeddedStore) -> None:
        await store.write(interface_points()[:5])

    async def second(store: EmbeddedStore) -> list[Any]:
        await store.write(interface_points()[5:10])
        return await store.series("interface", "in_octets", start=T0, end=T0 + HOUR)

    run(tmp_path / "m.db", first)
    assert run(tmp_path / "m.db", second) == [(T0_NS + m * MINUTE_NS, m) for m in range(10)]


def test_reading_a_store_never_written_is_empty(tmp_path: Path) -> None:
    async def scenario(store: EmbeddedStore) -> list[Any]:
        return await store.series("m", "f", start=T0, end=T0 + HOUR)

    assert run(tmp_path / "never.db", scenario) == []
    assert not (tmp_path / "never.db").exists()


# ---- retention --------------------------------------------------------------------------------


def test_retention_deletes_what_is_older_than_n_days(tmp_path: Path) -> None:
    day = 86_400 * S_NS
    now = T0_NS + 40 * day

    async def scenario(store: EmbeddedStore) -> tuple[int, list[Any]]:
        await store.write([Sample("m", {}, {"f": float(d)}, T0_NS + d * day) for d in range(41)])
        deleted = await store.apply_retention(now_ns=now)
        start, end = T0, T0 + timedelta(days=41)
        return deleted, await store.series("m", "f", start=start, end=end)

    deleted, left = run(tmp_path / "m.db", scenario, retention=timedelta(days=30))
    assert deleted == 10
    assert [v for _, v in left] == [float(d) for d in range(10, 41)]


def test_retention_runs_on_a_schedule(tmp_path: Path) -> None:
    day = 86_400 * S_NS
    fake_now = (T0_NS + 10 * day) / S_NS

    async def scenario(store: EmbeddedStore) -> int:
        await store.write([Sample("m", {}, {"f": float(d)}, T0_NS + d * day) for d in range(10)])
        await store.start()
        for _ in range(100):
            if store.deleted_values:
                break
            await asyncio.sleep(0.02)
        return store.deleted_values

    deleted = run(
        tmp_path / "m.db",
        scenario,
        retention=timedelta(days=3),
        retention_interval_s=0.01,
        clock=lambda: fake_now,
    )
    assert deleted == 7


def test_writes_do_not_block_the_event_loop(tmp_path: Path) -> None:
    points = [
        Sample("load", {"series": str(n % 1000)}, {"a": float(n), "b": n}, T0_NS + n)
        for n in range(60_000)
    ]

    async def scenario(store: EmbeddedStore) -> float:
        worst = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                worst = max(worst, now - last)
                last = now

        task = asyncio.create_task(ticker())
        t0 = time.monotonic()
        await store.write(points)
        elapsed = time.monotonic() - t0
        done.set()
        await task
        assert elapsed > 0.1, "too small a write to tell anything"
        return worst

    assert run(tmp_path / "m.db", scenario) < 0.5


# ---- the same answers as InfluxDB -------------------------------------------------------------


def differential_points() -> list[Sample]:
    """Six series, irregular times (distinct across series), ints, floats and booleans."""
    rng = random.Random(4)
    points = []
    for n, (site, link) in enumerate(itertools.product(("s1", "s2", "s3"), ("primary", "backup"))):
        t = T0_NS + n * 1_000_000  # a different millisecond per series: no ties for last()
        for _ in range(150):
            t += rng.randint(5, 40) * S_NS
            points.append(
                Sample(
                    "link_probe",
                    {"site": site, "link": f"{site}-{link}", "role": link},
                    {
                        "rtt_ms": round(rng.uniform(5, 600), 3),
                        "lost": rng.randint(0, 20),
                        "up": rng.random() > 0.2,
                    },
                    t,
                )
            )
    return points


@pytest.mark.influx
def test_the_embedded_store_answers_like_influxdb(
    influxdb_server: InfluxServer, tmp_path: Path
) -> None:
    points = differential_points()
    start = T0 + timedelta(seconds=97)  # not on any bucket boundary
    end = T0 + timedelta(minutes=57, seconds=13)
    questions: list[dict[str, Any]] = []
    for tags in (None, {"site": "s2"}, {"site": "s1", "role": "backup"}, {"site": "nowhere"}):
        for field in ("rtt_ms", "lost"):
            questions.append({"field": field, "tags": tags, "every": None, "agg": "mean"})
            for every in (timedelta(seconds=7), timedelta(minutes=1), timedelta(minutes=5)):
                for agg in ("mean", "max", "min", "last"):
                    questions.append({"field": field, "tags": tags, "every": every, "agg": agg})
        questions.append({"field": "up", "tags": tags, "every": None, "agg": "mean"})
        five = timedelta(minutes=5)
        questions.append({"field": "up", "tags": tags, "every": five, "agg": "last"})

    async def ask(store: InfluxV1Sink | EmbeddedStore) -> list[list[Any]]:
        await store.write(points)
        answers = []
        for q in questions:
            agg: Aggregation = q["agg"]
            answers.append(
                await store.series(
                    "link_probe",
                    q["field"],
                    tags=q["tags"],
                    start=start,
                    end=end,
                    every=q["every"],
                    agg=agg,
                )
            )
        await store.close()
        return answers

    database = influxdb_server.create_database()
    config = InfluxV1Config(url=influxdb_server.url, database=database)
    influx = asyncio.run(ask(InfluxV1Sink(config)))
    embedded = asyncio.run(ask(EmbeddedStore(tmp_path / "m.db")))
    assert sum(len(a) for a in influx) > 5_000
    for question, want, got in zip(questions, influx, embedded, strict=True):
        assert [ts for ts, _ in got] == [ts for ts, _ in want], question
        for (_, w), (_, g) in zip(want, got, strict=True):
            assert type(g) is type(w), question
            assert g == (pytest.approx(w, rel=1e-12) if isinstance(w, float) else w), question
