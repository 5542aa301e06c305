"""The SSH face end to end: real clients (netmiko/paramiko, asyncssh) against the lab's listeners.

The lab runs on its own event loop in a thread, as in ``tiandi lab up``; netmiko blocks the test
thread only. Devices listen on their ``127.77.x.y`` addresses on one free high port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException

from lab.ssh import SshFace, serve_ssh
from lab.ssh.bench import SshTarget, measure_ssh_sessions
from lab.ssh.cli import Reply, register_cli
from lab.state import LabNetwork
from lab.traffic import KEEPALIVE_BPS

T = TypeVar("T")
USER, PASSWORD = "netops", "lab-pass-7"


@dataclass(frozen=True)
class Login:
    username: str
    password: str | None
    private_key: str | None = None


class LoopThread:
    """An event loop running in a thread: the lab's home while the test thread drives clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class SshLab:
    net: LabNetwork
    face: SshFace
    port: int
    loop: LoopThread
    client_key: asyncssh.SSHKey

    def netmiko(self, device: str, device_type: str, **kwargs: Any) -> Any:
        return ConnectHandler(
            device_type=device_type,
            host=self.net.devices[device].mgmt_address,
            port=self.port,
            username=USER,
            password=kwargs.pop("password", PASSWORD),
            **kwargs,
        )

    async def connect(self, device: str, **kwargs: Any) -> asyncssh.SSHClientConnection:
        options: dict[str, Any] = {
            "username": USER,
            "password": PASSWORD,
            "known_hosts": None,
            "client_keys": None,
            "agent_path": None,
            "config": None,
        }
        options.update(kwargs)
        return await asyncssh.connect(self.net.devices[device].mgmt_address, self.port, **options)


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def ssh_lab(tiny_net: LabNetwork) -> Iterator[SshLab]:
    port = free_port("127.77.1.1")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    logins: dict[str, Login] = {}
    for name, dev in tiny_net.devices.items():
        dev.ssh_port = port
        logins[name] = Login(USER, PASSWORD)
    logins["r-b"] = Login(USER, None, client_key.export_private_key().decode())
    loop = LoopThread()
    face = loop.run(serve_ssh(tiny_net, logins, host_key_seed=7, exec_timeout=60))
    assert face.failed == {}
    try:
        yield SshLab(tiny_net, face, port, loop, client_key)
    finally:
        loop.run(face.close())
        loop.stop()


# ---- netmiko, cisco_ios -----------------------------------------------------------------------


def test_netmiko_moves_the_default_route(ssh_lab: SshLab) -> None:
    net = ssh_lab.net
    with ssh_lab.netmiko("r-a", "cisco_ios") as conn:
        assert conn.find_prompt() == "r-a#"
        routes = conn.send_command("show ip route", use_textfsm=True)
        default = next(r for r in routes if r["network"] == "0.0.0.0")
        assert default["nexthop_ip"] == "127.78.1.1"
        output = conn.send_config_set(
            ["ip route 0.0.0.0 0.0.0.0 127.78.1.2 5", "no ip route 0.0.0.0 0.0.0.0 127.78.1.1"]
        )
        assert "r-a(config)#ip route 0.0.0.0 0.0.0.0 127.78.1.2 5" in output
        assert "Invalid" not in output
        assert "ip route 0.0.0.0 0.0.0.0 127.78.1.2 5\n" in conn.send_command("show running-config")
        routes = conn.send_command("show ip route", use_textfsm=True)
        default = next(r for r in routes if r["network"] == "0.0.0.0")
        assert (default["nexthop_ip"], default["distance"]) == ("127.78.1.2", "5")
        error = conn.send_command("show ip rout x")
        assert "           ^\n% Invalid input detected at '^' marker." in error
        assert "[OK]" in conn.save_config()
    rates = ssh_lab.loop.call(lambda: [i.out_rate_bps for i in net.devices["r-a"].interfaces[:2]])
    assert rates == [KEEPALIVE_BPS, 1_000_000.0]  # the backup now carries the site
    saved = ssh_lab.loop.call(lambda: [r.next_hop for r in net.devices["r-a"].saved_routes])
    assert saved == ["127.78.1.2"]


def test_netmiko_interface_shutdown_and_invalid_config(ssh_lab: SshLab) -> None:
    with ssh_lab.netmiko("r-a", "cisco_ios") as conn:
        output = conn.send_config_set(["interface GigabitEthernet0/0/0", "shutdown"])
        assert "r-a(config-if)#" in output
        brief = conn.send_command("show ip interface brief", use_textfsm=True)
        assert brief[0]["status"] == "administratively down"
        output = conn.send_config_set(["ip route 0.0.0.0 0.0.0.0 127.78.1.300"])
        assert "% Invalid input detected at '^' marker." in output
    assert ssh_lab.loop.call(lambda: ssh_lab.net.devices["r-a"].interfaces[0].admin_up) is False


def test_wrong_password_is_an_authentication_failure(ssh_lab: SshLab) -> None:
    with pytest.raises(NetmikoAuthenticationException):
        ssh_lab.netmiko("r-a", "cisco_ios", password="wrong")
    assert ssh_lab.face.stats.auth_failures >= 1


def test_netmiko_checks_the_host_key(ssh_lab: SshLab, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(ssh_lab.face.known_hosts())
    assert f"[127.77.1.1]:{ssh_lab.port} ssh-ed25519 " in known.read_text()
    strict = {"ssh_strict": True, "system_host_keys": False, "alt_host_keys": True,
              "alt_key_file": str(known)}  # fmt: skip
    with ssh_lab.netmiko("r-a", "cisco_ios", **strict) as conn:
        assert conn.find_prompt() == "r-a#"


def test_host_keys_are_stable_per_seed(ssh_lab: SshLab, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(ssh_lab.face.known_hosts())
    other = SshFace(ssh_lab.net, ssh_lab.face.memory, host_key_seed=8)
    assert other.host_public_key("r-a") != ssh_lab.face.host_public_key("r-a")
    same = SshFace(ssh_lab.net, ssh_lab.face.memory, host_key_seed=7)
    assert same.host_public_key("r-a") == ssh_lab.face.host_public_key("r-a")

    async def check() -> None:
        conn = await ssh_lab.connect("r-a", known_hosts=str(known))
        result = await conn.run("show version", check=True)
        assert "r-a uptime is" in str(result.stdout)
        conn.close()
        wrong = tmp_path / "wrong_known_hosts"
        wrong.write_text(f"[127.77.1.1]:{ssh_lab.port} {other.host_public_key('r-a')}\n")
        with pytest.raises(asyncssh.HostKeyNotVerifiable):
            await ssh_lab.connect("r-a", known_hosts=str(wrong))

    asyncio.run(check())


def test_public_key_login_and_exec(ssh_lab: SshLab) -> None:
    async def check() -> str:
        conn = await ssh_lab.connect("r-b", password=None, client_keys=[ssh_lab.client_key])
        result = await conn.run("show ip interface brief")
        conn.close()
        return str(result.stdout)

    output = asyncio.run(check())
    assert output.startswith("Interface              IP-Address")
    assert "Loopback0              127.77.2.1" in output

    async def refused() -> None:
        await ssh_lab.connect("r-b")  # password only: r-b accepts its key, nothing else

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(refused())


def test_paging_like_a_vty(ssh_lab: SshLab) -> None:
    async def check() -> tuple[str, str, str]:
        conn = await ssh_lab.connect("r-a")
        proc = await conn.create_process(term_type="vt100")
        await asyncio.wait_for(proc.stdout.readuntil("r-a#"), 5)
        proc.stdin.write("show running-config\r")
        first = await asyncio.wait_for(proc.stdout.readuntil("--More-- "), 5)
        proc.stdin.write(" ")
        second = await asyncio.wait_for(proc.stdout.readuntil("--More-- "), 5)
        proc.stdin.write("q")
        rest = await asyncio.wait_for(proc.stdout.readuntil("r-a#"), 5)
        conn.close()
        return first, second, rest

    first, second, rest = asyncio.run(check())
    assert first.startswith("show running-config\r\nBuilding configuration...\r\n")
    assert first.count("\r\n") == 24  # echo line + 23 lines of the page
    assert second.count("\r\n") == 23
    assert "end" not in rest


def test_powered_off_device_drops_connections(ssh_lab: SshLab) -> None:
    ssh_lab.loop.call(lambda: setattr(ssh_lab.net.devices["r-a"], "powered", False))

    async def attempt() -> None:
        await ssh_lab.connect("r-a")

    with pytest.raises((OSError, asyncssh.Error)):
        asyncio.run(attempt())
    assert ssh_lab.face.stats.refused_powered_off == 1


def test_reboot_drops_open_sessions(ssh_lab: SshLab) -> None:
    async def check() -> float:
        conn = await ssh_lab.connect("r-a")
        proc = await conn.create_process(term_type="vt100")
        await asyncio.wait_for(proc.stdout.readuntil("r-a#"), 5)
        dev = ssh_lab.net.devices["r-a"]
        ssh_lab.loop.call(lambda: setattr(dev, "boot_time", dev.boot_time + 1.0))
        start = time.monotonic()
        with contextlib.suppress(asyncssh.ConnectionLost):  # the TCP session dies, as on a reload
            while await asyncio.wait_for(proc.stdout.read(1024), 5):
                pass
        return time.monotonic() - start

    assert asyncio.run(check()) < 3.0
    assert ssh_lab.face.stats.sessions_open == 0


# ---- the other CLIs through netmiko's generic drivers -----------------------------------------


def test_codec_via_netmiko_terminal_server(ssh_lab: SshLab) -> None:
    with ssh_lab.netmiko("c-a", "terminal_server") as conn:
        end = r"\*\* end"
        output = conn.send_command('xCommand Dial Number: "c-b" CallRate: 768', expect_string=end)
        assert "*r DialResult (status=OK):" in output
        assert "CallId: 1" in output
        status = conn.send_command("xStatus Call 1 Status", expect_string=end)
        assert "*s Call 1 Status: Connected" in status
        timing = conn.send_command_timing("xStatus SIP Registration 1 Status")
        assert "*s SIP Registration 1 Status: Registered" in timing
    calls = ssh_lab.loop.call(lambda: [len(ssh_lab.net.devices[n].calls) for n in ("c-a", "c-b")])
    assert calls == [1, 1]


def test_mcu_and_modem_via_netmiko_generic(ssh_lab: SshLab) -> None:
    with ssh_lab.netmiko("mcu-hub", "generic") as conn:
        assert conn.find_prompt() == "mcu-hub>"
        assert conn.send_command("conference create weekly") == 'Conference "weekly" created'
        conn.send_command("participant add weekly c-b")
        listing = conn.send_command("participant list weekly")
        assert "c-b                              connected     2048" in listing
        assert conn.send_command("show conferences").endswith("weekly                           1")
    with ssh_lab.netmiko("t-a", "generic") as conn:
        assert "MODCOD:          13 (8PSK 2/3)" in conn.send_command("show status")
        assert conn.send_command("tx off") == "Transmitter OFF"
        assert conn.send_command("bogus") == "ERROR: unknown command: bogus"
    assert ssh_lab.loop.call(lambda: ssh_lab.net.devices["t-a"].tx_enabled) is False


# ---- capacity ---------------------------------------------------------------------------------


def test_measure_ssh_sessions(ssh_lab: SshLab) -> None:
    targets = [
        SshTarget(ssh_lab.net.devices[n].mgmt_address, ssh_lab.port, USER, PASSWORD)
        for n in ("r-a", "r-hub")
    ]
    assert "REDACTED" in repr(targets[0]) and PASSWORD not in repr(targets[0])
    bench = asyncio.run(measure_ssh_sessions(targets, 12, connect_concurrency=6))
    assert (bench.opened, bench.served) == (12, 12), bench.errors
    assert bench.command_p50_s > 0


class _BrokenCli:
    """A CLI with a bug: the transport must keep the session and say so."""

    def __init__(self, net: LabNetwork, device: Any, context: Any) -> None:
        self.prompt = f"{device.name}>"

    def start(self) -> Reply:
        return Reply("", self.prompt)

    def handle(self, line: str) -> Reply:
        if line == "boom":
            raise RuntimeError("bug")
        return Reply(f"you said {line}\n", self.prompt)

    def interrupt(self, char: str) -> Reply:
        return Reply("", self.prompt)


def test_a_cli_bug_is_reported_not_fatal(ssh_lab: SshLab) -> None:
    register_cli("test_broken_cli", _BrokenCli)
    ssh_lab.loop.call(lambda: setattr(ssh_lab.net.devices["c-b"], "platform", "test_broken_cli"))

    async def check() -> str:
        conn = await ssh_lab.connect("c-b")
        proc = await conn.create_process(term_type="vt100")
        await asyncio.wait_for(proc.stdout.readuntil("c-b>"), 5)
        proc.stdin.write("boom\r\nhello\r\n")
        text = await asyncio.wait_for(proc.stdout.readuntil("you said hello\r\nc-b>"), 5)
        conn.close()
        return text

    text = asyncio.run(check())
    assert "% Internal error in the lab CLI\r\nc-b>" in text
    assert ssh_lab.face.stats.cli_errors == 1
