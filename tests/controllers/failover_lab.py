"""The failover engine end to end on the lab: real probes (UDP echo to every link's far end),
the real health evaluator, real SSH through the drivers, a real database.

``lab_rig`` starts, in one event loop: the lab (SSH CLIs and probe responders), a
``ProbeEngine`` + ``HealthBoard`` evaluated every ``evaluate_every_s`` whose health changes go
to the failover engine (what ``tiandi serve`` wires through the monitoring runtime's
listeners), and the engine over ``DriverRouterControl``. Timings are short so that a test sees
a cut, a failback and flap damping within seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from controllers.drivers import HostKeyPolicy, KnownHostsStore, SshRunner, SshSettings, Timeouts
from controllers.drivers.base import DeviceTarget
from controllers.drivers.transport import (
    CliSession,
    ConfigTranscript,
    ConnectRequest,
    SessionHandle,
    open_session,
)
from controllers.failover.drivers_adapter import DriverRouterControl
from controllers.failover.engine import EngineConfig, FailoverEngine
from controllers.failover.policy import FailoverPolicy, PolicySet
from inventory.db import make_engine, make_session_factory
from inventory.document import InventoryDoc
from inventory.enums import LinkRole
from inventory.generator import generate
from inventory.yamlio import write_document
from lab.build import lab_secret_defaults
from lab.runner import Lab, LabConfig
from monitors.health import SATELLITE, TERRESTRIAL, HealthBoard, HealthPolicy, LinkEvidence, LinkRef
from monitors.linkstate import LinkHealthReport
from monitors.probes import ProbeConfig, ProbeEngine, ProbeTarget
from tests.controllers.failover_monitor import decode
from tests.controllers.failover_support import seed

# Every hold 20 times shorter than in production (down after 0.15 s of loss, up after 1.5 s...),
# but evidence stays fresh for 2 s: a probe is only judged lost after its 1 s timeout.
FAST_TERRESTRIAL = replace(TERRESTRIAL.scaled(0.05), probe_stale_s=2.0, min_samples=3)
FAST_SATELLITE = replace(SATELLITE.scaled(0.05), probe_stale_s=2.0, min_samples=3)
FAST_HEALTH: dict[LinkRole, HealthPolicy] = {
    LinkRole.PRIMARY: FAST_TERRESTRIAL,
    LinkRole.BACKUP: FAST_TERRESTRIAL,
    LinkRole.SATELLITE: FAST_SATELLITE,
}
# Probes every 100 ms; a probe is lost after 1 s (above the satellite's ~600 ms RTT); a cut is
# seen when 4 of the last 5 are lost.
FAST_PROBES = ProbeConfig(interval_s=0.1, timeout_s=1.0, window_s=2.0, recent_probes=5)
FAST_POLICY = FailoverPolicy(
    hold_down_s=2.0,
    leave_degraded_after_s=2.0,
    flap_window_s=120.0,
    flap_max_switches=2,
    flap_pin_s=60.0,
    retry_after_s=2.0,
    manual_pin_s=60.0,
)


def lab_network(counties: int = 4, seed_: int = 1, provinces: int = 2) -> tuple[InventoryDoc, int]:
    """A generated network whose SSH/SNMP ports are moved by a random offset (no root needed);
    ``lab_secrets`` gives the environment its profiles need."""
    doc = generate(provinces=provinces, counties=counties, seed=seed_)
    offset = random.Random().randrange(20_000, 60_000, 10)
    for site in doc.sites:
        for dev in site.devices:
            dev.ssh_port += offset
            dev.snmp_port += offset
    return doc, offset


def lab_secrets(doc: InventoryDoc) -> dict[str, str]:
    return lab_secret_defaults(doc)


def sqlite_copy(template: Path, target: Path) -> sessionmaker[Session]:
    shutil.copyfile(template, target)
    return make_session_factory(make_engine(f"sqlite:///{target}"))


@dataclass
class Interference:
    """Breaks SSH sessions to chosen routers right after their configuration lines were sent:
    ``drop`` closes the transport (the session is lost mid-change), ``freeze`` blocks the worker
    forever (the process is killed mid-change) until ``release``."""

    drop: set[str] = field(default_factory=set)
    freeze: set[str] = field(default_factory=set)
    released: threading.Event = field(default_factory=threading.Event)
    hits: list[str] = field(default_factory=list)

    def opener(self, request: ConnectRequest, handle: SessionHandle) -> CliSession:
        session = open_session(request, handle)
        return _Flaky(session, handle, self, request.device)


class _Flaky:
    def __init__(
        self, inner: CliSession, handle: SessionHandle, plan: Interference, device: str
    ) -> None:
        self._inner, self._handle, self._plan, self._device = inner, handle, plan, device

    @property
    def device(self) -> str:
        return self._inner.device

    def send(self, command: str, *, expect: str | None = None) -> str:
        return self._inner.send(command, expect=expect)

    def configure(self, commands: Any, error: Any) -> ConfigTranscript:
        transcript = self._inner.configure(commands, error)
        if self._device in self._plan.drop:
            self._plan.drop.discard(self._device)  # once
            self._plan.hits.append(f"drop {self._device}")
            self._handle.abort()  # the TCP session dies; the next read fails for real
        elif self._device in self._plan.freeze:
            self._plan.hits.append(f"freeze {self._device}")
            self._plan.released.wait(60)
        return transcript

    def close(self) -> None:
        self._inner.close()


class ExternalLab:
    """The lab in a process of its own (``tiandi lab up``), driven through its control API: on
    a small machine a big lab in the test's process would load the event loop and distort the
    RTTs and jitter the probes measure."""

    def __init__(self, doc: InventoryDoc, offset: int, tmp: Path) -> None:
        path = tmp / "lab-inventory.yaml"
        write_document(doc, path)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "lab.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-c", "from tiandi.cli import app; app()", "lab", "up",
                "--inventory", str(path), "--control", f"127.0.0.1:{self.port}",
                "--probe-port", str(7 + offset), "--faces", "ssh,probes", "--steady-traffic",
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.http = httpx.Client(base_url=self.url, timeout=30)

    async def ready(self, timeout_s: float = 180.0) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"the lab exited: {self.log.read_text()[-2000:]}")
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the lab did not come up within {timeout_s:g} s")

    def fault(self, kind: str, params: dict[str, Any]) -> int:
        r = self.http.post(f"/faults/{kind}", json=params)
        r.raise_for_status()
        fault = r.json().get("fault")
        return int(fault["id"]) if fault else 0

    def clear(self, fault_id: int) -> None:
        self.http.delete(f"/faults/{fault_id}").raise_for_status()

    def clear_all(self) -> None:
        self.http.delete("/faults").raise_for_status()

    def timeline(self, entries: list[dict[str, Any]]) -> None:
        self.http.post("/timeline", json=entries).raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()


@dataclass
class LabRig:
    doc: InventoryDoc
    lab: Lab | ExternalLab
    session_factory: sessionmaker[Session]
    runner: SshRunner
    control: DriverRouterControl
    health: HealthSource
    engine: FailoverEngine
    interference: Interference

    def site_links(self, site: str) -> list[str]:
        s = next(x for x in self.doc.sites if x.name == site)
        order = list(LinkRole)
        return [lk.name for lk in sorted(s.links, key=lambda lk: order.index(lk.role))]

    async def show_ip_route(self, router: str) -> str:
        """``show ip route`` on the lab router, over SSH, as an engineer would type it."""
        target = DeviceTarget.from_document(self.doc, router)
        text: str = await self.runner.run(
            target, "cisco_ios", lambda cli: cli.send("show ip route"), operation="test read"
        )
        return text

    def next_hop(self, link: str) -> str:
        return next(lk.probe_address for s in self.doc.sites for lk in s.links if lk.name == link)

    async def gateway(self, router: str) -> str | None:
        for line in (await self.show_ip_route(router)).splitlines():
            if line.startswith("Gateway of last resort is "):
                words = line.split()
                return None if "not set" in line else words[5]
        return None

    async def until(self, what: Callable[[], bool], timeout: float, why: str) -> float:
        """Wait until ``what()``; returns the seconds it took (AssertionError on timeout)."""
        t0 = time.monotonic()
        while not what():
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{why}: not within {timeout:g} s")
            await asyncio.sleep(0.02)
        return time.monotonic() - t0

    def fault(self, kind: str, **params: Any) -> int:
        if isinstance(self.lab, ExternalLab):
            return self.lab.fault(kind, params)
        outcome = self.lab.book.apply(kind, params)
        self.lab.poke()
        return outcome.fault.id if outcome.fault is not None else 0

    def clear(self, fault_id: int) -> None:
        if isinstance(self.lab, ExternalLab):
            self.lab.clear(fault_id)
            return
        self.lab.book.clear(fault_id)
        self.lab.poke()

    def cut_at_once(self, links: Sequence[str]) -> None:
        """Cut every link in the same instant (one timeline step in the lab)."""
        if isinstance(self.lab, ExternalLab):
            self.lab.timeline([{"at": 0, "fault": "cut_link", "link": lk} for lk in links])
            return
        for link in links:
            self.lab.book.apply("cut_link", {"link": link})
        self.lab.poke()

    def clear_all(self) -> None:
        if isinstance(self.lab, ExternalLab):
            self.lab.clear_all()
            return
        self.lab.book.clear_all()
        self.lab.poke()


def build_engine(
    session_factory: sessionmaker[Session],
    control: DriverRouterControl,
    policy: FailoverPolicy = FAST_POLICY,
    **config: Any,
) -> FailoverEngine:
    settings: dict[str, Any] = {"tick_s": 0.1, "change_timeout_s": 20.0, **config}
    return FailoverEngine(
        session_factory,
        control,
        policies=PolicySet.uniform(policy),
        config=EngineConfig(**settings),
    )


def make_runner(
    tmp: Path, interference: Interference | None = None, *, workers: int = 16
) -> SshRunner:
    settings = SshSettings(
        workers=workers,
        timeouts=Timeouts(connect_s=5.0, command_s=10.0),
        operation_timeout_s=20.0,
        host_key_policy=HostKeyPolicy.TRUST_ON_FIRST_USE,
    )
    store = KnownHostsStore(tmp / "known_hosts")
    if interference is None:
        return SshRunner(store, settings)
    return SshRunner(store, settings, opener=interference.opener)


class HealthSource:
    """Probes and health evaluation feeding the engine: in this process, or (``external``) in a
    process of its own (``failover_monitor``) whose reports arrive as JSON lines."""

    def __init__(
        self,
        doc: InventoryDoc,
        offset: int,
        tmp: Path,
        probes: ProbeConfig,
        every_s: float,
        external: bool,
    ) -> None:
        self.targets = [
            ProbeTarget(lk.name, s.name, lk.role.value, lk.probe_address)
            for s in doc.sites
            for lk in s.links
        ]
        self.config = replace(probes, port=7 + offset)
        self.every_s = every_s
        self.external = external
        self.tmp = tmp
        self.gate = asyncio.Event()
        self.latest: dict[str, LinkHealthReport] = {}
        self.prober: ProbeEngine | None = None
        self.board: HealthBoard | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, engine: FailoverEngine) -> None:
        loop = asyncio.get_running_loop()
        if not self.external:
            self.prober = ProbeEngine(self.config, targets=self.targets)
            self.board = HealthBoard(policies=FAST_HEALTH)
            self.board.set_links(
                [LinkRef(t.link, t.site, LinkRole(t.role)) for t in self.targets],
                time.monotonic(),
            )
            await self.prober.start()
            self.task = loop.create_task(self._feed(engine))
            return
        spec = {
            "targets": [asdict(t) for t in self.targets],
            "probes": asdict(self.config),
            "health": {role.value: asdict(p) for role, p in FAST_HEALTH.items()},
            "every_s": self.every_s,
        }
        path = self.tmp / "monitor.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.controllers.failover_monitor", str(path),
            stdout=asyncio.subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parents[2]),
        )  # fmt: skip
        self.task = loop.create_task(self._read(engine))

    async def _feed(self, engine: FailoverEngine) -> None:
        assert self.prober is not None and self.board is not None
        while True:
            now = time.monotonic()
            readings = self.prober.readings()
            for ref in self.board.links():
                ev = LinkEvidence(probe=readings.get(ref.link))
                report = self.board.evaluate(ref.link, ev, now)
                if report is not None:
                    self._arrived(engine, report)
            await asyncio.sleep(self.every_s)

    async def _read(self, engine: FailoverEngine) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self._arrived(engine, decode(line.decode("utf-8")))

    def _arrived(self, engine: FailoverEngine, report: LinkHealthReport) -> None:
        self.latest[report.link] = report
        if self.gate.is_set():
            engine.observe(report)

    def not_up(self, for_s: float = 0.0) -> list[str]:
        """Links not up, or up for less than ``for_s`` seconds."""
        out = []
        now = time.monotonic()
        for t in self.targets:
            r = self.latest.get(t.link)
            if r is None:
                out.append(f"{t.link} not evaluated yet")
            elif r.health.value != "up":
                out.append(f"{t.link} {r.health.value} ({r.reason})")
            elif now - r.since < for_s:
                out.append(f"{t.link} up for only {now - r.since:.1f} s")
        return out

    def open(self, engine: FailoverEngine) -> None:
        """After the warm-up: the engine starts from the current health of every link."""
        engine.observe_many(list(self.latest.values()))
        self.gate.set()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.prober is not None:
            await self.prober.close()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@asynccontextmanager
async def lab_rig(
    doc: InventoryDoc,
    offset: int,
    session_factory: sessionmaker[Session],
    tmp: Path,
    *,
    policy: FailoverPolicy = FAST_POLICY,
    seeded: bool = False,
    ssh_workers: int = 16,
    probes: ProbeConfig = FAST_PROBES,
    evaluate_every_s: float = 0.05,
    warmup_s: float = 30.0,
    external: bool = False,
    external_health: bool = True,
    **engine_config: Any,
) -> AsyncIterator[LabRig]:
    """The lab, probes and health, and the engine over the drivers. ``external``: the lab runs
    in a process of its own (bench scale); ``external_health``: so do the probes and the health
    evaluation (the default: SSH threads in this process would otherwise delay the prober's
    event loop and inflate the RTT and jitter it measures)."""
    if not seeded:
        seed(session_factory, doc)
    lab: Lab | ExternalLab
    if external:
        lab = ExternalLab(doc, offset, tmp)
        try:
            await lab.ready()
        except BaseException:
            lab.stop()
            raise
    else:
        lab = await Lab.start(
            LabConfig(
                doc,
                control=None,
                faces=("ssh", "probes"),
                probe_port=7 + offset,
                traffic_period_s=None,
            )
        )
    interference = Interference()
    runner = make_runner(tmp, interference, workers=ssh_workers)
    health = HealthSource(doc, offset, tmp, probes, evaluate_every_s, external_health)
    engine: FailoverEngine | None = None
    try:
        with session_factory() as session:
            control = DriverRouterControl.from_session(session, runner)
        engine = build_engine(session_factory, control, policy, **engine_config)
        await health.start(engine)
        await engine.start()
        await asyncio.wait_for(engine.reconciled.wait(), 30)
        rig = LabRig(doc, lab, session_factory, runner, control, health, engine, interference)
        # Warm-up: the first probe windows (filled while the engine's start-up SSH reads load
        # the CPU) are not news for the engine; it starts from every link up for a hold-down,
        # so that a scenario's first failover has its backup to go to, as a settled network does.
        settled = policy.hold_down_s + 0.5
        try:
            await rig.until(lambda: not health.not_up(settled), warmup_s, "all links up")
        except AssertionError:
            bad = health.not_up(settled)
            raise AssertionError(f"{len(bad)} links not up: {'; '.join(bad[:5])}") from None
        health.open(engine)
        yield rig
    finally:
        interference.released.set()
        await health.stop()
        if engine is not None:
            await engine.stop()
        await runner.close()
        if isinstance(lab, ExternalLab):
            lab.stop()
        else:
            await lab.stop()
