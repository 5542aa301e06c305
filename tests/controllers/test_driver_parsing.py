"""Pure driver code on captured output: parsers, command templates, validation, known-hosts.

The outputs are golden files recorded from the lab's SSH CLIs through the drivers' own transport
(``tests/data/cli``; re-record with ``TIANDI_UPDATE_GOLDEN=1``, see test_driver_lab.py). No
network here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from controllers.drivers import cisco_codec, cisco_ios, comtech_cdm, mcu_cli, validate
from controllers.drivers.base import (
    DefaultRoute,
    DeviceTarget,
    RouterLink,
    StaticDefault,
    driver_for,
    registered_platforms,
    router_for,
)
from controllers.drivers.known_hosts import (
    HostKey,
    KnownHostKeyConflict,
    KnownHostsStore,
    host_entry,
    keys_for,
)
from controllers.drivers.session import SshRunner
from controllers.errors import InvalidParameter, NoDriver
from inventory.enums import LinkRole
from lab.ssh import keys

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "cli"
IP = ipaddress.IPv4Address
PRIMARY_HOP, BACKUP_HOP, SAT_HOP = IP("127.64.0.7"), IP("127.64.0.8"), IP("127.64.0.9")
LINKS = (
    RouterLink("bj-tongzhou-primary", LinkRole.PRIMARY, "GigabitEthernet0/0/0", PRIMARY_HOP),
    RouterLink("bj-tongzhou-backup", LinkRole.BACKUP, "GigabitEthernet0/0/1", BACKUP_HOP),
    RouterLink("bj-tongzhou-satellite", LinkRole.SATELLITE, "GigabitEthernet0/1/0", SAT_HOP),
)


def golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


# ---- IOS: show ip route (TextFSM + the gateway line) ----------------------------------------


@pytest.mark.parametrize(
    ("name", "gateway", "installed"),
    [
        ("ios_show_ip_route.txt", PRIMARY_HOP, [(PRIMARY_HOP, 1)]),
        ("ios_show_ip_route_backup.txt", BACKUP_HOP, [(BACKUP_HOP, 5)]),
        ("ios_show_ip_route_ecmp.txt", PRIMARY_HOP, [(PRIMARY_HOP, 1), (BACKUP_HOP, 1)]),
        ("ios_show_ip_route_no_gateway.txt", None, []),
    ],
)
def test_show_ip_route(name: str, gateway: IP | None, installed: list[tuple[IP, int]]) -> None:
    seen_gateway, seen = cisco_ios.parse_show_ip_route(golden(name))
    assert seen_gateway == gateway
    assert [(r.next_hop, r.distance) for r in seen] == installed


def test_show_ip_route_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="Gateway of last resort"):
        cisco_ios.parse_show_ip_route(golden("ios_error_invalid_input.txt"))
    text = golden("ios_show_ip_route.txt").replace(
        "Gateway of last resort is 127.64.0.7", "Gateway of last resort is 10.9.9.9"
    )
    with pytest.raises(ValueError, match="not among the installed"):
        cisco_ios.parse_show_ip_route(text)


def test_show_ip_route_of_a_real_ios_xe_with_timestamps() -> None:
    """The shape a real router prints (uptime, interface, ECMP), not only the lab's."""
    text = (
        "Codes: L - local, C - connected, S - static, R - RIP, M - mobile, B - BGP\n"
        "\n"
        "Gateway of last resort is 10.1.1.1 to network 0.0.0.0\n"
        "\n"
        "S*    0.0.0.0/0 [5/0] via 10.1.1.1\n"
        "                [5/0] via 10.2.2.1\n"
        "      10.0.0.0/8 is variably subnetted, 4 subnets, 2 masks\n"
        "C        10.1.1.0/30 is directly connected, GigabitEthernet0/0/0\n"
        "O        10.9.0.0/16 [110/2] via 10.1.1.1, 2d03h, GigabitEthernet0/0/0\n"
    )
    gateway, installed = cisco_ios.parse_show_ip_route(text)
    assert gateway == IP("10.1.1.1")
    assert installed == (StaticDefault(IP("10.1.1.1"), 5), StaticDefault(IP("10.2.2.1"), 5))


# ---- IOS: running configuration ---------------------------------------------------------------


def test_configured_defaults_and_interface_addresses() -> None:
    config = golden("ios_show_running_config.txt")
    assert cisco_ios.parse_configured_defaults(config) == (StaticDefault(PRIMARY_HOP, 1),)
    moved = golden("ios_show_running_config_backup.txt")
    assert cisco_ios.parse_configured_defaults(moved) == (StaticDefault(BACKUP_HOP, 5),)
    addresses = cisco_ios.parse_interface_addresses(config)
    assert addresses["GigabitEthernet0/0/1"] == ipaddress.IPv4Interface("172.16.0.29/30")
    assert addresses["Loopback0"] == ipaddress.IPv4Interface("127.1.0.17/32")
    assert len(addresses) == 5


def test_configured_defaults_options_and_refusals() -> None:
    text = (
        "ip route 0.0.0.0 0.0.0.0 10.0.0.1 200 name BACKUP-CARRIER\n"
        "ip route 0.0.0.0 0.0.0.0 10.0.0.5 tag 7\n"
        "ip route vrf MGMT 0.0.0.0 0.0.0.0 192.168.0.1\n"
        "ip route 10.0.0.0 255.0.0.0 10.0.0.9\n"
    )
    assert cisco_ios.parse_configured_defaults(text) == (
        StaticDefault(IP("10.0.0.1"), 200),
        StaticDefault(IP("10.0.0.5"), 1),
    )
    with pytest.raises(ValueError, match="via an interface"):
        cisco_ios.parse_configured_defaults("ip route 0.0.0.0 0.0.0.0 Dialer1\n")


def test_default_route_maps_the_gateway_to_a_link() -> None:
    route = cisco_ios.read_default_route(
        golden("ios_show_ip_route_backup.txt"), golden("ios_show_running_config_backup.txt"), LINKS
    )
    assert route == DefaultRoute(
        BACKUP_HOP, (StaticDefault(BACKUP_HOP, 5),), (StaticDefault(BACKUP_HOP, 5),),
        "bj-tongzhou-backup",
    )  # fmt: skip
    assert route.distance == 5
    # A next hop that is not a link's probe address: found by the interface's subnet.
    other = (RouterLink("b", LinkRole.BACKUP, "GigabitEthernet0/0/1", IP("9.9.9.9")),)
    addresses = cisco_ios.parse_interface_addresses(golden("ios_show_running_config.txt"))
    assert cisco_ios.link_for(IP("172.16.0.30"), other, addresses) == "b"
    assert cisco_ios.link_for(IP("8.8.8.8"), other, addresses) is None
    assert cisco_ios.link_for(None, LINKS, addresses) is None


def test_interface_brief() -> None:
    rows = cisco_ios.parse_interface_brief(golden("ios_show_ip_interface_brief.txt"))
    assert [(r.name, r.up) for r in rows][:3] == [
        ("GigabitEthernet0/0/0", True),
        ("GigabitEthernet0/0/1", True),
        ("GigabitEthernet0/1/0", False),
    ]
    assert rows[2].status == "administratively down" and rows[2].protocol == "down"
    assert rows[4].address == IP("127.1.0.17")


# ---- IOS: errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (
            "ios_error_invalid_input.txt",
            "                            ^\n% Invalid input detected at '^' marker.",
        ),
        ("ios_error_incomplete.txt", "% Incomplete command."),
        ("ios_error_ambiguous.txt", '% Ambiguous command:  "show i"'),
        ("ios_config_error_own_address.txt", "%Invalid next hop address (it's this router)"),
        ("ios_config_error_no_match.txt", "%No matching route to delete"),
    ],
)
def test_ios_errors(name: str, error: str) -> None:
    assert cisco_ios.find_error(golden(name)) == error


@pytest.mark.parametrize(
    "name",
    ["ios_show_ip_route.txt", "ios_show_running_config.txt", "ios_write_memory.txt",
     "ios_show_ip_interface_brief.txt"],
)  # fmt: skip
def test_ios_good_answers_hold_no_error(name: str) -> None:
    assert cisco_ios.find_error(golden(name)) is None


def test_a_banner_in_the_configuration_is_not_an_error() -> None:
    config = golden("ios_show_running_config.txt").replace(
        "!\nend", "banner motd ^C\n% Authorized access only\n^C\n!\nend"
    )
    assert "% Authorized" in config
    assert cisco_ios.find_error(config, head=cisco_ios.ERROR_HEAD_LINES) is None
    invalid = golden("ios_error_invalid_input.txt")
    assert cisco_ios.find_error(invalid, head=cisco_ios.ERROR_HEAD_LINES) is not None


def test_syslog_lines_are_not_errors() -> None:
    text = "*Mar  1 00:01:02.003: %SYS-5-CONFIG_I: Configured from console by tiandi\n"
    assert cisco_ios.find_error(text) is None
    assert cisco_ios.find_error("%SYS-5-CONFIG_I: Configured from console\n") is None


# ---- IOS: plans and verdicts ----------------------------------------------------------------


def test_plan_is_make_before_break() -> None:
    primary, backup = StaticDefault(PRIMARY_HOP), StaticDefault(BACKUP_HOP, 5)
    assert cisco_ios.plan_default_routes([primary], [backup]) == (
        "ip route 0.0.0.0 0.0.0.0 127.64.0.8 5",
        "no ip route 0.0.0.0 0.0.0.0 127.64.0.7",
    )
    assert cisco_ios.plan_default_routes([backup], [backup]) == ()
    # same next hop, new distance: IOS replaces it in place, nothing to remove
    assert cisco_ios.plan_default_routes([StaticDefault(BACKUP_HOP)], [backup]) == (
        "ip route 0.0.0.0 0.0.0.0 127.64.0.8 5",
    )
    # ECMP or floating leftovers are all removed; none configured: only the addition
    assert cisco_ios.plan_default_routes(
        [primary, StaticDefault(SAT_HOP, 250), backup], [backup]
    ) == ("no ip route 0.0.0.0 0.0.0.0 127.64.0.7", "no ip route 0.0.0.0 0.0.0.0 127.64.0.9")
    assert cisco_ios.plan_default_routes([], [primary]) == (
        "ip route 0.0.0.0 0.0.0.0 127.64.0.7 1",
    )
    # a rollback to "no default at all"
    assert cisco_ios.plan_default_routes([backup], []) == (
        "no ip route 0.0.0.0 0.0.0.0 127.64.0.8",
    )


def test_verdicts() -> None:
    backup = StaticDefault(BACKUP_HOP, 5)
    good = cisco_ios.read_default_route(
        golden("ios_show_ip_route_backup.txt"), golden("ios_show_running_config_backup.txt"), LINKS
    )
    assert cisco_ios.check_moved(good, backup).ok
    assert not cisco_ios.check_moved(good, StaticDefault(BACKUP_HOP, 1)).ok
    dead = cisco_ios.read_default_route(
        golden("ios_show_ip_route_no_gateway.txt"),
        golden("ios_show_running_config_backup.txt"),
        LINKS,
    )
    verdict = cisco_ios.check_moved(dead, backup)
    assert not verdict.ok
    assert verdict.reason == (
        "the gateway of last resort is not set, expected 127.64.0.8 (the new route is not in "
        "the routing table: is its link up?)"
    )
    ecmp = cisco_ios.read_default_route(
        golden("ios_show_ip_route_ecmp.txt"), golden("ios_show_running_config.txt"), LINKS
    )
    assert not cisco_ios.check_moved(ecmp, StaticDefault(BACKUP_HOP)).ok
    # a restore is judged on the configuration: the old route may sit on a dead link
    assert cisco_ios.check_restored(dead, [backup]).ok
    assert not cisco_ios.check_restored(dead, [StaticDefault(PRIMARY_HOP)]).ok


# ---- xAPI -------------------------------------------------------------------------------------


def test_xapi_calls() -> None:
    calls = cisco_codec.parse_calls(golden("xapi_status_call.txt"))
    assert [(c.call_id, c.direction, c.remote, c.rate_kbps, c.status) for c in calls] == [
        (1, "Outgoing", "beijing-ep1@lab.tiandi", 768, "Connected"),
        (2, "Incoming", "beijing-ep2@lab.tiandi", 1152, "Connected"),
    ]
    assert calls[1].tx_kbps == calls[1].rx_kbps == 1152
    assert cisco_codec.parse_calls(golden("xapi_status_call_none.txt")) == ()


def test_xapi_results_and_errors() -> None:
    ok = cisco_codec.parse_result(golden("xapi_dial_ok.txt"))
    assert ok is not None and ok.ok and ok.name == "DialResult"
    assert ok.fields == {"CallId": "1", "ConferenceId": "1"}
    assert cisco_codec.xapi_error(golden("xapi_dial_ok.txt")) is None
    assert cisco_codec.xapi_error(golden("xapi_disconnect_error.txt")) == "No active call(s) found."
    assert cisco_codec.xapi_error(golden("xapi_config_error.txt")) == (
        "Invalid value: 9000 (allowed 64..6000)"
    )
    assert cisco_codec.xapi_error(golden("xapi_dial_error.txt")) == (
        "Missing or invalid parameter(s): Number"
    )
    assert cisco_codec.parse_result(golden("xapi_status_call_none.txt")) is None


def test_xapi_commands() -> None:
    assert cisco_codec.dial_command("+861012345678", 1920) == (
        'xCommand Dial Number: "+861012345678" CallRate: 1920'
    )
    assert cisco_codec.disconnect_command(3) == "xCommand Call Disconnect CallId: 3"
    assert cisco_codec.default_rate_command(768) == (
        "xConfiguration Conference DefaultCall Rate: 768"
    )


# ---- MCU and modem ----------------------------------------------------------------------------


def test_mcu_outputs() -> None:
    ports = mcu_cli.parse_ports(golden("mcu_show_ports.txt"))
    assert (ports.total, ports.in_use, ports.free, ports.conferences) == (48, 1, 47, 2)
    assert mcu_cli.parse_conferences(golden("mcu_show_conferences_none.txt")) == ()
    confs = mcu_cli.parse_conferences(golden("mcu_show_conferences.txt"))
    assert [(c.name, c.participants) for c in confs] == [("board", 0), ("weekly", 1)]
    members = mcu_cli.parse_participants(golden("mcu_participant_list.txt"))
    assert [(m.name, m.connected, m.rate_kbps) for m in members] == [
        ("bj-tongzhou-ep1", True, 2048)
    ]
    assert mcu_cli.find_error(golden("mcu_error.txt")) == 'no conference "nosuch"'
    assert mcu_cli.find_error(golden("mcu_show_ports.txt")) is None
    with pytest.raises(ValueError):
        mcu_cli.parse_ports(golden("mcu_error.txt"))


def test_modem_outputs() -> None:
    status = comtech_cdm.parse_status(golden("modem_show_status.txt"))
    assert (status.name, status.demod_locked, status.esno_db, status.rx_level_dbm) == (
        "bj-tongzhou-sat1", True, 11.2, -38.6,
    )  # fmt: skip
    assert (status.modcod, status.modcod_name, status.tx_on) == (18, "16APSK 2/3", True)
    assert (status.buc_alarm, status.lnb_alarm) == (False, False)
    off = comtech_cdm.parse_status(golden("modem_show_status_tx_off.txt"))
    assert off.tx_on is False and off.tx_rate_kbps == 0.0
    assert comtech_cdm.find_error(golden("modem_error.txt")) == "unknown command: bogus"
    assert comtech_cdm.find_error(golden("modem_tx_off.txt")) is None
    with pytest.raises(ValueError):
        comtech_cdm.parse_status(golden("modem_error.txt"))


# ---- validation: nothing hostile reaches a template -------------------------------------------

HOSTILE_TEXT = [
    "127.64.0.8\nreload",
    "end\nreload",
    "1.1.1.1; reload",
    "1.1.1.1 ",
    "1.1.1.1\r",
    "٣.٣.٣.٣",  # Arabic-Indic digits: int() accepts them, IOS would not
    "１.１.１.１",  # full-width digits
    "1.1.1.1\x00",
    "",
]


@pytest.mark.parametrize("value", [*HOSTILE_TEXT, "0.0.0.0", "224.0.0.1", "255.255.255.255",
                                   "1.1.1", "01.1.1.1", "::1", 16843009, None])  # fmt: skip
def test_hostile_next_hops(value: Any) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate.next_hop(value, device="r1")
    assert "nothing was sent" in str(caught.value)
    assert "\n" not in str(caught.value).replace("\\n", "")


def test_next_hops_and_distances() -> None:
    assert validate.next_hop("127.64.0.8", device="r") == IP("127.64.0.8")
    assert validate.next_hop(IP("10.0.0.1"), device="r") == IP("10.0.0.1")
    assert validate.distance(1, device="r") == 1 and validate.distance(255, device="r") == 255
    for bad in (0, 256, -1, True, 5.0, "5", None):
        with pytest.raises(InvalidParameter):
            validate.distance(bad, device="r")


@pytest.mark.parametrize(
    "value",
    ["GigabitEthernet0/0/1\nshutdown", "Gi0/0/1", "GigabitEthernet0/0/1 ", "Gigabit Ethernet0",
     "GigabitEthernet0/0/1;reload", "Loopback", "ＧigabitEthernet0/0/1", "Tunnel1/"],
)  # fmt: skip
def test_hostile_interface_names(value: str) -> None:
    with pytest.raises(InvalidParameter):
        validate.interface_name(value, device="r")


def test_interface_names() -> None:
    for ok in ("GigabitEthernet0/0/1", "TenGigabitEthernet0/1/0.100", "Loopback0", "Tunnel10",
               "Port-channel1", "Cellular0/2/0"):  # fmt: skip
        assert validate.interface_name(ok, device="r") == ok


@pytest.mark.parametrize(
    "value",
    ['x" CallRate: 64\nxCommand SystemUnit Boot', 'room" ', "a b", "sip:", "@host", "x\ty",
     "会议室", "a" * 300, 'evil"', "x@-host", "x@host-"],
)  # fmt: skip
def test_hostile_dial_numbers(value: str) -> None:
    with pytest.raises(InvalidParameter):
        validate.dial_number(value, device="c")


def test_dial_numbers_rates_and_names() -> None:
    for ok in ("+861012345678", "room-12", "sip:weekly@ministry-mcu1", "h323:1001", "a.b_c"):
        assert validate.dial_number(ok, device="c") == ok
    assert validate.call_rate(64, device="c") == 64 and validate.call_rate(6000, device="c")
    for bad_rate in (63, 6001, True, "768"):
        with pytest.raises(InvalidParameter):
            validate.call_rate(bad_rate, device="c")
    for bad_id in (0, -1, 2**31, False):
        with pytest.raises(InvalidParameter):
            validate.call_id(bad_id, device="c")
    assert validate.name("weekly-2026.q1", device="m") == "weekly-2026.q1"
    for bad_name in ("a b", "weekly;end", "-x", "x" * 65, "会议"):
        with pytest.raises(InvalidParameter):
            validate.name(bad_name, device="m")


# ---- registry ---------------------------------------------------------------------------------


def test_every_inventory_platform_has_a_driver(tmp_path: Path) -> None:
    assert set(registered_platforms()) >= {
        "cisco_ios", "cisco_codec", "mcu_cli", "comtech_cdm", "idirect_remote", "idirect_hub",
    }  # fmt: skip
    runner = SshRunner(KnownHostsStore(tmp_path / "kh"))
    codec = DeviceTarget("c1", "cisco_codec", "127.0.0.1")
    assert type(driver_for(codec, runner)).__name__ == "CiscoCodec"
    with pytest.raises(NoDriver, match="has no router driver"):
        router_for(codec, runner)
    with pytest.raises(NoDriver, match="no driver for platform 'junos'"):
        driver_for(DeviceTarget("j1", "junos", "127.0.0.1"), runner)


def test_targets_keep_credentials_out_of_repr() -> None:
    from inventory.secrets import SecretRef

    target = DeviceTarget(
        "r1", "cisco_ios", "10.0.0.1", username="noc",
        password=SecretRef("env", "TIANDI_SSH_PASSWORD"),
    )  # fmt: skip
    assert "TIANDI_SSH_PASSWORD" not in repr(target) and "password" not in repr(target)
    with pytest.raises(InvalidParameter):
        DeviceTarget("r1", "cisco_ios", "10.0.0.1", links=(
            RouterLink("x", LinkRole.PRIMARY, "Gi0/0\nreload", IP("10.0.0.2")),))  # fmt: skip


# ---- known hosts (pure file handling) ---------------------------------------------------------


def _lab_key(seed: str, name: str) -> HostKey:
    return HostKey.parse(keys.public_key_text(keys.host_key(seed, name)))


def test_fingerprints_match_openssh() -> None:
    key = keys.host_key("s", "r1")
    ours = _lab_key("s", "r1").fingerprint
    assert ours == key.get_fingerprint("sha256")  # asyncssh prints OpenSSH's format


def test_known_hosts_lookup_plain_hashed_and_revoked() -> None:
    a, b, c = _lab_key("s", "a"), _lab_key("s", "b"), _lab_key("s", "c")
    salt = b"0123456789abcdefghij"
    hashed_name = base64.b64encode(
        hmac.new(salt, b"[10.0.0.2]:2222", hashlib.sha1).digest()
    ).decode()
    text = (
        "# comment\n"
        f"10.0.0.1,[10.0.0.1]:2222 {a}\n"
        f"|1|{base64.b64encode(salt).decode()}|{hashed_name} {b}\n"
        f"@revoked [10.0.0.3]:22 {c}\n"
        f"@cert-authority *.example {c}\n"
        "garbage line\n"
    )
    assert keys_for(text, "10.0.0.1") == ((a,), ())
    assert keys_for(text, "[10.0.0.1]:2222") == ((a,), ())
    assert keys_for(text, "[10.0.0.2]:2222") == ((b,), ())
    assert keys_for(text, "[10.0.0.3]:22") == ((), (c,))
    assert keys_for(text, "10.0.0.9") == ((), ())
    assert host_entry("10.0.0.1", 22) == "10.0.0.1"
    assert host_entry("10.0.0.1", 2222) == "[10.0.0.1]:2222"


def test_known_hosts_store(tmp_path: Path) -> None:
    store = KnownHostsStore.in_data_dir(tmp_path)
    a, b = _lab_key("s", "a"), _lab_key("other", "a")
    assert store.lookup("[10.0.0.1]:22") == ()
    assert store.add("[10.0.0.1]:2222", a) is True
    assert store.add("[10.0.0.1]:2222", a) is False
    with pytest.raises(KnownHostKeyConflict):
        store.add("[10.0.0.1]:2222", b)
    assert store.lookup("[10.0.0.1]:2222") == (a,)
    store.add("[10.0.0.5]:2222", a)
    assert store.add("[10.0.0.1]:2222", b, replace=True) is True
    assert store.lookup("[10.0.0.1]:2222") == (b,)
    assert store.lookup("[10.0.0.5]:2222") == (a,)
    assert store.remove("[10.0.0.1]:2222") == 1 and "[10.0.0.1]:2222" not in store
    assert store.path == tmp_path / "ssh" / "known_hosts"
    assert store.path.read_text().splitlines() == [f"[10.0.0.5]:2222 {a}"]
    with pytest.raises(ValueError):
        HostKey("ssh-ed25519", "not base64!")
