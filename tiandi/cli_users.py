"""``tiandi users``: API users and their roles. There is no default admin: create one here."""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api import accounts
from api.accounts import User
from api.roles import Role
from inventory.db import make_engine, make_session_factory
from inventory.errors import TiandiError
from tiandi.cli import fail, settings_of

app = typer.Typer(help="API users, their roles and passwords.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="user name (lower-case letters, digits, . _ -)")]


def cli_actor() -> str:
    """How the audit trail names a change made from this command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli"


@contextmanager
def _session(ctx: typer.Context) -> Iterator[Session]:
    """A session in one transaction, committed on success; errors end the command."""
    engine = make_engine(settings_of(ctx).database_url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            yield session
    except TiandiError as err:
        raise fail(err) from err
    except SQLAlchemyError as err:
        first = str(getattr(err, "orig", None) or err).splitlines()[0]
        raise fail(
            TiandiError(f"database error: {first}; did you run `tiandi db upgrade`?")
        ) from err
    finally:
        engine.dispose()


@app.command()
def add(
    ctx: typer.Context,
    name: NameArg,
    role: Annotated[Role, typer.Option("--role", "-r", help="viewer, operator or admin")] = (
        Role.VIEWER
    ),
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="read the password from standard input instead of generating"
        ),
    ] = False,
) -> None:
    """Add a user. Prints a generated password once, unless --password-stdin gives one."""
    if not re.match(accounts.USERNAME_PATTERN, name):
        raise fail(TiandiError(f"{name!r} is not a valid user name: {accounts.USERNAME_PATTERN}"))
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    with _session(ctx) as session:
        _, generated = accounts.create_user(
            session, username=name, role=role, password=password, actor=cli_actor()
        )
    typer.echo(f"added {role} {name}")
    if generated is not None:
        typer.echo(f"password: {generated}")
        typer.echo("(shown once; it is stored only as a hash)", err=True)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List users with their role and whether they are disabled."""
    with _session(ctx) as session:
        users = session.scalars(select(User).order_by(User.username)).all()
        rows = [(u.username, str(u.role), u.disabled, u.created_at) for u in users]
    if not rows:
        typer.echo("no users; add one with `tiandi users add --role admin NAME`")
        return
    width = max(len(r[0]) for r in rows)
    for name, role, disabled, created in rows:
        status = "disabled" if disabled else "enabled"
        typer.echo(f"{name:<{width}}  {role:<8}  {status:<8}  since {created:%Y-%m-%d}")


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    name: NameArg,
    role: Annotated[Role, typer.Argument(help="viewer, operator or admin")],
) -> None:
    """Change a user's role; a running API applies it within 5 s, tokens included."""
    with _session(ctx) as session:
        accounts.update_user(
            session, accounts.get_user(session, name), actor=cli_actor(), role=role
        )
    typer.echo(f"{name} is now {role}")


@app.command()
def disable(ctx: typer.Context, name: NameArg) -> None:
    """Disable a user: a running API refuses their access and API tokens within 5 s."""
    with _session(ctx) as session:
        accounts.update_user(
            session, accounts.get_user(session, name), actor=cli_actor(), disabled=True
        )
    typer.echo(f"{name} is disabled")


@app.command()
def enable(ctx: typer.Context, name: NameArg) -> None:
    """Enable a disabled user again."""
    with _session(ctx) as session:
        accounts.update_user(
            session, accounts.get_user(session, name), actor=cli_actor(), disabled=False
        )
    typer.echo(f"{name} is enabled")


@app.command("reset-password")
def reset_password(ctx: typer.Context, name: NameArg) -> None:
    """Give a user a new generated password, printed once."""
    with _session(ctx) as session:
        generated = accounts.set_password(
            session, accounts.get_user(session, name), password=None, actor=cli_actor()
        )
    typer.echo(f"password: {generated}")
    typer.echo("(shown once; it is stored only as a hash)", err=True)
