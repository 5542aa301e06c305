"""``tiandi serve``: the API, with the monitor (pollers, probes, health, alarms) and the failover
engine beside it.

The monitor runs as child processes, as ``tiandi poll`` runs it (an SNMP poller and a prober
with link health and alarms, each with its own core); the API reads their state from
``<data dir>/state.db`` and series from the metric store. ``--no-monitor`` serves the API
alone: it then shows what a separately started ``tiandi poll`` with the same ``--data-dir``
writes (links not evaluated for 30 s are shown ``unknown``).

The failover engine (``--failover``, the default) runs in this process on a thread of its own
(``tiandi.failover_runtime``): it follows link health through the same state file, moves sites'
default routes over SSH, and serves ``/failover`` and ``/approvals``. SSH host keys are checked
against ``<data dir>/ssh/known_hosts`` (``TIANDI_SSH_HOST_KEYS=strict``; record keys with
``tiandi devices trust``); ``tofu`` is for labs. Run one engine per network: two ``serve``
processes on one inventory would both move routers.

The per-request access log is off unless ``--access-log``: at hundreds of requests a second it
costs the API more CPU than the requests, and every change is in the audit trail anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from inventory.errors import TiandiError
from tiandi.cli import fail, settings_of
from tiandi.cli_poll import (
    DataDir,
    MonitorArgs,
    MonitorProcesses,
    PollInterval,
    PortOffset,
    ProbeInterval,
    ProbePort,
    Probes,
    Snmp,
    build_runtime,
)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="bind address (TIANDI_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (TIANDI_API_PORT)")] = None,
    monitor: Annotated[
        bool, typer.Option("--monitor/--no-monitor", help="run pollers and probes too")
    ] = True,
    data_dir: DataDir = Path("tiandi-data"),
    poll_interval: PollInterval = 60.0,
    probe_interval: ProbeInterval = 1.0,
    probe_port: ProbePort = 7,
    port_offset: PortOffset = 0,
    snmp: Snmp = True,
    probes: Probes = True,
    failover: Annotated[
        bool,
        typer.Option(
            "--failover/--no-failover", help="run the failover engine (moves sites over SSH)"
        ),
    ] = True,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="log every HTTP request")
    ] = False,
) -> None:
    """Run the Tiandi API server, with the monitor and the failover engine beside it."""
    from tiandi.failover_runtime import FailoverOptions, FailoverRuntime
    from tiandi.monitoring_runtime import state_view
    from tiandi.wiring import build_api, database_sessions  # the API stack: only when serving

    settings = settings_of(ctx)
    args = MonitorArgs(
        data_dir, poll_interval, probe_interval, probe_port, port_offset, snmp, probes
    )
    processes = MonitorProcesses(ctx, args) if monitor else None
    if processes is not None:
        build_runtime(ctx, args.options())  # the monitor's settings and schema: fail here, early
    engine: FailoverRuntime | None = None
    try:
        sessions = database_sessions(settings)  # checks the schema before anything starts
        view = state_view(settings, sessions, data_dir)
        if processes is not None:
            processes.start()
        service = None
        if failover:
            engine = FailoverRuntime(
                settings, sessions, FailoverOptions(data_dir=data_dir, port_offset=port_offset)
            )
            service = engine.start()
        app = build_api(settings, sessions, monitoring=view, failover=service)
        uvicorn.run(
            app,
            host=host or settings.api_host,
            port=port or settings.api_port,
            log_level=settings.log_level.lower(),
            proxy_headers=False,
            access_log=access_log,
        )
    except TiandiError as err:
        raise fail(err, 2) from err
    finally:
        # the monitor first: it stops in a second or two, and must not outlive this process
        # if the engine's drain (up to 10 s of running changes) makes a supervisor kill it
        if processes is not None:
            processes.stop()
        if engine is not None:
            engine.stop()
