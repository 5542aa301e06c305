"""Calls between lab devices: what a codec's dial and an MCU's dial-out do to the lab state.

A call is a ``Call`` on each lab codec taking part (the caller, and the callee when it is a lab
codec too), so each site's link carries it (``lab.traffic.site_demand_bps``). A codec that dials
``<conference>@<mcu>`` joins that MCU conference; an MCU that adds a participant dials it out.
An MCU keeps only participant names (``Device.conferences``): the lab does not count the hub's
share of the media, only the sites'.
"""

from __future__ import annotations

from dataclasses import dataclass

from inventory.enums import DeviceKind
from lab.ssh.cli import CliMemory
from lab.state import Call, Device, LabNetwork
from lab.traffic import active_default_route, reroute_site

MIN_CALL_RATE = 64
MAX_CALL_RATE = 6000
MAX_CALLS = 4  # MultiSite: the codec itself plus three far ends


class CallRefused(Exception):
    """The call cannot be placed; the message is the reason the device gives."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a dialled number reaches in the lab."""

    codec: Device | None = None
    mcu: Device | None = None
    conference: str | None = None


def _strip_uri(number: str) -> str:
    text = number.strip().strip('"')
    for scheme in ("sip:", "h323:", "SIP:", "H323:"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    return text


def find_device(net: LabNetwork, ident: str, kind: DeviceKind | None = None) -> Device | None:
    """A lab device by name or management address (``name@domain`` URIs allowed)."""
    text = _strip_uri(ident)
    host = text.split("@", 1)[0] if "@" in text else text
    for candidate in (text, host):
        dev = net.devices.get(candidate) or net.by_mgmt_address.get(candidate)
        if dev is not None and (kind is None or dev.kind is kind):
            return dev
    return None


def resolve(net: LabNetwork, number: str) -> Target:
    """``conference@mcu`` → an MCU conference; a codec's name/URI/address → that codec."""
    text = _strip_uri(number)
    if "@" in text:
        conference, domain = text.split("@", 1)
        mcu = net.devices.get(domain.split(".", 1)[0]) or net.devices.get(domain)
        if mcu is not None and mcu.kind is DeviceKind.MCU:
            return Target(mcu=mcu, conference=conference)
    codec = find_device(net, text, DeviceKind.VIDEO_ENDPOINT)
    return Target(codec=codec)


def site_reachable(net: LabNetwork, device: Device) -> bool:
    """Has the device's site a router with a usable default route (can media leave it)?"""
    site = net.sites.get(device.site)
    if site is None:
        return False
    for name in site.devices:
        router = net.devices[name]
        ready = router.kind is DeviceKind.ROUTER and router.powered
        if ready and active_default_route(net, router) is not None:
            return True
    return False


def _check_can_call(net: LabNetwork, codec: Device, role: str) -> None:
    if not codec.powered:
        raise CallRefused(f"{role} {codec.name} is not answering")
    if not codec.registered:
        raise CallRefused(f"{role} {codec.name} is not registered")
    if len(codec.calls) >= MAX_CALLS:
        raise CallRefused(f"{role} {codec.name} has no free call slot")
    if not site_reachable(net, codec):
        raise CallRefused(f"{role} {codec.name}: network unreachable")


def _add_call(
    net: LabNetwork,
    memory: CliMemory,
    codec: Device,
    remote: str,
    rate: int,
    *,
    incoming: bool = False,
) -> Call:
    call = Call(
        call_id=memory.new_call_id(codec),
        remote=remote,
        rate_kbps=rate,
        started=net.now(),
        tx_kbps=rate,
        rx_kbps=rate,
    )
    codec.calls.append(call)
    if incoming:
        memory.incoming.add((codec.name, call.call_id))
    reroute_site(net, codec.site)
    return call


def dial(net: LabNetwork, memory: CliMemory, caller: Device, number: str, rate: int) -> Call:
    """The caller dials ``number`` at ``rate`` kbit/s; returns the caller's new call."""
    if not MIN_CALL_RATE <= rate <= MAX_CALL_RATE:
        raise CallRefused(f"CallRate {rate} out of range ({MIN_CALL_RATE}..{MAX_CALL_RATE})")
    _check_can_call(net, caller, "endpoint")
    target = resolve(net, number)
    if target.mcu is not None and target.conference is not None:
        mcu = target.mcu
        if not mcu.powered or target.conference not in mcu.conferences:
            raise CallRefused(f"No conference {target.conference} on {mcu.name}")
        members = mcu.conferences[target.conference]
        if caller.name not in members:
            if ports_in_use(mcu) >= mcu.ports_total:
                raise CallRefused(f"{mcu.name}: no free ports")
            members.append(caller.name)
        return _add_call(net, memory, caller, f"{target.conference}@{mcu.name}", rate)
    if target.codec is not None:
        if target.codec is caller:
            raise CallRefused("Cannot call yourself")
        _check_can_call(net, target.codec, "far end")
        _add_call(net, memory, target.codec, caller.name, rate, incoming=True)
        return _add_call(net, memory, caller, target.codec.name, rate)
    # A number outside the lab: the call connects to the outside world.
    return _add_call(net, memory, caller, _strip_uri(number), rate)


def _remove(net: LabNetwork, memory: CliMemory, codec: Device, calls: list[Call]) -> None:
    for call in calls:
        codec.calls.remove(call)
        memory.incoming.discard((codec.name, call.call_id))
    if calls:
        reroute_site(net, codec.site)


def hang_up(net: LabNetwork, memory: CliMemory, codec: Device, call_id: int) -> bool:
    """End one call of ``codec`` (and its far-end half); False when there is no such call."""
    call = next((c for c in codec.calls if c.call_id == call_id), None)
    if call is None:
        return False
    _remove(net, memory, codec, [call])
    _end_far_half(net, memory, codec, call)
    return True


def _end_far_half(net: LabNetwork, memory: CliMemory, codec: Device, call: Call) -> None:
    if "@" in call.remote:
        conference, mcu_name = call.remote.split("@", 1)
        mcu = net.devices.get(mcu_name)
        if mcu is not None and conference in mcu.conferences:
            members = mcu.conferences[conference]
            if codec.name in members:
                members.remove(codec.name)
        return
    far = net.devices.get(call.remote)
    if far is None or far.kind is not DeviceKind.VIDEO_ENDPOINT:
        return
    half = next((c for c in far.calls if c.remote == codec.name), None)
    if half is not None:
        _remove(net, memory, far, [half])


def ports_in_use(mcu: Device) -> int:
    return sum(len(members) for members in mcu.conferences.values())


def mcu_dial_out(
    net: LabNetwork, memory: CliMemory, mcu: Device, conference: str, endpoint: Device
) -> Call:
    """The MCU calls ``endpoint`` into ``conference`` at the endpoint's default call rate."""
    _check_can_call(net, endpoint, "endpoint")
    remote = f"{conference}@{mcu.name}"
    rate = endpoint.default_call_rate_kbps
    return _add_call(net, memory, endpoint, remote, rate, incoming=True)


def mcu_drop(
    net: LabNetwork, memory: CliMemory, mcu: Device, conference: str, endpoint_name: str
) -> None:
    """The MCU hangs up on ``endpoint_name``'s call into ``conference`` (if it has one)."""
    endpoint = net.devices.get(endpoint_name)
    if endpoint is None:
        return
    remote = f"{conference}@{mcu.name}"
    _remove(net, memory, endpoint, [c for c in endpoint.calls if c.remote == remote])


def connected_to(net: LabNetwork, mcu: Device, conference: str, endpoint_name: str) -> Call | None:
    endpoint = net.devices.get(endpoint_name)
    if endpoint is None or not endpoint.powered:
        return None
    remote = f"{conference}@{mcu.name}"
    return next((c for c in endpoint.calls if c.remote == remote), None)
