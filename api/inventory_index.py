"""The inventory facts the live-state routes need, held in memory: names → site, role, kind.

``GET /sites/{name}/status``, ``GET /links/{name}/health`` and ``GET /devices/{name}/state``
answer from the monitor's state; what they need of the inventory (does the name exist, a link's
role and site, a site's tier, links, devices and maintenance windows) used to cost three to five
SQL queries and a worker-thread hop per request. :class:`InventoryIndex` keeps one immutable
:class:`InventorySnapshot` of it instead (a national inventory loads in ~40 ms).

How fresh the snapshot is:

* **Changes made through this API process** (inventory routes, ``POST /inventory/import``, any
  commit through :data:`api.deps.SessionDep`) call :meth:`InventoryIndex.invalidate` when they
  commit: the next request waits for a fresh snapshot, so a client reads its own writes.
* **Changes made elsewhere** (``tiandi inventory import`` from the CLI, another API process)
  always append to the audit trail. Every :data:`RECHECK_S` (2 s) the index reads the trail's
  head (one indexed query, in a background thread, while requests go on with the snapshot they
  have) and reloads if it moved by anything but failover and alarm records
  (:data:`QUIET_ACTIONS`). A snapshot not confirmed for :data:`STALE_LIMIT_S` (5 s, e.g.
  after an idle spell) is not used: the request waits for the check. So such a change shows
  within 5 s, typically 2 s.
* **Writes that bypass the audit trail** (hand-made SQL) show within :data:`MAX_AGE_S` (60 s):
  the snapshot is reloaded that often whatever the trail says.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from controllers.audit import AuditRecord
from inventory.enums import DeviceKind, LinkRole, Tier
from inventory.model import Device, Link, MaintenanceWindow, Site

log = logging.getLogger(__name__)

RECHECK_S = 2.0
"""How often the audit trail's head is read to notice changes made by other processes."""
STALE_LIMIT_S = 5.0
"""A snapshot not confirmed current for this long is not served (the request waits)."""
MAX_AGE_S = 60.0
"""The snapshot is reloaded at least this often, even if the audit trail did not move."""


@dataclass(frozen=True, slots=True)
class SiteEntry:
    tier: Tier
    links: tuple[tuple[str, LinkRole], ...]  # primary, backup, satellite
    devices: tuple[tuple[str, DeviceKind], ...]  # by name (the database's collation)
    windows: tuple[tuple[str, str, str | None], ...]  # (starts_at, ends_at, reason) as stored


@dataclass(frozen=True, slots=True)
class InventorySnapshot:
    sites: Mapping[str, SiteEntry]
    links: Mapping[str, tuple[LinkRole, str]]  # name -> (role, site)
    devices: Mapping[str, tuple[DeviceKind, str]]  # name -> (kind, site)


def load_snapshot(session: Session) -> InventorySnapshot:
    """Read the whole index in four queries."""
    site_rows = session.execute(select(Site.id, Site.name, Site.tier)).all()
    names = {site_id: name for site_id, name, _ in site_rows}
    links: dict[int, list[tuple[str, LinkRole]]] = {}
    link_index: dict[str, tuple[LinkRole, str]] = {}
    for name, role, site_id in session.execute(
        select(Link.name, Link.role, Link.site_id).order_by(Link.id)
    ):
        links.setdefault(site_id, []).append((name, role))
        link_index[name] = (role, names[site_id])
    devices: dict[int, list[tuple[str, DeviceKind]]] = {}
    device_index: dict[str, tuple[DeviceKind, str]] = {}
    for name, kind, site_id in session.execute(
        select(Device.name, Device.kind, Device.site_id).order_by(Device.site_id, Device.name)
    ):
        devices.setdefault(site_id, []).append((name, kind))
        device_index[name] = (kind, names[site_id])
    windows: dict[int, list[tuple[str, str, str | None]]] = {}
    for site_id, starts, ends, reason in session.execute(
        select(
            MaintenanceWindow.site_id,
            MaintenanceWindow.starts_at,
            MaintenanceWindow.ends_at,
            MaintenanceWindow.reason,
        ).order_by(MaintenanceWindow.id)
    ):
        windows.setdefault(site_id, []).append((starts, ends, reason))
    order = list(LinkRole)
    sites = {
        name: SiteEntry(
            tier=tier,
            links=tuple(sorted(links.get(site_id, ()), key=lambda lk: order.index(lk[1]))),
            devices=tuple(devices.get(site_id, ())),
            windows=tuple(windows.get(site_id, ())),
        )
        for site_id, name, tier in site_rows
    }
    return InventorySnapshot(sites=sites, links=link_index, devices=device_index)


def audit_head(session: Session) -> int:
    """The id of the newest audit record (0 if none): it moves on every audited change."""
    return session.scalar(select(func.max(AuditRecord.id))) or 0


QUIET_ACTIONS = ("failover.", "alarm.")
"""Audit actions that never change the inventory: the failover engine records every decision
(hundreds a minute in a mass event) and must not make the index reload each time."""


def inventory_touched_after(session: Session, after: int) -> bool:
    """Whether an audit record after id ``after`` may be an inventory change (a primary-key
    range scan over the new records only)."""
    quiet = [AuditRecord.action.startswith(prefix) for prefix in QUIET_ACTIONS]
    found = session.scalar(
        select(AuditRecord.id).where(AuditRecord.id > after, ~or_(*quiet)).limit(1)
    )
    return found is not None


@dataclass(frozen=True, slots=True)
class _Held:
    snapshot: InventorySnapshot
    factory: sessionmaker[Session]  # the database it was read from
    generation: int  # of invalidate() calls when the load began
    head: int  # the audit trail's head read before the load
    loaded_at: float
    checked_at: float  # when the head was last read (before reading it)


class InventoryIndex:
    """The current :class:`InventorySnapshot`, kept fresh as the module docstring says.

    :meth:`snapshot` is called on the event loop; the database is only read in worker threads,
    one refresh at a time. :meth:`invalidate` may be called from any thread. ``source`` gives
    the session factory to read with (the app's ``state.session_factory``, which tests may
    point at another database: a snapshot of another database is never used).
    """

    def __init__(
        self,
        source: Callable[[], sessionmaker[Session]],
        *,
        recheck_s: float = RECHECK_S,
        stale_limit_s: float = STALE_LIMIT_S,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= recheck_s <= stale_limit_s:
            raise ValueError("need 0 <= recheck_s <= stale_limit_s")
        self.source = source
        self.recheck_s = recheck_s
        self.stale_limit_s = stale_limit_s
        self.max_age_s = max_age_s
        self.clock = clock
        self.loads = 0  # how many times the whole index was read (for tests and logs)
        self._held: _Held | None = None
        self._generation = 0
        self._generation_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._background_after = 0.0  # no background refresh starts before this time

    def invalidate(self) -> None:
        """The inventory changed: no request may use the snapshot held so far."""
        with self._generation_lock:
            self._generation += 1

    async def snapshot(self) -> InventorySnapshot:
        factory = self.source()
        held = self._held
        if held is not None and held.generation == self._generation and held.factory is factory:
            age = self.clock() - held.checked_at
            if age < self.recheck_s:
                return held.snapshot
            if age < self.stale_limit_s:
                self._refresh_in_background(factory)
                return held.snapshot
        snapshot = await run_in_threadpool(self._refresh, factory, True)
        assert snapshot is not None  # a waiting refresh returns one or raises
        return snapshot

    def _refresh_in_background(self, factory: sessionmaker[Session]) -> None:
        now = self.clock()
        if now < self._background_after or self._refresh_lock.locked():
            return  # one is running, or ran (and perhaps failed) a moment ago
        self._background_after = now + self.recheck_s
        threading.Thread(
            target=self._refresh, args=(factory, False), name="inventory-index", daemon=True
        ).start()

    def _refresh(self, factory: sessionmaker[Session], wait: bool) -> InventorySnapshot | None:
        if not self._refresh_lock.acquire(blocking=wait):
            return None
        try:
            held = self._held
            now = self.clock()
            generation = self._generation
            current = held is not None and held.generation == generation and held.factory is factory
            if held is not None and current and now - held.checked_at < self.recheck_s:
                return held.snapshot  # refreshed while this call waited for the lock
            with factory() as session:
                head = audit_head(session)
                if (
                    held is not None
                    and current
                    and now - held.loaded_at < self.max_age_s
                    and (head == held.head or not inventory_touched_after(session, held.head))
                ):
                    self._held = _Held(
                        held.snapshot, factory, generation, head, held.loaded_at, now
                    )
                    return held.snapshot
                started = time.perf_counter()
                snapshot = load_snapshot(session)
            self.loads += 1
            self._held = _Held(snapshot, factory, generation, head, now, now)
            log.debug(
                "inventory index loaded: %d sites, %d links, %d devices in %.0f ms",
                len(snapshot.sites),
                len(snapshot.links),
                len(snapshot.devices),
                1000 * (time.perf_counter() - started),
            )
            return snapshot
        except Exception:
            if not wait:  # a background refresh: the next request tries again, and waits
                log.exception("inventory index: background refresh failed")
                return None
            raise
        finally:
            self._refresh_lock.release()
