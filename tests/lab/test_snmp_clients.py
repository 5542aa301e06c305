"""The lab's SNMP agents seen by clients nobody here wrote: net-snmp's tools and pysnmp 7.

The agents run on their own event loop in a background thread (``BackgroundSnmpFace``) over the
``tiny_net`` fixture network, each device on its own ``127.77.x.y`` address and one free high
port (no root needed; the lab uses 161). Values are checked against the state, then the state
is changed (link cut, reboot, counters near 2**32) and the clients must see it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inventory.enums import SnmpAuthProtocol, SnmpPrivProtocol
from lab.mibs import COMPILED_DIR
from lab.snmp import SnmpFace, oids
from lab.snmp.background import BackgroundSnmpFace
from lab.snmp.ber import format_oid
from lab.snmp.usm import Credentials
from lab.state import COUNTER32, LabNetwork

COMMUNITY = "county-ro-7"
AUTH_KEY, PRIV_KEY = "lab-auth-key-1", "lab-priv-key-1"
V3_SHA_AES = Credentials.v3("tiandi", AUTH_KEY, PRIV_KEY)
V3_SHA256_AES256 = Credentials.v3(
    "tiandi2",
    AUTH_KEY,
    PRIV_KEY,
    auth_protocol=SnmpAuthProtocol.SHA256,
    priv_protocol=SnmpPrivProtocol.AES256,
)
CREDS = {
    "r-a": V3_SHA_AES,
    "t-a": V3_SHA_AES,
    "c-a": Credentials.v2c(COMMUNITY),
    "r-b": Credentials.v2c(COMMUNITY),
    "c-b": Credentials.v2c(COMMUNITY),
    "r-hub": V3_SHA256_AES256,
    "mcu-hub": Credentials.v2c(COMMUNITY),
}

needs_netsnmp = pytest.mark.skipif(
    shutil.which("snmpget") is None and os.environ.get("CI") != "true",
    reason="net-snmp client tools not installed (apt-get install snmp)",
)


def _free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Lab:
    net: LabNetwork
    face: SnmpFace
    port: int

    def at(self, device: str) -> str:
        return f"{self.net.devices[device].mgmt_address}:{self.port}"


@pytest.fixture
def lab(tiny_net: LabNetwork, tmp_path: Path) -> Iterator[Lab]:
    port = _free_udp_port("127.77.1.1")
    for dev in tiny_net.devices.values():
        dev.snmp_port = port
    with BackgroundSnmpFace(tiny_net, CREDS) as face:
        yield Lab(tiny_net, face, port)


# ---- net-snmp -------------------------------------------------------------------------------


def netsnmp(tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=os.environ.get("TMPDIR", "/tmp"))
    done = subprocess.run(
        [tool, "-On", "-Oe", "-Ot", "-Oq", "-r", "0", "-t", "2", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def parse(output: str) -> dict[str, str]:
    """'-Oq' output ('.1.3.6... value') as {oid: value}."""
    out: dict[str, str] = {}
    for line in output.splitlines():
        oid, _, value = line.partition(" ")
        out[oid.lstrip(".")] = value.strip().strip('"')
    return out


def v3_args(creds: Credentials, auth: str = "SHA", priv: str = "AES") -> list[str]:
    assert creds.user and creds.auth_key and creds.priv_key
    return ["-v3", "-l", "authPriv", "-u", creds.user, "-a", auth, "-A", creds.auth_key,
            "-x", priv, "-X", creds.priv_key]  # fmt: skip


def o(arcs: tuple[int, ...], *index: int) -> str:
    return format_oid((*arcs, *index))


@needs_netsnmp
def test_netsnmp_v2c_get_system_group(lab: Lab) -> None:
    done = netsnmp(
        "snmpget", "-v2c", "-c", COMMUNITY, lab.at("r-b"),
        o(oids.SYS_UPTIME, 0), o(oids.SYS_OBJECT_ID, 0), o(oids.SYS_NAME, 0),
    )  # fmt: skip
    got = parse(done.stdout)
    assert got[o(oids.SYS_UPTIME, 0)] == str(lab.net.devices["r-b"].uptime_ticks(lab.net.now()))
    assert got[o(oids.SYS_OBJECT_ID, 0)] == "." + format_oid(oids.CISCO_ISR4331)
    assert got[o(oids.SYS_NAME, 0)] == "r-b"


@needs_netsnmp
def test_netsnmp_v2c_bulkwalk_if_tables(lab: Lab) -> None:
    router = lab.net.devices["r-b"]
    table = parse(netsnmp("snmpbulkwalk", "-v2c", "-c", COMMUNITY, lab.at("r-b"),
                          "1.3.6.1.2.1.2.2").stdout)  # fmt: skip
    xtable = parse(netsnmp("snmpbulkwalk", "-v2c", "-c", COMMUNITY, lab.at("r-b"),
                           "1.3.6.1.2.1.31.1.1").stdout)  # fmt: skip
    n = len(router.interfaces)
    assert sum(1 for k in table if k.startswith(o(oids.IF_DESCR) + ".")) == n
    assert table[o(oids.IF_DESCR, 1)] == "GigabitEthernet0/0/0"
    assert table[o(oids.IF_OPER_STATUS, 1)] == "1"
    assert xtable[o(oids.IF_NAME, n)] == "Lo0"
    assert xtable[o(oids.IF_ALIAS, 1)] == "site-b-primary"
    hc_in = int(xtable[o(oids.IF_HC_IN_OCTETS, 1)])
    assert hc_in == router.interfaces[0].octets(lab.net.now())[0]
    assert int(table[o(oids.IF_IN_OCTETS, 1)]) == hc_in % COUNTER32


@needs_netsnmp
def test_netsnmp_v3_authpriv_get_and_walk(lab: Lab) -> None:
    got = parse(netsnmp("snmpget", *v3_args(V3_SHA_AES), lab.at("r-a"),
                        o(oids.SYS_NAME, 0), o(oids.IF_HC_OUT_OCTETS, 1)).stdout)  # fmt: skip
    assert got[o(oids.SYS_NAME, 0)] == "r-a"
    iface = lab.net.devices["r-a"].interfaces[0]
    assert int(got[o(oids.IF_HC_OUT_OCTETS, 1)]) == iface.octets(lab.net.now())[1]
    sat = parse(netsnmp("snmpbulkwalk", *v3_args(V3_SHA_AES), lab.at("t-a"),
                        format_oid(oids.SATELLITE)).stdout)  # fmt: skip
    assert sat[o(oids.SAT_ESNO, 0)] == "104"
    assert sat[o(oids.SAT_MODCOD, 0)] == "13"
    assert len(sat) == 12


@needs_netsnmp
def test_netsnmp_v3_sha256_aes256(lab: Lab) -> None:
    done = netsnmp("snmpget", *v3_args(V3_SHA256_AES256, "SHA-256", "AES-256"), lab.at("r-hub"),
                   o(oids.SYS_NAME, 0), check=False)  # fmt: skip
    if "Invalid privacy protocol" in done.stderr or "Invalid authentication" in done.stderr:
        pytest.skip(f"this net-snmp build lacks SHA-256/AES-256: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert parse(done.stdout)[o(oids.SYS_NAME, 0)] == "r-hub"


@needs_netsnmp
def test_netsnmp_wrong_credentials_fail(lab: Lab) -> None:
    wrong = Credentials.v3("tiandi", "not-the-auth-key", PRIV_KEY)
    done = netsnmp("snmpget", *v3_args(wrong), lab.at("r-a"), o(oids.SYS_NAME, 0), check=False)
    assert done.returncode != 0
    assert re.search(r"Authentication failure|authentication", done.stderr, re.IGNORECASE)
    done = netsnmp("snmpget", "-v2c", "-c", "guess", "-t", "1", lab.at("r-b"),
                   o(oids.SYS_NAME, 0), check=False)  # fmt: skip
    assert done.returncode != 0 and "Timeout" in done.stderr
    assert lab.face.stats.reports["usm_wrong_digest"] >= 1
    assert lab.face.stats.drops["bad_community"] >= 1


@needs_netsnmp
def test_netsnmp_sees_state_changes(lab: Lab) -> None:
    router = lab.net.devices["r-b"]
    iface = router.interfaces[0]
    # the carrier cuts the line
    iface.carrier_up = False
    got = parse(netsnmp("snmpget", "-v2c", "-c", COMMUNITY, lab.at("r-b"),
                        o(oids.IF_OPER_STATUS, 1), o(oids.IF_ADMIN_STATUS, 1)).stdout)  # fmt: skip
    assert (got[o(oids.IF_OPER_STATUS, 1)], got[o(oids.IF_ADMIN_STATUS, 1)]) == ("2", "1")
    # the 32-bit counter wraps while the 64-bit one carries on
    iface.settle(lab.net.now())
    iface.in_octets, iface.in_rate_bps = float(COUNTER32 - 500), 8_000.0
    lab.net.clock.advance(2.0)  # type: ignore[attr-defined]
    got = parse(netsnmp("snmpget", "-v2c", "-c", COMMUNITY, lab.at("r-b"),
                        o(oids.IF_IN_OCTETS, 1), o(oids.IF_HC_IN_OCTETS, 1)).stdout)  # fmt: skip
    assert got[o(oids.IF_IN_OCTETS, 1)] == "1500"
    assert got[o(oids.IF_HC_IN_OCTETS, 1)] == str(COUNTER32 + 1500)
    # a reboot: sysUpTime starts again
    router.boot_time = lab.net.now()
    lab.net.clock.advance(1.5)  # type: ignore[attr-defined]
    got = parse(netsnmp("snmpget", "-v2c", "-c", COMMUNITY, lab.at("r-b"),
                        o(oids.SYS_UPTIME, 0)).stdout)  # fmt: skip
    assert got[o(oids.SYS_UPTIME, 0)] == "150"
    # powered off: no answer at all
    router.powered = False
    done = netsnmp("snmpget", "-v2c", "-c", COMMUNITY, "-t", "1", lab.at("r-b"),
                   o(oids.SYS_UPTIME, 0), check=False)  # fmt: skip
    assert done.returncode != 0 and "Timeout" in done.stderr


@needs_netsnmp
def test_netsnmp_v3_follows_a_reboot(lab: Lab) -> None:
    """After a reboot engineBoots grows; net-snmp re-synchronises from the time-window report."""
    args = [*v3_args(V3_SHA_AES), lab.at("r-a"), o(oids.SNMP_ENGINE_BOOTS, 0)]
    before = int(parse(netsnmp("snmpget", *args).stdout)[o(oids.SNMP_ENGINE_BOOTS, 0)])
    lab.net.devices["r-a"].boot_time = lab.net.now()
    after = int(parse(netsnmp("snmpget", *args).stdout)[o(oids.SNMP_ENGINE_BOOTS, 0)])
    assert after == before + 1


# ---- pysnmp 7 (what Tiandi's poller uses) ---------------------------------------------------


def test_pysnmp_v3_sha_aes_get_and_bulk_walk(lab: Lab) -> None:
    from pysnmp.hlapi.v3arch import asyncio as hl

    async def run() -> tuple[list[tuple[str, object]], list[str]]:
        engine = hl.SnmpEngine()
        try:
            user = hl.UsmUserData(
                "tiandi",
                AUTH_KEY,
                PRIV_KEY,
                authProtocol=hl.usmHMACSHAAuthProtocol,
                privProtocol=hl.usmAesCfb128Protocol,
            )
            target = await hl.UdpTransportTarget.create(
                ("127.77.1.1", lab.port), timeout=2, retries=0
            )
            err_ind, err_stat, _idx, vbs = await hl.get_cmd(
                engine,
                user,
                target,
                hl.ContextData(),
                hl.ObjectType(hl.ObjectIdentity(o(oids.SYS_NAME, 0))),
                hl.ObjectType(hl.ObjectIdentity(o(oids.IF_HC_IN_OCTETS, 1))),
                hl.ObjectType(hl.ObjectIdentity(o(oids.SYS_UPTIME, 0))),
            )
            assert err_ind is None and int(err_stat) == 0, (err_ind, err_stat)
            got = [(str(vb[0]), vb[1]) for vb in vbs]
            names: list[str] = []
            async for err_ind, err_stat, _idx, row in hl.bulk_walk_cmd(
                engine,
                user,
                target,
                hl.ContextData(),
                0,
                25,
                hl.ObjectType(hl.ObjectIdentity(o(oids.IF_NAME))),
                lexicographicMode=False,
            ):
                assert err_ind is None and int(err_stat) == 0, (err_ind, err_stat)
                names.extend(str(vb[1]) for vb in row)
            return got, names
        finally:
            engine.close_dispatcher()

    got, names = asyncio.run(run())
    router = lab.net.devices["r-a"]
    assert str(got[0][1]) == "r-a"
    assert int(got[1][1]) == router.interfaces[0].octets(lab.net.now())[0]  # type: ignore[call-overload]
    assert int(got[2][1]) == router.uptime_ticks(lab.net.now())  # type: ignore[call-overload]
    assert names == ["Gi0/0/0", "Gi0/0/1", "Gi0/0/2", "Gi0/1/0", "Lo0"]


def test_pysnmp_resolves_lab_mib_names(lab: Lab) -> None:
    """The poller reads satellite objects by name through the shipped compiled MIB."""
    from pysnmp.hlapi.v3arch import asyncio as hl

    async def run() -> dict[str, str]:
        engine = hl.SnmpEngine()
        try:
            user = hl.UsmUserData("tiandi", AUTH_KEY, PRIV_KEY,
                                  authProtocol=hl.usmHMACSHAAuthProtocol,
                                  privProtocol=hl.usmAesCfb128Protocol)  # fmt: skip
            target = await hl.UdpTransportTarget.create(("127.77.1.2", lab.port), timeout=2)
            names = ("satModemEsNo", "satModemModcod", "satModemDemodLock")
            err_ind, err_stat, _idx, vbs = await hl.get_cmd(
                engine,
                user,
                target,
                hl.ContextData(),
                *(
                    hl.ObjectType(
                        hl.ObjectIdentity("TIANDI-LAB-MIB", n, 0).add_mib_source(str(COMPILED_DIR))
                    )
                    for n in names
                ),
            )
            assert err_ind is None and int(err_stat) == 0, (err_ind, err_stat)
            return {vb[0].prettyPrint(): vb[1].prettyPrint() for vb in vbs}
        finally:
            engine.close_dispatcher()

    got = asyncio.run(run())
    assert got == {
        "TIANDI-LAB-MIB::satModemEsNo.0": "104",
        "TIANDI-LAB-MIB::satModemModcod.0": "psk8x2by3",
        "TIANDI-LAB-MIB::satModemDemodLock.0": "locked",
    }


def test_pysnmp_sha256_aes256_and_wrong_digest(lab: Lab) -> None:
    from pysnmp.hlapi.v3arch import asyncio as hl

    async def get(auth_key: str) -> tuple[object, object]:
        engine = hl.SnmpEngine()
        try:
            user = hl.UsmUserData(
                "tiandi2",
                auth_key,
                PRIV_KEY,
                authProtocol=hl.usmHMAC192SHA256AuthProtocol,
                privProtocol=hl.usmAesBlumenthalCfb256Protocol,
            )
            target = await hl.UdpTransportTarget.create(
                ("127.77.3.1", lab.port), timeout=1, retries=0
            )
            err_ind, _stat, _idx, vbs = await hl.get_cmd(
                engine, user, target, hl.ContextData(),
                hl.ObjectType(hl.ObjectIdentity(o(oids.SYS_NAME, 0))),
            )  # fmt: skip
            return err_ind, (str(vbs[0][1]) if vbs else None)
        finally:
            engine.close_dispatcher()

    assert asyncio.run(get(AUTH_KEY)) == (None, "r-hub")
    err_ind, _ = asyncio.run(get("a-wrong-auth-key"))
    assert "Wrong SNMP PDU digest" in str(err_ind)


def test_pysnmp_v2c_bulk_walk_mcu(lab: Lab) -> None:
    from pysnmp.hlapi.v3arch import asyncio as hl

    lab.net.devices["mcu-hub"].conferences = {"plenary": ["c-a", "c-b"]}

    async def run() -> list[str]:
        engine = hl.SnmpEngine()
        try:
            target = await hl.UdpTransportTarget.create(("127.77.3.4", lab.port), timeout=2)
            values: list[str] = []
            async for err_ind, err_stat, _idx, row in hl.bulk_walk_cmd(
                engine, hl.CommunityData(COMMUNITY), target, hl.ContextData(), 0, 10,
                hl.ObjectType(hl.ObjectIdentity(format_oid(oids.MCU))),
                lexicographicMode=False,
            ):  # fmt: skip
                assert err_ind is None and int(err_stat) == 0
                values.extend(vb[1].prettyPrint() for vb in row)
            return values
        finally:
            engine.close_dispatcher()

    values = asyncio.run(run())
    # ports total/in use, conferences, name, participants, 2 x (name, state, rate)
    assert values == ["12", "2", "1", "plenary", "2", "c-a", "c-b", "2", "2", "0", "0"]
