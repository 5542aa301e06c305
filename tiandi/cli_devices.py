"""``tiandi devices``: the operator's acts on devices — trusting SSH host keys.

With ``TIANDI_SSH_HOST_KEYS=strict`` (the default) the drivers and the failover engine talk only
to devices whose key is in ``<data dir>/ssh/known_hosts``. ``trust`` reads the key each device
offers now, records it and prints its fingerprint, so that it can be compared with the one the
device shows on its console (``show crypto key mypubkey rsa`` / ``show ip ssh``). A key that
differs from one already recorded is refused unless ``--replace`` (the device was replaced or
re-keyed, and the operator checked). ``known-hosts`` lists what is recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from controllers.drivers import KnownHostsStore, SshRunner, SshSettings
from controllers.drivers.base import DeviceTarget
from controllers.drivers.known_hosts import host_entry, parse_known_hosts
from inventory.db import make_engine, make_session_factory
from inventory.errors import TiandiError
from inventory.model import Device, Site
from tiandi.cli import fail, settings_of
from tiandi.cli_poll import DataDir, PortOffset

app = typer.Typer(help="Operator acts on devices (SSH host keys).", no_args_is_help=True)


def _targets(
    database_url: str, names: list[str], site: str | None, every: bool, port_offset: int
) -> list[DeviceTarget]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            query = select(Device).options(
                selectinload(Device.ssh_profile), selectinload(Device.site)
            )
            if names:
                query = query.where(Device.name.in_(names))
            elif site is not None:
                query = query.join(Device.site).where(Site.name == site)
            elif not every:
                raise TiandiError("name devices, or give --site SITE, or --all")
            devices = list(session.scalars(query.order_by(Device.name)))
            missing = sorted(set(names) - {d.name for d in devices})
            if missing:
                raise TiandiError(f"no device named {', '.join(missing)} in the inventory")
            if site is not None and not devices:
                raise TiandiError(f"no devices at a site named {site!r}")
            targets = []
            for dev in devices:
                if dev.ssh_profile is None or not dev.ssh_profile.ssh_username:
                    if names:
                        raise TiandiError(f"device {dev.name} has no SSH profile")
                    continue
                target = DeviceTarget.from_model(dev)
                if port_offset:
                    target = dataclasses.replace(target, port=target.port + port_offset)
                targets.append(target)
            return targets
    finally:
        engine.dispose()


async def _trust(
    targets: list[DeviceTarget], store: KnownHostsStore, replace: bool, workers: int
) -> int:
    runner = SshRunner(store, SshSettings(workers=workers))
    failed = 0
    try:

        async def one(target: DeviceTarget) -> None:
            nonlocal failed
            place = host_entry(target.host, target.port)
            try:
                key = await runner.trust(target, replace=replace)
            except TiandiError as err:
                failed += 1
                typer.echo(f"{target.name:<28} {place:<24} NOT TRUSTED: {err}", err=True)
                return
            typer.echo(f"{target.name:<28} {place:<24} {key.key_type} {key.fingerprint}")

        await asyncio.gather(*(one(t) for t in targets))
    finally:
        await runner.close()
    return failed


@app.command()
def trust(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="device names")] = None,
    site: Annotated[str | None, typer.Option(help="every device of this site")] = None,
    every: Annotated[bool, typer.Option("--all", help="every device with an SSH profile")] = False,
    replace: Annotated[
        bool, typer.Option(help="replace a different recorded key (after checking it)")
    ] = False,
    data_dir: DataDir = Path("tiandi-data"),
    port_offset: PortOffset = 0,
) -> None:
    """Record the SSH host keys devices offer now, and print their fingerprints."""
    settings = settings_of(ctx)
    try:
        targets = _targets(settings.database_url, names or [], site, every, port_offset)
    except TiandiError as err:
        raise fail(err, 2) from err
    data_dir.mkdir(parents=True, exist_ok=True)
    store = KnownHostsStore.in_data_dir(data_dir)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    failed = asyncio.run(_trust(targets, store, replace, settings.ssh_workers))
    typer.echo(f"{len(targets) - failed} trusted, {failed} not, in {store.path}")
    if failed:
        raise typer.Exit(1)


@app.command("known-hosts")
def known_hosts(data_dir: DataDir = Path("tiandi-data")) -> None:
    """List the recorded SSH host keys (name, key type, fingerprint)."""
    path = KnownHostsStore.in_data_dir(data_dir).path
    if not path.exists():
        typer.echo(f"no keys recorded yet ({path} does not exist)")
        return
    for name, key, revoked in parse_known_hosts(path.read_text(encoding="utf-8")):
        flag = "  REVOKED" if revoked else ""
        typer.echo(f"{name:<28} {key.key_type} {key.fingerprint}{flag}")
