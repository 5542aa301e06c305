"""The InfluxDB v1 sink against the real ``influxd`` (Debian 1.6.7) of the test session: writes,
InfluxQL reads (aggregates, tag filters, hostile values), query bounds and error messages."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from monitors.errors import MetricsQueryError, MetricsWriteError
from monitors.sinks.base import QueryLimits, Sample, plan_query
from monitors.sinks.influx_v1 import (
    InfluxV1Config,
    InfluxV1Sink,
    parse_retry_after,
    quote_ident,
    quote_string,
    series_influxql,
    write_error,
)
from monitors.sinks.lineprotocol import INT64_MAX
from tests.harness import free_ports
from tests.harness.influx import InfluxServer

T = TypeVar("T")
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000

HOSTILE = [
    "x' OR '1'='1",
    'x\'; DROP DATABASE "tiandi_test"; --',
    'quote"double',
    "back\\slash",
    "trailing\\",
    "new\nline",
    "'",
    "\\'",
    '") OR ("a"="a',
    "天地 county",
]


def run(coro_fn: Callable[[InfluxV1Sink], Awaitable[T]], config: InfluxV1Config) -> T:
    async def main() -> T:
        sink = InfluxV1Sink(config)
        try:
            return await coro_fn(sink)
        finally:
            await sink.close()

    return asyncio.run(main())


@pytest.fixture
def config(influxdb_server: InfluxServer) -> InfluxV1Config:
    return InfluxV1Config(url=influxdb_server.url, database=influxdb_server.create_database())


def interface_points() -> list[Sample]:
    """Two links of one site, one point a minute for 10 minutes; values easy to aggregate."""
    points = []
    for link, offset in (("county-1-primary", 0), ("county-1-backup", 1000)):
        for minute in range(10):
            points.append(
                Sample(
                    "interface",
                    {"site": "county-1", "link": link, "device": "county-1-r1"},
                    {
                        "in_bps": float(offset + minute * 10),
                        "in_octets": offset + minute,
                        "oper_status": 1,
                        "up": minute % 2 == 0,
                        "descr": f"minute {minute}",
                    },
                    T0_NS + minute * MINUTE_NS,
                )
            )
    return points


# ---- writes and reads against influxd --------------------------------------------------------


def test_points_come_back_with_their_values_and_types(
    config: InfluxV1Config, influxdb_server: InfluxServer
) -> None:
    async def scenario(sink: InfluxV1Sink) -> dict[str, list[Any]]:
        await sink.write(interface_points())
        tags = {"link": "county-1-primary"}
        end = T0 + timedelta(hours=1)
        return {
            f: await sink.series("interface", f, tags=tags, start=T0, end=end)
            for f in ("in_bps", "in_octets", "up", "descr")
        }

    got = run(scenario, config)
    times = [T0_NS + m * MINUTE_NS for m in range(10)]
    assert got["in_bps"] == list(zip(times, [m * 10.0 for m in range(10)], strict=True))
    assert got["in_octets"] == list(zip(times, range(10), strict=True))
    assert all(type(v) is int for _, v in got["in_octets"])
    assert got["up"] == list(zip(times, [m % 2 == 0 for m in range(10)], strict=True))
    assert got["descr"] == list(zip(times, [f"minute {m}" for m in range(10)], strict=True))
    fields = influxdb_server.query('SHOW FIELD KEYS FROM "interface"', db=config.database)
    types = dict(fields["results"][0]["series"][0]["values"])
    assert types == {
        "in_bps": "float",
        "in_octets": "integer",
        "oper_status": "integer",
        "up": "boolean",
        "descr": "string",
    }


def test_numbers_keep_their_type_and_exact_value(config: InfluxV1Config) -> None:
    """InfluxDB's JSON prints 4.915299672959155e16 as 49152996729591550 and 3.0 as 3: the sink
    converts by the field's type, so floats stay exact floats and integers stay integers."""
    floats = [4.915299672959155e16, 3.0, -0.0, 1e-300, 2.0**63]
    ints = [INT64_MAX, -(2**63), 3, 2**53 + 1, 0]

    async def scenario(sink: InfluxV1Sink) -> dict[str, Any]:
        await sink.write(
            [
                Sample("exact", {}, {"f": f, "i": i}, T0_NS + n)
                for n, (f, i) in enumerate(zip(floats, ints, strict=True))
            ]
        )
        end = T0 + timedelta(minutes=1)
        return {
            "f": await sink.series("exact", "f", start=T0, end=end),
            "i": await sink.series("exact", "i", start=T0, end=end),
            "max_i": await sink.series("exact", "i", start=T0, end=end, every=end - T0, agg="max"),
            "mean_i": await sink.series(
                "exact", "i", start=T0, end=end, every=end - T0, agg="mean"
            ),
        }

    got = run(scenario, config)
    assert [v for _, v in got["f"]] == floats and all(type(v) is float for _, v in got["f"])
    assert [v for _, v in got["i"]] == ints and all(type(v) is int for _, v in got["i"])
    assert got["max_i"] == [(T0_NS, INT64_MAX)]
    assert type(got["mean_i"][0][1]) is float


def test_aggregates_per_bucket_merge_the_matching_series(config: InfluxV1Config) -> None:
    async def scenario(sink: InfluxV1Sink) -> dict[str, Any]:
        await sink.write(interface_points())
        out: dict[str, Any] = {}
        for agg in ("mean", "max", "min", "last"):
            out[agg] = await sink.series(
                "interface",
                "in_bps",
                tags={"site": "county-1"},
                start=T0 + timedelta(minutes=1),  # not on a bucket boundary of 5 min
                end=T0 + timedelta(minutes=10),
                every=timedelta(minutes=5),
                agg=agg,
            )
        return out

    got = run(scenario, config)
    first, second = T0_NS, T0_NS + 5 * MINUTE_NS  # buckets aligned on the epoch
    # bucket 1 holds minutes 1-4 of both links, bucket 2 minutes 5-9
    primary_1, backup_1 = [10, 20, 30, 40], [1010, 1020, 1030, 1040]
    primary_2, backup_2 = [50, 60, 70, 80, 90], [1050, 1060, 1070, 1080, 1090]
    assert got["mean"] == [
        (first, sum(primary_1 + backup_1) / 8),
        (second, sum(primary_2 + backup_2) / 10),
    ]
    assert got["max"] == [(first, 1040), (second, 1090)]
    assert got["min"] == [(first, 10), (second, 50)]
    assert [ts for ts, _ in got["last"]] == [first, second]
    assert {v for _, v in got["last"]} <= {40, 1040, 90, 1090}


def test_a_tag_filter_with_hostile_values_is_data_not_influxql(
    config: InfluxV1Config, influxdb_server: InfluxServer
) -> None:
    writable = [v for v in HOSTILE if "\n" not in v and not v.endswith("\\")]

    async def scenario(sink: InfluxV1Sink) -> dict[str, Any]:
        await sink.write(
            [
                Sample("probe", {"link": value}, {"rtt_ms": float(i)}, T0_NS)
                for i, value in enumerate(writable)
            ]
        )
        out: dict[str, Any] = {}
        for value in HOSTILE:
            out[value] = await sink.series(
                "probe",
                "rtt_ms",
                tags={"link": value},
                start=T0,
                end=T0 + timedelta(minutes=1),
            )
        # a hostile tag *name* and measurement are identifiers, quoted the same way
        out["name"] = await sink.series(
            'probe" WHERE 1=1; --',
            'rtt_ms") FROM "x',
            tags={"link\" = 'x' OR \"a": "b"},
            start=T0,
            end=T0 + timedelta(minutes=1),
        )
        return out

    got = run(scenario, config)
    for i, value in enumerate(writable):
        assert got[value] == [(T0_NS, i)], value
    assert got["new\nline"] == [] and got["trailing\\"] == []
    assert got["name"] == []
    databases = influxdb_server.query("SHOW DATABASES")["results"][0]["series"][0]["values"]
    assert [influxdb_server.database] in databases  # nothing was dropped


def test_a_retention_policy_is_written_to_and_read_from(influxdb_server: InfluxServer) -> None:
    database = influxdb_server.create_database()
    config = InfluxV1Config(url=influxdb_server.url, database=database, retention_policy="autogen")

    async def scenario(sink: InfluxV1Sink) -> list[Any]:
        await sink.write(interface_points())
        return await sink.series("interface", "in_octets", start=T0, end=T0 + timedelta(hours=1))

    assert len(run(scenario, config)) == 20


def test_gzip_writes_are_accepted(influxdb_server: InfluxServer) -> None:
    database = influxdb_server.create_database()
    config = InfluxV1Config(url=influxdb_server.url, database=database, gzip=True)

    async def scenario(sink: InfluxV1Sink) -> list[Any]:
        await sink.write(interface_points())
        return await sink.series("interface", "in_octets", start=T0, end=T0 + timedelta(hours=1))

    assert len(run(scenario, config)) == 20


def test_a_raw_query_over_the_point_limit_says_how_to_narrow_it(
    influxdb_server: InfluxServer,
) -> None:
    database = influxdb_server.create_database()
    config = InfluxV1Config(
        url=influxdb_server.url, database=database, query_limits=QueryLimits(max_points=15)
    )

    async def scenario(sink: InfluxV1Sink) -> None:
        await sink.write(interface_points())
        with pytest.raises(MetricsQueryError, match=r"more than 15 raw points.*narrow"):
            await sink.series("interface", "in_bps", start=T0, end=T0 + timedelta(hours=1))
        one_link = await sink.series(
            "interface",
            "in_bps",
            tags={"link": "county-1-primary"},
            start=T0,
            end=T0 + timedelta(hours=1),
        )
        assert len(one_link) == 10

    run(scenario, config)


# ---- write errors ----------------------------------------------------------------------------


def test_an_unknown_database_is_a_permanent_error_that_says_what_to_do(
    influxdb_server: InfluxServer,
) -> None:
    config = InfluxV1Config(url=influxdb_server.url, database="nope")

    async def scenario(sink: InfluxV1Sink) -> None:
        with pytest.raises(MetricsWriteError) as caught:
            await sink.write(interface_points())
        err = caught.value
        assert err.status == 404 and not err.retryable
        assert str(err).startswith(
            f'InfluxDB at {influxdb_server.url} refused the write: database "nope" not found'
        )
        assert 'create it (CREATE DATABASE "nope") or fix TIANDI_INFLUX_DATABASE' in str(err)

    run(scenario, config)


def test_bad_line_protocol_and_type_conflicts_are_permanent(config: InfluxV1Config) -> None:
    async def scenario(sink: InfluxV1Sink) -> None:
        with pytest.raises(MetricsWriteError) as caught:
            await sink.write_lines(b"interface in_bps= 1", 1)
        assert caught.value.status == 400 and not caught.value.retryable
        await sink.write([Sample("m", {}, {"f": 1}, T0_NS)])
        with pytest.raises(MetricsWriteError, match="field type conflict") as caught:
            await sink.write([Sample("m", {}, {"f": "one"}, T0_NS + 1)])
        assert not caught.value.retryable

    run(scenario, config)


def test_an_unreachable_server_is_a_retryable_error() -> None:
    (port,) = free_ports(1)
    config = InfluxV1Config(url=f"http://127.0.0.1:{port}", database="x", timeout_s=2)

    async def scenario(sink: InfluxV1Sink) -> None:
        with pytest.raises(MetricsWriteError, match="is unreachable") as caught:
            await sink.write(interface_points())
        assert caught.value.retryable and caught.value.status is None
        with pytest.raises(MetricsQueryError, match="is unreachable"):
            await sink.series("interface", "in_bps", start=T0, end=T0 + timedelta(hours=1))

    run(scenario, config)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (404, False), (413, False), (429, True),
     (500, True), (502, True), (503, True)],
)  # fmt: skip
def test_status_codes_map_to_retryable_or_not(status: int, retryable: bool) -> None:
    err = write_error("http://influx:8086", "tiandi", status, json.dumps({"error": "boom"}))
    assert err.retryable is retryable
    assert "boom" in str(err) and "http://influx:8086" in str(err)


def test_retry_after_is_honoured_in_seconds_or_as_a_date() -> None:
    err = write_error("http://i", "db", 429, "{}", "7")
    assert err.retryable and err.retry_after == 7.0 and "after 7 s" in str(err)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


# ---- request shape: credentials, endpoints (httpx's own mock transport, no server) ------------


def captured(config: InfluxV1Config) -> list[httpx.Request]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/write":
            return httpx.Response(204)
        return httpx.Response(200, json={"results": [{"statement_id": 0}]})

    async def main() -> None:
        sink = InfluxV1Sink(config, transport=httpx.MockTransport(handler))
        await sink.write([Sample("m", {}, {"f": 1.5}, 1)])
        await sink.series("m", "f", start=T0, end=T0 + timedelta(minutes=1))
        await sink.close()

    asyncio.run(main())
    return requests


def test_credentials_go_where_each_server_family_expects_them() -> None:
    basic = captured(InfluxV1Config(url="http://i:8086", database="d", username="u", password="p"))
    assert all(r.headers["Authorization"].startswith("Basic ") for r in basic)
    assert "p" not in basic[0].url.params
    query = captured(
        InfluxV1Config(
            url="http://i:8086",
            database="d",
            username="u",
            password="p",
            credentials_in_query=True,
            retention_policy="autogen",
            gzip=True,
        )
    )
    write, read = query
    assert write.url.params["u"] == "u" and write.url.params["p"] == "p"
    assert write.url.params["rp"] == "autogen" and write.url.params["precision"] == "ns"
    assert write.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(write.content) == b"m f=1.5 1"
    assert read.method == "GET" and read.url.params["epoch"] == "ns"
    assert read.url.params["u"] == "u" and '"autogen"."m"' in read.url.params["q"]
    token = captured(InfluxV1Config(url="http://i:8181/", database="d", token="s3cret"))
    assert all(r.headers["Authorization"] == "Token s3cret" for r in token)


def test_secrets_are_redacted_in_repr() -> None:
    config = InfluxV1Config(url="http://i", database="d", username="u", password="pw", token="tk")
    text = repr(InfluxV1Sink(config))
    assert "pw" not in text and "tk" not in text and "REDACTED" in text


# ---- InfluxQL building (pure) ----------------------------------------------------------------


def test_identifiers_and_strings_are_quoted_and_escaped() -> None:
    assert quote_ident('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert quote_string("it's a \\ test\n") == "'it\\'s a \\\\ test\\n'"


def test_series_influxql_is_bounded_and_aggregates_per_bucket() -> None:
    plan = plan_query(
        "interface",
        "in_bps",
        tags={"site": "o'hare", "link": "x"},
        start=T0,
        end=T0 + timedelta(hours=1),
        every=timedelta(minutes=1),
        agg="max",
        limits=QueryLimits(),
    )
    assert series_influxql(plan, "autogen") == (
        'SELECT max("in_bps") FROM "autogen"."interface" WHERE '
        f"time >= {T0_NS} AND time < {T0_NS + 60 * MINUTE_NS} AND \"link\" = 'x' AND "
        "\"site\" = 'o\\'hare' GROUP BY time(60000000000ns) fill(none)"
    )
    end = T0 + timedelta(hours=1)
    limits = QueryLimits(max_points=100)
    raw = plan_query("m", "f", tags=None, start=T0, end=end, every=None, agg="mean", limits=limits)
    assert series_influxql(raw).endswith("ORDER BY time ASC LIMIT 101")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"end": T0}, "empty time range"),
        ({"end": T0 + timedelta(days=500)}, "longer than the limit of 400 d — narrow start/end"),
        (
            {"every": timedelta(seconds=1)},
            "more than the limit of 10000 — narrow start/end or set every to at least 9 s",
        ),
        ({"every": timedelta(0)}, "every must be positive"),
        ({"agg": "median"}, "unknown aggregation 'median'"),
        ({"start": datetime(2024, 5, 1)}, "has no time zone"),
    ],
)
def test_query_bounds_say_how_to_narrow_the_query(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "tags": None,
        "start": T0,
        "end": T0 + timedelta(days=1),
        "every": None,
        "agg": "mean",
        "limits": QueryLimits(),
    }
    args.update(kwargs)
    with pytest.raises(MetricsQueryError, match=message.replace("(", r"\(")):
        plan_query("interface", "in_bps", **args)
