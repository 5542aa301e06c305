"""Device drivers end to end against the lab's SSH face (real asyncssh servers, real netmiko).

The lab runs on its own event loop in a thread (as ``tiandi lab up`` does); each test drives the
drivers from its own ``asyncio.run`` with a fresh ``SshRunner``, so the two sides only meet on
sockets. Devices answer on their ``127.1.0.x`` addresses on high ports (a random offset).

This module also records the golden files the pure parser tests read (``tests/data/cli``):
``test_golden_files_match_the_lab`` captures the lab's outputs through the drivers' transport
and compares them with the stored files; re-record with either of::

    TIANDI_UPDATE_GOLDEN=1 .venv/bin/pytest tests/controllers/test_driver_lab.py -k golden
    .venv/bin/python tests/controllers/test_driver_lab.py --update-golden
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from controllers.drivers import (
    HostKeyPolicy,
    KnownHostsStore,
    SshRunner,
    SshSettings,
    Timeouts,
    codec_for,
    host_entry,
    mcu_for,
    modem_for,
    router_for,
)
from controllers.drivers.base import DeviceTarget
from controllers.drivers.cisco_ios import IOS_ERROR
from controllers.drivers.known_hosts import HostKey
from controllers.drivers.transport import CliSession
from controllers.errors import (
    AuthenticationFailed,
    CommandRejected,
    DeviceUnreachable,
    DriverTimeout,
    HostKeyMismatch,
    HostKeyUnknown,
    InvalidParameter,
    VerificationFailed,
)
from inventory.document import CredentialProfileDoc, InventoryDoc
from inventory.enums import CredentialKind
from inventory.generator import generate
from inventory.secrets import SecretRef
from lab.build import lab_secret_defaults
from lab.runner import Lab, LabConfig
from lab.ssh import SshFace, keys
from lab.state import StaticRoute
from lab.traffic import active_default_route, reroute_site

T = TypeVar("T")
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "cli"
UPDATE_ENV = "TIANDI_UPDATE_GOLDEN"
FIXED_NOW = 1_800_000_000.0  # the golden lab's clock: no output moves between runs

ROUTER = "bj-tongzhou-r1"
PRIMARY, BACKUP, SATELLITE = "bj-tongzhou-primary", "bj-tongzhou-backup", "bj-tongzhou-satellite"
CODEC, OTHER_CODEC, THIRD_CODEC = "bj-tongzhou-ep1", "beijing-ep1", "beijing-ep2"
MCU, MODEM = "beijing-mcu1", "bj-tongzhou-sat1"


# ---- a lab in a thread ------------------------------------------------------------------------


class LoopThread:
    """An event loop in a thread: the lab's home while the tests drive clients."""

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


@dataclasses.dataclass
class RunningLab:
    doc: InventoryDoc
    lab: Lab
    loop: LoopThread
    initial: dict[str, tuple[list[StaticRoute], list[StaticRoute]]] = dataclasses.field(
        default_factory=dict
    )

    @property
    def face(self) -> SshFace:
        face = self.lab.faces["ssh"]
        assert isinstance(face, SshFace)
        return face

    def target(self, name: str) -> DeviceTarget:
        port = self.lab.net.devices[name].ssh_port
        return dataclasses.replace(DeviceTarget.from_document(self.doc, name), port=port)

    def known_hosts(self, path: Path) -> KnownHostsStore:
        path.write_text(self.face.known_hosts())
        return KnownHostsStore(path)

    def fault(self, kind: str, **params: str) -> None:
        self.loop.call(lambda: self.lab.book.apply(kind, params))

    def routes(self, router: str) -> list[tuple[str, int]]:
        dev = self.lab.net.devices[router]
        return self.loop.call(lambda: [(r.next_hop, r.distance) for r in dev.static_routes])

    def carrying_link(self, router: str) -> str | None:
        def find() -> str | None:
            active = active_default_route(self.lab.net, self.lab.net.devices[router])
            return None if active is None else active[1].name

        return self.loop.call(find)

    def hop(self, link: str) -> str:
        return self.lab.net.links[link].probe_address

    def snapshot(self) -> None:
        """Remember every router's routes (running and saved) as they are at start."""

        def take() -> dict[str, tuple[list[StaticRoute], list[StaticRoute]]]:
            return {
                name: (
                    [dataclasses.replace(r) for r in dev.static_routes],
                    [dataclasses.replace(r) for r in dev.saved_routes],
                )
                for name, dev in self.lab.net.devices.items()
                if dev.interfaces
            }

        self.initial = self.loop.call(take)

    def reset(self) -> None:
        """Every fault cleared; routers, codecs and MCUs as they were at start."""

        def restore() -> None:
            net = self.lab.net
            self.lab.book.clear_all()
            for name, dev in net.devices.items():
                if name in self.initial:
                    running, saved = self.initial[name]
                    dev.static_routes = [dataclasses.replace(r) for r in running]
                    dev.saved_routes = [dataclasses.replace(r) for r in saved]
                    for iface in dev.interfaces:
                        iface.admin_up = True
                dev.calls.clear()
                dev.conferences.clear()
                dev.tx_enabled = True
            for site in net.sites:
                reroute_site(net, site)

        self.loop.call(restore)


KEY_ROUTER = "bj-pinggu-r1"  # logs in with a key instead of a password
KEY_ENV = "TIANDI_TEST_SSH_CLIENT_KEY"


def _doc() -> InventoryDoc:
    doc = generate(provinces=1, counties=3, seed=0)
    for name, value in lab_secret_defaults(doc).items():
        os.environ.setdefault(name, value)
    client_key = keys.host_key("tiandi-test-client", "noc").export_private_key().decode()
    os.environ.setdefault(KEY_ENV, client_key)
    doc.credential_profiles.append(
        CredentialProfileDoc(
            name="ssh-key", kind=CredentialKind.SSH, username="tiandi",
            private_key=SecretRef("env", KEY_ENV),
        )
    )  # fmt: skip
    for site in doc.sites:
        for dev in site.devices:
            if dev.name == KEY_ROUTER:
                dev.ssh_profile = "ssh-key"
    return doc


def _start(clock: Callable[[], float] | None = None) -> RunningLab:
    doc = _doc()
    loop = LoopThread()
    offset = random.Random().randrange(20_000, 60_000, 10)
    config = LabConfig(
        doc=doc, faces=("ssh",), control=None, port_offset=offset, traffic_period_s=None
    )
    if clock is not None:
        config.clock = clock
    try:
        lab = loop.run(Lab.start(config))
    except BaseException:
        loop.stop()
        raise
    running = RunningLab(doc, lab, loop)
    running.snapshot()
    return running


def _stop(running: RunningLab) -> None:
    running.loop.run(running.lab.stop())
    running.loop.stop()


@pytest.fixture(scope="module")
def module_lab() -> Iterator[RunningLab]:
    running = _start()
    try:
        yield running
    finally:
        _stop(running)


@pytest.fixture
def lab(module_lab: RunningLab) -> Iterator[RunningLab]:
    module_lab.reset()
    yield module_lab
    module_lab.reset()


def fast_settings(**changes: Any) -> SshSettings:
    base = SshSettings(workers=8, timeouts=Timeouts(connect_s=3.0, command_s=5.0),
                       operation_timeout_s=20.0)  # fmt: skip
    return dataclasses.replace(base, **changes)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _with_runner(store: KnownHostsStore, body: Callable[[SshRunner], Any], **kw: Any) -> Any:
    runner = SshRunner(store, fast_settings(**kw))
    try:
        return await body(runner)
    finally:
        await runner.close()


# ---- routers --------------------------------------------------------------------------------


def test_read_the_default_route(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")

    async def body(runner: SshRunner) -> Any:
        return await router_for(lab.target(ROUTER), runner).default_route()

    route = run(_with_runner(store, body))
    assert str(route.gateway) == lab.hop(PRIMARY)
    assert route.link == PRIMARY
    assert route.distance == 1
    assert [str(r.next_hop) for r in route.configured] == [lab.hop(PRIMARY)]


def test_move_primary_to_backup_and_back(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")

    async def body(runner: SshRunner) -> Any:
        router = router_for(lab.target(ROUTER), runner)
        t0 = time.perf_counter()
        change = await router.move_to_link(BACKUP, distance=5)
        moved_s = time.perf_counter() - t0
        seen = await router.default_route()
        carrying = lab.carrying_link(ROUTER)
        routes = lab.routes(ROUTER)
        again = await router.move_to_link(BACKUP, distance=5)  # already there: nothing sent
        back = await router.rollback(change)
        return change, moved_s, seen, carrying, routes, again, back

    change, moved_s, seen, carrying, routes, again, back = run(_with_runner(store, body))
    backup, primary = lab.hop(BACKUP), lab.hop(PRIMARY)
    assert change.commands == (
        f"ip route 0.0.0.0 0.0.0.0 {backup} 5",  # make ...
        f"no ip route 0.0.0.0 0.0.0.0 {primary}",  # ... before break
    )
    assert change.verification is not None and change.verification.ok
    assert change.verification.reason == f"default route via {backup} (link {BACKUP})"
    assert moved_s < 3.0
    # Read back through SHOW IP ROUTE, and in the lab's own state.
    assert (str(seen.gateway), seen.distance, seen.link) == (backup, 5, BACKUP)
    assert carrying == BACKUP
    assert routes == [(backup, 5)]
    assert again.commands == () and again.verification is not None and again.verification.ok
    assert back.operation == "rollback"
    assert back.verification is not None and back.verification.ok
    assert lab.routes(ROUTER) == [(primary, 1)]
    assert lab.carrying_link(ROUTER) == PRIMARY
    audit = change.as_audit()
    assert audit["commands"] == list(change.commands) and audit["verified"] is True


def test_move_with_write_memory(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")

    async def body(runner: SshRunner) -> Any:
        return await router_for(lab.target(ROUTER), runner).move_to_link(SATELLITE, save=True)

    change = run(_with_runner(store, body))
    assert change.saved
    dev = lab.lab.net.devices[ROUTER]
    saved = lab.loop.call(lambda: [r.next_hop for r in dev.saved_routes])
    assert saved == [lab.hop(SATELLITE)]


def test_failed_verification_rolls_back(lab: RunningLab, tmp_path: Path) -> None:
    """Moving to a link that is cut: the route never shows up, so the move is undone."""
    store = lab.known_hosts(tmp_path / "known_hosts")
    lab.fault("cut_link", link=BACKUP)

    async def body(runner: SshRunner) -> Any:
        router = router_for(lab.target(ROUTER), runner)
        with pytest.raises(VerificationFailed) as caught:
            await router.move_to_link(BACKUP)
        return caught.value

    err = run(_with_runner(store, body))
    primary, backup = lab.hop(PRIMARY), lab.hop(BACKUP)
    assert "gateway of last resort is not set" in str(err)
    assert "rolled back" in str(err)
    assert err.change is not None and err.change.commands[0].endswith(f"{backup} 1")
    assert err.rollback is not None
    assert err.rollback.commands == (
        f"ip route 0.0.0.0 0.0.0.0 {primary} 1",
        f"no ip route 0.0.0.0 0.0.0.0 {backup}",
    )
    assert err.rollback.verification is not None and err.rollback.verification.ok
    assert lab.routes(ROUTER) == [(primary, 1)]
    assert lab.carrying_link(ROUTER) == PRIMARY


def test_rejected_line_is_rolled_back(lab: RunningLab, tmp_path: Path) -> None:
    """A next hop that is the router's own address: IOS refuses it, nothing changes."""
    store = lab.known_hosts(tmp_path / "known_hosts")
    own = lab.lab.net.devices[ROUTER].mgmt_address
    target = dataclasses.replace(lab.target(ROUTER), links=())  # allow any next hop

    async def body(runner: SshRunner) -> Any:
        with pytest.raises(CommandRejected) as caught:
            await router_for(target, runner).set_default_route(own)
        return caught.value

    err = run(_with_runner(store, body))
    assert err.command == f"ip route 0.0.0.0 0.0.0.0 {own} 1"
    assert err.error_text == "%Invalid next hop address (it's this router)"
    assert lab.routes(ROUTER) == [(lab.hop(PRIMARY), 1)]


def test_two_changes_on_one_router_serialise(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")

    async def body(runner: SshRunner) -> Any:
        router = router_for(lab.target(ROUTER), runner)
        return await asyncio.gather(router.move_to_link(BACKUP), router.move_to_link(SATELLITE))

    first, second = run(_with_runner(store, body))
    spans = sorted(
        (c.started_at.timestamp(), c.started_at.timestamp() + c.duration_s) for c in (first, second)
    )
    assert spans[0][1] <= spans[1][0], f"the two changes overlapped: {spans}"
    assert second.before == first.after  # the second saw the first one's result
    assert lab.routes(ROUTER) == [(lab.hop(SATELLITE), 1)]


def test_hostile_parameters_never_reach_the_lab(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")
    before = lab.face.stats.connections

    async def body(runner: SshRunner) -> None:
        router = router_for(lab.target(ROUTER), runner)
        codec = codec_for(lab.target(CODEC), runner)
        for hop in (f"{lab.hop(BACKUP)}\nreload", "end\nreload", "1.1.1.1; reload", "٣.٣.٣.٣"):
            with pytest.raises(InvalidParameter):
                await router.set_default_route(hop)
        with pytest.raises(InvalidParameter):
            await codec.dial('x" CallRate: 64\nxCommand SystemUnit Boot', 768)

    run(_with_runner(store, body))
    assert lab.face.stats.connections == before


# ---- other platforms ------------------------------------------------------------------------


def test_codec_mcu_and_modem(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")

    async def body(runner: SshRunner) -> Any:
        codec = codec_for(lab.target(CODEC), runner)
        dialled = await codec.dial(OTHER_CODEC, 768)
        calls = await codec.calls()
        with pytest.raises(CommandRejected) as refused:
            await codec.hang_up(dialled.call_id + 40)
        await codec.hang_up(dialled.call_id)
        after = await codec.calls()
        await codec.set_default_rate(1024)
        mcu = mcu_for(lab.target(MCU), runner)
        await mcu.create_conference("weekly")
        await mcu.add_participant("weekly", CODEC)
        members = await mcu.participants("weekly")
        ports = await mcu.ports()
        await mcu.end_conference("weekly")
        modem = modem_for(lab.target(MODEM), runner)
        await modem.set_transmitter(False)
        status = await modem.status()
        await modem.set_transmitter(True)
        return dialled, calls, refused.value, after, members, ports, status

    dialled, calls, refused, after, members, ports, status = run(_with_runner(store, body))
    assert dialled.commands == (f'xCommand Dial Number: "{OTHER_CODEC}" CallRate: 768',)
    assert [(c.call_id, c.status, c.rate_kbps) for c in calls] == [
        (dialled.call_id, "Connected", 768)
    ]
    assert refused.error_text == "No active call(s) found."
    assert after == ()
    assert lab.lab.net.devices[CODEC].default_call_rate_kbps == 1024
    assert [(m.name, m.connected) for m in members] == [(CODEC, True)]
    assert (ports.in_use, ports.conferences) == (1, 1)
    assert status.tx_on is False and status.name == MODEM


# ---- SSH failures ---------------------------------------------------------------------------


def test_wrong_password_is_authentication_failed(
    lab: RunningLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")
    monkeypatch.setenv("TIANDI_TEST_WRONG_SSH_PASSWORD", "not-the-password-0451")
    target = dataclasses.replace(
        lab.target(ROUTER), password=SecretRef("env", "TIANDI_TEST_WRONG_SSH_PASSWORD")
    )

    async def body(runner: SshRunner) -> Any:
        with pytest.raises(AuthenticationFailed) as caught:
            await router_for(target, runner).default_route()
        return caught.value

    err = run(_with_runner(store, body))
    assert "refused user 'tiandi'" in str(err)
    assert "not-the-password-0451" not in str(err)
    assert "not-the-password-0451" not in repr(target)


def test_public_key_login(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")
    target = lab.target(KEY_ROUTER)
    assert target.password is None and target.private_key is not None

    async def body(runner: SshRunner) -> Any:
        return await router_for(target, runner).default_route()

    assert run(_with_runner(store, body)).link == "bj-pinggu-primary"


def test_unknown_host_key_is_refused(lab: RunningLab, tmp_path: Path) -> None:
    store = KnownHostsStore(tmp_path / "empty_known_hosts")
    auth_before = lab.face.stats.sessions_total

    async def body(runner: SshRunner) -> Any:
        with pytest.raises(HostKeyUnknown) as caught:
            await router_for(lab.target(ROUTER), runner).default_route()
        return caught.value

    err = run(_with_runner(store, body))
    expected = HostKey.parse(lab.face.host_public_key(ROUTER)).fingerprint
    assert err.fingerprint == expected and expected in str(err)
    assert lab.face.stats.sessions_total == auth_before  # no login happened
    assert not store.path.exists()


def test_trust_on_first_use_records_loudly(
    lab: RunningLab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = KnownHostsStore(tmp_path / "tofu_known_hosts")
    target = lab.target(ROUTER)

    async def body(runner: SshRunner) -> Any:
        router = router_for(target, runner)
        first = await router.default_route()
        second = await router.default_route()
        return first, second

    with caplog.at_level(logging.WARNING, logger="controllers.drivers.session"):
        first, second = run(
            _with_runner(store, body, host_key_policy=HostKeyPolicy.TRUST_ON_FIRST_USE)
        )
    assert first.link == second.link == PRIMARY
    learned = [r for r in caplog.records if "TRUST-ON-FIRST-USE" in r.getMessage()]
    assert len(learned) == 1 and learned[0].levelno == logging.WARNING
    name = host_entry(target.host, target.port)
    assert store.lookup(name) == (HostKey.parse(lab.face.host_public_key(ROUTER)),)


def test_operator_trust_then_changed_key_is_refused(
    lab: RunningLab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = KnownHostsStore(tmp_path / "known_hosts")
    target = lab.target(ROUTER)
    name = host_entry(target.host, target.port)
    impostor = HostKey.parse(keys.public_key_text(keys.host_key("another-seed", ROUTER)))

    async def body(runner: SshRunner) -> Any:
        with caplog.at_level(logging.WARNING, logger="controllers.drivers.session"):
            trusted = await runner.trust(target)
        route = await router_for(target, runner).default_route()
        # The device is "replaced": the store holds another key now.
        store.add(name, impostor, replace=True)
        with pytest.raises(HostKeyMismatch) as caught:
            await router_for(target, runner).default_route()
        with pytest.raises(HostKeyMismatch):
            await runner.trust(target)  # a different key is never replaced silently
        await runner.trust(target, replace=True)  # the operator checked the fingerprint
        again = await router_for(target, runner).default_route()
        return trusted, route, caught.value, again

    trusted, route, err, again = run(_with_runner(store, body))
    assert trusted == HostKey.parse(lab.face.host_public_key(ROUTER))
    assert any("TRUSTED by operator action" in r.getMessage() for r in caplog.records)
    assert route.link == again.link == PRIMARY
    assert "CHANGED" in str(err) and "re-trust" in str(err)
    assert err.expected == impostor.fingerprint and err.fingerprint == trusted.fingerprint
    assert store.lookup(name) == (trusted,)


def test_dead_device_is_unreachable_within_the_timeout(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")
    lab.fault("device_down", device=ROUTER)

    async def body(runner: SshRunner) -> Any:
        t0 = time.perf_counter()
        with pytest.raises(DeviceUnreachable) as caught:
            await router_for(lab.target(ROUTER), runner).default_route()
        return caught.value, time.perf_counter() - t0

    err, elapsed = run(_with_runner(store, body))
    assert elapsed < fast_settings().timeouts.connect_s + 1.0
    assert "no SSH session to" in str(err)


def test_a_frozen_device_times_out_and_its_session_is_closed_first(
    lab: RunningLab, tmp_path: Path
) -> None:
    """The lab's loop stops answering mid-session: the deadline aborts the real netmiko
    session (the worker thread is freed at once, not after netmiko's 5 s read timeout)."""
    store = lab.known_hosts(tmp_path / "known_hosts")
    freeze_s = 2.5

    def job(cli: CliSession) -> str:
        cli.send("show ip route")
        lab.loop.loop.call_soon_threadsafe(time.sleep, freeze_s)  # the device hangs
        return cli.send("show running-config")

    async def body(runner: SshRunner) -> tuple[float, float]:
        t0 = time.perf_counter()
        with pytest.raises(DriverTimeout) as caught:
            await runner.run(lab.target(ROUTER), "cisco_ios", job, operation="read", timeout_s=1.0)
        raised = time.perf_counter() - t0
        assert "its SSH session was closed" in str(caught.value)
        t1 = time.perf_counter()
        await runner.close()  # waits for the worker thread: it must already be free
        return raised, time.perf_counter() - t1

    raised, drained = run(_with_runner(store, body))
    assert 1.0 <= raised < 1.5
    assert drained < 0.5


def test_nothing_listening_is_unreachable(lab: RunningLab, tmp_path: Path) -> None:
    store = lab.known_hosts(tmp_path / "known_hosts")
    target = dataclasses.replace(lab.target(ROUTER), port=1)  # nothing listens there

    async def body(runner: SshRunner) -> Any:
        with pytest.raises(DeviceUnreachable) as caught:
            await router_for(target, runner).default_route()
        return caught.value

    assert "no SSH session to" in str(run(_with_runner(store, body)))


# ---- golden files -----------------------------------------------------------------------------


def _capture(running: RunningLab, store: KnownHostsStore) -> dict[str, str]:
    """Every output the parser tests read, from a lab on a fixed clock. Order matters."""
    out: dict[str, str] = {}
    hop = running.hop

    async def body(runner: SshRunner) -> None:
        async def cli(device: str, device_type: str, job: Callable[[CliSession], None]) -> None:
            await runner.run(running.target(device), device_type, job, operation="capture")

        end = r"\*\* end"

        def codec(cli: CliSession) -> None:
            out["xapi_status_call_none.txt"] = cli.send("xStatus Call", expect=end)
            out["xapi_dial_ok.txt"] = cli.send(
                f'xCommand Dial Number: "{OTHER_CODEC}" CallRate: 768', expect=end
            )
            out["xapi_dial_error.txt"] = cli.send("xCommand Dial CallRate: 768", expect=end)
            out["xapi_disconnect_error.txt"] = cli.send(
                "xCommand Call Disconnect CallId: 99", expect=end
            )
            out["xapi_config_error.txt"] = cli.send(
                "xConfiguration Conference DefaultCall Rate: 9000", expect=end
            )

        await cli(CODEC, "terminal_server", codec)

        def caller(cli: CliSession) -> None:
            cli.send(f'xCommand Dial Number: "{CODEC}" CallRate: 1152', expect=end)

        await cli(THIRD_CODEC, "terminal_server", caller)

        def codec_calls(cli: CliSession) -> None:
            out["xapi_status_call.txt"] = cli.send("xStatus Call", expect=end)

        await cli(CODEC, "terminal_server", codec_calls)

        def mcu(cli: CliSession) -> None:
            out["mcu_show_conferences_none.txt"] = cli.send("show conferences")
            cli.send("conference create weekly")
            cli.send(f"participant add weekly {CODEC}")
            cli.send("conference create board")
            out["mcu_show_ports.txt"] = cli.send("show ports")
            out["mcu_show_conferences.txt"] = cli.send("show conferences")
            out["mcu_participant_list.txt"] = cli.send("participant list weekly")
            out["mcu_error.txt"] = cli.send("conference end nosuch")

        await cli(MCU, "generic", mcu)

        def modem(cli: CliSession) -> None:
            out["modem_show_status.txt"] = cli.send("show status")
            out["modem_tx_off.txt"] = cli.send("tx off")
            out["modem_show_status_tx_off.txt"] = cli.send("show status")
            out["modem_error.txt"] = cli.send("bogus")

        await cli(MODEM, "generic", modem)

        def ios(cli: CliSession) -> None:
            out["ios_show_ip_route.txt"] = cli.send("show ip route")
            out["ios_show_running_config.txt"] = cli.send("show running-config")
            out["ios_error_invalid_input.txt"] = cli.send("show ip rout x")
            out["ios_error_incomplete.txt"] = cli.send("show ip")
            out["ios_error_ambiguous.txt"] = cli.send("show i")
            own = running.lab.net.devices[ROUTER].mgmt_address
            bad = cli.configure([f"ip route 0.0.0.0 0.0.0.0 {own} 1"], IOS_ERROR)
            assert bad.failed is not None
            out["ios_config_error_own_address.txt"] = bad.failed.response
            bad = cli.configure(["no ip route 0.0.0.0 0.0.0.0 10.9.9.9"], IOS_ERROR)
            assert bad.failed is not None
            out["ios_config_error_no_match.txt"] = bad.failed.response
            cli.configure(["interface GigabitEthernet0/1/0", "shutdown"], IOS_ERROR)
            out["ios_show_ip_interface_brief.txt"] = cli.send("show ip interface brief")
            cli.configure(["interface GigabitEthernet0/1/0", "no shutdown"], IOS_ERROR)
            cli.configure([f"ip route 0.0.0.0 0.0.0.0 {hop(BACKUP)} 1"], IOS_ERROR)
            out["ios_show_ip_route_ecmp.txt"] = cli.send("show ip route")
            cli.configure(
                [f"ip route 0.0.0.0 0.0.0.0 {hop(BACKUP)} 5",
                 f"no ip route 0.0.0.0 0.0.0.0 {hop(PRIMARY)}"],
                IOS_ERROR,
            )  # fmt: skip
            out["ios_show_ip_route_backup.txt"] = cli.send("show ip route")
            out["ios_show_running_config_backup.txt"] = cli.send("show running-config")
            out["ios_write_memory.txt"] = cli.send("write memory")

        await cli(ROUTER, "cisco_ios", ios)
        running.fault("cut_link", link=BACKUP)

        def ios_cut(cli: CliSession) -> None:
            out["ios_show_ip_route_no_gateway.txt"] = cli.send("show ip route")

        await cli(ROUTER, "cisco_ios", ios_cut)

    run(_with_runner(store, body))
    return out


def test_golden_files_match_the_lab(tmp_path: Path) -> None:
    running = _start(clock=lambda: FIXED_NOW)
    try:
        captured = _capture(running, running.known_hosts(tmp_path / "known_hosts"))
    finally:
        _stop(running)
    if os.environ.get(UPDATE_ENV) == "1":
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        for old in GOLDEN_DIR.glob("*.txt"):
            if old.name not in captured:
                old.unlink()
        for name, text in captured.items():
            (GOLDEN_DIR / name).write_text(text, encoding="utf-8")
        return
    stored = {p.name for p in GOLDEN_DIR.glob("*.txt")}
    assert stored == set(captured), "golden files differ from the capture list; re-record them"
    for name, text in captured.items():
        golden = (GOLDEN_DIR / name).read_text(encoding="utf-8")
        assert golden == text, (
            f"{name}: the lab's output changed; re-record with {UPDATE_ENV}=1 and check the "
            "parser tests (tests/controllers/test_driver_parsing.py)"
        )


def test_golden_files_hold_no_secrets() -> None:
    secrets = set(lab_secret_defaults(_doc()).values())
    for path in GOLDEN_DIR.glob("*.txt"):
        text = path.read_text(encoding="utf-8")
        assert not any(s in text for s in secrets), path.name


if __name__ == "__main__":
    if "--update-golden" in sys.argv[1:]:
        os.environ[UPDATE_ENV] = "1"
    sys.exit(pytest.main([__file__, "-q", "-k", "golden"]))
