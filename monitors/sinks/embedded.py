"""The zero-setup metric store: one SQLite file behind the MetricSink and MetricQuery protocols.

Used when no InfluxDB is configured (and by ``make demo``). It keeps InfluxDB's data model so that
the API, the dashboards and the tests see the same numbers from either store:

- a series is (measurement, tag set, field); tags with an empty value are not kept, as in line
  protocol; a point written again with the same series and timestamp replaces the first;
- a field keeps the type it was first written with (float, integer, boolean, string); a value of
  another type for that series is rejected (counted in ``rejected_values`` and logged), as
  InfluxDB rejects a field type conflict; NaN and infinities are not stored;
- ``series()`` answers like the InfluxQL the v1 sink sends: ``[start, end)``, tag filters by
  equality (an empty value matches series without that tag), series matching the filter merged,
  buckets aligned on the epoch and stamped with their start, empty buckets left out, ``mean`` /
  ``max`` / ``min`` / ``last`` per bucket. ``tests/monitors/test_sink_embedded.py`` checks this
  against a real ``influxd``.

Schema (``journal_mode=WAL``, ``synchronous=NORMAL``)::

    series(id, measurement, field, tags JSON, kind)   kind: f, i, b, s
    series_tag(series_id, key, value)                  for tag filters, indexed (key, value)
    sample(series_id, ts, value)                       WITHOUT ROWID, primary key (series_id, ts)

Writes are batched into one transaction (``executemany``) on a single writer thread; reads run on
a reader thread with their own connection (WAL lets them proceed while a write is in progress).
Neither ever blocks the event loop. Retention: ``retention`` (default 30 days) is applied every
``retention_interval_s`` by a background task once the store is started, and on demand with
:meth:`EmbeddedStore.apply_retention`; series metadata is kept (it is small).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from monitors.errors import MetricsQueryError, MetricsWriteError
from monitors.sinks.base import (
    NS_PER_S,
    Aggregation,
    FieldValue,
    QueryLimits,
    QueryPlan,
    Sample,
    SeriesPoint,
    plan_query,
    to_ns_delta,
    too_many_points,
)
from monitors.sinks.lineprotocol import INT64_MAX, INT64_MIN

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    field TEXT NOT NULL,
    tags TEXT NOT NULL,
    kind TEXT NOT NULL,
    UNIQUE (measurement, field, tags)
);
CREATE TABLE IF NOT EXISTS series_tag (
    series_id INTEGER NOT NULL REFERENCES series (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (series_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS series_tag_key_value ON series_tag (key, value);
CREATE TABLE IF NOT EXISTS sample (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sample_ts ON sample (ts);
"""

_AGG_SQL: Final = {"mean": "AVG(value)", "max": "MAX(value)", "min": "MIN(value)"}

_TagKey = tuple[tuple[str, str], ...]


def _kind(value: FieldValue) -> tuple[str, FieldValue] | None:
    """(kind, value as stored) or None for a value that is not stored (NaN, inf)."""
    if isinstance(value, bool):
        return "b", int(value)
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return "i", int(value)
        return "f", float(value)  # as the line protocol encoder does
    if isinstance(value, float):
        return ("f", float(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        return "s", str(value)
    raise TypeError(f"field value {value!r} of type {type(value).__name__} cannot be stored")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class EmbeddedStore:
    """SQLite-backed metric store; satisfies MetricSink and MetricQuery."""

    def __init__(
        self,
        path: Path | str,
        *,
        retention: timedelta | None = timedelta(days=30),
        retention_interval_s: float = 3_600.0,
        query_limits: QueryLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.retention = retention
        self.retention_interval_s = retention_interval_s
        self.query_limits = query_limits or QueryLimits()
        self._clock = clock
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-write")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-read")
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._ids: dict[tuple[str, str, _TagKey], tuple[int, str]] = {}
        self._tag_keys: dict[tuple[tuple[str, str], ...], _TagKey] = {}
        self._retention_task: asyncio.Task[None] | None = None
        self._closed = False
        self.written_values = 0
        self.rejected_values = 0
        self.deleted_values = 0

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"

    # ---- threads --------------------------------------------------------------------------

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, *args)

    def _wconn(self) -> sqlite3.Connection:
        if self._write_conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path)
            conn.executescript(_SCHEMA)
            for sid, measurement, field, tags, kind in conn.execute(
                "SELECT id, measurement, field, tags, kind FROM series"
            ):
                key = tuple((k, v) for k, v in json.loads(tags))
                self._ids[(measurement, field, key)] = (sid, kind)
            self._write_conn = conn
        return self._write_conn

    def _rconn(self) -> sqlite3.Connection:
        if self._read_conn is None:
            self._read_conn = _connect(self.path)
        return self._read_conn

    async def start(self) -> None:
        """Open (and create) the file; start the retention schedule. ``write`` opens lazily too."""
        await self._on_writer(self._wconn)
        if self.retention is not None and self._retention_task is None:
            self._retention_task = asyncio.get_running_loop().create_task(
                self._retention_loop(), name=f"retention {self.path}"
            )

    # ---- writing --------------------------------------------------------------------------

    async def write(self, points: Sequence[Sample]) -> None:
        if not points:
            return
        try:
            await self._on_writer(self._write_blocking, list(points))
        except sqlite3.Error as err:
            raise MetricsWriteError(
                f"the embedded metric store {self.path} could not store {len(points)} point(s): "
                f"{err} — check the disk and the file's permissions",
                url=f"sqlite:///{self.path}",
                retryable=True,
            ) from err

    def _tag_key(self, tags: Mapping[str, str]) -> _TagKey:
        raw = tuple(tags.items())
        key = self._tag_keys.get(raw)
        if key is None:
            if len(self._tag_keys) > 200_000:
                self._tag_keys.clear()
            key = self._tag_keys[raw] = tuple(sorted((k, v) for k, v in raw if k and v))
        return key

    def _write_blocking(self, points: list[Sample]) -> None:
        conn = self._wconn()
        ids = self._ids
        rows: list[tuple[int, int, FieldValue]] = []
        rejected = 0
        conn.execute("BEGIN")
        try:
            for point in points:
                if not point.measurement:
                    rejected += len(point.fields)
                    continue
                tag_key = self._tag_key(point.tags)
                for name, value in point.fields.items():
                    stored = _kind(value)
                    if stored is None or not name:
                        continue
                    kind, db_value = stored
                    entry = ids.get((point.measurement, name, tag_key))
                    if entry is None:
                        entry = self._new_series(conn, point.measurement, name, tag_key, kind)
                    if entry[1] != kind:
                        rejected += 1
                        if rejected == 1:
                            logger.warning(
                                "embedded store: field %s.%s%s was first written as %s, now "
                                "as %s; the value is rejected (as InfluxDB would)",
                                point.measurement,
                                name,
                                dict(tag_key),
                                entry[1],
                                kind,
                            )
                        continue
                    rows.append((entry[0], point.time_ns, db_value))
            conn.executemany("INSERT OR REPLACE INTO sample VALUES (?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            # the ids of series created in the rolled-back transaction are gone too: reload
            self._ids.clear()
            self._write_conn = None
            conn.close()
            raise
        self.written_values += len(rows)
        self.rejected_values += rejected

    def _new_series(
        self, conn: sqlite3.Connection, measurement: str, field: str, tags: _TagKey, kind: str
    ) -> tuple[int, str]:
        cursor = conn.execute(
            "INSERT INTO series (measurement, field, tags, kind) VALUES (?, ?, ?, ?)",
            (measurement, field, json.dumps(tags, ensure_ascii=False), kind),
        )
        sid = cursor.lastrowid
        assert sid is not None
        conn.executemany(
            "INSERT INTO series_tag (series_id, key, value) VALUES (?, ?, ?)",
            [(sid, k, v) for k, v in tags],
        )
        entry = self._ids[(measurement, field, tags)] = (sid, kind)
        return entry

    async def flush(self) -> None:
        """Every ``write`` has committed when it returns; nothing is buffered."""

    async def close(self) -> None:
        if self._closed:
            return
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._close_write)
        await loop.run_in_executor(self._reader, self._close_read)
        self._closed = True
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    def _close_write(self) -> None:
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None

    def _close_read(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None

    # ---- retention ------------------------------------------------------------------------

    async def apply_retention(self, now_ns: int | None = None) -> int:
        """Delete values older than ``retention``; return how many went."""
        if self.retention is None:
            return 0
        now = now_ns if now_ns is not None else int(self._clock() * NS_PER_S)
        cutoff = now - to_ns_delta(self.retention)
        deleted = await self._on_writer(self._delete_before, cutoff)
        self.deleted_values += deleted
        if deleted:
            logger.info(
                "embedded store %s: retention removed %d value(s) older than %s",
                self.path,
                deleted,
                self.retention,
            )
        return deleted

    def _delete_before(self, cutoff_ns: int) -> int:
        conn = self._wconn()
        return conn.execute("DELETE FROM sample WHERE ts < ?", (cutoff_ns,)).rowcount

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.apply_retention()
            except sqlite3.Error as err:
                logger.error("embedded store %s: retention failed (%s); retrying", self.path, err)
            await asyncio.sleep(self.retention_interval_s)

    # ---- reading --------------------------------------------------------------------------

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
            limits=self.query_limits,
        )
        if not self.path.exists():
            return []
        try:
            return await self._on_reader(self._series_blocking, plan)
        except sqlite3.Error as err:
            raise MetricsQueryError(
                f"the embedded metric store {self.path} could not be read: {err}"
            ) from err

    def _series_blocking(self, plan: QueryPlan) -> list[SeriesPoint]:
        conn = self._rconn()
        ids_sql = "SELECT id FROM series WHERE measurement = ? AND field = ?"
        ids_args: list[Any] = [plan.measurement, plan.field]
        for key, value in plan.tags:
            if value:
                ids_sql += (
                    " AND id IN (SELECT series_id FROM series_tag WHERE key = ? AND value = ?)"
                )
                ids_args += [key, value]
            else:  # InfluxQL: tag = '' matches series that do not have the tag
                ids_sql += " AND id NOT IN (SELECT series_id FROM series_tag WHERE key = ?)"
                ids_args.append(key)
        kinds = {
            kind
            for (kind,) in conn.execute(
                f"SELECT DISTINCT kind FROM series WHERE id IN ({ids_sql})", ids_args
            )
        }
        if not kinds:
            return []
        kind = sorted(kinds)[0]
        where = f"series_id IN ({ids_sql}) AND ts >= ? AND ts < ?"
        args = [*ids_args, plan.start_ns, plan.end_ns]
        if plan.every_ns is None:
            rows = conn.execute(
                f"SELECT ts, value FROM sample WHERE {where} ORDER BY ts, series_id LIMIT ?",
                [*args, plan.max_points + 1],
            ).fetchall()
            if len(rows) > plan.max_points:
                raise too_many_points(plan)
        else:
            if plan.agg != "last" and kind in ("b", "s"):
                raise MetricsQueryError(
                    f"{plan.agg}() needs a numeric field; {plan.measurement}.{plan.field} holds "
                    f"{'booleans' if kind == 'b' else 'strings'} — use agg=last"
                )
            bucket = "ts - (((ts % ?) + ?) % ?)"
            every = [plan.every_ns] * 3
            if plan.agg == "last":
                sql = (
                    f"SELECT {bucket} AS bucket, value, MAX(ts) FROM sample WHERE {where} "
                    "GROUP BY bucket ORDER BY bucket"
                )
            else:
                sql = (
                    f"SELECT {bucket} AS bucket, {_AGG_SQL[plan.agg]} FROM sample WHERE {where} "
                    "GROUP BY bucket ORDER BY bucket"
                )
            rows = [(row[0], row[1]) for row in conn.execute(sql, [*every, *args])]
        if kind == "b" and (plan.every_ns is None or plan.agg == "last"):
            return [(int(ts), bool(value)) for ts, value in rows]
        return [(int(ts), value) for ts, value in rows]
