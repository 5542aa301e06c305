"""An ``influxd`` that can be stopped and started again on the same port and data directory.

The session server of the harness (``tests.harness.influx.InfluxServer``) lives for the whole
session and deletes its directory on ``stop()``; the outage tests need to kill the server in the
middle of a run and bring the *same* one back. This subclass reuses the harness's start-up (config,
ports, readiness wait) and adds :meth:`halt` and :meth:`resume`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.harness.influx import InfluxServer


class RestartableInflux(InfluxServer):
    """A harness ``InfluxServer`` plus ``halt()`` / ``resume()`` keeping port and data."""

    influxd: Path

    @classmethod
    def launch(cls, influxd: Path, timeout: float = 30.0) -> RestartableInflux:
        server = cls.start(influxd, timeout)
        assert isinstance(server, RestartableInflux)
        server.influxd = influxd
        return server

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def halt(self) -> None:
        """Stop influxd (SIGTERM, as systemd would) and wait; data and port stay reserved."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def resume(self, timeout: float = 30.0) -> None:
        """Start influxd again with the same configuration (port, data, WAL) and wait for it."""
        if self.process.poll() is None:
            return
        config = self.root / "influxd.conf"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.influxd), "-config", str(config)],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(timeout)
