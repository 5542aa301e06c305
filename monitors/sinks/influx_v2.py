"""InfluxDB through the v2 write API (``/api/v2/write``), with ``influxdb-client``.

For InfluxDB 2.x, 3.x and InfluxDB Cloud: ``url``, ``token``, ``org``, ``bucket`` (for 3.x the
database name; ``org`` is ignored there). The client's *synchronous* write API runs in one worker
thread of its own, so the event loop never blocks and batches are sent one after another in the
order they were written; a batch counts as stored only when the server answered 204, which is what
the spool needs to know. (influxdb-client's background batching API was not used: it retries and
drops on its own schedule and would hide from the spool which batch was acknowledged; batching is
done by ``BatchingSink`` in front instead.)

Reads: the v2 API's query language is Flux, which Tiandi does not use. Read from 2.x/3.x with an
``InfluxV1Sink`` on the same server's v1-compatibility ``/query`` (InfluxQL) — see
``monitors/sinks/influx_v1.py`` for the settings.

No InfluxDB 2.x server is installable on the build machine. The tests prove this write path
against a real server that speaks ``/api/v2/write`` — Debian's ``victoria-metrics`` — and only the
write path: a 2.x server's own behaviour (bucket retention, token scopes) is not exercised here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import urllib3.exceptions
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS, WriteApi
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from monitors.errors import MetricsWriteError
from monitors.sinks.base import Sample
from monitors.sinks.influx_v1 import unreachable_error, write_error
from monitors.sinks.lineprotocol import LineEncoder, log_skipped

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InfluxV2Config:
    """Where and how to reach a v2 write API; the token never appears in ``repr``."""

    url: str
    org: str
    bucket: str
    token: str = field(repr=False)
    gzip: bool = False
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        return (
            f"InfluxV2Config(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r}, "
            "token=REDACTED)"
        )


class InfluxV2Sink:
    """Writes line protocol through influxdb-client. Satisfies MetricSink and LineProtocolSink."""

    def __init__(self, config: InfluxV2Config, *, encoder: LineEncoder | None = None) -> None:
        self.config = config
        self._encoder = encoder or LineEncoder()
        self._url = config.url.rstrip("/")
        self.skipped_points = 0
        self._client = InfluxDBClient(
            url=self._url,
            token=config.token,
            org=config.org,
            timeout=int(config.timeout_s * 1000),
            enable_gzip=config.gzip,
            retries=False,
        )
        self._write_api: WriteApi = self._client.write_api(write_options=SYNCHRONOUS)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="influx-v2-write")
        self._target = f"{self._url}/api/v2/write?org={config.org}&bucket={config.bucket}"

    def __repr__(self) -> str:
        return f"InfluxV2Sink({self.config!r})"

    @property
    def target(self) -> str:
        return self._target

    async def write(self, points: Sequence[Sample]) -> None:
        batch = self._encoder.encode(points)
        if batch.skipped:
            self.skipped_points += batch.skipped
            log_skipped(logger, batch.skipped, self.skipped_points, self._target)
        if batch.points:
            await self.write_lines(batch.body, batch.points)

    async def write_lines(
        self, body: bytes, points: int, on_wire: Callable[[], object] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        sending = loop.run_in_executor(self._thread, self._write_blocking, body)
        if on_wire is not None:
            on_wire()  # the request is made in the worker thread: the loop is free from here
        await sending

    def _write_blocking(self, body: bytes) -> None:
        try:
            self._write_api.write(
                bucket=self.config.bucket,
                org=self.config.org,
                record=body,
                # WritePrecision.NS is a plain str constant ("ns") in the generated client
                write_precision=cast(WritePrecision, WritePrecision.NS),
            )
        except ApiException as err:
            raise self._api_error(err) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise unreachable_error(self._url, err) from err

    def _api_error(self, err: ApiException) -> MetricsWriteError:
        status = int(err.status or 0)
        body: Any = err.body
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        retry_after = err.retry_after if isinstance(err.retry_after, str) else None
        if status == 404 and not text.strip().startswith("{"):
            # An InfluxDB 1.x (or other server) without the v2 API answers a plain 404.
            return MetricsWriteError(
                f"{self._url} has no v2 write API (HTTP 404 on /api/v2/write: "
                f"{text.strip()[:200] or 'no body'}) — for InfluxDB 1.x use the v1 sink "
                "(TIANDI_INFLUX_DATABASE) instead of org/bucket/token",
                url=self._url,
                status=status,
                retryable=False,
            )
        if status == 404:
            return MetricsWriteError(
                f'InfluxDB at {self._url} refused the write: bucket "{self.config.bucket}" not '
                f'found in org "{self.config.org}" ({text.strip()[:200]}) — create it (influx '
                "bucket create) or fix TIANDI_INFLUX_BUCKET/TIANDI_INFLUX_ORG",
                url=self._url,
                status=status,
                retryable=False,
            )
        return write_error(
            self._url,
            self.config.bucket,
            status,
            text,
            retry_after,
            setting="TIANDI_INFLUX_BUCKET",
        )

    async def flush(self) -> None:
        """Nothing is buffered here (each write is sent before it returns)."""

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close_blocking)
        self._thread.shutdown(wait=True)

    def _close_blocking(self) -> None:
        # influxdb-client leaves these two unannotated
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
