"""SSH scheduling and failure handling without SSH: timeouts, lost sessions, locks, the pool.

The device on the other side is the lab's own IOS CLI logic (``lab.ssh.ios.IosSession``: the
same text the SSH face serves), wrapped in a ``CliSession`` that can be told to hang or drop on
a given line. That makes the failures that are hard to provoke over a real socket exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from netmiko.exceptions import ReadTimeout

from controllers.drivers import SshRunner, SshSettings, Timeouts, codec_for, mcu_for, router_for
from controllers.drivers.base import DeviceTarget
from controllers.drivers.known_hosts import KnownHostsStore
from controllers.drivers.transport import (
    ConfigStep,
    ConfigTranscript,
    ConnectRequest,
    NetmikoSession,
    SessionHandle,
)
from controllers.errors import (
    DeviceUnreachable,
    DriverTimeout,
    InvalidParameter,
    NoDriver,
)
from inventory.errors import SecretUnavailable
from inventory.generator import generate
from inventory.secrets import SecretRef
from lab.build import build_network
from lab.ssh.cli import CliContext, CliMemory
from lab.ssh.ios import IosSession
from lab.state import LabNetwork

PASSWORD = "fake-lab-password-9931"
ROUTER, OTHER_ROUTER = "bj-tongzhou-r1", "bj-changping-r1"


# ---- a CliSession on the lab's pure IOS CLI ---------------------------------------------------


class FakeClient:
    """What SessionHandle closes on abort (a paramiko SSHClient in real life)."""

    def __init__(self, session: LabCli) -> None:
        self.session = session

    def close(self) -> None:
        self.session.aborted_at = self.session.aborted_at or time.monotonic()
        self.session.gone.set()

    def get_transport(self) -> None:
        return None


@dataclass
class Behaviour:
    """What the next sessions do: hang or drop on a line, hang at login, be slow."""

    hang_on: str | None = None  # block on this configuration line until aborted
    drop_on: str | None = None  # lose the session on this configuration line
    hang_at_login: bool = False
    refuse: bool = False  # DeviceUnreachable at login
    delay_s: float = 0.0  # per command


class LabCli:
    def __init__(self, net: LabNetwork, request: ConnectRequest, behaviour: Behaviour) -> None:
        self.net = net
        self.request = request
        self.behaviour = behaviour
        self.ios = IosSession(net, net.devices[request.device], CliContext(CliMemory()))
        self.gone = threading.Event()
        self.aborted_at: float | None = None
        self.closed = False
        self.lines: list[str] = []

    @property
    def device(self) -> str:
        return self.request.device

    def _line(self, line: str) -> str:
        if self.gone.is_set():
            raise DeviceUnreachable(self.device, "the SSH session was lost")
        if self.behaviour.delay_s:
            time.sleep(self.behaviour.delay_s)
        self.lines.append(line)
        return self.ios.handle(line).output

    def send(self, command: str, *, expect: str | None = None) -> str:
        return self._line(command).rstrip("\n")

    def configure(self, commands: Sequence[str], error: Any) -> ConfigTranscript:
        self._line("configure terminal")
        steps: list[ConfigStep] = []
        for command in commands:
            if command == self.behaviour.hang_on:
                self.gone.wait(30)
                raise DeviceUnreachable(self.device, "the SSH session was lost")
            if command == self.behaviour.drop_on:
                self.gone.set()
                raise DeviceUnreachable(self.device, "the SSH session was lost")
            step = ConfigStep(command, self._line(command).strip("\n"))
            steps.append(step)
            if error.search(step.response):
                self._line("end")
                return ConfigTranscript(tuple(steps), step, step.response)
        self._line("end")
        return ConfigTranscript(tuple(steps))

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeDevices:
    """An opener for ``SshRunner``: hands out ``LabCli`` sessions and remembers them."""

    net: LabNetwork
    plan: list[Behaviour] = field(default_factory=list)  # one per session, then defaults
    sessions: list[LabCli] = field(default_factory=list)
    open_now: dict[str, int] = field(default_factory=dict)
    most_open: dict[str, int] = field(default_factory=dict)
    open_total: int = 0
    most_total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: ConnectRequest, handle: SessionHandle) -> LabCli:
        with self.lock:
            behaviour = self.plan.pop(0) if self.plan else Behaviour()
        assert request.login.password == PASSWORD
        session = LabCli(self.net, request, behaviour)
        handle.attach_client(FakeClient(session))
        if behaviour.refuse:
            raise DeviceUnreachable(request.device, "no SSH session to it: connection refused")
        if behaviour.hang_at_login:
            session.gone.wait(30)
            raise DeviceUnreachable(request.device, "the login was cancelled")
        with self.lock:
            self.sessions.append(session)
            n = self.open_now[request.device] = self.open_now.get(request.device, 0) + 1
            self.most_open[request.device] = max(self.most_open.get(request.device, 0), n)
            self.open_total += 1
            self.most_total = max(self.most_total, self.open_total)
        original_close = session.close

        def close() -> None:
            with self.lock:
                self.open_now[request.device] -= 1
                self.open_total -= 1
            original_close()

        session.close = close  # type: ignore[method-assign]
        return session


@pytest.fixture
def net() -> LabNetwork:
    return build_network(generate(provinces=1, counties=3, seed=0), time.monotonic, 0)


@pytest.fixture
def devices(net: LabNetwork, monkeypatch: pytest.MonkeyPatch) -> FakeDevices:
    monkeypatch.setenv("TIANDI_SSH_PASSWORD", PASSWORD)
    return FakeDevices(net)


def target(name: str) -> DeviceTarget:
    doc = generate(provinces=1, counties=3, seed=0)
    return DeviceTarget.from_document(doc, name)


def hops(net: LabNetwork, router: str) -> list[tuple[str, int]]:
    return [(r.next_hop, r.distance) for r in net.devices[router].static_routes]


def runner_for(
    tmp_path: Path, opener: Callable[[ConnectRequest, SessionHandle], Any], **settings: Any
) -> SshRunner:
    base: dict[str, Any] = {"workers": 4, "operation_timeout_s": 5.0}
    base.update(settings)
    return SshRunner(KnownHostsStore(tmp_path / "known_hosts"), SshSettings(**base), opener=opener)


def probe(net: LabNetwork, link: str) -> str:
    return net.links[link].probe_address


# ---- timeouts and lost sessions -------------------------------------------------------------


def test_a_change_that_times_out_is_closed_then_rolled_back(
    devices: FakeDevices, net: LabNetwork, tmp_path: Path
) -> None:
    primary, backup = probe(net, "bj-tongzhou-primary"), probe(net, "bj-tongzhou-backup")
    devices.plan = [Behaviour(hang_on=f"no ip route 0.0.0.0 0.0.0.0 {primary}")]

    async def body() -> tuple[DriverTimeout, float]:
        runner = runner_for(tmp_path, devices, operation_timeout_s=1.0)
        router = router_for(target(ROUTER), runner)
        try:
            await router.move_to_link("bj-tongzhou-backup")
        except DriverTimeout as err:
            return err, time.monotonic()
        finally:
            await runner.close()
        raise AssertionError("no timeout")

    err, raised_at = asyncio.run(body())
    first, second = devices.sessions
    assert first.aborted_at is not None and first.aborted_at <= raised_at  # closed, then raised
    assert err.operation == f"move the default route to {backup}" and err.timeout_s == 1.0
    assert err.change is not None
    assert err.change.commands == (
        f"ip route 0.0.0.0 0.0.0.0 {backup} 1",
        f"no ip route 0.0.0.0 0.0.0.0 {primary}",
    )
    # The first line went through before the hang: the rollback (new session) takes it back.
    assert err.rollback is not None and err.rollback.commands == (
        f"no ip route 0.0.0.0 0.0.0.0 {backup}",
    )
    assert err.rollback.verification is not None and err.rollback.verification.ok
    assert second.closed and "rolled back" in str(err)
    assert hops(net, ROUTER) == [(primary, 1)]


def test_a_hung_login_times_out_and_changes_nothing(
    devices: FakeDevices, net: LabNetwork, tmp_path: Path
) -> None:
    devices.plan = [Behaviour(hang_at_login=True)]

    async def body() -> DriverTimeout:
        runner = runner_for(tmp_path, devices, operation_timeout_s=0.5)
        try:
            with pytest.raises(DriverTimeout) as caught:
                await router_for(target(ROUTER), runner).move_to_link("bj-tongzhou-backup")
        finally:
            await runner.close()
        return caught.value

    err = asyncio.run(body())
    assert err.change is None and err.rollback is None
    assert devices.sessions == []  # no session got as far as a prompt, no rollback tried
    assert hops(net, ROUTER) == [(probe(net, "bj-tongzhou-primary"), 1)]


def test_a_session_lost_mid_change_is_rolled_back(
    devices: FakeDevices, net: LabNetwork, tmp_path: Path
) -> None:
    primary, backup = probe(net, "bj-tongzhou-primary"), probe(net, "bj-tongzhou-backup")
    devices.plan = [Behaviour(drop_on=f"no ip route 0.0.0.0 0.0.0.0 {primary}")]

    async def body() -> DeviceUnreachable:
        runner = runner_for(tmp_path, devices)
        try:
            with pytest.raises(DeviceUnreachable) as caught:
                await router_for(target(ROUTER), runner).move_to_link("bj-tongzhou-backup")
        finally:
            await runner.close()
        return caught.value

    err = asyncio.run(body())
    assert err.rollback is not None and err.rollback.verification is not None
    assert err.rollback.verification.ok
    assert hops(net, ROUTER) == [(primary, 1)]
    assert backup not in str(hops(net, ROUTER))


def test_when_the_rollback_fails_too_the_error_says_so(
    devices: FakeDevices, net: LabNetwork, tmp_path: Path
) -> None:
    primary, backup = probe(net, "bj-tongzhou-primary"), probe(net, "bj-tongzhou-backup")
    devices.plan = [
        Behaviour(drop_on=f"no ip route 0.0.0.0 0.0.0.0 {primary}"),
        Behaviour(refuse=True),
    ]

    async def body() -> DeviceUnreachable:
        runner = runner_for(tmp_path, devices)
        try:
            with pytest.raises(DeviceUnreachable) as caught:
                await router_for(target(ROUTER), runner).move_to_link("bj-tongzhou-backup")
        finally:
            await runner.close()
        return caught.value

    err = asyncio.run(body())
    assert err.change is not None and err.rollback is None
    assert "NOT rolled back: read the device's state" in str(err)
    assert hops(net, ROUTER) == [(primary, 1), (backup, 1)]  # half-applied, and said so


def test_netmiko_read_timeout_becomes_driver_timeout_after_closing() -> None:
    """The transport's own mapping: netmiko's ReadTimeout on a live session."""

    class Transport:
        def is_active(self) -> bool:
            return True

    class Client:
        closed = False

        def close(self) -> None:
            self.closed = True

        def get_transport(self) -> Transport:
            return Transport()

    class Conn:
        disconnected = False

        def send_command(self, *args: Any, **kwargs: Any) -> str:
            raise ReadTimeout("Pattern not detected")

        def disconnect(self) -> None:
            self.disconnected = True

    handle, client, conn = SessionHandle(), Client(), Conn()
    handle.attach_client(client)
    session = NetmikoSession("r1", conn, handle, Timeouts(command_s=2.5))  # type: ignore[arg-type]
    with pytest.raises(DriverTimeout) as caught:
        session.send("show ip route")
    assert caught.value.timeout_s == 2.5 and "'show ip route'" in str(caught.value)
    assert client.closed and conn.disconnected
    with pytest.raises(DeviceUnreachable, match="the session is closed"):
        session.send("show ip route")


# ---- locks and the pool ---------------------------------------------------------------------


def test_changes_serialise_per_device_and_run_in_parallel_across_devices(
    devices: FakeDevices, net: LabNetwork, tmp_path: Path
) -> None:
    devices.plan = [Behaviour(delay_s=0.02) for _ in range(4)]

    async def body() -> float:
        runner = runner_for(tmp_path, devices)
        one = router_for(target(ROUTER), runner)
        two = router_for(target(OTHER_ROUTER), runner)
        t0 = time.monotonic()
        await asyncio.gather(
            one.move_to_link("bj-tongzhou-backup"),
            one.move_to_link("bj-tongzhou-satellite"),
            one.move_to_link("bj-tongzhou-primary"),
            two.move_to_link("bj-changping-backup"),
        )
        await runner.close()
        return time.monotonic() - t0

    asyncio.run(body())
    assert devices.most_open[ROUTER] == 1  # one change at a time on a device
    assert hops(net, OTHER_ROUTER) == [(probe(net, "bj-changping-backup"), 1)]
    assert len(hops(net, ROUTER)) == 1


def test_the_pool_is_bounded_and_queueing_does_not_eat_deadlines(
    devices: FakeDevices, tmp_path: Path
) -> None:
    devices.plan = [Behaviour(delay_s=0.15) for _ in range(6)]
    names = [f"bj-{c}-r1" for c in ("tongzhou", "changping", "pinggu")] + [
        "beijing-r1", "beijing-r2", "ministry-core1",
    ]  # fmt: skip

    async def body() -> float:
        runner = runner_for(tmp_path, devices, workers=2, operation_timeout_s=0.6)
        t0 = time.monotonic()
        await asyncio.gather(*(router_for(target(n), runner).default_route() for n in names))
        await runner.close()
        return time.monotonic() - t0

    elapsed = asyncio.run(body())
    # Each read is two commands (0.3 s): six reads on two workers take three rounds (~0.9 s),
    # longer than the 0.6 s deadline — which still held for each, because it starts when the
    # work starts, not when it is queued.
    assert elapsed >= 0.85
    assert len(devices.sessions) == 6
    assert devices.most_total == 2


def test_hostile_parameters_are_refused_before_any_session(tmp_path: Path) -> None:
    def opener(request: ConnectRequest, handle: SessionHandle) -> Any:
        raise AssertionError("a session was opened")

    async def body() -> None:
        runner = runner_for(tmp_path, opener)
        router = router_for(target(ROUTER), runner)
        for bad in ("127.64.0.8\nreload", "end\nreload", "127.64.0.8; reload", "٣.٣.٣.٣", ""):
            with pytest.raises(InvalidParameter):
                await router.set_default_route(bad)
        for distance in (0, 256, True):
            with pytest.raises(InvalidParameter):
                await router.set_default_route("127.64.0.8", distance)
        with pytest.raises(InvalidParameter, match="not the next hop of a link"):
            await router.set_default_route("10.20.30.40")
        with pytest.raises(InvalidParameter, match="is not a link of this router"):
            await router.move_to_link("bj-changping-backup")
        codec = codec_for(target("bj-tongzhou-ep1"), runner)
        with pytest.raises(InvalidParameter):
            await codec.dial('x" CallRate: 64\nxCommand SystemUnit Boot', 768)
        with pytest.raises(InvalidParameter):
            await codec.dial("beijing-ep1", 99_999)
        with pytest.raises(InvalidParameter):
            await codec.hang_up(-1)
        mcu = mcu_for(target("beijing-mcu1"), runner)
        with pytest.raises(InvalidParameter):
            await mcu.create_conference("weekly\nconference end board")
        with pytest.raises(InvalidParameter):
            await mcu.add_participant("weekly", "ep; tx off")
        with pytest.raises(NoDriver):
            mcu_for(target(ROUTER), runner)
        await runner.close()

    asyncio.run(body())


# ---- credentials ------------------------------------------------------------------------------


def test_credentials_are_read_at_login_and_never_logged(
    devices: FakeDevices, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        runner = runner_for(tmp_path, devices)
        await router_for(target(ROUTER), runner).move_to_link("bj-tongzhou-backup")
        await runner.close()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(body())
    request = devices.sessions[0].request
    assert request.login.password == PASSWORD
    assert PASSWORD not in repr(request) and "REDACTED" in repr(request.login)
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


def test_a_missing_secret_fails_before_connecting(
    devices: FakeDevices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIANDI_SSH_PASSWORD")

    async def body() -> None:
        runner = runner_for(tmp_path, devices)
        try:
            with pytest.raises(SecretUnavailable, match="TIANDI_SSH_PASSWORD is not set"):
                await router_for(target(ROUTER), runner).default_route()
        finally:
            await runner.close()

    asyncio.run(body())
    assert devices.sessions == []


def test_secret_refs_from_files(devices: FakeDevices, tmp_path: Path) -> None:
    secret = tmp_path / "ssh-password"
    secret.write_text(PASSWORD + "\n")
    t = dataclasses.replace(target(ROUTER), password=SecretRef("file", str(secret)))

    async def body() -> None:
        runner = runner_for(tmp_path, devices)
        await router_for(t, runner).default_route()
        await runner.close()

    asyncio.run(body())
    assert devices.sessions[0].request.login.password == PASSWORD
