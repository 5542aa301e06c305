"""Inventory CRUD through the API: listings, filters, pagination, and every cross-object rule."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.schemas import SiteIn
from controllers.audit import AuditRecord
from inventory.document import SiteDoc
from tests.harness.samples import POOL, SNMP_V2C, SNMP_V3, SSH

QUJIANG = "guangdong-shaoguan-qujiang"
ROUTER = f"{QUJIANG}-r1"
TERMINAL = f"{QUJIANG}-sat1"


def names(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [item["name"] for item in r.json()["items"]]


def problems(r: Any) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {p["path"]: p["reason"] for p in r.json()["problems"]}


def device(name: str, site: str, kind: str = "video_endpoint", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "vendor": "cisco",
        "platform": "cisco_codec",
        "mgmt_address": "10.99.0.1",
        "site": site,
        **extra,
    }


def link(name: str, site: str, role: str, router: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "role": role,
        "router": router,
        "interface": "Gi0/0/9",
        "capacity_kbps": 4000,
        "probe_address": "10.99.1.1",
        "site": site,
        **extra,
    }


# ---- listings ----------------------------------------------------------------------------------


def test_sites_filtered_by_province_code_name_and_tier(
    client: TestClient, viewer: dict[str, str], seeded: object
) -> None:
    guangdong = [
        "guangdong",
        "guangdong-shaoguan",
        "guangdong-shaoguan-qujiang",
        "guangdong-shaoguan-renhua",
    ]
    assert names(client.get("/sites", params={"province": "44"}, headers=viewer)) == guangdong
    assert names(client.get("/sites", params={"province": "440000"}, headers=viewer)) == guangdong
    assert (
        names(client.get("/sites", params={"province": "guangdong"}, headers=viewer)) == guangdong
    )
    assert names(client.get("/sites", params={"province": "51"}, headers=viewer)) == [
        "sichuan",
        "sichuan-luding",
    ]
    assert names(client.get("/sites", params={"province": "nowhere"}, headers=viewer)) == []
    # a province name must be a province site, not any site
    assert names(client.get("/sites", params={"province": QUJIANG}, headers=viewer)) == []
    counties = client.get("/sites", params={"tier": "county", "province": "44"}, headers=viewer)
    assert names(counties) == guangdong[2:]
    r = client.get("/sites/guangdong-shaoguan", headers=viewer)
    assert r.json() == {
        "name": "guangdong-shaoguan",
        "display_name": "韶关市",
        "tier": "prefecture",
        "parent": "guangdong",
        "province_code": "4402",
        "latitude": None,
        "longitude": None,
        "maintenance": [],
    }


def test_devices_and_links_filtered_by_province_site_kind_role(
    client: TestClient, viewer: dict[str, str], seeded: object
) -> None:
    routers = client.get("/devices", params={"kind": "router", "province": "51"}, headers=viewer)
    assert names(routers) == ["sichuan-luding-r1"]
    at_site = client.get("/devices", params={"site": QUJIANG}, headers=viewer)
    assert names(at_site) == [f"{QUJIANG}-ep1", ROUTER, TERMINAL]
    primaries = client.get("/links", params={"province": "44", "role": "primary"}, headers=viewer)
    assert names(primaries) == [
        "guangdong-primary",
        "guangdong-shaoguan-qujiang-primary",
        "guangdong-shaoguan-renhua-primary",
    ]
    sat = client.get(f"/links/{QUJIANG}-sat", headers=viewer).json()
    assert sat["site"] == QUJIANG
    assert sat["router"] == ROUTER
    assert sat["terminal"] == TERMINAL
    assert sat["satellite_pool"] == POOL
    dev = client.get(f"/devices/{ROUTER}", headers=viewer).json()
    assert (dev["site"], dev["snmp_profile"], dev["ssh_profile"]) == (QUJIANG, SNMP_V3, SSH)
    assert names(client.get("/credential-profiles", params={"kind": "ssh"}, headers=viewer)) == [
        SSH
    ]
    assert names(client.get("/satellite-pools", headers=viewer)) == [POOL]
    assert client.get("/devices", params={"kind": "toaster"}, headers=viewer).status_code == 422


def test_pagination(client: TestClient, viewer: dict[str, str], seeded: object) -> None:
    everything = names(client.get("/devices", params={"limit": 1000}, headers=viewer))
    assert everything == sorted(everything)
    assert len(everything) == 12
    pages = []
    for offset in range(0, 12, 5):
        r = client.get("/devices", params={"limit": 5, "offset": offset}, headers=viewer)
        body = r.json()
        assert (body["total"], body["limit"], body["offset"]) == (12, 5, offset)
        pages += names(r)
    assert pages == everything
    assert client.get("/devices", headers=viewer).json()["limit"] == 100
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        r = client.get("/devices", params=bad, headers=viewer)
        assert r.status_code == 422, bad
        assert r.json()["problems"][0]["path"].startswith("query.")


def test_credential_profiles_show_references_only(
    client: TestClient, viewer: dict[str, str], admin: dict[str, str], seeded: object
) -> None:
    v3 = client.get(f"/credential-profiles/{SNMP_V3}", headers=viewer).json()
    assert v3["auth_key"] == {"env": "TIANDI_SNMP_AUTH_KEY"}
    assert v3["priv_key"] == {"env": "TIANDI_SNMP_PRIV_KEY"}
    v2 = client.get(f"/credential-profiles/{SNMP_V2C}", headers=viewer).json()
    assert v2["community"] == {"file": "/etc/tiandi/snmp-community"}
    plain = {"name": "leaky", "kind": "snmp", "snmp_version": "v2c", "community": "public"}
    r = client.post("/credential-profiles", json=plain, headers=admin)
    assert "never write the secret value" in problems(r)["body.community"]


# ---- sites -------------------------------------------------------------------------------------


def test_site_bodies_have_the_fields_of_a_yaml_site() -> None:
    assert list(SiteIn.model_fields) == [
        f for f in SiteDoc.model_fields if f not in ("devices", "links")
    ]


def test_maintenance_windows_round_trip(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    site = client.get(f"/sites/{QUJIANG}", headers=admin).json()
    assert site["maintenance"] == []
    window = {
        "start": "2026-12-01T01:00:00+08:00",
        "end": "2026-12-01T05:00:00+08:00",
        "reason": "carrier fibre work",
    }
    r = client.put(f"/sites/{QUJIANG}", json={**site, "maintenance": [window]}, headers=admin)
    assert r.status_code == 200, r.text
    assert client.get(f"/sites/{QUJIANG}", headers=admin).json()["maintenance"] == [window]
    backwards = {**window, "end": "2026-12-01T00:00:00+08:00"}
    r = client.put(f"/sites/{QUJIANG}", json={**site, "maintenance": [backwards]}, headers=admin)
    assert "must end after it starts" in problems(r)["body.maintenance[0]"]


def test_site_create_replace_rename_delete(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    county = {"name": "sichuan-kangding", "tier": "county", "parent": "sichuan"}
    r = client.post("/sites", json=county, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["parent"] == "sichuan"
    assert client.post("/sites", json=county, headers=admin).status_code == 409
    r = client.put(
        "/sites/sichuan-kangding",
        json={**county, "display_name": "康定市", "latitude": 30.05, "longitude": 101.96},
        headers=admin,
    )
    assert r.status_code == 200
    assert client.get("/sites/sichuan-kangding", headers=admin).json()["display_name"] == "康定市"
    # renaming a province: its children follow
    r = client.put(
        "/sites/sichuan",
        json={"name": "sc", "tier": "province", "parent": "ministry", "province_code": "51"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert client.get("/sites/sichuan", headers=admin).status_code == 404
    assert client.get("/sites/sichuan-kangding", headers=admin).json()["parent"] == "sc"
    assert client.get("/sites/sichuan-luding", headers=admin).json()["parent"] == "sc"
    assert client.delete("/sites/sichuan-kangding", headers=admin).status_code == 204
    assert client.get("/sites/sichuan-kangding", headers=admin).status_code == 404
    assert client.delete("/sites/sichuan-kangding", headers=admin).status_code == 404
    assert client.put("/sites/nowhere", json=county, headers=admin).status_code == 404


def test_site_rules(client: TestClient, admin: dict[str, str], seeded: object) -> None:
    def post(**site: Any) -> Any:
        return client.post("/sites", json=site, headers=admin)

    assert problems(post(name="x", tier="county", parent="nowhere")) == {
        "body.parent": "unknown site 'nowhere'"
    }
    assert problems(post(name="x", tier="county", parent="ministry")) == {
        "body.parent": "the parent of a county site must be a prefecture or province site, "
        "'ministry' is a ministry"
    }
    assert problems(post(name="x", tier="province")) == {
        "body.parent": "a province site needs a ministry parent"
    }
    assert "only one ministry" in problems(post(name="x", tier="ministry"))["body.tier"]
    # field rules come from the document model too
    assert "body.province_code" in problems(post(name="x", tier="county", province_code="x"))
    assert "body.name" in problems(post(name="Not A Name", tier="county"))
    r = client.post("/sites", json={"name": "x", "tier": "county", "devices": []}, headers=admin)
    assert problems(r)["body.devices"] == "Extra inputs are not permitted"
    # a change that breaks the site's children is a conflict naming them
    r = client.put("/sites/guangdong", json={"name": "guangdong", "tier": "county"}, headers=admin)
    assert r.status_code in (409, 422)
    r = client.put(
        "/sites/guangdong-shaoguan",
        json={"name": "guangdong-shaoguan", "tier": "county", "parent": "guangdong"},
        headers=admin,
    )
    assert r.status_code == 409
    assert "site 'guangdong-shaoguan-qujiang', parent: the parent of a county site" in r.text


def test_a_site_with_children_devices_or_links_cannot_be_deleted(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    r = client.delete("/sites/guangdong-shaoguan", headers=admin)
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "site 'guangdong-shaoguan' is still referred to by child sites "
        "'guangdong-shaoguan-qujiang', 'guangdong-shaoguan-renhua'; delete or change those first"
    )
    r = client.delete(f"/sites/{QUJIANG}", headers=admin)
    assert r.status_code == 409
    assert f"devices '{QUJIANG}-ep1', '{ROUTER}', '{TERMINAL}'" in r.json()["detail"]
    assert f"links '{QUJIANG}-backup'" in r.json()["detail"]


# ---- devices -----------------------------------------------------------------------------------


def test_device_create_move_rename_delete(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    ep = device("sichuan-luding-ep2", "sichuan-luding", snmp_profile=SNMP_V2C)
    r = client.post("/devices", json=ep, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["snmp_port"] == 161
    assert client.post("/devices", json=ep, headers=admin).status_code == 409
    moved = {**ep, "site": QUJIANG, "mgmt_address": "10.10.255.9"}
    r = client.put("/devices/sichuan-luding-ep2", json=moved, headers=admin)
    assert r.status_code == 200, r.text
    after = client.get("/devices/sichuan-luding-ep2", headers=admin).json()
    assert (after["site"], after["mgmt_address"]) == (QUJIANG, "10.10.255.9")
    # renaming a router: the links that ride on it follow
    router = client.get(f"/devices/{ROUTER}", headers=admin).json()
    r = client.put(f"/devices/{ROUTER}", json={**router, "name": "qj-r1"}, headers=admin)
    assert r.status_code == 200, r.text
    assert client.get(f"/links/{QUJIANG}-primary", headers=admin).json()["router"] == "qj-r1"
    assert client.delete("/devices/sichuan-luding-ep2", headers=admin).status_code == 204
    assert client.get("/devices/sichuan-luding-ep2", headers=admin).status_code == 404


def test_device_rules(client: TestClient, admin: dict[str, str], seeded: object) -> None:
    def post(body: dict[str, Any]) -> Any:
        return client.post("/devices", json=body, headers=admin)

    assert problems(post(device("x1", "nowhere"))) == {"body.site": "unknown site 'nowhere'"}
    assert problems(post(device("x1", QUJIANG, snmp_profile="nope"))) == {
        "body.snmp_profile": "unknown credential profile 'nope'"
    }
    assert problems(post(device("x1", QUJIANG, snmp_profile=SSH, ssh_profile=SNMP_V3))) == {
        "body.snmp_profile": f"profile '{SSH}' is a ssh profile, not snmp",
        "body.ssh_profile": f"profile '{SNMP_V3}' is a snmp profile, not ssh",
    }
    assert "body.mgmt_address" in problems(post(device("x1", QUJIANG, mgmt_address="10.1")))
    assert post(device(ROUTER, "guangdong")).status_code == 409


def test_a_change_that_breaks_a_link_is_a_conflict_naming_it(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    router = client.get(f"/devices/{ROUTER}", headers=admin).json()
    r = client.put(f"/devices/{ROUTER}", json={**router, "kind": "mcu"}, headers=admin)
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert f"link '{QUJIANG}-primary' at site '{QUJIANG}', router: '{ROUTER}' is a mcu" in detail
    r = client.put(f"/devices/{ROUTER}", json={**router, "site": "sichuan-luding"}, headers=admin)
    assert r.status_code == 409
    assert f"router '{ROUTER}' is at site 'sichuan-luding', not '{QUJIANG}'" in r.json()["detail"]
    # nothing changed
    assert client.get(f"/devices/{ROUTER}", headers=admin).json() == router


def test_a_device_used_by_a_link_cannot_be_deleted(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    r = client.delete(f"/devices/{TERMINAL}", headers=admin)
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"device '{TERMINAL}' is still referred to by links '{QUJIANG}-sat'; "
        "delete or change those first"
    )


# ---- links -------------------------------------------------------------------------------------


def test_link_create_replace_delete(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    body = link("sichuan-luding-primary-2", "sichuan", "primary", "guangdong-r1")
    # sichuan has no router: move one there first
    r = client.post(
        "/devices",
        json=device("sichuan-r1", "sichuan", "router", platform="cisco_ios"),
        headers=admin,
    )
    assert r.status_code == 201, r.text
    body["router"] = "sichuan-r1"
    r = client.post("/links", json=body, headers=admin)
    assert r.status_code == 201, r.text
    r = client.put(
        "/links/sichuan-luding-primary-2", json={**body, "capacity_kbps": 16_000}, headers=admin
    )
    assert r.status_code == 200
    assert client.get("/links/sichuan-luding-primary-2", headers=admin).json()["capacity_kbps"] == (
        16_000
    )
    assert client.delete("/links/sichuan-luding-primary-2", headers=admin).status_code == 204
    assert client.delete("/links/sichuan-luding-primary-2", headers=admin).status_code == 404


def test_link_rules(client: TestClient, admin: dict[str, str], seeded: object) -> None:
    def post(body: dict[str, Any]) -> Any:
        return client.post("/links", json=body, headers=admin)

    assert problems(post(link("x", "guangdong", "satellite", ROUTER))) == {
        "body.router": f"router '{ROUTER}' is at site '{QUJIANG}', not 'guangdong'",
        "body.satellite_pool": "a satellite link must name its satellite pool",
        "body.terminal": "a satellite link must name the site's satellite terminal",
    }
    assert problems(post(link("x", QUJIANG, "primary", TERMINAL))) == {
        "body.router": f"'{TERMINAL}' is a satellite_terminal, not a router",
    }
    assert problems(post(link("x", QUJIANG, "primary", "nope"))) == {
        "body.router": "unknown device 'nope'"
    }
    wrong_terminal = link(
        "x", "guangdong", "satellite", "guangdong-r1", terminal=TERMINAL, satellite_pool="nope"
    )
    assert problems(post(wrong_terminal)) == {
        "body.terminal": f"'{TERMINAL}' is not a satellite terminal at 'guangdong'",
        "body.satellite_pool": "unknown satellite pool 'nope'",
    }
    assert problems(post(link("x", "guangdong", "satellite", "guangdong-r1", terminal=None))) != {}
    assert problems(post(link("x", "ministry", "backup", "ministry-r1", satellite_pool=POOL))) == {
        "body.satellite_pool": "only satellite links have satellite_pool, this is backup"
    }
    # one link per role per site: a conflict with the link already there
    r = post(link("x", "guangdong", "backup", "guangdong-r1"))
    assert r.status_code == 409
    assert "site 'guangdong', links: 2 backup links; a site has at most one link per role" in r.text
    # the satellite link done right
    ok = link(
        "guangdong-sat",
        "guangdong",
        "satellite",
        "guangdong-r1",
        terminal="guangdong-sat1",
        satellite_pool=POOL,
    )
    r = client.post(
        "/devices",
        json=device("guangdong-sat1", "guangdong", "satellite_terminal", platform="comtech_cdm"),
        headers=admin,
    )
    assert r.status_code == 201
    assert post(ok).status_code == 201


# ---- profiles and pools ------------------------------------------------------------------------


def test_profiles_rename_follow_and_delete_rules(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    profile = client.get(f"/credential-profiles/{SSH}", headers=admin).json()
    r = client.put(
        f"/credential-profiles/{SSH}", json={**profile, "name": "ssh-noc"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert client.get(f"/devices/{ROUTER}", headers=admin).json()["ssh_profile"] == "ssh-noc"
    r = client.delete("/credential-profiles/ssh-noc", headers=admin)
    assert r.status_code == 409
    assert r.json()["detail"].startswith("credential profile 'ssh-noc' is still referred to by")
    snmp = {
        "name": "ssh-noc",
        "kind": "snmp",
        "snmp_version": "v2c",
        "community": {"env": "COMMUNITY"},
    }
    r = client.put("/credential-profiles/ssh-noc", json=snmp, headers=admin)
    assert r.status_code == 409
    assert "is a snmp profile, not ssh" in r.json()["detail"]
    new = {"name": "ssh-lab", "kind": "ssh", "username": "lab", "private_key": {"file": "/k"}}
    assert client.post("/credential-profiles", json=new, headers=admin).status_code == 201
    assert client.delete("/credential-profiles/ssh-lab", headers=admin).status_code == 204


def test_pools_rename_follow_and_delete_rules(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    r = client.put(
        f"/satellite-pools/{POOL}", json={"name": "hub-a", "capacity_kbps": 310_000}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert client.get(f"/links/{QUJIANG}-sat", headers=admin).json()["satellite_pool"] == "hub-a"
    r = client.delete("/satellite-pools/hub-a", headers=admin)
    assert r.status_code == 409
    assert f"'{QUJIANG}-sat'" in r.json()["detail"]
    assert problems(
        client.post("/satellite-pools", json={"name": "hub-b", "capacity_kbps": 0}, headers=admin)
    )
    r = client.post("/satellite-pools", json={"name": "hub-b", "capacity_kbps": 1}, headers=admin)
    assert r.status_code == 201
    r = client.post("/satellite-pools", json={"name": "hub-b", "capacity_kbps": 1}, headers=admin)
    assert r.status_code == 409
    assert client.delete("/satellite-pools/hub-b", headers=admin).status_code == 204


def test_a_refused_write_changes_nothing_and_appends_nothing(
    client: TestClient,
    admin: dict[str, str],
    seeded: object,
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        before = session.scalar(select(func.count()).select_from(AuditRecord))
    export = client.get("/inventory/export", headers=admin).json()
    client.post("/links", json=link("x", "guangdong", "backup", "guangdong-r1"), headers=admin)
    client.delete(f"/devices/{ROUTER}", headers=admin)
    client.post("/sites", json={"name": "x", "tier": "province"}, headers=admin)
    assert client.get("/inventory/export", headers=admin).json() == export
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(AuditRecord)) == before


# ---- whole documents ---------------------------------------------------------------------------


def test_export_and_import(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any]
) -> None:
    exported = client.get("/inventory/export", headers=admin)
    assert exported.status_code == 200
    doc = exported.json()
    assert [s["name"] for s in doc["sites"]] == [s["name"] for s in seeded["sites"]]
    assert doc["credential_profiles"][0]["auth_key"] == {"env": "TIANDI_SNMP_AUTH_KEY"}

    changed = copy.deepcopy(doc)
    changed["satellite_pools"][0]["capacity_kbps"] = 1
    changed["sites"] = [s for s in changed["sites"] if s["name"] != "sichuan-luding"]
    dry = client.post(
        "/inventory/import", params={"dry_run": True, "prune": True}, json=changed, headers=admin
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["updated"] == {"satellite_pools": 1}
    assert dry.json()["deleted"] == {"links": 3, "devices": 3, "sites": 1}
    assert client.get("/inventory/export", headers=admin).json() == doc

    merged = client.post("/inventory/import", json=changed, headers=admin)
    assert merged.json() == {
        "dry_run": False,
        "prune": False,
        "changed": True,
        "created": {},
        "updated": {"satellite_pools": 1},
        "deleted": {},
    }
    assert client.get("/sites/sichuan-luding", headers=admin).status_code == 200
    pruned = client.post("/inventory/import", params={"prune": True}, json=changed, headers=admin)
    assert pruned.json()["deleted"] == {"links": 3, "devices": 3, "sites": 1}
    assert client.get("/sites/sichuan-luding", headers=admin).status_code == 404
    again = client.post("/inventory/import", params={"prune": True}, json=changed, headers=admin)
    assert again.json()["changed"] is False
    audit = client.get("/audit", params={"target_type": "inventory"}, headers=admin).json()
    assert [r["action"] for r in audit["items"]] == ["inventory.import", "inventory.import"]


def test_an_invalid_import_lists_every_problem_and_changes_nothing(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any]
) -> None:
    doc = client.get("/inventory/export", headers=admin).json()
    bad = copy.deepcopy(doc)
    bad["sites"][0]["links"][0]["router"] = "nope"
    bad["sites"][1]["parent"] = "nowhere"
    r = client.post("/inventory/import", json=bad, headers=admin)
    assert problems(r) == {
        "body.sites[0].links[0].router": "unknown device 'nope'",
        "body.sites[1].parent": "unknown site 'nowhere'",
    }
    assert client.get("/inventory/export", headers=admin).json() == doc
