"""The objects each kind of lab device answers, read live from the ``LabNetwork`` state.

- every kind: SNMPv2-MIB system group, SNMP-FRAMEWORK-MIB snmpEngine group, IF-MIB
  ``ifNumber``/``ifTable``/``ifXTable`` and the ``ipAddrTable`` (empty where the device has no
  interfaces in the lab state);
- satellite terminals: TIANDI-LAB-MIB ``tiandiSatellite``;
- video endpoints: ``tiandiVideo`` (registration, the call table);
- MCUs: ``tiandiMcu`` (ports, conferences, participants).

Counters follow the state's lazy integration: ``Interface.octets(now)`` is the 64-bit counter,
the 32-bit ifInOctets/ifOutOctets are that modulo 2**32, so they wrap as a real device's do.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

from inventory.enums import DeviceKind
from lab.snmp import ber, oids
from lab.snmp.ber import Oid
from lab.snmp.identity import CONTACT, identity_for
from lab.snmp.mibtree import Ctx, DeviceInfo, MibObject, Scalar, Table, View
from lab.snmp.usm import device_mac, engine_id_for
from lab.state import COUNTER32, COUNTER64, Call, Device, Interface, LabNetwork

MAX_MESSAGE_SIZE = 1472  # what the agents advertise (snmpEngineMaxMessageSize) and honour
AVG_PACKET_OCTETS = 700  # packet counters follow octets at this average size

IF_TYPE_ETHERNET = 6
IF_TYPE_LOOPBACK = 24
IF_TYPE_TUNNEL = 131

_IF_PREFIXES = (
    ("TenGigabitEthernet", "Te"),
    ("GigabitEthernet", "Gi"),
    ("FastEthernet", "Fa"),
    ("Ethernet", "Et"),
    ("Loopback", "Lo"),
    ("Tunnel", "Tu"),
    ("Serial", "Se"),
    ("Cellular", "Ce"),
)
_IF_NAME = re.compile(r"^([A-Za-z-]+)(.*)$")


def long_if_name(name: str) -> str:
    """ifDescr as IOS prints it: 'Gi0/0/0' -> 'GigabitEthernet0/0/0'."""
    m = _IF_NAME.match(name)
    if not m:
        return name
    word, rest = m.groups()
    for long, short in _IF_PREFIXES:
        if word.lower() == long.lower() or word.lower() == short.lower():
            return long + rest
    return name


def short_if_name(name: str) -> str:
    """ifName as IOS prints it: 'GigabitEthernet0/0/0' -> 'Gi0/0/0'."""
    long = long_if_name(name)
    for prefix, short in _IF_PREFIXES:
        if long.startswith(prefix):
            return short + long[len(prefix) :]
    return long


def _truth(flag: bool) -> bytes:
    return ber.integer(oids.TRUTH_TRUE if flag else oids.TRUTH_FALSE)


def _kbps(bps: float) -> int:
    return round(bps / 1000.0)


# ---- system and engine groups --------------------------------------------------------------


def _engine_time(ctx: Ctx) -> int:
    return max(0, min(int(ctx.now - ctx.device.boot_time), 2_147_483_647))


SYSTEM_OBJECTS: list[MibObject] = [
    Scalar(oids.SYS_DESCR, lambda c: c.info.sys_descr),
    Scalar(oids.SYS_OBJECT_ID, lambda c: c.info.sys_object_id),
    Scalar(oids.SYS_UPTIME, lambda c: ber.timeticks(c.device.uptime_ticks(c.now))),
    Scalar(oids.SYS_CONTACT, lambda c: c.info.sys_contact),
    Scalar(oids.SYS_NAME, lambda c: c.info.sys_name),
    Scalar(oids.SYS_LOCATION, lambda c: c.info.sys_location),
    Scalar(oids.SYS_SERVICES, lambda c: c.info.sys_services),
    Scalar(oids.SNMP_ENGINE_ID, lambda c: ber.octets(c.info.engine_id)),
    Scalar(oids.SNMP_ENGINE_BOOTS, lambda c: ber.integer(c.engine_boots)),
    Scalar(oids.SNMP_ENGINE_TIME, lambda c: ber.integer(_engine_time(c))),
    Scalar(oids.SNMP_ENGINE_MAX_MESSAGE_SIZE, lambda c: ber.integer(c.info.max_message_size)),
]

# ---- IF-MIB ---------------------------------------------------------------------------------


def _if_rows(ctx: Ctx) -> Iterator[tuple[Oid, Interface]]:
    for iface in ctx.device.interfaces:
        yield (iface.index,), iface


def _if_type(iface: Interface) -> int:
    long = long_if_name(iface.name)
    if long.startswith("Loopback"):
        return IF_TYPE_LOOPBACK
    if long.startswith("Tunnel"):
        return IF_TYPE_TUNNEL
    return IF_TYPE_ETHERNET


def _is_loopback(iface: Interface) -> bool:
    return _if_type(iface) == IF_TYPE_LOOPBACK


def _phys(ctx: Ctx, iface: Interface) -> bytes:
    if _is_loopback(iface):
        return ber.octets(b"")
    mac = int.from_bytes(ctx.info.mac, "big") + iface.index
    return ber.octets((mac % 2**48).to_bytes(6, "big"))


def _oper(iface: Interface) -> bytes:
    return ber.integer(oids.IF_STATUS_UP if iface.oper_up else oids.IF_STATUS_DOWN)


def _admin(iface: Interface) -> bytes:
    return ber.integer(oids.IF_STATUS_UP if iface.admin_up else oids.IF_STATUS_DOWN)


def _alias(ctx: Ctx, iface: Interface) -> bytes:
    if iface.link is not None:
        return ber.octets(iface.link)
    return ber.octets(b"" if _is_loopback(iface) else b"LAN")


def _in_hc(c: Ctx, i: Interface) -> int:
    return i.octets(c.now)[0]


def _out_hc(c: Ctx, i: Interface) -> int:
    return i.octets(c.now)[1]


def _zero32(_c: Ctx, _i: Interface) -> bytes:
    return ber.counter32(0)


def _zero64(_c: Ctx, _i: Interface) -> bytes:
    return ber.counter64(0)


_IFACES: Table[Interface] = Table(_if_rows)
IF_OBJECTS: list[MibObject] = [
    Scalar(oids.IF_NUMBER, lambda c: ber.integer(len(c.device.interfaces))),
    _IFACES.column(oids.IF_INDEX, lambda c, i: ber.integer(i.index)),
    _IFACES.column(oids.IF_DESCR, lambda c, i: ber.octets(long_if_name(i.name))),
    _IFACES.column(oids.IF_TYPE, lambda c, i: ber.integer(_if_type(i))),
    _IFACES.column(oids.IF_MTU, lambda c, i: ber.integer(1514 if _is_loopback(i) else 1500)),
    _IFACES.column(oids.IF_SPEED, lambda c, i: ber.gauge32(i.speed_bps)),
    _IFACES.column(oids.IF_PHYS_ADDRESS, _phys),
    _IFACES.column(oids.IF_ADMIN_STATUS, lambda c, i: _admin(i)),
    _IFACES.column(oids.IF_OPER_STATUS, lambda c, i: _oper(i)),
    _IFACES.column(oids.IF_LAST_CHANGE, lambda c, i: ber.timeticks(0)),
    _IFACES.column(oids.IF_IN_OCTETS, lambda c, i: ber.counter32(_in_hc(c, i) % COUNTER32)),
    _IFACES.column(
        oids.IF_IN_UCAST_PKTS,
        lambda c, i: ber.counter32(_in_hc(c, i) // AVG_PACKET_OCTETS % COUNTER32),
    ),
    _IFACES.column(oids.IF_IN_DISCARDS, _zero32),
    _IFACES.column(oids.IF_IN_ERRORS, lambda c, i: ber.counter32(i.in_errors % COUNTER32)),
    _IFACES.column(oids.IF_IN_UNKNOWN_PROTOS, _zero32),
    _IFACES.column(oids.IF_OUT_OCTETS, lambda c, i: ber.counter32(_out_hc(c, i) % COUNTER32)),
    _IFACES.column(
        oids.IF_OUT_UCAST_PKTS,
        lambda c, i: ber.counter32(_out_hc(c, i) // AVG_PACKET_OCTETS % COUNTER32),
    ),
    _IFACES.column(oids.IF_OUT_DISCARDS, _zero32),
    _IFACES.column(oids.IF_OUT_ERRORS, _zero32),
    # ifXTable
    _IFACES.column(oids.IF_NAME, lambda c, i: ber.octets(short_if_name(i.name))),
    _IFACES.column(oids.IF_IN_MULTICAST_PKTS, _zero32),
    _IFACES.column(oids.IF_IN_BROADCAST_PKTS, _zero32),
    _IFACES.column(oids.IF_OUT_MULTICAST_PKTS, _zero32),
    _IFACES.column(oids.IF_OUT_BROADCAST_PKTS, _zero32),
    _IFACES.column(oids.IF_HC_IN_OCTETS, lambda c, i: ber.counter64(_in_hc(c, i))),
    _IFACES.column(
        oids.IF_HC_IN_UCAST_PKTS,
        lambda c, i: ber.counter64(_in_hc(c, i) // AVG_PACKET_OCTETS % COUNTER64),
    ),
    _IFACES.column(oids.IF_HC_IN_MULTICAST_PKTS, _zero64),
    _IFACES.column(oids.IF_HC_IN_BROADCAST_PKTS, _zero64),
    _IFACES.column(oids.IF_HC_OUT_OCTETS, lambda c, i: ber.counter64(_out_hc(c, i))),
    _IFACES.column(
        oids.IF_HC_OUT_UCAST_PKTS,
        lambda c, i: ber.counter64(_out_hc(c, i) // AVG_PACKET_OCTETS % COUNTER64),
    ),
    _IFACES.column(oids.IF_HC_OUT_MULTICAST_PKTS, _zero64),
    _IFACES.column(oids.IF_HC_OUT_BROADCAST_PKTS, _zero64),
    _IFACES.column(
        oids.IF_LINK_UP_DOWN_TRAP_ENABLE, lambda c, i: ber.integer(2 if _is_loopback(i) else 1)
    ),
    _IFACES.column(oids.IF_HIGH_SPEED, lambda c, i: ber.gauge32(i.speed_bps // 1_000_000)),
    _IFACES.column(oids.IF_PROMISCUOUS_MODE, lambda c, i: _truth(False)),
    _IFACES.column(oids.IF_CONNECTOR_PRESENT, lambda c, i: _truth(not _is_loopback(i))),
    _IFACES.column(oids.IF_ALIAS, _alias),
    _IFACES.column(oids.IF_COUNTER_DISCONTINUITY_TIME, lambda c, i: ber.timeticks(0)),
]

# ---- ipAddrTable ----------------------------------------------------------------------------


def _ipv4_index(address: str | None) -> Oid | None:
    if address is None:
        return None
    parts = address.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _ip_rows(ctx: Ctx) -> Iterator[tuple[Oid, Interface]]:
    for iface in ctx.device.interfaces:
        index = _ipv4_index(iface.ip_address)
        if index is not None:
            yield index, iface


def _net_mask(iface: Interface) -> str:
    # The state keeps no prefix length: loopbacks are /32, link subnets /30 (lab.build), LANs /24.
    if _is_loopback(iface):
        return "255.255.255.255"
    return "255.255.255.252" if iface.link is not None else "255.255.255.0"


_IP_ADDRS: Table[Interface] = Table(_ip_rows)
IP_OBJECTS: list[MibObject] = [
    _IP_ADDRS.column(oids.IP_AD_ENT_ADDR, lambda c, i: ber.ip_address(i.ip_address or "")),
    _IP_ADDRS.column(oids.IP_AD_ENT_IF_INDEX, lambda c, i: ber.integer(i.index)),
    _IP_ADDRS.column(oids.IP_AD_ENT_NET_MASK, lambda c, i: ber.ip_address(_net_mask(i))),
]

# ---- satellite terminal ---------------------------------------------------------------------


def _sat_rates(ctx: Ctx) -> tuple[int, int, int]:
    """(tx kbit/s, rx kbit/s, configured data rate kbit/s) of the link this terminal serves."""
    name = ctx.info.satellite_link
    link = ctx.net.links.get(name) if name is not None else None
    if link is None:
        return 0, 0, 0
    router = ctx.net.devices.get(link.router)
    iface = router.interface_by_name(link.interface) if router is not None else None
    if router is None or iface is None or not router.powered:
        return 0, 0, link.capacity_kbps
    return _kbps(iface.out_rate_bps), _kbps(iface.in_rate_bps), link.capacity_kbps


def _sat_alarms(ctx: Ctx) -> bytes:
    d = ctx.device
    bits = 0
    for flag, bit in (
        (d.buc_alarm, oids.ALARM_BUC),
        (d.lnb_alarm, oids.ALARM_LNB),
        (not d.demod_locked, oids.ALARM_DEMOD_UNLOCKED),
        (not d.tx_enabled, oids.ALARM_TX_MUTED),
    ):
        if flag:
            bits |= 0x80 >> bit
    return ber.octets(bytes((bits,)))


SATELLITE_OBJECTS: list[MibObject] = [
    Scalar(oids.SAT_ESNO, lambda c: ber.integer(c.device.esno_db10)),
    Scalar(oids.SAT_RX_LEVEL, lambda c: ber.integer(c.device.rx_level_dbm10)),
    Scalar(oids.SAT_TX_POWER, lambda c: ber.integer(c.device.tx_power_dbm10)),
    Scalar(
        oids.SAT_DEMOD_LOCK,
        lambda c: ber.integer(oids.DEMOD_LOCKED if c.device.demod_locked else oids.DEMOD_UNLOCKED),
    ),
    Scalar(oids.SAT_BUC_ALARM, lambda c: _truth(c.device.buc_alarm)),
    Scalar(oids.SAT_LNB_ALARM, lambda c: _truth(c.device.lnb_alarm)),
    Scalar(oids.SAT_MODCOD, lambda c: ber.integer(c.device.modcod)),
    Scalar(oids.SAT_TX_ENABLED, lambda c: _truth(c.device.tx_enabled)),
    Scalar(oids.SAT_TX_RATE, lambda c: ber.gauge32(_sat_rates(c)[0])),
    Scalar(oids.SAT_RX_RATE, lambda c: ber.gauge32(_sat_rates(c)[1])),
    Scalar(oids.SAT_ALARMS, _sat_alarms),
    Scalar(oids.SAT_DATA_RATE, lambda c: ber.gauge32(_sat_rates(c)[2])),
]

# ---- video endpoint -------------------------------------------------------------------------


def _call_rows(ctx: Ctx) -> Iterator[tuple[Oid, Call]]:
    for call in ctx.device.calls:
        if 0 <= call.call_id <= ber.MAX_SUBID:
            yield (call.call_id,), call


_CALLS: Table[Call] = Table(_call_rows)
VIDEO_OBJECTS: list[MibObject] = [
    Scalar(
        oids.VID_REGISTRATION_STATE,
        lambda c: ber.integer(oids.REGISTERED if c.device.registered else oids.UNREGISTERED),
    ),
    Scalar(oids.VID_DEFAULT_CALL_RATE, lambda c: ber.gauge32(c.device.default_call_rate_kbps)),
    Scalar(oids.VID_ACTIVE_CALLS, lambda c: ber.gauge32(len(c.device.calls))),
    _CALLS.column(oids.VID_CALL_REMOTE, lambda c, k: ber.octets(k.remote)),
    _CALLS.column(oids.VID_CALL_STATE, lambda c, k: ber.integer(oids.CALL_CONNECTED)),
    _CALLS.column(oids.VID_CALL_RATE, lambda c, k: ber.gauge32(k.rate_kbps)),
    _CALLS.column(oids.VID_CALL_TX_BITRATE, lambda c, k: ber.gauge32(k.tx_kbps)),
    _CALLS.column(oids.VID_CALL_RX_BITRATE, lambda c, k: ber.gauge32(k.rx_kbps)),
    _CALLS.column(oids.VID_CALL_PACKET_LOSS, lambda c, k: ber.gauge32(round(k.loss_pct * 100))),
    _CALLS.column(oids.VID_CALL_JITTER, lambda c, k: ber.gauge32(round(k.jitter_ms))),
    _CALLS.column(oids.VID_CALL_DURATION, lambda c, k: ber.gauge32(int(c.now - k.started))),
]

# ---- MCU ------------------------------------------------------------------------------------


def conference_index(name: str) -> int:
    """mcuConfIndex: stable for a conference's lifetime (a CRC of its name, never 0)."""
    return (zlib.crc32(name.encode("utf-8")) & 0x7FFF_FFFF) or 1


def _conf_rows(ctx: Ctx) -> Iterator[tuple[Oid, tuple[str, list[str]]]]:
    for name, parts in ctx.device.conferences.items():
        yield (conference_index(name),), (name, parts)


def _part_rows(ctx: Ctx) -> Iterator[tuple[Oid, str]]:
    for name, parts in ctx.device.conferences.items():
        conf = conference_index(name)
        for i, part in enumerate(parts, start=1):
            yield (conf, i), part


def _participant_call(ctx: Ctx, name: str) -> Call | None:
    dev = ctx.net.devices.get(name)
    if dev is None or not dev.powered or not dev.calls:
        return None
    return dev.calls[0]


def _ports_in_use(ctx: Ctx) -> int:
    used = sum(len(p) for p in ctx.device.conferences.values())
    return min(used, ctx.device.ports_total) if ctx.device.ports_total else used


_CONFS: Table[tuple[str, list[str]]] = Table(_conf_rows)
_PARTS: Table[str] = Table(_part_rows)
MCU_OBJECTS: list[MibObject] = [
    Scalar(oids.MCU_PORTS_TOTAL, lambda c: ber.gauge32(c.device.ports_total)),
    Scalar(oids.MCU_PORTS_IN_USE, lambda c: ber.gauge32(_ports_in_use(c))),
    Scalar(oids.MCU_ACTIVE_CONFERENCES, lambda c: ber.gauge32(len(c.device.conferences))),
    _CONFS.column(oids.MCU_CONF_NAME, lambda c, r: ber.octets(r[0])),
    _CONFS.column(oids.MCU_CONF_PARTICIPANTS, lambda c, r: ber.gauge32(len(r[1]))),
    _PARTS.column(oids.MCU_PART_NAME, lambda c, p: ber.octets(p)),
    _PARTS.column(
        oids.MCU_PART_STATE,
        lambda c, p: ber.integer(
            oids.PART_CONNECTED if _participant_call(c, p) else oids.PART_DISCONNECTED
        ),
    ),
    _PARTS.column(
        oids.MCU_PART_CALL_RATE,
        lambda c, p: ber.gauge32(call.rate_kbps if (call := _participant_call(c, p)) else 0),
    ),
]

# ---- views per kind -------------------------------------------------------------------------

_COMMON = SYSTEM_OBJECTS + IF_OBJECTS + IP_OBJECTS
VIEWS: dict[DeviceKind, View] = {
    DeviceKind.ROUTER: View(_COMMON),
    DeviceKind.SATELLITE_TERMINAL: View(_COMMON + SATELLITE_OBJECTS),
    DeviceKind.VIDEO_ENDPOINT: View(_COMMON + VIDEO_OBJECTS),
    DeviceKind.MCU: View(_COMMON + MCU_OBJECTS),
}


def satellite_links(net: LabNetwork) -> dict[str, str]:
    """Terminal name -> the link it serves (computed once for the whole network)."""
    return {lk.terminal: lk.name for lk in net.links.values() if lk.terminal is not None}


def device_info(
    device: Device,
    *,
    satellite_link: str | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
) -> DeviceInfo:
    """The per-device constants the views read (identity strings encoded once)."""
    ident = identity_for(device)
    if device.province in (None, device.site):
        location = device.site
    else:
        location = f"{device.site}, {device.province}"
    return DeviceInfo(
        sys_descr=ber.octets(ident.descr),
        sys_object_id=ber.oid_tlv(ident.object_id),
        sys_contact=ber.octets(CONTACT),
        sys_name=ber.octets(device.name),
        sys_location=ber.octets(location),
        sys_services=ber.integer(ident.services),
        engine_id=engine_id_for(device.name, device.vendor),
        mac=device_mac(device.name),
        satellite_link=satellite_link,
        max_message_size=max_message_size,
    )
