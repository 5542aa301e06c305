"""InfluxDB through the v1 HTTP API: line protocol to ``/write``, InfluxQL over ``/query``.

One :class:`InfluxV1Sink` writes and reads; it keeps one ``httpx.AsyncClient`` (keep-alive
connections) for its lifetime. Writes are ``POST /write?db=<database>[&rp=<rp>]&precision=ns``
with the batch as the body (gzip-compressed if ``gzip=True``); reads are ``GET /query`` with
``epoch=ns`` — a GET, so InfluxDB 1.x refuses anything but a ``SELECT`` there.

The same code path serves three server families; configure :class:`InfluxV1Config` as follows:

InfluxDB 1.x (tested here against Debian's 1.6.7)
    ``url="http://influx:8086"``, ``database="tiandi"`` (create it: ``CREATE DATABASE "tiandi"``),
    ``retention_policy`` optional (default policy if unset). With ``auth-enabled = true``, set
    ``username``/``password``: sent as HTTP basic auth, or as ``u``/``p`` query parameters with
    ``credentials_in_query=True`` (for proxies that strip the Authorization header).
InfluxDB 2.x (v1 compatibility API)
    ``url="http://influx:8086"``, ``database`` = the database name of a DBRP mapping to your bucket
    (``influx v1 dbrp create --db tiandi --rp autogen --bucket-id <id> --default``),
    ``token=<API token>`` (sent as ``Authorization: Token <token>``); or ``username`` = a v1 auth
    user (``influx v1 auth create``) with its ``password``.
InfluxDB 3.x (Core/Enterprise/Cloud, v1 compatibility)
    ``url="http://influx:8181"``, ``database="tiandi"`` (the 3.x database), ``token=<token>``.
    InfluxQL reads work over the same ``/query`` endpoint.

Only 1.x is installable on the build machine, so only the 1.x path is tested against a server;
the 2.x/3.x settings follow those products' v1-compatibility documentation.

A failed write raises :class:`~monitors.errors.MetricsWriteError`; ``retryable`` is False for an
answer that cannot succeed as sent (400 bad line protocol or partial write, 401/403 refused
credentials, 404 unknown database, 413 too large), so the spool dead-letters it instead of
retrying forever. 429/503 carry ``retry_after`` from the ``Retry-After`` header.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from monitors.errors import MetricsQueryError, MetricsWriteError
from monitors.sinks.base import (
    Aggregation,
    FieldValue,
    QueryLimits,
    QueryPlan,
    Sample,
    SeriesPoint,
    plan_query,
    too_many_points,
)
from monitors.sinks.lineprotocol import LineEncoder, log_skipped

logger = logging.getLogger(__name__)

_GZIP_IN_THREAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class InfluxV1Config:
    """Where and how to reach InfluxDB's v1 API; secrets never appear in ``repr``."""

    url: str
    database: str
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    credentials_in_query: bool = False
    gzip: bool = False
    timeout_s: float = 10.0
    query_limits: QueryLimits = field(default_factory=QueryLimits)

    def __repr__(self) -> str:
        secrets = []
        if self.password is not None:
            secrets.append("password=REDACTED")
        if self.token is not None:
            secrets.append("token=REDACTED")
        extra = ", " + ", ".join(secrets) if secrets else ""
        return (
            f"InfluxV1Config(url={self.url!r}, database={self.database!r}, "
            f"retention_policy={self.retention_policy!r}, username={self.username!r}{extra})"
        )


# ---- pure helpers: InfluxQL quoting, query text, error mapping ------------------------------


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes; ``\\``, ``"`` and newlines escaped."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes; ``\\``, ``'`` and newlines escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def series_influxql(plan: QueryPlan, retention_policy: str | None = None) -> str:
    """The InfluxQL ``SELECT`` answering a planned ``series`` call.

    Every name is a quoted identifier and every tag value a quoted string, so nothing coming
    from an API parameter can end the statement or add a clause.
    """
    source = quote_ident(plan.measurement)
    if retention_policy:
        source = f"{quote_ident(retention_policy)}.{source}"
    where = [f"time >= {plan.start_ns}", f"time < {plan.end_ns}"]
    where += [f"{quote_ident(key)} = {quote_string(value)}" for key, value in plan.tags]
    condition = " AND ".join(where)
    if plan.every_ns is None:
        return (
            f"SELECT {quote_ident(plan.field)} FROM {source} WHERE {condition} "
            f"ORDER BY time ASC LIMIT {plan.max_points + 1}"
        )
    return (
        f"SELECT {plan.agg}({quote_ident(plan.field)}) FROM {source} WHERE {condition} "
        f"GROUP BY time({plan.every_ns}ns) fill(none)"
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _server_message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500] or "(empty answer)"
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return text.strip()[:500]


def write_error(
    url: str,
    database: str,
    status: int,
    text: str,
    retry_after: str | None = None,
    *,
    setting: str = "TIANDI_INFLUX_DATABASE",
) -> MetricsWriteError:
    """Turn a non-204 answer to ``/write`` into an error that says what to do."""
    said = _server_message(text)
    where = f"InfluxDB at {url}"
    if status == 404:
        return MetricsWriteError(
            f'{where} refused the write: database "{database}" not found ({said}) — create it '
            f'(CREATE DATABASE "{database}") or fix {setting}',
            url=url,
            status=status,
            retryable=False,
        )
    if status in (401, 403):
        return MetricsWriteError(
            f"{where} refused the credentials ({said}) — check TIANDI_INFLUX_USERNAME/"
            "TIANDI_INFLUX_PASSWORD or TIANDI_INFLUX_TOKEN and the user's write permission on "
            f'"{database}"',
            url=url,
            status=status,
            retryable=False,
        )
    if status == 413:
        return MetricsWriteError(
            f"{where} refused a batch as too large ({said}) — lower the sink's batch size or "
            "raise max-body-size on the server",
            url=url,
            status=status,
            retryable=False,
        )
    if status == 400:
        return MetricsWriteError(
            f"{where} rejected the batch ({said}) — the points are kept in the spool's "
            "dead-letter segment; a field type conflict means one field was written with two "
            "types (see docs/metrics.md for each field's type)",
            url=url,
            status=status,
            retryable=False,
        )
    wait = parse_retry_after(retry_after)
    return MetricsWriteError(
        f"{where} could not store the batch: HTTP {status} ({said}) — will retry"
        + (f" after {wait:g} s" if wait is not None else ""),
        url=url,
        status=status,
        retryable=status == 429 or status >= 500 or status == 408,
        retry_after=wait,
    )


def unreachable_error(url: str, err: Exception) -> MetricsWriteError:
    return MetricsWriteError(
        f"InfluxDB at {url} is unreachable ({type(err).__name__}: {err or 'no detail'}) — points "
        "are spooled and replayed when it answers again; check that it runs and TIANDI_INFLUX_URL",
        url=url,
        retryable=True,
    )


def field_keys_influxql(plan: QueryPlan, retention_policy: str | None = None) -> str:
    source = quote_ident(plan.measurement)
    if retention_policy:
        source = f"{quote_ident(retention_policy)}.{source}"
    return f"SHOW FIELD KEYS FROM {source}"


class _Number(str):
    """A JSON integer kept as its text: InfluxDB's JSON prints a float with an integral value
    without a decimal point (``49152996729591550``), so only the field's type can tell whether it
    is an integer or a float — and ``float(text)`` recovers the float exactly."""


def _convert(value: Any, kind: str, agg: Aggregation | None) -> FieldValue | None:
    if value is None:
        return None
    if isinstance(value, _Number):
        if kind == "float" or (agg == "mean" and kind == "integer"):
            return float(value)
        return int(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _series_points(body: Mapping[str, Any], plan: QueryPlan, url: str) -> list[SeriesPoint]:
    """Points from the answer to ``SHOW FIELD KEYS ...; SELECT ...`` (numbers as ``_Number``)."""
    results = body.get("results") or []
    for result in results:
        if "error" in result:
            raise MetricsQueryError(
                f"InfluxDB at {url} refused the query: {result['error']}", url=url
            )
    if len(results) < 2:
        return []
    kind = "float"
    for series in results[0].get("series") or []:
        for name, field_type in series.get("values") or []:
            if name == plan.field:
                kind = str(field_type)
    agg = None if plan.every_ns is None else plan.agg
    points: list[SeriesPoint] = []
    for series in results[1].get("series") or []:
        for row in series.get("values") or []:
            value = _convert(row[1], kind, agg)
            if value is not None:
                points.append((int(row[0]), value))
    if len(results[1].get("series") or []) > 1:  # only if a GROUP BY tag ever sneaks in
        points.sort(key=lambda p: p[0])
    if plan.every_ns is None and len(points) > plan.max_points:
        raise too_many_points(plan)
    return points


def _body_sent_trace(on_wire: Callable[[], object]) -> Callable[[str, Any], Awaitable[None]]:
    """An httpcore ``trace`` extension that calls ``on_wire`` once the request body is sent."""
    pending = [on_wire]

    async def trace(event: str, info: Any) -> None:
        if pending and event.endswith(".send_request_body.complete"):
            pending.pop()()

    return trace


# ---- the sink ---------------------------------------------------------------------------------


class InfluxV1Sink:
    """Writes to and reads from InfluxDB's v1 API. Satisfies MetricSink, LineProtocolSink and
    MetricQuery. ``write`` sends at once (no buffering): put a ``BatchingSink`` and a
    ``SpoolingSink`` in front for production use."""

    def __init__(
        self,
        config: InfluxV1Config,
        *,
        encoder: LineEncoder | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._encoder = encoder or LineEncoder()
        self._url = config.url.rstrip("/")
        self.skipped_points = 0
        headers = {"User-Agent": "tiandi-metrics"}
        auth: httpx.BasicAuth | None = None
        self._auth_params: dict[str, str] = {}
        if config.token is not None:
            headers["Authorization"] = f"Token {config.token}"
        elif config.username is not None:
            if config.credentials_in_query:
                self._auth_params = {"u": config.username, "p": config.password or ""}
            else:
                auth = httpx.BasicAuth(config.username, config.password or "")
        self._write_params = {"db": config.database, "precision": "ns"}
        if config.retention_policy:
            self._write_params["rp"] = config.retention_policy
        self._write_params.update(self._auth_params)
        self._client = httpx.AsyncClient(
            base_url=self._url,
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(config.timeout_s),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            transport=transport,
        )
        self._target = f"{self._url}/write?db={quote(config.database)}"

    def __repr__(self) -> str:
        return f"InfluxV1Sink({self.config!r})"

    @property
    def target(self) -> str:
        return self._target

    # ---- writing ------------------------------------------------------------------------

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
        headers: dict[str, str] = {"Content-Type": "text/plain; charset=utf-8"}
        content = body
        if self.config.gzip:
            if len(body) > _GZIP_IN_THREAD_BYTES:
                content = await asyncio.to_thread(gzip.compress, body, 1)
            else:
                content = gzip.compress(body, 1)
            headers["Content-Encoding"] = "gzip"
        try:
            response = await self._client.post(
                "/write",
                params=self._write_params,
                content=content,
                headers=headers,
                extensions=None if on_wire is None else {"trace": _body_sent_trace(on_wire)},
            )
        except httpx.TransportError as err:
            raise unreachable_error(self._url, err) from err
        if response.status_code != 204:
            raise write_error(
                self._url,
                self.config.database,
                response.status_code,
                response.text,
                response.headers.get("Retry-After"),
            )

    async def flush(self) -> None:
        """Nothing is buffered here."""

    async def close(self) -> None:
        await self._client.aclose()

    # ---- reading ------------------------------------------------------------------------

    async def series(
        self,
        measurement: str,
        field: str,
        *,
        tags: Mapping[str, str] | None = None,
        start: datetime,
        end: datetime,
        every: timedelta | None = None,
        agg: Aggregation = "mean",
    ) -> list[SeriesPoint]:
        plan = plan_query(
            measurement,
            field,
            tags=tags,
            start=start,
            end=end,
            every=every,
            agg=agg,
            limits=self.config.query_limits,
        )
        rp = self.config.retention_policy
        body = await self.query(
            f"{field_keys_influxql(plan, rp)}; {series_influxql(plan, rp)}", exact_numbers=True
        )
        return _series_points(body, plan, self._url)

    async def query(self, influxql: str, *, exact_numbers: bool = False) -> dict[str, Any]:
        """Run read-only InfluxQL (GET /query, ``epoch=ns``); errors raise.

        With ``exact_numbers``, JSON integers come back as their text (a ``str`` subclass), for
        the caller to convert by field type.
        """
        params = {"db": self.config.database, "q": influxql, "epoch": "ns", **self._auth_params}
        try:
            response = await self._client.get("/query", params=params)
        except httpx.TransportError as err:
            raise MetricsQueryError(
                f"InfluxDB at {self._url} is unreachable ({type(err).__name__}: {err}) — check "
                "that it runs and TIANDI_INFLUX_URL",
                url=self._url,
            ) from err
        try:
            body: Any = json.loads(response.text, parse_int=_Number if exact_numbers else None)
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            said = _server_message(response.text)
            raise MetricsQueryError(
                f"InfluxDB at {self._url} refused the query (HTTP {response.status_code}: "
                f"{said})"
                + (
                    " — check TIANDI_INFLUX_USERNAME/PASSWORD/TOKEN"
                    if response.status_code in (401, 403)
                    else ""
                ),
                url=self._url,
                status=response.status_code,
            )
        return body
