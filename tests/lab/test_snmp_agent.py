"""The agent's SNMP semantics, in process (no sockets): what each kind answers, and how.

Requests are built and replies decoded with the lab's own codec, so exact PDUs can be checked
(error-status, reports, truncation). ``test_snmp_clients.py`` checks the same agent with
net-snmp and pysnmp over UDP.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from inventory.enums import SnmpAuthProtocol
from lab.snmp import ber, client, codec, oids
from lab.snmp.agent import DeviceAgent, SnmpAgent
from lab.snmp.ber import Oid, Value
from lab.snmp.codec import Pdu
from lab.snmp.usm import Credentials, SnmpCredentialLike, usm_keys
from lab.snmp.views import VIEWS, conference_index, device_info, satellite_links
from lab.state import COUNTER32, Call, LabNetwork

COMMUNITY = "county-ro"
V3 = Credentials.v3("tiandi", "lab-auth-key", "lab-priv-key")


class Harness:
    """An agent for one device of ``net``, and a client that talks to it in memory."""

    def __init__(
        self, net: LabNetwork, name: str, creds: SnmpCredentialLike = Credentials.v2c(COMMUNITY)
    ) -> None:
        device = net.devices[name]
        self.net = net
        self.agent = SnmpAgent(net)
        info = device_info(device, satellite_link=satellite_links(net).get(name))
        self.dev = DeviceAgent(device, info, VIEWS[device.kind], creds, boots=5)
        self.creds = creds
        self.rid = 100

    def raw(self, message: bytes) -> bytes | None:
        return self.agent.handle(self.dev, message)

    def v2c(self, tag: int, arcs: Sequence[Oid], a: int = 0, b: int = 0) -> Pdu:
        self.rid += 1
        reply = self.raw(
            client.v2c_message(COMMUNITY, client.encode_get(tag, self.rid, arcs, a, b))
        )
        assert reply is not None, self.agent.stats.snapshot()
        assert len(reply) <= 1472
        _, pdu, _ = client.decode_reply(reply, None)
        assert pdu.request_id == self.rid
        return pdu

    def get(self, *arcs: Oid) -> dict[Oid, Value]:
        pdu = self.v2c(codec.GET, arcs)
        assert pdu.error_status == 0
        return {vb.oid: vb.value for vb in pdu.varbinds}

    def value(self, arc: Oid) -> int | bytes | Oid | None:
        return self.get(arc)[arc].value

    def walk(self, root: Oid = (1, 3, 6, 1)) -> list[tuple[Oid, Value]]:
        out: list[tuple[Oid, Value]] = []
        cursor = root
        while True:
            pdu = self.v2c(codec.GET_NEXT, [cursor])
            vb = pdu.varbinds[0]
            if vb.value.tag == ber.END_OF_MIB_VIEW or vb.oid[: len(root)] != root:
                return out
            out.append((vb.oid, vb.value))
            cursor = vb.oid


def col(column: Oid, *index: int) -> Oid:
    return (*column, *index)


def scalar(obj: Oid) -> Oid:
    return (*obj, 0)


# ---- system group, GET semantics ------------------------------------------------------------


def test_router_system_group(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    got = h.get(
        scalar(oids.SYS_DESCR),
        scalar(oids.SYS_OBJECT_ID),
        scalar(oids.SYS_UPTIME),
        scalar(oids.SYS_NAME),
        scalar(oids.SYS_SERVICES),
    )
    descr = got[scalar(oids.SYS_DESCR)].value
    assert isinstance(descr, bytes) and descr.startswith(b"Cisco IOS Software [Bengaluru], ISR")
    assert got[scalar(oids.SYS_OBJECT_ID)] == Value(ber.OBJECT_IDENTIFIER, oids.CISCO_ISR4331)
    uptime = tiny_net.devices["r-a"].uptime_ticks(tiny_net.now())
    assert got[scalar(oids.SYS_UPTIME)] == Value(ber.TIMETICKS, uptime)
    assert got[scalar(oids.SYS_NAME)].value == b"r-a"
    assert got[scalar(oids.SYS_SERVICES)].value == 78


def test_terminal_identity_is_comtech(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "t-a")
    assert h.value(scalar(oids.SYS_OBJECT_ID)) == oids.COMTECH_CDM625
    descr = h.value(scalar(oids.SYS_DESCR))
    assert isinstance(descr, bytes) and b"Comtech EF Data CDM-625A" in descr


def test_missing_objects_and_instances(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    got = h.get((1, 3, 6, 1, 2, 1, 99, 1, 0), col(oids.IF_DESCR, 99), oids.SYS_UPTIME, (1, 3))
    assert got[(1, 3, 6, 1, 2, 1, 99, 1, 0)].tag == ber.NO_SUCH_OBJECT
    assert got[col(oids.IF_DESCR, 99)].tag == ber.NO_SUCH_INSTANCE
    assert got[oids.SYS_UPTIME].tag == ber.NO_SUCH_INSTANCE  # the object, not its .0
    assert got[(1, 3)].tag == ber.NO_SUCH_OBJECT
    # a satellite object does not exist on a router
    assert h.get(scalar(oids.SAT_ESNO))[scalar(oids.SAT_ESNO)].tag == ber.NO_SUCH_OBJECT


# ---- GETNEXT / GETBULK ----------------------------------------------------------------------


def test_getnext_walk_is_ordered_and_ends(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    walked = h.walk()
    arcs = [oid for oid, _ in walked]
    assert arcs == sorted(arcs) and len(set(arcs)) == len(arcs)
    assert arcs[0] == scalar(oids.SYS_DESCR)
    n_if = len(tiny_net.devices["r-a"].interfaces)
    assert sum(1 for a in arcs if a[:-1] == oids.IF_HC_IN_OCTETS) == n_if
    assert h.v2c(codec.GET_NEXT, [arcs[-1]]).varbinds[0].value.tag == ber.END_OF_MIB_VIEW
    # GETNEXT from inside a column's instance space and from a table's root
    pdu = h.v2c(codec.GET_NEXT, [col(oids.IF_DESCR, 1, 5), oids.IF_ENTRY[:-1]])
    assert [vb.oid for vb in pdu.varbinds] == [col(oids.IF_DESCR, 2), col(oids.IF_INDEX, 1)]


def test_getbulk_matches_getnext_walk(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "mcu-hub")
    tiny_net.devices["mcu-hub"].conferences = {"plenary": ["c-a", "c-b"], "drill": ["c-a"]}
    walked = h.walk()
    bulked: list[tuple[Oid, Value]] = []
    cursor: Oid = (1, 3, 6, 1)
    while True:
        pdu = h.v2c(codec.GET_BULK, [cursor], 0, 7)
        done = False
        for vb in pdu.varbinds:
            if vb.value.tag == ber.END_OF_MIB_VIEW:
                done = True
                break
            bulked.append((vb.oid, vb.value))
            cursor = vb.oid
        if done:
            break
    assert bulked == walked


def test_getbulk_non_repeaters_and_repetitions(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    pdu = h.v2c(codec.GET_BULK, [oids.SYS_UPTIME, oids.IF_DESCR, oids.IF_OPER_STATUS], 1, 3)
    got = [vb.oid for vb in pdu.varbinds]
    assert got == [
        scalar(oids.SYS_UPTIME),
        col(oids.IF_DESCR, 1),
        col(oids.IF_OPER_STATUS, 1),
        col(oids.IF_DESCR, 2),
        col(oids.IF_OPER_STATUS, 2),
        col(oids.IF_DESCR, 3),
        col(oids.IF_OPER_STATUS, 3),
    ]


def test_getbulk_reaching_the_end_repeats_end_of_mib_view(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    last = h.walk()[-1][0]
    pdu = h.v2c(codec.GET_BULK, [last, scalar(oids.SYS_NAME)], 0, 3)
    assert pdu.varbinds[0].value.tag == ber.END_OF_MIB_VIEW
    assert pdu.varbinds[0].oid == last
    assert len(pdu.varbinds) >= 2


def test_getbulk_is_cut_to_fit_the_datagram(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    pdu = h.v2c(codec.GET_BULK, [(1, 3, 6, 1)], 0, 500)
    assert pdu.error_status == 0
    assert 20 < len(pdu.varbinds) < 500


def test_get_that_cannot_fit_is_too_big(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    pdu = h.v2c(codec.GET, [scalar(oids.SYS_DESCR)] * 12)  # 12 x ~250 bytes
    assert pdu.error_status == codec.TOO_BIG and pdu.error_index == 0
    assert h.agent.stats.drops["too_big"] == 1


def test_set_is_refused_read_only(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    pdu = h.v2c(codec.SET, [scalar(oids.SYS_CONTACT)])
    assert (pdu.error_status, pdu.error_index) == (codec.NO_ACCESS, 1)


# ---- v2c access -----------------------------------------------------------------------------


def test_wrong_community_and_versions_get_no_answer(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    pdu = client.encode_get(codec.GET, 1, [scalar(oids.SYS_NAME)])
    assert h.raw(client.v2c_message("not-it", pdu)) is None
    assert h.raw(codec.encode_community(codec.VERSION_1, COMMUNITY.encode(), pdu)) is None
    assert h.agent.stats.drops["bad_community"] == 1
    assert h.agent.stats.drops["unsupported_version"] == 1
    assert h.agent.stats.responses == 0


def test_powered_off_device_is_silent(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    tiny_net.devices["r-a"].powered = False
    message = client.v2c_message(COMMUNITY, client.encode_get(codec.GET, 1, [(1, 3)]))
    assert h.raw(message) is None
    assert h.agent.stats.drops["powered_off"] == 1


# ---- IF-MIB values follow the state ---------------------------------------------------------


def test_interfaces_and_counters(tiny_net: LabNetwork, clock: object) -> None:
    h = Harness(tiny_net, "r-a")
    router = tiny_net.devices["r-a"]
    primary = router.interfaces[0]
    n = len(router.interfaces)
    assert h.value(scalar(oids.IF_NUMBER)) == n
    assert h.value(col(oids.IF_DESCR, 1)) == b"GigabitEthernet0/0/0"
    assert h.value(col(oids.IF_NAME, 1)) == b"Gi0/0/0"
    assert h.value(col(oids.IF_ALIAS, 1)) == b"site-a-primary"
    assert h.value(col(oids.IF_SPEED, 1)) == 8_000_000
    assert h.value(col(oids.IF_HIGH_SPEED, 1)) == 8
    assert h.value(col(oids.IF_TYPE, n)) == 24  # Loopback0: softwareLoopback
    assert h.value(col(oids.IF_SPEED, n)) == 2**32 - 1  # 8 Gbit/s saturates ifSpeed
    mac = h.value(col(oids.IF_PHYS_ADDRESS, 1))
    assert isinstance(mac, bytes) and len(mac) == 6
    assert h.value(col(oids.IF_OPER_STATUS, 1)) == 1

    # counters move by exactly rate x time
    before = h.value(col(oids.IF_HC_OUT_OCTETS, 1))
    assert isinstance(before, int) and primary.out_rate_bps > 0
    clock.advance(10.0)  # type: ignore[attr-defined]
    after = h.value(col(oids.IF_HC_OUT_OCTETS, 1))
    assert isinstance(after, int)
    assert after - before == pytest.approx(primary.out_rate_bps / 8 * 10, abs=2)

    # the provider cuts the line: oper down, admin still up
    primary.carrier_up = False
    assert h.value(col(oids.IF_OPER_STATUS, 1)) == 2
    assert h.value(col(oids.IF_ADMIN_STATUS, 1)) == 1
    primary.admin_up = False
    assert h.value(col(oids.IF_ADMIN_STATUS, 1)) == 2


def test_32_bit_counters_wrap(tiny_net: LabNetwork, clock: object) -> None:
    h = Harness(tiny_net, "r-a")
    iface = tiny_net.devices["r-a"].interfaces[0]
    iface.settle(tiny_net.now())
    iface.in_octets = float(COUNTER32 - 1_000)
    iface.in_rate_bps = 8_000.0  # 1,000 octets/s
    before32 = h.value(col(oids.IF_IN_OCTETS, 1))
    assert before32 == COUNTER32 - 1_000
    clock.advance(5.0)  # type: ignore[attr-defined]
    got = h.get(col(oids.IF_IN_OCTETS, 1), col(oids.IF_HC_IN_OCTETS, 1))
    assert got[col(oids.IF_IN_OCTETS, 1)] == Value(ber.COUNTER32, 4_000)
    assert got[col(oids.IF_HC_IN_OCTETS, 1)] == Value(ber.COUNTER64, COUNTER32 + 4_000)


def test_reboot_resets_uptime_and_bumps_engine_boots(tiny_net: LabNetwork, clock: object) -> None:
    h = Harness(tiny_net, "r-a")
    assert h.value(scalar(oids.SNMP_ENGINE_BOOTS)) == 5
    assert h.value(scalar(oids.SYS_UPTIME)) == tiny_net.devices["r-a"].uptime_ticks(tiny_net.now())
    tiny_net.devices["r-a"].boot_time = tiny_net.now()
    clock.advance(2.5)  # type: ignore[attr-defined]
    assert h.value(scalar(oids.SYS_UPTIME)) == 250
    assert h.value(scalar(oids.SNMP_ENGINE_BOOTS)) == 6
    assert h.value(scalar(oids.SNMP_ENGINE_TIME)) == 2


def test_ip_address_table(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "r-a")
    rows = h.walk(oids.IP_AD_ENT_IF_INDEX)
    by_addr = {oid[len(oids.IP_AD_ENT_IF_INDEX) :]: v.value for oid, v in rows}
    assert by_addr[(172, 16, 1, 1)] == 1
    assert by_addr[(127, 77, 1, 1)] == len(tiny_net.devices["r-a"].interfaces)
    assert h.value(col(oids.IP_AD_ENT_NET_MASK, 127, 77, 1, 1)) == bytes([255] * 4)


# ---- satellite terminal, video endpoint, MCU ------------------------------------------------


def test_satellite_terminal(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "t-a")
    terminal = tiny_net.devices["t-a"]
    got = h.get(*(scalar(o) for o in oids.TIANDI_LAB_NAMES.values() if o[:-1] == oids.SATELLITE))
    assert got[scalar(oids.SAT_ESNO)].value == 104
    assert got[scalar(oids.SAT_RX_LEVEL)].value == -420
    assert got[scalar(oids.SAT_TX_POWER)].value == -85
    assert got[scalar(oids.SAT_MODCOD)].value == 13
    assert got[scalar(oids.SAT_DEMOD_LOCK)].value == oids.DEMOD_LOCKED
    assert got[scalar(oids.SAT_DATA_RATE)].value == 2_000
    assert got[scalar(oids.SAT_ALARMS)].value == b"\x00"
    # rain fade: Es/No down, demodulator unlocked, BUC fault, Tx muted
    terminal.esno_db10, terminal.modcod = 8, 1
    terminal.demod_locked = False
    terminal.buc_alarm = True
    terminal.tx_enabled = False
    got = h.get(
        scalar(oids.SAT_ESNO),
        scalar(oids.SAT_MODCOD),
        scalar(oids.SAT_DEMOD_LOCK),
        scalar(oids.SAT_BUC_ALARM),
        scalar(oids.SAT_LNB_ALARM),
        scalar(oids.SAT_TX_ENABLED),
        scalar(oids.SAT_ALARMS),
    )
    assert [v.value for v in got.values()] == [8, 1, 2, 1, 2, 2, bytes([0b1011_0000])]


def test_satellite_rates_follow_the_router_interface(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "t-a")
    iface = tiny_net.devices["r-a"].interface_by_name("GigabitEthernet0/0/2")
    assert iface is not None
    iface.out_rate_bps, iface.in_rate_bps = 1_536_000.0, 512_000.0
    got = h.get(scalar(oids.SAT_TX_RATE), scalar(oids.SAT_RX_RATE))
    assert [v.value for v in got.values()] == [1_536, 512]


def test_video_endpoint_calls(tiny_net: LabNetwork, clock: object) -> None:
    h = Harness(tiny_net, "c-a")
    codec_dev = tiny_net.devices["c-a"]
    assert h.value(scalar(oids.VID_REGISTRATION_STATE)) == oids.REGISTERED
    assert h.walk(oids.VID_CALL_ENTRY) == []
    codec_dev.calls = [
        Call(7, "sip:mcu-hub@tiandi.lab", 2048, tiny_net.now(), 1900, 1850, 1.25, 12.4),
        Call(3, "sip:c-b@tiandi.lab", 1024, tiny_net.now(), 1000, 990, 0.0, 3.0),
    ]
    clock.advance(65)  # type: ignore[attr-defined]
    assert h.value(scalar(oids.VID_ACTIVE_CALLS)) == 2
    rows = h.walk(oids.VID_CALL_ENTRY)
    assert [oid[-2:] for oid, _ in rows[:2]] == [(2, 3), (2, 7)]  # remote column, by call id
    got = h.get(
        col(oids.VID_CALL_REMOTE, 7),
        col(oids.VID_CALL_STATE, 7),
        col(oids.VID_CALL_RATE, 7),
        col(oids.VID_CALL_TX_BITRATE, 7),
        col(oids.VID_CALL_RX_BITRATE, 7),
        col(oids.VID_CALL_PACKET_LOSS, 7),
        col(oids.VID_CALL_JITTER, 7),
        col(oids.VID_CALL_DURATION, 7),
    )
    assert [v.value for v in got.values()] == [
        b"sip:mcu-hub@tiandi.lab",
        oids.CALL_CONNECTED,
        2048,
        1900,
        1850,
        125,
        12,
        65,
    ]
    codec_dev.registered = False
    assert h.value(scalar(oids.VID_REGISTRATION_STATE)) == oids.UNREGISTERED


def test_mcu_conferences_and_participants(tiny_net: LabNetwork) -> None:
    h = Harness(tiny_net, "mcu-hub")
    mcu = tiny_net.devices["mcu-hub"]
    mcu.conferences = {"plenary": ["c-a", "c-b", "somewhere-else"]}
    tiny_net.devices["c-a"].calls = [Call(1, "mcu-hub", 2048, tiny_net.now())]
    conf = conference_index("plenary")
    got = h.get(
        scalar(oids.MCU_PORTS_TOTAL),
        scalar(oids.MCU_PORTS_IN_USE),
        scalar(oids.MCU_ACTIVE_CONFERENCES),
        col(oids.MCU_CONF_NAME, conf),
        col(oids.MCU_CONF_PARTICIPANTS, conf),
        col(oids.MCU_PART_NAME, conf, 1),
        col(oids.MCU_PART_STATE, conf, 1),
        col(oids.MCU_PART_CALL_RATE, conf, 1),
        col(oids.MCU_PART_STATE, conf, 2),
        col(oids.MCU_PART_STATE, conf, 3),
    )
    assert [v.value for v in got.values()] == [12, 3, 1, b"plenary", 3, b"c-a", 1, 2048, 2, 2]


# ---- SNMPv3 USM -----------------------------------------------------------------------------


class V3Harness(Harness):
    def __init__(self, net: LabNetwork, creds: Credentials = V3) -> None:
        super().__init__(net, "r-a", creds)
        self.keys = usm_keys(creds, self.dev.info.engine_id)

    def send(
        self,
        *,
        engine_id: bytes | None = None,
        boots: int | None = None,
        engine_time: int | None = None,
        flags: int = codec.FLAG_AUTH | codec.FLAG_PRIV,
        keys: object = None,
        context_name: bytes = b"",
    ) -> tuple[Pdu, bytes]:
        self.rid += 1
        use_keys = self.keys if keys is None else keys
        message = client.v3_message(
            use_keys,  # type: ignore[arg-type]
            engine_id=self.dev.info.engine_id if engine_id is None else engine_id,
            boots=self.dev.engine_boots() if boots is None else boots,
            engine_time=self.dev.engine_time(self.net.now())
            if engine_time is None
            else engine_time,
            msg_id=self.rid,
            salt=self.rid.to_bytes(8, "big"),
            pdu=client.encode_get(codec.GET, self.rid, [scalar(oids.SYS_NAME)]),
            flags=flags,
            context_name=context_name,
        )
        reply = self.raw(message)
        assert reply is not None, self.agent.stats.snapshot()
        msg_id, pdu, _ = client.decode_reply(reply, self.keys)
        assert msg_id == self.rid
        _version, pos, end = codec.message_version(reply)
        return pdu, bytes([codec.decode_v3(reply, pos, end).flags])

    def report(self, pdu: Pdu) -> Oid:
        assert pdu.tag == codec.REPORT
        return pdu.varbinds[0].oid


def test_v3_discovery_reports_our_engine(tiny_net: LabNetwork) -> None:
    h = V3Harness(tiny_net)
    reply = h.raw(client.v3_discovery(42))
    assert reply is not None
    msg_id, pdu, engine = client.decode_reply(reply, None)
    assert msg_id == 42 and pdu.tag == codec.REPORT
    assert pdu.varbinds[0].oid == oids.USM_STATS_UNKNOWN_ENGINE_IDS
    assert engine == (h.dev.info.engine_id, 5, h.dev.engine_time(tiny_net.now()))
    assert h.agent.stats.reports["usm_unknown_engine_id"] == 1


def test_v3_authpriv_get(tiny_net: LabNetwork) -> None:
    h = V3Harness(tiny_net)
    pdu, flags = h.send()
    assert pdu.tag == codec.RESPONSE and pdu.error_status == 0
    assert pdu.varbinds[0].value.value == b"r-a"
    assert flags[0] == codec.FLAG_AUTH | codec.FLAG_PRIV  # the answer is encrypted too


def test_v3_failures_are_reported(tiny_net: LabNetwork) -> None:
    h = V3Harness(tiny_net)
    wrong_key = usm_keys(
        Credentials.v3("tiandi", "not-the-key", "lab-priv-key"), h.dev.info.engine_id
    )
    other_user = usm_keys(Credentials.v3("intruder", "lab-auth-key", "x" * 8), h.dev.info.engine_id)
    pdu, flags = h.send(keys=wrong_key)
    assert h.report(pdu) == oids.USM_STATS_WRONG_DIGESTS and flags[0] == 0
    pdu, _ = h.send(keys=other_user)
    assert h.report(pdu) == oids.USM_STATS_UNKNOWN_USER_NAMES
    pdu, _ = h.send(engine_id=b"\x80\x00\x00\x09\x03abcdef")
    assert h.report(pdu) == oids.USM_STATS_UNKNOWN_ENGINE_IDS
    # stale clock: the report is authenticated so the client can trust and adopt our time
    pdu, flags = h.send(engine_time=h.dev.engine_time(tiny_net.now()) + 151)
    assert h.report(pdu) == oids.USM_STATS_NOT_IN_TIME_WINDOWS and flags[0] == codec.FLAG_AUTH
    pdu, _ = h.send(boots=4)
    assert h.report(pdu) == oids.USM_STATS_NOT_IN_TIME_WINDOWS
    pdu, _ = h.send(context_name=b"vrf-mgmt")
    assert h.report(pdu) == oids.SNMP_UNKNOWN_CONTEXTS
    # authNoPriv for an authPriv-only user: authenticated, but not allowed
    pdu, flags = h.send(flags=codec.FLAG_AUTH)
    assert pdu.tag == codec.RESPONSE and pdu.error_status == codec.AUTHORIZATION_ERROR
    assert flags[0] == codec.FLAG_AUTH
    stats = h.agent.stats.reports
    assert stats["usm_wrong_digest"] == stats["usm_unknown_user"] == 1
    assert stats["usm_not_in_time_window"] == 2


def test_v3_level_above_the_users_is_unsupported(tiny_net: LabNetwork) -> None:
    auth_only = Credentials.v3(
        "tiandi", "lab-auth-key", None, auth_protocol=SnmpAuthProtocol.SHA256
    )
    h = V3Harness(tiny_net, auth_only)
    pdu, _ = h.send(flags=codec.FLAG_AUTH)
    assert pdu.tag == codec.RESPONSE and pdu.varbinds[0].value.value == b"r-a"
    priv_keys = usm_keys(Credentials.v3("tiandi", "lab-auth-key", "lab-priv-key",
                                        auth_protocol=SnmpAuthProtocol.SHA256),
                         h.dev.info.engine_id)  # fmt: skip
    pdu, _ = h.send(keys=priv_keys)
    assert h.report(pdu) == oids.USM_STATS_UNSUPPORTED_SEC_LEVELS


def test_v2c_request_to_a_v3_device_is_dropped(tiny_net: LabNetwork) -> None:
    h = V3Harness(tiny_net)
    message = client.v2c_message(COMMUNITY, client.encode_get(codec.GET, 1, [(1, 3)]))
    assert h.raw(message) is None
    assert h.agent.stats.drops["bad_community"] == 1


def test_v3_getbulk_fits_the_datagram(tiny_net: LabNetwork) -> None:
    h = V3Harness(tiny_net)
    message = client.v3_message(
        h.keys,
        engine_id=h.dev.info.engine_id,
        boots=h.dev.engine_boots(),
        engine_time=h.dev.engine_time(tiny_net.now()),
        msg_id=9,
        salt=bytes(8),
        pdu=client.encode_get(codec.GET_BULK, 9, [(1, 3, 6, 1)], 0, 500),
    )
    reply = h.raw(message)
    assert reply is not None and 1300 < len(reply) <= 1472
    _, pdu, _ = client.decode_reply(reply, h.keys)
    assert pdu.error_status == 0 and len(pdu.varbinds) > 20
