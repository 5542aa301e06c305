"""``tiandi serve``: the API, with the monitor (pollers, probes, health, alarms) beside it.

The monitor runs on its own thread and event loop (``tiandi.monitoring_runtime``); the API reads
its state. ``--no-monitor`` serves the API alone (the monitoring routes then answer 503).
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
    PollInterval,
    PortOffset,
    ProbeInterval,
    ProbePort,
    Probes,
    Snmp,
    build_runtime,
    monitoring_options,
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
    from tiandi.monitoring_runtime import MonitoringThread
    from tiandi.wiring import build_api  # the whole API stack: import only when serving

    settings = settings_of(ctx)
    thread: MonitoringThread | None = None
    if monitor:
        options = monitoring_options(
            data_dir, poll_interval, probe_interval, probe_port, port_offset, snmp, probes
        )
        thread = MonitoringThread(build_runtime(ctx, options))
    try:
        if thread is not None:
            thread.start()
        app = build_api(settings, monitoring=thread.runtime.view() if thread else None)
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
        if thread is not None:
            thread.stop()
