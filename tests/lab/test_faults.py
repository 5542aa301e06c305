"""Faults on the lab network, on a fake clock: every face must see one coherent state."""

from __future__ import annotations

import asyncio
import time

import pytest

from lab.build import MODCOD_BY_NUMBER, build_network
from lab.faults import (
    FaultBook,
    FaultError,
    FaultNotActive,
    FaultTargetUnknown,
    parse_duration,
    sync_site,
)
from lab.state import Call, LabNetwork, StaticRoute
from lab.timeline import TimelineInvalid, parse_timeline_text, run_timeline
from lab.traffic import KEEPALIVE_BPS, link_usable
from tests.lab.test_build import FakeClock, build, small_doc


def book_for(seed: int = 0) -> tuple[LabNetwork, FakeClock, FaultBook]:
    net, clock = build(seed)
    return net, clock, FaultBook(net)


def test_cut_takes_the_interface_down_freezes_counters_and_silences_the_probe() -> None:
    net, clock, book = book_for()
    link = net.links["gd-a-primary"]
    primary = net.devices["gd-a-r1"].interfaces[0]
    assert primary.oper_up and link_usable(net, link)

    outcome = book.apply("cut_link", {"link": "gd-a-primary"})
    assert outcome.fault is not None and "gd-a-primary" in outcome.description
    assert [f.id for f in book.active_faults()] == [outcome.fault.id]
    assert not primary.oper_up and not primary.carrier_up and primary.admin_up
    assert link.cut and not link_usable(net, link)
    first = primary.octets(clock())
    clock.advance(10)
    assert primary.octets(clock()) == first  # read twice: frozen

    book.apply("restore_link", {"link": "gd-a-primary"})
    assert book.active_faults() == []
    assert primary.oper_up and link_usable(net, link)
    clock.advance(10)
    assert primary.octets(clock())[0] > first[0]


def test_the_lab_does_not_fail_over_by_itself() -> None:
    net, _, book = book_for()
    r1 = net.devices["gd-a-r1"]
    book.apply("cut_link", {"link": "gd-a-primary"})
    # Only one default route exists, and its next hop is gone: nothing carries the site.
    assert all(i.out_rate_bps in (0.0, KEEPALIVE_BPS) for i in r1.interfaces)


def test_a_route_change_moves_the_traffic_to_the_backup_interface() -> None:
    net, clock, _ = book_for()
    r1 = net.devices["gd-a-r1"]
    primary, backup = r1.interfaces[0], r1.interfaces[1]
    rate = net.sites["gd-a"].background_kbps * 1000.0
    assert primary.out_rate_bps == pytest.approx(rate)
    # What the SSH CLI does for "ip route 0.0.0.0 0.0.0.0 <backup next hop>" + "no ip route ...".
    r1.static_routes = [StaticRoute("0.0.0.0", "0.0.0.0", net.links["gd-a-backup"].probe_address)]
    sync_site(net, "gd-a")
    assert primary.out_rate_bps == KEEPALIVE_BPS
    assert backup.out_rate_bps == pytest.approx(min(rate, 4_000_000.0))
    before = backup.octets(clock())
    clock.advance(10)
    assert backup.octets(clock())[1] - before[1] == pytest.approx(
        backup.out_rate_bps / 8 * 10, abs=1
    )


def test_rain_fade_lowers_esno_drops_modcod_adds_loss_then_ends() -> None:
    net, clock, book = book_for()
    sat = net.devices["gd-a-sat1"]
    link = net.links["gd-a-satellite"]
    other = net.devices["hn-a-sat1"]
    nominal = (sat.esno_db10, sat.modcod, sat.rx_level_dbm10, link.capacity_kbps)
    other_before = (other.esno_db10, other.modcod)

    out = book.apply("rain_fade", {"province": "guangdong", "depth_db": 6, "duration": "2m"})
    assert "2 terminal" in out.description
    assert sat.esno_db10 == nominal[0] - 60
    assert sat.rx_level_dbm10 == nominal[2] - 60
    assert MODCOD_BY_NUMBER[sat.modcod].efficiency < MODCOD_BY_NUMBER[nominal[1]].efficiency
    assert sat.demod_locked and link_usable(net, link)
    loss, _, _ = link.effective()
    assert 0.05 <= loss <= 0.1
    assert link.capacity_kbps < nominal[3]
    assert (other.esno_db10, other.modcod) == other_before  # hunan stays dry
    assert net.devices["gd-b-sat1"].esno_db10 < 120

    clock.advance(119)
    book.advance()
    assert sat.esno_db10 == nominal[0] - 60
    clock.advance(1)
    assert book.next_due() == clock()
    events = book.advance()
    assert any("ended" in e for e in events)
    assert (sat.esno_db10, sat.modcod, sat.rx_level_dbm10, link.capacity_kbps) == nominal
    assert link.effective()[0] == 0.0
    assert book.active_faults() == []


def test_a_deep_fade_unlocks_the_demodulator_and_the_link_carries_nothing() -> None:
    net, _, book = book_for()
    book.apply("rain_fade", {"province": "hunan", "depth_db": 20, "duration": 60})
    sat = net.devices["hn-a-sat1"]
    assert not sat.demod_locked and sat.modcod == 0
    assert not link_usable(net, net.links["hn-a-satellite"])


def test_overlapping_fades_take_the_deepest() -> None:
    net, clock, book = book_for()
    sat = net.devices["gd-a-sat1"]
    nominal = sat.esno_db10
    book.apply("rain_fade", {"province": "guangdong", "depth_db": 3, "duration": 100})
    deep = book.apply("rain_fade", {"province": "guangdong", "depth_db": 8, "duration": 10})
    assert sat.esno_db10 == nominal - 80
    assert deep.fault is not None
    clock.advance(10)
    book.advance()
    assert sat.esno_db10 == nominal - 30


def test_reboot_resets_uptime_and_counters_and_restores_saved_routes() -> None:
    net, clock, book = book_for()
    r1 = net.devices["gd-a-r1"]
    assert r1.uptime_ticks(clock()) > 86_400 * 100
    r1.static_routes = [StaticRoute("0.0.0.0", "0.0.0.0", "127.201.0.99", 5)]  # unsaved change
    sync_site(net, "gd-a")
    clock.advance(5)
    out = book.apply("reboot", {"device": "gd-a-r1"})
    assert "rebooted" in out.description and book.active_faults() == []
    assert r1.uptime_ticks(clock()) == 0
    assert all(i.octets(clock()) == (0, 0) for i in r1.interfaces)
    assert [vars(r) for r in r1.static_routes] == [vars(r) for r in r1.saved_routes]
    clock.advance(2)
    assert r1.uptime_ticks(clock()) == 200
    rate = r1.interfaces[0].in_rate_bps
    assert rate > KEEPALIVE_BPS  # routed over the primary again
    assert r1.interfaces[0].octets(clock())[0] == int(rate / 8 * 2)


def test_a_slow_reboot_keeps_the_device_down_for_a_while() -> None:
    net, clock, book = book_for()
    r1 = net.devices["gd-a-r1"]
    out = book.apply("reboot", {"device": "gd-a-r1", "down_for": "90s"})
    assert out.fault is not None and not r1.powered
    assert all(i.out_rate_bps == 0 for i in r1.interfaces)
    clock.advance(90)
    book.advance()
    assert r1.powered and r1.uptime_ticks(clock()) == 0
    assert book.active_faults() == []


def test_device_down_and_up() -> None:
    net, clock, book = book_for()
    r1 = net.devices["gd-a-r1"]
    book.apply("device_down", {"device": "gd-a-r1"})
    assert not r1.powered
    assert all(i.out_rate_bps == 0 for i in r1.interfaces)
    assert not link_usable(net, net.links["gd-a-primary"])
    with pytest.raises(FaultError, match="powered off"):
        book.apply("reboot", {"device": "gd-a-r1"})
    clock.advance(30)
    out = book.apply("device_up", {"device": "gd-a-r1"})
    assert "ended #1" in out.description
    assert r1.powered and r1.uptime_ticks(clock()) == 0
    assert r1.interfaces[0].out_rate_bps > KEEPALIVE_BPS


def test_a_codec_call_adds_its_bitrate_to_the_carrying_link_and_codec_off_ends_it() -> None:
    net, clock, book = book_for()
    primary = net.devices["gd-a-r1"].interfaces[0]
    background = net.sites["gd-a"].background_kbps * 1000.0
    ep = net.devices["gd-a-ep1"]
    mcu = net.devices["guangdong-mcu1"]
    ep.calls.append(Call(1, "guangdong-mcu1", 2048, clock(), tx_kbps=2048, rx_kbps=1920))
    mcu.calls.append(Call(7, "gd-a-ep1", 2048, clock(), tx_kbps=1920, rx_kbps=2048))
    sync_site(net, "gd-a")
    assert primary.out_rate_bps == pytest.approx(min(background + 2_048_000, 8_000_000))
    assert primary.in_rate_bps == pytest.approx(min(background + 1_920_000, 8_000_000))

    book.apply("link_quality", {"link": "gd-a-primary", "loss_pct": 2.5, "jitter_ms": 12})
    assert ep.calls[0].loss_pct == pytest.approx(2.5) and ep.calls[0].jitter_ms == 12

    book.apply("codec_off", {"device": "gd-a-ep1"})
    assert ep.calls == [] and not ep.registered and not ep.powered
    assert mcu.calls == []  # the far end's leg ends too
    assert primary.out_rate_bps == pytest.approx(background)
    book.apply("codec_on", {"device": "gd-a-ep1"})
    assert ep.registered and ep.powered


def test_flapping_follows_its_schedule_until_restored() -> None:
    net, clock, book = book_for()
    link = net.links["gd-b-backup"]
    iface = net.devices["gd-b-r1"].interfaces[1]
    book.apply("flap", {"link": "gd-b-backup", "down": "5s", "up": "10s"})
    seen = []
    for _ in range(7):  # t = 0, 5, 10, 15, 20, 25, 30
        book.advance()
        seen.append((round(clock() - 1000.0), link.cut, iface.oper_up))
        due = book.next_due()
        assert due is not None
        clock.t = due
    assert seen == [
        (0, True, False),
        (5, False, True),
        (15, True, False),
        (20, False, True),
        (30, True, False),
        (35, False, True),
        (45, True, False),
    ]
    clock.t = 1000.0 + 46  # 1 s into the fourth down phase
    book.advance()
    assert link.cut
    book.apply("restore_link", {"link": "gd-b-backup"})
    assert not link.cut and iface.oper_up and book.next_due() is None


def test_backbone_outage_cuts_every_primary_of_the_province() -> None:
    net, _, book = book_for()
    out = book.apply("backbone_outage", {"province": "guangdong"})
    assert "3 primary link(s)" in out.description
    cut = {name for name, lk in net.links.items() if lk.cut}
    assert cut == {"guangdong-primary", "gd-a-primary", "gd-b-primary"}
    assert not net.links["gd-a-backup"].cut and not net.links["hn-a-primary"].cut
    # A cut of its own outlives the outage; restore says what still holds a link down.
    book.apply("cut_link", {"link": "gd-a-primary"})
    restored = book.apply("restore_link", {"link": "gd-b-primary"})
    assert "still cut by" in restored.description and net.links["gd-b-primary"].cut
    assert out.fault is not None
    book.clear(out.fault.id)
    assert net.links["gd-a-primary"].cut
    assert {name for name, lk in net.links.items() if lk.cut} == {"gd-a-primary"}


def test_quality_faults_override_in_order_and_clear() -> None:
    net, clock, book = book_for()
    link = net.links["gd-a-primary"]
    base = link.effective()
    book.apply("link_quality", {"link": link.name, "loss_pct": 5, "latency_ms": 200})
    book.apply("link_quality", {"link": link.name, "latency_ms": 300, "duration": 10})
    assert link.effective() == (0.05, 300, base[2])
    clock.advance(10)
    book.advance()
    assert link.effective() == (0.05, 200, base[2])
    book.apply("clear_quality", {"link": link.name})
    assert link.effective() == base


def test_a_fault_with_a_duration_ends_by_itself() -> None:
    net, clock, book = book_for()
    book.apply("cut_link", {"link": "hn-a-primary", "duration": "1m"})
    clock.advance(59.9)
    book.advance()
    assert net.links["hn-a-primary"].cut
    clock.advance(0.1)
    book.advance()
    assert not net.links["hn-a-primary"].cut


def test_bad_requests_are_clear_errors() -> None:
    _, _, book = book_for()
    with pytest.raises(FaultError, match="unknown fault kind 'melt'"):
        book.apply("melt", {})
    with pytest.raises(FaultTargetUnknown, match="no link named 'nope'"):
        book.apply("cut_link", {"link": "nope"})
    with pytest.raises(FaultTargetUnknown, match="no province named 'gd-a'"):
        book.apply("backbone_outage", {"province": "gd-a"})
    with pytest.raises(FaultError, match="not a video endpoint"):
        book.apply("codec_off", {"device": "gd-a-r1"})
    with pytest.raises(FaultError, match="depth_db"):
        book.apply("rain_fade", {"province": "hunan", "depth_db": -1, "duration": 5})
    with pytest.raises(FaultError, match="duration"):
        book.apply("rain_fade", {"province": "hunan", "depth_db": 3})
    with pytest.raises(FaultError, match="Extra inputs"):
        book.apply("cut_link", {"link": "gd-a-primary", "color": "red"})
    with pytest.raises(FaultNotActive):
        book.clear(42)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(10, 10.0), ("2.5", 2.5), ("10s", 10.0), ("500ms", 0.5), ("2m", 120.0), ("1h30m", 5400.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "10 parsecs", "-5", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


TIMELINE = """
- at: 30s
  fault: restore_link
  link: gd-a-primary
- at: 0
  fault: cut_link
  link: gd-a-primary
- at: 1m
  fault: rain_fade
  province: guangdong
  depth_db: 4
  duration: 5m
"""


def test_a_timeline_is_checked_whole_and_sorted() -> None:
    _, _, book = book_for()
    entries = parse_timeline_text(TIMELINE, book)
    assert [(e.at, e.kind) for e in entries] == [
        (0.0, "cut_link"),
        (30.0, "restore_link"),
        (60.0, "rain_fade"),
    ]
    bad = """
- at: 10s
  fault: cut_link
  link: nope
- fault: flap
  link: gd-a-primary
  down: 5s
- at: soon
  fault: explode
"""
    with pytest.raises(TimelineInvalid) as err:
        parse_timeline_text(bad, book)
    text = str(err.value)
    assert "timeline[0]: no link named 'nope'" in text
    assert "timeline[1].at: missing" in text
    assert "timeline[1]: flap: up: Field required" in text
    assert "timeline[2].at:" in text and "timeline[2].fault: 'explode'" in text
    assert len(err.value.problems) == 5


def test_a_timeline_runs_relative_to_its_start() -> None:
    net = build_network(small_doc(), time.monotonic, seed=0)
    book = FaultBook(net)
    entries = parse_timeline_text(
        """
- {at: 0.05s, fault: cut_link, link: gd-a-primary}
- {at: 0.15s, fault: restore_link, link: gd-a-primary}
""",
        book,
    )
    seen: list[bool] = []
    start = time.monotonic()
    done = asyncio.run(
        run_timeline(entries, book, on_change=lambda: seen.append(net.links["gd-a-primary"].cut))
    )
    assert time.monotonic() - start >= 0.15
    assert seen == [True, False]
    assert len(done) == 2 and "cut link gd-a-primary" in done[0]
