"""The lab network's single source of state, read and changed by every face of a device.

SNMP agents, SSH CLIs, probe responders and the fault controller all hold the same
``LabNetwork``; none of them keeps a copy. Traffic counters are integrated lazily: each
interface keeps (octets at ``mark``, rate since ``mark``), so reading a counter costs O(1) and
nothing ticks over 6,000 devices. Whenever something changes a rate, ``settle`` the affected
interfaces first, then change the rate.

Everything here is plain data and pure updates; no I/O. The clock is injected so tests can run
it on a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from inventory.enums import DeviceKind, LinkRole

Clock = Callable[[], float]

COUNTER32 = 2**32
COUNTER64 = 2**64


@dataclass
class Interface:
    """One router interface (IF-MIB row). ``index`` is ifIndex, 1-based, stable."""

    index: int
    name: str  # e.g. GigabitEthernet0/0/0
    speed_bps: int
    link: str | None = None  # the Link this interface carries, if any
    ip_address: str | None = None
    admin_up: bool = True
    carrier_up: bool = True  # physical/provider side; a cut clears it
    in_octets: float = 0.0
    out_octets: float = 0.0
    in_rate_bps: float = 0.0
    out_rate_bps: float = 0.0
    in_errors: int = 0
    mark: float = 0.0

    @property
    def oper_up(self) -> bool:
        return self.admin_up and self.carrier_up

    def settle(self, now: float) -> None:
        dt = max(0.0, now - self.mark)
        self.in_octets += self.in_rate_bps / 8.0 * dt
        self.out_octets += self.out_rate_bps / 8.0 * dt
        self.mark = now

    def octets(self, now: float) -> tuple[int, int]:
        """(ifHCInOctets, ifHCOutOctets) at ``now``; ifInOctets is this modulo 2**32."""
        dt = max(0.0, now - self.mark)
        return (
            int(self.in_octets + self.in_rate_bps / 8.0 * dt) % COUNTER64,
            int(self.out_octets + self.out_rate_bps / 8.0 * dt) % COUNTER64,
        )


@dataclass
class StaticRoute:
    prefix: str  # "0.0.0.0"
    mask: str  # "0.0.0.0"
    next_hop: str
    distance: int = 1


@dataclass
class Call:
    call_id: int
    remote: str
    rate_kbps: int
    started: float
    tx_kbps: int = 0
    rx_kbps: int = 0
    loss_pct: float = 0.0
    jitter_ms: float = 0.0


@dataclass
class Device:
    name: str
    kind: DeviceKind
    site: str
    province: str | None
    vendor: str
    platform: str
    model: str | None
    mgmt_address: str
    snmp_port: int
    ssh_port: int
    boot_time: float = 0.0
    powered: bool = True  # device down = no answer on any face
    # router
    interfaces: list[Interface] = field(default_factory=list)
    static_routes: list[StaticRoute] = field(default_factory=list)
    saved_routes: list[StaticRoute] = field(default_factory=list)  # startup-config
    # satellite terminal (values as their MIB scales them)
    esno_db10: int = 0
    rx_level_dbm10: int = 0
    tx_power_dbm10: int = 0
    demod_locked: bool = True
    buc_alarm: bool = False
    lnb_alarm: bool = False
    modcod: int = 0
    tx_enabled: bool = True
    # video endpoint
    registered: bool = True
    calls: list[Call] = field(default_factory=list)
    default_call_rate_kbps: int = 2048
    # mcu
    ports_total: int = 0
    conferences: dict[str, list[str]] = field(default_factory=dict)  # name -> participants

    def uptime_ticks(self, now: float) -> int:
        """sysUpTime in hundredths of a second since the last (re)boot."""
        return int((now - self.boot_time) * 100) % COUNTER32

    def interface_by_name(self, name: str) -> Interface | None:
        wanted = name.lower()
        for iface in self.interfaces:
            if iface.name.lower() == wanted:
                return iface
        return None


@dataclass
class Link:
    name: str
    role: LinkRole
    site: str
    router: str
    interface: str
    capacity_kbps: int
    probe_address: str
    terminal: str | None = None
    # Quality the probe responder applies; faults change these.
    base_latency_ms: float = 20.0
    base_jitter_ms: float = 1.0
    loss: float = 0.0  # 0..1 set by faults
    latency_ms: float | None = None  # override set by faults
    jitter_ms: float | None = None
    fade_loss: float = 0.0  # added by rain fade (satellite)
    cut: bool = False

    def effective(self) -> tuple[float, float, float]:
        """(loss 0..1, latency ms, jitter ms) a probe sees right now."""
        loss = min(1.0, self.loss + self.fade_loss)
        latency = self.latency_ms if self.latency_ms is not None else self.base_latency_ms
        jitter = self.jitter_ms if self.jitter_ms is not None else self.base_jitter_ms
        return loss, latency, jitter


@dataclass
class Site:
    name: str
    tier: str
    province: str | None  # the provincial node's site name (itself for a province)
    devices: list[str] = field(default_factory=list)
    links: dict[LinkRole, str] = field(default_factory=dict)
    background_kbps: float = 0.0  # site traffic besides calls, from the traffic model


@dataclass
class LabNetwork:
    """All lab state. Build it with ``lab.build.build_network(doc, clock, seed)``."""

    clock: Clock
    devices: dict[str, Device] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    by_mgmt_address: dict[str, Device] = field(default_factory=dict)
    by_probe_address: dict[str, Link] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    def now(self) -> float:
        return self.clock()
