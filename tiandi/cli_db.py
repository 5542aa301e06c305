"""``tiandi db``: schema migrations."""

from __future__ import annotations

import typer

from tiandi.cli import settings_of

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database schema to the newest version."""
    from tiandi import migrate  # alembic is slow to import; only this command needs it

    url = settings_of(ctx).database_url
    migrate.upgrade(url)
    typer.echo(f"database schema at {', '.join(migrate.current_heads())}")
