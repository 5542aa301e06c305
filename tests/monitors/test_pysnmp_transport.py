"""``PysnmpTransport`` against real agents: the lab (v2c, v3 SHA/AES and SHA-256/AES-256),
net-snmp's ``snmpd`` (compared with ``snmpget``), a hostile agent and nobody at all."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pyasn1.type import univ  # type: ignore[import-untyped]
from pysnmp.proto import rfc1902, rfc1905  # type: ignore[import-untyped]

from inventory.enums import SnmpAuthProtocol, SnmpPrivProtocol, SnmpVersion
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
from monitors.snmp.pysnmp_transport import (
    PROFILE_PLACEHOLDER,
    PysnmpTransport,
    _check_bulk,
    _check_get,
    error_status_failure,
    is_too_big,
    name_profile,
    to_varbind,
)
from tests.monitors.poller_support import (
    dead_port,
    hostile,
    port_offset,
    running_lab,
    small_doc,
    snmpd,
    with_v2c,
)

SYS_UPTIME: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME: Oid = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_OBJECT_ID: Oid = (1, 3, 6, 1, 2, 1, 1, 2, 0)
IF_NAME: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_HC_IN: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)
IF_DESCR: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
NOT_THERE: Oid = (1, 3, 6, 1, 2, 1, 1, 99, 0)


def v3(
    auth_key: str | None = None,
    priv_key: str | None = None,
    auth: SnmpAuthProtocol = SnmpAuthProtocol.SHA,
    priv: SnmpPrivProtocol = SnmpPrivProtocol.AES,
    user: str = "tiandi-noc",
) -> SnmpCredentials:
    return SnmpCredentials(
        SnmpVersion.V3,
        user=user,
        auth_protocol=auth,
        auth_key=auth_key or os.environ["TIANDI_SNMP_AUTH_KEY"],
        priv_protocol=priv,
        priv_key=priv_key or os.environ["TIANDI_SNMP_PRIV_KEY"],
    )


def values(result: GetResult) -> list[VarBind]:
    assert isinstance(result, list), result
    return result


# ---- the lab, v3 authPriv ----------------------------------------------------------------------


def test_lab_v3_get_bulk_and_missing_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = small_doc(monkeypatch)
    offset = port_offset()
    router = next(d for s in doc.sites for d in s.devices if d.name.endswith("-r1"))

    async def scenario() -> None:
        async with running_lab(doc, offset) as lab:
            transport = PysnmpTransport()
            target = SnmpTarget(router.name, router.mgmt_address, 161 + offset, v3())
            try:
                got = values(await transport.get(target, [SYS_UPTIME, SYS_NAME, NOT_THERE]))
                assert got[0].kind is ValueKind.TIMETICKS and isinstance(got[0].value, int)
                assert got[1] == VarBind(SYS_NAME, ValueKind.OCTETS, router.name.encode())
                assert got[2].kind is ValueKind.NO_SUCH_OBJECT and got[2].value is None
                instance = values(await transport.get(target, [(*IF_NAME, 999)]))[0]
                assert instance.kind is ValueKind.NO_SUCH_INSTANCE

                rows = len(lab.net.devices[router.name].interfaces)
                bulk = values(
                    await transport.bulk(target, [SYS_UPTIME[:-1]], [IF_NAME, IF_HC_IN], rows)
                )
                assert bulk[0].oid == SYS_UPTIME
                names = [vb.value for vb in bulk[1::2]]
                assert len(names) == rows and all(isinstance(n, bytes) for n in names)
                assert all(vb.kind is ValueKind.COUNTER64 for vb in bulk[2::2])
                end = values(await transport.bulk(target, [], [(1, 3, 6, 1, 6, 3, 99)], 3))
                assert end and {vb.kind for vb in end} == {ValueKind.END_OF_MIB_VIEW}
                assert transport.engines == 1
            finally:
                await transport.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        ("auth", "check the v3 auth key of profile 'snmp-v3-noc'"),
        ("priv", "privacy key"),
        ("user", "does not know user 'nobody'"),
    ],
)
def test_wrong_v3_credentials_are_a_clear_auth_failure_per_device(
    monkeypatch: pytest.MonkeyPatch, wrong: str, words: str
) -> None:
    doc = small_doc(monkeypatch)
    offset = port_offset()
    devices = [d for s in doc.sites for d in s.devices][:4]

    async def scenario() -> None:
        async with running_lab(doc, offset):
            transport = PysnmpTransport()
            bad = {
                "auth": v3(auth_key="not-the-auth-key"),
                "priv": v3(priv_key="not-the-priv-key"),
                "user": v3(user="nobody"),
            }[wrong]
            targets = [
                SnmpTarget(d.name, d.mgmt_address, 161 + offset, bad if i % 2 else v3())
                for i, d in enumerate(devices)
            ]
            try:
                results = await asyncio.gather(*(transport.get(t, [SYS_NAME]) for t in targets))
            finally:
                await transport.close()
            for i, (dev, result) in enumerate(zip(devices, results, strict=True)):
                if i % 2 == 0:
                    assert values(result)[0].value == dev.name.encode()
                    continue
                assert isinstance(result, PollFailure), result
                assert result.cause is FailureCause.AUTH_FAILED
                text = name_profile(result, "snmp-v3-noc").detail
                assert text.startswith("authentication failed"), text
                assert words in text, text
                for secret in ("not-the-auth-key", "not-the-priv-key"):
                    assert secret not in text

    asyncio.run(scenario())


def test_sha2_and_aes256_are_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = small_doc(monkeypatch)
    offset = port_offset()
    for p in doc.credential_profiles:
        if p.name == "snmp-v3-noc":
            p.auth_protocol, p.priv_protocol = SnmpAuthProtocol.SHA256, SnmpPrivProtocol.AES256
    dev = doc.sites[0].devices[0]

    async def scenario() -> None:
        async with running_lab(doc, offset):
            transport = PysnmpTransport()
            creds = v3(auth=SnmpAuthProtocol.SHA256, priv=SnmpPrivProtocol.AES256)
            try:
                got = await transport.get(
                    SnmpTarget(dev.name, dev.mgmt_address, 161 + offset, creds), [SYS_NAME]
                )
            finally:
                await transport.close()
            assert values(got)[0].value == dev.name.encode()

    asyncio.run(scenario())


def test_lab_v2c_and_a_wrong_community(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = small_doc(monkeypatch)
    dev = doc.sites[0].devices[0]
    with_v2c(doc, monkeypatch, {dev.name})
    offset = port_offset()

    async def scenario() -> None:
        async with running_lab(doc, offset):
            transport = PysnmpTransport()
            good = SnmpCredentials(SnmpVersion.V2C, community="tiandi-lab-v2c")
            bad = SnmpCredentials(SnmpVersion.V2C, community="guess")
            try:
                ok = await transport.get(
                    SnmpTarget(dev.name, dev.mgmt_address, 161 + offset, good), [SYS_NAME]
                )
                assert values(ok)[0].value == dev.name.encode()
                wrong = await transport.get(
                    SnmpTarget("other", dev.mgmt_address, 161 + offset, bad, timeout_s=0.3),
                    [SYS_NAME],
                )
            finally:
                await transport.close()
            assert isinstance(wrong, PollFailure) and wrong.cause is FailureCause.TIMEOUT
            assert "community" in wrong.detail and "guess" not in wrong.detail

    asyncio.run(scenario())


def test_config_problems_never_reach_the_network() -> None:
    async def scenario() -> list[GetResult]:
        transport = PysnmpTransport()
        try:
            return [
                await transport.get(
                    SnmpTarget("a", "127.0.0.1", 9, SnmpCredentials(SnmpVersion.V2C)), [SYS_NAME]
                ),
                await transport.get(
                    SnmpTarget("b", "127.0.0.1", 9, v3(auth_key="short", priv_key="x" * 9)),
                    [SYS_NAME],
                ),
                await transport.get(
                    SnmpTarget("c", "router.example", 9, SnmpCredentials(SnmpVersion.V2C, "x")),
                    [SYS_NAME],
                ),
            ]
        finally:
            await transport.close()

    results = asyncio.run(scenario())
    for r in results:
        assert isinstance(r, PollFailure) and r.cause is FailureCause.CONFIG, r
    assert "community" in results[0].detail  # type: ignore[union-attr]
    assert "8 characters" in results[1].detail  # type: ignore[union-attr]


def test_engines_are_few_and_split_only_for_colliding_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIANDI_SNMP_AUTH_KEY", "auth-key-one")
    monkeypatch.setenv("TIANDI_SNMP_PRIV_KEY", "priv-key-one")

    async def scenario() -> int:
        transport = PysnmpTransport(devices_per_engine=3)
        port = dead_port()
        try:
            for i in range(5):
                transport._peer(SnmpTarget(f"d{i}", "127.0.0.1", port, v3()))
            assert transport.engines == 2  # 3 + 2 devices
            other = v3(auth_key="auth-key-two")
            transport._peer(SnmpTarget("x", "127.0.0.1", port, other))
            return transport.engines
        finally:
            await transport.close()

    assert asyncio.run(scenario()) == 3  # same user name, other key: never in the same engine


# ---- net-snmp snmpd: what pysnmp reads is what snmpget reads ---------------------------------


def test_snmpd_v2c_and_v3_match_snmpget(tmp_path: Path) -> None:
    with snmpd(tmp_path) as agent:
        oids = ["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.2.2.1.2.1"]
        expected = agent.cli("snmpget", *oids)
        expected_v3 = agent.cli("snmpget", *oids, v3=True)

        async def scenario() -> tuple[GetResult, GetResult, GetResult]:
            transport = PysnmpTransport()
            v2 = SnmpCredentials(SnmpVersion.V2C, community=agent.community)
            v3creds = SnmpCredentials(
                SnmpVersion.V3,
                user=agent.user,
                auth_protocol=SnmpAuthProtocol.SHA,
                auth_key=agent.auth_key,
                priv_protocol=SnmpPrivProtocol.AES,
                priv_key=agent.priv_key,
            )
            asked = [tuple(int(x) for x in o.split(".")) for o in oids]
            try:
                a = await transport.get(SnmpTarget("snmpd", agent.host, agent.port, v2), asked)
                b = await transport.get(
                    SnmpTarget("snmpd3", agent.host, agent.port, v3creds), asked
                )
                c = await transport.bulk(
                    SnmpTarget("snmpd", agent.host, agent.port, v2), [], [IF_DESCR], 10
                )
                return a, b, c
            finally:
                await transport.close()

        v2_result, v3_result, walk = asyncio.run(scenario())
        descr = agent.cli("snmpwalk", ".".join(map(str, IF_DESCR)))
    for result, cli in ((v2_result, expected), (v3_result, expected_v3)):
        got = values(result)
        assert got[0].value == b"tiandi-snmpd" and cli[oids[0]] == 'STRING: "tiandi-snmpd"'
        assert cli[oids[1]] == "OID: ." + ".".join(map(str, got[1].value))  # type: ignore[arg-type]
        assert got[2].kind is ValueKind.OCTETS
        assert cli[oids[2]].removeprefix("STRING: ").strip('"') == got[2].value.decode()  # type: ignore[union-attr]
    rows = [vb for vb in values(walk) if vb.oid[: len(IF_DESCR)] == IF_DESCR]
    assert {".".join(map(str, vb.oid)) for vb in rows} == set(descr)
    for vb in rows:
        assert descr[".".join(map(str, vb.oid))].removeprefix("STRING: ").strip('"') == (
            vb.value.decode()  # type: ignore[union-attr]
        )


# ---- hostile and absent agents -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "causes"),
    [
        ("ok", None),
        ("truncated", {FailureCause.MALFORMED}),
        ("oversized", {FailureCause.MALFORMED}),
        ("wrong_type", {FailureCause.MALFORMED}),
        ("garbage", {FailureCause.MALFORMED}),
        ("wrong_request_id", {FailureCause.TIMEOUT}),
        ("not_response", {FailureCause.TIMEOUT, FailureCause.MALFORMED}),
    ],
)
def test_hostile_answers_are_failures_not_crashes(
    mode: str, causes: set[FailureCause] | None
) -> None:
    async def scenario() -> tuple[GetResult, GetResult]:
        transport = PysnmpTransport()
        creds = SnmpCredentials(SnmpVersion.V2C, community="public")
        try:
            async with hostile(mode) as bad, hostile("ok") as good:
                t_bad = SnmpTarget("bad", "127.0.0.1", bad.port, creds, timeout_s=0.3, retries=1)
                t_good = SnmpTarget("good", "127.0.0.1", good.port, creds, timeout_s=0.3)
                return await asyncio.gather(
                    transport.get(t_bad, [SYS_UPTIME, SYS_NAME]),
                    transport.get(t_good, [SYS_UPTIME]),
                )
        finally:
            await transport.close()

    result, healthy = asyncio.run(scenario())
    assert values(healthy)[0] == VarBind(SYS_UPTIME, ValueKind.TIMETICKS, 4242)
    if causes is None:
        assert len(values(result)) == 2
    else:
        assert isinstance(result, PollFailure) and result.cause in causes, result


def test_nobody_listening_times_out_after_the_retries() -> None:
    async def scenario() -> tuple[GetResult, float]:
        transport = PysnmpTransport()
        creds = SnmpCredentials(SnmpVersion.V2C, community="public")
        started = time.monotonic()
        try:
            result = await transport.get(
                SnmpTarget("dead", "127.0.0.1", dead_port(), creds, timeout_s=0.2, retries=2),
                [SYS_UPTIME],
            )
        finally:
            await transport.close()
        return result, time.monotonic() - started

    result, took = asyncio.run(scenario())
    assert isinstance(result, PollFailure) and result.cause is FailureCause.TIMEOUT
    assert "3 tries of 0.2 s" in result.detail
    assert 0.5 < took < 1.5


def test_no_mib_compiler_is_ever_attached() -> None:
    """pysnmp would try to fetch missing MIBs: the transport never resolves names at all."""

    async def scenario() -> Any:
        transport = PysnmpTransport()
        async with hostile("ok") as agent:
            creds = SnmpCredentials(SnmpVersion.V2C, community="public")
            await transport.get(SnmpTarget("a", "127.0.0.1", agent.port, creds), [SYS_UPTIME])
            engine = transport._engines[0].snmp
            builder = engine.get_mib_builder()
            compiler = getattr(builder, "_MibBuilder__mibCompiler", None) or getattr(
                builder, "mibCompiler", None
            )
            await transport.close()
            return compiler

    assert asyncio.run(scenario()) is None


# ---- checking what came back (pure) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (rfc1902.Integer32(-5), ValueKind.INTEGER, -5),
        (rfc1902.OctetString(b"\x00\xff"), ValueKind.OCTETS, b"\x00\xff"),
        (rfc1902.ObjectIdentifier((1, 3, 6, 1)), ValueKind.OID, (1, 3, 6, 1)),
        (rfc1902.IpAddress("10.1.2.3"), ValueKind.IPADDRESS, "10.1.2.3"),
        (rfc1902.Counter32(2**32 - 1), ValueKind.COUNTER32, 2**32 - 1),
        (rfc1902.Gauge32(7), ValueKind.GAUGE32, 7),
        (rfc1902.Unsigned32(8), ValueKind.GAUGE32, 8),
        (rfc1902.TimeTicks(100), ValueKind.TIMETICKS, 100),
        (rfc1902.Opaque(b"\x9f\x78\x04"), ValueKind.OPAQUE, b"\x9f\x78\x04"),
        (rfc1902.Counter64(2**64 - 1), ValueKind.COUNTER64, 2**64 - 1),
        (rfc1902.Bits(b"\x80"), ValueKind.OCTETS, b"\x80"),
        (univ.Null(""), ValueKind.NULL, None),
        (rfc1905.noSuchObject, ValueKind.NO_SUCH_OBJECT, None),
        (rfc1905.noSuchInstance, ValueKind.NO_SUCH_INSTANCE, None),
        (rfc1905.endOfMibView, ValueKind.END_OF_MIB_VIEW, None),
    ],
)
def test_every_snmp_type_becomes_a_varbind(value: Any, kind: ValueKind, expected: Any) -> None:
    assert to_varbind((1, 3, 6), value) == VarBind((1, 3, 6), kind, expected)


def _raw(varbinds: list[tuple[Oid, Any]], status: int = 0, index: int = 0) -> Any:
    return (None, status, index, [(rfc1902.ObjectName(o), v) for o, v in varbinds])


def test_get_answers_are_checked() -> None:
    asked = [SYS_UPTIME, SYS_NAME]
    ok = _check_get(
        _raw([(SYS_UPTIME, rfc1902.TimeTicks(1)), (SYS_NAME, rfc1902.OctetString("r"))]), asked
    )
    assert isinstance(ok, list) and len(ok) == 2
    short = _check_get(_raw([(SYS_UPTIME, rfc1902.TimeTicks(1))]), asked)
    other = _check_get(
        _raw([(SYS_UPTIME, rfc1902.TimeTicks(1)), (SYS_OBJECT_ID, rfc1902.OctetString("r"))]), asked
    )
    eom = _check_get(
        _raw([(SYS_UPTIME, rfc1902.TimeTicks(1)), (SYS_NAME, rfc1905.endOfMibView)]), asked
    )
    for bad in (short, other, eom):
        assert isinstance(bad, PollFailure) and bad.cause is FailureCause.MALFORMED, bad
    status = _check_get(_raw([], status=1, index=0), asked)
    assert isinstance(status, PollFailure) and is_too_big(status)
    gen = _check_get(_raw([], status=5, index=2), asked)
    assert isinstance(gen, PollFailure) and gen.cause is FailureCause.ERROR_STATUS
    assert gen.detail.startswith("genErr (error-status 5) at 1.3.6.1.2.1.1.5.0")


def test_bulk_answers_are_checked() -> None:
    col = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
    good = _check_bulk(
        _raw([((*col, 1), rfc1902.OctetString("a")), ((*col, 2), rfc1902.OctetString("b"))]),
        [],
        [col],
        5,
    )
    assert isinstance(good, list) and len(good) == 2
    backwards = _check_bulk(
        _raw([((*col, 2), rfc1902.Integer32(1)), ((*col, 1), rfc1902.Integer32(1))]), [], [col], 5
    )
    too_many = _check_bulk(
        _raw([((*col, i), rfc1902.Integer32(1)) for i in range(1, 5)]), [], [col], 2
    )
    no_such = _check_bulk(_raw([((*col, 1), rfc1905.noSuchInstance)]), [], [col], 2)
    for bad in (backwards, too_many, no_such):
        assert isinstance(bad, PollFailure) and bad.cause is FailureCause.MALFORMED, bad
    ended = _check_bulk(
        _raw([(col, rfc1905.endOfMibView), (col, rfc1905.endOfMibView)]), [], [col], 2
    )
    assert isinstance(ended, list)


def test_failure_texts_name_the_profile_and_never_a_secret() -> None:
    failure = error_status_failure(16, 1, [SYS_NAME])
    assert "authorizationError" in failure.detail and "VACM" in failure.detail
    placeholder = PollFailure(FailureCause.AUTH_FAILED, f"check the key of {PROFILE_PLACEHOLDER}")
    assert name_profile(placeholder, "noc").detail == "check the key of profile 'noc'"
    assert name_profile(placeholder, None) is placeholder
