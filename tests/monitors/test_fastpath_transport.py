"""``FastV2cTransport`` on the wire: the same answers as ``PysnmpTransport``, hostile agents.

Real peers only: net-snmp's ``snmpd`` on 127.0.0.1 (a high port, its own config), the lab's
v3 agent, and a hostile responder written here that answers what pysnmp and the fast path send
with wrong request-ids, truncated, oversized, wrongly typed or foreign datagrams. For the
hostile cases each transport meets a fresh responder with the same script, and the fast path's
result must be the pysnmp transport's (the fast path hands what it does not understand to
pysnmp, so the outcome is pysnmp's).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]
from pysnmp.proto import rfc1902, rfc1905  # type: ignore[import-untyped]
from pysnmp.proto.api import v2c  # type: ignore[import-untyped]

from inventory.enums import SnmpAuthProtocol, SnmpPrivProtocol, SnmpVersion
from inventory.generator import generate
from lab.build import lab_secret_defaults
from lab.runner import Lab, LabConfig
from monitors.snmp import ber
from monitors.snmp.base import (
    FailureCause,
    GetResult,
    Oid,
    PollFailure,
    SnmpCredentials,
    SnmpTarget,
    ValueKind,
    VarBind,
)
from monitors.snmp.fastpath import FastV2cTransport, check_bulk_answer, check_get_answer
from monitors.snmp.pysnmp_transport import PysnmpTransport, _check_bulk, _check_get
from tests.harness import missing_binary

COMMUNITY = "tiandi-transport-test"
SYSTEM: Oid = (1, 3, 6, 1, 2, 1, 1)
SYS_DESCR: Oid = (*SYSTEM, 1, 0)
SYS_OBJECT_ID: Oid = (*SYSTEM, 2, 0)
SYS_UPTIME: Oid = (*SYSTEM, 3, 0)
SYS_NAME: Oid = (*SYSTEM, 5, 0)
IF_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
VOLATILE = frozenset({ValueKind.COUNTER32, ValueKind.COUNTER64, ValueKind.TIMETICKS})


def v2c_target(host: str, port: int, *, community: str = COMMUNITY, **kw: Any) -> SnmpTarget:
    return SnmpTarget(
        device="dev-under-test",
        host=host,
        port=port,
        credentials=SnmpCredentials(SnmpVersion.V2C, community=community),
        **{"timeout_s": 1.0, "retries": 1, **kw},
    )


def stable(result: GetResult) -> GetResult:
    """Counters and TimeTicks move between two requests: compare their OIDs and kinds only."""
    if isinstance(result, PollFailure):
        return result
    return [replace(vb, value=None) if vb.kind in VOLATILE else vb for vb in result]


def fast_transport() -> FastV2cTransport:
    return FastV2cTransport(PysnmpTransport(), local_host="127.0.0.1")


# ---- net-snmp snmpd ---------------------------------------------------------------------------


@dataclass
class Snmpd:
    host: str
    port: int


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    binary = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not os.access(binary, os.X_OK):
        missing_binary("net-snmp's snmpd", "snmpd")
    tmp = tmp_path_factory.mktemp("snmpd")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:127.0.0.1:{port}\nrocommunity {COMMUNITY} 127.0.0.1\n"
        "sysName tiandi-snmpd\n",
        encoding="ascii",
    )
    log = tmp / "snmpd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(tmp / "pid"),
             f"--persistentDir={tmp / 'persist'}"],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "MIBS": "", "MIBDIRS": str(tmp)},
        )  # fmt: skip
    try:
        message = ber.request_template(COMMUNITY.encode(), ber.GET_REQUEST, [SYS_NAME]).render(
            ber.REQUEST_ID_MIN
        )
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while True:
                s.sendto(message, ("127.0.0.1", port))
                try:
                    s.recv(65_535)
                    break
                except TimeoutError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"snmpd did not start: {log.read_text()[-600:]}")
        yield Snmpd("127.0.0.1", port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def both(
    call: Callable[[Any], Any],
) -> tuple[GetResult, GetResult, FastV2cTransport]:
    """The same call through the fast path and through the pysnmp transport alone."""
    fast, reference = fast_transport(), PysnmpTransport()
    try:
        return await call(fast), await call(reference), fast
    finally:
        await fast.close()
        await reference.close()


def test_get_gives_what_pysnmp_gives(snmpd: Snmpd) -> None:
    target = v2c_target(snmpd.host, snmpd.port)
    oids = [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME, (*SYSTEM, 99, 0), (*SYSTEM, 3, 1)]
    mine, theirs, fast = asyncio.run(both(lambda t: t.get(target, oids)))
    assert stable(mine) == stable(theirs)
    assert isinstance(mine, list)
    assert [vb.kind for vb in mine] == [
        ValueKind.OCTETS,
        ValueKind.OID,
        ValueKind.TIMETICKS,
        ValueKind.OCTETS,
        ValueKind.NO_SUCH_OBJECT,
        ValueKind.NO_SUCH_INSTANCE,
    ]
    assert mine[3].value == b"tiandi-snmpd"
    assert fast.stats.responses == 1
    assert fast.stats.delegated_total() == 0


def test_bulk_gives_what_pysnmp_gives(snmpd: Snmpd) -> None:
    target = v2c_target(snmpd.host, snmpd.port)
    non_repeaters = [(*SYSTEM, 5), (*SYSTEM, 3)]
    repeaters = [(*IF_ENTRY, c) for c in (2, 5, 6, 8, 10)] + [(*IFX_ENTRY, c) for c in (1, 6)]
    mine, theirs, fast = asyncio.run(both(lambda t: t.bulk(target, non_repeaters, repeaters, 6)))
    assert stable(mine) == stable(theirs)
    assert isinstance(mine, list)
    assert len(mine) == 2 + 7 * 6
    kinds = {vb.kind for vb in mine}
    assert {ValueKind.OCTETS, ValueKind.GAUGE32, ValueKind.COUNTER32, ValueKind.COUNTER64} <= kinds
    assert fast.stats.delegated_total() == 0


def test_bulk_past_the_end_of_the_mib(snmpd: Snmpd) -> None:
    target = v2c_target(snmpd.host, snmpd.port)
    mine, theirs, _ = asyncio.run(both(lambda t: t.bulk(target, [], [(2, 999)], 3)))
    assert mine == theirs
    assert mine == [VarBind((2, 999), ValueKind.END_OF_MIB_VIEW, None)]  # net-snmp stops there


def test_many_requests_in_flight_are_matched_to_their_own_answers(snmpd: Snmpd) -> None:
    # 36 distinct GETs (ifTable columns 1..9 x ifIndex 1..4), each 3 times, all at once. A
    # burst much larger overflows snmpd's receive buffer (it drops, the retries recover).
    target = v2c_target(snmpd.host, snmpd.port, timeout_s=0.5, retries=3)
    requests = [[(*IF_ENTRY, c, i)] for c in range(1, 10) for i in range(1, 5)] * 3

    async def run() -> tuple[list[GetResult], FastV2cTransport]:
        fast = fast_transport()
        try:
            return list(await asyncio.gather(*(fast.get(target, r) for r in requests))), fast
        finally:
            await fast.close()

    results, fast = asyncio.run(run())
    for asked, got in zip(requests, results, strict=True):
        assert isinstance(got, list), got
        assert [vb.oid for vb in got] == asked
    assert fast.stats.responses == len(requests), fast.stats
    assert fast.stats.ignored_unknown_id <= fast.stats.retransmissions  # late answers only


def test_wrong_community_times_out_like_pysnmp(snmpd: Snmpd) -> None:
    target = v2c_target(snmpd.host, snmpd.port, community="not-the-community", timeout_s=0.3)
    mine, theirs, fast = asyncio.run(both(lambda t: t.get(target, [SYS_NAME])))
    assert mine == theirs
    assert isinstance(mine, PollFailure)
    assert mine.cause is FailureCause.TIMEOUT
    assert "not-the-community" not in mine.detail
    assert fast.stats.retransmissions == 1


def test_nobody_listening_times_out_like_pysnmp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never read: no ICMP, no answer
        target = v2c_target("127.0.0.1", port, timeout_s=0.2, retries=2)
        started = time.monotonic()
        mine, theirs, fast = asyncio.run(both(lambda t: t.get(target, [SYS_NAME])))
    assert mine == theirs
    assert isinstance(mine, PollFailure)
    assert mine.cause is FailureCause.TIMEOUT
    assert "3 tries of 0.2 s" in mine.detail
    assert fast.stats.datagrams_sent == 3
    assert time.monotonic() - started < 5


# ---- the answer checks, against the pysnmp transport's own --------------------------------

_PYSNMP_VALUE: dict[ValueKind, Any] = {
    ValueKind.INTEGER: rfc1902.Integer32(3),
    ValueKind.OCTETS: rfc1902.OctetString(b"x"),
    ValueKind.COUNTER32: rfc1902.Counter32(4),
    ValueKind.NULL: v2c.null,
    ValueKind.NO_SUCH_OBJECT: rfc1905.noSuchObject,
    ValueKind.NO_SUCH_INSTANCE: rfc1905.noSuchInstance,
    ValueKind.END_OF_MIB_VIEW: rfc1905.endOfMibView,
}
_NEAR_OIDS = st.sampled_from(
    [(1, 3, 6, 1, 2), (1, 3, 6, 1, 2, 1), (1, 3, 6, 1, 2, 1, 5), (1, 3, 6, 1, 3)]
)


def _as_pysnmp(varbinds: list[VarBind]) -> tuple[None, int, int, list[tuple[Any, Any]]]:
    return None, 0, 0, [(rfc1902.ObjectName(vb.oid), _PYSNMP_VALUE[vb.kind]) for vb in varbinds]


def _varbind(oid: Oid, kind: ValueKind) -> VarBind:
    value = _PYSNMP_VALUE[kind]
    if kind in (ValueKind.INTEGER, ValueKind.COUNTER32):
        return VarBind(oid, kind, int(value))
    return VarBind(oid, kind, b"x" if kind is ValueKind.OCTETS else None)


ANSWERS = st.lists(
    st.builds(_varbind, _NEAR_OIDS, st.sampled_from(list(_PYSNMP_VALUE))), max_size=9
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_NEAR_OIDS, min_size=1, max_size=3), ANSWERS)
def test_get_answers_are_judged_as_the_pysnmp_transport_judges_them(
    oids: list[Oid], answer: list[VarBind]
) -> None:
    assert check_get_answer(answer, oids) == _check_get(_as_pysnmp(answer), oids)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_NEAR_OIDS, max_size=2), st.lists(_NEAR_OIDS, max_size=3), st.integers(0, 3), ANSWERS
)
def test_bulk_answers_are_judged_as_the_pysnmp_transport_judges_them(
    non_repeaters: list[Oid], repeaters: list[Oid], reps: int, answer: list[VarBind]
) -> None:
    reps = reps if repeaters else 0
    mine = check_bulk_answer(answer, non_repeaters, repeaters, reps)
    assert mine == _check_bulk(_as_pysnmp(answer), non_repeaters, repeaters, reps)


# ---- what goes to the fallback --------------------------------------------------------------


@dataclass
class RecordingTransport:
    """A fake fallback (satisfies ``SnmpTransport``): records calls, answers a fixed value."""

    answer: GetResult = field(default_factory=lambda: [VarBind((1, 3), ValueKind.NULL, None)])
    calls: list[tuple[str, str]] = field(default_factory=list)
    closed: bool = False

    async def get(self, target: SnmpTarget, oids: Sequence[Oid]) -> GetResult:
        self.calls.append(("get", target.device))
        return self.answer

    async def bulk(
        self,
        target: SnmpTarget,
        non_repeaters: Sequence[Oid],
        repeaters: Sequence[Oid],
        max_repetitions: int,
    ) -> GetResult:
        self.calls.append(("bulk", target.device))
        return self.answer

    async def close(self) -> None:
        self.closed = True


V3 = SnmpCredentials(
    SnmpVersion.V3,
    user="ops",
    auth_protocol=SnmpAuthProtocol.SHA,
    auth_key="auth-key-123",
    priv_protocol=SnmpPrivProtocol.AES,
    priv_key="priv-key-123",
)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (SnmpTarget("v3", "127.0.0.1", 161, V3), "not_v2c"),
        (SnmpTarget("nocomm", "127.0.0.1", 161, SnmpCredentials(SnmpVersion.V2C)), "no_community"),
        (v2c_target("127.0.0.1", 161, community="天地-ro"), "community_not_ascii"),
        (v2c_target("localhost", 161), "not_ipv4_literal"),
        (v2c_target("::1", 161), "not_ipv4_literal"),
    ],
    ids=["v3", "no-community", "non-ascii-community", "hostname", "ipv6"],
)
def test_what_the_fast_path_does_not_speak_goes_to_the_fallback(
    target: SnmpTarget, reason: str
) -> None:
    async def run() -> tuple[GetResult, GetResult, FastV2cTransport, RecordingTransport]:
        fallback = RecordingTransport()
        fast = FastV2cTransport(fallback)
        got = await fast.get(target, [SYS_NAME])
        bulk = await fast.bulk(target, [], [SYSTEM], 5)
        await fast.close()
        return got, bulk, fast, fallback

    got, bulk, fast, fallback = asyncio.run(run())
    assert got == bulk == fallback.answer
    assert fallback.calls == [("get", target.device), ("bulk", target.device)]
    assert fast.stats.delegated == {reason: 2}
    assert fast.stats.datagrams_sent == 0
    assert fallback.closed  # the fast transport owns its fallback


def test_an_unencodable_request_goes_to_the_fallback() -> None:
    async def run() -> tuple[GetResult, FastV2cTransport, RecordingTransport]:
        fallback = RecordingTransport()
        fast = FastV2cTransport(fallback)
        got = await fast.get(v2c_target("127.0.0.1", 9), [(1,)])
        await fast.close()
        return got, fast, fallback

    got, fast, fallback = asyncio.run(run())
    assert got == fallback.answer
    assert fast.stats.delegated == {"not_encodable": 1}


@pytest.fixture
def lab_v3_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    doc = generate(provinces=1, counties=1, seed=0)
    secrets = lab_secret_defaults(doc)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    return secrets


def test_a_v3_device_is_polled_through_pysnmp(lab_v3_secrets: dict[str, str]) -> None:
    """The generated inventory's v3 authPriv profile, against the lab's agent."""

    async def run() -> tuple[GetResult, FastV2cTransport, str]:
        doc = generate(provinces=1, counties=1, seed=0)
        offset = random.Random().randrange(20_000, 40_000, 10)
        lab = await Lab.start(
            LabConfig(doc=doc, faces=("snmp",), control=None, port_offset=offset,
                      traffic_period_s=None)
        )  # fmt: skip
        fast = fast_transport()
        try:
            dev = next(iter(lab.net.devices.values()))
            profile = next(p for p in doc.credential_profiles if p.snmp_version is SnmpVersion.V3)
            creds = SnmpCredentials(
                SnmpVersion.V3,
                user=profile.user,
                auth_protocol=profile.auth_protocol,
                auth_key=lab_v3_secrets["TIANDI_SNMP_AUTH_KEY"],
                priv_protocol=profile.priv_protocol,
                priv_key=lab_v3_secrets["TIANDI_SNMP_PRIV_KEY"],
            )
            target = SnmpTarget(dev.name, dev.mgmt_address, dev.snmp_port, creds, timeout_s=2.0)
            return await fast.get(target, [SYS_NAME]), fast, dev.name
        finally:
            await fast.close()
            await lab.stop()

    got, fast, name = asyncio.run(run())
    assert got == [VarBind(SYS_NAME, ValueKind.OCTETS, name.encode())]
    assert fast.stats.delegated == {"not_v2c": 1}
    assert fast.stats.datagrams_sent == 0


# ---- a hostile responder ----------------------------------------------------------------------


@dataclass
class Request:
    community: bytes
    request_id: int
    oids: list[Oid]
    bulk: bool


def parse_request(data: bytes) -> Request:
    msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(msg)
    return Request(
        bytes(msg["community"]),
        int(pdu[0]),
        [tuple(o.asTuple()) for o, _ in v2c.apiPDU.get_varbinds(pdu)],
        pdu.tagSet == v2c.GetBulkRequestPDU.tagSet,
    )


def response(
    req: Request,
    varbinds: Sequence[tuple[Oid, Any]] | None = None,
    *,
    request_id: int | None = None,
    community: bytes | None = None,
    status: int = 0,
    index: int = 0,
) -> bytes:
    """A Response to ``req`` (by default: each asked OID with an OCTET STRING 'v')."""
    if varbinds is None:
        varbinds = [(oid, rfc1902.OctetString(b"v")) for oid in req.oids]
    pdu = v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, req.request_id if request_id is None else request_id)
    v2c.apiPDU.set_error_status(pdu, status)
    v2c.apiPDU.set_error_index(pdu, index)
    v2c.apiPDU.set_varbinds(pdu, [(rfc1902.ObjectName(o), v) for o, v in varbinds])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, req.community if community is None else community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


# A script answers the n-th request (0-based) with datagrams to send: (from "main"|"other", data).
Script = Callable[[int, Request], list[tuple[str, bytes]]]


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Any], None] | None) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.on_datagram is not None:
            self.on_datagram(data, addr)


class HostileAgent:
    """Answers on ``main``; can also send from ``other`` (another port: a foreign source)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen = 0
        self.main: asyncio.DatagramTransport | None = None
        self.other: asyncio.DatagramTransport | None = None

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.main, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self._request), local_addr=("127.0.0.1", 0)
        )
        self.other, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(None), local_addr=("127.0.0.1", 0)
        )
        host, port = self.main.get_extra_info("sockname")[:2]
        return host, port

    def _request(self, data: bytes, addr: Any) -> None:
        n, self.seen = self.seen, self.seen + 1
        for source, out in self.script(n, parse_request(data)):
            sender = self.main if source == "main" else self.other
            assert sender is not None
            sender.sendto(out, addr)

    def close(self) -> None:
        for t in (self.main, self.other):
            if t is not None:
                t.close()


async def against(
    script: Script, call: Callable[[Any, SnmpTarget], Any], **target: Any
) -> tuple[GetResult, FastV2cTransport]:
    agent = HostileAgent(script)
    host, port = await agent.start()
    fast = fast_transport()
    try:
        return await call(fast, v2c_target(host, port, **target)), fast
    finally:
        await fast.close()
        agent.close()


async def compare(
    script: Script, call: Callable[[Any, SnmpTarget], Any], **target: Any
) -> tuple[GetResult, GetResult, FastV2cTransport]:
    """The fast path and the pysnmp transport, each against a fresh agent with ``script``."""
    mine, fast = await against(script, call, **target)
    agent = HostileAgent(script)
    host, port = await agent.start()
    reference = PysnmpTransport()
    try:
        theirs = await call(reference, v2c_target(host, port, **target))
    finally:
        await reference.close()
        agent.close()
    return mine, theirs, fast


def same(mine: GetResult, theirs: GetResult) -> None:
    """Equal results; failure texts may differ in the agent's port and the seconds measured."""
    if isinstance(mine, PollFailure) and isinstance(theirs, PollFailure):
        noise = re.compile(r"127\.0\.0\.1:\d+|in \d+\.\d s")
        assert mine.cause is theirs.cause, (mine, theirs)
        assert noise.sub("_", mine.detail) == noise.sub("_", theirs.detail)
    else:
        assert mine == theirs


def GET(oids: list[Oid]) -> Callable[[Any, SnmpTarget], Any]:
    return lambda t, target: t.get(target, oids)


SHORT = {"timeout_s": 0.3, "retries": 1}


def test_a_good_answer() -> None:
    mine, theirs, fast = asyncio.run(
        compare(lambda n, r: [("main", response(r))], GET([SYS_NAME, SYS_DESCR]))
    )
    assert (
        mine
        == theirs
        == [
            VarBind(SYS_NAME, ValueKind.OCTETS, b"v"),
            VarBind(SYS_DESCR, ValueKind.OCTETS, b"v"),
        ]
    )
    assert fast.stats.responses == 1


def test_a_wrong_request_id_is_ignored_and_the_right_answer_still_counts() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [("main", response(r, request_id=r.request_id ^ 0x55)), ("main", response(r))]

    mine, theirs, fast = asyncio.run(compare(script, GET([SYS_NAME])))
    assert mine == theirs == [VarBind(SYS_NAME, ValueKind.OCTETS, b"v")]
    assert fast.stats.ignored_unknown_id == 1


def test_only_wrong_request_ids_time_out_like_pysnmp() -> None:
    """An answer with another request-id looks like a late answer: ignored, then a timeout."""

    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [("main", response(r, request_id=r.request_id + 1))]

    mine, theirs, fast = asyncio.run(compare(script, GET([SYS_NAME]), **SHORT))
    same(mine, theirs)
    assert isinstance(mine, PollFailure) and mine.cause is FailureCause.TIMEOUT
    assert fast.stats.ignored_unknown_id == 2


def test_an_answer_from_another_address_is_ignored() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        spoofed = response(r, [(SYS_NAME, rfc1902.OctetString(b"spoofed"))])
        return [("other", spoofed), ("main", response(r))]

    mine, fast = asyncio.run(against(script, GET([SYS_NAME])))
    assert mine == [VarBind(SYS_NAME, ValueKind.OCTETS, b"v")]
    assert fast.stats.ignored_wrong_source == 1

    only_spoofed, fast = asyncio.run(
        against(lambda n, r: [("other", response(r))], GET([SYS_NAME]), **SHORT)
    )
    assert isinstance(only_spoofed, PollFailure)
    assert only_spoofed.cause is FailureCause.TIMEOUT
    assert fast.stats.ignored_wrong_source == 2


@pytest.mark.parametrize("cut", [1, 12, -1, -5])
def test_a_truncated_answer_goes_to_pysnmp_and_ends_as_pysnmp_says(cut: int) -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [("main", response(r)[:cut])]

    mine, theirs, fast = asyncio.run(compare(script, GET([SYS_NAME]), **SHORT))
    same(mine, theirs)
    assert isinstance(mine, PollFailure) and mine.cause is FailureCause.MALFORMED
    assert "could not be decoded" in mine.detail
    if cut < 0:  # the request-id is still readable: the fast path hands the request over
        assert fast.stats.delegated_total() == 1
    else:  # not even a request-id: ignored and counted, the request ends MALFORMED itself
        assert fast.stats.ignored_unreadable == 2
        assert fast.stats.delegated_total() == 0


def test_an_oversized_valid_answer_is_decoded() -> None:
    big = rfc1902.OctetString(bytes(range(256)) * 230)  # 58,880 octets

    mine, theirs, fast = asyncio.run(
        compare(lambda n, r: [("main", response(r, [(SYS_DESCR, big)]))], GET([SYS_DESCR]))
    )
    assert mine == theirs == [VarBind(SYS_DESCR, ValueKind.OCTETS, bytes(big))]
    assert fast.stats.delegated_total() == 0


def test_an_oversized_garbage_datagram_is_survived() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [("main", b"\x30\x83\x00\xff\xf0" + os.urandom(65_000)), ("main", response(r))]

    mine, theirs, fast = asyncio.run(compare(script, GET([SYS_NAME])))
    assert mine == theirs == [VarBind(SYS_NAME, ValueKind.OCTETS, b"v")]
    assert fast.stats.ignored_unreadable == 1


def test_a_wrongly_typed_value_goes_to_pysnmp() -> None:
    """A Counter32 of -1 (``41 01 ff``): pysnmp refuses it (its range), so does the result."""

    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        good = response(r, [(SYS_NAME, rfc1902.Counter32(127))])
        assert good.endswith(b"\x41\x01\x7f")
        return [("main", good[:-1] + b"\xff")]

    mine, theirs, fast = asyncio.run(compare(script, GET([SYS_NAME]), **SHORT))
    same(mine, theirs)
    assert isinstance(mine, PollFailure) and mine.cause is FailureCause.MALFORMED
    assert fast.stats.delegated == {"response_bad_unsigned": 1}


def test_a_foreign_community_in_the_answer_goes_to_pysnmp() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [("main", response(r, community=b"someone-else"))]

    mine, theirs, fast = asyncio.run(compare(script, GET([SYS_NAME]), **SHORT))
    same(mine, theirs)
    assert isinstance(mine, PollFailure)
    assert fast.stats.delegated == {"response_community": 1}


def test_an_error_status_names_the_object_like_pysnmp() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [("main", response(r, status=5, index=2))]

    mine, theirs, _ = asyncio.run(compare(script, GET([SYS_NAME, SYS_DESCR])))
    assert mine == theirs
    assert isinstance(mine, PollFailure) and mine.cause is FailureCause.ERROR_STATUS
    assert "genErr" in mine.detail and "1.3.6.1.2.1.1.1.0" in mine.detail


def test_a_get_answered_with_other_objects_is_malformed_like_pysnmp() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [("main", response(r, [(SYS_DESCR, rfc1902.OctetString(b"v"))]))]

    mine, theirs, _ = asyncio.run(compare(script, GET([SYS_NAME])))
    assert mine == theirs
    assert isinstance(mine, PollFailure) and mine.cause is FailureCause.MALFORMED


def test_a_bulk_answer_going_backwards_is_malformed_like_pysnmp() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        value = rfc1902.Gauge32(7)
        return [("main", response(r, [((*IF_ENTRY, 5, 2), value), ((*IF_ENTRY, 5, 1), value)]))]

    def call(t: Any, target: SnmpTarget) -> Any:
        return t.bulk(target, [], [(*IF_ENTRY, 5)], 2)

    mine, theirs, _ = asyncio.run(compare(script, call))
    assert mine == theirs
    assert isinstance(mine, PollFailure) and "OIDs must increase" in mine.detail


def test_a_lost_first_datagram_is_retransmitted() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [] if n == 0 else [("main", response(r))]

    mine, theirs, fast = asyncio.run(compare(script, GET([SYS_NAME]), **SHORT))
    assert mine == theirs == [VarBind(SYS_NAME, ValueKind.OCTETS, b"v")]
    assert fast.stats.retransmissions == 1


def test_a_duplicated_answer_is_harmless() -> None:
    def script(n: int, r: Request) -> list[tuple[str, bytes]]:
        return [("main", response(r))] * 3

    async def run() -> tuple[list[GetResult], FastV2cTransport]:
        agent = HostileAgent(script)
        host, port = await agent.start()
        fast = fast_transport()
        target = v2c_target(host, port)
        try:
            results = [await fast.get(target, [SYS_NAME]) for _ in range(3)]
            await asyncio.sleep(0.05)
            return results, fast
        finally:
            await fast.close()
            agent.close()

    results, fast = asyncio.run(run())
    assert results == [[VarBind(SYS_NAME, ValueKind.OCTETS, b"v")]] * 3
    assert fast.stats.responses == 3
    assert fast.stats.ignored_unknown_id == 6


def test_close_fails_what_is_in_flight_and_closes_the_fallback() -> None:
    async def run() -> tuple[GetResult, RecordingTransport]:
        agent = HostileAgent(lambda n, r: [])
        host, port = await agent.start()
        fallback = RecordingTransport()
        fast = FastV2cTransport(fallback)
        try:
            pending = asyncio.ensure_future(
                fast.get(v2c_target(host, port, timeout_s=5), [SYS_NAME])
            )
            await asyncio.sleep(0.05)
            await fast.close()
            return await pending, fallback
        finally:
            agent.close()

    started = time.monotonic()
    got, fallback = asyncio.run(run())
    assert isinstance(got, PollFailure) and got.cause is FailureCause.INTERNAL
    assert fallback.closed
    assert time.monotonic() - started < 2


def test_a_cancelled_request_leaves_nothing_behind() -> None:
    async def run() -> FastV2cTransport:
        agent = HostileAgent(lambda n, r: [])
        host, port = await agent.start()
        fast = fast_transport()
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(
                    fast.get(v2c_target(host, port, timeout_s=5), [SYS_NAME]), 0.1
                )
            assert not fast._pending
            return fast
        finally:
            await fast.close()
            agent.close()

    fast = asyncio.run(run())
    assert fast.stats.timeouts == 0
