"""A whole small lab, started like ``tiandi lab up``: faces, control API, clean stop.

Real clients only: net-snmp's ``snmpget`` (v3 authPriv, as the generated inventory asks),
netmiko ``cisco_ios``, a UDP echo probe, and HTTP against the control API. Ports are moved by a
random offset so the tests run beside other labs on this host.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from netmiko import ConnectHandler

from inventory.document import InventoryDoc
from inventory.generator import generate
from lab.build import lab_secret_defaults
from lab.runner import Lab, LabConfig, describe

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_OPER = "1.3.6.1.2.1.2.2.1.8.{}"
IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.10.{}"

needs_snmpget = pytest.mark.skipif(
    shutil.which("snmpget") is None, reason="net-snmp tools (apt-get install snmp) not installed"
)


@pytest.fixture
def doc(monkeypatch: pytest.MonkeyPatch) -> InventoryDoc:
    """The generated network with 5 counties under Beijing; lab secrets in the environment."""
    d = generate(provinces=1, counties=5, seed=0)
    for name, value in lab_secret_defaults(d).items():
        monkeypatch.setenv(name, value)
    return d


@pytest.fixture
def offset() -> int:
    return random.Random().randrange(20_000, 60_000, 10)


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


async def snmpget(address: str, port: int, *oids: str) -> dict[str, str]:
    cmd = [
        "snmpget",
        "-v3",
        "-l",
        "authPriv",
        "-u",
        "tiandi-noc",
        "-a",
        "SHA",
        "-A",
        os.environ["TIANDI_SNMP_AUTH_KEY"],
        "-x",
        "AES",
        "-X",
        os.environ["TIANDI_SNMP_PRIV_KEY"],
        "-On",
        "-Oq",
        "-Ot",
        "-t",
        "2",
        "-r",
        "1",
        f"{address}:{port}",
        *oids,
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "MIBS": ""}
    )
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    values = {}
    for line in text.splitlines():
        oid, _, value = line.partition(" ")
        values[oid.lstrip(".")] = value.strip()
    return values


async def probe(address: str, port: int, timeout: float = 1.5) -> bool:
    """One UDP echo; True if it came back."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.connect((address, port))
        await loop.sock_sendall(sock, b"tiandi-probe")
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 2048), timeout)
        except TimeoutError:
            return False
        return data == b"tiandi-probe"
    finally:
        sock.close()


def test_a_small_lab_serves_reflects_faults_and_stops_cleanly(
    doc: InventoryDoc, offset: int
) -> None:
    async def scenario() -> None:
        sockets = open_sockets()
        config = LabConfig(doc, control=("127.0.0.1", 0), port_offset=offset)
        lab = await Lab.start(config)
        try:
            assert set(lab.faces) == {"snmp", "ssh", "probes"}
            text = "\n".join(describe(lab))
            assert "bj-fengtai-r1" in text and lab.control_url in text
            router = lab.net.devices["bj-fengtai-r1"]
            primary = router.interface_by_name("GigabitEthernet0/0/0")
            assert primary is not None
            oper = IF_OPER.format(primary.index)
            link = lab.net.links["bj-fengtai-primary"]
            backup = lab.net.links["bj-fengtai-backup"]
            port = router.snmp_port
            assert port == 161 + offset

            before = await snmpget(router.mgmt_address, port, SYS_UPTIME, oper)
            assert before[oper] == "1"
            assert await probe(link.probe_address, 7 + offset)

            async with httpx.AsyncClient(base_url=lab.control_url, timeout=10) as api:
                cut = await api.post("/faults/cut_link", json={"link": link.name})
                assert cut.status_code == 201, cut.text
                after = await snmpget(router.mgmt_address, port, oper)
                assert after[oper] == "2"
                assert not await probe(link.probe_address, 7 + offset, timeout=1.0)
                assert await probe(backup.probe_address, 7 + offset)

                reboot = await api.post("/faults/reboot", json={"device": router.name})
                assert reboot.status_code == 201
                rebooted = await snmpget(router.mgmt_address, port, SYS_UPTIME)
                assert int(rebooted[SYS_UPTIME]) < 500  # hundredths: just booted

                fault_id = cut.json()["fault"]["id"]
                assert (await api.delete(f"/faults/{fault_id}")).status_code == 200
                again = await snmpget(router.mgmt_address, port, oper)
                assert again[oper] == "1"
        finally:
            await lab.stop()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []
        assert open_sockets() == sockets

    if shutil.which("snmpget") is None:
        pytest.skip("net-snmp tools (apt-get install snmp) not installed")
    asyncio.run(scenario())


def test_netmiko_route_change_moves_the_counters_to_the_backup(
    doc: InventoryDoc, offset: int
) -> None:
    async def scenario() -> None:
        lab = await Lab.start(
            LabConfig(doc, control=None, port_offset=offset, faces=("ssh",), traffic_period_s=None)
        )
        try:
            router = lab.net.devices["bj-pinggu-r1"]
            primary = lab.net.links["bj-pinggu-primary"]
            backup = lab.net.links["bj-pinggu-backup"]
            p_if = router.interface_by_name(primary.interface)
            b_if = router.interface_by_name(backup.interface)
            assert p_if is not None and b_if is not None
            demand = lab.net.sites["bj-pinggu"].background_kbps * 1000.0
            assert p_if.out_rate_bps == pytest.approx(demand)

            def failover() -> str:
                with ConnectHandler(
                    device_type="cisco_ios",
                    host=router.mgmt_address,
                    port=router.ssh_port,
                    username="tiandi",
                    password=os.environ["TIANDI_SSH_PASSWORD"],
                    timeout=20,
                ) as conn:
                    conn.send_config_set(
                        [
                            f"ip route 0.0.0.0 0.0.0.0 {backup.probe_address} 1",
                            f"no ip route 0.0.0.0 0.0.0.0 {primary.probe_address}",
                        ]
                    )
                    out: str = conn.send_command("show ip route")
                    return out

            routes = await asyncio.to_thread(failover)
            assert backup.probe_address in routes
            assert b_if.out_rate_bps == pytest.approx(min(demand, backup.capacity_kbps * 1000.0))
            assert p_if.out_rate_bps < demand
        finally:
            await lab.stop()

    asyncio.run(scenario())


@pytest.mark.slow
@needs_snmpget
def test_a_counter_read_10s_apart_grows_by_the_model_rate(doc: InventoryDoc, offset: int) -> None:
    """Real clock, real agent: ifHCOutOctets over sysUpTime equals the traffic model's rate."""

    async def scenario() -> None:
        lab = await Lab.start(
            LabConfig(doc, control=None, port_offset=offset, faces=("snmp",), traffic_period_s=None)
        )
        try:
            router = lab.net.devices["bj-tongzhou-r1"]
            iface = router.interface_by_name("GigabitEthernet0/0/0")
            assert iface is not None
            out_oid = IF_HC_OUT.format(iface.index)
            first = await snmpget(router.mgmt_address, router.snmp_port, SYS_UPTIME, out_oid)
            await asyncio.sleep(10)
            second = await snmpget(router.mgmt_address, router.snmp_port, SYS_UPTIME, out_oid)
            seconds = (int(second[SYS_UPTIME]) - int(first[SYS_UPTIME])) / 100.0
            octets = int(second[out_oid]) - int(first[out_oid])
            assert seconds == pytest.approx(10, abs=0.5)
            expected_bps = lab.net.sites["bj-tongzhou"].background_kbps * 1000.0
            assert octets * 8 / seconds == pytest.approx(expected_bps, rel=0.01)
        finally:
            await lab.stop()

    asyncio.run(scenario())


# ---- the CLI, as a script uses it ---------------------------------------------------------


@pytest.fixture
def tiandi_cmd() -> Iterator[list[str]]:
    exe = Path(sys.executable).with_name("tiandi")
    yield (
        [str(exe)] if exe.exists() else [sys.executable, "-c", "from tiandi.cli import app; app()"]
    )


def test_cli_up_detached_fault_and_down(
    doc: InventoryDoc, offset: int, tmp_path: Path, tiandi_cmd: list[str]
) -> None:
    from typer.testing import CliRunner

    from tiandi.cli_lab import app as lab_app

    pid_file = tmp_path / "lab.pid"
    control_port = offset + 9
    url = f"http://127.0.0.1:{control_port}"

    def tiandi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*tiandi_cmd, "lab", *args], capture_output=True, text=True, timeout=90, check=False
        )

    def lab(*args: str) -> tuple[int, str, str]:  # in-process: the fault commands are clients
        result = CliRunner().invoke(lab_app, [*args, "--control", url])
        return result.exit_code, result.stdout, result.stderr

    up = tiandi(
        "up",
        "--sites",
        "5",
        "--provinces",
        "1",
        "--port-offset",
        str(offset),
        "--control",
        f"127.0.0.1:{control_port}",
        "--faces",
        "snmp,probes",
        "--detach",
        "--pid-file",
        str(pid_file),
    )
    try:
        assert up.returncode == 0, up.stderr
        assert "lab up: 31 devices" in up.stdout and url in up.stdout
        os.kill(int(pid_file.read_text().strip()), 0)  # alive, in the background

        code, out, err = lab("fault", "cut", "bj-fengtai-primary", "--for", "5m")
        assert code == 0 and "cut link bj-fengtai-primary" in out, err
        code, out, _ = lab("fault", "rain-fade", "beijing", "--depth", "6", "--duration", "2m")
        assert code == 0 and "rain fade over beijing" in out
        code, out, _ = lab("fault", "list")
        assert re.search(r"#1\s+cut_link .*\(\d+ s left\)", out), out
        code, _, err = lab("fault", "cut", "no-such-link")
        assert code == 1 and "no link named 'no-such-link'" in err
        code, out, _ = lab("fault", "clear", "all")
        assert "cleared 2 fault(s)" in out
    finally:
        down = tiandi("down", "--pid-file", str(pid_file))
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    assert not pid_file.exists()
    code, _, err = lab("status")
    assert code == 2 and "is `tiandi lab up` running?" in err


def test_cli_up_foreground_stops_on_sigterm(
    doc: InventoryDoc, offset: int, tiandi_cmd: list[str]
) -> None:
    proc = subprocess.Popen(
        [
            *tiandi_cmd,
            "lab",
            "up",
            "--sites",
            "5",
            "--provinces",
            "1",
            "--port-offset",
            str(offset),
            "--no-control",
            "--faces",
            "probes",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if not line or "Ctrl-C" in line:
            break
    assert any("lab up: 31 devices" in ln for ln in lines), "".join(lines)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "lab stopped" in out
    assert "WARNING: lab default secrets" not in err  # the fixture already set them


def test_cli_defaults_match_the_lab() -> None:
    from lab import control, runner
    from tiandi import cli_lab

    assert cli_lab.FACES == runner.FACES
    assert cli_lab.DEFAULT_CONTROL_URL == control.DEFAULT_CONTROL_URL
