"""apply_document / load_document against real databases: SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from inventory.document import InventoryDoc
from inventory.enums import LinkRole
from inventory.model import Base, CredentialProfile, Device, Link, SatellitePool, Site
from inventory.store import ApplySummary, apply_document, load_document
from inventory.validation import validate_or_raise
from inventory.yamlio import dump_document
from tests.harness.samples import SNMP_V2C, SNMP_V3, county, site, small_inventory

Factory = sessionmaker[Session]
Snapshot = dict[str, list[tuple[Any, ...]]]
MODELS: dict[str, type[Base]] = {
    "satellite_pools": SatellitePool,
    "credential_profiles": CredentialProfile,
    "sites": Site,
    "devices": Device,
    "links": Link,
}


def apply(factory: Factory, raw: dict[str, Any] | InventoryDoc, prune: bool = True) -> ApplySummary:
    doc = raw if isinstance(raw, InventoryDoc) else validate_or_raise(raw)
    with factory.begin() as session:
        return apply_document(session, doc, prune=prune)


def load(factory: Factory) -> InventoryDoc:
    with factory() as session:
        return load_document(session)


def snapshot(factory: Factory) -> Snapshot:
    """Every row of every inventory table, in id order: what "unchanged" is compared on."""
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    with engine.connect() as conn:
        return {
            table.name: [tuple(row) for row in conn.execute(select(table).order_by(table.c.id))]
            for table in Base.metadata.sorted_tables
            if table.name in MODELS
        }


def ids(factory: Factory) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    with factory() as session:
        for kind, model in MODELS.items():
            for row in session.scalars(select(model)):
                out[kind, row.name] = row.id  # type: ignore[attr-defined]
    return out


def test_apply_then_load_round_trips_exactly(session_factory: Factory) -> None:
    raw = small_inventory()
    summary = apply(session_factory, raw)
    assert summary.as_dict() == {
        "created": {
            "satellite_pools": 1,
            "credential_profiles": 3,
            "sites": 7,
            "devices": 12,
            "links": 12,
        },
        "updated": {},  # a new site given its parent is created, not also updated
        "deleted": {},
    }
    loaded = load(session_factory)
    assert dump_document(loaded) == dump_document(validate_or_raise(raw))
    assert loaded == validate_or_raise(raw)


def test_reapplying_the_same_document_changes_nothing(session_factory: Factory) -> None:
    apply(session_factory, small_inventory())
    before = snapshot(session_factory)
    summary = apply(session_factory, small_inventory())
    assert not summary.changed, summary.as_dict()
    assert snapshot(session_factory) == before


def test_a_changed_document_updates_in_place_and_keeps_ids(session_factory: Factory) -> None:
    apply(session_factory, small_inventory())
    old_ids = ids(session_factory)

    raw = small_inventory()
    raw["satellite_pools"][0]["capacity_kbps"] = 310_000
    raw["credential_profiles"][0]["auth_key"] = {"env": "TIANDI_SNMP_AUTH_KEY_2027"}
    luding = site(raw, "sichuan-luding")
    luding["parent"] = "guangdong-shaoguan"  # parent and display name change: counted once
    luding["display_name"] = "泸定县 (直管)"
    site(raw, "guangdong-shaoguan-renhua")["parent"] = "guangdong"  # only the parent changes
    qujiang = site(raw, "guangdong-shaoguan-qujiang")
    qujiang["devices"][2]["snmp_profile"] = SNMP_V3
    qujiang["devices"][0]["mgmt_address"] = "10.10.254.1"
    qujiang["links"][1]["capacity_kbps"] = 6_000
    qujiang["links"][0]["carrier"] = None
    raw["sites"].append(county("sichuan-kangding", "sichuan", 21, "康定市"))

    summary = apply(session_factory, raw)
    assert summary.as_dict() == {
        "created": {"sites": 1, "devices": 3, "links": 3},
        "updated": {
            "satellite_pools": 1,
            "credential_profiles": 1,
            "sites": 2,
            "devices": 2,
            "links": 2,
        },
        "deleted": {},
    }
    new_ids = ids(session_factory)
    assert {k: v for k, v in new_ids.items() if k in old_ids} == old_ids
    assert len(new_ids) == len(old_ids) + 7
    assert dump_document(load(session_factory)) == dump_document(validate_or_raise(raw))


def test_a_device_and_its_link_can_move_to_another_site(session_factory: Factory) -> None:
    apply(session_factory, small_inventory())
    old_ids = ids(session_factory)
    raw = small_inventory()
    sichuan, luding = site(raw, "sichuan"), site(raw, "sichuan-luding")
    sichuan["devices"] = [luding["devices"].pop(0)]  # the router moves up to the province
    sichuan["links"] = [luding["links"].pop(0)]
    luding["links"] = []
    summary = apply(session_factory, raw)
    assert summary.updated == {"devices": 1, "links": 1}
    assert summary.deleted == {"links": 2}
    assert (
        ids(session_factory)["devices", "sichuan-luding-r1"]
        == old_ids["devices", "sichuan-luding-r1"]
    )
    with session_factory() as session:
        router = session.scalars(select(Device).where(Device.name == "sichuan-luding-r1")).one()
        assert router.site.name == "sichuan"


def test_prune_deletes_what_the_document_no_longer_has(session_factory: Factory) -> None:
    apply(session_factory, small_inventory())
    old_ids = ids(session_factory)

    raw = small_inventory()
    # A prefecture and both its counties (children must go before their parent).
    raw["sites"] = [s for s in raw["sites"] if not s["name"].startswith("guangdong-shaoguan")]
    guangdong = site(raw, "guangdong")
    del guangdong["links"][1]  # one link
    luding = site(raw, "sichuan-luding")
    del luding["devices"][2]  # one device (the endpoint, the only user of the v2c profile)
    del raw["credential_profiles"][1]  # and that profile
    assert not any(p["name"] == SNMP_V2C for p in raw["credential_profiles"])

    summary = apply(session_factory, raw)
    assert summary.as_dict() == {
        "created": {},
        "updated": {},
        "deleted": {"links": 7, "devices": 7, "sites": 3, "credential_profiles": 1},
    }
    assert dump_document(load(session_factory)) == dump_document(validate_or_raise(raw))
    new_ids = ids(session_factory)
    assert new_ids == {k: v for k, v in old_ids.items() if k in new_ids}
    assert ("sites", "guangdong-shaoguan") not in new_ids
    assert ("devices", "guangdong-shaoguan-qujiang-r1") not in new_ids


def test_prune_everything(session_factory: Factory) -> None:
    apply(session_factory, small_inventory())
    summary = apply(session_factory, {"sites": []})
    assert summary.deleted == {
        "links": 12,
        "devices": 12,
        "sites": 7,
        "credential_profiles": 3,
        "satellite_pools": 1,
    }
    assert snapshot(session_factory) == {name: [] for name in MODELS}


def test_without_prune_nothing_is_deleted(session_factory: Factory) -> None:
    apply(session_factory, small_inventory())
    raw = small_inventory()
    raw["sites"] = [s for s in raw["sites"] if not s["name"].startswith("guangdong-shaoguan")]
    site(raw, "guangdong")["links"][0]["capacity_kbps"] = 16_000

    summary = apply(session_factory, raw, prune=False)
    assert summary.as_dict() == {"created": {}, "updated": {"links": 1}, "deleted": {}}
    kept = load(session_factory)
    assert [s.name for s in kept.sites] == [s["name"] for s in small_inventory()["sites"]]
    assert kept.sites[1].links[0].capacity_kbps == 16_000


@pytest.mark.parametrize("failure", ["integrity-error", "exception-in-transaction"])
def test_a_failed_apply_leaves_the_database_exactly_as_before(
    session_factory: Factory, failure: str
) -> None:
    apply(session_factory, small_inventory())
    before = snapshot(session_factory)

    raw = small_inventory()
    raw["satellite_pools"][0]["capacity_kbps"] = 1  # updates, creations and deletions first...
    raw["sites"].append(county("sichuan-kangding", "sichuan", 21, "康定市"))
    raw["sites"] = [s for s in raw["sites"] if s["name"] != "guangdong-shaoguan-renhua"]
    doc = validate_or_raise(raw)
    if failure == "integrity-error":
        # ...then a second primary link at one site, which only the database refuses (the
        # document validator would have): the unique (site, role) constraint fires mid-apply.
        doc.sites[-1].links[1].role = LinkRole.PRIMARY
        with pytest.raises(IntegrityError), session_factory.begin() as session:
            apply_document(session, doc)
    else:
        with pytest.raises(RuntimeError, match="after apply"), session_factory.begin() as session:
            summary = apply_document(session, doc)
            assert summary.changed
            raise RuntimeError("after apply, before commit")

    assert snapshot(session_factory) == before
    assert dump_document(load(session_factory)) == dump_document(
        validate_or_raise(small_inventory())
    )


def test_secrets_are_stored_as_references_only(
    session_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "TIANDI_SNMP_AUTH_KEY": "auth-VALUE-4f1c",
        "TIANDI_SNMP_PRIV_KEY": "priv-VALUE-9b2e",
        "TIANDI_SSH_PASSWORD": "ssh-VALUE-77aa",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    apply(session_factory, small_inventory())

    rows = snapshot(session_factory)
    everything = repr(rows)
    for value in values.values():
        assert value not in everything
    engine = session_factory.kw["bind"]
    with engine.connect() as conn:
        table = CredentialProfile.__table__
        stored = {
            row.name: {k: v for k, v in row._mapping.items() if k.endswith("_ref") and v}
            for row in conn.execute(select(table).order_by(table.c.id))
        }
    assert stored == {
        "snmp-v3-ops": {
            "auth_key_ref": "env:TIANDI_SNMP_AUTH_KEY",
            "priv_key_ref": "env:TIANDI_SNMP_PRIV_KEY",
        },
        "snmp-v2c-legacy": {"community_ref": "file:/etc/tiandi/snmp-community"},
        "ssh-ops": {"ssh_password_ref": "env:TIANDI_SSH_PASSWORD"},
    }
    reference = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$")
    assert all(reference.match(v) for refs in stored.values() for v in refs.values())


def test_swapping_primary_and_backup_roles(session_factory: Factory) -> None:
    """Two links of one site trade roles (the carriers swap): a routine inventory change."""
    apply(session_factory, small_inventory())
    raw = small_inventory()
    links = site(raw, "guangdong")["links"]
    links[0]["role"], links[1]["role"] = "backup", "primary"
    links[0]["interface"], links[1]["interface"] = "Gi0/0/1", "Gi0/0/0"
    summary = apply(session_factory, raw)
    assert summary.updated == {"links": 2}
    loaded = load(session_factory)
    assert {lk.name: lk.role for lk in loaded.sites[1].links} == {
        "guangdong-primary": LinkRole.BACKUP,
        "guangdong-backup": LinkRole.PRIMARY,
    }
