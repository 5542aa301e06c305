"""The SNMP face's sockets: loopback only, clear errors, clean shutdown, and the load meter."""

from __future__ import annotations

import asyncio
import resource
import socket

import pytest

from inventory.enums import SnmpPrivProtocol, SnmpVersion
from lab.build import SnmpCredential
from lab.snmp import Credentials, SnmpFaceError, oids, serve_snmp
from lab.snmp.client import SnmpClient
from lab.snmp.face import raise_fd_limit
from lab.snmp.loadgen import measure_snmp_rps, targets_for
from lab.state import LabNetwork

V2C = Credentials.v2c("face-test")


def _free_port(address: str = "127.77.1.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def _on_port(net: LabNetwork, port: int) -> None:
    for dev in net.devices.values():
        dev.snmp_port = port


def test_non_loopback_address_is_refused(tiny_net: LabNetwork) -> None:
    tiny_net.devices["r-a"].mgmt_address = "10.1.255.1"

    async def run() -> None:
        await serve_snmp(tiny_net, {"r-a": V2C})

    with pytest.raises(SnmpFaceError, match=r"r-a.*not a loopback"):
        asyncio.run(run())


def test_taken_address_names_the_device_and_releases_the_others(tiny_net: LabNetwork) -> None:
    port = _free_port()
    _on_port(tiny_net, port)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.77.2.1", port))  # r-b's address
    try:

        async def run() -> None:
            await serve_snmp(tiny_net, dict.fromkeys(tiny_net.devices, V2C))

        with pytest.raises(SnmpFaceError, match=r"r-b.*127\.77\.2\.1"):
            asyncio.run(run())
    finally:
        blocker.close()
    # r-a was bound before r-b failed: its socket must have been closed again
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.77.1.1", port))


def test_des_profile_is_refused_at_start(tiny_net: LabNetwork) -> None:
    _on_port(tiny_net, _free_port())
    des = Credentials.v3("ops", "auth-pass-1", "priv-pass-1", priv_protocol=SnmpPrivProtocol.DES)

    async def run() -> None:
        await serve_snmp(tiny_net, {"r-a": des})

    with pytest.raises(SnmpFaceError, match=r"r-a.*des"):
        asyncio.run(run())


def test_serves_the_lab_cores_credentials_and_closes(tiny_net: LabNetwork) -> None:
    """``lab.build.resolve_credentials`` output is accepted as is (structural typing)."""
    port = _free_port()
    _on_port(tiny_net, port)
    cred = SnmpCredential(profile="p", version=SnmpVersion.V2C, community="from-build")

    async def run() -> tuple[bytes | int | tuple[int, ...] | None, dict[str, tuple[str, int]]]:
        face = await serve_snmp(tiny_net, {"c-a": cred})  # the others have no credentials
        try:
            loop = asyncio.get_running_loop()

            def ask() -> bytes | int | tuple[int, ...] | None:
                with SnmpClient("127.77.1.3", port, cred) as c:
                    return c.get((*oids.SYS_NAME, 0)).value((*oids.SYS_NAME, 0)).value

            return await loop.run_in_executor(None, ask), dict(face.endpoints)
        finally:
            face.close()
            face.close()  # idempotent

    name, endpoints = asyncio.run(run())
    assert name == b"c-a"
    assert endpoints == {"c-a": ("127.77.1.3", port)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.77.1.3", port))  # released


def test_fd_limit_is_raised_within_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_fd_limit(min(soft, 64)) >= min(soft, 64)
    if hard != resource.RLIM_INFINITY:
        with pytest.raises(SnmpFaceError, match="hard limit"):
            raise_fd_limit(hard + 1)


def test_load_meter_counts_valid_answers(tiny_net: LabNetwork) -> None:
    """The bench's measurement, briefly: both versions get answers, none invalid."""
    _on_port(tiny_net, _free_port())
    routers = [n for n, d in tiny_net.devices.items() if d.interfaces]
    v3 = Credentials.v3("meter", "meter-auth-key", "meter-priv-key")

    async def run() -> list[tuple[int, int]]:
        out = []
        for version, cred in (("v2c", V2C), ("v3", v3)):
            creds = dict.fromkeys(routers, cred)
            face = await serve_snmp(tiny_net, creds)
            try:
                result = await measure_snmp_rps(
                    targets_for(face.endpoints, creds),
                    version=version,
                    seconds=0.5,
                    warmup=0.2,
                    window=8,
                )
            finally:
                face.close()
            out.append((result.received, result.invalid))
        return out

    (v2c_ok, v2c_bad), (v3_ok, v3_bad) = asyncio.run(run())
    assert v2c_ok > 50 and v3_ok > 50
    assert v2c_bad == v3_bad == 0
