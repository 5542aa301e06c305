"""The InfluxDB v2 write path (influxdb-client, ``/api/v2/write``).

No InfluxDB 2.x server is installable on the build machine, so this proves the *write path only*,
against a real server that speaks ``/api/v2/write``: Debian's ``victoria-metrics``. It stores each
field as a series ``<measurement>_<field>`` with the tags as labels, at millisecond precision,
numbers only (booleans become 1/0, strings are not kept); we read it back with
``/api/v1/export`` after ``/internal/force_flush``. A 2.x server's own behaviour (buckets, token
scopes, retention) is not exercised here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitors.errors import MetricsWriteError
from monitors.sinks.base import Sample
from monitors.sinks.batching import BatchingSink
from monitors.sinks.influx_v2 import InfluxV2Config, InfluxV2Sink
from monitors.sinks.spool import Spool, SpoolingSink
from tests.harness import LOOPBACK, free_ports, log_tail, missing_binary, wait_until
from tests.harness.influx import InfluxServer

DEBIAN_PACKAGE = "victoria-metrics"


@dataclass
class VictoriaMetrics:
    url: str
    process: subprocess.Popen[bytes]
    root: Path

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching ``match``, after flushing what was just written."""
        with httpx.Client(base_url=self.url, timeout=10) as client:
            client.get("/internal/force_flush").raise_for_status()
            response = client.post("/api/v1/export", data={"match[]": match})
            response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def victoria_metrics() -> Iterator[VictoriaMetrics]:
    binary = shutil.which("victoria-metrics")
    if binary is None:
        missing_binary("VictoriaMetrics (victoria-metrics)", DEBIAN_PACKAGE)
    root = Path(tempfile.mkdtemp(prefix="tiandi-vm-"))
    (port,) = free_ports(1)
    log_path = root / "victoria-metrics.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"-httpListenAddr={LOOPBACK}:{port}",
                f"-storageDataPath={root / 'data'}",
                "-retentionPeriod=1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = VictoriaMetrics(f"http://{LOOPBACK}:{port}", process, root)

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"victoria-metrics exited:\n{log_tail(log_path)}")
        try:
            return httpx.get(f"{server.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        if not wait_until(healthy, timeout=30):
            raise RuntimeError(f"victoria-metrics did not answer /health:\n{log_tail(log_path)}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        shutil.rmtree(root, ignore_errors=True)


def recent_points(measurement: str, count: int) -> list[Sample]:
    """Points of the last minutes (VictoriaMetrics refuses points outside its retention)."""
    start = (int(time.time()) - 3_600) * 1_000_000_000 + 123_000_000
    return [
        Sample(
            measurement,
            {"site": "county 1", "link": f"county-1-{('primary', 'backup')[n % 2]}", "empty": ""},
            {"in_bps": 1000.5 * n, "in_octets": 10 * n, "up": n % 3 == 0, "descr": "ignored"},
            start + n * 60_000_000_000,
        )
        for n in range(count)
    ]


def config(url: str, **overrides: Any) -> InfluxV2Config:
    settings: dict[str, Any] = {"url": url, "org": "tiandi", "bucket": "metrics", "token": "t0k"}
    settings.update(overrides)
    return InfluxV2Config(**settings)


def by_name_and_link(series: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["metric"]["__name__"], s["metric"]["link"]): s for s in series}


def test_points_written_through_influxdb_client_arrive(victoria_metrics: VictoriaMetrics) -> None:
    points = recent_points("v2direct", 6)

    async def scenario() -> None:
        sink = InfluxV2Sink(config(victoria_metrics.url))
        await sink.write(points)
        await sink.close()

    asyncio.run(scenario())
    series = by_name_and_link(victoria_metrics.export('{__name__=~"v2direct_.*"}'))
    primary = [p for n, p in enumerate(points) if n % 2 == 0]
    got = series[("v2direct_in_bps", "county-1-primary")]
    labels = {"__name__": "v2direct_in_bps", "site": "county 1", "link": "county-1-primary"}
    assert got["metric"] == labels  # the empty tag was left out
    assert got["values"] == [p.fields["in_bps"] for p in primary]
    assert got["timestamps"] == [p.time_ns // 1_000_000 for p in primary]
    octets = series[("v2direct_in_octets", "county-1-backup")]["values"]
    assert octets == [p.fields["in_octets"] for n, p in enumerate(points) if n % 2 == 1]
    up = series[("v2direct_up", "county-1-primary")]["values"]
    assert up == [1 if p.fields["up"] else 0 for p in primary]


def test_the_batched_spooled_chain_delivers_everything(
    victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    points = recent_points("v2chain", 50)

    async def scenario() -> None:
        spooling = SpoolingSink(
            InfluxV2Sink(config(victoria_metrics.url, gzip=True)), Spool(tmp_path)
        )
        sink = BatchingSink(spooling, max_points=7, max_delay_s=0.05)
        for n in range(0, 50, 3):
            await sink.write(points[n : n + 3])
        await sink.flush()
        assert spooling.stats().delivered_points == 50
        assert spooling.stats().spool.spooled_points == 0
        await sink.close()

    asyncio.run(scenario())
    series = victoria_metrics.export('{__name__="v2chain_in_bps"}')
    assert sum(len(s["values"]) for s in series) == 50


def test_an_unreachable_server_is_retryable() -> None:
    (port,) = free_ports(1)

    async def scenario() -> None:
        sink = InfluxV2Sink(config(f"http://127.0.0.1:{port}", timeout_s=2))
        with pytest.raises(MetricsWriteError, match="is unreachable") as caught:
            await sink.write(recent_points("x", 1))
        assert caught.value.retryable
        await sink.close()

    asyncio.run(scenario())


def test_a_v1_only_server_is_told_apart(influxdb_server: InfluxServer) -> None:
    """InfluxDB 1.6.7 has no /api/v2/write: a permanent error that points to the v1 sink."""

    async def scenario() -> None:
        sink = InfluxV2Sink(config(influxdb_server.url))
        with pytest.raises(MetricsWriteError, match=r"no v2 write API.*use the v1 sink") as caught:
            await sink.write(recent_points("x", 1))
        assert caught.value.status == 404 and not caught.value.retryable
        await sink.close()

    asyncio.run(scenario())


def test_the_token_is_redacted() -> None:
    async def scenario() -> str:
        sink = InfluxV2Sink(config("http://i:8086", token="very-secret"))
        await sink.close()
        return repr(sink)

    text = asyncio.run(scenario())
    assert "very-secret" not in text and "REDACTED" in text
