"""The lab's BER/SNMP codec: exact encodings, strict decoding, and fuzzing of the agent's input.

Whatever arrives on an agent's socket — garbage, a truncated or bit-flipped request, a length
that lies — must end as a counted drop or a valid answer, never as an exception.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.snmp import ber, client, codec, oids
from lab.snmp.agent import DeviceAgent, SnmpAgent
from lab.snmp.ber import DecodeError
from lab.snmp.usm import Credentials
from lab.snmp.views import VIEWS, device_info
from lab.state import LabNetwork

COMMUNITY = "lab-community"


def test_oid_encoding_matches_x690() -> None:
    # 1.3.6.1.2.1.1.3.0: first two arcs packed into 43 (0x2b)
    assert ber.oid_tlv((1, 3, 6, 1, 2, 1, 1, 3, 0)).hex() == "06082b06010201010300"
    # multi-byte sub-identifiers: 59999 = 0x83 0xd4 0x5f, 2**32-1 = 0x8f 0xff 0xff 0xff 0x7f
    assert ber.oid_content((1, 3, 6, 1, 4, 1, 59999)).hex() == "2b0601040183d45f"
    assert ber.oid_content((1, 3, 2**32 - 1)).hex() == "2b8fffffff7f"
    # joint-iso-itu-t arcs may exceed 39 under 2
    assert ber.oid_content((2, 999, 3)).hex() == "883703"


@given(
    st.tuples(st.integers(0, 1), st.integers(0, 39))
    | st.tuples(st.just(2), st.integers(0, 2**32 - 81)),
    st.lists(st.integers(0, 2**32 - 1), max_size=40),
)
def test_oid_round_trip(head: tuple[int, int], tail: list[int]) -> None:
    arcs = (*head, *tail)
    encoded = ber.oid_tlv(arcs)
    start, stop = ber.expect(encoded, 0, len(encoded), ber.OBJECT_IDENTIFIER)
    assert ber.oid(encoded, start, stop) == arcs


@given(st.integers(-(2**31), 2**31 - 1))
def test_integer_round_trip_is_minimal(value: int) -> None:
    encoded = ber.integer(value)
    start, stop = ber.expect(encoded, 0, len(encoded), ber.INTEGER)
    assert ber.signed(encoded, start, stop) == value
    content = encoded[start:stop]
    if len(content) > 1:  # X.690 8.3.2: no redundant leading 0x00 / 0xff octet
        assert not (content[0] == 0 and content[1] < 0x80)
        assert not (content[0] == 0xFF and content[1] >= 0x80)


@pytest.mark.parametrize(
    ("encoder", "top"),
    [(ber.counter32, 2**32), (ber.timeticks, 2**32), (ber.counter64, 2**64)],
)
def test_unsigned_types_refuse_out_of_range(encoder: Callable[[int], bytes], top: int) -> None:
    value, _ = ber.value(encoder(top - 1), 0, len(encoder(top - 1)))
    assert value.value == top - 1
    with pytest.raises(ValueError):
        encoder(top)
    with pytest.raises(ValueError):
        encoder(-1)


def test_gauge_clamps_like_a_gauge() -> None:
    assert ber.value(ber.gauge32(2**40), 0, 7)[0].value == 2**32 - 1
    assert ber.gauge32(8_000_000_000) == ber.gauge32(2**32 - 1)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("06", "truncated"),  # no length
        ("06032b06", "truncated"),  # length past the end
        ("0680", "bad_length"),  # indefinite length is not DER/BER-for-SNMP
        ("06850000000001", "bad_length"),  # five length octets
        ("1f0100", "bad_tag"),  # high tag number form
        ("06022b80", "bad_oid"),  # last octet has the continuation bit
        ("06032b8001", "bad_oid"),  # non-minimal sub-identifier (leading 0x80)
        ("0200", "bad_integer"),  # empty INTEGER
        ("0205ffffffffff", "bad_integer"),  # wider than Integer32
        ("4104ffffffff", "bad_integer"),  # a negative Counter32 (missing 0x00 octet)
        ("410500ffffffff00", "trailing"),  # handled by the caller: value is fine
    ],
)
def test_strict_decoding(raw: str, reason: str) -> None:
    data = bytes.fromhex(raw)
    if reason == "trailing":
        value, after = ber.value(data, 0, len(data))
        assert value.value == 2**32 - 1 and after == len(data) - 1
        return
    with pytest.raises(DecodeError) as err:
        tag, start, stop = ber.header(data, 0, len(data))
        if tag == ber.OBJECT_IDENTIFIER:
            ber.oid(data, start, stop)
        elif tag == ber.INTEGER:
            ber.signed(data, start, stop)
        else:
            ber.value(data, 0, len(data))
    assert err.value.reason == reason


def test_long_lengths_round_trip() -> None:
    for n in (0, 127, 128, 255, 256, 65_535, 70_000):
        encoded = ber.tlv(ber.OCTET_STRING, bytes(n))
        tag, start, stop = ber.header(encoded, 0, len(encoded))
        assert (tag, stop - start, stop) == (ber.OCTET_STRING, n, len(encoded))


def test_pdu_round_trip_keeps_raw_oids() -> None:
    arcs = [(*oids.SYS_UPTIME, 0), (*oids.IF_HC_IN_OCTETS, 3)]
    message = client.v2c_message("c", client.encode_get(codec.GET_BULK, -5, arcs, 1, 25))
    version, pos, end = codec.message_version(message)
    msg = codec.decode_community(message, pos, end, version)
    assert (msg.version, msg.community) == (codec.VERSION_2C, b"c")
    pdu = msg.pdu
    assert (pdu.tag, pdu.request_id, pdu.error_status, pdu.error_index) == (
        codec.GET_BULK,
        -5,
        1,
        25,
    )
    assert [vb.oid for vb in pdu.varbinds] == arcs
    assert [vb.raw_oid for vb in pdu.varbinds] == [ber.oid_tlv(a) for a in arcs]
    assert all(vb.value.tag == ber.NULL for vb in pdu.varbinds)


def test_trailing_garbage_after_message_is_rejected() -> None:
    message = client.v2c_message("c", client.encode_get(codec.GET, 1, [(1, 3, 6)]))
    with pytest.raises(DecodeError):
        codec.message_version(message + b"\x00")


# ---- fuzzing the agent's entry point --------------------------------------------------------


def _agent(tiny_net: LabNetwork) -> tuple[SnmpAgent, DeviceAgent, DeviceAgent]:
    router = tiny_net.devices["r-a"]
    agent = SnmpAgent(tiny_net)
    v2c = DeviceAgent(router, device_info(router), VIEWS[router.kind], Credentials.v2c(COMMUNITY))
    v3 = DeviceAgent(
        router,
        device_info(router),
        VIEWS[router.kind],
        Credentials.v3("fuzz", "fuzz-auth-key", "fuzz-priv-key"),
    )
    return agent, v2c, v3


def _seeds() -> list[bytes]:
    arcs = [(*oids.SYS_UPTIME, 0), (*oids.IF_HC_IN_OCTETS, 1), (1, 3, 6, 1, 2, 1, 2, 2)]
    return [
        client.v2c_message(COMMUNITY, client.encode_get(codec.GET, 7, arcs)),
        client.v2c_message(COMMUNITY, client.encode_get(codec.GET_BULK, 8, arcs, 1, 30)),
        client.v2c_message(COMMUNITY, client.encode_get(codec.GET_NEXT, 9, arcs)),
        client.v3_discovery(10),
    ]


# The fixture network is only read (GETs), so sharing it across examples is sound.
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=st.binary(max_size=600))
def test_agent_survives_random_bytes(tiny_net: LabNetwork, data: bytes) -> None:
    agent, v2c, v3 = _agent(tiny_net)
    for dev in (v2c, v3):
        reply = agent.handle(dev, data)
        assert reply is None or codec.message_version(reply)[0] in (1, 3)
    assert agent.stats.requests == 2


@FUZZ
@given(
    seed=st.sampled_from(_seeds()),
    cut=st.integers(0, 200),
    flips=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 255)), max_size=4),
)
def test_agent_survives_mutated_requests(
    tiny_net: LabNetwork, seed: bytes, cut: int, flips: list[tuple[int, int]]
) -> None:
    agent, v2c, v3 = _agent(tiny_net)
    data = bytearray(seed[: max(1, len(seed) - cut % len(seed))])
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    for dev in (v2c, v3):
        reply = agent.handle(dev, bytes(data))
        if reply is not None:  # whatever it answers must itself decode
            version, pos, end = codec.message_version(reply)
            if version == codec.VERSION_2C:
                assert codec.decode_community(reply, pos, end, version).pdu.tag == codec.RESPONSE
            else:
                assert codec.decode_v3(reply, pos, end).flags & codec.FLAG_REPORTABLE == 0
    answered = agent.stats.responses
    dropped = sum(agent.stats.drops.values())
    assert answered + dropped == 2


def test_malformed_packets_are_counted(tiny_net: LabNetwork) -> None:
    agent, v2c, _v3 = _agent(tiny_net)
    assert agent.handle(v2c, b"\x30\x03\x02\x01") is None
    assert agent.handle(v2c, b"") is None
    assert agent.stats.drops["malformed"] == 2


@FUZZ
@given(
    cut=st.integers(0, 200),
    flips=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 255)), max_size=3),
)
def test_agent_survives_mutated_v3_requests(
    tiny_net: LabNetwork, cut: int, flips: list[tuple[int, int]]
) -> None:
    agent, _v2c, v3 = _agent(tiny_net)
    assert v3.keys is not None
    now = tiny_net.now()
    seed = client.v3_message(
        v3.keys,
        engine_id=v3.info.engine_id,
        boots=v3.engine_boots(),
        engine_time=v3.engine_time(now),
        msg_id=77,
        salt=bytes(8),
        pdu=client.encode_get(codec.GET, 77, [(*oids.SYS_UPTIME, 0)]),
    )
    assert agent.handle(v3, seed) is not None  # the unmutated seed is answered
    data = bytearray(seed[: max(1, len(seed) - cut % len(seed))])
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    agent.handle(v3, bytes(data))
    assert agent.stats.responses + sum(agent.stats.drops.values()) == 2
