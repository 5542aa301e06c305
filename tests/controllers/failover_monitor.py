"""A probe-and-health process for the failover lab rig: prints every health change as JSON.

``python -m tests.controllers.failover_monitor SPEC.json`` probes the links the spec lists
(``monitors.probes.ProbeEngine``), evaluates them with ``monitors.health.HealthBoard`` every
``every_s`` and writes one JSON line per ``LinkHealthReport`` that changed. Run apart from the
failover engine, so that the SSH work of a mass event (dozens of netmiko threads) does not hold
the prober's event loop back and inflate the RTT and jitter it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from inventory.enums import LinkRole
from monitors.health import HealthBoard, HealthPolicy, LinkEvidence, LinkRef
from monitors.linkstate import Health, LinkHealthReport, LinkQuality
from monitors.probes import ProbeConfig, ProbeEngine, ProbeTarget


def encode(report: LinkHealthReport) -> str:
    body = asdict(report)
    body["health"] = report.health.value
    return json.dumps(body)


def decode(line: str) -> LinkHealthReport:
    body: dict[str, Any] = json.loads(line)
    quality = body.pop("quality")
    return LinkHealthReport(
        **{**body, "health": Health(body["health"])},
        quality=LinkQuality(**quality) if quality is not None else None,
    )


async def run(spec: dict[str, Any]) -> None:
    targets = [ProbeTarget(**t) for t in spec["targets"]]
    prober = ProbeEngine(ProbeConfig(**spec["probes"]), targets=targets)
    policies = {LinkRole(role): HealthPolicy(**p) for role, p in spec["health"].items()}
    board = HealthBoard(policies=policies)
    board.set_links([LinkRef(t.link, t.site, LinkRole(t.role)) for t in targets], time.monotonic())
    await prober.start()
    every = float(spec["every_s"])
    out = sys.stdout
    try:
        while True:
            now = time.monotonic()
            readings = prober.readings()
            lines = []
            for ref in board.links():
                report = board.evaluate(ref.link, LinkEvidence(probe=readings.get(ref.link)), now)
                if report is not None:
                    lines.append(encode(report))
            if lines:
                out.write("\n".join(lines) + "\n")
                out.flush()
            await asyncio.sleep(every)
    finally:
        await prober.close()


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(run(spec))


if __name__ == "__main__":
    main()
