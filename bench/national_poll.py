"""How long one poll of the whole national network takes, and what it costs in CPU.

Starts the full generated national lab (``inventory.generator.generate()``: the ministry, 37
provincial nodes, 1,500 counties, ~4,750 devices, SNMPv3 authPriv SHA/AES as the generated
inventory asks) in a **separate process** (``--serve``, SNMP face only, steady traffic), so the
lab's CPU is not counted as the poller's. Then polls every device with the shipped profiles
(``monitors/profiles``), through ``monitors.poller.Poller`` and the pysnmp transport, for
``--cycles`` back-to-back cycles at full speed (``poll_once``: the interval compressed to
nothing). Samples go to a counting sink (the sink's cost is ``bench/sink_overhead.py``'s
business).

- ``cycle_s``: wall time of one full cycle (median of the cycles after the first; the first
  includes every device's engine-ID discovery and key localisation). Goal: < 60 s, so every
  device is polled every 60 s.
- ``cpu_pct``: the pollers' CPU seconds per cycle (user + system, all worker processes, lab
  excluded) as a percentage of 2 cores over the 60 s interval: ``cpu_s / (60 * 2) * 100``.
  Goal: <= 50.

``--workers N`` shards the devices over N poller processes by a stable hash of the device name
(as ``tiandi poll`` would scale out); each worker owns its shard's engine, counters and state.
The coordinator starts them together and reads each cycle's wall and CPU time from them:
``cycle_s`` is the slowest worker's, ``cpu_s`` the sum.

The whole bench keeps within ``--budget-s`` (150 s): after the second cycle it adds a cycle
only if that fits.

Last line: ``devices=<n> oids=<m> cycle_s=<s> cpu_pct=<p>`` (``oids``: objects read per cycle,
table cells counted one by one).

Measured on the 2-core build machine while other work ran on it (load average 2.5-4):

- first version (one pysnmp engine for every device, 256 devices at once, a table walk sized
  by a fixed max-repetitions): ``devices=4752 oids=174564 cycle_s=157.9 cpu_pct=60.2``, with
  timeouts in every cycle — the discovery of 4,750 v3 engines in one pysnmp engine is O(N²)
  (its USM security-name map is rebuilt from the whole user table after each new peer), and
  answers queued behind that CPU missed their timeouts;
- now (250 devices per pysnmp engine, 128 devices at once of which 32 first contacts, GETBULK
  sized by the rows seen last time, scalars folded into it, the walk of ifTable ended by
  ifNumber): ``devices=4752 oids=119450 cycle_s=26.4 cpu_pct=18.3`` (cycle_s 26-32 s, cpu_pct
  17-19 over several runs; no failure; the bench ran 2 min 10 s). One process is enough. The
  first cycle costs ~3x a steady one (v3 engine-ID discovery and pysnmp's per-peer MIB writes):
  ~65 s of CPU, so a cold start polls every device once in 70-100 s, then every 60 s.
  ``--workers 2`` measured ``cycle_s=25.6 cpu_pct=22.5`` under load average ~4.5 (the same CPU,
  split over both cores).
- ``--snmp v2c`` (the lean fast path, pysnmp only behind it): ``cycle_s=1.6 cpu_pct=1.2`` —
  the engine's own cost is small; SNMPv3 through pysnmp (pyasn1 decoding) is the limit.

Run: ``.venv/bin/python bench/national_poll.py [--cycles 3] [--workers 1] [--snmp v3|v2c]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory.document import CredentialProfileDoc, InventoryDoc
from inventory.enums import CredentialKind, SnmpVersion
from inventory.generator import generate
from inventory.secrets import SecretRef
from lab.build import apply_secret_defaults

READY = "LAB-READY "
RESULT = "WORKER-RESULT "
START_TIMEOUT_S = 120.0
INTERVAL_S = 60.0
CORES = 2


def make_doc(args: argparse.Namespace) -> InventoryDoc:
    doc = generate(provinces=args.provinces, counties=args.counties, seed=args.seed)
    if args.snmp == "v2c":
        doc.credential_profiles.append(
            CredentialProfileDoc(
                name="snmp-v2c-bench",
                kind=CredentialKind.SNMP,
                snmp_version=SnmpVersion.V2C,
                community=SecretRef("env", "TIANDI_SNMP_COMMUNITY"),
            )
        )
        for site in doc.sites:
            for dev in site.devices:
                dev.snmp_profile = "snmp-v2c-bench"
    apply_secret_defaults(doc)
    return doc


# ---- the lab (child process) ---------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    from lab.runner import LabConfig, run_forever

    config = LabConfig(
        doc=make_doc(args),
        seed=args.seed,
        faces=("snmp",),
        control=None,
        port_offset=args.port_offset,
        traffic_period_s=None,
    )

    def ready(lab: Any) -> None:
        sys.stdout.write(READY + json.dumps({"devices": len(lab.net.devices)}) + "\n")
        sys.stdout.flush()

    run_forever(config, ready, use_uvloop=True)


def start_lab(args: argparse.Namespace) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [sys.executable, __file__, "--serve", *common_args(args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the lab exited during start-up (code {proc.wait()})")
        if line.startswith(READY):
            return proc, json.loads(line[len(READY) :])
    proc.kill()
    raise SystemExit("the lab did not start in time")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def common_args(args: argparse.Namespace) -> list[str]:
    return [
        "--provinces",
        str(args.provinces),
        "--counties",
        str(args.counties),
        "--seed",
        str(args.seed),
        "--port-offset",
        str(args.port_offset),
        "--cycles",
        str(args.cycles),
        "--workers",
        str(args.workers),
        "--deadline",
        str(args.deadline),
        "--snmp",
        args.snmp,
    ]


# ---- a poller (this process, or one worker process per shard) -------------------------------


def shard_of(device: str, shards: int) -> int:
    return int.from_bytes(hashlib.blake2b(device.encode(), digest_size=4).digest(), "big") % shards


class CountingSink:
    def __init__(self) -> None:
        self.points = 0

    async def write(self, points: Any) -> None:
        self.points += len(points)

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def poll(args: argparse.Namespace, shard: int, go: Any = None) -> dict[str, Any]:
    from monitors.poller import Poller, PollerConfig
    from monitors.profiles import load_profiles
    from monitors.snmp.pysnmp_transport import PysnmpTransport
    from monitors.targets import TargetBuilder

    doc = make_doc(args)
    targets = [
        t
        for t in TargetBuilder(port_offset=args.port_offset).from_document(doc)
        if shard_of(t.device, args.workers) == shard
    ]
    transport: Any = PysnmpTransport()
    if args.snmp == "v2c":
        from monitors.snmp.fastpath import FastV2cTransport

        transport = FastV2cTransport(fallback=transport)
    poller = Poller(
        transport,
        load_profiles(),
        sink=CountingSink(),
        config=PollerConfig(interval_s=INTERVAL_S, concurrency=args.concurrency),
    )
    poller.set_targets(targets)
    if go is not None:
        await go()
    cycles: list[dict[str, Any]] = []
    try:
        for _ in range(args.cycles):
            # Keep the whole bench within its time budget: stop early (never before two cycles,
            # the first being the discovery one) when the next cycle would overrun it.
            if len(cycles) >= 2 and time.time() + cycles[-1]["wall_s"] > args.deadline:
                break
            c0 = time.process_time()
            t0 = time.perf_counter()
            values0 = poller.stats.values
            results = await poller.poll_once()
            cycles.append(
                {
                    "wall_s": time.perf_counter() - t0,
                    "cpu_s": time.process_time() - c0,
                    "ok": sum(r.ok for r in results),
                    "failed": sum(not r.ok for r in results),
                    "values": poller.stats.values - values0,
                    "requests": sum(r.requests for r in results),
                    "causes": sorted({str(r.failure.cause) for r in results if r.failure}),
                }
            )
    finally:
        await transport.close()
    return {"devices": len(targets), "cycles": cycles}


def worker(args: argparse.Namespace) -> None:
    async def go() -> None:
        sys.stdout.write("WORKER-READY\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    result = asyncio.run(poll(args, args.shard, go))
    sys.stdout.write(RESULT + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_workers(args: argparse.Namespace) -> list[dict[str, Any]]:
    procs = []
    for shard in range(args.workers):
        cmd = [sys.executable, __file__, "--worker", "--shard", str(shard), *common_args(args)]
        procs.append(
            subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line.startswith("WORKER-READY"):
                raise SystemExit(f"a worker failed to start (code {p.wait()})")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        out = []
        for p in procs:
            assert p.stdout is not None
            for line in p.stdout:
                if line.startswith(RESULT):
                    out.append(json.loads(line[len(RESULT) :]))
                    break
            p.wait()
        if len(out) != len(procs):
            raise SystemExit("a worker died before reporting")
        return out
    finally:
        for p in procs:
            stop(p)


# ---- the report -----------------------------------------------------------------------------


def report(results: list[dict[str, Any]], devices: int) -> str:
    cycles = min(len(r["cycles"]) for r in results)
    steady = range(1, cycles) if cycles > 1 else range(cycles)
    per_cycle = []
    for i in range(cycles):
        walls = [r["cycles"][i]["wall_s"] for r in results]
        cpus = [r["cycles"][i]["cpu_s"] for r in results]
        values = sum(r["cycles"][i]["values"] for r in results)
        failed = sum(r["cycles"][i]["failed"] for r in results)
        requests = sum(r["cycles"][i]["requests"] for r in results)
        causes = sorted({c for r in results for c in r["cycles"][i]["causes"]})
        per_cycle.append((max(walls), sum(cpus), values, failed, requests))
        print(
            f"cycle {i + 1}: {max(walls):.1f} s wall, {sum(cpus):.1f} s CPU, {requests} requests, "
            f"{values} values, {failed} failed {causes or ''}",
            flush=True,
        )
    wall = statistics.median(per_cycle[i][0] for i in steady)
    cpu = statistics.median(per_cycle[i][1] for i in steady)
    oids = int(statistics.median(per_cycle[i][2] for i in steady))
    cpu_pct = cpu / (INTERVAL_S * CORES) * 100.0
    return f"devices={devices} oids={oids} cycle_s={wall:.1f} cpu_pct={cpu_pct:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provinces", type=int, default=37)
    parser.add_argument("--counties", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port-offset", type=int, default=0)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument(
        "--budget-s", type=float, default=150.0, help="stop adding cycles past this (>= 2 run)"
    )
    parser.add_argument("--deadline", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--snmp",
        choices=("v3", "v2c"),
        default="v3",
        help="v3: authPriv SHA/AES through pysnmp (the generated inventory); v2c: every device "
        "on a v2c community, through the lean fast path (monitors/snmp/fastpath.py)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.port_offset:
        args.port_offset = random.Random().randrange(20_000, 40_000, 10)
    if not args.deadline:
        args.deadline = time.time() + args.budget_s
    if args.serve:
        serve(args)
        return
    if args.worker:
        worker(args)
        return
    t0 = time.perf_counter()
    lab, info = start_lab(args)
    print(f"lab: {info['devices']} devices up in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        results = [asyncio.run(poll(args, 0))] if args.workers == 1 else run_workers(args)
    finally:
        stop(lab)
    devices = sum(r["devices"] for r in results)
    print(f"pollers: {args.workers} process(es), {devices} devices, SNMP {args.snmp}", flush=True)
    print(report(results, devices), flush=True)


if __name__ == "__main__":
    main()
