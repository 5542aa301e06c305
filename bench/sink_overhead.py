"""What Tiandi's metric sink costs over writing raw line protocol to InfluxDB.

Starts its own ``influxd`` (Debian 1.6.7, on loopback, in a temporary directory), then writes the
same points twice into separate, fresh databases, in batches of the same size, over one
keep-alive HTTP connection each:

- ``raw``: the points serialised beforehand (not timed), POSTed batch after batch with httpx;
- ``sink``: the ``Sample`` objects through the production chain
  ``BatchingSink -> SpoolingSink (on-disk spool, fsync) -> InfluxV1Sink`` — serialisation,
  batching, queueing and delivery all inside the timed part; then ``flush``. The spool is only
  written when a write fails, so on this run it must stay empty (checked); what the chain costs
  here is serialisation (in Python, on the event loop) and the asyncio hand-over to the sender.

Wall time of each run; the pair is repeated ``--rounds`` times (raw first, then sink first, ...)
into fresh databases and the best time of each kind is kept, to damp noise from other processes.
Each round also prints the CPU seconds of the client (this process) and of influxd: on a machine
shared with other work, the client's extra CPU is what turns into wall time. The last
line is ``points_per_s raw=<a> sink=<b> overhead_pct=<c>``, overhead = (raw/sink - 1) * 100.
Goal: overhead <= 10 %.

Run: ``.venv/bin/python bench/sink_overhead.py [--points 500000] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitors.sinks.base import Sample
from monitors.sinks.batching import BatchingSink
from monitors.sinks.influx_v1 import InfluxV1Config, InfluxV1Sink
from monitors.sinks.lineprotocol import LineEncoder
from monitors.sinks.spool import Spool, SpoolingSink
from tests.harness.influx import InfluxServer, find_influxd

SERIES = 10_000
BATCH = 5_000
WRITE_CHUNK = 250  # points per write() call, as a poller round hands them over
T0 = 1_700_000_000 * 1_000_000_000


def make_points(count: int) -> list[Sample]:
    """``count`` interface points: 10,000 series (6 tags), 4 fields, one round per minute."""
    tags = [
        {
            "device": f"county-{i // 10:04d}-r1",
            "site": f"county-{i // 10:04d}",
            "province": f"p{i % 37:02d}",
            "ifname": f"GigabitEthernet0/0/{i % 10}",
            "link": f"county-{i // 10:04d}-primary",
            "role": ("primary", "backup", "satellite")[i % 3],
        }
        for i in range(SERIES)
    ]
    points = []
    for n in range(count):
        rnd, i = divmod(n, SERIES)
        points.append(
            Sample(
                "interface",
                tags[i],
                {
                    "in_bps": 1_000_000.0 + n * 0.37,
                    "out_bps": 2_000_000.0 + n * 1.13,
                    "in_octets": 10_000_000_000 + n * 977,
                    "oper_status": 1,
                },
                T0 + rnd * 60_000_000_000,
            )
        )
    return points


async def run_raw(server: InfluxServer, database: str, batches: list[bytes]) -> float:
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as client:
        params = {"db": database, "precision": "ns"}
        t0 = time.perf_counter()
        for body in batches:
            response = await client.post("/write", params=params, content=body)
            if response.status_code != 204:
                raise SystemExit(f"raw write failed: HTTP {response.status_code} {response.text}")
        return time.perf_counter() - t0


async def run_sink(server: InfluxServer, database: str, points: list[Sample]) -> float:
    spool_dir = Path(tempfile.mkdtemp(prefix="tiandi-bench-spool-"))
    try:
        influx = InfluxV1Sink(InfluxV1Config(url=server.url, database=database, timeout_s=60.0))
        spooling = SpoolingSink(influx, Spool(spool_dir))
        sink = BatchingSink(spooling, max_points=BATCH, max_delay_s=1.0)
        t0 = time.perf_counter()
        for start in range(0, len(points), WRITE_CHUNK):
            await sink.write(points[start : start + WRITE_CHUNK])
        await sink.flush()
        elapsed = time.perf_counter() - t0
        stats = spooling.stats()
        if stats.spool.spooled_points or stats.delivered_points != len(points):
            raise SystemExit(f"sink run did not deliver everything directly: {stats}")
        await sink.close()
        return elapsed
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(server: InfluxServer, run: Coroutine[Any, Any, float]) -> tuple[float, float, float]:
    """(wall s, this process's CPU s, influxd's CPU s) of one run."""
    cpu0, server0 = time.process_time(), cpu_seconds(server.process.pid)
    wall = asyncio.run(run)
    return wall, time.process_time() - cpu0, cpu_seconds(server.process.pid) - server0


def count_points(server: InfluxServer, database: str) -> int:
    body = server.query('SELECT count("in_bps") FROM "interface"', db=database)
    return int(body["results"][0]["series"][0]["values"][0][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    influxd = find_influxd()
    if influxd is None:
        raise SystemExit("influxd is not installed: apt-get install -y influxdb")
    points = make_points(args.points)
    encoder = LineEncoder()
    raw_batches = [encoder.encode(points[i : i + BATCH]).body for i in range(0, len(points), BATCH)]
    server = InfluxServer.start(influxd)
    try:
        raw_best = sink_best = float("inf")
        for round_no in range(args.rounds):
            raw_db = server.create_database(f"raw{round_no}")
            sink_db = server.create_database(f"sink{round_no}")
            if round_no % 2 == 0:
                raw_s, raw_cpu, raw_server = measured(server, run_raw(server, raw_db, raw_batches))
                sink_s, sink_cpu, sink_server = measured(server, run_sink(server, sink_db, points))
            else:  # the other way round, so that neither always runs on a warmer server
                sink_s, sink_cpu, sink_server = measured(server, run_sink(server, sink_db, points))
                raw_s, raw_cpu, raw_server = measured(server, run_raw(server, raw_db, raw_batches))
            for db in (raw_db, sink_db):
                stored = count_points(server, db)
                if stored != len(points):
                    raise SystemExit(f"{db} holds {stored} points, expected {len(points)}")
            print(
                f"round {round_no + 1}: raw {raw_s:.2f} s ({len(points) / raw_s:,.0f}/s, "
                f"client CPU {raw_cpu:.2f} s, influxd CPU {raw_server:.2f} s), "
                f"sink {sink_s:.2f} s ({len(points) / sink_s:,.0f}/s, "
                f"client CPU {sink_cpu:.2f} s, influxd CPU {sink_server:.2f} s), "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            raw_best, sink_best = min(raw_best, raw_s), min(sink_best, sink_s)
            server.query(f'DROP DATABASE "{raw_db}"')
            server.query(f'DROP DATABASE "{sink_db}"')
    finally:
        server.stop()
    raw_rate = len(points) / raw_best
    sink_rate = len(points) / sink_best
    overhead = (raw_rate / sink_rate - 1.0) * 100.0
    print(f"points_per_s raw={raw_rate:.0f} sink={sink_rate:.0f} overhead_pct={overhead:.1f}")


if __name__ == "__main__":
    main()
