"""``tiandi inventory``: generate, validate, import and export the inventory."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from controllers import audit
from inventory.db import make_engine, make_session_factory
from inventory.errors import InventoryInvalid, TiandiError
from inventory.store import apply_document, load_document
from inventory.yamlio import dump_document, read_document
from tiandi.cli import fail, settings_of

app = typer.Typer(
    help="The inventory: sites, devices, links, credential profiles.", no_args_is_help=True
)


class ExportFormat(enum.StrEnum):
    YAML = "yaml"
    ANSIBLE = "ansible"


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="YAML file to write")],
    provinces: Annotated[int, typer.Option(min=1, max=37, help="provincial-level nodes")] = 37,
    counties: Annotated[int, typer.Option(min=0, max=5000, help="county sites")] = 1500,
    seed: Annotated[int, typer.Option(help="same seed, same network")] = 0,
) -> None:
    """Write a realistic national network (ministry, provinces, counties) as inventory YAML."""
    from inventory.generator import generate as build

    doc = build(provinces=provinces, counties=counties, seed=seed)
    _write(dump_document(doc), out)
    n_dev = sum(len(s.devices) for s in doc.sites)
    n_links = sum(len(s.links) for s in doc.sites)
    typer.echo(f"wrote {out}: {len(doc.sites)} sites, {n_dev} devices, {n_links} links", err=True)


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="inventory YAML file")]) -> None:
    """Check a file and report every problem at once (file, path in the document, reason)."""
    try:
        doc = read_document(file)
    except InventoryInvalid as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{len(err.problems)} problem(s) in {file}", err=True)
        raise typer.Exit(1) from err
    n_dev = sum(len(s.devices) for s in doc.sites)
    typer.echo(f"{file}: valid ({len(doc.sites)} sites, {n_dev} devices)")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="inventory YAML file")],
    prune: Annotated[
        bool, typer.Option(help="delete what the file no longer lists (--no-prune merges)")
    ] = True,
    dry_run: Annotated[bool, typer.Option(help="report what would change, change nothing")] = False,
) -> None:
    """Make the database hold the file's inventory, in one transaction: all or nothing."""
    settings = settings_of(ctx)
    try:
        doc = read_document(file)
    except InventoryInvalid as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{len(err.problems)} problem(s); nothing was imported", err=True)
        raise typer.Exit(1) from err
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            summary = apply_document(session, doc, prune=prune)
            _record_import(session, file, summary.as_dict())
            if dry_run:
                session.rollback()
    except SQLAlchemyError as err:
        msg = f"database error, nothing was imported: {err}; check the database URL"
        raise fail(TiandiError(msg)) from err
    finally:
        engine.dispose()
    verb = "would change" if dry_run else "imported"
    parts = [
        f"{bucket} " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        for bucket, counts in summary.as_dict().items()
        if counts
    ]
    typer.echo(f"{verb} {file}: " + ("; ".join(parts) if parts else "no changes"))


def _record_import(session: Session, file: Path, summary: dict[str, dict[str, int]]) -> None:
    audit.append(
        session,
        actor="cli",
        action="inventory.import",
        target_type="inventory",
        target=str(file),
        before=None,
        after=summary,
    )


@app.command()
def export(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="file (default stdout)")] = None,
    format: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.YAML,
) -> None:
    """Write the database's inventory as YAML, or as an Ansible inventory (no secrets)."""
    settings = settings_of(ctx)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            doc = load_document(session)
    except SQLAlchemyError as err:
        msg = f"cannot read the inventory database: {err}; run `tiandi db upgrade`"
        raise fail(TiandiError(msg)) from err
    finally:
        engine.dispose()
    if format is ExportFormat.ANSIBLE:
        from inventory.ansible_export import dump_ansible_inventory

        _write(dump_ansible_inventory(doc), out)
    else:
        _write(dump_document(doc), out)
