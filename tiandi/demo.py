"""The demo: the national lab network plus Tiandi on it, with embedded defaults.

``make demo`` runs this. Nothing outside the machine is needed: the inventory is generated,
the database is an SQLite file under ``.tiandi/demo/``, metrics (as monitoring lands) go to the
embedded store, and the lab answers on loopback. An admin login is generated for each run and
printed once. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

import uvicorn
from sqlalchemy import select

from api import accounts
from api.roles import Role
from inventory.db import make_engine, make_session_factory
from inventory.document import InventoryDoc
from inventory.generator import generate
from inventory.store import apply_document
from lab.build import apply_secret_defaults
from lab.runner import Lab, LabConfig, describe
from tiandi import migrate
from tiandi.settings import Settings
from tiandi.wiring import build_api

log = logging.getLogger("tiandi.demo")
DEMO_USER = "demo-admin"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tiandi.demo", description=__doc__)
    parser.add_argument("--counties", type=int, default=1500, help="county sites (default 1500)")
    parser.add_argument("--workdir", type=Path, default=Path(".tiandi/demo"))
    parser.add_argument("--api-port", type=int, default=8400)
    parser.add_argument("--control-port", type=int, default=8790, help="lab control API")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=None,
        help="added to the lab's SNMP/SSH/probe ports (default 0 as root, else 20000)",
    )
    return parser.parse_args()


def _prepare(settings: Settings, counties: int) -> tuple[InventoryDoc, str]:
    """Migrate, load the generated network, and (re)set the demo admin's password."""
    migrate.upgrade(settings.database_url)
    doc = generate(counties=counties)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            summary = apply_document(session, doc)
            user = session.scalar(select(accounts.User).where(accounts.User.username == DEMO_USER))
            if user is None:
                _, password = accounts.create_user(
                    session, username=DEMO_USER, role=Role.ADMIN, password=None, actor="demo"
                )
            else:
                password = accounts.set_password(session, user, password=None, actor="demo")
            assert password is not None
    finally:
        engine.dispose()
    log.info("inventory: %s", summary.as_dict())
    return doc, password


async def _run(args: argparse.Namespace) -> None:
    args.workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        environment="development",
        database_url=f"sqlite:///{(args.workdir / 'tiandi.db').resolve()}",
        api_port=args.api_port,
    )
    doc, password = await asyncio.to_thread(_prepare, settings, args.counties)
    apply_secret_defaults(doc)
    offset = (
        args.port_offset if args.port_offset is not None else (0 if os.geteuid() == 0 else 20000)
    )
    lab = await Lab.start(
        LabConfig(doc=doc, control=("127.0.0.1", args.control_port), port_offset=offset)
    )
    server = uvicorn.Server(
        uvicorn.Config(
            build_api(settings), host="127.0.0.1", port=args.api_port, log_level="warning"
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    banner = [
        "",
        "Tiandi demo",
        *("  " + line for line in describe(lab)),
        f"  API          http://127.0.0.1:{args.api_port}/docs",
        f"  login        {DEMO_USER} / {password}   (admin; new password every run)",
        f"  lab control  http://127.0.0.1:{args.control_port}/docs  "
        f"(e.g. tiandi lab fault cut LINK --control http://127.0.0.1:{args.control_port})",
        "  Ctrl-C stops the demo",
        "",
    ]
    print("\n".join(banner), flush=True)
    try:
        await server.serve()
    finally:
        await lab.stop()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    asyncio.run(_run(_parse()))


if __name__ == "__main__":
    main()
