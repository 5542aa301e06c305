"""The lab's control API, in-process over ASGI (the runner test drives it over a socket).

Each test runs in one event loop with the app, as in the lab process, so timelines started by a
request run while the test awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from lab.build import build_network
from lab.control import LabControl, check_loopback, create_app
from lab.faults import FaultBook
from lab.state import LabNetwork
from tests.lab.test_build import small_doc

Scenario = Callable[[LabNetwork, httpx.AsyncClient], Awaitable[None]]


def with_lab(scenario: Scenario) -> None:
    async def main() -> None:
        net = build_network(small_doc(), time.monotonic, seed=3)
        control = LabControl(FaultBook(net))
        transport = httpx.ASGITransport(app=create_app(control))
        async with httpx.AsyncClient(transport=transport, base_url="http://lab") as client:
            await scenario(net, client)
        await control.stop()

    asyncio.run(main())


def test_health_devices_and_links() -> None:
    async def scenario(net: LabNetwork, client: httpx.AsyncClient) -> None:
        health = (await client.get("/health")).json()
        assert health["devices"] == len(net.devices) and health["links"] == len(net.links)
        routers = (await client.get("/devices", params={"kind": "router"})).json()
        assert {d["name"] for d in routers} == {
            d.name for d in net.devices.values() if d.kind.value == "router"
        }
        r1 = (await client.get("/devices/gd-a-r1")).json()
        assert r1["mgmt_address"] == "127.200.0.20" and r1["snmp_port"] == 161
        assert [i["name"] for i in r1["interfaces"]][-1] == "Loopback0"
        assert r1["active_route_link"] == "gd-a-primary"
        assert r1["static_routes"] == [
            {"prefix": "0.0.0.0", "mask": "0.0.0.0", "next_hop": "127.201.0.20", "distance": 1}
        ]
        sat = (await client.get("/devices/gd-a-sat1")).json()
        assert sat["demod_locked"] is True and sat["modcod"] > 0
        assert (await client.get("/devices/nope")).status_code == 404
        links = (await client.get("/links", params={"site": "gd-a"})).json()
        by_name = {lk["name"]: lk for lk in links}
        assert set(by_name) == {"gd-a-primary", "gd-a-backup", "gd-a-satellite"}
        assert by_name["gd-a-primary"]["carrying"] and not by_name["gd-a-backup"]["carrying"]
        assert by_name["gd-a-satellite"]["latency_ms"] >= 550

    with_lab(scenario)


def test_faults_start_list_and_clear() -> None:
    async def scenario(net: LabNetwork, client: httpx.AsyncClient) -> None:
        resp = await client.post("/faults/cut_link", json={"link": "gd-a-primary"})
        assert resp.status_code == 201
        fault = resp.json()["fault"]
        assert fault["kind"] == "cut_link" and net.links["gd-a-primary"].cut
        listed = (await client.get("/faults")).json()
        assert [f["id"] for f in listed] == [fault["id"]]
        links = {lk["name"]: lk for lk in (await client.get("/links")).json()}
        link = links["gd-a-primary"]
        assert link["cut"] and not link["usable"] and link["in_rate_bps"] == 0

        cleared = await client.delete(f"/faults/{fault['id']}")
        assert cleared.status_code == 200 and cleared.json()["cleared"] == [fault["id"]]
        assert not net.links["gd-a-primary"].cut
        assert (await client.delete(f"/faults/{fault['id']}")).status_code == 404

        await client.post("/faults/device_down", json={"device": "hn-a-ep1"})
        await client.post("/faults/flap", json={"link": "gd-b-backup", "down": 5, "up": 5})
        assert (await client.delete("/faults")).json()["cleared"] == [2, 3]
        assert (await client.get("/faults")).json() == []

    with_lab(scenario)


def test_bad_fault_requests() -> None:
    async def scenario(net: LabNetwork, client: httpx.AsyncClient) -> None:
        assert (await client.post("/faults/melt", json={})).status_code == 404
        unknown = await client.post("/faults/cut_link", json={"link": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        invalid = await client.post(
            "/faults/link_quality", json={"link": "gd-a-primary", "loss_pct": 150}
        )
        assert invalid.status_code == 422 and "loss_pct" in invalid.json()["detail"]
        no_body = await client.post("/faults/cut_link")
        assert no_body.status_code == 422  # link is required

    with_lab(scenario)


def test_timeline_is_checked_then_run() -> None:
    async def scenario(net: LabNetwork, client: httpx.AsyncClient) -> None:
        bad = await client.post("/timeline", content="- {at: 1s, fault: cut_link, link: nope}")
        assert bad.status_code == 422
        assert bad.json()["detail"]["problems"] == ["timeline[0]: no link named 'nope' in the lab"]
        ok = await client.post(
            "/timeline",
            content="- {at: 0.05s, fault: backbone_outage, province: hunan}",
            headers={"content-type": "application/yaml"},
        )
        assert ok.status_code == 202 and ok.json()["entries"] == 1
        assert not net.links["hn-a-primary"].cut  # not yet: 50 ms from now
        await asyncio.sleep(0.2)
        assert net.links["hn-a-primary"].cut
        runs = (await client.get("/timeline")).json()
        assert runs[0]["id"] == ok.json()["id"] and runs[0]["finished"]
        json_body = await client.post(
            "/timeline", json=[{"at": 0, "fault": "clear", "province": "hunan"}]
        )
        assert json_body.status_code == 202
        await asyncio.sleep(0.05)
        assert not net.links["hn-a-primary"].cut

    with_lab(scenario)


def test_control_binds_to_loopback_only() -> None:
    check_loopback("127.0.0.1")
    check_loopback("::1")
    with pytest.raises(ValueError, match="loopback only"):
        check_loopback("0.0.0.0")
