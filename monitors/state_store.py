"""The monitor's live state in a small SQLite file, shared between processes.

``tiandi serve`` runs the API and the monitor in separate processes — the SNMP poller, the
prober (with health and alarms) and the API each get a core of their own and their own GIL, so
that a poll round never shows up as probe RTT or API latency — and this file is where they
meet (``<data dir>/state.db``, WAL mode: readers never block the writer or each other):

=============== ============================= ===============================================
table           written by                    read by
=============== ============================= ===============================================
device_state    the poller (on every poll)    the API, the alarm evaluation
link_interface  the poller                    link health (interface oper status)
link_state      link health (each round)      the API, the failover engine
site_state      the alarm evaluation          the API
alarm           the alarm evaluation          the API
alarm_ack       the API (``POST .../ack``)    the API (joined to ``alarm``)
=============== ============================= ===============================================

Times: ``*_mono`` columns are ``time.monotonic()`` seconds — CLOCK_MONOTONIC, the same clock in
every process of the machine (Linux); the others are wall-clock (epoch seconds, or ISO 8601 for
alarms). Each process owns its tables: a monitor starting up clears them (``reset``), so rows
never outlive the process that vouches for them. Alarm ids keep growing across restarts (the
next id is read from the file), so an acknowledgement can never attach to a later alarm.

It is state, not history: the metric store keeps history; this file can be deleted while nothing
runs. Every connection is per thread; every write is one transaction.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from inventory.errors import NotFound
from monitors.alarms import Alarm, AlarmKind, Severity, SiteCondition
from monitors.linkstate import Health, LinkHealthReport, LinkQuality
from monitors.sinks.base import FieldValue

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS link_state (
    link TEXT PRIMARY KEY, site TEXT NOT NULL, health TEXT NOT NULL, since_mono REAL NOT NULL,
    at_mono REAL NOT NULL, loss_pct REAL, rtt_ms REAL, jitter_ms REAL, samples INTEGER,
    interface_up INTEGER, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS link_interface (
    link TEXT PRIMARY KEY, oper_up INTEGER, at_mono REAL
);
CREATE TABLE IF NOT EXISTS device_state (
    device TEXT PRIMARY KEY, site TEXT NOT NULL, reachable INTEGER, polled_at REAL,
    last_ok_at REAL, error TEXT, esno_db REAL, fields TEXT NOT NULL, interfaces TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS site_state (
    site TEXT PRIMARY KEY, outage TEXT, behind_parent TEXT
);
CREATE TABLE IF NOT EXISTS alarm (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, site TEXT NOT NULL,
    province TEXT, severity TEXT NOT NULL, severity_rank INTEGER NOT NULL,
    message TEXT NOT NULL, raised_at TEXT NOT NULL, updated_at TEXT NOT NULL, cleared_at TEXT,
    suppressed INTEGER NOT NULL, suppressed_reason TEXT, behind_parent TEXT
);
CREATE INDEX IF NOT EXISTS alarm_site ON alarm (site);
CREATE TABLE IF NOT EXISTS alarm_ack (
    alarm_id INTEGER PRIMARY KEY, acked_by TEXT NOT NULL, acked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

TABLES_OF: Final = {
    "poller": ("device_state", "link_interface"),
    "health": ("link_state", "site_state", "alarm"),
}
"""What each kind of monitor process owns (and clears when it starts)."""

_ALARM_COLUMNS: Final = (
    "a.id, a.kind, a.target, a.site, a.province, a.severity, a.message, a.raised_at, "
    "a.updated_at, a.cleared_at, a.suppressed, a.suppressed_reason, a.behind_parent, "
    "k.acked_by, k.acked_at"
)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A device's latest poll as stored (the API turns it into its own ``DeviceState``)."""

    device: str
    site: str
    reachable: bool | None
    polled_at: float | None  # epoch seconds
    last_ok_at: float | None
    error: str | None
    esno_db: float | None
    fields: Mapping[str, FieldValue]
    interfaces: tuple[tuple[str, bool | None, float | None, float | None, str | None], ...]
    # (name, oper_up, in_bps, out_bps, link)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _link_report(row: Sequence[Any]) -> LinkHealthReport:
    link, site, health, since, at, loss, rtt, jitter, samples, up, reason = row
    quality = None if samples is None else LinkQuality(loss, rtt, jitter, samples)
    return LinkHealthReport(link, site, Health(health), since, at, quality, _bool(up), reason)


def _iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


class StateStore:
    """One state file; safe to use from any thread (one connection per thread)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn().executescript(_SCHEMA)  # its own transaction

    def __repr__(self) -> str:
        return f"StateStore({str(self.path)!r})"

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn())

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- writing (monitor processes) -------------------------------------------------------

    def reset(self, owner: str) -> None:
        """A monitor process of kind ``owner`` (``poller``/``health``) starts: its old rows go."""
        with self._tx() as conn:
            for table in TABLES_OF[owner]:
                conn.execute(f"DELETE FROM {table}")

    def next_alarm_id(self) -> int:
        row = (
            self._conn()
            .execute(
                "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM alarm "
                "UNION ALL SELECT MAX(alarm_id) FROM alarm_ack)"
            )
            .fetchone()
        )
        return int(row[0] or 0) + 1

    def put_links(self, reports: Iterable[LinkHealthReport]) -> None:
        rows = [
            (
                r.link,
                r.site,
                str(r.health),
                r.since,
                r.at,
                r.quality.loss_pct if r.quality else None,
                r.quality.rtt_ms if r.quality else None,
                r.quality.jitter_ms if r.quality else None,
                r.quality.samples if r.quality else None,
                None if r.interface_up is None else int(r.interface_up),
                r.reason,
            )
            for r in reports
        ]
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO link_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def drop_links(self, names: Iterable[str]) -> None:
        with self._tx() as conn:
            conn.executemany("DELETE FROM link_state WHERE link = ?", [(n,) for n in names])

    def put_interfaces(self, rows: Iterable[tuple[str, bool | None, float | None]]) -> None:
        """(link, oper_up, monotonic time read) of the interfaces links ride on."""
        values = [(link, None if up is None else int(up), at) for link, up, at in rows]
        with self._tx() as conn:
            conn.executemany("INSERT OR REPLACE INTO link_interface VALUES (?, ?, ?)", values)

    def put_devices(self, rows: Iterable[DeviceRow]) -> None:
        values = [
            (
                d.device,
                d.site,
                None if d.reachable is None else int(d.reachable),
                d.polled_at,
                d.last_ok_at,
                d.error,
                d.esno_db,
                json.dumps(_finite_only(d.fields), separators=(",", ":")),
                json.dumps(d.interfaces, separators=(",", ":")),
            )
            for d in rows
        ]
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO device_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values
            )

    def put_sites(self, conditions: Mapping[str, SiteCondition]) -> None:
        values = [(s, c.outage, c.behind_parent) for s, c in conditions.items()]
        with self._tx() as conn:
            conn.execute("DELETE FROM site_state")
            conn.executemany("INSERT INTO site_state VALUES (?, ?, ?)", values)

    def put_alarms(self, alarms: Iterable[Alarm]) -> None:
        values = [
            (
                a.id,
                str(a.kind),
                a.target,
                a.site,
                a.province,
                str(a.severity),
                a.severity.rank,
                a.message,
                a.raised_at.isoformat(),
                a.updated_at.isoformat(),
                a.cleared_at.isoformat() if a.cleared_at else None,
                int(a.suppressed),
                a.suppressed_reason,
                a.behind_parent,
            )
            for a in alarms
        ]
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO alarm VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    def prune_alarms(self, keep_cleared: int) -> int:
        """Keep the newest ``keep_cleared`` cleared alarms (acks of removed ones go too)."""
        with self._tx() as conn:
            cursor = conn.execute(
                "DELETE FROM alarm WHERE cleared_at IS NOT NULL AND id NOT IN "
                "(SELECT id FROM alarm WHERE cleared_at IS NOT NULL ORDER BY id DESC LIMIT ?)",
                (keep_cleared,),
            )
            conn.execute("DELETE FROM alarm_ack WHERE alarm_id NOT IN (SELECT id FROM alarm)")
            return cursor.rowcount

    # ---- reading (the API, link health) ----------------------------------------------------

    _LINK_COLUMNS: Final = (
        "link, site, health, since_mono, at_mono, loss_pct, rtt_ms, jitter_ms, samples, "
        "interface_up, reason"
    )

    def link_report(self, link: str) -> LinkHealthReport | None:
        row = (
            self._conn()
            .execute(f"SELECT {self._LINK_COLUMNS} FROM link_state WHERE link = ?", (link,))
            .fetchone()
        )
        return None if row is None else _link_report(row)

    def link_reports(self, changed_after: float | None = None) -> list[LinkHealthReport]:
        """Every link's report, or only those whose health changed after ``changed_after``
        (monotonic s; ``since_mono``): how a process that follows link health (the failover
        engine) reads what is new without converting every row each time."""
        sql = f"SELECT {self._LINK_COLUMNS} FROM link_state"
        conn = self._conn()
        rows = (
            conn.execute(sql)
            if changed_after is None
            else conn.execute(sql + " WHERE since_mono > ?", (changed_after,))
        )
        return [_link_report(row) for row in rows]

    def link_marks(self) -> list[tuple[str, Health, float, float]]:
        """(link, health, since, evaluated at) of every link: enough to tell what changed,
        a tenth of the cost of whole reports."""
        return [
            (link, Health(health), since, at)
            for link, health, since, at in self._conn().execute(
                "SELECT link, health, since_mono, at_mono FROM link_state"
            )
        ]

    def interfaces(self) -> dict[str, tuple[bool | None, float | None]]:
        """Every link's interface status: {link: (oper_up, monotonic time read)}."""
        return {
            link: (_bool(up), at)
            for link, up, at in self._conn().execute(
                "SELECT link, oper_up, at_mono FROM link_interface"
            )
        }

    def device(self, name: str) -> DeviceRow | None:
        row = (
            self._conn().execute("SELECT * FROM device_state WHERE device = ?", (name,)).fetchone()
        )
        return _device_row(row) if row is not None else None

    def device_conditions(self) -> list[tuple[str, bool | None, str | None, float | None]]:
        """(device, reachable, error, esno_db) of every polled device."""
        return [
            (device, _bool(reachable), error, esno)
            for device, reachable, error, esno in self._conn().execute(
                "SELECT device, reachable, error, esno_db FROM device_state"
            )
        ]

    def site_condition(self, site: str) -> SiteCondition | None:
        row = (
            self._conn()
            .execute("SELECT outage, behind_parent FROM site_state WHERE site = ?", (site,))
            .fetchone()
        )
        return SiteCondition(row[0], row[1], None) if row is not None else None

    def alarms(
        self,
        *,
        active: bool | None = None,
        severity: Severity | None = None,
        site: str | None = None,
        provinces: Sequence[str] | None = None,
        suppressed: bool | None = None,
    ) -> list[Alarm]:
        """Matching alarms, active first, most severe first, newest first. ``provinces``: the
        names of the province sites the alarm's site may lie in."""
        where: list[str] = []
        args: list[Any] = []
        if active is not None:
            where.append("a.cleared_at IS NULL" if active else "a.cleared_at IS NOT NULL")
        if severity is not None:
            where.append("a.severity = ?")
            args.append(str(severity))
        if site is not None:
            where.append("a.site = ?")
            args.append(site)
        if provinces is not None:
            names = list(provinces)
            where.append(f"a.province IN ({', '.join('?' for _ in names)})" if names else "0")
            args += names
        if suppressed is not None:
            where.append("a.suppressed = ?")
            args.append(int(suppressed))
        sql = (
            f"SELECT {_ALARM_COLUMNS} FROM alarm a LEFT JOIN alarm_ack k ON k.alarm_id = a.id"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY a.cleared_at IS NULL DESC, a.severity_rank DESC, a.raised_at DESC, "
            "a.id DESC"
        )
        return [_alarm(row) for row in self._conn().execute(sql, args)]

    def acknowledge(self, alarm_id: int, user: str, now: datetime) -> Alarm:
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM alarm WHERE id = ?", (alarm_id,)).fetchone() is None:
                raise NotFound(
                    f"no alarm {alarm_id} (alarms are the running monitor's: a restart clears "
                    "them, and only the newest cleared ones are kept)"
                )
            conn.execute(
                "INSERT OR IGNORE INTO alarm_ack VALUES (?, ?, ?)",
                (alarm_id, user, now.isoformat()),
            )
            row = conn.execute(
                f"SELECT {_ALARM_COLUMNS} FROM alarm a LEFT JOIN alarm_ack k "
                "ON k.alarm_id = a.id WHERE a.id = ?",
                (alarm_id,),
            ).fetchone()
        return _alarm(row)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


def _finite_only(fields: Mapping[str, FieldValue]) -> dict[str, FieldValue]:
    """JSON has no NaN or infinity: such values are left out."""
    return {k: v for k, v in fields.items() if not isinstance(v, float) or math.isfinite(v)}


def _device_row(row: tuple[Any, ...]) -> DeviceRow:
    device, site, reachable, polled, ok, error, esno, fields, interfaces = row
    return DeviceRow(
        device=device,
        site=site,
        reachable=_bool(reachable),
        polled_at=polled,
        last_ok_at=ok,
        error=error,
        esno_db=esno,
        fields=json.loads(fields),
        interfaces=tuple(
            (name, _bool(up), inb, outb, link)
            for name, up, inb, outb, link in json.loads(interfaces)
        ),
    )


def _alarm(row: tuple[Any, ...]) -> Alarm:
    (aid, kind, target, site, province, severity, message, raised, updated, cleared,
     suppressed, why, behind, acked_by, acked_at) = row  # fmt: skip
    raised_at = datetime.fromisoformat(raised)
    return Alarm(
        id=aid,
        kind=AlarmKind(kind),
        target=target,
        site=site,
        province=province,
        severity=Severity(severity),
        message=message,
        raised_at=raised_at,
        updated_at=_iso(updated) or raised_at,
        cleared_at=_iso(cleared),
        acked_by=acked_by,
        acked_at=_iso(acked_at),
        suppressed=bool(suppressed),
        suppressed_reason=why,
        behind_parent=behind,
    )
