"""``tiandi audit``: check the hash-chained audit trail."""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from controllers import audit
from inventory.db import make_engine, make_session_factory
from inventory.errors import TiandiError
from tiandi.cli import fail, settings_of

app = typer.Typer(help="The audit trail of every change.", no_args_is_help=True)


@app.command()
def verify(ctx: typer.Context) -> None:
    """Recompute every record's hash and link. Exit 0 if the chain is intact, 1 naming the first
    broken record otherwise. Keep the printed head hash elsewhere: deleting the newest records
    can only be detected against it."""
    engine = make_engine(settings_of(ctx).database_url)
    try:
        with make_session_factory(engine)() as session:
            result = audit.verify(session)
    except SQLAlchemyError as err:
        first = str(getattr(err, "orig", None) or err).splitlines()[0]
        raise fail(
            TiandiError(f"cannot read the audit trail: {first}; did you run `tiandi db upgrade`?"),
            code=2,
        ) from err
    finally:
        engine.dispose()
    if result.ok:
        typer.echo(str(result))
        return
    typer.echo(str(result), err=True)
    raise typer.Exit(1)
