"""The ``tiandi`` command. Sub-command groups live in their own modules (cli_*.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from inventory.errors import TiandiError
from tiandi.settings import Settings, load_settings

app = typer.Typer(
    name="tiandi",
    help="Tiandi (天地): network management for the national video-conference network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class State:
    """Options of the root command, handed to sub-commands through the typer context."""

    def __init__(self, config: Path | None, verbose: bool = False) -> None:
        self.config = config
        self.verbose = verbose
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
            if not self.verbose:  # TIANDI_LOG_LEVEL, once it is known; -v overrides it
                logging.getLogger().setLevel(self._settings.log_level)
        return self._settings


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar="TIANDI_CONFIG", help="TOML or YAML settings file", exists=True
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # a line per SSH login ("Connected", "Authentication successful") otherwise; the drivers
    # report every failure as a typed error of their own
    logging.getLogger("paramiko").setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = State(config, verbose)


def settings_of(ctx: typer.Context) -> Settings:
    """Settings for a sub-command; a configuration error ends the command with its message."""
    state: State = ctx.find_root().obj
    try:
        return state.settings
    except TiandiError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err


def fail(err: Exception, code: int = 1) -> typer.Exit:
    """Print a domain error for a person and return the Exit to raise."""
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(code)


def _register() -> None:
    from tiandi import (
        cli_audit,
        cli_db,
        cli_devices,
        cli_inventory,
        cli_lab,
        cli_poll,
        cli_serve,
        cli_users,
    )

    app.add_typer(cli_db.app, name="db")
    app.add_typer(cli_inventory.app, name="inventory")
    app.add_typer(cli_users.app, name="users")
    app.add_typer(cli_audit.app, name="audit")
    app.add_typer(cli_lab.app, name="lab")
    app.add_typer(cli_devices.app, name="devices")
    app.command("serve")(cli_serve.serve)
    app.command("poll")(cli_poll.poll)


_register()
