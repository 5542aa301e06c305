"""Reliability: the scheduled engine keeps polling healthy lab devices while hostile agents
answer garbage (truncated, oversized, wrongly typed, with another request-id, not a response)
and a device does not answer at all; each bad device's failure is recorded with its cause."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

import pytest

from inventory.enums import DeviceKind, SnmpVersion
from monitors.latest import LatestStore
from monitors.poller import Poller, PollerConfig
from monitors.profiles import load_profiles
from monitors.snmp.base import FailureCause, SnmpCredentials, SnmpTarget
from monitors.snmp.pysnmp_transport import PysnmpTransport
from monitors.targets import PollTarget, TargetBuilder
from tests.monitors.poller_support import (
    MemorySink,
    dead_port,
    hostile,
    port_offset,
    running_lab,
    small_doc,
)

EXPECTED = {
    "truncated": {FailureCause.MALFORMED},
    "oversized": {FailureCause.MALFORMED},
    "wrong_type": {FailureCause.MALFORMED},
    "garbage": {FailureCause.MALFORMED},
    "wrong_request_id": {FailureCause.TIMEOUT},
    "not_response": {FailureCause.TIMEOUT, FailureCause.MALFORMED},
    "dead": {FailureCause.TIMEOUT},
}


def test_hostile_agents_and_a_dead_device_do_not_stop_the_poller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    doc = small_doc(monkeypatch, counties=1)
    offset = port_offset()

    async def scenario() -> tuple[Poller, LatestStore, list[str], MemorySink]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(running_lab(doc, offset))
            agents = {
                mode: await stack.enter_async_context(hostile(mode))
                for mode in EXPECTED
                if mode != "dead"
            }
            healthy = TargetBuilder(timeout_s=0.3, retries=0, port_offset=offset).from_document(doc)
            template = replace(healthy[0], kind=DeviceKind.ROUTER, vendor="acme", platform="x")
            creds = SnmpCredentials(SnmpVersion.V2C, community="public")
            ports = {mode: agent.port for mode, agent in agents.items()} | {"dead": dead_port()}
            bad = [
                replace(
                    template,
                    device=f"hostile-{mode}",
                    site="badlands",
                    links=(),
                    snmp=SnmpTarget(f"hostile-{mode}", "127.0.0.1", port, creds, 0.3, 0),
                )
                for mode, port in ports.items()
            ]
            sink, latest, transport = MemorySink(), LatestStore(), PysnmpTransport()
            stack.push_async_callback(transport.close)
            poller = Poller(
                transport,
                load_profiles(),
                sink=sink,
                latest=latest,
                config=PollerConfig(interval_s=0.5, max_backoff_s=0.5),
            )
            targets: list[PollTarget] = [*healthy, *bad]
            poller.set_targets(targets)
            task = asyncio.create_task(poller.run())
            await asyncio.sleep(2.5)
            poller.stop()
            await asyncio.wait_for(task, 5)
            return poller, latest, [t.device for t in healthy], sink

    with caplog.at_level(logging.WARNING):
        poller, latest, healthy, sink = asyncio.run(scenario())
    for name in healthy:
        polled = sink.of("device", device=name)
        assert len(polled) >= 3, name
        assert all(p.fields["reachable"] is True for p in polled), name
        snap = latest.device(name)
        assert snap is not None and snap.status.reachable is True
    for mode, causes in EXPECTED.items():
        snap = latest.device(f"hostile-{mode}")
        assert snap is not None and snap.status.reachable is False, mode
        assert snap.status.failure_cause in causes, (mode, snap.status)
        assert snap.status.consecutive_failures >= 2, mode  # polled again, with backoff
        assert not sink.of("interface", device=f"hostile-{mode}"), mode  # never garbage values
    assert sum(poller.stats.failures.values()) >= 2 * len(EXPECTED)
    crashes = [r for r in caplog.records if r.name == "asyncio" or r.levelno >= logging.ERROR]
    assert not crashes, [r.getMessage() for r in crashes]
