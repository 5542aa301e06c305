"""``tiandi poll``: the monitor alone — SNMP pollers, link probes, health and alarms, no API.

By default it runs two processes, each with its own core and GIL: the SNMP poller
(``--no-probes``) and the prober with link health and alarms (``--no-snmp``), so that a poll
round never delays a probe reply and inflates its RTT. They meet in ``<data dir>/state.db``
(``monitors.state_store``), which ``tiandi serve`` also reads; a process that dies is started
again after a pause. ``--single-process`` runs both in one (small networks, debugging).

The options are shared with ``tiandi serve``; this module imports ``tiandi.cli`` only inside
functions, so either can be imported first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inventory.errors import TiandiError

if TYPE_CHECKING:
    from tiandi.monitoring_runtime import MonitoringOptions, MonitoringRuntime

log = logging.getLogger(__name__)

CONFIG_ERROR = 2
"""The exit code of a monitor that refused its configuration: not worth restarting."""

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="TIANDI_DATA_DIR",
        help="where the embedded metric store, the InfluxDB spool and the state file live",
    ),
]
PollInterval = Annotated[
    float, typer.Option("--poll-interval", min=1.0, help="seconds between SNMP polls of a device")
]
ProbeInterval = Annotated[
    float,
    typer.Option(
        "--probe-interval",
        min=0.05,
        help="seconds between probes of a link (raise it for very large networks)",
    ),
]
ProbePort = Annotated[int, typer.Option("--probe-port", help="UDP echo port of the far ends")]
PortOffset = Annotated[
    int,
    typer.Option(
        "--port-offset", help="added to every SNMP and probe port (a lab started with one)"
    ),
]
Snmp = Annotated[bool, typer.Option("--snmp/--no-snmp", help="poll devices over SNMP")]
Probes = Annotated[
    bool, typer.Option("--probes/--no-probes", help="probe links (UDP echo), health, alarms")
]
SingleProcess = Annotated[
    bool,
    typer.Option(
        "--single-process",
        help="poll and probe in this one process instead of one process each",
    ),
]


@dataclass(frozen=True)
class MonitorArgs:
    """The options as given, to build a runtime here or to pass to child processes."""

    data_dir: Path = Path("tiandi-data")
    poll_interval: float = 60.0
    probe_interval: float = 1.0
    probe_port: int = 7
    port_offset: int = 0
    snmp: bool = True
    probes: bool = True

    def options(self) -> MonitoringOptions:
        from monitors.poller import PollerConfig
        from monitors.probes import ProbeConfig
        from tiandi.monitoring_runtime import MonitoringOptions

        # The window keeps ~30 probe results whatever the interval.
        return MonitoringOptions(
            data_dir=self.data_dir,
            poll=self.snmp,
            probes=self.probes,
            poller=PollerConfig(interval_s=self.poll_interval),
            probe=ProbeConfig(
                interval_s=self.probe_interval,
                window_s=max(30.0, 30 * self.probe_interval),
                write_every_s=max(10.0, self.probe_interval),
                port=self.probe_port,
            ),
            port_offset=self.port_offset,
        )

    def argv(self, *, snmp: bool, probes: bool) -> list[str]:
        return [
            "poll",
            "--data-dir",
            str(self.data_dir),
            "--poll-interval",
            str(self.poll_interval),
            "--probe-interval",
            str(self.probe_interval),
            "--probe-port",
            str(self.probe_port),
            "--port-offset",
            str(self.port_offset),
            "--snmp" if snmp else "--no-snmp",
            "--probes" if probes else "--no-probes",
        ]


def build_runtime(ctx: typer.Context, options: MonitoringOptions) -> MonitoringRuntime:
    from inventory.db import make_engine, make_session_factory
    from monitors.state_store import StateStore
    from tiandi.cli import fail, settings_of
    from tiandi.monitoring_runtime import MonitoringRuntime, state_path
    from tiandi.wiring import check_schema

    settings = settings_of(ctx)
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    except TiandiError as err:
        engine.dispose()
        raise fail(err, CONFIG_ERROR) from err
    state = StateStore(state_path(options.data_dir))
    return MonitoringRuntime(settings, make_session_factory(engine), options, state=state)


async def _run(runtime: MonitoringRuntime, status_every_s: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_every_s)
            log.info("monitor: %s", runtime.summary())
    finally:
        await runtime.stop()


class MonitorProcesses:
    """The poller and the prober as child processes; one that dies is started again."""

    RESTART_AFTER_S = 5.0

    def __init__(self, ctx: typer.Context, args: MonitorArgs) -> None:
        root = ctx.find_root()
        config = getattr(root.obj, "config", None)
        base = [sys.executable, "-c", "from tiandi.cli import app; app()"]
        if config is not None:
            base += ["--config", str(config)]
        self.commands: dict[str, list[str]] = {}
        if args.snmp:
            self.commands["snmp poller"] = [*base, *args.argv(snmp=True, probes=False)]
        if args.probes:
            self.commands["prober"] = [*base, *args.argv(snmp=False, probes=True)]
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.failed = False

    def start(self) -> None:
        for name in self.commands:
            self._spawn(name)
        self._watcher = threading.Thread(target=self._watch, name="monitor-watch", daemon=True)
        self._watcher.start()

    def _spawn(self, name: str) -> None:
        self.children[name] = subprocess.Popen(self.commands[name], preexec_fn=_die_with_parent)
        log.info("monitor: %s started (pid %d)", name, self.children[name].pid)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for name, child in list(self.children.items()):
                code = child.poll()
                if code is None or self._stop.is_set():
                    continue
                if code == CONFIG_ERROR:
                    log.error(
                        "monitor: %s (pid %d) refused its configuration (exit %d); stopping",
                        name,
                        child.pid,
                        code,
                    )
                    self.failed = True
                    self._stop.set()
                    return
                log.error(
                    "monitor: %s (pid %d) exited with %s; starting it again in %g s",
                    name,
                    child.pid,
                    code,
                    self.RESTART_AFTER_S,
                )
                if self._stop.wait(self.RESTART_AFTER_S):
                    return
                self._spawn(name)

    def wait(self) -> None:
        """Until SIGINT/SIGTERM, or a child refuses its configuration (main thread only)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        while not self._stop.wait(1.0):
            pass

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for name, child in self.children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("monitor: %s (pid %d) did not stop; killing it", name, child.pid)
                child.kill()
                child.wait()


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, even by SIGKILL (Linux).
    Nothing here may import or take a lock: the parent has threads."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def poll(
    ctx: typer.Context,
    data_dir: DataDir = Path("tiandi-data"),
    poll_interval: PollInterval = 60.0,
    probe_interval: ProbeInterval = 1.0,
    probe_port: ProbePort = 7,
    port_offset: PortOffset = 0,
    snmp: Snmp = True,
    probes: Probes = True,
    single_process: SingleProcess = False,
) -> None:
    """Run pollers, probes, link health and alarms, without the API.

    Until Ctrl-C / SIGTERM; `tiandi serve` runs the same with the API. Metrics go to InfluxDB
    when TIANDI_INFLUX_URL is set, else to the embedded store under --data-dir.
    """
    from tiandi.cli import fail

    args = MonitorArgs(
        data_dir, poll_interval, probe_interval, probe_port, port_offset, snmp, probes
    )
    runtime = build_runtime(ctx, args.options())  # checks settings and schema first
    if snmp and probes and not single_process:
        processes = MonitorProcesses(ctx, args)
        processes.start()
        try:
            processes.wait()
        finally:
            processes.stop()
        if processes.failed:
            raise typer.Exit(CONFIG_ERROR)
        return
    try:
        asyncio.run(_run(runtime, status_every_s=60.0))
    except TiandiError as err:
        raise fail(err, CONFIG_ERROR) from err
