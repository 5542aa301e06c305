"""Whole-document validation: every rule reported with its path and reason, all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from inventory.errors import InventoryInvalid, Problem
from inventory.validation import validate_or_raise, validate_raw
from inventory.yamlio import parse_yaml, read_document
from tests.harness.samples import POOL, SNMP_V2C, SNMP_V3, SSH, county, site, small_inventory

COUNTY = "guangdong-shaoguan-qujiang"


def problems_of(raw: Any) -> list[Problem]:
    doc, problems = validate_raw(raw)
    assert doc is None, "the document was accepted, a problem was expected"
    assert problems
    return problems


def reasons(problems: list[Problem]) -> dict[str, str]:
    """path -> reason; a path reported twice is itself a failure."""
    paths = [p.path for p in problems]
    assert len(paths) == len(set(paths)), f"a path reported twice: {problems}"
    return {p.path: p.reason for p in problems}


def test_the_sample_inventory_is_valid() -> None:
    doc, problems = validate_raw(small_inventory())
    assert problems == []
    assert doc is not None
    assert [s.name for s in doc.sites][:3] == ["ministry", "guangdong", "sichuan"]
    assert sum(len(s.links) for s in doc.sites) == 12


def test_duplicate_names_of_every_kind_are_reported_at_their_second_occurrence() -> None:
    raw = small_inventory()
    raw["satellite_pools"].append({"name": POOL, "capacity_kbps": 1000})
    raw["credential_profiles"].append(dict(raw["credential_profiles"][2]))  # ssh-ops again
    raw["sites"].append(county(COUNTY, "guangdong-shaoguan", 30, "again"))  # site+devices+links
    got = reasons(problems_of(raw))
    assert got == {
        "satellite_pools[1].name": f"duplicate satellite pool name {POOL!r}",
        "credential_profiles[3].name": f"duplicate credential profile name {SSH!r}",
        "sites[7].name": f"duplicate site name {COUNTY!r}",
        "sites[7].devices[0].name": f"duplicate device name '{COUNTY}-r1'",
        "sites[7].devices[1].name": f"duplicate device name '{COUNTY}-sat1'",
        "sites[7].devices[2].name": f"duplicate device name '{COUNTY}-ep1'",
        "sites[7].links[0].name": f"duplicate link name '{COUNTY}-primary'",
        "sites[7].links[1].name": f"duplicate link name '{COUNTY}-backup'",
        "sites[7].links[2].name": f"duplicate link name '{COUNTY}-sat'",
    }


def test_link_router_must_be_a_router_at_the_same_site() -> None:
    raw = small_inventory()
    links = site(raw, COUNTY)["links"]
    links[0]["router"] = "guangdong-r1"  # a router, but at the province
    links[1]["router"] = f"{COUNTY}-ep1"  # at the site, but a video endpoint
    links[2]["router"] = "no-such-router"
    got = reasons(problems_of(raw))
    assert got == {
        "sites[4].links[0].router": f"router 'guangdong-r1' is at site 'guangdong', not {COUNTY!r}",
        "sites[4].links[1].router": f"'{COUNTY}-ep1' is a video_endpoint, not a router",
        "sites[4].links[2].router": "unknown device 'no-such-router'",
    }


def test_credential_profile_references_must_exist_and_be_of_the_right_kind() -> None:
    raw = small_inventory()
    devices = site(raw, COUNTY)["devices"]
    devices[0]["snmp_profile"] = "snmp-v3-opps"
    devices[0]["ssh_profile"] = SNMP_V3
    devices[1]["snmp_profile"] = SSH
    got = reasons(problems_of(raw))
    assert got == {
        "sites[4].devices[0].snmp_profile": "unknown credential profile 'snmp-v3-opps'",
        "sites[4].devices[0].ssh_profile": f"profile {SNMP_V3!r} is a snmp profile, not ssh",
        "sites[4].devices[1].snmp_profile": f"profile {SSH!r} is a ssh profile, not snmp",
    }


def test_site_hierarchy_rules() -> None:
    raw = small_inventory()
    site(raw, "sichuan")["parent"] = None  # a province needs the ministry above it
    site(raw, "guangdong-shaoguan")["parent"] = "ministry"  # a prefecture under the ministry
    site(raw, "sichuan-luding")["parent"] = COUNTY  # a county under a county
    site(raw, "guangdong-shaoguan-renhua")["parent"] = "atlantis"
    raw["sites"].append({"name": "ministry-2", "tier": "ministry"})
    raw["sites"].append({"name": "loop", "tier": "county", "parent": "loop"})
    got = reasons(problems_of(raw))
    assert got == {
        "sites[2].parent": "a province site needs a ministry parent",
        "sites[3].parent": (
            "the parent of a prefecture site must be a province site, 'ministry' is a ministry"
        ),
        "sites[5].parent": "unknown site 'atlantis'",
        "sites[6].parent": (
            "the parent of a county site must be a prefecture or province site, "
            f"{COUNTY!r} is a county"
        ),
        "sites[7].tier": "only one ministry site is allowed, 'ministry-2' is a second",
        "sites[8].parent": "a site cannot be its own parent",
    }


def test_province_under_a_province_and_ministry_with_a_parent() -> None:
    raw = small_inventory()
    site(raw, "sichuan")["parent"] = "guangdong"
    site(raw, "ministry")["parent"] = "guangdong"
    got = reasons(problems_of(raw))
    assert got["sites[2].parent"] == (
        "the parent of a province site must be a ministry site, 'guangdong' is a province"
    )
    assert got["sites[0].parent"] == "the ministry site has no parent"


def test_capacities_must_be_positive() -> None:
    raw = small_inventory()
    raw["satellite_pools"][0]["capacity_kbps"] = 0
    site(raw, COUNTY)["links"][1]["capacity_kbps"] = -8000
    got = reasons(problems_of(raw))
    assert got == {
        "satellite_pools[0].capacity_kbps": "Input should be greater than 0",
        "sites[4].links[1].capacity_kbps": "Input should be greater than 0",
    }


def test_addresses_must_be_ip_addresses() -> None:
    raw = small_inventory()
    site(raw, COUNTY)["devices"][2]["mgmt_address"] = "10.10.255.300"
    site(raw, COUNTY)["links"][0]["probe_address"] = "far-end.example"
    got = reasons(problems_of(raw))
    assert got == {
        "sites[4].devices[2].mgmt_address": (
            "Value error, '10.10.255.300' is not an IPv4 or IPv6 address"
        ),
        "sites[4].links[0].probe_address": (
            "Value error, 'far-end.example' is not an IPv4 or IPv6 address"
        ),
    }


def test_ip_addresses_are_normalised() -> None:
    raw = small_inventory()
    site(raw, COUNTY)["devices"][0]["mgmt_address"] = " 2001:DB8:0::1 "
    doc = validate_or_raise(raw)
    assert doc.sites[4].devices[0].mgmt_address == "2001:db8::1"


def test_unknown_fields_are_typos_wherever_they_are() -> None:
    raw = small_inventory()
    raw["satelite_pools"] = []
    raw["credential_profiles"][2]["pasword"] = {"env": "X"}
    site(raw, "sichuan")["provice_code"] = "51"
    site(raw, COUNTY)["devices"][0]["vendr"] = "cisco"
    site(raw, COUNTY)["links"][0]["capacity"] = 8000
    got = reasons(problems_of(raw))
    extra = "Extra inputs are not permitted"
    assert got == {
        "satelite_pools": (
            "unknown top-level key; expected one of "
            "['credential_profiles', 'satellite_pools', 'sites', 'version']"
        ),
        "credential_profiles[2].pasword": extra,
        "sites[2].provice_code": extra,
        "sites[4].devices[0].vendr": extra,
        "sites[4].links[0].capacity": extra,
    }


def test_satellite_links_need_pool_and_terminal_terrestrial_links_have_neither() -> None:
    raw = small_inventory()
    links = site(raw, COUNTY)["links"]
    del links[2]["terminal"], links[2]["satellite_pool"]
    links[0]["terminal"] = f"{COUNTY}-sat1"
    links[1]["satellite_pool"] = POOL
    got = reasons(problems_of(raw))
    assert got == {
        "sites[4].links[2].satellite_pool": "a satellite link must name its satellite pool",
        "sites[4].links[2].terminal": "a satellite link must name the site's satellite terminal",
        "sites[4].links[0].terminal": "only satellite links have terminal, this is primary",
        "sites[4].links[1].satellite_pool": (
            "only satellite links have satellite_pool, this is backup"
        ),
    }


def test_satellite_link_references_must_resolve() -> None:
    raw = small_inventory()
    links = site(raw, COUNTY)["links"]
    links[2]["satellite_pool"] = "vsat-hub-b"
    links[2]["terminal"] = "sichuan-luding-sat1"  # a terminal, but at another site
    got = reasons(problems_of(raw))
    assert got == {
        "sites[4].links[2].satellite_pool": "unknown satellite pool 'vsat-hub-b'",
        "sites[4].links[2].terminal": (
            f"'sichuan-luding-sat1' is not a satellite terminal at {COUNTY!r}"
        ),
    }


def test_at_most_one_link_per_role_at_a_site() -> None:
    raw = small_inventory()
    site(raw, COUNTY)["links"][1]["role"] = "primary"
    got = reasons(problems_of(raw))
    assert got == {"sites[4].links": "2 primary links; a site has at most one link per role"}


@pytest.mark.parametrize(
    ("field", "secret"),
    [
        ("auth_key", "Tr0ub4dor&3-auth"),
        ("priv_key", {"plain": "Tr0ub4dor&3-priv"}),
        ("auth_key", "env:Tr0ub4dor&3"),  # looks like a reference, is not a variable name
        ("priv_key", {"env": "Tr0ub4dor&3"}),
        ("priv_key", {"file": "Tr0ub4dor&3"}),  # not an absolute path
    ],
)
def test_a_literal_secret_is_refused_without_being_echoed(field: str, secret: Any) -> None:
    raw = small_inventory()
    raw["credential_profiles"][0][field] = secret
    with pytest.raises(InventoryInvalid) as caught:
        validate_or_raise(raw)
    (problem,) = caught.value.problems
    assert problem.path == f"credential_profiles[0].{field}"
    assert "reference" in problem.reason
    for text in (problem.reason, str(caught.value), repr(caught.value.problems)):
        assert "Tr0ub4dor" not in text


def test_a_literal_community_in_a_v2c_profile_is_refused() -> None:
    raw = small_inventory()
    raw["credential_profiles"][1]["community"] = "public-secret-community"
    (problem,) = problems_of(raw)
    assert problem.path == "credential_profiles[1].community"
    assert "public-secret-community" not in str(problem)


def test_snmp_v3_profiles_must_be_auth_priv() -> None:
    raw = small_inventory()
    del raw["credential_profiles"][0]["priv_protocol"], raw["credential_profiles"][0]["priv_key"]
    got = reasons(problems_of(raw))
    # The devices that use the broken profile are not reported as pointing at an unknown one.
    assert got == {
        "credential_profiles[0]": (
            "Value error, an SNMP v3 profile must be authPriv: missing priv_protocol, priv_key"
        )
    }


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        (
            {"name": "p", "kind": "snmp", "snmp_version": "v2c"},
            "an SNMP v2c profile needs community: {env: VAR}",
        ),
        (
            {
                "name": "p",
                "kind": "snmp",
                "snmp_version": "v2c",
                "community": {"env": "C"},
                "user": "u",
            },
            "a v2c profile cannot have v3 fields: user",
        ),
        ({"name": "p", "kind": "snmp"}, "an snmp profile needs snmp_version (v3 or v2c)"),
        (
            {"name": "p", "kind": "ssh", "username": "u", "community": {"env": "C"}},
            "an ssh profile cannot have community",
        ),
        ({"name": "p", "kind": "ssh", "username": "u"}, "an ssh profile needs password or"),
    ],
)
def test_credential_profile_fields_fit_their_kind(profile: dict[str, Any], reason: str) -> None:
    raw = small_inventory()
    raw["credential_profiles"].append(profile)
    (problem,) = problems_of(raw)
    assert problem.path == "credential_profiles[3]"
    assert reason in problem.reason


def test_malformed_yaml_names_line_and_column() -> None:
    text = "sites:\n  - name: a\n    tier: [county\n"
    with pytest.raises(InventoryInvalid) as caught:
        parse_yaml(text, "inv.yaml")
    (problem,) = caught.value.problems
    assert problem.file == "inv.yaml"
    assert problem.path == "line 4, column 1"
    assert problem.reason.startswith("not valid YAML: ")
    assert str(caught.value).count("inv.yaml: line 4, column 1: not valid YAML") == 1


@pytest.mark.parametrize(
    ("raw", "got"), [([1, 2], "list"), ("sites", "str"), (42, "int")], ids=["list", "str", "int"]
)
def test_a_document_must_be_a_mapping(raw: Any, got: str) -> None:
    (problem,) = problems_of(raw)
    assert problem.path == "(document)"
    assert problem.reason == f"must be a mapping with a sites: list, got {got}"


def test_an_empty_document_is_an_empty_inventory() -> None:
    doc, problems = validate_raw(None)
    assert problems == []
    assert doc is not None
    assert doc.sites == []


def test_lists_must_be_lists_and_sites_mappings() -> None:
    got = reasons(problems_of({"satellite_pools": {"a": 1}, "sites": ["just-a-name"]}))
    assert got == {
        "satellite_pools": "must be a list, got dict",
        "sites[0]": "must be a mapping with at least name and tier",
    }


def test_unsupported_version() -> None:
    raw = small_inventory()
    raw["version"] = 2
    assert reasons(problems_of(raw)) == {
        "version": "unsupported inventory version 2; this Tiandi reads version 1"
    }


def test_five_different_errors_in_one_file_give_exactly_five_problems(tmp_path: Path) -> None:
    """Each error is reported once, and none drags in follow-up errors from what it broke."""
    raw = small_inventory()
    raw["satellite_pools"][0]["capacity_kbps"] = 0  # pool used by three links
    raw["credential_profiles"][0]["auth_key"] = "s3cr3t-auth-key"  # profile used by 12 devices
    raw["sites"][0]["tier"] = "ministy"  # parent of both provinces
    site(raw, "sichuan-luding")["devices"][0]["mgmt_address"] = "10.20.255.256"  # its links' router
    site(raw, "guangdong-shaoguan")["parent"] = "guangdonq"
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")

    with pytest.raises(InventoryInvalid) as caught:
        read_document(path)

    problems = caught.value.problems
    assert {p.file for p in problems} == {str(path)}
    assert reasons(problems) == {
        "satellite_pools[0].capacity_kbps": "Input should be greater than 0",
        "credential_profiles[0].auth_key": (
            "Value error, a secret must be a reference, {env: VAR_NAME} or {file: /abs/path}; "
            "never write the secret value itself into the inventory"
        ),
        "sites[0].tier": "Input should be 'ministry', 'province', 'prefecture' or 'county'",
        "sites[6].devices[0].mgmt_address": (
            "Value error, '10.20.255.256' is not an IPv4 or IPv6 address"
        ),
        "sites[3].parent": "unknown site 'guangdonq'",
    }
    message = str(caught.value)
    assert message.startswith("inventory has 5 problem(s)")
    assert "s3cr3t" not in message


def test_a_reference_to_a_broken_object_is_still_checked_when_the_name_is_wrong() -> None:
    """Suppressing follow-up errors must not hide a reference to a name that is nowhere."""
    raw = small_inventory()
    raw["credential_profiles"][0]["auth_key"] = "literal"
    site(raw, COUNTY)["devices"][0]["snmp_profile"] = "nowhere"
    site(raw, COUNTY)["devices"][2]["snmp_profile"] = SNMP_V2C
    got = reasons(problems_of(raw))
    assert set(got) == {"credential_profiles[0].auth_key", "sites[4].devices[0].snmp_profile"}
    assert got["sites[4].devices[0].snmp_profile"] == "unknown credential profile 'nowhere'"
