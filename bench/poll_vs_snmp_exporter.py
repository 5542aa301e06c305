"""OIDs per CPU-second: Tiandi's SNMP poller against Prometheus' snmp_exporter, same agents.

Starts ``--agents`` net-snmp ``snmpd`` agents (Debian 5.9.3), each on its own ``127.0.100.x``
address, and one ``prometheus-snmp-exporter`` (Debian 0.21.0) with a hand-written ``snmp.yml``
(numeric OIDs: no MIBs are installable here). Every poller reads the same objects from the same
agents — sysDescr.0, sysUpTime.0, sysName.0 and the 39 columns of ifTable/ifXTable that net-snmp
serves (all but ifSpecific, an OID the exporter cannot make a metric of) — for ``--seconds``
each, rounds back to back, one poller after the other:

- ``snmp_exporter``: each round scrapes ``/snmp?target=<agent>&module=if_mib`` for every agent
  at once; the exporter GETs the scalars and walks both tables with GETBULK (max-repetitions 25,
  its default). Its CPU: utime+stime of its process from ``/proc/<pid>/stat``. Its OIDs: the
  sample lines of the configured metrics in the scrapes (one sample per OID read);
- ``pysnmp bulk_walk_cmd`` (the "before"): pysnmp 7's high-level API as documented, ``get_cmd``
  for the scalars and ``bulk_walk_cmd`` per table (max-repetitions 25), agents concurrently;
- ``PysnmpTransport, same plan``: Tiandi's pysnmp transport with Tiandi's poll plan (below) —
  what the plan buys without the lean codec;
- ``tiandi`` (the "after"): ``FastV2cTransport`` (lean BER codec, one UDP socket, request
  templates) with the poll plan: the scalars as non-repeaters of the first GETBULK, the columns
  as repeaters, max-repetitions = rows seen last round + 1, the columns split so that each answer
  fits net-snmp's GETBULK cap of 100 varbinds (``maxGetbulkResponses``; one 3 + 39 x 5 request
  would be cut to 2 rows) and the parts sent concurrently: 2 requests per agent here. One
  process; then, as a diagnostic, the same in ``--workers`` processes with the agents sharded.

CPU is each poller's own — the exporter's process, the polling process(es) with
``time.process_time`` — never the agents'. OIDs are counted from what each side returned
(varbinds inside the polled objects), so a side that reads less is not credited for more.
Diagnostic lines first; the line above the last gives the "before" (pysnmp) and "after"
figures; the last line is ``oids_per_cpu_s tiandi=<a> snmp_exporter=<b> ratio=<a/b>`` with
``tiandi`` the one-process run (goal: ratio >= 1.0). Worker processes do not lower the CPU per
OID (each pays its own event loop and system calls); they buy wall-clock throughput on more
cores, which the one-process figure already has to spare here.

Needs the Debian packages ``snmpd`` and ``prometheus-snmp-exporter``; without them it says so and
exits 0. Loopback only; about 5 x ``--seconds`` plus ~5 s of start-up and warm-ups.

Run: ``.venv/bin/python bench/poll_vs_snmp_exporter.py [--agents 30] [--seconds 6]
[--workers 2] [--max-varbinds 100] [--no-uvloop]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory.enums import SnmpVersion
from monitors.snmp import ber
from monitors.snmp.base import (
    Oid,
    PollFailure,
    SnmpCredentials,
    SnmpTarget,
    SnmpTransport,
    ValueKind,
    VarBind,
)
from monitors.snmp.fastpath import FastV2cTransport
from monitors.snmp.pysnmp_transport import PysnmpTransport

COMMUNITY = "bench-public"
MODULE = "if_mib"
EXPORTER_MAX_REPETITIONS = 25

SYSTEM = (1, 3, 6, 1, 2, 1, 1)
SCALARS: dict[str, tuple[Oid, str]] = {  # name -> (object OID, exporter type)
    "sysDescr": ((*SYSTEM, 1), "DisplayString"),
    "sysUpTime": ((*SYSTEM, 3), "gauge"),
    "sysName": ((*SYSTEM, 5), "DisplayString"),
}
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
_IF_COLUMNS = {
    1: ("ifIndex", "gauge"),
    2: ("ifDescr", "DisplayString"),
    3: ("ifType", "gauge"),
    4: ("ifMtu", "gauge"),
    5: ("ifSpeed", "gauge"),
    6: ("ifPhysAddress", "PhysAddress48"),
    7: ("ifAdminStatus", "gauge"),
    8: ("ifOperStatus", "gauge"),
    9: ("ifLastChange", "gauge"),
    10: ("ifInOctets", "counter"),
    11: ("ifInUcastPkts", "counter"),
    12: ("ifInNUcastPkts", "counter"),
    13: ("ifInDiscards", "counter"),
    14: ("ifInErrors", "counter"),
    15: ("ifInUnknownProtos", "counter"),
    16: ("ifOutOctets", "counter"),
    17: ("ifOutUcastPkts", "counter"),
    18: ("ifOutNUcastPkts", "counter"),
    19: ("ifOutDiscards", "counter"),
    20: ("ifOutErrors", "counter"),
    21: ("ifOutQLen", "gauge"),
}
_IFX_COLUMNS = {
    1: ("ifName", "DisplayString"),
    2: ("ifInMulticastPkts", "counter"),
    3: ("ifInBroadcastPkts", "counter"),
    4: ("ifOutMulticastPkts", "counter"),
    5: ("ifOutBroadcastPkts", "counter"),
    6: ("ifHCInOctets", "counter"),
    7: ("ifHCInUcastPkts", "counter"),
    8: ("ifHCInMulticastPkts", "counter"),
    9: ("ifHCInBroadcastPkts", "counter"),
    10: ("ifHCOutOctets", "counter"),
    11: ("ifHCOutUcastPkts", "counter"),
    12: ("ifHCOutMulticastPkts", "counter"),
    13: ("ifHCOutBroadcastPkts", "counter"),
    15: ("ifHighSpeed", "gauge"),
    16: ("ifPromiscuousMode", "gauge"),
    17: ("ifConnectorPresent", "gauge"),
    18: ("ifAlias", "DisplayString"),
    19: ("ifCounterDiscontinuityTime", "gauge"),
}
COLUMNS: dict[str, tuple[Oid, str]] = {
    **{name: ((*IF_ENTRY, n), kind) for n, (name, kind) in _IF_COLUMNS.items()},
    **{name: ((*IFX_ENTRY, n), kind) for n, (name, kind) in _IFX_COLUMNS.items()},
}
SCALAR_OIDS: list[Oid] = [oid for oid, _ in SCALARS.values()]
COLUMN_OIDS: list[Oid] = [oid for oid, _ in COLUMNS.values()]
POLLED = (*SCALAR_OIDS, *COLUMN_OIDS)


def log(text: str) -> None:
    print(text, flush=True)


def in_polled(oid: Oid) -> bool:
    """Whether ``oid`` is an instance of one of the polled objects."""
    return any(oid[: len(p)] == p and len(oid) > len(p) for p in POLLED)


# ---- the agents and the exporter --------------------------------------------------------------


@dataclass(frozen=True)
class Agent:
    host: str
    port: int
    pid: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers(host: str, port: int, timeout: float = 0.2) -> bool:
    """One v2c GET of sysUpTime.0 with the lean codec; True if a Response came back."""
    message = ber.request_template(COMMUNITY.encode(), ber.GET_REQUEST, [(*SYSTEM, 3, 0)]).render(
        ber.REQUEST_ID_MIN
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(message, (host, port))
            data = s.recv(65_535)
        except OSError:
            return False
    try:
        return ber.decode_response(data).request_id == ber.REQUEST_ID_MIN
    except ber.NotUnderstood:
        return False


@contextlib.contextmanager
def snmpd_agents(snmpd: str, count: int, workdir: Path) -> Iterator[list[Agent]]:
    procs: list[subprocess.Popen[bytes]] = []
    agents: list[Agent] = []
    env = {**os.environ, "MIBS": "", "MIBDIRS": str(workdir)}  # no MIB parsing at start
    try:
        for n in range(count):
            host = f"127.0.{100 + n // 250}.{n % 250 + 1}"
            port = free_udp_port(host)
            d = workdir / f"agent{n}"
            d.mkdir()
            conf = d / "snmpd.conf"
            conf.write_text(
                f"agentAddress udp:{host}:{port}\nrocommunity {COMMUNITY} 127.0.0.0/8\n",
                encoding="ascii",
            )
            log_file = (d / "snmpd.log").open("wb")
            proc = subprocess.Popen(
                [snmpd, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(d / "snmpd.pid"),
                 f"--persistentDir={d / 'persist'}"],
                stdout=log_file, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            log_file.close()
            procs.append(proc)
            agents.append(Agent(host, port, proc.pid))
        deadline = time.monotonic() + 20.0
        for agent, proc in zip(agents, procs, strict=True):
            while not answers(agent.host, agent.port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (workdir / f"agent{agents.index(agent)}" / "snmpd.log").read_text()
                    raise RuntimeError(f"snmpd on {agent.address} did not answer:\n{tail[-800:]}")
                time.sleep(0.05)
        yield agents
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def snmp_yml() -> str:
    """The exporter's module, by hand (0.21: auth inside the module)."""
    lines = [
        f"{MODULE}:",
        "  version: 2",
        "  auth:",
        f"    community: {COMMUNITY}",
        f"  max_repetitions: {EXPORTER_MAX_REPETITIONS}",
        "  retries: 1",
        "  timeout: 5s",
        "  get:",
        *(f"  - {ber_text(oid)}.0" for oid in SCALAR_OIDS),
        "  walk:",
        f"  - {ber_text(IF_ENTRY)}",
        f"  - {ber_text(IFX_ENTRY)}",
        "  metrics:",
    ]
    for name, (oid, kind) in SCALARS.items():
        lines += [f"  - name: {name}", f"    oid: {ber_text(oid)}", f"    type: {kind}",
                  f"    help: {name}"]  # fmt: skip
    for name, (oid, kind) in COLUMNS.items():
        lines += [f"  - name: {name}", f"    oid: {ber_text(oid)}", f"    type: {kind}",
                  f"    help: {name}", "    indexes:", "    - labelname: ifIndex",
                  "      type: gauge"]  # fmt: skip
    return "\n".join(lines) + "\n"


def ber_text(oid: Oid) -> str:
    return ".".join(map(str, oid))


@contextlib.contextmanager
def exporter(binary: str, workdir: Path) -> Iterator[tuple[int, str]]:
    config = workdir / "snmp.yml"
    config.write_text(snmp_yml(), encoding="ascii")
    port = free_tcp_port()
    log_path = workdir / "exporter.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15.0
        while True:
            try:
                if httpx.get(f"{url}/metrics", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the exporter did not start:\n{log_path.read_text()[-800:]}")
            time.sleep(0.05)
        yield proc.pid, url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- results ------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One poller's measured run: OIDs read, its CPU seconds, wall time, agent polls made."""

    name: str
    oids: int
    cpu_s: float
    wall_s: float
    polls: int  # agent polls (one per agent per round)
    failures: int = 0

    @property
    def per_cpu_s(self) -> float:
        return self.oids / self.cpu_s if self.cpu_s > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.name}: {self.oids} OIDs in {self.polls} agent polls "
            f"({self.oids / max(1, self.polls):.0f} per poll, {self.failures} failed), "
            f"cpu {self.cpu_s:.2f} s, wall {self.wall_s:.2f} s -> "
            f"{self.per_cpu_s:,.0f} OIDs per CPU-second"
        )


# ---- snmp_exporter ----------------------------------------------------------------------------


def count_samples(text: str, names: frozenset[str]) -> int:
    count = 0
    for line in text.splitlines():
        if line and line[0] != "#":
            cut = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=-1)
            if line[:cut] in names:
                count += 1
    return count


async def exporter_phase(pid: int, url: str, agents: Sequence[Agent], seconds: float) -> Phase:
    names = frozenset((*SCALARS, *COLUMNS))
    limits = httpx.Limits(max_connections=len(agents), max_keepalive_connections=len(agents))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:

        async def scrape(agent: Agent) -> tuple[int, bool]:
            r = await client.get("/snmp", params={"target": agent.address, "module": MODULE})
            ok = r.status_code == 200 and "snmp_scrape_walk_duration_seconds" in r.text
            return count_samples(r.text, names), ok

        async def round_() -> tuple[int, int]:
            got = await asyncio.gather(*(scrape(a) for a in agents))
            return sum(n for n, _ in got), sum(1 for _, ok in got if not ok)

        await round_()  # warm-up: connections, the exporter's first walks
        cpu0, t0 = proc_cpu_s(pid), time.perf_counter()
        oids = failures = rounds = 0
        while rounds == 0 or time.perf_counter() - t0 < seconds:
            n, f = await round_()
            oids, failures, rounds = oids + n, failures + f, rounds + 1
        cpu, wall = proc_cpu_s(pid) - cpu0, time.perf_counter() - t0
        return Phase("snmp_exporter", oids, cpu, wall, rounds * len(agents), failures)


# ---- pysnmp high-level API (the "before") -------------------------------------------------------


async def pysnmp_phase(agents: Sequence[Agent], seconds: float) -> Phase:
    from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped]
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        bulk_walk_cmd,
        get_cmd,
    )

    engine = SnmpEngine()
    community = CommunityData(COMMUNITY, mpModel=1)
    context = ContextData()
    targets = [
        await UdpTransportTarget.create((a.host, a.port), timeout=5, retries=1) for a in agents
    ]

    async def poll(target: Any) -> tuple[int, int]:
        oids = failures = 0
        error, status, _, varbinds = await get_cmd(
            engine, community, target, context,
            *(ObjectType(ObjectIdentity(f"{ber_text(o)}.0")) for o in SCALAR_OIDS),
            lookupMib=False,
        )  # fmt: skip
        if error or status:
            failures += 1
        oids += sum(1 for name, _ in varbinds if in_polled(tuple(name)))
        for table in (IF_ENTRY, IFX_ENTRY):
            async for error, status, _, varbinds in bulk_walk_cmd(
                engine, community, target, context, 0, EXPORTER_MAX_REPETITIONS,
                ObjectType(ObjectIdentity(ber_text(table))),
                lexicographicMode=False, lookupMib=False,
            ):  # fmt: skip
                if error or status:
                    failures += 1
                    break
                oids += sum(1 for name, _ in varbinds if in_polled(tuple(name)))
        return oids, failures

    try:
        await asyncio.gather(*(poll(t) for t in targets))  # warm-up
        cpu0, t0 = time.process_time(), time.perf_counter()
        oids = failures = rounds = 0
        while rounds == 0 or time.perf_counter() - t0 < seconds:
            got = await asyncio.gather(*(poll(t) for t in targets))
            oids += sum(n for n, _ in got)
            failures += sum(f for _, f in got)
            rounds += 1
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        return Phase("pysnmp bulk_walk_cmd", oids, cpu, wall, rounds * len(targets), failures)
    finally:
        engine.close_dispatcher()


# ---- Tiandi's poll plan --------------------------------------------------------------------------


class TablePoller:
    """One agent: scalars and columns in as few GETBULKs as the agent allows.

    The scalars ride as non-repeaters (GETNEXT of ``x`` answers ``x.0``); max-repetitions is the
    rows seen last round + 1 (the extra row shows the table's end); the columns are split into
    groups whose answer fits ``max_varbinds`` (net-snmp answers at most 100 varbinds per GETBULK
    by default — ``maxGetbulkResponses`` — and cuts the repetitions to fit), walked concurrently.
    """

    def __init__(self, transport: SnmpTransport, target: SnmpTarget, max_varbinds: int) -> None:
        self.transport = transport
        self.target = target
        self.max_varbinds = max_varbinds
        self.repetitions = 10  # first guess; then rows seen last round + 1

    async def poll(self) -> list[VarBind] | PollFailure:
        reps = self.repetitions
        groups = self._groups(reps)
        walks = await asyncio.gather(
            *(self._walk(SCALAR_OIDS if i == 0 else [], g, reps) for i, g in enumerate(groups))
        )
        found: list[VarBind] = []
        rows = 0
        for walk in walks:
            if isinstance(walk, PollFailure):
                return walk
            found += walk[0]
            rows = max(rows, walk[1])
        self.repetitions = min(rows, 1_000) + 1
        return found

    def _groups(self, reps: int) -> list[list[Oid]]:
        """The columns in groups whose GETBULK answer fits ``max_varbinds`` (the first group
        also carries the scalars); one group when there is no limit."""
        if not self.max_varbinds:
            return [COLUMN_OIDS]
        groups: list[list[Oid]] = []
        rest = list(COLUMN_OIDS)
        room = self.max_varbinds - len(SCALAR_OIDS)
        while rest:
            size = max(1, room // reps)
            groups.append(rest[:size])
            rest = rest[size:]
            room = self.max_varbinds
        return groups

    async def _walk(
        self, non_repeaters: list[Oid], columns: list[Oid], reps: int
    ) -> tuple[list[VarBind], int] | PollFailure:
        found: list[VarBind] = []
        cursors: dict[Oid, Oid] = {c: c for c in columns}
        rows = dict.fromkeys(columns, 0)
        while cursors:
            asked = list(cursors)
            answer = await self.transport.bulk(
                self.target, non_repeaters, [cursors[c] for c in asked], reps
            )
            if isinstance(answer, PollFailure):
                return answer
            n = len(non_repeaters)
            for scalar, vb in zip(non_repeaters, answer[:n], strict=False):
                if vb.oid[: len(scalar)] == scalar and vb.kind is not ValueKind.END_OF_MIB_VIEW:
                    found.append(vb)
            non_repeaters = []
            repeated = answer[n:]
            done: set[Oid] = set()
            for i, vb in enumerate(repeated):
                column = asked[i % len(asked)]
                if column in done:
                    continue
                if vb.kind is ValueKind.END_OF_MIB_VIEW or vb.oid[: len(column)] != column:
                    done.add(column)
                    continue
                found.append(vb)
                cursors[column] = vb.oid
                rows[column] += 1
            if not repeated:
                break
            for column in done:
                del cursors[column]
        return found, max(rows.values(), default=0)


def v2c_target(host: str, port: int, n: int) -> SnmpTarget:
    return SnmpTarget(
        device=f"bench-agent{n}",
        host=host,
        port=port,
        credentials=SnmpCredentials(SnmpVersion.V2C, community=COMMUNITY),
        timeout_s=5.0,
        retries=1,
    )


async def plan_phase(
    name: str,
    transport: SnmpTransport,
    targets: Sequence[SnmpTarget],
    seconds: float,
    max_varbinds: int = 100,
) -> Phase:
    pollers = [TablePoller(transport, t, max_varbinds) for t in targets]

    async def round_() -> tuple[int, int]:
        got = await asyncio.gather(*(p.poll() for p in pollers))
        oids = sum(len(r) for r in got if not isinstance(r, PollFailure))
        return oids, sum(1 for r in got if isinstance(r, PollFailure))

    try:
        await round_()  # warm-up: sockets, templates, repetitions learnt
        cpu0, t0 = time.process_time(), time.perf_counter()
        oids = failures = rounds = 0
        while rounds == 0 or time.perf_counter() - t0 < seconds:
            n, f = await round_()
            oids, failures, rounds = oids + n, failures + f, rounds + 1
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        return Phase(name, oids, cpu, wall, rounds * len(pollers), failures)
    finally:
        await transport.close()


def run_loop(coro: Any, use_uvloop: bool) -> Any:
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def worker_main(spec: str) -> None:
    """``--worker``: poll a shard of agents with the fast path, print one JSON line."""
    args = json.loads(spec)
    targets = [v2c_target(h, p, n) for n, (h, p) in enumerate(args["agents"])]
    fast = FastV2cTransport(PysnmpTransport())
    phase: Phase = run_loop(
        plan_phase("worker", fast, targets, args["seconds"], args["max_varbinds"]), args["uvloop"]
    )
    print(json.dumps(phase.__dict__))


def workers_phase(
    agents: Sequence[Agent], workers: int, seconds: float, max_varbinds: int, use_uvloop: bool
) -> Phase:
    """The fast path in ``workers`` processes, each polling every ``workers``-th agent."""
    procs = []
    for i in range(workers):
        shard = [(a.host, a.port) for a in agents[i::workers]]
        if not shard:
            continue
        spec = {
            "agents": shard,
            "seconds": seconds,
            "max_varbinds": max_varbinds,
            "uvloop": use_uvloop,
        }
        argv = [sys.executable, __file__, "--worker", json.dumps(spec)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE))
    phases = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"a worker failed (exit {proc.returncode})")
        phases.append(json.loads(out.decode().strip().splitlines()[-1]))
    return Phase(
        f"tiandi fast path, {len(procs)} worker processes",
        sum(p["oids"] for p in phases),
        sum(p["cpu_s"] for p in phases),
        max(p["wall_s"] for p in phases),
        sum(p["polls"] for p in phases),
        sum(p["failures"] for p in phases),
    )


# ---- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=6.0, help="per measured phase")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes for the extra run (0: none)"
    )
    parser.add_argument(
        "--max-varbinds",
        type=int,
        default=100,
        help="GETBULK answer size the plan aims at (net-snmp's default cap; 0: no splitting)",
    )
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker)
        return 0

    snmpd = shutil.which("snmpd") or (
        "/usr/sbin/snmpd" if os.access("/usr/sbin/snmpd", os.X_OK) else None
    )
    binary = shutil.which("prometheus-snmp-exporter")
    missing = [
        name
        for name, path in (("snmpd", snmpd), ("prometheus-snmp-exporter", binary))
        if path is None
    ]
    if snmpd is None or binary is None:
        log(
            f"skipped: {' and '.join(missing)} not installed; as root: "
            f"apt-get install -y --no-install-recommends {' '.join(missing)}"
        )
        return 0

    started = time.perf_counter()
    loop_name = "uvloop" if args.uvloop else "asyncio"
    with tempfile.TemporaryDirectory(prefix="tiandi-bench-snmp-") as tmp:
        workdir = Path(tmp)
        with (
            snmpd_agents(snmpd, args.agents, workdir) as agents,
            exporter(binary, workdir) as (pid, url),
        ):
            log(
                f"{len(agents)} snmpd agents on 127.0.100.x, prometheus-snmp-exporter (pid {pid}) "
                f"at {url}, up in {time.perf_counter() - started:.1f} s; {len(POLLED)} objects "
                f"per agent; Tiandi on {loop_name}, GETBULK answers aimed at <= "
                f"{args.max_varbinds or 'any'} varbinds"
            )
            targets = [v2c_target(a.host, a.port, n) for n, a in enumerate(agents)]
            exp = asyncio.run(exporter_phase(pid, url, agents, args.seconds))
            log(exp.line())
            before = run_loop(pysnmp_phase(agents, args.seconds), args.uvloop)
            log(before.line())
            ref = run_loop(
                plan_phase(
                    "PysnmpTransport, same plan",
                    PysnmpTransport(),
                    targets,
                    args.seconds,
                    args.max_varbinds,
                ),
                args.uvloop,
            )
            log(ref.line())
            fast = FastV2cTransport(PysnmpTransport())
            tiandi = run_loop(
                plan_phase(
                    "tiandi (FastV2cTransport), one process",
                    fast,
                    targets,
                    args.seconds,
                    args.max_varbinds,
                ),
                args.uvloop,
            )
            log(tiandi.line())
            log(
                f"  fast path: {fast.stats.requests} requests, {fast.stats.responses} answers, "
                f"{fast.stats.retransmissions} retransmissions, {fast.stats.timeouts} timeouts, "
                f"{fast.stats.delegated_total()} handed to pysnmp, ignored: "
                f"{fast.stats.ignored_unknown_id} unknown id / {fast.stats.ignored_wrong_source} "
                f"wrong source / {fast.stats.ignored_unreadable} unreadable"
            )
            if args.workers > 0:
                multi = workers_phase(
                    agents, args.workers, args.seconds, args.max_varbinds, args.uvloop
                )
                log(multi.line())
            log(f"bench time {time.perf_counter() - started:.1f} s")
    log(
        f"before: pysnmp bulk_walk_cmd={before.per_cpu_s:.0f} OIDs per CPU-second; "
        f"after: tiandi={tiandi.per_cpu_s:.0f} "
        f"({tiandi.per_cpu_s / before.per_cpu_s if before.per_cpu_s else 0:.1f}x)"
    )
    ratio = tiandi.per_cpu_s / exp.per_cpu_s if exp.per_cpu_s else 0.0
    log(
        f"oids_per_cpu_s tiandi={tiandi.per_cpu_s:.0f} snmp_exporter={exp.per_cpu_s:.0f} "
        f"ratio={ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
