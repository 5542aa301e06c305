"""Fixtures shared by the lab tests: a fake clock and a small hand-built ``LabNetwork``.

``tiny_net`` (function scope) has three sites, built without ``lab.build`` so the expected CLI
texts do not move when the builder's choices do:

- ``site-a`` (county): router ``r-a`` with a primary (``Gi0/0/0``, 8 Mbit/s), a backup
  (``Gi0/0/1``, 4 Mbit/s) and a satellite link (``Gi0/0/2``, 2 Mbit/s, terminal ``t-a``), a LAN
  and ``Loopback0``; default route via the primary's far end; codec ``c-a``;
- ``site-b`` (county): router ``r-b`` (primary only), codec ``c-b``;
- ``hub`` (ministry): router ``r-hub`` (primary only), MCU ``mcu-hub`` (12 ports).

Management addresses are ``127.77.<site>.<n>``, link far ends (next hops, probe targets)
``127.78.<site>.<n>``; ports are the defaults (tests that listen move them).
"""

from __future__ import annotations

import pytest

from inventory.enums import DeviceKind, LinkRole
from lab.state import Device, Interface, LabNetwork, Link, Site, StaticRoute
from lab.traffic import reroute_site

T0 = 1_700_000_000.0
UPTIME_S = 3 * 86_400 + 4 * 3_600 + 5 * 60


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


PLATFORMS = {
    DeviceKind.ROUTER: ("cisco", "cisco_ios", "ISR4331"),
    DeviceKind.SATELLITE_TERMINAL: ("comtech", "comtech_cdm", "CDM-625A"),
    DeviceKind.VIDEO_ENDPOINT: ("cisco", "cisco_codec", "Cisco Webex Room Kit"),
    DeviceKind.MCU: ("cisco", "mcu_cli", "TelePresence Server 7010"),
}


def _device(net: LabNetwork, site: Site, name: str, kind: DeviceKind, address: str) -> Device:
    vendor, platform, model = PLATFORMS[kind]
    dev = Device(
        name=name,
        kind=kind,
        site=site.name,
        province="prov",
        vendor=vendor,
        platform=platform,
        model=model,
        mgmt_address=address,
        snmp_port=161,
        ssh_port=22,
        boot_time=net.now() - UPTIME_S,
    )
    net.devices[name] = dev
    net.by_mgmt_address[address] = dev
    site.devices.append(name)
    return dev


def _router(
    net: LabNetwork,
    site: Site,
    index: int,
    links: list[tuple[LinkRole, int, str | None]],
) -> Device:
    """A router with one interface per (role, capacity kbit/s, terminal) link, LAN, loopback."""
    router = _device(net, site, f"r-{site.name.split('-')[-1]}", DeviceKind.ROUTER,
                     f"127.77.{index}.1")  # fmt: skip
    ifaces: list[Interface] = []
    for n, (role, capacity, terminal) in enumerate(links):
        link = Link(
            name=f"{site.name}-{role.value}",
            role=role,
            site=site.name,
            router=router.name,
            interface=f"GigabitEthernet0/0/{n}",
            capacity_kbps=capacity,
            probe_address=f"127.78.{index}.{n + 1}",
            terminal=terminal,
            base_latency_ms=600.0 if role is LinkRole.SATELLITE else 20.0,
            base_jitter_ms=2.0,
        )
        net.links[link.name] = link
        net.by_probe_address[link.probe_address] = link
        site.links[role] = link.name
        ifaces.append(
            Interface(
                index=n + 1,
                name=link.interface,
                speed_bps=capacity * 1000,
                link=link.name,
                ip_address=f"172.16.{index}.{4 * n + 1}",
                mark=net.now(),
            )
        )
    ifaces.append(
        Interface(len(ifaces) + 1, "GigabitEthernet0/1/0", 1_000_000_000,
                  ip_address=f"10.{index}.0.1", mark=net.now())
    )  # fmt: skip
    ifaces.append(
        Interface(len(ifaces) + 1, "Loopback0", 8_000_000_000,
                  ip_address=router.mgmt_address, mark=net.now())
    )  # fmt: skip
    router.interfaces = ifaces
    primary = net.links[site.links[LinkRole.PRIMARY]]
    router.static_routes = [StaticRoute("0.0.0.0", "0.0.0.0", primary.probe_address, 1)]
    router.saved_routes = [StaticRoute("0.0.0.0", "0.0.0.0", primary.probe_address, 1)]
    return router


def build_tiny_network(clock: FakeClock) -> LabNetwork:
    net = LabNetwork(clock=clock)
    site_a = Site("site-a", "county", "prov", background_kbps=1_000.0)
    site_b = Site("site-b", "county", "prov", background_kbps=500.0)
    hub = Site("hub", "ministry", None, background_kbps=5_000.0)
    for site in (site_a, site_b, hub):
        net.sites[site.name] = site

    _router(
        net,
        site_a,
        1,
        [(LinkRole.PRIMARY, 8_000, None), (LinkRole.BACKUP, 4_000, None),
         (LinkRole.SATELLITE, 2_000, "t-a")],
    )  # fmt: skip
    terminal = _device(net, site_a, "t-a", DeviceKind.SATELLITE_TERMINAL, "127.77.1.2")
    terminal.esno_db10, terminal.rx_level_dbm10, terminal.tx_power_dbm10 = 104, -420, -85
    terminal.modcod = 13
    _device(net, site_a, "c-a", DeviceKind.VIDEO_ENDPOINT, "127.77.1.3")

    _router(net, site_b, 2, [(LinkRole.PRIMARY, 8_000, None)])
    _device(net, site_b, "c-b", DeviceKind.VIDEO_ENDPOINT, "127.77.2.3")

    _router(net, hub, 3, [(LinkRole.PRIMARY, 100_000, None)])
    mcu = _device(net, hub, "mcu-hub", DeviceKind.MCU, "127.77.3.4")
    mcu.ports_total = 12

    for name in net.sites:
        reroute_site(net, name)
    return net


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tiny_net(clock: FakeClock) -> LabNetwork:
    return build_tiny_network(clock)
