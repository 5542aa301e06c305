"""Shared by the poll engine's tests: a memory sink, the lab, net-snmp's snmpd, a hostile agent.

Real peers only: the lab's agents (v2c and v3), net-snmp's ``snmpd`` started on 127.0.0.1 with
its own configuration, and ``HostileAgent``, a small asyncio UDP responder that answers SNMP v2c
requests badly on purpose (truncated, oversized, wrongly typed, with another request-id,
garbage).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]
from pysnmp.proto import rfc1902  # type: ignore[import-untyped]
from pysnmp.proto.api import v2c  # type: ignore[import-untyped]

from inventory.document import CredentialProfileDoc, InventoryDoc
from inventory.enums import CredentialKind, SnmpVersion
from inventory.generator import generate
from inventory.secrets import SecretRef
from lab.build import lab_secret_defaults
from lab.runner import Lab, LabConfig
from monitors.sinks.base import Sample
from tests.harness import missing_binary

V2C_PROFILE = "snmp-v2c-test"
V2C_COMMUNITY_ENV = "TIANDI_TEST_SNMP_COMMUNITY"


class MemorySink:
    """A ``MetricSink`` that keeps every point, in order."""

    def __init__(self) -> None:
        self.points: list[Sample] = []

    async def write(self, points: Sequence[Sample]) -> None:
        self.points.extend(points)

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def of(self, measurement: str, **tags: str) -> list[Sample]:
        return [
            p
            for p in self.points
            if p.measurement == measurement and all(p.tags.get(k) == v for k, v in tags.items())
        ]


def port_offset() -> int:
    return random.Random().randrange(20_000, 60_000, 10)


def small_doc(
    monkeypatch: pytest.MonkeyPatch, *, provinces: int = 1, counties: int = 3, seed: int = 1
) -> InventoryDoc:
    """A generated network (v3 authPriv SHA/AES) with the lab's secrets in the environment."""
    doc = generate(provinces=provinces, counties=counties, seed=seed)
    for name, value in lab_secret_defaults(doc).items():
        monkeypatch.setenv(name, value)
    return doc


def with_v2c(doc: InventoryDoc, monkeypatch: pytest.MonkeyPatch, devices: set[str]) -> None:
    """Move ``devices`` to an SNMP v2c profile (community in the environment)."""
    monkeypatch.setenv(V2C_COMMUNITY_ENV, "tiandi-lab-v2c")
    doc.credential_profiles.append(
        CredentialProfileDoc(
            name=V2C_PROFILE,
            kind=CredentialKind.SNMP,
            snmp_version=SnmpVersion.V2C,
            community=SecretRef("env", V2C_COMMUNITY_ENV),
        )
    )
    for site in doc.sites:
        for dev in site.devices:
            if dev.name in devices:
                dev.snmp_profile = V2C_PROFILE


@contextlib.asynccontextmanager
async def running_lab(doc: InventoryDoc, offset: int) -> AsyncIterator[Lab]:
    lab = await Lab.start(
        LabConfig(doc=doc, faces=("snmp",), control=None, port_offset=offset, traffic_period_s=None)
    )
    try:
        yield lab
    finally:
        await lab.stop()


# ---- net-snmp snmpd -------------------------------------------------------------------------


@dataclass
class Snmpd:
    host: str
    port: int
    community: str
    user: str
    auth_key: str
    priv_key: str
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, tool: str, *oids: str, v3: bool = False) -> dict[str, str]:
        """Run ``snmpget``/``snmpwalk`` (numeric OIDs, no MIBs); {oid: value text}."""
        auth = (
            ["-v3", "-l", "authPriv", "-u", self.user, "-a", "SHA", "-A", self.auth_key,
             "-x", "AES", "-X", self.priv_key]
            if v3
            else ["-v2c", "-c", self.community]
        )  # fmt: skip
        cmd = [tool, *auth, "-On", "-Oe", "-Ot", "-t", "2", "-r", "1",
               f"{self.host}:{self.port}", *oids]  # fmt: skip
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=20, env=self.env, check=False
        )
        assert out.returncode == 0, out.stderr
        values: dict[str, str] = {}
        for line in out.stdout.splitlines():
            oid, _, rest = line.partition(" = ")
            values[oid.lstrip(".")] = rest.strip()
        return values


@contextlib.contextmanager
def snmpd(tmp: Path) -> Iterator[Snmpd]:
    """net-snmp's snmpd on 127.0.0.1:<free port>: a v2c community and a v3 SHA/AES user."""
    binary = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not os.access(binary, os.X_OK) or shutil.which("snmpget") is None:
        missing_binary("net-snmp's snmpd and tools", "snmpd snmp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    agent = Snmpd(
        "127.0.0.1",
        port,
        community="tiandi-poller-test",
        user="tiandi-test",
        auth_key="tiandi-test-auth-key",
        priv_key="tiandi-test-priv-key",
        env={**os.environ, "MIBS": "", "MIBDIRS": str(tmp)},
    )
    conf = tmp / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:127.0.0.1:{port}\n"
        f"rocommunity {agent.community} 127.0.0.1\n"
        f'createUser {agent.user} SHA "{agent.auth_key}" AES "{agent.priv_key}"\n'
        f"rouser {agent.user} priv\n"
        "sysName tiandi-snmpd\n",
        encoding="ascii",
    )
    log = tmp / "snmpd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(tmp / "snmpd.pid"),
             f"--persistentDir={tmp / 'persist'}"],
            stdout=out, stderr=subprocess.STDOUT, env=agent.env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            probe = subprocess.run(
                ["snmpget", "-v2c", "-c", agent.community, "-t", "0.3", "-r", "0", "-On",
                 f"127.0.0.1:{port}", "1.3.6.1.2.1.1.5.0"],
                capture_output=True, env=agent.env, check=False,
            )  # fmt: skip
            if probe.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"snmpd did not start: {log.read_text(errors='replace')[-800:]}")
        yield agent
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- a hostile agent ------------------------------------------------------------------------

MODES = (
    "ok",
    "truncated",
    "oversized",
    "wrong_type",
    "wrong_request_id",
    "garbage",
    "not_response",
)
_MARKER = b"\xab\xcd\xef\x01"


def _response(data: bytes, mode: str) -> bytes:
    """The answer to a v2c request ``data``, spoiled as ``mode`` says."""
    msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
    req = v2c.apiMessage.get_pdu(msg)
    asked = [oid for oid, _ in v2c.apiPDU.get_varbinds(req)]
    if mode == "not_response":
        return bytes(encoder.encode(msg))  # the request itself, echoed: a GetRequest PDU
    rsp = v2c.apiMessage.get_response(msg)
    pdu = v2c.apiMessage.get_pdu(rsp)
    if mode == "oversized":
        many = [(rfc1902.ObjectName((1, 3, 6, 1, 4, 1, 99, i)), rfc1902.OctetString(b"x" * 20))
                for i in range(400)]  # fmt: skip
        v2c.apiPDU.set_varbinds(pdu, many)
    elif mode == "wrong_type":
        v2c.apiPDU.set_varbinds(pdu, [(oid, rfc1902.OctetString(_MARKER)) for oid in asked])
    else:
        v2c.apiPDU.set_varbinds(pdu, [(oid, rfc1902.TimeTicks(4242)) for oid in asked])
    if mode == "wrong_request_id":
        v2c.apiPDU.set_request_id(pdu, (int(v2c.apiPDU.get_request_id(req)) + 1) % 2**31)
    out = bytes(encoder.encode(rsp))
    if mode == "truncated":
        return out[: len(out) // 2]
    if mode == "wrong_type":
        # An application tag SNMP does not define (APPLICATION 9) where the values are.
        return out.replace(b"\x04\x04" + _MARKER, b"\x49\x04" + _MARKER)
    return out


class HostileAgent(asyncio.DatagramProtocol):
    """Answers every SNMP v2c request on 127.0.0.1:<port> the way ``mode`` says."""

    def __init__(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.requests += 1
        assert self.transport is not None
        if self.mode == "garbage":
            self.transport.sendto(random.randbytes(200), addr)
            return
        try:
            answer = _response(data, self.mode)
        except Exception:  # not v2c: a hostile agent says nothing
            return
        self.transport.sendto(answer, addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


@contextlib.asynccontextmanager
async def hostile(mode: str, host: str = "127.0.0.1") -> AsyncIterator[HostileAgent]:
    loop = asyncio.get_running_loop()
    transport, agent = await loop.create_datagram_endpoint(
        lambda: HostileAgent(mode), local_addr=(host, 0)
    )
    try:
        yield agent
    finally:
        transport.close()


def dead_port() -> int:
    """A UDP port on 127.0.0.1 where nothing listens (an unreachable device)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
