"""Build the lab's ``LabNetwork`` from an inventory document, deterministically for a seed.

What a device looks like right after ``build_network``:

- **Routers** get one interface per link they carry (the inventory's ``Link.interface`` name,
  ``ifSpeed`` = the link capacity, an address on a /30 of the display-only range 172.16.0.0/12),
  then a LAN interface (1 Gbit/s, 10.<site>.1/24) and ``Loopback0`` (its management address).
  ifIndex follows that order and only depends on the document. The running and the saved config
  hold ONE default static route, via the primary link's next hop (its probe address), distance 1
  — no floating backup route: moving a site off a sick link is Tiandi's failover engine's job.
  At a site with two routers only the one carrying the primary link has it (the other gets one
  when the failover engine moves the site to its backup link).
- **Satellite terminals** start at a nominal Es/No of 9-12 dB, a matching Rx level and Tx power,
  and the MODCOD adaptive coding would pick at that Es/No (``MODCODS``).
- **Video endpoints** are registered and idle; **MCUs** get ports by tier.
- **Links** get a base latency/jitter by role (primary 15-40 ms, backup 25-60 ms, satellite
  550-650 ms), no loss.
- **Traffic**: each site gets a background rate by tier (``TrafficModel``) and ``reroute_site``
  turns it into interface rates. Counters start where that rate would have brought them since
  the device booted (uptimes are 1-120 days), so 32-bit counters sit anywhere in their range.

Credentials are resolved separately (``resolve_credentials``): once, at start, into plain
values the SNMP and SSH faces use; a missing secret is an error naming the profile and the
variable. ``lab_secret_defaults`` gives fixed lab values for unset variables, for demos.

Addressing (as the inventory generator lays it out): every device has its own loopback address
``127.x.y.z`` and the standard ports (SNMP 161/udp, SSH 22/tcp); every link's far end (next hop
and probe target) has its own ``127.x.y.z`` too. Linux routes the whole 127.0.0.0/8 to ``lo``, so
no interface set-up is needed. See ``lab/README.md``.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field

from inventory.document import CredentialProfileDoc, InventoryDoc, SiteDoc
from inventory.enums import (
    CredentialKind,
    DeviceKind,
    LinkRole,
    SnmpAuthProtocol,
    SnmpPrivProtocol,
    SnmpVersion,
    Tier,
)
from inventory.errors import SecretUnavailable, TiandiError
from inventory.secrets import SecretRef
from lab.state import Clock, Device, Interface, LabNetwork, Link, Site, StaticRoute
from lab.traffic import reroute_site

LINK_NET = ipaddress.IPv4Network("172.16.0.0/12")  # router side of each link: a /30 here
LAN_SPEED_BPS = 1_000_000_000
LOOPBACK_SPEED_BPS = 8_000_000_000  # what IOS reports for a loopback
LOOPBACK_NAME = "Loopback0"
_LAN_CANDIDATES = tuple(f"GigabitEthernet0/1/{i}" for i in range(8)) + tuple(
    f"GigabitEthernet0/0/{i}" for i in range(8)
)

# (latency low, high), (jitter low, high) in ms, per link role.
LINK_QUALITY: dict[LinkRole, tuple[tuple[float, float], tuple[float, float]]] = {
    LinkRole.PRIMARY: ((15.0, 40.0), (0.5, 3.0)),
    LinkRole.BACKUP: ((25.0, 60.0), (1.0, 5.0)),
    LinkRole.SATELLITE: ((550.0, 650.0), (5.0, 15.0)),
}

# Background traffic (kbit/s, each direction) a site offers besides calls, by tier.
BACKGROUND_KBPS: dict[Tier, tuple[float, float]] = {
    Tier.MINISTRY: (20_000.0, 60_000.0),
    Tier.PROVINCE: (5_000.0, 20_000.0),
    Tier.PREFECTURE: (2_000.0, 6_000.0),
    Tier.COUNTY: (500.0, 3_000.0),
}

MCU_PORTS: dict[Tier, int] = {
    Tier.MINISTRY: 160,
    Tier.PROVINCE: 48,
    Tier.PREFECTURE: 24,
    Tier.COUNTY: 12,
}

UPTIME_DAYS = (1.0, 120.0)
NOMINAL_ESNO_DB = (9.0, 12.0)
ACM_MARGIN_DB = 1.0  # adaptive coding keeps this much margin over a MODCOD's threshold


@dataclass(frozen=True, slots=True)
class Modcod:
    """A DVB-S2 MODCOD: number as modems report it, name, bit/symbol, ideal Es/No threshold."""

    number: int
    name: str
    efficiency: float
    threshold_db: float


# DVB-S2 normal frames (ETSI EN 302 307-1, table 13): spectral efficiency and ideal Es/No.
MODCODS: tuple[Modcod, ...] = (
    Modcod(1, "QPSK 1/4", 0.490, -2.35),
    Modcod(2, "QPSK 1/3", 0.656, -1.24),
    Modcod(3, "QPSK 2/5", 0.789, -0.30),
    Modcod(4, "QPSK 1/2", 0.988, 1.00),
    Modcod(5, "QPSK 3/5", 1.188, 2.23),
    Modcod(6, "QPSK 2/3", 1.322, 3.10),
    Modcod(7, "QPSK 3/4", 1.487, 4.03),
    Modcod(8, "QPSK 4/5", 1.587, 4.68),
    Modcod(9, "QPSK 5/6", 1.655, 5.18),
    Modcod(10, "QPSK 8/9", 1.767, 6.20),
    Modcod(11, "QPSK 9/10", 1.789, 6.42),
    Modcod(12, "8PSK 3/5", 1.779, 5.50),
    Modcod(13, "8PSK 2/3", 1.980, 6.62),
    Modcod(14, "8PSK 3/4", 2.228, 7.91),
    Modcod(15, "8PSK 5/6", 2.479, 9.35),
    Modcod(16, "8PSK 8/9", 2.646, 10.69),
    Modcod(17, "8PSK 9/10", 2.679, 10.98),
    Modcod(18, "16APSK 2/3", 2.637, 8.97),
    Modcod(19, "16APSK 3/4", 2.967, 10.21),
    Modcod(20, "16APSK 4/5", 3.166, 11.03),
    Modcod(21, "16APSK 5/6", 3.300, 11.61),
    Modcod(22, "16APSK 8/9", 3.523, 12.89),
    Modcod(23, "16APSK 9/10", 3.567, 13.13),
    Modcod(24, "32APSK 3/4", 3.703, 12.73),
    Modcod(25, "32APSK 4/5", 3.951, 13.64),
    Modcod(26, "32APSK 5/6", 4.119, 14.28),
    Modcod(27, "32APSK 8/9", 4.397, 15.69),
    Modcod(28, "32APSK 9/10", 4.453, 16.05),
)
MODCOD_BY_NUMBER: dict[int, Modcod] = {m.number: m for m in MODCODS}
LOCK_THRESHOLD_DB = MODCODS[0].threshold_db - 1.0  # below this the demodulator loses lock


def modcod_for(esno_db10: int) -> Modcod | None:
    """The most efficient MODCOD ACM would run at this Es/No (dB x10); None = cannot lock."""
    esno = esno_db10 / 10.0
    if esno < LOCK_THRESHOLD_DB:
        return None
    fitting = [m for m in MODCODS if m.threshold_db + ACM_MARGIN_DB <= esno]
    if not fitting:
        return MODCODS[0]
    return max(fitting, key=lambda m: m.efficiency)


class LabBuildError(TiandiError):
    """The inventory cannot be turned into a lab network (the message says which object)."""


class LabSecretMissing(TiandiError):
    """A credential profile names a secret that is not available to the lab."""


# ---- credentials --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnmpCredential:
    """An SNMP profile with its secrets read: a v2c community or a v3 authPriv USM user."""

    profile: str
    version: SnmpVersion
    community: str | None = None
    user: str | None = None
    auth_protocol: SnmpAuthProtocol | None = None
    auth_key: str | None = None
    priv_protocol: SnmpPrivProtocol | None = None
    priv_key: str | None = None

    def __repr__(self) -> str:
        return (
            f"SnmpCredential(profile={self.profile!r}, version={self.version.value!r}, "
            f"user={self.user!r}, secrets=REDACTED)"
        )


@dataclass(frozen=True, slots=True)
class SshCredential:
    """An SSH profile with its secrets read: the login the device's CLI accepts."""

    profile: str
    username: str
    password: str | None = None
    private_key: str | None = None  # the client's key; the face derives the public key

    def __repr__(self) -> str:
        return f"SshCredential(profile={self.profile!r}, username={self.username!r}, REDACTED)"


@dataclass(frozen=True)
class LabCredentials:
    """Per device name, the credentials its faces accept (profiles are shared objects)."""

    snmp: dict[str, SnmpCredential] = field(default_factory=dict)
    ssh: dict[str, SshCredential] = field(default_factory=dict)


def _profile_refs(profile: CredentialProfileDoc) -> list[tuple[str, SecretRef]]:
    out: list[tuple[str, SecretRef]] = []
    for attr in ("community", "auth_key", "priv_key", "password", "private_key"):
        ref = getattr(profile, attr)
        if ref is not None:
            out.append((attr, ref))
    return out


def lab_secret_defaults(doc: InventoryDoc) -> dict[str, str]:
    """Fixed lab values for every ``env:`` secret the document's profiles reference.

    For demos and ``--sites N`` only: the runner sets these for variables that are unset and
    says so. Values are long enough for SNMPv3 keys (>= 8 characters).
    """
    out: dict[str, str] = {}
    for profile in doc.credential_profiles:
        for _attr, ref in _profile_refs(profile):
            if ref.source == "env":
                out[ref.name] = "lab-" + ref.name.lower().replace("_", "-")
    return out


def _resolve(profile: CredentialProfileDoc, attr: str) -> str | None:
    ref: SecretRef | None = getattr(profile, attr)
    if ref is None:
        return None
    try:
        return ref.resolve()
    except SecretUnavailable as err:
        raise LabSecretMissing(
            f"credential profile {profile.name!r} ({attr}): {err}; or start the lab with lab "
            "default secrets (--lab-secrets)"
        ) from err


def resolve_credentials(doc: InventoryDoc) -> LabCredentials:
    """Read every profile's secrets once and map each device to the credentials it accepts."""
    snmp_profiles: dict[str, SnmpCredential] = {}
    ssh_profiles: dict[str, SshCredential] = {}
    used = {d.snmp_profile for s in doc.sites for d in s.devices} | {
        d.ssh_profile for s in doc.sites for d in s.devices
    }
    for p in doc.credential_profiles:
        if p.name not in used:
            continue
        if p.kind is CredentialKind.SNMP:
            assert p.snmp_version is not None  # the document model guarantees it
            snmp_profiles[p.name] = SnmpCredential(
                profile=p.name,
                version=p.snmp_version,
                community=_resolve(p, "community"),
                user=p.user,
                auth_protocol=p.auth_protocol,
                auth_key=_resolve(p, "auth_key"),
                priv_protocol=p.priv_protocol,
                priv_key=_resolve(p, "priv_key"),
            )
        else:
            assert p.username is not None
            ssh_profiles[p.name] = SshCredential(
                profile=p.name,
                username=p.username,
                password=_resolve(p, "password"),
                private_key=_resolve(p, "private_key"),
            )
    creds = LabCredentials()
    for site in doc.sites:
        for dev in site.devices:
            if dev.snmp_profile is not None:
                creds.snmp[dev.name] = snmp_profiles[dev.snmp_profile]
            if dev.ssh_profile is not None:
                creds.ssh[dev.name] = ssh_profiles[dev.ssh_profile]
    return creds


def apply_secret_defaults(
    doc: InventoryDoc, environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Set lab defaults for unset ``env:`` secrets of ``doc``; returns the variables set."""
    env = os.environ if environ is None else environ
    set_now: list[str] = []
    for name, value in sorted(lab_secret_defaults(doc).items()):
        if name not in env:
            env[name] = value
            set_now.append(name)
    return set_now


# ---- traffic model --------------------------------------------------------------------------


class TrafficModel:
    """Background traffic per site: a seeded mean by tier, optionally wandering around it.

    ``step`` redraws each site's rate around its mean (mean-reverting, ±``spread``) and
    re-routes, so counters carry a believable, reproducible texture. A constant model
    (``spread=0``) is what tests use to check counter growth against the rate.
    """

    def __init__(self, means_kbps: Mapping[str, float], seed: int, spread: float = 0.15) -> None:
        self.means_kbps = dict(means_kbps)
        self.spread = spread
        self._rng = random.Random(seed ^ 0x7A11)

    @classmethod
    def for_sites(cls, sites: Iterable[SiteDoc], seed: int, spread: float = 0.15) -> TrafficModel:
        rng = random.Random(seed)
        means = {s.name: rng.uniform(*BACKGROUND_KBPS[s.tier]) for s in sites}
        return cls(means, seed, spread)

    def apply_means(self, net: LabNetwork) -> None:
        for name, mean in self.means_kbps.items():
            net.sites[name].background_kbps = mean
        for name in self.means_kbps:
            reroute_site(net, name)

    def step(self, net: LabNetwork) -> None:
        """Move every site's background rate to a new value near its mean, then re-route."""
        if self.spread <= 0:
            return
        for name, mean in self.means_kbps.items():
            site = net.sites[name]
            previous = site.background_kbps or mean
            target = mean * (1.0 + self._rng.gauss(0.0, self.spread))
            value = 0.5 * previous + 0.5 * target  # mean-reverting, no jumps
            site.background_kbps = max(0.1 * mean, min(2.0 * mean, value))
            reroute_site(net, name)


# ---- build ----------------------------------------------------------------------------------


def _natural_key(name: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))


def _province_of(doc_sites: Mapping[str, SiteDoc], site: SiteDoc) -> str | None:
    seen: set[str] = set()
    current: SiteDoc | None = site
    while current is not None and current.name not in seen:
        if current.tier is Tier.PROVINCE:
            return current.name
        seen.add(current.name)
        current = doc_sites.get(current.parent) if current.parent else None
    return None


def _lan_name(taken: set[str]) -> str:
    for candidate in _LAN_CANDIDATES:
        if candidate.lower() not in taken:
            return candidate
    return f"GigabitEthernet1/0/{len(taken)}"


def build_network(
    doc: InventoryDoc, clock: Clock, seed: int = 0, *, traffic: TrafficModel | None = None
) -> LabNetwork:
    """A ``LabNetwork`` for ``doc``: same document and seed, same network (ifIndex, rates...)."""
    rng = random.Random(seed)
    now = clock()
    net = LabNetwork(clock=clock, rng=random.Random(seed + 1))
    doc_sites = {s.name: s for s in doc.sites}
    link_nets = LINK_NET.subnets(new_prefix=30)

    for site_index, sdoc in enumerate(doc.sites):
        province = _province_of(doc_sites, sdoc)
        site = Site(name=sdoc.name, tier=sdoc.tier.value, province=province)
        net.sites[sdoc.name] = site
        for ddoc in sdoc.devices:
            uptime_s = rng.uniform(*UPTIME_DAYS) * 86_400.0
            dev = Device(
                name=ddoc.name,
                kind=ddoc.kind,
                site=sdoc.name,
                province=province,
                vendor=ddoc.vendor,
                platform=ddoc.platform,
                model=ddoc.model,
                mgmt_address=ddoc.mgmt_address,
                snmp_port=ddoc.snmp_port,
                ssh_port=ddoc.ssh_port,
                boot_time=now - uptime_s,
            )
            if ddoc.kind is DeviceKind.SATELLITE_TERMINAL:
                esno = round(rng.uniform(*NOMINAL_ESNO_DB) * 10)
                dev.esno_db10 = esno
                # Rx level tracks Es/No: about -45 dBm at 9 dB, -36 dBm at 12 dB.
                dev.rx_level_dbm10 = round(-450 + (esno - 90) * 3 + rng.uniform(-10, 10))
                dev.tx_power_dbm10 = round(rng.uniform(-150.0, -50.0))
                mc = modcod_for(esno)
                dev.modcod = mc.number if mc else 0
            elif ddoc.kind is DeviceKind.MCU:
                dev.ports_total = MCU_PORTS[sdoc.tier]
            net.devices[dev.name] = dev
            site.devices.append(dev.name)
            if dev.mgmt_address not in net.by_mgmt_address:
                net.by_mgmt_address[dev.mgmt_address] = dev

        for ldoc in sdoc.links:
            (lat_lo, lat_hi), (jit_lo, jit_hi) = LINK_QUALITY[ldoc.role]
            link = Link(
                name=ldoc.name,
                role=ldoc.role,
                site=sdoc.name,
                router=ldoc.router,
                interface=ldoc.interface,
                capacity_kbps=ldoc.capacity_kbps,
                probe_address=ldoc.probe_address,
                terminal=ldoc.terminal,
                base_latency_ms=round(rng.uniform(lat_lo, lat_hi), 1),
                base_jitter_ms=round(rng.uniform(jit_lo, jit_hi), 1),
            )
            net.links[link.name] = link
            site.links.setdefault(link.role, link.name)
            if link.probe_address in net.by_probe_address:
                other = net.by_probe_address[link.probe_address].name
                raise LabBuildError(
                    f"links {other!r} and {link.name!r} share probe address {link.probe_address}"
                )
            net.by_probe_address[link.probe_address] = link

        for ddoc in sdoc.devices:
            if ddoc.kind is DeviceKind.ROUTER:
                _build_router(net, net.devices[ddoc.name], sdoc, site_index, link_nets)

    means = traffic if traffic is not None else TrafficModel.for_sites(doc.sites, seed)
    means.apply_means(net)
    # Counters start where the current rate would have brought them since boot.
    for dev in net.devices.values():
        uptime_s = now - dev.boot_time
        for iface in dev.interfaces:
            iface.in_octets = iface.in_rate_bps / 8.0 * uptime_s * rng.uniform(0.6, 1.0)
            iface.out_octets = iface.out_rate_bps / 8.0 * uptime_s * rng.uniform(0.6, 1.0)
            iface.mark = now
    return net


def _build_router(
    net: LabNetwork,
    router: Device,
    sdoc: SiteDoc,
    site_index: int,
    link_nets: Iterable[ipaddress.IPv4Network],
) -> None:
    links = [net.links[ld.name] for ld in sdoc.links if ld.router == router.name]
    by_iface: dict[str, Link] = {}
    for link in links:
        key = link.interface.lower()
        if key in by_iface:
            raise LabBuildError(
                f"router {router.name!r}: links {by_iface[key].name!r} and {link.name!r} both "
                f"ride interface {link.interface!r}"
            )
        by_iface[key] = link
    link_iter = iter(link_nets)
    ifaces: list[Interface] = []
    for link in sorted(links, key=lambda lk: _natural_key(lk.interface)):
        subnet = next(link_iter)
        ifaces.append(
            Interface(
                index=0,
                name=link.interface,
                speed_bps=link.capacity_kbps * 1000,
                link=link.name,
                ip_address=str(subnet.network_address + 1),
            )
        )
    lan_ip = f"10.{(site_index >> 8) & 0xFF}.{site_index & 0xFF}.1"
    ifaces.append(
        Interface(
            index=0, name=_lan_name(set(by_iface)), speed_bps=LAN_SPEED_BPS, ip_address=lan_ip
        )
    )
    ifaces.append(
        Interface(
            index=0,
            name=LOOPBACK_NAME,
            speed_bps=LOOPBACK_SPEED_BPS,
            ip_address=router.mgmt_address,
        )
    )
    for i, iface in enumerate(ifaces, start=1):
        iface.index = i
        iface.mark = net.now()
    router.interfaces = ifaces

    # Only the router that carries the site's preferred link gets the default route: the lab
    # sends a site's whole traffic out of every router holding a usable default route.
    site_links = [net.links[ld.name] for ld in sdoc.links]
    first = min(site_links, key=lambda lk: list(LinkRole).index(lk.role), default=None)
    if first is not None and first.router == router.name:
        router.static_routes = [StaticRoute("0.0.0.0", "0.0.0.0", first.probe_address, 1)]
        router.saved_routes = [StaticRoute("0.0.0.0", "0.0.0.0", first.probe_address, 1)]
