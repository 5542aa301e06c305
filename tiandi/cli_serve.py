"""``tiandi serve``: the API, with the monitor (pollers, probes, health, alarms) beside it.

The monitor runs as child processes, as ``tiandi poll`` runs it (an SNMP poller and a prober
with link health and alarms, each with its own core); the API reads their state from
``<data dir>/state.db`` and series from the metric store. ``--no-monitor`` serves the API
alone: it then shows what a separately started ``tiandi poll`` with the same ``--data-dir``
writes (links not evaluated for 30 s are shown ``unknown``).
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
) -> None:
    """Run the Tiandi API server, and the monitor beside it."""
    from inventory.db import make_engine, make_session_factory
    from tiandi.monitoring_runtime import state_view
    from tiandi.wiring import build_api  # the whole API stack: import only when serving

    settings = settings_of(ctx)
    args = MonitorArgs(
        data_dir, poll_interval, probe_interval, probe_port, port_offset, snmp, probes
    )
    processes = MonitorProcesses(ctx, args) if monitor else None
    if processes is not None:
        build_runtime(ctx, args.options())  # the monitor's settings and schema: fail here, early
    try:
        view = state_view(
            settings, make_session_factory(make_engine(settings.database_url)), data_dir
        )
        app = build_api(settings, monitoring=view)
        if processes is not None:
            processes.start()
        uvicorn.run(
            app,
            host=host or settings.api_host,
            port=port or settings.api_port,
            log_level=settings.log_level.lower(),
            proxy_headers=False,
        )
    except TiandiError as err:
        raise fail(err, 2) from err
    finally:
        if processes is not None:
            processes.stop()
