"""A throw-away InfluxDB 1.x (``influxd``) for one test session.

Everything it keeps lives in a temporary directory; both of its ports (HTTP and the backup/RPC
``bind-address``, which otherwise listens on every interface) are on 127.0.0.1. Its log goes to a
file there, not to the test output, and its tail is shown when start-up fails.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.harness import LOOPBACK, ServerStartError, free_ports, log_tail, wait_until

DEBIAN_PACKAGE = "influxdb"
TEST_DATABASE = "tiandi_test"


class InfluxQueryError(RuntimeError):
    """InfluxDB answered a query with an error (HTTP status or an ``error`` in the results)."""


def find_influxd() -> Path | None:
    found = shutil.which("influxd")
    return Path(found) if found else None


def _config(root: Path, http_port: int, rpc_port: int) -> str:
    def q(path: Path) -> str:
        return json.dumps(str(path))  # a JSON string is a valid TOML basic string

    return f"""\
reporting-disabled = true
bind-address = "{LOOPBACK}:{rpc_port}"

[meta]
  dir = {q(root / "meta")}
  logging-enabled = false

[data]
  dir = {q(root / "data")}
  wal-dir = {q(root / "wal")}
  wal-fsync-delay = "0s"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  log-enabled = false

[http]
  enabled = true
  bind-address = "{LOOPBACK}:{http_port}"
  auth-enabled = false
  log-enabled = false
  write-tracing = false
  pprof-enabled = false

[logging]
  level = "info"
  suppress-logo = true
"""


class InfluxServer:
    """A running ``influxd``; ``database`` exists from the start."""

    def __init__(self, root: Path, process: subprocess.Popen[bytes], http_port: int) -> None:
        self.root = root
        self.process = process
        self.port = http_port
        self.url = f"http://{LOOPBACK}:{http_port}"
        self.database = TEST_DATABASE
        self.log_path = root / "influxd.log"
        self.startup_seconds = 0.0
        self._client = httpx.Client(base_url=self.url, timeout=30.0)
        self._names = itertools.count(1)

    @classmethod
    def start(cls, influxd: Path, timeout: float = 30.0) -> InfluxServer:
        t0 = time.monotonic()
        root = Path(tempfile.mkdtemp(prefix="tiandi-influx-"))
        http_port, rpc_port = free_ports(2)
        config = root / "influxd.conf"
        config.write_text(_config(root, http_port, rpc_port), encoding="utf-8")
        with (root / "influxd.log").open("wb") as log:
            process = subprocess.Popen(
                [str(influxd), "-config", str(config)],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = cls(root, process, http_port)
        try:
            server._wait_ready(timeout)
            server.query(f'CREATE DATABASE "{server.database}"')
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - t0
        return server

    def _wait_ready(self, timeout: float) -> None:
        def pinged() -> bool:
            if self.process.poll() is not None:
                raise ServerStartError(
                    f"influxd exited with status {self.process.returncode} during start-up"
                    f"\n--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}"
                )
            try:
                return self._client.get("/ping", timeout=1.0).status_code == 204
            except httpx.TransportError:
                return False

        if not wait_until(pinged, timeout=timeout):
            raise ServerStartError(
                f"influxd did not answer {self.url}/ping with 204 within {timeout:.0f} s"
                f"\n--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}"
            )

    def stop(self) -> None:
        self._client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- clients -------------------------------------------------------------------------

    def query(self, q: str, *, db: str | None = None, epoch: str | None = None) -> dict[str, Any]:
        """Run InfluxQL (POST /query) and return the decoded JSON; any error raises."""
        params = {"q": q}
        if db is not None:
            params["db"] = db
        if epoch is not None:
            params["epoch"] = epoch
        response = self._client.post("/query", params=params)
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or "error" in body:
            raise InfluxQueryError(
                f"{q!r}: HTTP {response.status_code}: {body.get('error') or response.text}"
            )
        for result in body.get("results", []):
            if "error" in result:
                raise InfluxQueryError(f"{q!r}: {result['error']}")
        return body

    def write(self, lines: str, *, db: str | None = None, precision: str = "s") -> None:
        """Write line protocol (POST /write); raises unless InfluxDB answers 204."""
        response = self._client.post(
            "/write",
            params={"db": db or self.database, "precision": precision},
            content=lines.encode("utf-8"),
        )
        if response.status_code != 204:
            raise InfluxQueryError(f"write: HTTP {response.status_code}: {response.text}")

    def create_database(self, name: str | None = None) -> str:
        """A further empty database, for a test that must not see other tests' points."""
        name = name or f"t{next(self._names)}"
        self.query(f'CREATE DATABASE "{name}"')
        return name
