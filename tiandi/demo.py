"""The demo: the national lab network plus Tiandi on it, with embedded defaults.

``make demo`` runs this. Nothing outside the machine is needed: the inventory is generated,
the database is an SQLite file under ``.tiandi/demo/``, metrics go to the embedded store under
``.tiandi/demo/data/``, and the lab answers on loopback. The lab runs in this process;
``tiandi serve`` (API, SNMP poller and prober, failover engine) runs as a child process, as it
would in production. An admin login is generated for each run and printed once. Ctrl-C stops
everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def _serve(args: argparse.Namespace, settings: Settings, offset: int) -> subprocess.Popen[bytes]:
    """``tiandi serve`` as an operator runs it: the API, the poller and the prober (child
    processes), and the failover engine. Host keys: trust on first use — the lab's keys are new
    every run (the engine logs a warning for it; production keeps ``strict``)."""
    env = {
        **os.environ,
        "TIANDI_ENVIRONMENT": "development",
        "TIANDI_DATABASE_URL": settings.database_url,
        "TIANDI_SSH_HOST_KEYS": "tofu",
        "TIANDI_LOG_LEVEL": "INFO",
    }
    env.pop("TIANDI_CONFIG", None)
    log_file = (args.workdir / "serve.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable, "-c", "from tiandi.cli import app; app()", "serve",
            "--host", "127.0.0.1", "--port", str(args.api_port),
            "--data-dir", str(args.workdir / "data"), "--port-offset", str(offset),
        ],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


async def _until_up(url: str, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"tiandi serve exited ({server.returncode}); see its log")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(*url.split(":"))
            writer.close()
            return
        await asyncio.sleep(0.3)
    raise SystemExit(f"tiandi serve did not listen on {url} within {timeout_s:g} s")


async def _run(args: argparse.Namespace) -> None:
    args.workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        environment="development",
        database_url=f"sqlite:///{(args.workdir / 'tiandi.db').resolve()}",
        api_port=args.api_port,
    )
    doc, password = await asyncio.to_thread(_prepare, settings, args.counties)
    apply_secret_defaults(doc)  # the lab's and serve's credential references (env:)
    offset = (
        args.port_offset if args.port_offset is not None else (0 if os.geteuid() == 0 else 20000)
    )
    lab = await Lab.start(
        LabConfig(doc=doc, control=("127.0.0.1", args.control_port), port_offset=offset)
    )
    server: subprocess.Popen[bytes] | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        server = _serve(args, settings, offset)
        await _until_up(f"127.0.0.1:{args.api_port}", server, 120)
        county = next(s for s in doc.sites if s.tier.value == "county")
        primary = next(lk.name for lk in county.links if lk.role.value == "primary")
        control = f"http://127.0.0.1:{args.control_port}"
        banner = [
            "",
            "Tiandi demo",
            *("  " + line for line in describe(lab)),
            f"  API          http://127.0.0.1:{args.api_port}/docs",
            f"  login        {DEMO_USER} / {password}   (admin; new password every run)",
            f"  lab control  {control}/docs",
            f"  server log   {args.workdir / 'serve.log'}",
            "",
            "  The start-up (4,752 first polls, 1,538 routers read over SSH) loads this machine",
            "  for a minute or two: links look degraded until it passes. Then try a failover:",
            f"    tiandi lab fault cut {primary} --control {control}",
            f"    GET /failover/sites/{county.name}   (off the cut link within seconds: to its",
            "    backup, or to the satellite if the backup has not been up for the 3 min",
            "    hold-down; it fails back on its own once the link is stable)",
            "  Ctrl-C stops the demo",
            "",
        ]
        print("\n".join(banner), flush=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if server.poll() is not None:
                log.error("tiandi serve exited (%s); stopping the demo", server.returncode)
                break
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(server.wait, 60)
            except subprocess.TimeoutExpired:
                server.kill()
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
