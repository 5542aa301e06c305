"""The Ansible inventory export: groups by province and kind, host variables, never a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from inventory.ansible_export import (
    dump_ansible_inventory,
    to_ansible_inventory,
    write_ansible_inventory,
)
from inventory.document import InventoryDoc, SiteDoc
from inventory.enums import Tier
from inventory.generator import generate
from inventory.validation import validate_or_raise
from tests.harness.samples import small_inventory

KIND_GROUPS = {"router", "satellite_terminal", "video_endpoint", "mcu"}


@pytest.fixture(scope="module")
def network() -> InventoryDoc:
    return generate(provinces=37, counties=60, seed=3)


@pytest.fixture(scope="module")
def groups(network: InventoryDoc) -> dict[str, dict[str, Any]]:
    children: dict[str, dict[str, Any]] = to_ansible_inventory(network)["all"]["children"]
    return children


def hosts(groups: dict[str, dict[str, Any]], group: str) -> set[str]:
    return set(groups[group]["hosts"])


def all_hostvars(groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {h: hv for g in KIND_GROUPS & set(groups) for h, hv in groups[g]["hosts"].items()}


def test_one_group_per_kind_and_per_provincial_node(
    network: InventoryDoc, groups: dict[str, dict[str, Any]]
) -> None:
    nodes = [s.name for s in network.sites if s.tier is Tier.PROVINCE]
    expected = {"province_" + n.replace("-", "_") for n in nodes} | KIND_GROUPS | {"ministry"}
    assert set(groups) == expected
    assert "province_xinjiang_bingtuan" in groups
    devices = {d.name: d.kind.value for s in network.sites for d in s.devices}
    for kind in KIND_GROUPS:
        assert hosts(groups, kind) == {name for name, k in devices.items() if k == kind}


def test_a_province_group_holds_the_node_and_its_counties(
    network: InventoryDoc, groups: dict[str, dict[str, Any]]
) -> None:
    def devices_of(sites: list[SiteDoc]) -> set[str]:
        return {d.name for s in sites for d in s.devices}

    for node in (s for s in network.sites if s.tier is Tier.PROVINCE):
        below = [s for s in network.sites if s.parent == node.name]
        group = "province_" + node.name.replace("-", "_")
        assert hosts(groups, group) == devices_of([node, *below])
    ministry = [s for s in network.sites if s.tier is Tier.MINISTRY]
    assert hosts(groups, "ministry") == devices_of(ministry)
    sichuan = hosts(groups, "province_sichuan")
    assert any(h.startswith("sc-") for h in sichuan)
    assert "sichuan-r1" in sichuan


def test_prefecture_sites_land_in_their_province_group() -> None:
    doc = validate_or_raise(small_inventory())
    groups = to_ansible_inventory(doc)["all"]["children"]
    for site in doc.sites:
        if site.tier is not Tier.PREFECTURE:
            continue
        province = "province_" + (site.parent or "").replace("-", "_")
        below = [s for s in doc.sites if s.parent == site.name]
        for s in [site, *below]:
            for d in s.devices:
                assert d.name in groups[province]["hosts"], d.name


def test_host_variables(network: InventoryDoc, groups: dict[str, dict[str, Any]]) -> None:
    hv = all_hostvars(groups)
    county = next(s for s in network.sites if s.tier is Tier.COUNTY)
    router = next(d for d in county.devices if d.platform == "cisco_ios")
    assert hv[router.name] == {
        "ansible_host": router.mgmt_address,
        "ansible_network_os": "cisco.ios.ios",
        "ansible_connection": "ansible.netcommon.network_cli",
        "tiandi_site": county.name,
        "tiandi_kind": "router",
        "tiandi_vendor": "cisco",
        "tiandi_platform": "cisco_ios",
    }
    for site in network.sites:
        for d in site.devices:
            if d.platform != "cisco_ios":
                assert "ansible_network_os" not in hv[d.name], d.name
                assert "ansible_connection" not in hv[d.name], d.name
            assert hv[d.name]["ansible_host"] == d.mgmt_address
            assert "ansible_port" not in hv[d.name]  # all on 22


def test_a_non_standard_ssh_port_is_exported() -> None:
    doc = generate(provinces=1, counties=1)
    doc.sites[-1].devices[0].ssh_port = 2222
    hv = all_hostvars(to_ansible_inventory(doc)["all"]["children"])
    assert hv[doc.sites[-1].devices[0].name]["ansible_port"] == 2222


def test_no_secret_or_credential_reference_is_exported(network: InventoryDoc) -> None:
    text = dump_ansible_inventory(network)
    for profile in network.credential_profiles:
        assert profile.name not in text
    for forbidden in ("TIANDI_", "env:", "password", "community", "_key", "profile"):
        assert forbidden not in text


def test_output_is_sorted_and_stable(network: InventoryDoc) -> None:
    text = dump_ansible_inventory(network)
    assert text == dump_ansible_inventory(generate(provinces=37, counties=60, seed=3))
    loaded = yaml.safe_load(text)
    assert loaded == to_ansible_inventory(network)
    group_names = list(loaded["all"]["children"])
    assert group_names == sorted(group_names)
    router_hosts = list(loaded["all"]["children"]["router"]["hosts"])
    assert router_hosts == sorted(router_hosts)


def test_ansible_inventory_reads_the_export(tmp_path: Path) -> None:
    doc = generate(provinces=3, counties=8, seed=5)
    path = tmp_path / "hosts.yml"
    write_ansible_inventory(doc, path)
    ansible_inventory = Path(sys.executable).with_name("ansible-inventory")
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    }
    run = subprocess.run(
        [str(ansible_inventory), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    listed = json.loads(run.stdout)
    hostvars = listed["_meta"]["hostvars"]
    devices = {d.name: (s, d) for s in doc.sites for d in s.devices}
    assert set(hostvars) == set(devices)
    for name, (site, device) in devices.items():
        assert hostvars[name]["ansible_host"] == device.mgmt_address
        assert hostvars[name]["tiandi_site"] == site.name
    assert set(listed["router"]["hosts"]) == {
        n for n, (_, d) in devices.items() if d.kind.value == "router"
    }
    hebei = {d.name for s in doc.sites if "hebei" in (s.name, s.parent) for d in s.devices}
    assert set(listed["province_hebei"]["hosts"]) == hebei
    assert hostvars["hebei-r1"]["ansible_network_os"] == "cisco.ios.ios"
    assert "TIANDI_" not in run.stdout
