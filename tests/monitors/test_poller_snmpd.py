"""The engine with the generic IF-MIB profile against net-snmp's ``snmpd`` — a real third-party
agent — over v2c and v3 authPriv, checked against what ``snmpwalk``/``snmpget`` read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from inventory.enums import DeviceKind, SnmpAuthProtocol, SnmpPrivProtocol, SnmpVersion
from monitors.latest import LatestStore
from monitors.poller import Poller
from monitors.profiles import load_profiles
from monitors.snmp.base import SnmpCredentials, SnmpTarget
from monitors.snmp.pysnmp_transport import PysnmpTransport
from monitors.targets import PollTarget
from tests.monitors.poller_support import MemorySink, Snmpd, snmpd

IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_HC_IN = "1.3.6.1.2.1.31.1.1.1.6"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"


def target(agent: Snmpd, name: str, v3: bool) -> PollTarget:
    creds = (
        SnmpCredentials(
            SnmpVersion.V3,
            user=agent.user,
            auth_protocol=SnmpAuthProtocol.SHA,
            auth_key=agent.auth_key,
            priv_protocol=SnmpPrivProtocol.AES,
            priv_key=agent.priv_key,
        )
        if v3
        else SnmpCredentials(SnmpVersion.V2C, community=agent.community)
    )
    return PollTarget(
        device=name,
        site="lab-host",
        province=None,
        kind=DeviceKind.ROUTER,
        vendor="net-snmp",
        platform="linux",
        model=None,
        credential_profile="snmpd-test",
        snmp=SnmpTarget(name, agent.host, agent.port, creds, timeout_s=1.0, retries=1),
    )


def by_index(values: dict[str, str], column: str) -> dict[str, str]:
    return {oid[len(column) + 1 :]: v for oid, v in values.items() if oid.startswith(column + ".")}


def number(text: str) -> int:
    return int(text.split(":", 1)[1].strip().split()[0])


@pytest.mark.parametrize("v3", [False, True], ids=["v2c", "v3-authPriv"])
def test_snmpd_interfaces_as_snmpwalk_reads_them(tmp_path: Path, v3: bool) -> None:
    with snmpd(tmp_path) as agent:
        names = by_index(agent.cli("snmpwalk", IF_NAME, v3=v3), IF_NAME)
        oper = by_index(agent.cli("snmpwalk", IF_OPER, v3=v3), IF_OPER)
        speed = by_index(agent.cli("snmpwalk", IF_HIGH_SPEED, v3=v3), IF_HIGH_SPEED)
        before = by_index(agent.cli("snmpwalk", IF_HC_IN, v3=v3), IF_HC_IN)
        sink, latest = MemorySink(), LatestStore()

        async def scenario() -> None:
            transport = PysnmpTransport()
            poller = Poller(transport, load_profiles(), sink=sink, latest=latest)
            poller.set_targets([target(agent, "snmpd", v3)])
            try:
                for i in range(2):
                    if i:
                        await asyncio.sleep(0.6)
                    (result,) = await poller.poll_once()
                    assert result.ok, result
                    assert result.profile == "generic_router"
            finally:
                await transport.close()

        asyncio.run(scenario())
        after = by_index(agent.cli("snmpwalk", IF_HC_IN, v3=v3), IF_HC_IN)

    assert names, "snmpd reports no interfaces"
    polls = sink.of("interface")
    assert len(polls) == 2 * len(names)
    first, second = polls[: len(names)], polls[len(names) :]
    index_of = {v.removeprefix("STRING: ").strip('"'): k for k, v in names.items()}
    assert {p.tags["ifname"] for p in first} == set(index_of)
    for p in first:
        index = index_of[p.tags["ifname"]]
        assert p.fields["oper_status"] == number(oper[index])
        assert p.fields["speed_bps"] == number(speed[index]) * 1e6
        assert number(before[index]) <= p.fields["in_octets"] <= number(after[index])
        assert "in_bps" not in p.fields
    for p in second:
        assert isinstance(p.fields["in_bps"], float) and p.fields["in_bps"] >= 0
    (uptime, _) = [p.fields["uptime_s"] for p in sink.of("device")]
    assert isinstance(uptime, float) and 0 < uptime < 60  # this snmpd started seconds ago
    snap = latest.device("snmpd")
    assert snap is not None and set(snap.interfaces) == set(index_of)
