"""Run a whole lab in one asyncio process: every device's faces, the fault clock, the control API.

``Lab.start(LabConfig(doc))`` builds the network (``lab.build``), resolves credentials, binds
every face — SNMP agents (``lab.snmp``), SSH CLIs (``lab.ssh``), probe responders
(``lab.probes``) — and the control API (``lab.control``), and starts three background tasks:
the fault clock (flap phases, faults that end by themselves), the traffic model's slow wander,
and any timeline. ``Lab.stop()`` closes every socket and task. ``run_lab`` adds signal handling
(SIGINT/SIGTERM stop cleanly) around them; ``daemonize`` puts the process in the background
with a pid file for ``tiandi lab up --detach``.

Addressing (see ``inventory.generator`` and ``lab/README.md``): every device answers on its own
``127.x.y.z`` management address, every link's far end on its own ``127.x.y.z`` probe address;
ports are the inventory's (161/udp, 22/tcp by default; probes on 7/udp) unless overridden for a
non-root run (``snmp_port``/``ssh_port``/``probe_port`` replace, ``port_offset`` adds).
A full national lab holds about 9,500 sockets, so the open-file limit is raised to its hard
limit at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import inspect
import ipaddress
import logging
import os
import resource
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from inventory.document import InventoryDoc
from inventory.enums import DeviceKind
from inventory.errors import TiandiError
from lab.build import LabCredentials, TrafficModel, build_network, resolve_credentials
from lab.control import ControlServer, LabControl, serve_control, stop_control
from lab.faults import FaultBook, reload_saved_config
from lab.state import Clock, Device, LabNetwork
from lab.timeline import TimelineEntry, load_timeline, run_timeline

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

FACES = ("snmp", "ssh", "probes")
DEFAULT_PROBE_PORT = 7  # UDP echo (RFC 862)
TABLE_LIMIT = 60  # print every device up to this many; a summary above (and --list)


class LabStartError(TiandiError):
    """The lab could not start; nothing is left listening."""


class Face(Protocol):
    """What a started face hands back: something to close (sync or async)."""

    def close(self) -> Any: ...


@dataclass(frozen=True)
class FaceOptions:
    probe_port: int = DEFAULT_PROBE_PORT
    host_key_seed: int = 0  # SSH host keys and probe jitter draw from the lab seed


FaceStarter = Callable[[LabNetwork, LabCredentials, FaceOptions], Awaitable[Face]]


@dataclass
class LabConfig:
    """Everything ``Lab.start`` needs; the CLI fills it from its options."""

    doc: InventoryDoc
    seed: int = 0
    control: tuple[str, int] | None = ("127.0.0.1", 8790)
    faces: tuple[str, ...] = FACES
    snmp_port: int | None = None  # one port for every device, instead of the inventory's
    ssh_port: int | None = None
    probe_port: int = DEFAULT_PROBE_PORT
    port_offset: int = 0  # added to every port (after the overrides above)
    traffic_period_s: float | None = 30.0  # None: steady background rates
    timeline: Path | None = None
    clock: Clock = time.monotonic


@dataclass
class StartReport:
    """How long each start-up step took (seconds), and the process's size once up."""

    steps: dict[str, float] = field(default_factory=dict)
    rss_mb: float = 0.0
    nofile: tuple[int, int] = (0, 0)

    @property
    def total_s(self) -> float:
        return sum(self.steps.values())

    def line(self) -> str:
        parts = " ".join(f"{k}={v:.2f}s" for k, v in self.steps.items())
        return f"started in {self.total_s:.2f}s ({parts}), RSS {self.rss_mb:.0f} MB"


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_mb() -> float:
    """Resident set size now, from /proc (peak from getrusage where /proc is absent)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def apply_port_overrides(
    net: LabNetwork, snmp_port: int | None, ssh_port: int | None, offset: int
) -> None:
    """Move every device's SNMP/SSH port (non-root runs, tests)."""
    for dev in net.devices.values():
        dev.snmp_port = (snmp_port or dev.snmp_port) + offset
        dev.ssh_port = (ssh_port or dev.ssh_port) + offset
        for port in (dev.snmp_port, dev.ssh_port):
            if not 1 <= port <= 65535:
                raise LabStartError(f"{dev.name}: port {port} is out of range after the offset")


# ---- faces (written by their own modules; started through these adapters) -----------------


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _start_snmp(net: LabNetwork, creds: LabCredentials, opts: FaceOptions) -> Face:
    from lab.snmp import serve_snmp

    return await serve_snmp(net, creds.snmp)


async def _start_ssh(net: LabNetwork, creds: LabCredentials, opts: FaceOptions) -> Face:
    from lab.ssh import serve_ssh

    face = await serve_ssh(net, creds.ssh, host_key_seed=opts.host_key_seed)
    broken = {name: why for name, why in face.failed.items() if name in creds.ssh}
    if broken:
        await face.close()
        first = "; ".join(f"{name}: {why}" for name, why in list(broken.items())[:3])
        raise LabStartError(
            f"the ssh face could not listen for {len(broken)} device(s) ({first}"
            f"{'; ...' if len(broken) > 3 else ''})"
        )
    return face


async def _start_probes(net: LabNetwork, creds: LabCredentials, opts: FaceOptions) -> Face:
    from lab.probes import serve_probes

    return await serve_probes(net, port=opts.probe_port, seed=opts.host_key_seed)


FACE_STARTERS: dict[str, FaceStarter] = {
    "snmp": _start_snmp,
    "ssh": _start_ssh,
    "probes": _start_probes,
}


def _reload_hook(face: Face) -> Callable[[Device], None]:
    """A boot restores the saved config the way the SSH CLI keeps it (descriptions too)."""
    from lab.ssh import SshFace, reload_config

    if not isinstance(face, SshFace):
        return reload_saved_config
    memory = face.memory

    def reload(device: Device) -> None:
        reload_config(device, memory)

    return reload


async def _close_face(name: str, face: Face) -> None:
    try:
        await _maybe_await(face.close())
        wait_closed = getattr(face, "wait_closed", None)
        if callable(wait_closed):
            await _maybe_await(wait_closed())
    except Exception as err:  # a face that fails to close must not keep the others open
        log.warning("lab: closing the %s face failed: %s", name, err, exc_info=True)


# ---- the lab --------------------------------------------------------------------------------


class Lab:
    """A running lab. Build with ``await Lab.start(config)``; end with ``await lab.stop()``."""

    def __init__(
        self,
        config: LabConfig,
        net: LabNetwork,
        book: FaultBook,
        creds: LabCredentials,
        traffic: TrafficModel,
    ) -> None:
        self.config = config
        self.net = net
        self.book = book
        self.creds = creds
        self.traffic = traffic
        self.control = LabControl(book, on_change=self.poke)
        self.faces: dict[str, Face] = {}
        self.report = StartReport()
        self.started = net.now()
        self._control_server: tuple[ControlServer, asyncio.Task[None]] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False

    @classmethod
    async def start(cls, config: LabConfig) -> Lab:
        report = StartReport(nofile=raise_nofile_limit())
        t = time.perf_counter()
        creds = resolve_credentials(config.doc)
        traffic = TrafficModel.for_sites(config.doc.sites, config.seed)
        net = build_network(config.doc, config.clock, config.seed, traffic=traffic)
        apply_port_overrides(net, config.snmp_port, config.ssh_port, config.port_offset)
        _check_privileged_ports(net, config)
        book = FaultBook(net)
        entries: list[TimelineEntry] = []
        if config.timeline is not None:
            entries = load_timeline(config.timeline, book)
        report.steps["build"] = time.perf_counter() - t

        lab = cls(config, net, book, creds, traffic)
        lab.report = report
        try:
            opts = FaceOptions(
                probe_port=config.probe_port + config.port_offset, host_key_seed=config.seed
            )
            for name in config.faces:
                starter = FACE_STARTERS.get(name)
                if starter is None:
                    raise LabStartError(f"unknown face {name!r}; faces are {', '.join(FACES)}")
                t = time.perf_counter()
                try:
                    lab.faces[name] = await starter(net, creds, opts)
                except OSError as err:
                    raise LabStartError(_bind_advice(name, err)) from err
                except TiandiError as err:
                    if isinstance(err, LabStartError):
                        raise
                    raise LabStartError(f"the {name} face could not start: {err}") from err
                if name == "ssh":
                    book.reload_config = _reload_hook(lab.faces[name])
                report.steps[name] = time.perf_counter() - t
            if config.control is not None:
                t = time.perf_counter()
                host, port = config.control
                try:
                    lab._control_server = await serve_control(lab.control, host, port)
                except OSError as err:
                    raise LabStartError(str(err)) from err
                report.steps["control"] = time.perf_counter() - t
        except BaseException:
            await lab.stop()
            raise
        loop = asyncio.get_running_loop()
        lab._tasks.append(loop.create_task(lab._fault_clock(), name="lab-fault-clock"))
        if config.traffic_period_s:
            lab._tasks.append(loop.create_task(lab._traffic_clock(), name="lab-traffic"))
        if entries:
            lab.control.start_timeline(entries)
        report.rss_mb = rss_mb()
        lab.started = net.now()
        # The network, its agents and listeners live as long as the lab: keep them out of the
        # cyclic GC's full collections, which otherwise stall the loop for 150-300 ms every few
        # seconds under probe load (4,614 links at 1 s) — the prober sees it as jitter.
        gc.freeze()
        log.info("lab: %s", report.line())
        return lab

    @property
    def control_url(self) -> str | None:
        if self._control_server is None:
            return None
        server = self._control_server[0]
        for srv in server.servers:
            for sock in srv.sockets:
                host, port = sock.getsockname()[:2]
                return f"http://{host}:{port}"
        return None

    def poke(self) -> None:
        """Something changed the faults: let the fault clock re-plan now."""
        self._wake.set()

    async def _fault_clock(self) -> None:
        while True:
            self.book.advance()
            due = self.book.next_due()
            now = self.net.now()
            timeout = 1.0 if due is None else min(1.0, max(0.005, due - now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _traffic_clock(self) -> None:
        period = self.config.traffic_period_s or 30.0
        while True:
            await asyncio.sleep(period)
            self.traffic.step(self.net)

    async def run_timeline(self, entries: list[TimelineEntry]) -> list[str]:
        """Run a timeline now and wait for it (tests, scripts)."""
        return await run_timeline(entries, self.book, None, self.poke)

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Close every face, the control API and the background tasks. Safe to call twice."""
        if self._stopping:
            return
        self._stopping = True
        self._stopped.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.control.stop()
        if self._control_server is not None:
            await stop_control(*self._control_server)
            self._control_server = None
        for name in reversed(list(self.faces)):
            await _close_face(name, self.faces.pop(name))


def _check_privileged_ports(net: LabNetwork, config: LabConfig) -> None:
    if os.geteuid() == 0:
        return
    low = {d.snmp_port for d in net.devices.values() if "snmp" in config.faces}
    low |= {d.ssh_port for d in net.devices.values() if "ssh" in config.faces}
    if "probes" in config.faces:
        low.add(config.probe_port + config.port_offset)
    low = {p for p in low if p < 1024}
    if low:
        raise LabStartError(
            f"ports {sorted(low)} need root; run as root or move the lab's ports with "
            "--port-offset 10000 (or --snmp-port/--ssh-port/--probe-port)"
        )


def _bind_advice(face: str, err: OSError) -> str:
    what = f"the {face} face could not bind: {err}"
    if err.errno == errno.EACCES:
        return what + " — ports below 1024 need root; use --port-offset or --snmp-port/--ssh-port"
    if err.errno == errno.EADDRINUSE:
        return what + " — another process (or another lab) holds the port; stop it or move ports"
    if err.errno == errno.EMFILE:
        return what + " — out of file descriptors; raise the hard RLIMIT_NOFILE (ulimit -Hn)"
    return what


# ---- describing where things answer -----------------------------------------------------


def _ranges(addresses: Iterable[str]) -> str:
    addrs = sorted({ipaddress.ip_address(a) for a in addresses})
    if not addrs:
        return "-"
    if len(addrs) == 1:
        return str(addrs[0])
    return f"{addrs[0]} - {addrs[-1]}"


def _ports(values: Iterable[int]) -> str:
    ports = sorted(set(values))
    return str(ports[0]) if len(ports) == 1 else f"{ports[0]}-{ports[-1]}"


def describe(lab: Lab, list_all: bool = False) -> list[str]:
    """What a person needs to reach the lab: a table (small labs, --list) or a summary."""
    net = lab.net
    lines = [f"lab up: {len(net.devices)} devices, {len(net.links)} links, {len(net.sites)} sites"]
    faces = ", ".join(lab.faces) or "none"
    lines.append(f"faces: {faces}; {lab.report.line()}")
    devices = list(net.devices.values())
    if list_all or len(devices) <= TABLE_LIMIT:
        lines.append(f"{'DEVICE':<34} {'KIND':<19} {'ADDRESS':<15} {'SNMP':>5} {'SSH':>5}")
        for d in devices:
            lines.append(
                f"{d.name:<34} {d.kind.value:<19} {d.mgmt_address:<15} "
                f"{d.snmp_port:>5} {d.ssh_port:>5}"
            )
        lines.append(f"{'LINK':<34} {'ROLE':<19} {'PROBE':<15} {'UDP':>5}")
        for lk in net.links.values():
            lines.append(
                f"{lk.name:<34} {lk.role.value:<19} {lk.probe_address:<15} "
                f"{lab.config.probe_port + lab.config.port_offset:>5}"
            )
    else:
        for kind in DeviceKind:
            of_kind = [d for d in devices if d.kind is kind]
            if of_kind:
                lines.append(
                    f"  {kind.value + 's':<20} {len(of_kind):>5}  "
                    f"{_ranges(d.mgmt_address for d in of_kind)}  "
                    f"snmp udp/{_ports(d.snmp_port for d in of_kind)}  "
                    f"ssh tcp/{_ports(d.ssh_port for d in of_kind)}"
                )
        lines.append(
            f"  {'link probe targets':<20} {len(net.links):>5}  "
            f"{_ranges(lk.probe_address for lk in net.links.values())}  "
            f"udp/{lab.config.probe_port + lab.config.port_offset}"
        )
        lines.append("  (tiandi lab up --list prints every device)")
    url = lab.control_url
    lines.append(f"control API: {url}" if url else "control API: off")
    return lines


# ---- running in the foreground or as a daemon -------------------------------------------


async def run_lab(
    config: LabConfig,
    on_ready: Callable[[Lab], None] | None = None,
) -> None:
    """Start the lab, call ``on_ready``, serve until SIGINT/SIGTERM, then stop cleanly."""
    lab = await Lab.start(config)
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lab.request_stop)
            installed.append(sig)
    try:
        if on_ready is not None:
            on_ready(lab)
        await lab.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await lab.stop()


def run_forever(
    config: LabConfig,
    on_ready: Callable[[Lab], None] | None = None,
    use_uvloop: bool = False,
) -> None:
    """Blocking entry point for the CLI."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; running on the asyncio event loop")
        else:
            # Measured on the national lab: ~30 % more SNMP GETs/s and ~15 % more probe
            # replies/s than the asyncio loop; start-up time is the same.
            uvloop.run(run_lab(config, on_ready))
            return
    asyncio.run(run_lab(config, on_ready))


class Daemon:
    """The background side of ``--detach``: tell the waiting parent how start-up went."""

    def __init__(self, fd: int, pid_file: Path) -> None:
        self._fd: int | None = fd
        self.pid_file = pid_file

    def ready(self, text: str) -> None:
        self._send("ready\n" + text)

    def failed(self, text: str) -> None:
        self._send("error\n" + text)

    def _send(self, text: str) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._fd, text.encode("utf-8"))
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            if self.pid_file.read_text(encoding="ascii").strip() == str(os.getpid()):
                self.pid_file.unlink()


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive, else None."""
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def daemonize(pid_file: Path, log_file: Path) -> Daemon:
    """Fork into the background (double fork, new session). Call before any loop or thread.

    The calling process waits until the daemon reports ready (prints what it sends and exits
    0) or failed (prints the error, exits 1); only the daemon returns from this function.
    """
    if (pid := read_pid(pid_file)) is not None:
        raise LabStartError(f"a lab is already running with pid {pid} (pid file {pid_file})")
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() > 0:
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.close(read_end)
        status, _, text = b"".join(chunks).decode("utf-8", errors="replace").partition("\n")
        if status == "ready":
            sys.stdout.write(text)
            sys.stdout.flush()
            os._exit(0)
        sys.stderr.write((text or f"lab did not start; see {log_file}") + "\n")
        sys.stderr.flush()
        os._exit(1)
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    pid_file.write_text(f"{os.getpid()}\n", encoding="ascii")
    return Daemon(write_end, pid_file)


def stop_daemon(pid_file: Path, timeout_s: float = 30.0) -> str:
    """SIGTERM the lab of ``pid_file`` and wait for it to exit; returns what happened."""
    pid = read_pid(pid_file)
    if pid is None:
        with contextlib.suppress(OSError):
            pid_file.unlink()
        return f"no lab running (pid file {pid_file} absent or stale)"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                pid_file.unlink()
            return f"lab (pid {pid}) stopped"
        time.sleep(0.05)
    raise LabStartError(f"lab (pid {pid}) did not stop within {timeout_s:g} s")
