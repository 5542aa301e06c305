"""The lab's HTTP control API: read the network, inject and clear faults, run timelines.

Served by uvicorn inside the lab's own event loop, on 127.0.0.1 only. The endpoints are
``async def`` on purpose — unlike Tiandi's API, whose blocking endpoints are plain ``def`` — so
they run on the loop thread, the only thread that touches the ``LabNetwork``; a ``def``
endpoint would run in a worker thread and race the SNMP/SSH faces.

- ``GET /health`` — counts and uptime.
- ``GET /devices`` (``?kind=&site=``), ``GET /devices/{name}`` — what answers where, and the
  state of one device (interfaces with counters, routes, modem values, calls).
- ``GET /links`` (``?site=``) — role, probe address, cut, quality, rates, whether it carries.
- ``GET /faults`` — the active faults; ``POST /faults/{kind}`` with the kind's parameters as a
  JSON object (``lab.faults.FAULT_KINDS`` and ``ACTION_KINDS``) → 201 with a description;
  ``DELETE /faults/{id}``; ``DELETE /faults`` clears all.
- ``POST /timeline`` — a timeline (YAML text, or JSON) that starts now; ``GET /timeline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import yaml
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from inventory.enums import DeviceKind
from lab.faults import (
    ALL_KINDS,
    FaultBook,
    FaultError,
    FaultNotActive,
    FaultTargetUnknown,
)
from lab.state import Device, LabNetwork, Link
from lab.timeline import TimelineEntry, TimelineInvalid, parse_timeline, run_timeline
from lab.traffic import active_default_route, link_usable

DEFAULT_CONTROL_PORT = 8790
DEFAULT_CONTROL_URL = f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}"


@dataclass
class TimelineRun:
    id: int
    entries: list[TimelineEntry]
    started: float
    task: asyncio.Task[list[str]] | None = None
    done: list[str] = field(default_factory=list)

    def as_dict(self, now: float) -> dict[str, Any]:
        finished = self.task is not None and self.task.done()
        return {
            "id": self.id,
            "entries": len(self.entries),
            "age_s": round(now - self.started, 3),
            "finished": finished,
            "events": list(self.done),
        }


class LabControl:
    """What the control API acts on: the network, its faults and the running timelines."""

    def __init__(self, book: FaultBook, on_change: Callable[[], None] | None = None) -> None:
        self.book = book
        self.net: LabNetwork = book.net
        self.on_change = on_change or (lambda: None)
        self.timelines: dict[int, TimelineRun] = {}
        self._next_timeline = 1
        self.started = self.net.now()

    def start_timeline(self, entries: list[TimelineEntry]) -> TimelineRun:
        """Run a checked timeline relative to now in the running loop."""
        run = TimelineRun(self._next_timeline, entries, self.net.now())
        self._next_timeline += 1
        run.task = asyncio.get_running_loop().create_task(self._run(run))
        self.timelines[run.id] = run
        return run

    async def _run(self, run: TimelineRun) -> list[str]:
        def changed() -> None:
            self.on_change()

        done = await run_timeline(run.entries, self.book, run.started, changed)
        run.done = done
        return done

    async def stop(self) -> None:
        tasks = [r.task for r in self.timelines.values() if r.task and not r.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ---- views --------------------------------------------------------------------------------


def device_summary(dev: Device, now: float) -> dict[str, Any]:
    return {
        "name": dev.name,
        "kind": dev.kind.value,
        "site": dev.site,
        "province": dev.province,
        "vendor": dev.vendor,
        "platform": dev.platform,
        "model": dev.model,
        "mgmt_address": dev.mgmt_address,
        "snmp_port": dev.snmp_port,
        "ssh_port": dev.ssh_port,
        "powered": dev.powered,
        "uptime_s": round(now - dev.boot_time, 2),
    }


def device_detail(net: LabNetwork, dev: Device, now: float) -> dict[str, Any]:
    out = device_summary(dev, now)
    if dev.kind is DeviceKind.ROUTER:
        active = active_default_route(net, dev)
        out["interfaces"] = [
            {
                "index": i.index,
                "name": i.name,
                "link": i.link,
                "ip_address": i.ip_address,
                "speed_bps": i.speed_bps,
                "admin_up": i.admin_up,
                "oper_up": i.oper_up,
                "in_rate_bps": i.in_rate_bps,
                "out_rate_bps": i.out_rate_bps,
                "hc_in_octets": i.octets(now)[0],
                "hc_out_octets": i.octets(now)[1],
                "in_errors": i.in_errors,
            }
            for i in dev.interfaces
        ]
        out["static_routes"] = [vars(r).copy() for r in dev.static_routes]
        out["saved_routes"] = [vars(r).copy() for r in dev.saved_routes]
        out["active_route_link"] = active[1].name if active else None
    elif dev.kind is DeviceKind.SATELLITE_TERMINAL:
        out.update(
            esno_db10=dev.esno_db10,
            rx_level_dbm10=dev.rx_level_dbm10,
            tx_power_dbm10=dev.tx_power_dbm10,
            demod_locked=dev.demod_locked,
            modcod=dev.modcod,
            tx_enabled=dev.tx_enabled,
            buc_alarm=dev.buc_alarm,
            lnb_alarm=dev.lnb_alarm,
        )
    elif dev.kind is DeviceKind.VIDEO_ENDPOINT:
        out.update(
            registered=dev.registered,
            default_call_rate_kbps=dev.default_call_rate_kbps,
            calls=[vars(c).copy() for c in dev.calls],
        )
    elif dev.kind is DeviceKind.MCU:
        out.update(ports_total=dev.ports_total, conferences=dict(dev.conferences))
    return out


def link_view(net: LabNetwork, link: Link) -> dict[str, Any]:
    loss, latency, jitter = link.effective()
    router = net.devices.get(link.router)
    iface = router.interface_by_name(link.interface) if router else None
    active = active_default_route(net, router) if router else None
    return {
        "name": link.name,
        "role": link.role.value,
        "site": link.site,
        "router": link.router,
        "interface": link.interface,
        "terminal": link.terminal,
        "capacity_kbps": link.capacity_kbps,
        "probe_address": link.probe_address,
        "cut": link.cut,
        "usable": link_usable(net, link),
        "carrying": active is not None and active[1].name == link.name,
        "loss_pct": round(loss * 100.0, 3),
        "latency_ms": latency,
        "jitter_ms": jitter,
        "in_rate_bps": iface.in_rate_bps if iface else 0.0,
        "out_rate_bps": iface.out_rate_bps if iface else 0.0,
    }


# ---- the app ------------------------------------------------------------------------------


def _error(status: int, err: Exception) -> HTTPException:
    return HTTPException(status_code=status, detail=str(err))


def create_app(control: LabControl) -> FastAPI:
    app = FastAPI(
        title="Tiandi lab control",
        description="Inject faults into the simulated network and read its state.",
        version="1",
    )
    net = control.net
    book = control.book

    @app.get("/health")
    async def health() -> dict[str, Any]:
        now = net.now()
        return {
            "devices": len(net.devices),
            "links": len(net.links),
            "sites": len(net.sites),
            "faults": len(book.active_faults()),
            "uptime_s": round(now - control.started, 3),
        }

    @app.get("/devices")
    async def devices(kind: str | None = None, site: str | None = None) -> list[dict[str, Any]]:
        now = net.now()
        return [
            device_summary(d, now)
            for d in net.devices.values()
            if (kind is None or d.kind.value == kind) and (site is None or d.site == site)
        ]

    @app.get("/devices/{name}")
    async def device(name: str) -> dict[str, Any]:
        dev = net.devices.get(name)
        if dev is None:
            raise HTTPException(404, f"no device named {name!r}")
        return device_detail(net, dev, net.now())

    @app.get("/links")
    async def links(site: str | None = None) -> list[dict[str, Any]]:
        return [link_view(net, lk) for lk in net.links.values() if site is None or lk.site == site]

    @app.get("/faults")
    async def faults() -> list[dict[str, Any]]:
        now = net.now()
        return [f.as_dict(now) for f in book.active_faults()]

    @app.post("/faults/{kind}", status_code=201)
    async def start_fault(
        kind: str, params: dict[str, Any] | None = Body(default=None)
    ) -> dict[str, Any]:
        if kind not in ALL_KINDS:
            raise HTTPException(404, f"unknown fault kind {kind!r}; known: {', '.join(ALL_KINDS)}")
        try:
            outcome = book.apply(kind, params or {})
        except FaultTargetUnknown as err:
            raise _error(404, err) from err
        except FaultError as err:
            raise _error(422, err) from err
        control.on_change()
        return outcome.as_dict(net.now())

    @app.delete("/faults/{fault_id}")
    async def clear_fault(fault_id: int) -> dict[str, Any]:
        try:
            outcome = book.clear(fault_id)
        except FaultNotActive as err:
            raise _error(404, err) from err
        control.on_change()
        return outcome.as_dict(net.now())

    @app.delete("/faults")
    async def clear_all() -> dict[str, Any]:
        cleared = book.clear_all()
        control.on_change()
        return {
            "description": f"cleared {len(cleared)} fault(s)",
            "cleared": [f.id for f in cleared],
        }

    @app.post("/timeline", status_code=202)
    async def post_timeline(request: Request) -> JSONResponse:
        body = (await request.body()).decode("utf-8", errors="replace")
        try:
            if "json" in request.headers.get("content-type", ""):
                data: Any = json.loads(body)
            else:
                data = yaml.safe_load(body)
        except (ValueError, yaml.YAMLError) as err:
            raise HTTPException(422, f"timeline body is neither JSON nor YAML: {err}") from err
        try:
            entries = parse_timeline(data, book)
        except TimelineInvalid as err:
            raise HTTPException(422, {"message": str(err), "problems": err.problems}) from err
        run = control.start_timeline(entries)
        return JSONResponse(run.as_dict(net.now()), status_code=202)

    @app.get("/timeline")
    async def timelines() -> list[dict[str, Any]]:
        now = net.now()
        return [r.as_dict(now) for r in control.timelines.values()]

    return app


# ---- serving ------------------------------------------------------------------------------


class ControlServer(uvicorn.Server):
    """uvicorn in the caller's loop, leaving signal handling to the lab runner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def check_loopback(host: str) -> None:
    """The control API has no authentication: it may only listen on a loopback address."""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise ValueError(
            f"the lab control API binds to loopback only (127.0.0.1); {host!r} is not loopback"
        )


async def serve_control(
    control: LabControl, host: str, port: int
) -> tuple[ControlServer, asyncio.Task[None]]:
    """Start the control API; returns once it listens (raises OSError if it cannot bind)."""
    check_loopback(host)
    # Bind here, not in uvicorn: uvicorn answers a bind failure with sys.exit().
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(
            err.errno, f"lab control API cannot listen on {host}:{port}: {err.strerror}"
        ) from err
    config = uvicorn.Config(
        create_app(control),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = ControlServer(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            sock.close()
            raise OSError(f"lab control API did not start on {host}:{port}: {task.exception()}")
        await asyncio.sleep(0.01)
    return server, task


async def stop_control(server: ControlServer, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task
