"""The monitor over a lab, read through the API as ``tiandi serve`` reads it: the state file.

A small generated network is put in the database and started as a lab (SNMP agents and probe
responders on high ports); the runtime polls and probes it with fast settings, publishing to
the state file, and the API — built on ``state_view`` as ``tiandi serve`` builds it — shows
live state, health, series and alarms. A link cut in the lab turns into a `down` link and an
alarm. The lab and the runtime each run on a thread and loop of their own, like the separate
processes they are in production.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api import security
from api.app import create_app
from api.config import ApiConfig
from api.roles import Role
from inventory.document import InventoryDoc
from inventory.enums import LinkRole
from inventory.generator import generate
from inventory.store import apply_document
from lab.build import lab_secret_defaults
from lab.runner import Lab, LabConfig
from monitors.health import TERRESTRIAL
from monitors.linkstate import Health, LinkHealthReport
from monitors.poller import PollerConfig
from monitors.probes import ProbeConfig
from monitors.state_store import StateStore
from tests.api.support import FAST_HASHER, Users
from tiandi.monitoring_runtime import MonitoringOptions, MonitoringRuntime, state_path, state_view
from tiandi.settings import Settings

T = TypeVar("T")
COUNTY = "bj-tongzhou"


class LoopThread:
    """An event loop on a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, make: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class LabThread(LoopThread):
    def __init__(self, doc: InventoryDoc, offset: int) -> None:
        super().__init__()
        config = LabConfig(
            doc=doc, faces=("snmp", "probes"), control=None, port_offset=offset, seed=1
        )
        self.lab: Lab = self.call(lambda: Lab.start(config))

    def fault(self, kind: str, params: dict[str, Any]) -> None:
        async def apply() -> None:
            self.lab.book.apply(kind, params)
            self.lab.poke()

        self.call(apply)

    def stop(self) -> None:
        self.call(self.lab.stop)
        self.close()


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


@pytest.fixture
def doc(monkeypatch: pytest.MonkeyPatch) -> InventoryDoc:
    d = generate(provinces=1, counties=3, seed=0)
    for name, value in lab_secret_defaults(d).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(security, "_hasher", FAST_HASHER)
    return d


@pytest.fixture
def world(
    doc: InventoryDoc, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[tuple[LabThread, MonitoringRuntime, TestClient, dict[str, str]]]:
    with session_factory() as session, session.begin():
        apply_document(session, doc)
    offset = random.Random().randrange(20_000, 60_000, 10)
    lab = LabThread(doc, offset)
    fast = TERRESTRIAL.scaled(0.1)
    options = MonitoringOptions(
        data_dir=tmp_path / "data",
        poller=PollerConfig(interval_s=2.0),
        probe=ProbeConfig(interval_s=0.05, timeout_s=1.0, window_s=3.0, write_every_s=0.5),
        port_offset=offset,
        evaluate_every_s=0.1,
        policies={
            LinkRole.PRIMARY: fast,
            LinkRole.BACKUP: fast,
            LinkRole.SATELLITE: replace(
                fast,
                degraded_rtt_ms=900.0,
                up_rtt_ms=800.0,
                degraded_jitter_ms=60.0,
                up_jitter_ms=40.0,
            ),
        },
    )
    settings = Settings(environment="development")
    # as `tiandi poll` runs them: the poller and the prober apart, meeting in the state file
    poller = MonitoringRuntime(
        settings,
        session_factory,
        replace(options, probes=False),
        state=StateStore(state_path(options.data_dir)),
    )
    runtime = MonitoringRuntime(
        settings,
        session_factory,
        replace(options, poll=False),
        state=StateStore(state_path(options.data_dir)),
    )
    poller_thread, thread = LoopThread(), LoopThread()
    poller_thread.call(poller.start)
    thread.call(runtime.start)
    config = ApiConfig(secret_key=secrets.token_urlsafe(48))
    view = state_view(settings, session_factory, options.data_dir, stale_after_s=15.0)
    app = create_app(session_factory, config, monitoring=view)
    users = Users(session_factory, config)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield lab, runtime, client, users.as_role(Role.OPERATOR)
    finally:
        thread.call(runtime.stop)
        thread.close()
        poller_thread.call(poller.stop)
        poller_thread.close()
        lab.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the API tests do both
def test_the_api_shows_live_state_health_series_and_alarms(
    world: tuple[LabThread, MonitoringRuntime, TestClient, dict[str, str]],
) -> None:
    lab, runtime, api, headers = world
    primary = f"{COUNTY}-primary"

    def get(path: str, **params: Any) -> Any:
        answer = api.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def health_is(value: str) -> dict[str, Any] | None:
        body: dict[str, Any] = get(f"/links/{primary}/health")
        return body if body["health"] == value else None

    up = wait_for(lambda: health_is("up"), 10.0, f"{primary} up")
    assert up["rtt_ms"] > 0 and up["loss_pct"] == 0.0 and up["samples"] >= 10

    router = wait_for(
        lambda: (b := get(f"/devices/{COUNTY}-r1/state"))["reachable"] and b, 10.0, "a poll"
    )
    assert router["error"] is None and router["values"]
    assert any(i["link"] == primary and i["oper_up"] for i in router["interfaces"])

    def all_up() -> dict[str, Any] | None:
        body: dict[str, Any] = get(f"/sites/{COUNTY}/status")
        return body if {lk["health"] for lk in body["links"]} == {"up"} else None

    status = wait_for(all_up, 15.0, "every link of the site up")
    assert status["status"] == "ok"
    assert {lk["health"] for lk in status["links"]} == {"up"}

    series = wait_for(
        lambda: get("/metrics/series", measurement="link_probe", field="rtt_ms", link=primary)[
            "points"
        ],
        10.0,
        "link_probe points",
    )
    assert all(p["value"] > 0 for p in series)

    lab.fault("cut_link", {"link": primary})
    down = wait_for(lambda: health_is("down"), 10.0, f"{primary} down")
    assert down["reason"].startswith(("loss 100.0% >= 80%", "interface down"))
    alarms = wait_for(
        lambda: get("/alarms", site=COUNTY, active=True)["items"], 5.0, "the link_down alarm"
    )
    assert alarms[0]["kind"] == "link_down" and alarms[0]["target"] == primary
    acked = api.post(f"/alarms/{alarms[0]['id']}/ack", headers=headers)
    assert acked.status_code == 200 and acked.json()["acked_by"] == "operator1"
    assert "links:" in runtime.summary() and "devices:" not in runtime.summary()


def test_a_link_whose_monitor_stopped_is_shown_unknown(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    state = StateStore(state_path(tmp_path))
    now = time.monotonic()
    fresh = LinkHealthReport("a", "s", Health.UP, now - 100, now - 1, None, True, "fine")
    stale = LinkHealthReport("b", "s", Health.DOWN, now - 100, now - 60, None, None, "cut")
    state.put_links([fresh, stale])
    view = state_view(Settings(environment="development"), session_factory, tmp_path)
    assert view.health.report("a") == fresh
    shown = view.health.report("b")
    assert shown is not None and shown.health is Health.UNKNOWN
    assert shown.reason.startswith("not evaluated for 60 s") and "tiandi poll" in shown.reason
    assert view.health.report("c") is None
