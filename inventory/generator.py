"""Generate a realistic national network: the ministry, 37 provincial-level nodes and counties.

Sites are real places (``inventory.geography``): the ministry in Beijing; the 31 provinces,
regions and municipalities, XPCC and the 5 separately-listed cities; and county-level divisions
shared out over the chosen nodes in proportion to how many each really has. Every county gets a
router with a primary (e-government extranet) and a backup (second carrier) terrestrial link, a
satellite terminal with a satellite link into the shared pool, and an HD video endpoint; provinces
add a second router, an MCU and more endpoints; the ministry holds the core routers, the MCUs and
the satellite hub.

Addressing. Every address is in 127.0.0.0/8 so that the lab can give each simulated device its own
address with the standard ports (161, 22). Addresses are handed out in document order, 254 to a
/24 (host octets .1-.254, never .0 or .255), with 127.0.0.0/16 left alone (127.0.0.1 is never
used):

- management address of the n-th device (n from 0): 127.1.0.1, 127.1.0.2, ... 127.1.0.254,
  127.1.1.1, ... i.e. ``127.{1 + s // 256}.{s % 256}.{n % 254 + 1}`` with ``s = n // 254``, up to
  127.63.255.254 (4,096,512 devices);
- probe (far-end) address of the n-th link: the same from 127.64.0.1, up to 127.127.255.254.

The default network uses 127.1.0.1-127.1.18.180 for its 4,752 devices and
127.64.0.1-127.64.18.42 for its 4,614 links.

Determinism. The same ``seed`` gives a byte-identical document. Which counties are chosen and each
site's equipment (models, carriers, capacities) come from a random stream keyed by the seed and
the node or site name, so a county keeps its equipment when the network around it is resized.

Sites: names are pinyin slugs (``guangdong``, ``xinjiang-bingtuan``, ``gd-shaoguan-qujiang``),
``display_name`` is Chinese. A province-tier site's ``province_code`` is the node's code (two
digits, four for the separately-listed cities, ``66`` for XPCC); a county's is its own six-digit
code, so the province is its first two digits (XPCC's cities are 6590xx). Counties hang directly
off their provincial node; the document lists the ministry, then the nodes, then the counties
grouped by node.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from typing import TypeVar

from inventory.document import (
    CredentialProfileDoc,
    DeviceDoc,
    InventoryDoc,
    LinkDoc,
    SatellitePoolDoc,
    SiteDoc,
)
from inventory.enums import (
    CredentialKind,
    DeviceKind,
    LinkRole,
    SnmpAuthProtocol,
    SnmpPrivProtocol,
    SnmpVersion,
    Tier,
)
from inventory.geography import County, ProvincialNode, counties, provincial_nodes
from inventory.secrets import SecretRef

T = TypeVar("T")

MINISTRY_SITE = "ministry"
SATELLITE_POOL = "ku-main"
SNMP_PROFILE = "snmp-v3-noc"
SSH_PROFILE = "ssh-noc"

MGMT_FIRST_OCTET = 1  # management addresses: 127.1.0.1 - 127.63.255.254
PROBE_FIRST_OCTET = 64  # probe addresses: 127.64.0.1 - 127.127.255.254
_BLOCK_OCTETS = 63
_HOSTS_PER_24 = 254

PRIMARY_CARRIER = "电子政务外网"
BACKUP_CARRIERS = ("中国联通", "中国移动", "中国电信")
SATELLITE_CARRIER = "中国卫通"

# Cisco ISR 4000 style: two WAN ports on the motherboard, the modem on the first NIM slot.
PRIMARY_IF = "GigabitEthernet0/0/0"
BACKUP_IF = "GigabitEthernet0/0/1"
MODEM_IF = "GigabitEthernet0/1/0"


def loopback_address(first_octet: int, index: int) -> str:
    """The ``index``-th address of the 63 /16s starting at 127.<first_octet>.0.0, skipping .0/.255.

    >>> loopback_address(1, 0), loopback_address(1, 254), loopback_address(64, 65_024)
    ('127.1.0.1', '127.1.1.1', '127.65.0.1')
    """
    subnet, host = divmod(index, _HOSTS_PER_24)
    if index < 0 or subnet >= _BLOCK_OCTETS * 256:
        raise ValueError(f"address index {index} is outside the 127.{first_octet}.0.0 block")
    return str(ipaddress.IPv4Address((127 << 24) + ((first_octet * 256 + subnet) << 8) + host + 1))


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder; ties go to the first).

    Never gives an entry more than its weight when ``total <= sum(weights)``.
    """
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in remainders[: total - sum(shares)]:
        shares[i] += 1
    return shares


def generate(provinces: int = 37, counties: int = 1500, seed: int = 0) -> InventoryDoc:
    """The ministry, the first ``provinces`` provincial-level nodes and ``counties`` counties.

    Raises ValueError if ``provinces`` is not 0-37 or if the chosen nodes have fewer than
    ``counties`` real county-level divisions (counties are never invented).
    """
    nodes = provincial_nodes()
    if not 0 <= provinces <= len(nodes):
        raise ValueError(f"provinces must be between 0 and {len(nodes)}, got {provinces}")
    chosen = nodes[:provinces]
    candidates = _counties_by_node(chosen)
    available = sum(len(c) for c in candidates)
    if not 0 <= counties <= available:
        raise ValueError(
            f"counties must be between 0 and {available}: the first {provinces} provincial-level "
            f"nodes have {available} county-level divisions, got {counties}"
        )

    builder = _Builder(seed)
    sites = [builder.ministry(beijing=nodes[0])]
    sites += [builder.province(node) for node in chosen]
    for node, pool, quota in zip(
        chosen, candidates, apportion(counties, [len(c) for c in candidates]), strict=True
    ):
        picked = random.Random(f"{seed}/counties/{node.slug}").sample(pool, quota)
        sites += [builder.county(c) for c in sorted(picked, key=lambda c: c.adcode)]
    return InventoryDoc(
        satellite_pools=[
            SatellitePoolDoc(
                name=SATELLITE_POOL,
                capacity_kbps=155_000,
                description="Ku-band transponder capacity shared by every site on satellite",
            )
        ],
        credential_profiles=_credential_profiles(),
        sites=sites,
    )


def _counties_by_node(nodes: Sequence[ProvincialNode]) -> list[list[County]]:
    by_node: dict[str, list[County]] = {n.slug: [] for n in nodes}
    for c in counties():
        if c.node in by_node:
            by_node[c.node].append(c)
    return list(by_node.values())


def _credential_profiles() -> list[CredentialProfileDoc]:
    return [
        CredentialProfileDoc(
            name=SNMP_PROFILE,
            kind=CredentialKind.SNMP,
            snmp_version=SnmpVersion.V3,
            user="tiandi-noc",
            auth_protocol=SnmpAuthProtocol.SHA,
            auth_key=SecretRef("env", "TIANDI_SNMP_AUTH_KEY"),
            priv_protocol=SnmpPrivProtocol.AES,
            priv_key=SecretRef("env", "TIANDI_SNMP_PRIV_KEY"),
        ),
        CredentialProfileDoc(
            name=SSH_PROFILE,
            kind=CredentialKind.SSH,
            username="tiandi",
            password=SecretRef("env", "TIANDI_SSH_PASSWORD"),
        ),
    ]


def _pick(rng: random.Random, weighted: Sequence[tuple[T, int]]) -> T:
    """A weighted choice: the weights say how common each option is in the field."""
    values = [v for v, _ in weighted]
    return rng.choices(values, weights=[w for _, w in weighted])[0]


class _Builder:
    """Builds sites in document order, handing out management and probe addresses as it goes."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._devices = 0
        self._links = 0

    def _rng(self, site: str) -> random.Random:
        return random.Random(f"{self._seed}/site/{site}")

    def _device(
        self, name: str, kind: DeviceKind, vendor: str, platform: str, model: str
    ) -> DeviceDoc:
        address = loopback_address(MGMT_FIRST_OCTET, self._devices)
        self._devices += 1
        return DeviceDoc(
            name=name,
            kind=kind,
            vendor=vendor,
            platform=platform,
            model=model,
            mgmt_address=address,
            snmp_profile=SNMP_PROFILE,
            ssh_profile=SSH_PROFILE,
        )

    def _link(
        self,
        site: str,
        role: LinkRole,
        router: DeviceDoc,
        interface: str,
        capacity_kbps: int,
        carrier: str,
        terminal: DeviceDoc | None = None,
    ) -> LinkDoc:
        address = loopback_address(PROBE_FIRST_OCTET, self._links)
        self._links += 1
        return LinkDoc(
            name=f"{site}-{role.value}",
            role=role,
            router=router.name,
            interface=interface,
            capacity_kbps=capacity_kbps,
            probe_address=address,
            carrier=carrier,
            terminal=terminal.name if terminal else None,
            satellite_pool=SATELLITE_POOL if terminal else None,
        )

    def _terminal(self, rng: random.Random, name: str) -> DeviceDoc:
        # Mostly Comtech SCPC modems; a few sites run iDirect remotes on the same hub.
        if rng.random() < 0.15:
            return self._device(
                name, DeviceKind.SATELLITE_TERMINAL, "idirect", "idirect_remote", "X7"
            )
        model = _pick(rng, [("CDM-625", 3), ("CDM-570", 2)])
        return self._device(name, DeviceKind.SATELLITE_TERMINAL, "comtech", "comtech_cdm", model)

    def _endpoint(self, name: str, model: str) -> DeviceDoc:
        return self._device(name, DeviceKind.VIDEO_ENDPOINT, "cisco", "cisco_codec", model)

    def _mcu(self, rng: random.Random, name: str) -> DeviceDoc:
        vendor, model = _pick(rng, [(("huawei", "ViewPoint 8660"), 1), (("cisco", "MCU 5320"), 1)])
        return self._device(name, DeviceKind.MCU, vendor, "mcu_cli", model)

    def ministry(self, beijing: ProvincialNode) -> SiteDoc:
        name = MINISTRY_SITE
        rng = self._rng(name)
        core = [
            self._device(f"{name}-core{i}", DeviceKind.ROUTER, "cisco", "cisco_ios", "ASR1006-X")
            for i in (1, 2)
        ]
        mcus = [self._mcu(rng, f"{name}-mcu{i}") for i in (1, 2)]
        hub = self._device(
            f"{name}-hub1",
            DeviceKind.SATELLITE_TERMINAL,
            "idirect",
            "idirect_hub",
            "Evolution 15100 hub",
        )
        models = ["Room Panorama", "Room 70", "Room Kit Pro", "SX80"]
        endpoints = [self._endpoint(f"{name}-ep{i}", m) for i, m in enumerate(models, 1)]
        links = [
            self._link(
                name,
                LinkRole.PRIMARY,
                core[0],
                "TenGigabitEthernet0/0/0",
                1_000_000,
                PRIMARY_CARRIER,
            ),
            self._link(
                name,
                LinkRole.BACKUP,
                core[1],
                "TenGigabitEthernet0/0/0",
                500_000,
                rng.choice(BACKUP_CARRIERS),
            ),
            self._link(
                name, LinkRole.SATELLITE, core[0], MODEM_IF, 155_000, SATELLITE_CARRIER, hub
            ),
        ]
        return SiteDoc(
            name=name,
            display_name="部机关",
            tier=Tier.MINISTRY,
            latitude=beijing.latitude,
            longitude=beijing.longitude,
            devices=[*core, *mcus, hub, *endpoints],
            links=links,
        )

    def province(self, node: ProvincialNode) -> SiteDoc:
        name = node.slug
        rng = self._rng(name)
        model = _pick(rng, [("ISR4451", 2), ("ASR1001-X", 1)])
        routers = [
            self._device(f"{name}-r{i}", DeviceKind.ROUTER, "cisco", "cisco_ios", model)
            for i in (1, 2)
        ]
        terminal = self._terminal(rng, f"{name}-sat1")
        mcu = self._mcu(rng, f"{name}-mcu1")
        endpoints = [
            self._endpoint(f"{name}-ep{i}", _pick(rng, [("Room Kit Pro", 2), ("SX80", 1)]))
            for i in range(1, 2 + rng.choice((1, 2)))
        ]
        primary = _pick(rng, [(50_000, 2), (100_000, 3), (155_000, 1)])
        links = [
            self._link(name, LinkRole.PRIMARY, routers[0], PRIMARY_IF, primary, PRIMARY_CARRIER),
            self._link(
                name,
                LinkRole.BACKUP,
                routers[1],
                PRIMARY_IF,
                _pick(rng, [(20_000, 2), (50_000, 1)]),
                rng.choice(BACKUP_CARRIERS),
            ),
            self._link(
                name, LinkRole.SATELLITE, routers[0], MODEM_IF, 8_192, SATELLITE_CARRIER, terminal
            ),
        ]
        return SiteDoc(
            name=name,
            display_name=node.name,
            tier=Tier.PROVINCE,
            parent=MINISTRY_SITE,
            province_code=node.code,
            latitude=node.latitude,
            longitude=node.longitude,
            devices=[*routers, terminal, mcu, *endpoints],
            links=links,
        )

    def county(self, county: County) -> SiteDoc:
        name = county.slug
        rng = self._rng(name)
        router = self._device(
            f"{name}-r1",
            DeviceKind.ROUTER,
            "cisco",
            "cisco_ios",
            _pick(rng, [("ISR4331", 6), ("ISR4321", 3), ("ISR4351", 1)]),
        )
        terminal = self._terminal(rng, f"{name}-sat1")
        endpoint = self._endpoint(
            f"{name}-ep1", _pick(rng, [("Room Kit", 4), ("SX80", 2), ("Room Kit Plus", 1)])
        )
        primary = _pick(rng, [(4_000, 3), (6_000, 2), (8_000, 4), (10_000, 2), (20_000, 1)])
        backup = rng.choice([c for c in (2_000, 4_000, 6_000) if c <= primary // 2])
        links = [
            self._link(name, LinkRole.PRIMARY, router, PRIMARY_IF, primary, PRIMARY_CARRIER),
            self._link(
                name, LinkRole.BACKUP, router, BACKUP_IF, backup, rng.choice(BACKUP_CARRIERS)
            ),
            self._link(
                name, LinkRole.SATELLITE, router, MODEM_IF, 2_048, SATELLITE_CARRIER, terminal
            ),
        ]
        return SiteDoc(
            name=name,
            display_name=county.name,
            tier=Tier.COUNTY,
            parent=county.node,
            province_code=county.adcode,
            latitude=county.latitude,
            longitude=county.longitude,
            devices=[router, terminal, endpoint],
            links=links,
        )
