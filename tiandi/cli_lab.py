"""``tiandi lab``: run the simulated national network and inject faults into it.

``tiandi lab up`` starts every device's SNMP agent, SSH CLI and probe responder in one process
(foreground; Ctrl-C stops it; ``--detach --pid-file F`` for scripts, ``tiandi lab down``
stops that). ``tiandi lab fault ...`` talks to the running lab's control API.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from inventory.document import InventoryDoc
from inventory.errors import TiandiError

if TYPE_CHECKING:
    from lab.runner import Lab

# The lab's modules load when a lab command runs, so `tiandi --help` stays quick.
FACES = ("snmp", "ssh", "probes")
DEFAULT_CONTROL_PORT = 8790
DEFAULT_CONTROL_URL = f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}"

app = typer.Typer(
    help="The simulated network (lab): start, stop, inject faults.", no_args_is_help=True
)
fault_app = typer.Typer(help="Inject and clear faults in a running lab.", no_args_is_help=True)
app.add_typer(fault_app, name="fault")

log = logging.getLogger(__name__)

ControlUrl = Annotated[
    str,
    typer.Option(
        "--control", envvar="TIANDI_LAB_CONTROL", help="URL of the running lab's control API"
    ),
]
ForDuration = Annotated[
    str | None, typer.Option("--for", help="end the fault by itself after this long (30s, 5m)")
]


# ---- up / down --------------------------------------------------------------------------


def _generated(sites: int, provinces: int | None, seed: int) -> InventoryDoc:
    from inventory.generator import generate

    first = provinces if provinces is not None else min(37, max(1, sites // 40))
    last = provinces if provinces is not None else 37
    err: ValueError | None = None
    for p in range(first, last + 1):
        try:
            return generate(provinces=p, counties=sites, seed=seed)
        except ValueError as e:  # too few real counties under the first p provinces
            err = e
    raise typer.BadParameter(str(err), param_hint="--sites")


def _from_database(ctx: typer.Context) -> InventoryDoc:
    from inventory.db import make_engine, make_session_factory
    from inventory.store import load_document
    from tiandi.cli import settings_of

    engine = make_engine(settings_of(ctx).database_url)
    try:
        with make_session_factory(engine)() as session:
            return load_document(session)
    finally:
        engine.dispose()


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--control") from None


@app.command()
def up(
    ctx: typer.Context,
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", "-i", exists=True, dir_okay=False, help="inventory YAML"),
    ] = None,
    sites: Annotated[
        int | None, typer.Option("--sites", min=0, help="generate a network of N counties")
    ] = None,
    provinces: Annotated[
        int | None,
        typer.Option("--provinces", min=0, max=37, help="with --sites: provincial nodes to use"),
    ] = None,
    from_db: Annotated[
        bool, typer.Option("--from-db", help="the inventory in Tiandi's database")
    ] = False,
    seed: Annotated[int, typer.Option(help="seed of the generator and the traffic model")] = 0,
    control: Annotated[
        str, typer.Option("--control", help="HOST:PORT of the control API (loopback only)")
    ] = f"127.0.0.1:{DEFAULT_CONTROL_PORT}",
    no_control: Annotated[bool, typer.Option("--no-control", help="no control API")] = False,
    snmp_port: Annotated[
        int | None, typer.Option(help="one SNMP port for every device (non-root runs)")
    ] = None,
    ssh_port: Annotated[
        int | None, typer.Option(help="one SSH port for every device (non-root runs)")
    ] = None,
    probe_port: Annotated[int, typer.Option(help="UDP port of the probe responders")] = 7,
    port_offset: Annotated[
        int, typer.Option(help="added to every port, e.g. 10000 for 10161/10022/10007")
    ] = 0,
    faces: Annotated[
        str, typer.Option(help=f"comma-separated faces to start ({','.join(FACES)})")
    ] = ",".join(FACES),
    lab_secrets: Annotated[
        bool,
        typer.Option(
            "--lab-secrets",
            help="set fixed lab values for unset secret variables (always on with --sites)",
        ),
    ] = False,
    timeline: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="YAML fault timeline, run from start"),
    ] = None,
    steady_traffic: Annotated[
        bool, typer.Option("--steady-traffic", help="constant background rates")
    ] = False,
    list_all: Annotated[bool, typer.Option("--list", help="print every device")] = False,
    use_uvloop: Annotated[bool, typer.Option("--uvloop/--no-uvloop", help="event loop")] = True,
    detach: Annotated[bool, typer.Option("--detach", help="run in the background")] = False,
    pid_file: Annotated[Path | None, typer.Option(help="with --detach: where the pid goes")] = None,
    log_file: Annotated[
        Path | None, typer.Option(help="with --detach: log file (default: PID_FILE.log)")
    ] = None,
) -> None:
    """Start the lab: every device of the inventory answers SNMP, SSH and probes."""
    from lab.build import apply_secret_defaults
    from lab.runner import LabConfig, daemonize, describe, run_forever
    from tiandi.cli import fail

    chosen = [x for x in (inventory is not None, sites is not None, from_db) if x]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --inventory FILE, --sites N, --from-db")
    if detach and pid_file is None:
        raise typer.BadParameter("--detach needs --pid-file", param_hint="--pid-file")
    try:
        if inventory is not None:
            from inventory.yamlio import read_document

            doc = read_document(inventory)
        elif sites is not None:
            doc = _generated(sites, provinces, seed)
        else:
            doc = _from_database(ctx)
    except TiandiError as err:
        raise fail(err, 2) from err
    if lab_secrets or sites is not None:
        set_now = apply_secret_defaults(doc)
        if set_now:
            typer.secho(
                "WARNING: lab default secrets in use for "
                + ", ".join(set_now)
                + " (value: 'lab-' + the variable name in lower case with '-' for '_'); "
                "never use these outside the lab",
                err=True,
                fg=typer.colors.YELLOW,
                bold=True,
            )
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("asyncssh").setLevel(logging.WARNING)  # a line per listener otherwise
    face_names = tuple(f.strip() for f in faces.split(",") if f.strip())
    config = LabConfig(
        doc=doc,
        seed=seed,
        control=None if no_control else _host_port(control),
        faces=face_names,
        snmp_port=snmp_port,
        ssh_port=ssh_port,
        probe_port=probe_port,
        port_offset=port_offset,
        traffic_period_s=None if steady_traffic else 30.0,
        timeline=timeline,
    )
    if detach:
        assert pid_file is not None
        daemon = daemonize(pid_file, log_file or pid_file.with_name(pid_file.name + ".log"))

        def ready(lab: Lab) -> None:
            daemon.ready("\n".join([*describe(lab, list_all), f"pid {os.getpid()}"]) + "\n")

        try:
            run_forever(config, ready, use_uvloop)
        except BaseException as err:  # report every start failure to the waiting parent
            daemon.failed(f"error: {err}")
            raise
        finally:
            daemon.cleanup()
        return

    def show(lab: Lab) -> None:
        typer.echo("\n".join(describe(lab, list_all)))
        typer.echo("Ctrl-C stops the lab")

    try:
        run_forever(config, show, use_uvloop)
    except TiandiError as err:
        raise fail(err, 1) from err
    except KeyboardInterrupt:  # pragma: no cover - signal arrives before the loop handles it
        pass
    typer.echo("lab stopped")


@app.command()
def down(
    pid_file: Annotated[Path, typer.Option(help="pid file given to lab up --detach")],
) -> None:
    """Stop a lab started with --detach."""
    from lab.runner import stop_daemon
    from tiandi.cli import fail

    try:
        typer.echo(stop_daemon(pid_file))
    except TiandiError as err:
        raise fail(err) from err


# ---- talking to the control API ---------------------------------------------------------


def _call(url: str, method: str, path: str, body: Any = None, content: str | None = None) -> Any:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one request: no per-request log line
    try:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            if content is not None:
                resp = client.request(
                    method, path, content=content, headers={"content-type": "application/yaml"}
                )
            else:
                resp = client.request(method, path, json=body)
    except httpx.TransportError as err:
        typer.echo(
            f"error: no lab control API at {url} ({err}); is `tiandi lab up` running?", err=True
        )
        raise typer.Exit(2) from err
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        if isinstance(detail, dict):
            detail = detail.get("message", json.dumps(detail))
        typer.echo(f"error: {detail}", err=True)
        raise typer.Exit(1)
    return resp.json()


def _fault(url: str, kind: str, params: dict[str, Any]) -> None:
    body = {k: v for k, v in params.items() if v is not None}
    out = _call(url, "POST", f"/faults/{kind}", body)
    typer.echo(out["description"])


@fault_app.command("cut")
def cut(link: str, control: ControlUrl = DEFAULT_CONTROL_URL, for_: ForDuration = None) -> None:
    """Cut a link (carrier down: interface oper-down, counters stop, probes unanswered)."""
    _fault(control, "cut_link", {"link": link, "duration": for_})


@fault_app.command("restore")
def restore(link: str, control: ControlUrl = DEFAULT_CONTROL_URL) -> None:
    """End the cuts and flaps of a link."""
    _fault(control, "restore_link", {"link": link})


@fault_app.command("quality")
def quality(
    link: str,
    loss: Annotated[float | None, typer.Option(help="packet loss, percent")] = None,
    latency: Annotated[float | None, typer.Option(help="round-trip latency, ms")] = None,
    jitter: Annotated[float | None, typer.Option(help="jitter, ms")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="back to the link's own quality")] = False,
    control: ControlUrl = DEFAULT_CONTROL_URL,
    for_: ForDuration = None,
) -> None:
    """Set loss/latency/jitter on a link (or --clear them)."""
    if clear:
        _fault(control, "clear_quality", {"link": link})
        return
    _fault(
        control,
        "link_quality",
        {
            "link": link,
            "loss_pct": loss,
            "latency_ms": latency,
            "jitter_ms": jitter,
            "duration": for_,
        },
    )


@fault_app.command("rain-fade")
def rain_fade(
    province: str,
    depth: Annotated[float, typer.Option(help="fade depth, dB")],
    duration: Annotated[str, typer.Option(help="how long it rains (e.g. 10m)")],
    control: ControlUrl = DEFAULT_CONTROL_URL,
) -> None:
    """Rain over a province: Es/No falls, MODCOD drops, satellite links lose packets."""
    _fault(control, "rain_fade", {"province": province, "depth_db": depth, "duration": duration})


@fault_app.command("device")
def device(
    action: Annotated[str, typer.Argument(help="down, up or reboot")],
    name: Annotated[str, typer.Argument(help="device name")],
    down_for: Annotated[
        str, typer.Option("--down-for", help="reboot: how long it takes to come back")
    ] = "0",
    control: ControlUrl = DEFAULT_CONTROL_URL,
    for_: ForDuration = None,
) -> None:
    """Power a device down or up, or reboot it."""
    if action == "down":
        _fault(control, "device_down", {"device": name, "duration": for_})
    elif action == "up":
        _fault(control, "device_up", {"device": name})
    elif action == "reboot":
        _fault(control, "reboot", {"device": name, "down_for": down_for})
    else:
        raise typer.BadParameter("action is down, up or reboot", param_hint="ACTION")


@fault_app.command("codec-off")
def codec_off(
    name: str, control: ControlUrl = DEFAULT_CONTROL_URL, for_: ForDuration = None
) -> None:
    """Switch a video endpoint off: its calls end, it unregisters."""
    _fault(control, "codec_off", {"device": name, "duration": for_})


@fault_app.command("codec-on")
def codec_on(name: str, control: ControlUrl = DEFAULT_CONTROL_URL) -> None:
    """Switch a video endpoint back on."""
    _fault(control, "codec_on", {"device": name})


@fault_app.command("flap")
def flap(
    link: str,
    down: Annotated[str, typer.Option(help="seconds down per cycle")],
    up: Annotated[str, typer.Option(help="seconds up per cycle")],
    control: ControlUrl = DEFAULT_CONTROL_URL,
    for_: ForDuration = None,
) -> None:
    """Flap a link: down N s / up M s, repeating until restored (or --for)."""
    _fault(control, "flap", {"link": link, "down": down, "up": up, "duration": for_})


@fault_app.command("backbone-outage")
def backbone_outage(
    province: str, control: ControlUrl = DEFAULT_CONTROL_URL, for_: ForDuration = None
) -> None:
    """Cut every primary link of a province and its counties."""
    _fault(control, "backbone_outage", {"province": province, "duration": for_})


@fault_app.command("timeline")
def timeline(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="timeline YAML")],
    control: ControlUrl = DEFAULT_CONTROL_URL,
) -> None:
    """Run a YAML fault timeline, starting now."""
    out = _call(control, "POST", "/timeline", content=file.read_text(encoding="utf-8"))
    typer.echo(f"timeline #{out['id']} started: {out['entries']} entries")


@fault_app.command("list")
def list_faults(control: ControlUrl = DEFAULT_CONTROL_URL) -> None:
    """The active faults."""
    faults = _call(control, "GET", "/faults")
    if not faults:
        typer.echo("no active faults")
    for f in faults:
        left = "" if f["remaining_s"] is None else f" ({f['remaining_s']:.0f} s left)"
        typer.echo(f"#{f['id']:<4} {f['kind']:<16} {f['description']}{left}")


@fault_app.command("clear")
def clear(
    fault_id: Annotated[str, typer.Argument(help="fault id, or 'all'")],
    control: ControlUrl = DEFAULT_CONTROL_URL,
) -> None:
    """End an active fault by id (or all of them)."""
    if fault_id == "all":
        out = _call(control, "DELETE", "/faults")
    else:
        try:
            number = int(fault_id.lstrip("#"))
        except ValueError:
            raise typer.BadParameter("a fault id is a number (see lab fault list)") from None
        out = _call(control, "DELETE", f"/faults/{number}")
    typer.echo(out["description"])


@app.command()
def status(control: ControlUrl = DEFAULT_CONTROL_URL) -> None:
    """Is a lab running, and how big is it?"""
    out = _call(control, "GET", "/health")
    typer.echo(
        f"lab at {control}: {out['devices']} devices, {out['links']} links, "
        f"{out['faults']} active fault(s), up {out['uptime_s']:.0f} s"
    )


def _main() -> None:  # pragma: no cover - python -m tiandi.cli_lab
    app(prog_name="tiandi lab")


if __name__ == "__main__":  # pragma: no cover
    _main()
