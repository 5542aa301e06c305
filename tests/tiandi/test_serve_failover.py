"""``tiandi serve`` on the lab moves a county whose primary link is cut, with nobody touching it.

Two real processes, as an operator runs them: ``tiandi lab up --from-db`` (SSH CLIs, SNMP agents
and probe responders on high ports, with its control API) and ``tiandi serve`` (API, the poller
and prober child processes, the failover engine), on an SQLite database holding a small generated
network. The lab's control API cuts the county's primary link; the test then only watches: the
failover API shows the site on its backup with the event that moved it, the lab's router has its
default route on the backup link (the lab's own view, not Tiandi's), and the audit trail has the
change with the commands sent.

Production health thresholds, failover policy and strict SSH host keys (recorded first with
``tiandi devices trust``, as an operator would); only probing is faster (every 0.2 s) so the
test does not wait for a 1 s probe window to fill.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from api import accounts, security
from api.roles import Role
from inventory.db import make_engine, make_session_factory
from inventory.document import InventoryDoc
from inventory.enums import LinkRole
from inventory.generator import generate
from inventory.store import apply_document
from lab.build import lab_secret_defaults
from tests.harness import free_ports
from tiandi.migrate import upgrade

T = TypeVar("T")
TIANDI = [sys.executable, "-c", "from tiandi.cli import app; app()"]


def free_port() -> int:
    return free_ports(1)[0]


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, *logs: Path) -> T:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            found = check()
        except httpx.HTTPError as err:
            found, last = None, err
        if found:
            return found
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    raise AssertionError(f"{what}: not within {timeout_s:g} s (last error {last!r})\n{tails}")


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.children: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Path:
        log = self.tmp / f"{name}.log"
        out = log.open("wb")
        child = subprocess.Popen(
            [*TIANDI, *argv], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp
        )
        self.children.append((child, out))
        return log

    def stop(self) -> None:
        for child, out in reversed(self.children):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            out.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop()


def county_links(doc: InventoryDoc) -> tuple[str, dict[LinkRole, str], str]:
    site = next(s for s in doc.sites if s.tier.value == "county")
    links = {lk.role: lk.name for lk in site.links}
    router = next(lk.router for lk in site.links if lk.role is LinkRole.PRIMARY)
    return site.name, links, router


def network_db(tmp_path: Path, counties: int, users: dict[str, Role]) -> tuple[InventoryDoc, str]:
    """A generated network in a fresh SQLite database (with these users); (doc, URL)."""
    doc = generate(provinces=1, counties=counties, seed=0)
    url = f"sqlite:///{tmp_path / 'tiandi.db'}"
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as session, session.begin():
        apply_document(session, doc)
        for name, role in users.items():
            accounts.create_user(session, username=name, role=role, password=None, actor="test")
    engine.dispose()
    return doc, url


def test_a_cut_primary_moves_the_county_to_its_backup(processes: Processes, tmp_path: Path) -> None:
    doc, url = network_db(tmp_path, 3, {"noc": Role.OPERATOR})
    secret = secrets.token_urlsafe(48)
    env = {
        **os.environ,
        **lab_secret_defaults(doc),
        "TIANDI_DATABASE_URL": url,
        "TIANDI_SECRET_KEY": secret,
    }
    env.pop("TIANDI_INFLUX_URL", None)
    env.pop("TIANDI_CONFIG", None)
    offset = random.Random().randrange(20_000, 60_000, 10)
    control, api = free_port(), free_port()
    lab_log = processes.start(
        "lab",
        ["lab", "up", "--from-db", "--port-offset", str(offset),
         "--control", f"127.0.0.1:{control}", "--faces", "ssh,snmp,probes"],
        env,
    )  # fmt: skip
    lab = httpx.Client(base_url=f"http://127.0.0.1:{control}", timeout=10)
    wait_for(lambda: lab.get("/health").status_code == 200, 120, "the lab is up", lab_log)

    # strict host keys (the default): the operator records the lab's keys first
    trusted = subprocess.run(
        [*TIANDI, "devices", "trust", "--all", "--port-offset", str(offset),
         "--data-dir", "data"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr
    devices = sum(len(s.devices) for s in doc.sites)
    assert f"{devices} trusted, 0 not" in trusted.stdout, trusted.stdout
    assert trusted.stdout.count("SHA256:") == devices

    serve_log = processes.start(
        "serve",
        ["serve", "--port", str(api), "--port-offset", str(offset), "--data-dir", "data",
         "--probe-interval", "0.2", "--poll-interval", "10"],
        env,
    )  # fmt: skip
    token = security.issue_access_token("noc", key=secret, minutes=30).token
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{api}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    site, links, router = county_links(doc)

    def settled() -> dict[str, Any] | None:
        r = http.get(f"/failover/sites/{site}")
        if r.status_code != 200:
            return None
        body: dict[str, Any] = r.json()
        healthy = all(lk["health"] == "up" for lk in body["links"])
        on_primary = body["current_link"] == links[LinkRole.PRIMARY]
        return body if body["live"] and healthy and on_primary else None

    before = wait_for(settled, 150, "the county settled on its primary", serve_log, lab_log)
    assert before["state"] != "all_down"

    cut = lab.post("/faults/cut_link", json={"link": links[LinkRole.PRIMARY]})
    assert cut.status_code == 201, cut.text
    t0 = time.monotonic()

    def moved() -> dict[str, Any] | None:
        body: dict[str, Any] = http.get(f"/failover/sites/{site}").json()
        return body if body["current_link"] == links[LinkRole.BACKUP] else None

    after = wait_for(moved, 60, "the county moved to its backup", serve_log, lab_log)
    took = time.monotonic() - t0
    primary = next(lk for lk in after["links"] if lk["name"] == links[LinkRole.PRIMARY])
    assert primary["health"] == "down"

    def switched() -> dict[str, Any] | None:
        body = http.get(f"/failover/sites/{site}").json()
        return next(
            (
                e
                for e in body["events"]
                if e["kind"] == "switched" and e["to_link"] == links[LinkRole.BACKUP]
            ),
            None,
        )

    switch = wait_for(switched, 10, "the switch is recorded", serve_log)
    decided = next(e for e in after["events"] if e["kind"] == "decided")
    assert decided["numbers"]["from_health"] == "down", decided
    assert switch["ok"] is True and switch["actor"] != "noc"
    assert switch["commands"] and switch["verification"]
    assert links[LinkRole.PRIMARY] in switch["reason"] or "down" in switch["reason"]

    # the lab's own view of its router: the default route now leaves by the backup link
    device = lab.get(f"/devices/{router}").json()
    assert device["active_route_link"] == links[LinkRole.BACKUP], device

    events = http.get("/failover/events", params={"site": site}).json()
    assert any(e.get("change_id") == switch["change_id"] for e in _items(events))
    assert took < 30, f"moved after {took:.1f} s"

    # the audit trail (admin only) has the change, chained
    admin_env_token = _admin_token(url, secret)
    audit = httpx.get(
        f"http://127.0.0.1:{api}/audit",
        params={"target_type": "site", "target": site},
        headers={"Authorization": f"Bearer {admin_env_token}"},
        timeout=10,
    )
    assert audit.status_code == 200, audit.text
    records = _items(audit.json())
    moves = [r for r in records if r["action"].startswith("failover.") and r["after"]]
    assert any(
        r["action"] == "failover.switched"
        and r["after"]["link"] == links[LinkRole.BACKUP]
        and r["after"]["ok"] is True
        and r["after"]["commands"]
        for r in moves
    ), json.dumps(records, indent=1)
    verify = httpx.get(
        f"http://127.0.0.1:{api}/audit/verify",
        headers={"Authorization": f"Bearer {admin_env_token}"},
        timeout=30,
    ).json()
    assert verify["ok"] is True, verify


def _items(body: Any) -> list[Any]:
    if isinstance(body, dict):
        return list(body.get("items", []))
    return list(body)


def _admin_token(url: str, secret: str) -> str:
    engine = make_engine(url)
    with make_session_factory(engine)() as session, session.begin():
        accounts.create_user(
            session, username="auditor", role=Role.ADMIN, password=None, actor="test"
        )
    engine.dispose()
    return security.issue_access_token("auditor", key=secret, minutes=30).token


def test_trust_names_what_it_cannot_do(tmp_path: Path) -> None:
    doc, url = network_db(tmp_path, 1, {})
    env = {**os.environ, "TIANDI_DATABASE_URL": url, "TIANDI_ENVIRONMENT": "development"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TIANDI, "devices", *argv, "--data-dir", "data"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    unknown = run("trust", "no-such-router")
    assert unknown.returncode == 2
    assert "no device named no-such-router in the inventory" in unknown.stderr
    nothing = run("trust")
    assert nothing.returncode == 2 and "--site SITE, or --all" in nothing.stderr

    # nothing listens on the device's port (no lab): refused by name, nothing recorded
    router = next(d.name for s in doc.sites for d in s.devices if d.kind.value == "router")
    down = run("trust", router, "--port-offset", str(free_port() - 22))
    assert down.returncode == 1
    assert f"{router}" in down.stderr and "NOT TRUSTED" in down.stderr
    assert "0 trusted, 1 not" in down.stdout
    listed = run("known-hosts")
    assert listed.returncode == 0 and "SHA256:" not in listed.stdout
