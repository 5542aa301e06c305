"""Latency of the status API under a fixed offered load, with ``tiandi serve`` on a national lab.

Builds a 1,500-county inventory (``inventory.generator``, all 37 provincial nodes) in a fresh
SQLite database, starts the lab on it (``tiandi lab up --from-db``: SNMP agents and probe
responders, high ports) and ``tiandi serve`` with the monitor (pollers every 60 s, probes every
second on every link) — both as separate processes. Once the links have a health, this process
drives ``GET /sites/{name}/status`` and ``GET /links/{name}/health`` for random sites (half
each) at a fixed offered rate, open loop: requests are sent at their scheduled times over
``--connections`` keep-alive connections, and a request's latency counts from its scheduled time
(a server that falls behind shows it, no coordinated omission). The client is a minimal
HTTP/1.1 writer/reader on asyncio streams, so that it costs the server's cores little.

``tiandi serve`` runs as in production: with the monitor and the failover engine (the lab has
its SSH CLIs, host keys are trusted on first use); the drive starts once the engine has read
every router (its start-up reconciliation), every link has a health, and at most 1 % as many
alarms as links are active (start-up load shows as probe jitter for a window's length).
``--no-failover`` measures the API and the monitor alone. Each child runs in a process group
of its own, and whatever of it survives its stop is killed, so a monitor process left behind
cannot load the next run.

The last line is ``status_p99_ms=<p99 of GET /sites/{name}/status, ms> rps=<achieved rate>``
(the line before gives p50/p99 of both routes). Goal: p99 <= 25 ms at 500 req/s.

Run: ``.venv/bin/python bench/api_load.py [--counties 1500] [--rate 500] [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api import accounts, security
from api.roles import Role
from inventory.db import make_engine, make_session_factory
from inventory.generator import generate
from inventory.store import apply_document
from lab.build import lab_secret_defaults
from tiandi.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
TIANDI = str(ROOT / ".venv" / "bin" / "tiandi")


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"status": [], "health": []})
    timeline: list[tuple[float, str, float]] = field(default_factory=list)  # (sent, kind, ms)
    errors: dict[int, int] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0

    def add(self, kind: str, latency_s: float, status: int, done: float) -> None:
        if status != 200:
            self.errors[status] = self.errors.get(status, 0) + 1
        self.latencies[kind].append(latency_s * 1000.0)
        self.timeline.append((done - latency_s - self.first, kind, latency_s * 1000.0))
        self.last = max(self.last, done)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))]


async def drive(
    host: str,
    port: int,
    token: str,
    requests: list[tuple[str, str]],
    rate: float,
    seconds: float,
    connections: int,
) -> Results:
    loop = asyncio.get_running_loop()
    results = Results()
    queue: asyncio.Queue[tuple[float, str, bytes] | None] = asyncio.Queue()
    rng = random.Random(7)

    def encode(path: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
        ).encode("ascii")

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await queue.get()) is not None:
                scheduled, kind, request = item
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                done = loop.time()
                results.add(kind, done - scheduled, status, done)
        finally:
            writer.close()

    workers = [loop.create_task(worker()) for _ in range(connections)]
    total = int(rate * seconds)
    start = loop.time() + 0.2
    results.first = start
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, path = rng.choice(requests)
        queue.put_nowait((due, kind, encode(path)))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return results


def wait_http(url: str, token: str | None, timeout_s: float, ready: str | None = None) -> str:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        request = urllib.request.Request(url)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=5) as answer:
            last = str(answer.read().decode("utf-8"))
            if ready is None or ready in last:
                return last
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready within {timeout_s:g} s (last answer: {last[:200]})")


def wait_reconciled(base: str, token: str, sites: int, timeout_s: float) -> None:
    """Until the failover engine has read every site's router once (a ``discovered`` event per
    site on this fresh database)."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        page = json.loads(wait_http(f"{base}/failover/events?kind=discovered&limit=1", token, 60))
        seen = int(page["total"])
        if seen >= sites:
            print(f"failover engine: {seen} routers read", flush=True)
            return
        time.sleep(2)
    raise SystemExit(f"the failover engine read {seen} of {sites} routers in {timeout_s:g} s")


def wait_settled(base: str, token: str, most: int, timeout_s: float) -> None:
    """Until at most ``most`` alarms are active."""
    deadline = time.monotonic() + timeout_s
    active = -1
    while time.monotonic() < deadline:
        page = json.loads(wait_http(f"{base}/alarms?active=true&limit=1", token, 60))
        active = int(page["total"])
        if active <= most:
            print(f"settled: {active} active alarms", flush=True)
            return
        time.sleep(2)
    print(f"not settled: {active} active alarms after {timeout_s:g} s; driving anyway", flush=True)


def start_lab(env: dict[str, str], offset: int, log: Path) -> subprocess.Popen[str]:
    lab = subprocess.Popen(
        [
            TIANDI,
            "lab",
            "up",
            "--from-db",
            "--no-control",
            "--faces",
            "snmp,ssh,probes",
            "--port-offset",
            str(offset),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    ready = threading.Event()

    def pump() -> None:
        assert lab.stdout is not None
        with log.open("w", encoding="utf-8") as out:
            for line in lab.stdout:
                out.write(line)
                out.flush()
                if line.startswith("lab up"):
                    ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(180):
        lab.terminate()
        raise SystemExit(f"the lab did not start; see {log}")
    return lab


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 60 s; then SIGKILL whatever is left of its process group
    (started with ``start_new_session``, so the group is the child's id)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counties", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=500.0, help="offered requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=18400)
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    parser.add_argument(
        "--no-failover",
        dest="failover",
        action="store_false",
        help="run tiandi serve without its failover engine",
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tiandi-api-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "tiandi.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    secret = secrets.token_urlsafe(48)
    doc = generate(provinces=37, counties=args.counties, seed=0)
    env = {
        **os.environ,
        **lab_secret_defaults(doc),
        "TIANDI_DATABASE_URL": url,
        "TIANDI_SECRET_KEY": secret,
        "TIANDI_LOG_LEVEL": "WARNING",
        "TIANDI_SSH_HOST_KEYS": "tofu",  # a lab: its host keys are new every run
    }
    env.pop("TIANDI_INFLUX_URL", None)
    os.environ.update(lab_secret_defaults(doc))

    t = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session, session.begin():
        apply_document(session, doc)
        accounts.create_user(
            session,
            username="bench",
            role=Role.VIEWER,
            password=secrets.token_urlsafe(16),
            actor="bench",
        )
    engine.dispose()
    sites = [s.name for s in doc.sites]
    links = [lk.name for s in doc.sites for lk in s.links]
    print(
        f"inventory: {len(sites)} sites, {sum(len(s.devices) for s in doc.sites)} devices, "
        f"{len(links)} links (built in {time.perf_counter() - t:.1f} s)",
        flush=True,
    )

    offset = random.Random().randrange(20_000, 40_000, 10)
    lab = start_lab(env, offset, workdir / "lab.log")
    serve_log = (workdir / "serve.log").open("w", encoding="utf-8")
    serve = subprocess.Popen(
        [
            TIANDI,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--port-offset",
            str(offset),
            "--data-dir",
            str(workdir / "data"),
            "--failover" if args.failover else "--no-failover",
        ],
        env=env,
        stdout=serve_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{args.port}"
        token = security.issue_access_token("bench", key=secret, minutes=120).token
        wait_http(f"{base}/healthz", None, 180)
        # every link is evaluated once ~10 probes have a result: wait for the last ones too
        wait_http(f"{base}/links/{links[-1]}/health", token, 120, ready='"samples":')
        wait_http(f"{base}/links/{links[-1]}/health", token, 120, ready='"evaluated_at":"')
        if args.failover:
            wait_reconciled(base, token, len([s for s in doc.sites if s.links]), 600)
        # the start-up load (4,752 first polls, 1,538 SSH reads) shows as probe jitter for a
        # window's length: start the drive once the network looks as it does in steady state
        wait_settled(base, token, max(10, len(links) // 100), 300)
        time.sleep(5)
        rng = random.Random(11)
        requests: list[tuple[str, str]] = []
        for _ in range(2000):
            site = rng.choice(doc.sites)
            requests.append(("status", f"/sites/{site.name}/status"))
            if site.links:
                requests.append(("health", f"/links/{rng.choice(site.links).name}/health"))
        print(
            f"driving {args.rate:g} req/s for {args.seconds:g} s over {args.connections} "
            "connections",
            flush=True,
        )
        api_cpu = cpu_seconds(serve.pid)
        load = os.getloadavg()[0]
        results = asyncio.run(
            drive(
                "127.0.0.1",
                args.port,
                token,
                requests,
                args.rate,
                args.seconds,
                args.connections,
            )
        )
        api_cpu = cpu_seconds(serve.pid) - api_cpu
    finally:
        stop(serve)
        stop(lab)
        serve_log.close()

    with (workdir / "latencies.csv").open("w", encoding="utf-8") as out:
        out.write("scheduled_s,route,latency_ms\n")  # to see when a run fell behind, and why
        out.writelines(f"{t:.4f},{k},{ms:.2f}\n" for t, k, ms in sorted(results.timeline))
    done = sum(len(v) for v in results.latencies.values())
    elapsed = results.last - results.first
    achieved = done / elapsed if elapsed > 0 else 0.0
    status, health = results.latencies["status"], results.latencies["health"]
    every = status + health
    print(
        f"requests={done} errors={results.errors or 0} "
        f"status p50={pct(status, 50):.1f} ms p99={pct(status, 99):.1f} ms; "
        f"health p50={pct(health, 50):.1f} ms p99={pct(health, 99):.1f} ms; "
        f"all p99={pct(every, 99):.1f} ms max={max(every):.1f} ms "
        f"mean={statistics.fmean(every):.1f} ms; files in {workdir}"
    )
    print(
        f"API process CPU {1000.0 * api_cpu / max(done, 1):.2f} ms per request "
        f"(capacity ~{done / api_cpu if api_cpu else float('nan'):.0f} req/s per core); "
        f"host load average {load:.1f} on {os.cpu_count()} cores when the drive began"
    )
    print(f"status_p99_ms={pct(status, 99):.1f} rps={achieved:.0f}")


if __name__ == "__main__":
    main()
