"""What the lab sustains: SNMP GET responses/s, concurrent SSH sessions, probe replies/s.

Starts a lab (default: the whole generated national network) in a child process, then loads it
from other processes on loopback only — SNMP GETs from the SNMP face's load generator (its own
spawned process), SSH sessions and UDP echo probes from this process — and stops it. Bounded in
time (about a minute for the national network; every phase has a deadline).

    .venv/bin/python bench/lab_capacity.py                 # national network, ~4,750 devices
    .venv/bin/python bench/lab_capacity.py --sites 40      # a small one
    .venv/bin/python bench/lab_capacity.py --no-uvloop     # compare event loops

Runs as root with the standard ports, or with ``--port-offset`` otherwise. The last line is
exactly ``devices=<n> snmp_rps=<...> ssh_sessions=<...> probe_rps=<...>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from inventory.document import CredentialProfileDoc, InventoryDoc
from inventory.enums import CredentialKind, LinkRole, SnmpVersion
from inventory.generator import generate
from inventory.secrets import SecretRef
from lab.build import apply_secret_defaults, resolve_credentials

READY = "LAB-READY "
START_TIMEOUT_S = 120.0


def _small(sites: int, seed: int) -> InventoryDoc:
    for provinces in range(min(37, max(1, sites // 40)), 38):
        try:
            return generate(provinces=provinces, counties=sites, seed=seed)
        except ValueError:  # too few real counties under the first provinces
            continue
    raise SystemExit(f"cannot generate {sites} counties")


def make_doc(sites: int | None, seed: int, snmp_version: str) -> InventoryDoc:
    doc = generate(seed=seed) if sites is None else _small(sites, seed)
    if snmp_version == "v2c":  # same devices, one v2c community instead of the v3 user
        v2c = CredentialProfileDoc(
            name="snmp-v2c-bench",
            kind=CredentialKind.SNMP,
            snmp_version=SnmpVersion.V2C,
            community=SecretRef("env", "TIANDI_BENCH_COMMUNITY"),
        )
        doc.credential_profiles.append(v2c)
        for site in doc.sites:
            for dev in site.devices:
                if dev.snmp_profile is not None:
                    dev.snmp_profile = v2c.name
    return doc


# ---- the lab side (child process) ----------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    from lab.runner import LabConfig, run_forever

    doc = make_doc(args.sites, args.seed, args.snmp_version)
    config = LabConfig(
        doc=doc,
        seed=args.seed,
        control=None,
        port_offset=args.port_offset,
        traffic_period_s=None,
    )
    t0 = time.perf_counter()

    def ready(lab: Any) -> None:
        info = {
            "devices": len(lab.net.devices),
            "start_s": round(time.perf_counter() - t0, 2),
            "steps": {k: round(v, 2) for k, v in lab.report.steps.items()},
            "rss_mb": round(lab.report.rss_mb),
        }
        sys.stdout.write(READY + json.dumps(info) + "\n")
        sys.stdout.flush()

    run_forever(config, ready, use_uvloop=args.uvloop)


# ---- the load side (this process) -------------------------------------------------------


def rss_of(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def start_lab(args: argparse.Namespace) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [
        sys.executable,
        __file__,
        "--serve",
        "--seed",
        str(args.seed),
        "--port-offset",
        str(args.port_offset),
        "--snmp-version",
        args.snmp_version,
        "--uvloop" if args.uvloop else "--no-uvloop",
    ]
    if args.sites is not None:
        cmd += ["--sites", str(args.sites)]
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


def stop_lab(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def measure(args: argparse.Namespace, doc: InventoryDoc) -> dict[str, Any]:
    from lab.probes import measure_probe_rps
    from lab.snmp.loadgen import measure_snmp_rps, targets_for
    from lab.ssh.bench import SshTarget, measure_ssh_sessions

    creds = resolve_credentials(doc)
    devices = [d for s in doc.sites for d in s.devices]
    endpoints = {d.name: (d.mgmt_address, d.snmp_port + args.port_offset) for d in devices}
    out: dict[str, Any] = {}

    targets = targets_for(endpoints, creds.snmp)
    snmp = await measure_snmp_rps(
        targets, version=args.snmp_version, seconds=args.seconds, processes=1, window=64
    )
    out["snmp"] = {
        "rps": round(snmp.rps),
        "sent": snmp.sent,
        "received": snmp.received,
        "invalid": snmp.invalid,
        "stalls": snmp.stalls,
        "agents": len(targets),
    }

    routers = [d for d in devices if d.kind.value == "router" and d.name in creds.ssh]
    ssh_targets = [
        SshTarget(
            d.mgmt_address,
            d.ssh_port + args.port_offset,
            creds.ssh[d.name].username,
            creds.ssh[d.name].password or "",
        )
        for d in routers
    ]
    ssh = await asyncio.wait_for(
        measure_ssh_sessions(ssh_targets, args.ssh_sessions, timeout=30.0), timeout=120.0
    )
    out["ssh"] = {
        "requested": ssh.requested,
        "opened": ssh.opened,
        "served": ssh.served,
        "connect_p95_s": round(ssh.connect_p95_s, 3),
        "command_p95_s": round(ssh.command_p95_s, 3),
        "elapsed_s": round(ssh.elapsed_s, 1),
        "errors": ssh.errors,
    }

    # Primary links have the shortest RTT, so the window measures the responder, not latency.
    probe_addrs = [
        lk.probe_address for s in doc.sites for lk in s.links if lk.role is LinkRole.PRIMARY
    ]
    probes = await measure_probe_rps(
        probe_addrs, port=7 + args.port_offset, duration=args.seconds, window=args.probe_window
    )
    out["probes"] = {
        "rps": round(probes.rps),
        "sent": probes.sent,
        "replies": probes.replies,
        "lost": probes.lost,
        "rtt_p50_ms": round(probes.rtt_p50_ms, 1),
        "rtt_p95_ms": round(probes.rtt_p95_ms, 1),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=None, help="counties (default: national)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port-offset", type=int, default=0 if os.geteuid() == 0 else 20000)
    parser.add_argument("--snmp-version", choices=("v3", "v2c"), default="v3")
    parser.add_argument("--seconds", type=float, default=5.0, help="SNMP and probe load time")
    parser.add_argument("--ssh-sessions", type=int, default=2000)
    parser.add_argument("--probe-window", type=int, default=2000)
    parser.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    doc = make_doc(args.sites, args.seed, args.snmp_version)
    apply_secret_defaults(doc)  # the child inherits them
    if args.serve:
        serve(args)
        return

    began = time.monotonic()
    proc, info = start_lab(args)
    try:
        print(
            f"lab: {info['devices']} devices up in {info['start_s']} s "
            f"({', '.join(f'{k} {v}s' for k, v in info['steps'].items())}), "
            f"RSS {info['rss_mb']} MB, loop {'uvloop' if args.uvloop else 'asyncio'}",
            flush=True,
        )
        results = asyncio.run(measure(args, doc))
        results["lab_rss_mb_after"] = round(rss_of(proc.pid))
    finally:
        stop_lab(proc)
    for key, value in results.items():
        print(f"{key}: {value}")
    print(f"bench took {time.monotonic() - began:.0f} s")
    print(
        f"devices={info['devices']} snmp_rps={results['snmp']['rps']} "
        f"ssh_sessions={results['ssh']['served']} probe_rps={results['probes']['rps']}"
    )


if __name__ == "__main__":
    main()
