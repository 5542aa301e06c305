"""The codec (xAPI-like), MCU and satellite-terminal CLIs, line by line, and what they change."""

from __future__ import annotations

from typing import Any

import pytest

from inventory.enums import LinkRole
from lab.ssh import CliMemory, session_for
from lab.ssh.cli import CliContext, CliSession, cli_platform
from lab.ssh.mcu import McuSession
from lab.ssh.modem import ModemSession
from lab.ssh.xapi import CodecSession
from lab.state import LabNetwork
from lab.traffic import KEEPALIVE_BPS


def cli(net: LabNetwork, name: str, memory: CliMemory | None = None) -> CliSession:
    return session_for(net, net.devices[name], CliContext(memory or CliMemory(), "pw"))


def out(session: CliSession, line: str) -> str:
    return session.handle(line).output


def primary_out_bps(net: LabNetwork, router: str) -> float:
    return net.devices[router].interfaces[0].out_rate_bps


def test_registry_picks_the_cli_by_platform_then_kind(tiny_net: LabNetwork) -> None:
    assert isinstance(cli(tiny_net, "c-a"), CodecSession)
    assert isinstance(cli(tiny_net, "mcu-hub"), McuSession)
    assert isinstance(cli(tiny_net, "t-a"), ModemSession)
    terminal = tiny_net.devices["t-a"]
    terminal.platform = "idirect_remote"
    assert isinstance(cli(tiny_net, "t-a"), ModemSession)
    terminal.platform = "hughes_hx"  # unknown platform: the kind's CLI
    assert cli_platform(terminal) == "comtech_cdm"


# ---- codec ------------------------------------------------------------------------------------


def test_codec_banner_has_no_prompt(tiny_net: LabNetwork) -> None:
    reply = cli(tiny_net, "c-a").start()
    assert reply.prompt == ""
    assert reply.output.startswith("Welcome to c-a\nCisco Codec Release ce9.15.3.22")
    assert "*r Login successful\n\nOK\n" in reply.output


def test_dial_status_and_disconnect(tiny_net: LabNetwork, clock: Any) -> None:
    codec = cli(tiny_net, "c-a")
    assert out(codec, "xStatus Call") == "** end\n"
    assert out(codec, 'xCommand Dial Number: "conference-room@example.org" CallRate: 1920') == (
        "OK\n*r DialResult (status=OK):\n    CallId: 1\n    ConferenceId: 1\n** end\n"
    )
    assert primary_out_bps(tiny_net, "r-a") == 1_000_000 + 1_920_000
    clock.advance(42)
    status = out(codec, "xstatus call")
    assert "*s Call 1 Status: Connected\n" in status
    assert '*s Call 1 RemoteNumber: "conference-room@example.org"\n' in status
    assert "*s Call 1 CallRate: 1920\n" in status
    assert "*s Call 1 Duration: 42\n" in status
    assert "*s Call 1 Direction: Outgoing\n" in status
    assert status.endswith("** end\n")
    assert out(codec, "xStatus Call 1 Status") == "*s Call 1 Status: Connected\n** end\n"
    assert out(codec, "xCommand Call Disconnect CallId: 1") == (
        "OK\n*r DisconnectCallResult (status=OK):\n** end\n"
    )
    assert primary_out_bps(tiny_net, "r-a") == 1_000_000
    assert out(codec, "xCommand Call Disconnect CallId: 1") == (
        "*r DisconnectCallResult (status=Error):\n    Reason: No active call(s) found.\n** end\n"
    )
    assert "CallId: 2" in out(codec, "xCommand Dial Number: 12345")  # ids are not reused


def test_codec_to_codec_call_loads_both_sites(tiny_net: LabNetwork) -> None:
    memory = CliMemory()
    caller, callee = cli(tiny_net, "c-a", memory), cli(tiny_net, "c-b", memory)
    assert "(status=OK)" in out(caller, "xCommand Dial Number: c-b@lab.tiandi CallRate: 768")
    assert primary_out_bps(tiny_net, "r-b") == 500_000 + 768_000
    status = out(callee, "xStatus Call")
    assert "*s Call 1 Direction: Incoming\n" in status
    assert '*s Call 1 RemoteNumber: "c-a@lab.tiandi"\n' in status
    out(callee, "xCommand Call DisconnectAll")
    assert tiny_net.devices["c-a"].calls == []
    assert primary_out_bps(tiny_net, "r-a") == 1_000_000


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("xCommand Dial", "*r DialResult (status=Error):\n    Reason: Missing or invalid "
         "parameter(s): Number\n** end\n"),
        ("xCommand Dial Number: 1 CallRate: 9000", "*r DialResult (status=Error):\n    Reason: "
         "CallRate 9000 out of range (64..6000)\n** end\n"),
        ("xCommand Frobnicate", "*r Result (status=Error):\n    Reason: Unknown command\n"
         "** end\n"),
        ("show version", "*r Result (status=Error):\n    Reason: Command not recognized.\n"
         "** end\n"),
        ("xStatus Bogus", "*r Status (status=Error):\n    Reason: No match on address "
         "expression.\n    XPath: Status/Bogus\n** end\n"),
    ],
)  # fmt: skip
def test_codec_errors_in_xapi_style(tiny_net: LabNetwork, line: str, expected: str) -> None:
    assert out(cli(tiny_net, "c-a"), line) == expected


def test_dial_fails_when_the_site_is_cut_off(tiny_net: LabNetwork) -> None:
    tiny_net.devices["r-a"].static_routes.clear()
    assert out(cli(tiny_net, "c-a"), "xCommand Dial Number: 1") == (
        "*r DialResult (status=Error):\n    Reason: endpoint c-a: network unreachable\n** end\n"
    )
    tiny_net.devices["c-a"].registered = False
    assert "is not registered" in out(cli(tiny_net, "c-a"), "xCommand Dial Number: 1")


def test_default_call_rate_and_sip_registration(tiny_net: LabNetwork) -> None:
    codec = cli(tiny_net, "c-a")
    assert out(codec, "xConfiguration Conference DefaultCall Rate") == (
        "*c xConfiguration Conference DefaultCall Rate: 2048\n** end\n"
    )
    assert out(codec, "xConfiguration Conference DefaultCall Rate: 1472") == "** end\n"
    assert tiny_net.devices["c-a"].default_call_rate_kbps == 1472
    assert "Invalid value: 7000" in out(codec, "xConfiguration Conference DefaultCall Rate: 7000")
    out(codec, "xCommand Dial Number: 5551234")
    assert tiny_net.devices["c-a"].calls[0].rate_kbps == 1472
    assert out(codec, "xStatus SIP Registration") == (
        '*s SIP Registration 1 Reason: ""\n'
        "*s SIP Registration 1 Status: Registered\n"
        '*s SIP Registration 1 URI: "c-a@lab.tiandi"\n'
        "** end\n"
    )


def test_echo_off_and_bye(tiny_net: LabNetwork) -> None:
    codec = cli(tiny_net, "c-a")
    assert codec.handle("echo off").echo is False
    assert codec.handle("xStatus SIP").echo is False
    assert codec.handle("bye").close


# ---- MCU --------------------------------------------------------------------------------------


def test_mcu_conference_dials_participants_out(tiny_net: LabNetwork) -> None:
    memory = CliMemory()
    mcu = cli(tiny_net, "mcu-hub", memory)
    assert mcu.start().prompt == "mcu-hub>"
    assert out(mcu, "conference create plenary") == 'Conference "plenary" created\n'
    assert out(mcu, "participant add plenary c-a") == (
        'Participant "c-a" added to conference "plenary"\n'
    )
    assert out(mcu, "participant add plenary 127.77.2.3") == (
        'Participant "c-b" added to conference "plenary"\n'
    )
    assert primary_out_bps(tiny_net, "r-b") == 500_000 + 2_048_000
    assert out(mcu, "participant list plenary") == (
        "Conference: plenary\n"
        "Participant                      State         Rate\n"
        "c-a                              connected     2048\n"
        "c-b                              connected     2048\n"
        "Total: 2\n"
    )
    assert (
        out(mcu, "show ports")
        == "Video ports: total 12, in use 2, free 10\nActive conferences: 1\n"
    )
    status = out(cli(tiny_net, "c-a", memory), "xStatus Call")
    assert '*s Call 1 RemoteNumber: "plenary@mcu-hub"\n' in status
    assert "*s Call 1 DeviceType: MCU\n" in status
    assert out(mcu, "conference end plenary") == 'Conference "plenary" ended\n'
    assert tiny_net.devices["c-a"].calls == [] and tiny_net.devices["c-b"].calls == []
    assert primary_out_bps(tiny_net, "r-b") == 500_000


def test_codec_dials_into_an_mcu_conference(tiny_net: LabNetwork) -> None:
    memory = CliMemory()
    mcu, codec = cli(tiny_net, "mcu-hub", memory), cli(tiny_net, "c-b", memory)
    out(mcu, "conference create training")
    assert "No conference nope" in out(codec, "xCommand Dial Number: nope@mcu-hub")
    assert "(status=OK)" in out(codec, 'xCommand Dial Number: "training@mcu-hub"')
    assert tiny_net.devices["mcu-hub"].conferences == {"training": ["c-b"]}
    out(codec, "xCommand Call Disconnect CallId: 1")
    assert tiny_net.devices["mcu-hub"].conferences == {"training": []}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("frobnicate", 'Error: unknown command "frobnicate" (type "help")\n'),
        ("conference", 'Error: incomplete or invalid arguments for "conference"\n'),
        ("conference end nope", 'Error: no conference "nope"\n'),
        ("participant add nope c-a", 'Error: no conference "nope"\n'),
    ],
)
def test_mcu_errors(tiny_net: LabNetwork, line: str, expected: str) -> None:
    assert out(cli(tiny_net, "mcu-hub"), line) == expected


def test_mcu_ports_and_unknown_endpoints(tiny_net: LabNetwork) -> None:
    mcu = cli(tiny_net, "mcu-hub")
    tiny_net.devices["mcu-hub"].ports_total = 1
    out(mcu, "conference create c1")
    assert out(mcu, "participant add c1 r-a") == 'Error: unknown endpoint "r-a"\n'
    out(mcu, "participant add c1 c-a")
    assert out(mcu, "participant add c1 c-b") == "Error: no free video ports\n"
    tiny_net.devices["c-a"].calls.clear()
    assert "c-a                              disconnected  -" in out(mcu, "participant list c1")
    assert out(mcu, "participant remove c1 c-a") == (
        'Participant "c-a" removed from conference "c1"\n'
    )


# ---- satellite terminal -----------------------------------------------------------------------


def test_modem_status(tiny_net: LabNetwork) -> None:
    modem = cli(tiny_net, "t-a")
    assert modem.start().prompt == "t-a>"
    status = out(modem, "show status")
    assert "Demodulator:     LOCKED\n" in status
    assert "Es/No:           10.4 dB\n" in status
    assert "Rx level:        -42.0 dBm\n" in status
    assert "MODCOD:          13 (8PSK 2/3)\n" in status
    assert "Tx:              ON\n" in status
    assert "Tx rate:         2 kbps\n" in status  # keepalives only: the site is on its primary
    assert "BUC alarm:       OK\n" in status


def test_tx_off_makes_the_satellite_link_unusable(tiny_net: LabNetwork) -> None:
    router = tiny_net.devices["r-a"]
    sat_link = tiny_net.links[tiny_net.sites["site-a"].links[LinkRole.SATELLITE]]
    ios = cli(tiny_net, "r-a")
    for line in ("conf t", f"ip route 0.0.0.0 0.0.0.0 {sat_link.probe_address} 20",
                 "no ip route 0.0.0.0 0.0.0.0 127.78.1.1", "end"):  # fmt: skip
        ios.handle(line)
    sat_iface = router.interfaces[2]
    assert sat_iface.out_rate_bps == 1_000_000
    modem = cli(tiny_net, "t-a")
    assert out(modem, "tx off") == "Transmitter OFF\n"
    assert sat_iface.out_rate_bps == 0.0
    assert "Gateway of last resort is not set" in ios.handle("show ip route").output
    assert "Tx:              OFF\n" in out(modem, "show status")
    assert out(modem, "tx on") == "Transmitter ON\n"
    assert sat_iface.out_rate_bps == 1_000_000
    assert router.interfaces[0].out_rate_bps == KEEPALIVE_BPS


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("reboot", "ERROR: unknown command: reboot\n"),
        ("tx maybe", "ERROR: invalid arguments: tx maybe\n"),
        ("show", "ERROR: invalid arguments: show\n"),
    ],
)
def test_modem_errors(tiny_net: LabNetwork, line: str, expected: str) -> None:
    assert out(cli(tiny_net, "t-a"), line) == expected
