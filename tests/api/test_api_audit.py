"""Every write through the API lands in the audit trail; GET /audit reads it (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import Users

POOL = {"name": "hub-b", "capacity_kbps": 45_000, "description": "hub B"}


def test_every_write_appends_who_what_target_before_after(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    start = client.get("/audit", headers=admin).json()["total"]
    client.post("/satellite-pools", json=POOL, headers=admin)
    client.put("/satellite-pools/hub-b", json={**POOL, "capacity_kbps": 90_000}, headers=admin)
    client.put("/satellite-pools/hub-b", json={**POOL, "capacity_kbps": 90_000}, headers=admin)
    client.delete("/satellite-pools/hub-b", headers=admin)
    page = client.get("/audit", params={"target_type": "satellite_pool"}, headers=admin).json()
    assert page["total"] == 3, "an unchanged PUT appends nothing"
    assert client.get("/audit", headers=admin).json()["total"] == start + 3
    delete, update, create = page["items"]  # newest first
    assert [r["action"] for r in (create, update, delete)] == [
        "satellite_pool.create",
        "satellite_pool.update",
        "satellite_pool.delete",
    ]
    assert all(r["actor"] == "admin1" and r["target"] == "hub-b" for r in page["items"])
    assert create["before"] is None and create["after"] == POOL
    assert update["before"]["capacity_kbps"] == 45_000
    assert update["after"]["capacity_kbps"] == 90_000
    assert delete["before"]["capacity_kbps"] == 90_000 and delete["after"] is None
    assert update["prev_hash"] == create["hash"] and delete["prev_hash"] == update["hash"]
    at = datetime.fromisoformat(create["at"])
    assert at.tzinfo is not None
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)


def test_renames_are_recorded_under_the_new_name(
    client: TestClient, admin: dict[str, str], seeded: object
) -> None:
    site = client.get("/sites/sichuan", headers=admin).json()
    client.put("/sites/sichuan", json={**site, "name": "sc"}, headers=admin)
    (record,) = client.get("/audit", params={"target": "sc"}, headers=admin).json()["items"]
    assert record["action"] == "site.update"
    assert (record["before"]["name"], record["after"]["name"]) == ("sichuan", "sc")


def test_filters_and_pages(
    client: TestClient, admin: dict[str, str], users: Users, seeded: object
) -> None:
    users.add("li.na")
    later = datetime.now(UTC) + timedelta(seconds=1)
    for n in range(3):
        client.post("/satellite-pools", json={"name": f"p{n}", "capacity_kbps": 1}, headers=admin)
    by_admin = client.get("/audit", params={"actor": "admin1"}, headers=admin).json()
    assert by_admin["total"] == 3
    by_test = client.get("/audit", params={"actor": "test"}, headers=admin).json()
    assert {r["target"] for r in by_test["items"]} == {"admin1", "li.na"}
    page = client.get("/audit", params={"limit": 2, "offset": 1}, headers=admin).json()
    assert page["total"] == 5 and len(page["items"]) == 2
    ids = [r["id"] for r in page["items"]]
    assert ids == sorted(ids, reverse=True)
    future = client.get("/audit", params={"since": later.isoformat()}, headers=admin).json()
    assert future["total"] == 0
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert client.get("/audit", params={"since": past}, headers=admin).json()["total"] == 5
    naive = client.get("/audit", params={"since": "2026-01-01T00:00:00"}, headers=admin)
    assert naive.status_code == 422
    assert naive.json()["problems"][0]["path"] == "query.since"


def test_verify_endpoint(client: TestClient, admin: dict[str, str], seeded: object) -> None:
    client.post("/satellite-pools", json=POOL, headers=admin)
    body: dict[str, Any] = client.get("/audit/verify", headers=admin).json()
    assert body["ok"] is True
    assert body["checked"] == 2  # admin1 created, then the pool
    assert body["first_broken_id"] is None
    assert len(body["head_hash"]) == 64


def test_the_audit_trail_is_for_admins(
    client: TestClient, operator: dict[str, str], viewer: dict[str, str]
) -> None:
    for headers in (operator, viewer):
        assert client.get("/audit", headers=headers).status_code == 403
        assert client.get("/audit/verify", headers=headers).status_code == 403
