"""The national-topology generator: real places, the equipment of each tier, valid and stable."""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from typing import Any

import pytest

from inventory.document import InventoryDoc, SiteDoc
from inventory.enums import CredentialKind, DeviceKind, LinkRole, Tier
from inventory.generator import (
    MINISTRY_SITE,
    SATELLITE_POOL,
    apportion,
    generate,
    loopback_address,
)
from inventory.geography import counties, provincial_nodes
from inventory.validation import check_references, validate_raw
from inventory.yamlio import dump_document, parse_yaml


@pytest.fixture(scope="module")
def national() -> InventoryDoc:
    return generate()


@pytest.fixture(scope="module")
def national_yaml(national: InventoryDoc) -> str:
    return dump_document(national)


@pytest.fixture(scope="module")
def national_raw(national_yaml: str) -> Any:
    """The default network's YAML as loaded, before validation."""
    return parse_yaml(national_yaml)


@pytest.fixture(scope="module")
def every_county() -> InventoryDoc:
    return generate(counties=len(counties()))


def by_tier(doc: InventoryDoc, tier: Tier) -> list[SiteDoc]:
    return [s for s in doc.sites if s.tier is tier]


def reload(text: str) -> InventoryDoc:
    doc, problems = validate_raw(parse_yaml(text))
    assert problems == []
    assert doc is not None
    return doc


# ---- shape of the default network -------------------------------------------------------------


def test_default_network_has_ministry_37_nodes_and_1500_counties(national: InventoryDoc) -> None:
    assert [s.name for s in by_tier(national, Tier.MINISTRY)] == [MINISTRY_SITE]
    assert len(by_tier(national, Tier.PROVINCE)) == 37
    assert len(by_tier(national, Tier.COUNTY)) == 1500
    assert len(national.sites) == 1 + 37 + 1500


def test_the_37_nodes_are_the_real_provincial_level_units(national: InventoryDoc) -> None:
    nodes = {s.name: s for s in by_tier(national, Tier.PROVINCE)}
    two_digit = {s.province_code for s in nodes.values() if len(s.province_code or "") == 2}
    # GB/T 2260 province codes, plus 66 for XPCC.
    first = (11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43)
    rest = (44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 66)
    assert two_digit == {str(c) for c in first + rest}
    separately_listed = {
        name: (nodes[name].display_name, nodes[name].province_code)
        for name in ("dalian", "qingdao", "ningbo", "xiamen", "shenzhen")
    }
    assert separately_listed == {
        "dalian": ("大连市", "2102"),
        "qingdao": ("青岛市", "3702"),
        "ningbo": ("宁波市", "3302"),
        "xiamen": ("厦门市", "3502"),
        "shenzhen": ("深圳市", "4403"),
    }
    assert nodes["xinjiang-bingtuan"].display_name == "新疆生产建设兵团"
    assert nodes["xinjiang-bingtuan"].province_code == "66"
    assert nodes["guangdong"].display_name == "广东省"
    assert nodes["guangdong"].province_code == "44"
    for node in nodes.values():
        assert node.parent == MINISTRY_SITE
        # All of China lies within these bounds; a swapped lat/long would not.
        assert node.latitude is not None and 18 < node.latitude < 54, node.name
        assert node.longitude is not None and 73 < node.longitude < 136, node.name


def test_document_order_is_ministry_then_nodes_then_counties_grouped(
    national: InventoryDoc,
) -> None:
    tiers = [s.tier for s in national.sites]
    assert tiers == [Tier.MINISTRY] + [Tier.PROVINCE] * 37 + [Tier.COUNTY] * 1500
    node_order = [s.name for s in by_tier(national, Tier.PROVINCE)]
    assert node_order == [n.slug for n in provincial_nodes()]
    parents = [s.parent for s in by_tier(national, Tier.COUNTY)]
    # Grouped: once a node's counties end, that node never comes back.
    runs = [p for i, p in enumerate(parents) if i == 0 or parents[i - 1] != p]
    assert runs == [p for p in node_order if p in set(parents)]


def test_counties_are_real_divisions_under_their_own_node(national: InventoryDoc) -> None:
    real = {c.slug: c for c in counties()}
    codes = {s.name: s.province_code for s in by_tier(national, Tier.PROVINCE)}
    for site in by_tier(national, Tier.COUNTY):
        county = real[site.name]
        assert (site.display_name, site.province_code) == (county.name, county.adcode)
        assert (site.latitude, site.longitude) == (county.latitude, county.longitude)
        assert site.parent == county.node
        assert site.province_code is not None
        node_code = codes[site.parent]
        assert node_code is not None
        expected_prefix = "6590" if node_code == "66" else node_code
        assert site.province_code.startswith(expected_prefix), site.name
    liaoning = [s for s in by_tier(national, Tier.COUNTY) if s.parent == "liaoning"]
    assert liaoning
    assert not any((s.province_code or "").startswith("2102") for s in liaoning)


def test_counties_spread_in_proportion_to_real_division_counts(national: InventoryDoc) -> None:
    per_node = Counter(s.parent for s in by_tier(national, Tier.COUNTY))
    real = Counter(c.node for c in counties())
    assert per_node["sichuan"] > per_node["ningxia"] > per_node["xiamen"]
    for node, n in real.items():
        # Largest remainder: within one county of the exact share.
        assert abs(per_node[node] - 1500 * n / sum(real.values())) < 1, node
    for few in ("xinjiang-bingtuan", "dalian", "qingdao", "ningbo", "xiamen", "shenzhen"):
        assert 1 <= per_node[few] <= 8, few


def test_each_county_has_router_terminal_endpoint_and_three_links(national: InventoryDoc) -> None:
    for site in by_tier(national, Tier.COUNTY):
        kinds = {d.kind: d for d in site.devices}
        assert sorted(kinds) == sorted(
            [DeviceKind.ROUTER, DeviceKind.SATELLITE_TERMINAL, DeviceKind.VIDEO_ENDPOINT]
        )
        assert len(site.devices) == 3
        router, terminal = kinds[DeviceKind.ROUTER], kinds[DeviceKind.SATELLITE_TERMINAL]
        assert (router.vendor, router.platform) == ("cisco", "cisco_ios")
        assert (kinds[DeviceKind.VIDEO_ENDPOINT].platform) == "cisco_codec"
        assert terminal.platform in ("comtech_cdm", "idirect_remote")
        links = {lk.role: lk for lk in site.links}
        assert sorted(links) == sorted(LinkRole)
        assert len(site.links) == 3
        assert {lk.router for lk in site.links} == {router.name}
        primary, backup, sat = (links[r] for r in LinkRole)
        assert primary.carrier == "电子政务外网"
        assert 4_000 <= primary.capacity_kbps <= 20_000
        assert backup.carrier in ("中国联通", "中国移动", "中国电信")
        assert backup.capacity_kbps < primary.capacity_kbps
        assert (sat.terminal, sat.satellite_pool) == (terminal.name, SATELLITE_POOL)
        assert 1_000 <= sat.capacity_kbps <= 4_000
        interfaces = [links[r].interface for r in LinkRole]
        assert interfaces == [
            "GigabitEthernet0/0/0",
            "GigabitEthernet0/0/1",
            "GigabitEthernet0/1/0",
        ]


def test_provinces_and_ministry_carry_their_equipment(national: InventoryDoc) -> None:
    for site in by_tier(national, Tier.PROVINCE):
        kinds = Counter(d.kind for d in site.devices)
        assert kinds[DeviceKind.ROUTER] == 2
        assert kinds[DeviceKind.SATELLITE_TERMINAL] == 1
        assert kinds[DeviceKind.MCU] == 1
        assert kinds[DeviceKind.VIDEO_ENDPOINT] >= 2
        assert sorted(lk.role for lk in site.links) == sorted(LinkRole)
    (ministry,) = by_tier(national, Tier.MINISTRY)
    kinds = Counter(d.kind for d in ministry.devices)
    assert kinds[DeviceKind.ROUTER] >= 2
    assert kinds[DeviceKind.MCU] >= 2
    assert kinds[DeviceKind.VIDEO_ENDPOINT] >= 2
    hubs = [d for d in ministry.devices if d.kind is DeviceKind.SATELLITE_TERMINAL]
    assert [h.platform for h in hubs] == ["idirect_hub"]
    assert [p.name for p in national.satellite_pools] == [SATELLITE_POOL]
    assert national.satellite_pools[0].capacity_kbps == 155_000


def test_equipment_varies_between_counties(national: InventoryDoc) -> None:
    counties_ = by_tier(national, Tier.COUNTY)
    terminals = Counter(
        d.model for s in counties_ for d in s.devices if d.kind is DeviceKind.SATELLITE_TERMINAL
    )
    assert set(terminals) == {"CDM-625", "CDM-570", "X7"}
    assert terminals["X7"] < terminals["CDM-625"]
    carriers = Counter(
        lk.carrier for s in counties_ for lk in s.links if lk.role is LinkRole.BACKUP
    )
    assert len(carriers) == 3


def test_every_device_uses_the_snmp_v3_and_ssh_profiles(national: InventoryDoc) -> None:
    profiles = {p.name: p for p in national.credential_profiles}
    snmp = [p for p in profiles.values() if p.kind is CredentialKind.SNMP]
    assert [(p.auth_protocol, p.priv_protocol) for p in snmp] == [("sha", "aes")]
    assert snmp[0].auth_key is not None and str(snmp[0].auth_key) == "env:TIANDI_SNMP_AUTH_KEY"
    assert snmp[0].priv_key is not None and str(snmp[0].priv_key) == "env:TIANDI_SNMP_PRIV_KEY"
    ssh = [p for p in profiles.values() if p.kind is CredentialKind.SSH]
    assert ssh[0].password is not None and str(ssh[0].password) == "env:TIANDI_SSH_PASSWORD"
    for site in national.sites:
        for device in site.devices:
            assert device.snmp_profile == snmp[0].name
            assert device.ssh_profile == ssh[0].name


# ---- addressing -------------------------------------------------------------------------------


def test_addresses_are_unique_loopback_and_mgmt_apart_from_probes(national: InventoryDoc) -> None:
    mgmt = [ipaddress.IPv4Address(d.mgmt_address) for s in national.sites for d in s.devices]
    probes = [ipaddress.IPv4Address(lk.probe_address) for s in national.sites for lk in s.links]
    assert len(set(mgmt)) == len(mgmt) > 4500
    assert len(set(probes)) == len(probes) > 4500
    mgmt_net = ipaddress.ip_network("127.0.0.0/8")
    for a in mgmt + probes:
        assert a in mgmt_net
        assert a not in ipaddress.ip_network("127.0.0.0/16")  # so never 127.0.0.1
        assert str(a).split(".")[3] not in ("0", "255")
    assert max(mgmt) < min(probes)
    assert all(1 <= int(str(a).split(".")[1]) < 64 for a in mgmt)
    assert all(64 <= int(str(a).split(".")[1]) < 128 for a in probes)


def test_loopback_address_scheme() -> None:
    assert loopback_address(1, 0) == "127.1.0.1"
    assert loopback_address(1, 253) == "127.1.0.254"
    assert loopback_address(1, 254) == "127.1.1.1"
    assert loopback_address(1, 254 * 256) == "127.2.0.1"
    assert loopback_address(64, 0) == "127.64.0.1"
    assert loopback_address(1, 63 * 256 * 254 - 1) == "127.63.255.254"
    with pytest.raises(ValueError, match="outside"):
        loopback_address(1, 63 * 256 * 254)
    with pytest.raises(ValueError, match="outside"):
        loopback_address(1, -1)


def test_apportion_sums_exactly_and_respects_weights() -> None:
    assert apportion(40, [16, 16, 167]) == [3, 3, 34]
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(0, [5, 7]) == [0, 0]
    assert apportion(3, [0, 0]) == [0, 0]
    weights = [16, 16, 167, 117, 12, 6]
    for total in range(sum(weights) + 1):
        shares = apportion(total, weights)
        assert sum(shares) == total
        assert all(0 <= s <= w for s, w in zip(shares, weights, strict=True))


# ---- validity, determinism, round trip --------------------------------------------------------


def test_default_network_passes_validation(national_raw: Any) -> None:
    doc, problems = validate_raw(national_raw)
    assert problems == []
    assert doc is not None


def test_yaml_round_trip_is_a_fixpoint(national_raw: Any, national_yaml: str) -> None:
    doc, _ = validate_raw(national_raw)
    assert doc is not None
    assert dump_document(doc) == national_yaml
    assert national_yaml.splitlines()[0] == "version: 1"
    assert "\nsites:\n- name: ministry\n" in national_yaml


def test_same_seed_same_bytes_other_seed_other_details(
    national: InventoryDoc, national_yaml: str
) -> None:
    assert dump_document(generate()) == national_yaml
    other = generate(seed=1)
    assert other != national
    assert other.credential_profiles == national.credential_profiles
    assert len(by_tier(other, Tier.COUNTY)) == 1500
    assert [s.name for s in by_tier(other, Tier.PROVINCE)] == [n.slug for n in provincial_nodes()]


def kit(site: SiteDoc) -> list[tuple[Any, ...]]:
    """What a site was given, without the addresses (those follow document order)."""
    return [(d.name, d.model) for d in site.devices] + [
        (lk.name, lk.capacity_kbps, lk.carrier) for lk in site.links
    ]


def test_a_county_keeps_its_equipment_when_the_network_is_resized(
    every_county: InventoryDoc,
) -> None:
    small = {s.name: s for s in generate(provinces=3, counties=199).sites}
    large = {s.name: s for s in every_county.sites}
    for name in ("bj-haidian", "he-shijiazhuang-zhengding", "hebei"):
        assert kit(small[name]) == kit(large[name])


def test_generating_the_default_network_is_fast() -> None:
    start = time.perf_counter()
    generate(seed=7)
    assert time.perf_counter() - start < 5


# ---- small variants and arguments -------------------------------------------------------------


def test_small_variant_takes_the_first_nodes_in_fixed_order() -> None:
    doc = generate(provinces=3, counties=40)
    assert [s.name for s in by_tier(doc, Tier.PROVINCE)] == ["beijing", "tianjin", "hebei"]
    per_node = Counter(s.parent for s in by_tier(doc, Tier.COUNTY))
    assert per_node == {"beijing": 3, "tianjin": 3, "hebei": 34}
    assert reload(dump_document(doc)) == doc


def test_every_real_county_can_be_generated(every_county: InventoryDoc) -> None:
    names = [s.name for s in by_tier(every_county, Tier.COUNTY)]
    assert sorted(names) == sorted(c.slug for c in counties())
    assert len(names) == 2847
    assert check_references(every_county) == []


def test_only_the_ministry_when_no_provinces() -> None:
    doc = generate(provinces=0, counties=0)
    assert [s.name for s in doc.sites] == [MINISTRY_SITE]
    assert validate_raw(parse_yaml(dump_document(doc)))[1] == []


@pytest.mark.parametrize(
    ("provinces", "counties_", "message"),
    [
        (38, 0, "provinces must be between 0 and 37"),
        (-1, 0, "provinces must be between 0 and 37"),
        (1, 17, "the first 1 provincial-level nodes have 16 county-level divisions"),
        (37, 5000, "have 2847 county-level divisions"),
        (3, -1, "counties must be between 0"),
    ],
)
def test_impossible_sizes_are_refused(provinces: int, counties_: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(provinces=provinces, counties=counties_)
