"""Building the lab network from an inventory: devices, interfaces, routes, traffic, secrets."""

from __future__ import annotations

import ipaddress
import time

import pytest

from inventory.document import (
    CredentialProfileDoc,
    DeviceDoc,
    InventoryDoc,
    LinkDoc,
    SatellitePoolDoc,
    SiteDoc,
)
from inventory.enums import CredentialKind, DeviceKind, LinkRole, SnmpVersion, Tier
from inventory.secrets import SecretRef
from lab.build import (
    LOOPBACK_NAME,
    MCU_PORTS,
    MODCOD_BY_NUMBER,
    LabBuildError,
    LabSecretMissing,
    apply_secret_defaults,
    build_network,
    lab_secret_defaults,
    modcod_for,
    resolve_credentials,
)
from lab.state import LabNetwork
from lab.traffic import KEEPALIVE_BPS

T0 = 1_000.0


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _dev(name: str, kind: DeviceKind, address: str) -> DeviceDoc:
    platform = {
        DeviceKind.ROUTER: "cisco_ios",
        DeviceKind.SATELLITE_TERMINAL: "comtech_cdm",
        DeviceKind.VIDEO_ENDPOINT: "cisco_codec",
        DeviceKind.MCU: "mcu_cli",
    }[kind]
    return DeviceDoc(
        name=name,
        kind=kind,
        vendor="cisco" if kind is not DeviceKind.SATELLITE_TERMINAL else "comtech",
        platform=platform,
        mgmt_address=address,
        snmp_profile="snmp-lab",
        ssh_profile="ssh-lab",
    )


def _county(name: str, parent: str, n: int) -> SiteDoc:
    """A county: router r1 (primary, backup, satellite via sat1) and a codec ep1."""
    base = 10 + n * 10
    return SiteDoc(
        name=name,
        tier=Tier.COUNTY,
        parent=parent,
        devices=[
            _dev(f"{name}-r1", DeviceKind.ROUTER, f"127.200.0.{base}"),
            _dev(f"{name}-sat1", DeviceKind.SATELLITE_TERMINAL, f"127.200.0.{base + 1}"),
            _dev(f"{name}-ep1", DeviceKind.VIDEO_ENDPOINT, f"127.200.0.{base + 2}"),
        ],
        links=[
            LinkDoc(
                name=f"{name}-primary",
                role=LinkRole.PRIMARY,
                router=f"{name}-r1",
                interface="GigabitEthernet0/0/0",
                capacity_kbps=8_000,
                probe_address=f"127.201.0.{base}",
            ),
            LinkDoc(
                name=f"{name}-backup",
                role=LinkRole.BACKUP,
                router=f"{name}-r1",
                interface="GigabitEthernet0/0/1",
                capacity_kbps=4_000,
                probe_address=f"127.201.0.{base + 1}",
            ),
            LinkDoc(
                name=f"{name}-satellite",
                role=LinkRole.SATELLITE,
                router=f"{name}-r1",
                interface="GigabitEthernet0/1/0",
                capacity_kbps=2_048,
                probe_address=f"127.201.0.{base + 2}",
                terminal=f"{name}-sat1",
                satellite_pool="ku",
            ),
        ],
    )


def small_doc() -> InventoryDoc:
    """Ministry; provinces guangdong (2 counties) and hunan (1 county)."""
    return InventoryDoc(
        satellite_pools=[SatellitePoolDoc(name="ku", capacity_kbps=155_000)],
        credential_profiles=[
            CredentialProfileDoc(
                name="snmp-lab",
                kind=CredentialKind.SNMP,
                snmp_version=SnmpVersion.V2C,
                community=SecretRef("env", "TIANDI_TEST_LAB_COMMUNITY"),
            ),
            CredentialProfileDoc(
                name="ssh-lab",
                kind=CredentialKind.SSH,
                username="noc",
                password=SecretRef("env", "TIANDI_TEST_LAB_SSH_PASSWORD"),
            ),
        ],
        sites=[
            SiteDoc(
                name="ministry",
                tier=Tier.MINISTRY,
                devices=[
                    _dev("ministry-core1", DeviceKind.ROUTER, "127.200.0.1"),
                    _dev("ministry-mcu1", DeviceKind.MCU, "127.200.0.2"),
                ],
                links=[
                    LinkDoc(
                        name="ministry-primary",
                        role=LinkRole.PRIMARY,
                        router="ministry-core1",
                        interface="TenGigabitEthernet0/0/0",
                        capacity_kbps=1_000_000,
                        probe_address="127.201.0.1",
                    )
                ],
            ),
            SiteDoc(
                name="guangdong",
                tier=Tier.PROVINCE,
                parent="ministry",
                devices=[
                    _dev("guangdong-r1", DeviceKind.ROUTER, "127.200.0.3"),
                    _dev("guangdong-r2", DeviceKind.ROUTER, "127.200.0.4"),
                    _dev("guangdong-mcu1", DeviceKind.MCU, "127.200.0.5"),
                ],
                links=[
                    LinkDoc(
                        name="guangdong-primary",
                        role=LinkRole.PRIMARY,
                        router="guangdong-r1",
                        interface="GigabitEthernet0/0/0",
                        capacity_kbps=100_000,
                        probe_address="127.201.0.3",
                    ),
                    LinkDoc(
                        name="guangdong-backup",
                        role=LinkRole.BACKUP,
                        router="guangdong-r2",
                        interface="GigabitEthernet0/0/0",
                        capacity_kbps=20_000,
                        probe_address="127.201.0.4",
                    ),
                ],
            ),
            _county("gd-a", "guangdong", 1),
            _county("gd-b", "guangdong", 2),
            SiteDoc(name="hunan", tier=Tier.PROVINCE, parent="ministry"),
            _county("hn-a", "hunan", 3),
        ],
    )


def build(seed: int = 0, clock: FakeClock | None = None) -> tuple[LabNetwork, FakeClock]:
    clk = clock or FakeClock()
    return build_network(small_doc(), clk, seed=seed), clk


def test_router_has_an_interface_per_link_then_lan_then_loopback() -> None:
    net, _ = build()
    r1 = net.devices["gd-a-r1"]
    names = [i.name for i in r1.interfaces]
    assert names == [
        "GigabitEthernet0/0/0",
        "GigabitEthernet0/0/1",
        "GigabitEthernet0/1/0",
        "GigabitEthernet0/1/1",  # LAN: the first free name
        LOOPBACK_NAME,
    ]
    assert [i.index for i in r1.interfaces] == [1, 2, 3, 4, 5]
    links = [i.link for i in r1.interfaces]
    assert links == ["gd-a-primary", "gd-a-backup", "gd-a-satellite", None, None]
    assert [i.speed_bps for i in r1.interfaces[:3]] == [8_000_000, 4_000_000, 2_048_000]
    private = ipaddress.ip_network("172.16.0.0/12")
    for iface in r1.interfaces[:3]:
        assert iface.ip_address is not None
        assert ipaddress.ip_address(iface.ip_address) in private
    assert r1.interfaces[-1].ip_address == r1.mgmt_address
    # Stable: the same document gives the same ifIndex and addresses.
    again, _ = build()
    assert [(i.index, i.name, i.ip_address) for i in again.devices["gd-a-r1"].interfaces] == [
        (i.index, i.name, i.ip_address) for i in r1.interfaces
    ]


def test_one_default_route_via_the_primary_next_hop_in_running_and_saved_config() -> None:
    net, _ = build()
    r1 = net.devices["gd-a-r1"]
    primary = net.links["gd-a-primary"]
    assert [(r.prefix, r.mask, r.next_hop, r.distance) for r in r1.static_routes] == [
        ("0.0.0.0", "0.0.0.0", primary.probe_address, 1)
    ]
    assert [vars(r) for r in r1.saved_routes] == [vars(r) for r in r1.static_routes]
    assert r1.saved_routes[0] is not r1.static_routes[0]
    # At a two-router site only the router of the primary link routes the site.
    assert net.devices["guangdong-r2"].static_routes == []
    assert net.devices["guangdong-r1"].static_routes[0].next_hop == "127.201.0.3"


def test_devices_of_each_kind_start_in_a_plausible_state() -> None:
    net, clock = build()
    sat = net.devices["gd-a-sat1"]
    assert 90 <= sat.esno_db10 <= 120
    mc = modcod_for(sat.esno_db10)
    assert mc is not None and sat.modcod == mc.number
    assert sat.demod_locked and sat.tx_enabled
    assert -480 <= sat.rx_level_dbm10 <= -300
    ep = net.devices["gd-a-ep1"]
    assert ep.registered and ep.calls == []
    assert net.devices["ministry-mcu1"].ports_total == MCU_PORTS[Tier.MINISTRY]
    assert net.devices["guangdong-mcu1"].ports_total == MCU_PORTS[Tier.PROVINCE]
    for dev in net.devices.values():
        uptime_days = (clock() - dev.boot_time) / 86_400
        assert 1 <= uptime_days <= 120
        assert net.by_mgmt_address[dev.mgmt_address] is dev
    assert net.sites["gd-a"].province == "guangdong"
    assert net.sites["guangdong"].province == "guangdong"
    assert net.sites["ministry"].province is None
    assert net.devices["hn-a-r1"].province == "hunan"


def test_link_quality_by_role_and_no_loss() -> None:
    net, _ = build()
    ranges = {
        LinkRole.PRIMARY: (15, 40),
        LinkRole.BACKUP: (25, 60),
        LinkRole.SATELLITE: (550, 650),
    }
    for link in net.links.values():
        low, high = ranges[link.role]
        loss, latency, jitter = link.effective()
        assert loss == 0.0
        assert low <= latency <= high
        assert 0 < jitter <= 15
        assert net.by_probe_address[link.probe_address] is link


def test_traffic_rides_the_primary_and_counters_grow_by_the_model_rate() -> None:
    net, clock = build()
    site = net.sites["gd-a"]
    r1 = net.devices["gd-a-r1"]
    primary, backup, sat, _lan, _loopback = r1.interfaces
    assert 500 <= site.background_kbps <= 3_000
    rate = min(site.background_kbps * 1000.0, 8_000_000.0)
    assert primary.out_rate_bps == pytest.approx(rate)
    assert primary.in_rate_bps == pytest.approx(rate)
    assert backup.out_rate_bps == sat.out_rate_bps == KEEPALIVE_BPS
    before = primary.octets(clock())
    clock.advance(10.0)
    after = primary.octets(clock())
    assert after[0] - before[0] == pytest.approx(rate / 8 * 10, abs=1)
    assert after[1] - before[1] == pytest.approx(rate / 8 * 10, abs=1)
    # Counters do not start at zero: they carry the device's uptime of traffic.
    assert before[0] > 0


def test_same_seed_same_network_other_seed_other_network() -> None:
    def fingerprint(net: LabNetwork) -> list[object]:
        out: list[object] = []
        for dev in net.devices.values():
            out.append((dev.boot_time, dev.esno_db10, [i.octets(T0) for i in dev.interfaces]))
        for site in net.sites.values():
            out.append(site.background_kbps)
        for link in net.links.values():
            out.append(link.effective())
        return out

    a, _ = build(seed=7)
    b, _ = build(seed=7)
    c, _ = build(seed=8)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)


def test_modcod_follows_esno() -> None:
    efficiencies = []
    for esno in range(-40, 200, 5):
        mc = modcod_for(esno)
        efficiencies.append(mc.efficiency if mc else 0.0)
    assert efficiencies == sorted(efficiencies)
    assert modcod_for(-40) is None  # -4 dB: no lock
    assert modcod_for(-20) is MODCOD_BY_NUMBER[1]  # -2 dB: locked at the most robust MODCOD
    top = modcod_for(180)
    assert top is not None and top.name == "32APSK 9/10"


def test_credentials_resolve_once_per_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIANDI_TEST_LAB_COMMUNITY", "c0mmunity")
    monkeypatch.setenv("TIANDI_TEST_LAB_SSH_PASSWORD", "s3cret-pw")
    creds = resolve_credentials(small_doc())
    snmp = creds.snmp["gd-a-r1"]
    assert snmp.version is SnmpVersion.V2C and snmp.community == "c0mmunity"
    assert creds.snmp["gd-a-r1"] is creds.snmp["hn-a-ep1"]
    assert creds.ssh["gd-a-r1"].username == "noc"
    assert creds.ssh["gd-a-r1"].password == "s3cret-pw"
    assert "c0mmunity" not in repr(snmp) and "s3cret-pw" not in repr(creds.ssh["gd-a-r1"])


def test_a_missing_secret_names_the_profile_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIANDI_TEST_LAB_COMMUNITY", "c0mmunity")
    monkeypatch.delenv("TIANDI_TEST_LAB_SSH_PASSWORD", raising=False)
    with pytest.raises(LabSecretMissing) as err:
        resolve_credentials(small_doc())
    assert "'ssh-lab'" in str(err.value)
    assert "TIANDI_TEST_LAB_SSH_PASSWORD" in str(err.value)


def test_lab_secret_defaults_fill_only_unset_variables() -> None:
    doc = small_doc()
    defaults = lab_secret_defaults(doc)
    assert set(defaults) == {"TIANDI_TEST_LAB_COMMUNITY", "TIANDI_TEST_LAB_SSH_PASSWORD"}
    assert all(len(v) >= 8 for v in defaults.values())
    env = {"TIANDI_TEST_LAB_COMMUNITY": "mine"}
    assert apply_secret_defaults(doc, env) == ["TIANDI_TEST_LAB_SSH_PASSWORD"]
    assert env["TIANDI_TEST_LAB_COMMUNITY"] == "mine"
    assert env["TIANDI_TEST_LAB_SSH_PASSWORD"] == defaults["TIANDI_TEST_LAB_SSH_PASSWORD"]


def test_two_links_on_one_interface_is_a_build_error() -> None:
    doc = small_doc()
    doc.sites[2].links[1].interface = "gigabitethernet0/0/0"
    with pytest.raises(LabBuildError, match="both ride interface"):
        build_network(doc, FakeClock())


def test_the_national_network_builds_quickly() -> None:
    from inventory.generator import generate

    doc = generate(seed=0)
    start = time.perf_counter()
    net = build_network(doc, FakeClock(), seed=0)
    elapsed = time.perf_counter() - start
    assert len(net.devices) > 4_500 and len(net.links) > 4_500
    assert elapsed < 5.0
    carrying = [i for d in net.devices.values() for i in d.interfaces if i.out_rate_bps > 2_000]
    assert len(carrying) >= 1_500  # every county's primary carries its traffic
