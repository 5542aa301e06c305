"""What a Cisco IOS-XE 17.x router prints for ``show`` commands, from lab state. Pure functions.

Texts follow IOS-XE 17.9 on an ISR 4000 closely enough that the ntc-templates parsers (the ones
Tiandi's drivers and most network tooling use) read them; the tests check that.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from lab.ssh.cli import CliMemory
from lab.state import Device, Interface, LabNetwork, StaticRoute
from lab.traffic import link_usable

IOS_XE_VERSION = "17.09.04a"
IOS_VERSION = "17.9.4a"
ROMMON = "16.12(2r)"
DEFAULT_MODEL = "ISR4331"
NVRAM_BYTES = 33_554_432
AVG_PACKET_BYTES = 600  # turns octet counters into packet counters

ROUTE_CODES = (
    "Codes: L - local, C - connected, S - static, R - RIP, M - mobile, B - BGP\n"
    "       D - EIGRP, EX - EIGRP external, O - OSPF, IA - OSPF inter area \n"
    "       N1 - OSPF NSSA external type 1, N2 - OSPF NSSA external type 2\n"
    "       E1 - OSPF external type 1, E2 - OSPF external type 2, m - OMP\n"
    "       n - NAT, Ni - NAT inside, No - NAT outside, Nd - NAT DIA\n"
    "       i - IS-IS, su - IS-IS summary, L1 - IS-IS level-1, L2 - IS-IS level-2\n"
    "       ia - IS-IS inter area, * - candidate default, U - per-user static route\n"
    "       H - NHRP, G - NHRP registered, g - NHRP registration summary\n"
    "       o - ODR, P - periodic downloaded static route, l - LISP\n"
    "       a - application route\n"
    "       + - replicated route, % - next hop override, p - overrides from PfR\n"
    "       & - replicated local route overrides by connected\n"
    "\n"
)

_GPL_NOTICE = """\
Cisco IOS-XE software, Copyright (c) 2005-2023 by cisco Systems, Inc.
All rights reserved.  Certain components of Cisco IOS-XE software are
licensed under the GNU General Public License ("GPL") Version 2.0.  The
software code licensed under GPL Version 2.0 is free software that comes
with ABSOLUTELY NO WARRANTY.  You can redistribute and/or modify such
GPL code under the terms of GPL Version 2.0.  For more details, see the
documentation or "License Notice" file accompanying the IOS-XE software,
or the applicable URL provided on the flyer accompanying the IOS-XE
software.
"""

_CRYPTO_NOTICE = """\
This product contains cryptographic features and is subject to United
States and local country laws governing import, export, transfer and
use. Delivery of Cisco cryptographic products does not imply
third-party authority to import, export, distribute or use encryption.
Importers, exporters, distributors and users are responsible for
compliance with U.S. and local country laws. By using this product you
agree to comply with applicable laws and regulations. If you are unable
to comply with U.S. and local laws, return this product immediately.

A summary of U.S. laws governing Cisco cryptographic products may be found at:
http://www.cisco.com/wwl/export/crypto/tool/stqrg.html

If you require further assistance please contact us by sending email to
export@cisco.com.
"""

_LICENSES = (
    "Technology Package License Information: \n"
    "\n"
    "-----------------------------------------------------------------\n"
    "Technology    Type              Technology-package   Technology-package\n"
    "                                Current              Next Reboot  \n"
    "------------------------------------------------------------------\n"
    "appxk9           None             None                 None\n"
    "uck9             None             None                 None\n"
    "securityk9       Smart License    securityk9           securityk9\n"
    "ipbase           Smart License    ipbasek9             ipbasek9\n"
    "\n"
    "The current crypto throughput level is 250000 kbps \n"
    "\n"
    "\n"
    "Smart Licensing Status: Registration Not Applicable/Not Applicable\n"
)


# ---- small facts derived from the device ----------------------------------------------------


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


def model_of(device: Device) -> str:
    return device.model or DEFAULT_MODEL


def serial_of(device: Device) -> str:
    d = _digest("serial", device.name)
    digits = "".join(str(b % 10) for b in d[:4])
    alnum = "".join("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"[b % 33] for b in d[4:8])
    return f"FDO{digits}{alnum}"


def mac_of(device: Device, iface: Interface) -> str:
    d = _digest("mac", device.name)
    raw = bytes([0x00, d[0] & 0xFE, d[1], d[2], d[3], (d[4] + iface.index) & 0xFF])
    h = raw.hex()
    return f"{h[0:4]}.{h[4:8]}.{h[8:12]}"


def image_of(device: Device) -> str:
    model = model_of(device).upper()
    if model.startswith("ISR44"):
        family = "isr4400"
    elif model.startswith("ISR42"):
        family = "isr4200"
    elif model.startswith("C8"):
        family = "c8000be"
    elif model.startswith("ASR1"):
        family = "asr1000"
    else:
        family = "isr4300"
    return f"bootflash:{family}-universalk9.{IOS_XE_VERSION}.SPA.bin"


def format_uptime(seconds: float) -> str:
    """IOS style: ``1 year, 2 weeks, 3 days, 4 hours, 5 minutes`` (zero parts left out)."""
    minutes_total = max(0, int(seconds // 60))
    parts: list[str] = []
    units = (("year", 525_600), ("week", 10_080), ("day", 1_440), ("hour", 60), ("minute", 1))
    for unit, size in units:
        value, minutes_total = divmod(minutes_total, size)
        if value:
            parts.append(f"{value} {unit}{'s' if value != 1 else ''}")
    return ", ".join(parts) if parts else "0 minutes"


def interface_network(iface: Interface) -> ipaddress.IPv4Interface | None:
    """The interface's address with its mask (the lab state keeps the address only)."""
    if not iface.ip_address:
        return None
    if "/" in iface.ip_address:
        return ipaddress.IPv4Interface(iface.ip_address)
    if iface.name.lower().startswith("loopback"):
        plen = 32
    elif iface.link is not None:
        plen = 30
    else:
        plen = 24
    return ipaddress.IPv4Interface(f"{iface.ip_address}/{plen}")


def default_description(net: LabNetwork, iface: Interface) -> str | None:
    if iface.link is None or iface.link not in net.links:
        return None
    link = net.links[iface.link]
    return f"{link.role.value.upper()} link {link.name}"


def description_of(
    net: LabNetwork, memory: CliMemory, device: Device, iface: Interface, *, saved: bool = False
) -> str | None:
    """The configured description; ``""`` set by ``no description`` means none."""
    store = memory.saved_descriptions if saved else memory.descriptions
    text = store.get((device.name, iface.name.lower()))
    if text is None:
        return default_description(net, iface)
    return text or None


def _hardware(device: Device, iface: Interface) -> str:
    name = iface.name.lower()
    if name.startswith("loopback"):
        return "Loopback"
    if name.startswith("tengigabitethernet"):
        return f"{model_of(device)}-2x10GE"
    return f"{model_of(device)}-3x1GE"


def _media(iface: Interface) -> str:
    if iface.name.lower().startswith("tengigabitethernet"):
        return "Full Duplex, 10000Mbps, link type is force-up, media type is SFP-10GBase-LR"
    return "Full Duplex, 1000Mbps, link type is auto, media type is RJ45"


# ---- show version ---------------------------------------------------------------------------


def show_version(device: Device, now: float) -> str:
    uptime = format_uptime(now - device.boot_time)
    model = model_of(device)
    pid = model if "/" in model or model.upper().startswith(("C8", "ASR")) else f"{model}/K9"
    gig = sum(1 for i in device.interfaces if "gigabitethernet" in i.name.lower())
    return (
        f"Cisco IOS XE Software, Version {IOS_XE_VERSION}\n"
        "Cisco IOS Software [Cupertino], ISR Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), "
        f"Version {IOS_VERSION}, RELEASE SOFTWARE (fc3)\n"
        "Technical Support: http://www.cisco.com/techsupport\n"
        "Copyright (c) 1986-2023 by Cisco Systems, Inc.\n"
        "Compiled Fri 20-Oct-23 10:44 by mcpre\n"
        "\n\n"
        f"{_GPL_NOTICE}"
        "\n\n"
        f"ROM: {ROMMON}\n"
        "\n"
        f"{device.name} uptime is {uptime}\n"
        f"Uptime for this control processor is {uptime}\n"
        "System returned to ROM by Reload Command\n"
        f'System image file is "{image_of(device)}"\n'
        "Last reload reason: Reload Command\n"
        "\n\n\n"
        f"{_CRYPTO_NOTICE}"
        "\n\n\n"
        f"{_LICENSES}"
        "\n"
        f"cisco {pid} (1RU) processor with 1795999K/6147K bytes of memory.\n"
        f"Processor board ID {serial_of(device)}\n"
        "Router operating mode: Autonomous\n"
        f"{gig} Gigabit Ethernet interfaces\n"
        "32768K bytes of non-volatile configuration memory.\n"
        "4194304K bytes of physical memory.\n"
        "3207167K bytes of flash memory at bootflash:.\n"
        "\n"
        "Configuration register is 0x2102\n"
    )


# ---- configuration --------------------------------------------------------------------------


def _route_sort_key(route: StaticRoute) -> tuple[int, int, int, int]:
    return (
        int(ipaddress.IPv4Address(route.prefix)),
        int(ipaddress.IPv4Address(route.mask)),
        int(ipaddress.IPv4Address(route.next_hop)),
        route.distance,
    )


def route_line(route: StaticRoute) -> str:
    tail = f" {route.distance}" if route.distance != 1 else ""
    return f"ip route {route.prefix} {route.mask} {route.next_hop}{tail}"


def interface_config(
    net: LabNetwork, memory: CliMemory, device: Device, iface: Interface, *, saved: bool = False
) -> list[str]:
    lines = [f"interface {iface.name}"]
    text = description_of(net, memory, device, iface, saved=saved)
    if text:
        lines.append(f" description {text}")
    is_loopback = iface.name.lower().startswith("loopback")
    if not is_loopback and iface.speed_bps != 1_000_000_000:
        lines.append(f" bandwidth {max(1, iface.speed_bps // 1000)}")
    addr = interface_network(iface)
    if addr is None:
        lines.append(" no ip address")
    else:
        lines.append(f" ip address {addr.ip} {addr.netmask}")
    if not iface.admin_up:
        lines.append(" shutdown")
    if not is_loopback:
        lines.append(" negotiation auto")
    lines.append("!")
    return lines


def _config_body(
    net: LabNetwork, memory: CliMemory, device: Device, routes: Iterable[StaticRoute], saved: bool
) -> str:
    lines = [
        "!",
        "version 17.9",
        "service timestamps debug datetime msec",
        "service timestamps log datetime msec",
        "service password-encryption",
        "platform qfp utilization monitor load 80",
        "no platform punt-keepalive disable-kernel-core",
        "!",
        f"hostname {device.name}",
        "!",
        "boot-start-marker",
        "boot-end-marker",
        "!",
        "!",
        "no aaa new-model",
        "!",
        "no ip domain lookup",
        "ip domain name lab.tiandi",
        "!",
        "login on-success log",
        "!",
        f"license udi pid {model_of(device)}/K9 sn {serial_of(device)}",
        "!",
        "redundancy",
        " mode none",
        "!",
    ]
    for iface in device.interfaces:
        lines.extend(interface_config(net, memory, device, iface, saved=saved))
    lines.extend(["ip forward-protocol nd", "no ip http server", "no ip http secure-server"])
    lines.extend(route_line(r) for r in sorted(routes, key=_route_sort_key))
    lines.extend(
        [
            "ip ssh version 2",
            "!",
            "!",
            "control-plane",
            "!",
            "!",
            "line con 0",
            " transport input none",
            " stopbits 1",
            "line vty 0 4",
            " login local",
            " transport preferred none",
            " transport input ssh",
            "!",
            "end",
        ]
    )
    return "\n".join(lines) + "\n"


def show_running_config(net: LabNetwork, memory: CliMemory, device: Device) -> str:
    body = _config_body(net, memory, device, device.static_routes, saved=False)
    return f"Building configuration...\n\nCurrent configuration : {len(body)} bytes\n{body}"


def show_running_interface(
    net: LabNetwork, memory: CliMemory, device: Device, iface: Interface
) -> str:
    body = "!\n" + "\n".join(interface_config(net, memory, device, iface)[:-1]) + "\nend\n"
    return f"Building configuration...\n\nCurrent configuration : {len(body)} bytes\n{body}"


def show_startup_config(net: LabNetwork, memory: CliMemory, device: Device) -> str:
    body = _config_body(net, memory, device, device.saved_routes, saved=True)
    return f"Using {len(body)} out of {NVRAM_BYTES} bytes\n{body}"


# ---- interfaces -----------------------------------------------------------------------------


def _status_words(iface: Interface) -> tuple[str, str]:
    if not iface.admin_up:
        return "administratively down", "down"
    if not iface.carrier_up:
        return "down", "down"
    return "up", "up"


def show_ip_interface_brief(device: Device) -> str:
    lines = [
        f"{'Interface':<22} {'IP-Address':<15} {'OK?':<3} {'Method':<6} {'Status':<21} Protocol"
    ]
    for iface in device.interfaces:
        status, proto = _status_words(iface)
        addr = interface_network(iface)
        ip = str(addr.ip) if addr else "unassigned"
        method = "NVRAM" if addr else "unset"
        lines.append(f"{iface.name:<22} {ip:<15} {'YES':<3} {method:<6} {status:<21} {proto}")
    return "\n".join(lines) + "\n"


def _load(rate_bps: float, speed_bps: int) -> int:
    if speed_bps <= 0:
        return 1
    return max(1, min(255, round(255 * rate_bps / speed_bps)))


def show_interface(
    net: LabNetwork, memory: CliMemory, device: Device, iface: Interface, now: float
) -> str:
    status, proto = _status_words(iface)
    in_octets, out_octets = iface.octets(now)
    in_rate = int(iface.in_rate_bps) if iface.oper_up else 0
    out_rate = int(iface.out_rate_bps) if iface.oper_up else 0
    in_pps = in_rate // 8 // AVG_PACKET_BYTES
    out_pps = out_rate // 8 // AVG_PACKET_BYTES
    in_pkts = in_octets // AVG_PACKET_BYTES
    out_pkts = out_octets // AVG_PACKET_BYTES
    bw_kbit = max(1, iface.speed_bps // 1000)
    mac = mac_of(device, iface)
    is_loopback = iface.name.lower().startswith("loopback")
    lines = [f"{iface.name} is {status}, line protocol is {proto} "]
    if is_loopback:
        lines.append("  Hardware is Loopback")
    else:
        lines.append(f"  Hardware is {_hardware(device, iface)}, address is {mac} (bia {mac})")
    text = description_of(net, memory, device, iface)
    if text:
        lines.append(f"  Description: {text}")
    addr = interface_network(iface)
    if addr is not None:
        lines.append(f"  Internet address is {addr.with_prefixlen}")
    if is_loopback:
        lines.extend(
            [
                f"  MTU 1514 bytes, BW {bw_kbit} Kbit/sec, DLY 5000 usec, ",
                "     reliability 255/255, txload 1/255, rxload 1/255",
                "  Encapsulation LOOPBACK, loopback not set",
                "  Keepalive set (10 sec)",
                "  Last input never, output never, output hang never",
            ]
        )
    else:
        last = "00:00:00" if iface.oper_up else "never"
        lines.extend(
            [
                f"  MTU 1500 bytes, BW {bw_kbit} Kbit/sec, DLY 10 usec, ",
                f"     reliability 255/255, txload {_load(out_rate, iface.speed_bps)}/255, "
                f"rxload {_load(in_rate, iface.speed_bps)}/255",
                "  Encapsulation ARPA, loopback not set",
                "  Keepalive not supported ",
                f"  {_media(iface)}",
                "  output flow-control is off, input flow-control is off",
                "  ARP type: ARPA, ARP Timeout 04:00:00",
                f"  Last input {last}, output {last}, output hang never",
            ]
        )
    lines.extend(
        [
            '  Last clearing of "show interface" counters never',
            "  Input queue: 0/375/0/0 (size/max/drops/flushes); Total output drops: 0",
            "  Queueing strategy: fifo",
            "  Output queue: 0/40 (size/max)",
            f"  5 minute input rate {in_rate} bits/sec, {in_pps} packets/sec",
            f"  5 minute output rate {out_rate} bits/sec, {out_pps} packets/sec",
            f"     {in_pkts} packets input, {in_octets} bytes, 0 no buffer",
            "     Received 0 broadcasts (0 IP multicasts)",
            "     0 runts, 0 giants, 0 throttles ",
            f"     {iface.in_errors} input errors, 0 CRC, 0 frame, 0 overrun, 0 ignored",
            "     0 watchdog, 0 multicast, 0 pause input",
            f"     {out_pkts} packets output, {out_octets} bytes, 0 underruns",
            "     Output 0 broadcasts (0 IP multicasts)",
            "     0 output errors, 0 collisions, 0 interface resets",
            "     0 unknown protocol drops",
            "     0 babbles, 0 late collision, 0 deferred",
            "     0 lost carrier, 0 no carrier, 0 pause output",
            "     0 output buffer failures, 0 output buffers swapped out",
        ]
    )
    return "\n".join(lines) + "\n"


def show_interfaces(
    net: LabNetwork, memory: CliMemory, device: Device, ifaces: Iterable[Interface], now: float
) -> str:
    return "".join(show_interface(net, memory, device, i, now) for i in ifaces)


# ---- routing table --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteEntry:
    code: str  # "S*", "S", "C", "L"
    network: ipaddress.IPv4Network
    distance: int = 0
    next_hop: str | None = None
    interface: str | None = None


def _connected(device: Device) -> list[tuple[ipaddress.IPv4Interface, Interface]]:
    out: list[tuple[ipaddress.IPv4Interface, Interface]] = []
    for iface in device.interfaces:
        addr = interface_network(iface)
        if addr is not None and iface.oper_up:
            out.append((addr, iface))
    return out


def next_hop_resolves(net: LabNetwork, device: Device, next_hop: str) -> bool:
    """Would IOS install a static route via ``next_hop`` now (lab rules: see lab/traffic.py)?"""
    link = net.by_probe_address.get(next_hop)
    if link is not None and link.router == device.name:
        return link_usable(net, link)
    try:
        hop = ipaddress.IPv4Address(next_hop)
    except ValueError:
        return False
    return any(hop in addr.network and hop != addr.ip for addr, _ in _connected(device))


def routing_table(net: LabNetwork, device: Device) -> list[RouteEntry]:
    """Installed routes: connected + local of up interfaces, best-distance resolvable statics."""
    entries: list[RouteEntry] = []
    for addr, iface in _connected(device):
        entries.append(RouteEntry("C", addr.network, interface=iface.name))
        if addr.network.prefixlen < 32:
            entries.append(
                RouteEntry("L", ipaddress.IPv4Network(f"{addr.ip}/32"), interface=iface.name)
            )
    by_prefix: dict[ipaddress.IPv4Network, list[StaticRoute]] = {}
    for route in device.static_routes:
        if not next_hop_resolves(net, device, route.next_hop):
            continue
        network = ipaddress.IPv4Network(f"{route.prefix}/{route.mask}")
        by_prefix.setdefault(network, []).append(route)
    connected_nets = {e.network for e in entries}
    for network, routes in by_prefix.items():
        if network in connected_nets:
            continue  # distance 0 wins
        best = min(r.distance for r in routes)
        code = "S*" if network.prefixlen == 0 else "S"
        for r in sorted(routes, key=_route_sort_key):
            if r.distance == best:
                entries.append(RouteEntry(code, network, r.distance, next_hop=r.next_hop))
    return entries


def _classful(network: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    first = network.network_address.packed[0]
    plen = 8 if first < 128 else 16 if first < 192 else 24
    return ipaddress.IPv4Network(f"{network.network_address}/{plen}", strict=False)


def _entry_lines(entries: list[RouteEntry], indent: int) -> list[str]:
    """Lines for the entries of one prefix (several next hops share the first line's prefix)."""
    first = entries[0]
    head = f"{first.code:<{indent}}{first.network}"
    if first.next_hop is None:
        return [f"{head} is directly connected, {first.interface}"]
    lines = [f"{head} [{first.distance}/0] via {first.next_hop}"]
    pad = " " * (len(head) + 1)
    lines.extend(f"{pad}[{e.distance}/0] via {e.next_hop}" for e in entries[1:])
    return lines


def show_ip_route(net: LabNetwork, device: Device, only: str | None = None) -> str:
    """``show ip route [static|connected]``."""
    table = routing_table(net, device)
    defaults = [e for e in table if e.code == "S*"]
    if only == "static":
        table = [e for e in table if e.code.startswith("S")]
    elif only == "connected":
        table = [e for e in table if e.code in ("C", "L")]
    out = [ROUTE_CODES]
    if defaults:
        out.append(f"Gateway of last resort is {defaults[0].next_hop} to network 0.0.0.0\n")
    else:
        out.append("Gateway of last resort is not set\n")
    out.append("\n")

    top: dict[ipaddress.IPv4Network, list[RouteEntry]] = {}
    groups: dict[ipaddress.IPv4Network, dict[ipaddress.IPv4Network, list[RouteEntry]]] = {}
    for e in table:
        major = _classful(e.network)
        if e.network.prefixlen < major.prefixlen:
            top.setdefault(e.network, []).append(e)
        else:
            groups.setdefault(major, {}).setdefault(e.network, []).append(e)
    blocks: list[tuple[ipaddress.IPv4Network, list[str]]] = []
    for network, entries in top.items():
        blocks.append((network, _entry_lines(entries, 6)))
    for major, members in groups.items():
        if len(members) == 1 and next(iter(members)).prefixlen == major.prefixlen:
            network, entries = next(iter(members.items()))
            blocks.append((network, _entry_lines(entries, 6)))
            continue
        masks = {n.prefixlen for n in members}
        count = len(members)
        if len(masks) == 1:
            header = (
                f"      {major.network_address}/{next(iter(masks))} is subnetted, {count} subnets"
            )
        else:
            header = f"      {major} is variably subnetted, {count} subnets, {len(masks)} masks"
        lines = [header]
        for network in sorted(members, key=lambda n: (int(n.network_address), n.prefixlen)):
            lines.extend(_entry_lines(members[network], 9))
        blocks.append((major, lines))
    blocks.sort(key=lambda b: (int(b[0].network_address), b[0].prefixlen))
    for _, lines in blocks:
        out.extend(line + "\n" for line in lines)
    return "".join(out)
