"""Faults injected into the lab network: link cuts, bad quality, rain fade, outages, reboots.

Two layers:

- **Primitives** — plain functions on a ``LabNetwork`` (``set_link_cut``, ``set_link_quality``,
  ``set_fade``, ``power_off``, ``power_on``, ``reboot_device``, ``hang_up``). Each changes state
  the way the real event would (a cut drops the carrier, so ifOperStatus goes down, counters
  stop and the probe target falls silent) and re-routes the sites it touches, which settles
  their counters before any rate changes.
- **``FaultBook``** — the active faults with ids, descriptions and end times. The state of a link
  or a device is *derived* from every fault that touches it (a link is cut while any cut, flap
  in its down phase or backbone outage covers it; a terminal fades to the deepest fade over its
  province), so overlapping faults and their clearing in any order end in the right state.
  Time-driven changes (a flap's phases, a fade or any fault with a ``duration`` ending) happen
  in ``advance()``, which the runner calls at ``next_due()``; tests call it on a fake clock.

Rain fade model: Es/No and Rx level drop by the depth, uplink power control raises Tx power by
up to 6 dB, adaptive coding picks the best MODCOD that still has 1 dB of margin
(``lab.build.MODCODS``), the satellite link's capacity scales with that MODCOD's efficiency, and
loss grows with depth (0.2 %*depth², at most 50 %); below the lowest MODCOD the demodulator
loses lock and the link carries nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from inventory.enums import DeviceKind, LinkRole, Tier
from inventory.errors import TiandiError
from lab.build import MODCOD_BY_NUMBER, modcod_for
from lab.state import Device, LabNetwork, Link, StaticRoute
from lab.traffic import active_default_route, reroute_site, site_demand_bps

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

UPC_RANGE_DB = 6.0  # uplink power control headroom of the terminals' BUCs
MAX_FADE_LOSS = 0.5


class FaultError(TiandiError):
    """A fault request is invalid; the message says which field or target and why."""


class FaultTargetUnknown(FaultError):
    """A fault names a link, device or province the lab does not have."""


class FaultNotActive(FaultError):
    """A fault id that is not (or no longer) active."""


# ---- durations --------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from ``10``, ``2.5``, ``"10s"``, ``"500ms"``, ``"2m"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '10s', '2m', '1h30m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or _DURATION_PART.sub("", text).strip():
                raise ValueError(
                    f"{value!r} is not a duration; write seconds (10) or '10s', '2m', '1h30m', "
                    "'500ms'"
                ) from None
            seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    else:
        raise ValueError("a duration is a number of seconds or text like '10s', '2m', '1h30m'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration)]


# ---- fault parameters (one model per kind; the API body and a timeline entry) -------------


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    duration: Seconds | None = Field(
        default=None, gt=0, description="clear the fault by itself after this long"
    )


class CutLink(_Params):
    """Cut a link: the carrier drops, the interface goes oper-down, probes get no answer."""

    link: str


class LinkQuality(_Params):
    """Degrade a link as its probes see it (and the calls riding it)."""

    link: str
    loss_pct: float | None = Field(default=None, ge=0, le=100)
    latency_ms: float | None = Field(default=None, ge=0, le=60_000)
    jitter_ms: float | None = Field(default=None, ge=0, le=10_000)

    @model_validator(mode="after")
    def _something(self) -> LinkQuality:
        if self.loss_pct is None and self.latency_ms is None and self.jitter_ms is None:
            raise ValueError("give at least one of loss_pct, latency_ms, jitter_ms")
        return self


class RainFade(_Params):
    """Rain over a province: its sites' satellite terminals fade by ``depth_db``."""

    province: str
    depth_db: float = Field(gt=0, le=40)
    duration: Seconds = Field(gt=0, description="how long the rain lasts")


class DeviceDown(_Params):
    """Power a device off: it answers on no face; its site's traffic stops if it is a router."""

    device: str


class Reboot(_Params):
    """Reboot a device: uptime and counters restart, the running config is the saved one."""

    device: str
    down_for: Seconds = Field(default=0.0, ge=0, le=3600, description="seconds it takes to boot")


class CodecOff(_Params):
    """Switch a video endpoint off: its calls end and it unregisters."""

    device: str


class Flap(_Params):
    """Flap a link: down ``down`` seconds, up ``up`` seconds, repeating until cleared."""

    link: str
    down: Seconds = Field(gt=0)
    up: Seconds = Field(gt=0)


class BackboneOutage(_Params):
    """Every primary link of a province and of the sites below it is cut."""

    province: str


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RestoreLink(_Action):
    """End the cuts and flaps of a link."""

    link: str


class ClearQuality(_Action):
    """End the quality faults of a link."""

    link: str


class DeviceUp(_Action):
    """Power a device back on (it boots: uptime and counters restart)."""

    device: str


class CodecOn(_Action):
    """Switch a video endpoint back on (it boots and registers)."""

    device: str


class ClearMatching(_Action):
    """End every active fault of ``kind`` (if given) that targets the given link/device/province."""

    kind: str | None = None
    link: str | None = None
    device: str | None = None
    province: str | None = None


FAULT_KINDS: dict[str, type[_Params]] = {
    "cut_link": CutLink,
    "link_quality": LinkQuality,
    "rain_fade": RainFade,
    "device_down": DeviceDown,
    "reboot": Reboot,
    "codec_off": CodecOff,
    "flap": Flap,
    "backbone_outage": BackboneOutage,
}
ACTION_KINDS: dict[str, type[_Action]] = {
    "restore_link": RestoreLink,
    "clear_quality": ClearQuality,
    "device_up": DeviceUp,
    "codec_on": CodecOn,
    "clear": ClearMatching,
}
ALL_KINDS: tuple[str, ...] = (*FAULT_KINDS, *ACTION_KINDS)


def parse_params(kind: str, raw: Mapping[str, Any]) -> _Params | _Action:
    """Validate the parameters of a fault or action kind; FaultError lists every problem."""
    model: type[_Params] | type[_Action] | None = FAULT_KINDS.get(kind) or ACTION_KINDS.get(kind)
    if model is None:
        raise FaultError(f"unknown fault kind {kind!r}; known kinds: {', '.join(ALL_KINDS)}")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or kind}: {e['msg']}" for e in err.errors()
        )
        raise FaultError(f"{kind}: {problems}") from err


# ---- primitives ---------------------------------------------------------------------------


def set_link_cut(net: LabNetwork, link: Link, cut: bool) -> None:
    """Cut or restore a link: its router interface's carrier follows; the site re-routes."""
    link.cut = cut
    router = net.devices.get(link.router)
    iface = router.interface_by_name(link.interface) if router else None
    if iface is not None:
        iface.carrier_up = not cut
    sync_site(net, link.site)


def set_link_quality(
    net: LabNetwork,
    link: Link,
    loss: float,
    latency_ms: float | None,
    jitter_ms: float | None,
) -> None:
    """Loss 0..1 and latency/jitter overrides (None = the link's base values)."""
    link.loss = loss
    link.latency_ms = latency_ms
    link.jitter_ms = jitter_ms
    update_call_quality(net, link.site)


@dataclass(frozen=True, slots=True)
class TerminalNominal:
    """A satellite terminal's clear-sky values and its link's capacity, captured at start."""

    esno_db10: int
    rx_level_dbm10: int
    tx_power_dbm10: int
    modcod: int
    capacity_kbps: int | None  # of the satellite link it serves, if any


def fade_loss(depth_db: float) -> float:
    return min(MAX_FADE_LOSS, 0.002 * depth_db * depth_db)


def set_fade(
    net: LabNetwork,
    terminal: Device,
    link: Link | None,
    depth_db: float,
    nominal: TerminalNominal,
) -> None:
    """Put a terminal (and its satellite link) at ``depth_db`` of rain fade; 0 = clear sky."""
    terminal.esno_db10 = nominal.esno_db10 - round(depth_db * 10)
    terminal.rx_level_dbm10 = nominal.rx_level_dbm10 - round(depth_db * 10)
    terminal.tx_power_dbm10 = nominal.tx_power_dbm10 + round(min(depth_db, UPC_RANGE_DB) * 10)
    if depth_db <= 0:
        terminal.modcod = nominal.modcod
        terminal.demod_locked = True
    else:
        mc = modcod_for(terminal.esno_db10)
        terminal.demod_locked = mc is not None
        terminal.modcod = mc.number if mc else 0
    if link is not None:
        base = MODCOD_BY_NUMBER.get(nominal.modcod)
        now_mc = MODCOD_BY_NUMBER.get(terminal.modcod)
        if nominal.capacity_kbps is not None:
            if base is None or now_mc is None or depth_db <= 0:
                link.capacity_kbps = nominal.capacity_kbps
            else:
                ratio = min(1.0, now_mc.efficiency / base.efficiency)
                link.capacity_kbps = max(1, round(nominal.capacity_kbps * ratio))
        link.fade_loss = fade_loss(depth_db) if depth_db > 0 else 0.0
    sync_site(net, terminal.site)


def hang_up(net: LabNetwork, device: Device) -> list[str]:
    """End every call of a device, and the far ends' legs of those calls; returns sites touched."""
    touched = {device.site}
    names = {device.name, device.mgmt_address}
    device.calls.clear()
    device.conferences.clear()
    for other in net.devices.values():
        if other.calls and any(_remote_is(c.remote, names) for c in other.calls):
            other.calls = [c for c in other.calls if not _remote_is(c.remote, names)]
            touched.add(other.site)
    return sorted(touched)


def _remote_is(remote: str, names: set[str]) -> bool:
    target = remote.strip().lower()
    host = target.split("@", 1)[-1] if "@" in target else target
    user = target.split("@", 1)[0]
    return target in names or host in names or user in names


def power_off(net: LabNetwork, device: Device) -> None:
    """The device stops answering; its calls and conferences end; its site re-routes."""
    device.powered = False
    touched = hang_up(net, device)
    if device.kind is DeviceKind.VIDEO_ENDPOINT:
        device.registered = False
    for site in touched:
        sync_site(net, site)


def reload_saved_config(device: Device) -> None:
    """What a boot does to the running config: it becomes the saved (startup) config."""
    device.static_routes = [
        StaticRoute(r.prefix, r.mask, r.next_hop, r.distance) for r in device.saved_routes
    ]


def _boot(net: LabNetwork, device: Device, reload: Callable[[Device], None]) -> None:
    now = net.now()
    device.boot_time = now
    for iface in device.interfaces:
        iface.in_octets = iface.out_octets = 0.0
        iface.in_errors = 0
        iface.mark = now
    reload(device)
    device.calls.clear()
    device.conferences.clear()
    if device.kind is DeviceKind.VIDEO_ENDPOINT:
        device.registered = True


def power_on(
    net: LabNetwork, device: Device, reload: Callable[[Device], None] = reload_saved_config
) -> None:
    """Power a device on: it boots (uptime 0, counters 0, saved config) and answers again."""
    device.powered = True
    _boot(net, device, reload)
    sync_site(net, device.site)


def reboot_device(
    net: LabNetwork, device: Device, reload: Callable[[Device], None] = reload_saved_config
) -> None:
    """An instant reboot: calls drop, uptime and counters restart, saved config is loaded."""
    touched = hang_up(net, device)
    _boot(net, device, reload)
    for site in touched:
        sync_site(net, site)


def update_call_quality(net: LabNetwork, site_name: str, carrying: Link | None = None) -> None:
    """Each call of the site's codecs sees the loss/jitter of the link carrying the site.

    Without a carrying link the call loses everything; an overloaded link drops the excess.
    """
    site = net.sites[site_name]
    codecs = [net.devices[n] for n in site.devices]
    codecs = [d for d in codecs if d.kind is DeviceKind.VIDEO_ENDPOINT and d.calls]
    if not codecs:
        return
    if carrying is None:
        carrying = _carrying_link(net, site_name)
    if carrying is None:
        loss, jitter = 1.0, 0.0
    else:
        loss, _latency, jitter = carrying.effective()
        out_bps, in_bps = site_demand_bps(net, site_name)
        demand = max(out_bps, in_bps)
        capacity = carrying.capacity_kbps * 1000.0
        if demand > capacity > 0:
            loss = 1.0 - (1.0 - loss) * capacity / demand
    for dev in codecs:
        for call in dev.calls:
            call.loss_pct = round(min(1.0, loss) * 100.0, 2)
            call.jitter_ms = round(jitter, 1)


def _carrying_link(net: LabNetwork, site_name: str) -> Link | None:
    for name in net.sites[site_name].devices:
        dev = net.devices[name]
        if dev.interfaces and dev.powered:
            active = active_default_route(net, dev)
            if active is not None:
                return active[1]
    return None


def sync_site(net: LabNetwork, site_name: str) -> Link | None:
    """Re-route a site (settles then re-rates its interfaces) and refresh its calls' quality."""
    carrying = reroute_site(net, site_name)
    update_call_quality(net, site_name, carrying)
    return carrying


# ---- the fault book ---------------------------------------------------------------------


@dataclass
class Fault:
    """One active fault. ``until`` is None for a fault that lasts until cleared."""

    id: int
    kind: str
    params: _Params
    started: float
    until: float | None
    description: str

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params.model_dump(exclude_none=True),
            "description": self.description,
            "age_s": round(now - self.started, 3),
            "remaining_s": None if self.until is None else round(max(0.0, self.until - now), 3),
        }


@dataclass
class Outcome:
    """What a request did: the fault it started (if any), the faults it ended, in words."""

    description: str
    fault: Fault | None = None
    cleared: list[Fault] = field(default_factory=list)

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "description": self.description,
            "fault": self.fault.as_dict(now) if self.fault else None,
            "cleared": [f.id for f in self.cleared],
        }


@dataclass
class _Touched:
    links: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    terminals: set[str] = field(default_factory=set)

    def add(self, other: _Touched) -> None:
        self.links |= other.links
        self.devices |= other.devices
        self.terminals |= other.terminals


class FaultBook:
    """The lab's active faults, and the state they imply.

    ``reload_config`` is what a boot does to a device's running config (the SSH face's
    ``reload_config`` when it is wired, else ``reload_saved_config``).
    """

    def __init__(
        self,
        net: LabNetwork,
        reload_config: Callable[[Device], None] = reload_saved_config,
    ) -> None:
        self.net = net
        self.reload_config = reload_config
        self._faults: dict[int, Fault] = {}
        self._next_id = 1
        self._provinces = {s.name for s in net.sites.values() if s.tier == Tier.PROVINCE.value} | {
            s.province for s in net.sites.values() if s.province
        }
        self._sat_link_of: dict[str, Link] = {
            lk.terminal: lk for lk in net.links.values() if lk.terminal is not None
        }
        self._nominal: dict[str, TerminalNominal] = {}
        for dev in net.devices.values():
            if dev.kind is DeviceKind.SATELLITE_TERMINAL:
                lk = self._sat_link_of.get(dev.name)
                self._nominal[dev.name] = TerminalNominal(
                    dev.esno_db10,
                    dev.rx_level_dbm10,
                    dev.tx_power_dbm10,
                    dev.modcod,
                    lk.capacity_kbps if lk else None,
                )

    # -- queries --

    def active_faults(self) -> list[Fault]:
        return [self._faults[i] for i in sorted(self._faults)]

    def get(self, fault_id: int) -> Fault:
        try:
            return self._faults[fault_id]
        except KeyError:
            raise FaultNotActive(f"no active fault #{fault_id}") from None

    def next_due(self) -> float | None:
        """When ``advance`` next has something to do (an end, a flap phase), or None."""
        due: list[float] = []
        now = self.net.now()
        for f in self._faults.values():
            if f.until is not None:
                due.append(f.until)
            if isinstance(f.params, Flap):
                due.append(_flap_next_edge(f, now))
            if isinstance(f.params, Reboot) and f.params.down_for > 0:
                due.append(f.started + f.params.down_for)
        return min(due) if due else None

    # -- changes --

    def apply(self, kind: str, params: Mapping[str, Any] | _Params | _Action) -> Outcome:
        """Start a fault (or run a clearing action) of ``kind``; FaultError if it cannot."""
        if isinstance(params, _Params | _Action):
            parsed: _Params | _Action = params
            if type(parsed) is not (FAULT_KINDS.get(kind) or ACTION_KINDS.get(kind)):
                raise FaultError(f"parameters of type {type(parsed).__name__} are not for {kind}")
        else:
            parsed = parse_params(kind, params)
        self.check_targets(parsed)
        if isinstance(parsed, _Action):
            return self._act(parsed)
        return self._start(kind, parsed)

    def clear(self, fault_id: int) -> Outcome:
        fault = self.get(fault_id)
        self._end([fault])
        return Outcome(f"cleared #{fault.id}: {fault.description}", cleared=[fault])

    def clear_all(self) -> list[Fault]:
        faults = self.active_faults()
        self._end(faults)
        return faults

    def advance(self) -> list[str]:
        """Apply what time has brought: ended faults, flap phases, finished boots."""
        now = self.net.now()
        ended = [f for f in self._faults.values() if f.until is not None and f.until <= now]
        events = [f"ended #{f.id}: {f.description}" for f in ended]
        touched = _Touched()
        for f in self._faults.values():
            if isinstance(f.params, Flap):
                touched.links.add(f.params.link)
            elif isinstance(f.params, Reboot) and f.params.down_for > 0:
                touched.devices.add(f.params.device)
        for f in ended:
            del self._faults[f.id]
            touched.add(self._targets(f))
        changed = self._sync(touched)
        events += changed
        for event in events:
            log.info("lab fault: %s", event)
        return events

    # -- internals --

    def _start(self, kind: str, params: _Params) -> Outcome:
        now = self.net.now()
        until = now + params.duration if params.duration is not None else None
        if isinstance(params, RainFade):
            until = now + params.duration
        if isinstance(params, Reboot):
            dev = self.net.devices[params.device]
            if not dev.powered:
                raise FaultError(f"{dev.name} is powered off; device_up boots it")
            if params.down_for <= 0:
                reboot_device(self.net, dev, self.reload_config)
                desc = f"rebooted {dev.name} ({dev.kind.value} at {dev.site})"
                log.info("lab fault: %s", desc)
                return Outcome(desc)
            until = now + params.down_for
        fault = Fault(
            id=self._next_id,
            kind=kind,
            params=params,
            started=now,
            until=until,
            description=self._describe(kind, params),
        )
        self._next_id += 1
        self._faults[fault.id] = fault
        self._sync(self._targets(fault))
        log.info("lab fault: started #%d: %s", fault.id, fault.description)
        return Outcome(f"#{fault.id} {fault.description}", fault=fault)

    def _act(self, action: _Action) -> Outcome:
        if isinstance(action, RestoreLink):
            ended = self._matching(("cut_link", "flap"), link=action.link)
            what = f"restored link {action.link}"
        elif isinstance(action, ClearQuality):
            ended = self._matching(("link_quality",), link=action.link)
            what = f"cleared quality faults of {action.link}"
        elif isinstance(action, DeviceUp):
            ended = self._matching(("device_down", "codec_off", "reboot"), device=action.device)
            what = f"powered {action.device} on"
        elif isinstance(action, CodecOn):
            ended = self._matching(("codec_off", "device_down"), device=action.device)
            what = f"switched codec {action.device} on"
        elif isinstance(action, ClearMatching):
            kinds = (action.kind,) if action.kind else tuple(FAULT_KINDS)
            ended = self._matching(
                kinds, link=action.link, device=action.device, province=action.province
            )
            what = "cleared matching faults"
        else:  # pragma: no cover - every action type is handled above
            raise FaultError(f"unhandled action {type(action).__name__}")
        self._end(ended)
        ids = ", ".join(f"#{f.id}" for f in ended) or "none were active"
        desc = f"{what} (ended {ids})"
        if isinstance(action, RestoreLink):
            still = self._cutters(self.net.links[action.link], self.net.now())
            if still:
                desc += "; still cut by " + ", ".join(f"#{f.id} {f.kind}" for f in still)
        log.info("lab fault: %s", desc)
        return Outcome(desc, cleared=ended)

    def _matching(
        self,
        kinds: Iterable[str],
        *,
        link: str | None = None,
        device: str | None = None,
        province: str | None = None,
    ) -> list[Fault]:
        wanted = set(kinds)
        out = []
        for f in self.active_faults():
            if f.kind not in wanted:
                continue
            p = f.params
            if link is not None and getattr(p, "link", None) != link:
                continue
            if device is not None and getattr(p, "device", None) != device:
                continue
            if province is not None and getattr(p, "province", None) != province:
                continue
            out.append(f)
        return out

    def _end(self, faults: Iterable[Fault]) -> None:
        touched = _Touched()
        for f in list(faults):
            if self._faults.pop(f.id, None) is not None:
                touched.add(self._targets(f))
        self._sync(touched)

    def _targets(self, fault: Fault) -> _Touched:
        p = fault.params
        t = _Touched()
        if isinstance(p, CutLink | LinkQuality | Flap):
            t.links.add(p.link)
        elif isinstance(p, DeviceDown | CodecOff | Reboot):
            t.devices.add(p.device)
        elif isinstance(p, BackboneOutage):
            t.links |= {
                lk.name
                for lk in self.net.links.values()
                if lk.role is LinkRole.PRIMARY and self.net.sites[lk.site].province == p.province
            }
        elif isinstance(p, RainFade):
            t.terminals |= {
                name for name in self._nominal if self.net.devices[name].province == p.province
            }
        return t

    def _cutters(self, link: Link, now: float) -> list[Fault]:
        out = []
        province = self.net.sites[link.site].province
        for f in self._faults.values():
            p = f.params
            if (
                (isinstance(p, CutLink) and p.link == link.name)
                or (isinstance(p, Flap) and p.link == link.name and _flap_is_down(f, now))
                or (
                    isinstance(p, BackboneOutage)
                    and link.role is LinkRole.PRIMARY
                    and province == p.province
                )
            ):
                out.append(f)
        return out

    def _device_down(self, device: Device, now: float) -> bool:
        for f in self._faults.values():
            p = f.params
            if isinstance(p, DeviceDown | CodecOff) and p.device == device.name:
                return True
            if isinstance(p, Reboot) and p.device == device.name and now < f.started + p.down_for:
                return True
        return False

    def _sync(self, touched: _Touched) -> list[str]:
        """Bring the touched objects to the state the active faults imply; returns changes."""
        now = self.net.now()
        changes: list[str] = []
        for name in sorted(touched.devices):
            dev = self.net.devices[name]
            down = self._device_down(dev, now)
            if down and dev.powered:
                power_off(self.net, dev)
                changes.append(f"{name} powered off")
            elif not down and not dev.powered:
                power_on(self.net, dev, self.reload_config)
                changes.append(f"{name} booted")
        for name in sorted(touched.links):
            link = self.net.links[name]
            cut = bool(self._cutters(link, now))
            if cut != link.cut:
                set_link_cut(self.net, link, cut)
                changes.append(f"link {name} {'down' if cut else 'up'}")
            quality = [
                f
                for f in self._faults.values()
                if isinstance(f.params, LinkQuality) and f.params.link == name
            ]
            loss, latency, jitter = 0.0, None, None
            for f in sorted(quality, key=lambda f: f.id):  # later faults override earlier ones
                q = f.params
                assert isinstance(q, LinkQuality)
                loss = q.loss_pct / 100.0 if q.loss_pct is not None else loss
                latency = q.latency_ms if q.latency_ms is not None else latency
                jitter = q.jitter_ms if q.jitter_ms is not None else jitter
            if (loss, latency, jitter) != (link.loss, link.latency_ms, link.jitter_ms):
                set_link_quality(self.net, link, loss, latency, jitter)
        for name in sorted(touched.terminals):
            term = self.net.devices[name]
            depth = max(
                (
                    f.params.depth_db
                    for f in self._faults.values()
                    if isinstance(f.params, RainFade) and f.params.province == term.province
                ),
                default=0.0,
            )
            before = term.esno_db10
            set_fade(self.net, term, self._sat_link_of.get(name), depth, self._nominal[name])
            if term.esno_db10 != before:
                changes.append(f"{name} Es/No {term.esno_db10 / 10:.1f} dB")
        return changes

    # -- checks and words --

    def check_targets(self, p: BaseModel) -> None:
        link = getattr(p, "link", None)
        if link is not None and link not in self.net.links:
            raise FaultTargetUnknown(f"no link named {link!r} in the lab")
        device = getattr(p, "device", None)
        if device is not None:
            dev = self.net.devices.get(device)
            if dev is None:
                raise FaultTargetUnknown(f"no device named {device!r} in the lab")
            if isinstance(p, CodecOff | CodecOn) and dev.kind is not DeviceKind.VIDEO_ENDPOINT:
                raise FaultError(f"{device} is a {dev.kind.value}, not a video endpoint")
        province = getattr(p, "province", None)
        if province is not None and province not in self._provinces:
            some = ", ".join(sorted(self._provinces)[:8])
            raise FaultTargetUnknown(
                f"no province named {province!r} in the lab (province site names, e.g. {some})"
            )
        kind = getattr(p, "kind", None)
        if isinstance(p, ClearMatching) and kind is not None and kind not in FAULT_KINDS:
            raise FaultError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")

    def _describe(self, kind: str, p: _Params) -> str:
        net = self.net
        for_s = f" for {p.duration:g} s" if p.duration is not None else ""
        if isinstance(p, CutLink):
            lk = net.links[p.link]
            return f"cut link {lk.name} ({lk.role.value} of {lk.site}){for_s}"
        if isinstance(p, LinkQuality):
            parts = []
            if p.loss_pct is not None:
                parts.append(f"loss {p.loss_pct:g} %")
            if p.latency_ms is not None:
                parts.append(f"latency {p.latency_ms:g} ms")
            if p.jitter_ms is not None:
                parts.append(f"jitter {p.jitter_ms:g} ms")
            return f"link {p.link}: {', '.join(parts)}{for_s}"
        if isinstance(p, RainFade):
            n = sum(1 for t in self._nominal if net.devices[t].province == p.province)
            return (
                f"rain fade over {p.province}: -{p.depth_db:g} dB on {n} terminal(s) "
                f"for {p.duration:g} s"
            )
        if isinstance(p, DeviceDown):
            dev = net.devices[p.device]
            return f"{dev.name} ({dev.kind.value} at {dev.site}) powered off{for_s}"
        if isinstance(p, Reboot):
            return f"{p.device} rebooting, back in {p.down_for:g} s"
        if isinstance(p, CodecOff):
            return f"codec {p.device} switched off{for_s}"
        if isinstance(p, Flap):
            return f"link {p.link} flapping: down {p.down:g} s / up {p.up:g} s{for_s}"
        if isinstance(p, BackboneOutage):
            n = len(self._targets(Fault(0, kind, p, 0.0, None, "")).links)
            return f"backbone outage in {p.province}: {n} primary link(s) cut{for_s}"
        return kind  # pragma: no cover


def _flap_is_down(fault: Fault, now: float) -> bool:
    p = fault.params
    assert isinstance(p, Flap)
    period = p.down + p.up
    return (now - fault.started) % period < p.down


def _flap_next_edge(fault: Fault, now: float) -> float:
    p = fault.params
    assert isinstance(p, Flap)
    period = p.down + p.up
    elapsed = max(0.0, now - fault.started)
    cycle_start = fault.started + (elapsed // period) * period
    edge = cycle_start + p.down
    return edge if edge > now else cycle_start + period
