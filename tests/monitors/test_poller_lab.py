"""The poll engine against the lab: every kind of device, rates against the traffic model, a
reboot without a spike, dead and wrongly keyed devices that delay nobody."""

from __future__ import annotations

import asyncio
import time

import pytest

from inventory.document import InventoryDoc
from inventory.enums import DeviceKind, LinkRole
from inventory.secrets import SecretRef
from lab.state import Call
from lab.traffic import reroute_site
from monitors.latest import LatestStore
from monitors.poller import Poller
from monitors.profiles import load_profiles
from monitors.snmp.base import FailureCause
from monitors.snmp.pysnmp_transport import PysnmpTransport
from monitors.targets import TargetBuilder, interface_key
from tests.monitors.poller_support import MemorySink, port_offset, running_lab, small_doc


def make_poller(
    doc: InventoryDoc, offset: int, *, timeout_s: float = 2.0, retries: int = 1
) -> tuple[Poller, MemorySink, LatestStore, PysnmpTransport]:
    sink, latest, transport = MemorySink(), LatestStore(), PysnmpTransport()
    poller = Poller(transport, load_profiles(), sink=sink, latest=latest)
    poller.set_targets(
        TargetBuilder(timeout_s=timeout_s, retries=retries, port_offset=offset).from_document(doc)
    )
    return poller, sink, latest, transport


def test_a_round_reads_every_kind_of_device(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = small_doc(monkeypatch, counties=2)
    offset = port_offset()

    async def scenario() -> None:
        async with running_lab(doc, offset) as lab:
            net = lab.net
            codec = next(d for d in net.devices.values() if d.kind is DeviceKind.VIDEO_ENDPOINT)
            mcu = next(d for d in net.devices.values() if d.kind is DeviceKind.MCU)
            codec.calls.append(
                Call(7, f"weekly@{mcu.name}", 2048, net.now() - 30, 1900, 2000, 0.25, 4.0)
            )
            mcu.conferences["weekly"] = [codec.name, "somewhere-ep1"]
            reroute_site(net, codec.site)
            poller, sink, latest, transport = make_poller(doc, offset)
            try:
                results = await poller.poll_once()
            finally:
                await transport.close()

            assert all(r.ok for r in results), [r for r in results if not r.ok]
            assert len(results) == len(net.devices)
            by_device = {r.device: r for r in results}
            assert by_device[codec.name].profile == "cisco_codec"

            # Routers: one point per interface; the links riding on them are tagged.
            county = doc.sites[-1]
            router = next(d.name for d in county.devices if d.kind is DeviceKind.ROUTER)
            rows = sink.of("interface", device=router)
            assert len(rows) == len(net.devices[router].interfaces)
            tagged = {p.tags["link"]: p for p in rows if "link" in p.tags}
            assert set(tagged) == {lk.name for lk in county.links}
            primary = tagged[f"{county.name}-primary"]
            assert primary.tags["role"] == "primary" and primary.tags["ifname"] == "Gi0/0/0"
            assert primary.tags["province"] == doc.sites[1].name
            assert primary.fields["oper_status"] == 1
            assert primary.fields["speed_bps"] == county.links[0].capacity_kbps * 1000
            assert "in_bps" not in primary.fields  # first reading: no rate yet

            terminal = next(d for d in county.devices if d.kind is DeviceKind.SATELLITE_TERMINAL)
            (sat,) = sink.of("satellite", device=terminal.name)
            lab_terminal = net.devices[terminal.name]
            assert sat.tags["link"] == f"{county.name}-satellite"
            assert sat.fields["esno_db"] == lab_terminal.esno_db10 / 10
            assert sat.fields["demod_locked"] is True and isinstance(sat.fields["modcod"], str)

            (call,) = sink.of("video_call", device=codec.name)
            assert call.tags["remote"] == f"weekly@{mcu.name}"
            assert call.fields == {
                "in_call": True,
                "rate_kbps": 2048,
                "tx_kbps": 1900.0,
                "rx_kbps": 2000.0,
                "loss_pct": 0.25,
                "jitter_ms": 4.0,
                "duration_s": pytest.approx(30, abs=2),
            }
            (conf,) = sink.of("mcu_conference", device=mcu.name)
            assert conf.tags["conference"] == "weekly" and conf.fields["participants"] == 2
            (mcu_point,) = sink.of("mcu", device=mcu.name)
            assert mcu_point.fields["ports_in_use"] == 2

            devices = sink.of("device")
            assert {p.tags["device"] for p in devices} == set(net.devices)
            assert all(p.fields["reachable"] is True and p.fields["uptime_s"] > 0 for p in devices)

            # The latest state: O(1) per device, per link, and a site snapshot.
            snap = latest.device(router)
            assert snap is not None and snap.status.reachable and snap.status.error is None
            assert snap.values["device.uptime_s"] > 0
            link = latest.link(f"{county.name}-backup")
            assert (
                link is not None
                and link.oper_up is True
                and link.interface == "GigabitEthernet0/0/1"
            )
            site = latest.site(county.name)
            assert site is not None
            assert {d.device for d in site.devices} == {d.name for d in county.devices}
            assert {lk.link for lk in site.links} == {lk.name for lk in county.links}
            assert latest.counts() == {"ok": len(net.devices), "failing": 0, "never": 0}

    asyncio.run(scenario())


def test_rates_from_two_polls_match_the_traffic_model(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = small_doc(monkeypatch, counties=2)
    offset = port_offset()

    async def scenario() -> None:
        async with running_lab(doc, offset) as lab:
            poller, sink, latest, transport = make_poller(doc, offset)
            routers = [d.name for d in lab.net.devices.values() if d.kind is DeviceKind.ROUTER]
            # One router at a time: the lab answers on this same event loop, and a burst of
            # polls would time each reading with the queueing of the others.
            try:
                for name in routers:
                    await poller.poll_once([name])
                # Long enough that the gap between the agent's read and the poller's timestamp
                # (queueing on a loaded 2-core CI machine) stays a few percent of the interval.
                await asyncio.sleep(6.0)
                sink.points.clear()
                results = [r for name in routers for r in await poller.poll_once([name])]
            finally:
                await transport.close()
            assert all(r.ok for r in results)
            checked = 0
            for point in sink.of("interface"):
                dev = lab.net.devices[point.tags["device"]]
                key = interface_key(point.tags["ifname"])
                iface = next(i for i in dev.interfaces if interface_key(i.name) == key)
                assert "in_bps" in point.fields and "out_bps" in point.fields, point
                for field, model in (
                    ("in_bps", iface.in_rate_bps),
                    ("out_bps", iface.out_rate_bps),
                ):
                    value = point.fields[field]
                    assert isinstance(value, float)
                    assert value == pytest.approx(model, rel=0.05, abs=100), (point.tags, field)
                checked += 1
            assert checked >= 3 * len(routers)
            busy = max(i.out_rate_bps for d in lab.net.devices.values() for i in d.interfaces)
            assert busy > 1e6  # the comparison covered a loaded link, not only keepalives
            # The interface the API and link health read agrees with the points.
            state = latest.interface(routers[0], "Gi0/0/0") or latest.interface(
                routers[0], "Te0/0/0"
            )
            assert state is not None and state.out_bps is not None

    asyncio.run(scenario())


def test_a_reboot_between_polls_gives_no_rate_and_no_spike(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = small_doc(monkeypatch, counties=1)
    offset = port_offset()
    county = doc.sites[-1]
    router = next(d.name for d in county.devices if d.kind is DeviceKind.ROUTER)

    async def scenario() -> None:
        async with running_lab(doc, offset) as lab:
            poller, sink, _latest, transport = make_poller(doc, offset)
            try:
                await poller.poll_once([router])
                await asyncio.sleep(1.0)
                lab.book.apply("reboot", {"device": router})
                await asyncio.sleep(0.3)  # counters grow again from 0 after the boot
                sink.points.clear()
                (after_reboot,) = await poller.poll_once([router])
                rebooted = sink.of("interface", device=router)
                await asyncio.sleep(1.0)
                sink.points.clear()
                (later,) = await poller.poll_once([router])
                recovered = sink.of("interface", device=router)
            finally:
                await transport.close()
            assert after_reboot.ok and later.ok
            assert rebooted and all("in_bps" not in p.fields for p in rebooted)
            assert all(p.fields["in_octets"] < 10**9 for p in rebooted)  # counters restarted
            (uptime,) = [p.fields["uptime_s"] for p in sink.of("device", device=router)]
            assert isinstance(uptime, float) and uptime < 10
            rates = [p.fields["out_bps"] for p in recovered if "out_bps" in p.fields]
            assert len(rates) == len(recovered)
            capacity = max(lk.capacity_kbps for lk in county.links) * 1000
            assert all(isinstance(r, float) and 0 <= r <= capacity for r in rates)

    asyncio.run(scenario())


def test_dead_and_wrongly_keyed_devices_delay_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = small_doc(monkeypatch, counties=6)
    offset = port_offset()
    names = [d.name for s in doc.sites for d in s.devices]
    assert len(names) >= 27
    dead, wrong = names[1:6], names[6:8]
    # The poller's inventory: two devices on a profile whose keys the devices do not know.
    mine = doc.model_copy(deep=True)
    base = next(p for p in mine.credential_profiles if p.name == "snmp-v3-noc")
    mine.credential_profiles.append(
        base.model_copy(
            update={"name": "snmp-v3-old", "auth_key": SecretRef("env", "TIANDI_SNMP_OLD_AUTH")}
        )
    )
    monkeypatch.setenv("TIANDI_SNMP_OLD_AUTH", "an-old-auth-key")
    for site in mine.sites:
        for dev in site.devices:
            if dev.name in wrong:
                dev.snmp_profile = "snmp-v3-old"

    async def scenario() -> None:
        async with running_lab(doc, offset) as lab:
            for name in dead:
                lab.book.apply("device_down", {"device": name})
            poller, sink, latest, transport = make_poller(mine, offset, timeout_s=1.0, retries=0)
            started = time.monotonic()
            try:
                results = await poller.poll_once()
            finally:
                await transport.close()
            took = time.monotonic() - started
            by = {r.device: r for r in results}
            healthy = [n for n in names if n not in dead and n not in wrong]
            assert len(healthy) >= 20
            assert all(by[n].ok for n in healthy)
            for n in dead:
                failure = by[n].failure
                assert failure is not None and failure.cause is FailureCause.TIMEOUT
                snap = latest.device(n)
                assert snap is not None and snap.status.reachable is False
                assert snap.status.consecutive_failures == 1
                assert sink.of("device", device=n)[0].fields == {"reachable": False}
            for n in wrong:
                failure = by[n].failure
                assert failure is not None and failure.cause is FailureCause.AUTH_FAILED
                assert failure.detail.startswith(
                    "authentication failed: check the v3 auth key of profile 'snmp-v3-old'"
                ), failure.detail
                assert "an-old-auth-key" not in failure.detail
                assert not sink.of("interface", device=n) and not sink.of("satellite", device=n)
            # Five dead devices of 1 s each, polled side by side: one timeout, not five.
            assert took < 2.5, took
            assert poller.stats.failures == {"timeout": 5, "auth_failed": 2}

    asyncio.run(scenario())


def test_link_roles_cover_every_link_of_a_county(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each county link is found on its router's interface, whatever the name's form."""
    doc = small_doc(monkeypatch, counties=1)
    targets = TargetBuilder().from_document(doc)
    county = doc.sites[-1]
    router = next(t for t in targets if t.site == county.name and t.kind is DeviceKind.ROUTER)
    assert {r.role for r in router.links} == set(LinkRole)
    for short, role in (("Gi0/0/0", "primary"), ("gi0/0/1", "backup"), ("Gi 0/1/0", "satellite")):
        ref = router.link_for_interface(short)
        assert ref is not None and ref.role.value == role
