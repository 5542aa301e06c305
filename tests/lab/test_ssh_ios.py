"""The lab router CLI (Cisco IOS-XE), line by line, without a network: golden texts and state.

The long texts (show version, show running-config, show interfaces) are also read back with the
ntc-templates parsers real tooling uses, so a format slip shows up as a parse failure.
"""

from __future__ import annotations

from typing import Any

import pytest
from ntc_templates.parse import parse_output  # type: ignore[import-untyped]

from inventory.enums import LinkRole
from lab.ssh import CliMemory, ios_show, reload_config, session_for
from lab.ssh.cli import CliContext, Reply
from lab.ssh.ios import IosSession
from lab.state import LabNetwork
from lab.traffic import KEEPALIVE_BPS

PASSWORD = "s3cret-enable"


def ios(net: LabNetwork, name: str = "r-a", memory: CliMemory | None = None) -> IosSession:
    session = session_for(net, net.devices[name], CliContext(memory or CliMemory(), PASSWORD))
    assert isinstance(session, IosSession)
    return session


def run(session: IosSession, line: str) -> str:
    """What the terminal shows after the line: output, then the next prompt."""
    reply = session.handle(line)
    return reply.output + reply.prompt


def parse(command: str, text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = parse_output(platform="cisco_ios", command=command, data=text)
    return rows


# ---- golden texts -----------------------------------------------------------------------------

ROUTE_LEGEND_LINE_2 = "       D - EIGRP, EX - EIGRP external, O - OSPF, IA - OSPF inter area \n"
SHOW_IP_ROUTE = """\
Gateway of last resort is 127.78.1.1 to network 0.0.0.0

S*    0.0.0.0/0 [1/0] via 127.78.1.1
      10.0.0.0/8 is variably subnetted, 2 subnets, 2 masks
C        10.1.0.0/24 is directly connected, GigabitEthernet0/1/0
L        10.1.0.1/32 is directly connected, GigabitEthernet0/1/0
      127.0.0.0/32 is subnetted, 1 subnets
C        127.77.1.1/32 is directly connected, Loopback0
      172.16.0.0/16 is variably subnetted, 6 subnets, 2 masks
C        172.16.1.0/30 is directly connected, GigabitEthernet0/0/0
L        172.16.1.1/32 is directly connected, GigabitEthernet0/0/0
C        172.16.1.4/30 is directly connected, GigabitEthernet0/0/1
L        172.16.1.5/32 is directly connected, GigabitEthernet0/0/1
C        172.16.1.8/30 is directly connected, GigabitEthernet0/0/2
L        172.16.1.9/32 is directly connected, GigabitEthernet0/0/2
r-a#"""

SHOW_IP_INT_BRIEF = """\
Interface              IP-Address      OK? Method Status                Protocol
GigabitEthernet0/0/0   172.16.1.1      YES NVRAM  up                    up
GigabitEthernet0/0/1   172.16.1.5      YES NVRAM  administratively down down
GigabitEthernet0/0/2   172.16.1.9      YES NVRAM  down                  down
GigabitEthernet0/1/0   10.1.0.1        YES NVRAM  up                    up
Loopback0              127.77.1.1      YES NVRAM  up                    up
r-a#"""


def test_show_ip_route_is_ios_text(tiny_net: LabNetwork) -> None:
    text = run(ios(tiny_net), "show ip route")
    assert text.startswith(
        "Codes: L - local, C - connected, S - static, R - RIP, M - mobile, B - BGP\n"
        + ROUTE_LEGEND_LINE_2
    )
    assert text.count("\n") == 28
    assert text == ios_show.ROUTE_CODES + SHOW_IP_ROUTE


def test_show_ip_route_parses_with_ntc_templates(tiny_net: LabNetwork) -> None:
    rows = parse("show ip route", ios(tiny_net).handle("show ip route").output)
    default = [r for r in rows if r["network"] == "0.0.0.0"]
    assert default == [
        {**default[0], "protocol": "S", "flag": "*", "prefix_length": "0", "distance": "1",
         "nexthop_ip": "127.78.1.1"}
    ]  # fmt: skip
    connected = {(r["network"], r["prefix_length"]) for r in rows if r["protocol"] == "C"}
    assert ("172.16.1.0", "30") in connected
    assert ("127.77.1.1", "32") in connected


def test_show_ip_interface_brief(tiny_net: LabNetwork) -> None:
    router = tiny_net.devices["r-a"]
    router.interfaces[1].admin_up = False
    router.interfaces[2].carrier_up = False
    session = ios(tiny_net)
    assert run(session, "sh ip int br") == SHOW_IP_INT_BRIEF
    rows = parse("show ip interface brief", session.handle("show ip interface brief").output)
    assert [r["status"] for r in rows] == ["up", "administratively down", "down", "up", "up"]


def test_show_version_uptime_model_and_parse(tiny_net: LabNetwork) -> None:
    text = ios(tiny_net).handle("show version").output
    assert "Cisco IOS XE Software, Version 17.09.04a" in text
    assert "r-a uptime is 3 days, 4 hours, 5 minutes" in text
    (row,) = parse("show version", text)
    assert row["hostname"] == "r-a"
    assert row["version"] == "17.9.4a"
    assert row["hardware"] == ["ISR4331/K9"]
    assert row["uptime_days"] == "3"
    assert row["running_image"] == "isr4300-universalk9.17.09.04a.SPA.bin"


def test_show_interfaces_counters_follow_the_rate(tiny_net: LabNetwork, clock: Any) -> None:
    session = ios(tiny_net)
    before = parse("show interfaces", session.handle("show interfaces Gi0/0/0").output)[0]
    clock.advance(10.0)
    after = parse("show interfaces", session.handle("show interfaces gi 0/0/0").output)[0]
    assert before["interface"] == "GigabitEthernet0/0/0"
    assert before["description"] == "PRIMARY link site-a-primary"
    assert before["bandwidth"] == "8000 Kbit"
    assert int(after["output_rate"]) == 1_000_000  # the site's background, 1,000 kbit/s
    rows = parse("show interfaces", session.handle("show interfaces").output)
    assert len(rows) == 5
    text = session.handle("show interfaces GigabitEthernet0/0/0").output
    out_bytes = int(text.split(" packets output, ")[1].split(" bytes")[0])
    assert out_bytes == 10 * 1_000_000 // 8


def test_show_running_config(tiny_net: LabNetwork) -> None:
    text = ios(tiny_net).handle("show running-config").output
    assert text.startswith("Building configuration...\n\nCurrent configuration : ")
    declared = int(text.split("Current configuration : ")[1].split(" bytes")[0])
    assert declared == len(text.split(" bytes\n", 1)[1])
    assert "hostname r-a\n" in text
    assert (
        "interface GigabitEthernet0/0/1\n"
        " description BACKUP link site-a-backup\n"
        " bandwidth 4000\n"
        " ip address 172.16.1.5 255.255.255.252\n"
        " negotiation auto\n!\n"
    ) in text
    assert "\nip route 0.0.0.0 0.0.0.0 127.78.1.1\n" in text
    assert text.endswith("!\nend\n")
    one = ios(tiny_net).handle("show running-config interface Gi0/0/1").output
    (row,) = parse("show running-config interface", one.replace("\nend\n", "\n!\n"))
    assert (row["interface"], row["bandwidth"], row["netmask"]) == (
        "GigabitEthernet0/0/1",
        "4000",
        "255.255.255.252",
    )


# ---- the IOS parser's answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("shw ip route", "^\n% Invalid input detected at '^' marker.\n\nr-a#"),
        ("show ip rout x", "             ^\n% Invalid input detected at '^' marker.\n\nr-a#"),
        ("show ip", "% Incomplete command.\n\nr-a#"),
        ("s", '% Ambiguous command:  "s"\nr-a#'),
        ("sh i", '% Ambiguous command:  "sh i"\nr-a#'),
        ("ping 127.0.0.1", "^\n% Invalid input detected at '^' marker.\n\nr-a#"),
        ("", "r-a#"),
    ],
)
def test_parser_errors_like_ios(tiny_net: LabNetwork, line: str, expected: str) -> None:
    caret_at = len("r-a#")
    text = run(ios(tiny_net), line)
    if expected.startswith("^") or expected.startswith(" "):
        expected = " " * caret_at + expected
    assert text == expected


def test_abbreviations(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    assert session.handle("sh run").output.startswith("Building configuration")
    assert run(session, "conf t").endswith("r-a(config)#")
    assert run(session, "int gi0/0/1") == "r-a(config-if)#"
    assert run(session, "shut") == "r-a(config-if)#"
    assert not tiny_net.devices["r-a"].interfaces[1].admin_up
    assert run(session, "end") == "r-a#"


def test_terminal_commands_set_paging(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    assert session.handle("show ip route").page_length == 24
    assert run(session, "terminal length 0") == "r-a#"
    assert run(session, "terminal width 511") == "r-a#"
    assert session.handle("show ip route").page_length == 0
    assert "^" in run(session, "terminal length 513")


# ---- configuration changes the network ---------------------------------------------------------


def test_route_change_moves_the_site_to_the_backup_link(tiny_net: LabNetwork) -> None:
    router = tiny_net.devices["r-a"]
    primary, backup = router.interfaces[0], router.interfaces[1]
    assert primary.out_rate_bps == 1_000_000.0
    assert backup.out_rate_bps == KEEPALIVE_BPS
    session = ios(tiny_net)
    assert run(session, "configure terminal") == (
        "Enter configuration commands, one per line.  End with CNTL/Z.\nr-a(config)#"
    )
    assert run(session, "ip route 0.0.0.0 0.0.0.0 127.78.1.2 5") == "r-a(config)#"
    assert primary.out_rate_bps == 1_000_000.0  # distance 5 floats behind the primary
    assert run(session, "no ip route 0.0.0.0 0.0.0.0 127.78.1.1") == "r-a(config)#"
    assert backup.out_rate_bps == 1_000_000.0
    assert primary.out_rate_bps == KEEPALIVE_BPS
    assert run(session, "end") == "r-a#"
    route = session.handle("show ip route").output
    assert "Gateway of last resort is 127.78.1.2 to network 0.0.0.0" in route
    assert "S*    0.0.0.0/0 [5/0] via 127.78.1.2\n" in route
    assert "\nip route 0.0.0.0 0.0.0.0 127.78.1.2 5\n" in session.handle("sh run").output
    assert router.saved_routes[0].next_hop == "127.78.1.1"  # not saved yet


def test_floating_route_takes_over_when_the_primary_goes_down(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    for line in ("conf t", "ip route 0.0.0.0 0.0.0.0 127.78.1.2 10", "interface Gi0/0/0", "shut"):
        session.handle(line)
    route = session.handle("do show ip route").output
    assert "S*    0.0.0.0/0 [10/0] via 127.78.1.2" in route
    assert "127.78.1.1" not in route  # not installed: its interface is down
    assert tiny_net.devices["r-a"].interfaces[1].out_rate_bps == 1_000_000.0
    session.handle("no shutdown")
    assert "S*    0.0.0.0/0 [1/0] via 127.78.1.1" in session.handle("do sh ip ro").output


def test_equal_cost_defaults_are_both_listed(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    session.handle("conf t")
    session.handle("ip route 0.0.0.0 0.0.0.0 127.78.1.2")
    route = session.handle("do show ip route static").output
    assert "S*    0.0.0.0/0 [1/0] via 127.78.1.1\n                [1/0] via 127.78.1.2\n" in route
    rows = parse("show ip route", route)
    assert {r["nexthop_ip"] for r in rows} == {"127.78.1.1", "127.78.1.2"}


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("ip route 0.0.0.0 0.0.0.0 127.78.1.256", 25),
        ("ip route 0.0.0.0 0.0.0.0 banana", 25),
        ("ip route 0.0.0.0 0.0.0.0 127.78.1.2 256", 36),
        ("ip route 0.0.0.0 0.0.0.0 127.78.1.2 5 extra", 38),
        ("ip rout 0.0.0.0 0.0.0.0.0 127.78.1.2", 16),
        ("interface Gi9/9/9", 10),
    ],
)
def test_bad_config_lines_get_the_caret(tiny_net: LabNetwork, line: str, column: int) -> None:
    session = ios(tiny_net)
    session.handle("conf t")
    before = list(tiny_net.devices["r-a"].static_routes)
    caret = " " * (len("r-a(config)#") + column) + "^"
    assert run(session, line) == f"{caret}\n% Invalid input detected at '^' marker.\n\nr-a(config)#"
    assert tiny_net.devices["r-a"].static_routes == before


def test_route_semantics(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    session.handle("conf t")
    assert run(session, "ip route 0.0.0.0 0.0.0.0") == "% Incomplete command.\n\nr-a(config)#"
    assert run(session, "ip route 10.0.0.0 255.0.255.0 127.78.1.2") == (
        "%Inconsistent address and mask\nr-a(config)#"
    )
    assert run(session, "ip route 10.9.0.0 255.255.0.0 172.16.1.5") == (
        "%Invalid next hop address (it's this router)\nr-a(config)#"
    )
    assert run(session, "no ip route 0.0.0.0 0.0.0.0 127.78.1.3") == (
        "%No matching route to delete\nr-a(config)#"
    )
    session.handle("ip route 0.0.0.0 0.0.0.0 127.78.1.1 7")  # same next hop: distance replaced
    routes = tiny_net.devices["r-a"].static_routes
    assert [(r.next_hop, r.distance) for r in routes] == [("127.78.1.1", 7)]
    session.handle("no ip route 0.0.0.0 0.0.0.0")  # every default route
    assert routes == []
    assert "Gateway of last resort is not set" in session.handle("do show ip route").output
    router = tiny_net.devices["r-a"]
    assert all(i.out_rate_bps in (0.0, KEEPALIVE_BPS) for i in router.interfaces)


def test_global_command_in_interface_mode_leaves_it(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    session.handle("conf t")
    session.handle("interface GigabitEthernet0/0/1")
    assert run(session, "ip route 0.0.0.0 0.0.0.0 127.78.1.2 5") == "r-a(config)#"
    assert len(tiny_net.devices["r-a"].static_routes) == 2


def test_descriptions_write_memory_and_reload(tiny_net: LabNetwork) -> None:
    memory = CliMemory()
    session = ios(tiny_net, memory=memory)
    for line in ("conf t", "int gi0/0/1", "description TO CARRIER-2 circuit 88", "exit",
                 "ip route 0.0.0.0 0.0.0.0 127.78.1.2 5", "end"):  # fmt: skip
        session.handle(line)
    text = session.handle("show running-config interface GigabitEthernet0/0/1").output
    assert " description TO CARRIER-2 circuit 88\n" in text
    assert run(session, "write memory") == "Building configuration...\n[OK]\nr-a#"
    router = tiny_net.devices["r-a"]
    assert [(r.next_hop, r.distance) for r in router.saved_routes] == [
        ("127.78.1.1", 1),
        ("127.78.1.2", 5),
    ]
    assert "127.78.1.2 5" in session.handle("show startup-config").output
    session.handle("conf t")
    session.handle("no ip route 0.0.0.0 0.0.0.0 127.78.1.2")
    session.handle("interface Gi0/0/1")
    session.handle("no description")
    session.handle("shutdown")
    reload_config(router, memory)
    assert [(r.next_hop, r.distance) for r in router.static_routes] == [
        ("127.78.1.1", 1),
        ("127.78.1.2", 5),
    ]
    assert router.interfaces[1].admin_up
    assert memory.description("r-a", "GigabitEthernet0/0/1") == "TO CARRIER-2 circuit 88"


def test_copy_running_config_asks_for_the_destination(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    reply = session.handle("copy running-config startup-config")
    assert reply == Reply("", "Destination filename [startup-config]? ")
    assert run(session, "") == "Building configuration...\n[OK]\nr-a#"


def test_enable_password_is_not_echoed_and_checked(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    assert run(session, "disable") == "r-a>"
    assert "^" in run(session, "configure terminal")  # not in user EXEC
    reply = session.handle("enable")
    assert (reply.prompt, reply.echo) == ("Password: ", False)
    assert session.handle("wrong").prompt == "Password: "
    assert run(session, PASSWORD) == "r-a#"
    session.handle("disable")
    session.handle("enable")
    assert session.handle("nope").prompt == "Password: "
    assert session.handle("nope").prompt == "Password: "
    assert run(session, "nope") == "% Bad secrets\n\nr-a>"


def test_ctrl_z_and_exit(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    session.handle("conf t")
    session.handle("interface Loopback0")
    assert session.interrupt("\x1a") == Reply("^Z\n", "r-a#")
    assert session.handle("exit").close


def test_long_hostname_is_cut_in_config_mode(tiny_net: LabNetwork) -> None:
    router = tiny_net.devices["r-a"]
    router.name = "gd-shaoguan-qujiang-rtr01"
    session = ios(tiny_net)
    assert session.handle("").prompt == "gd-shaoguan-qujiang-rtr01#"
    assert session.handle("conf t").prompt == "gd-shaoguan-qujiang-(config)#"


def test_backup_link_in_use_is_reported_by_the_route_table(tiny_net: LabNetwork) -> None:
    link = tiny_net.links[tiny_net.sites["site-a"].links[LinkRole.PRIMARY]]
    link.cut = True  # IP SLA-style: an unusable next hop leaves the table
    route = ios(tiny_net).handle("show ip route").output
    assert "Gateway of last resort is not set" in route


def test_do_keeps_the_caret_under_the_typed_line(tiny_net: LabNetwork) -> None:
    session = ios(tiny_net)
    session.handle("conf t")
    caret = " " * (len("r-a(config)#") + len("do show ip rout ")) + "^"
    assert run(session, "do show ip rout x") == (
        f"{caret}\n% Invalid input detected at '^' marker.\n\nr-a(config)#"
    )
    assert run(session, "do sh i") == '% Ambiguous command:  "sh i"\nr-a(config)#'
