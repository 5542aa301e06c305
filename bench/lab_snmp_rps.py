"""GET responses per second one lab process serves over SNMP v2c and v3 authPriv.

Builds a synthetic network of ``--devices`` routers (five interfaces each, as ``lab.build``
gives a county router: three links, LAN, Loopback0), each on its own ``127.79.x.y`` address,
and serves them from this process's event loop with ``lab.snmp.serve_snmp`` — one core. A
spawned load-generator process (``lab.snmp.loadgen``, raw UDP, pre-encoded requests, a window
of requests in flight, round-robin over all devices) sends GETs of 3 varbinds (sysUpTime,
ifHCInOctets.1, ifHCOutOctets.1) and counts valid responses: first v2c, then v3 authPriv
(HMAC-SHA-96 + AES-128, every message authenticated and encrypted both ways).

The national poll needs ~300-500 GET/s sustained (6,000 devices every 60 s, a few requests
each); the last line is ``devices=<n> snmp_v2c_rps=<x> snmp_v3_rps=<y>``. Measured on the
2-core development machine while other work was running (load average ~4): 1,000 devices
v2c ~5,800/s, v3 ~3,000/s; 6,500 devices v2c ~5,800/s, v3 ~2,000/s. Starting 6,500 agents
takes ~0.6 s and ~12 MB. So the lean agent, not pysnmp's (≈470 req/s as a client), is used.

Run: ``.venv/bin/python bench/lab_snmp_rps.py [--devices 1000] [--seconds 5] [--port 16161]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory.enums import DeviceKind
from lab.snmp import Credentials, serve_snmp
from lab.snmp.loadgen import LoadResult, measure_snmp_rps, targets_for
from lab.state import Device, Interface, LabNetwork

IFACES = (
    ("GigabitEthernet0/0/0", 8_000_000),
    ("GigabitEthernet0/0/1", 4_000_000),
    ("GigabitEthernet0/0/2", 2_048_000),
    ("GigabitEthernet0/1/0", 1_000_000_000),
    ("Loopback0", 8_000_000_000),
)


def synthetic_network(devices: int, port: int) -> LabNetwork:
    net = LabNetwork(clock=time.time)
    now = net.now()
    for n in range(devices):
        address = f"127.79.{n // 250}.{n % 250 + 1}"
        dev = Device(
            name=f"bench-r{n}",
            kind=DeviceKind.ROUTER,
            site=f"bench-site{n}",
            province="bench",
            vendor="cisco",
            platform="cisco_ios",
            model="ISR4331",
            mgmt_address=address,
            snmp_port=port,
            ssh_port=22,
            boot_time=now - 86_400.0,
        )
        dev.interfaces = [
            Interface(
                index=i,
                name=name,
                speed_bps=speed,
                in_rate_bps=1_000_000.0 if i == 1 else 2_000.0,
                out_rate_bps=1_500_000.0 if i == 1 else 2_000.0,
                mark=now,
            )
            for i, (name, speed) in enumerate(IFACES, start=1)
        ]
        net.devices[dev.name] = dev
        net.by_mgmt_address[address] = dev
    return net


async def measure(
    devices: int, seconds: float, port: int, window: int
) -> tuple[LoadResult, LoadResult, dict[str, int]]:
    net = synthetic_network(devices, port)
    v2c = {name: Credentials.v2c("bench-community") for name in net.devices}
    v3 = {name: Credentials.v3("bench", "bench-auth-key", "bench-priv-key") for name in net.devices}
    results: list[LoadResult] = []
    stats: dict[str, int] = {}
    for version, creds in (("v2c", v2c), ("v3", v3)):
        face = await serve_snmp(net, creds)
        try:
            targets = targets_for(face.endpoints, creds)
            results.append(
                await measure_snmp_rps(targets, version=version, seconds=seconds, window=window)
            )
            stats.update({f"{version}_{k}": v for k, v in face.stats.snapshot().items()})
        finally:
            face.close()
    return results[0], results[1], stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=16161)
    parser.add_argument("--window", type=int, default=64, help="requests in flight")
    args = parser.parse_args()
    v2c, v3, stats = asyncio.run(measure(args.devices, args.seconds, args.port, args.window))
    for r in (v2c, v3):
        print(
            f"{r.version}: {r.received} valid responses in {r.seconds:.1f} s "
            f"(sent {r.sent}, invalid {r.invalid}, window stalls {r.stalls}) = {r.rps:.0f}/s"
        )
    print("agent counters:", " ".join(f"{k}={v}" for k, v in sorted(stats.items())))
    print(f"devices={args.devices} snmp_v2c_rps={v2c.rps:.0f} snmp_v3_rps={v3.rps:.0f}")


if __name__ == "__main__":
    main()
