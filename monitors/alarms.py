"""Alarms: raised and cleared from link health and device state, acknowledged, suppressed.

Pure logic (no I/O): :meth:`AlarmBook.evaluate` takes the current link health reports, the
devices' conditions and the wall-clock time, and raises, updates and clears alarms. What it
knows of the network comes from a :class:`Topology` (sites with their parents, provinces and
maintenance windows; devices; links), built from the inventory document.

Alarm kinds (one alarm per kind and target, e.g. ``link_down`` of ``gd-shaoguan-primary``):

==================== ==================================================== ================
kind                 raised while                                         severity
==================== ==================================================== ================
site_unreachable     every link of the site is down, or every router of   critical
                     the site is unreachable
link_down            the link's health is ``down``                        major (primary),
                                                                          minor (others)
link_degraded        the link's health is ``degraded``                    warning
device_unreachable   the poller's last poll of the device failed          major (router,
                                                                          MCU), minor
esno_low             a satellite terminal's Es/No < ``esno_low_db``        warning
                     (cleared at >= ``esno_clear_db``: hysteresis)
==================== ==================================================== ================

Suppression — the alarm exists (it is listed, it can be acknowledged) but is flagged
``suppressed`` with the reason, and a NOC board hides it by default:

- **behind an unreachable parent**: when a site's parent (or any ancestor: the province node of a
  county, the ministry) is unreachable, every alarm of the site is suppressed, and the site's own
  ``site_unreachable`` says "unreachable behind parent 'guangdong'" instead of reporting an
  outage of its own;
- **maintenance**: while one of the site's maintenance windows covers the current time, every
  alarm of the site is suppressed with the window's end and reason.

Everything is in memory: active alarms, the cleared history (the last ``history`` alarms) and
acknowledgements are lost on restart; re-evaluation after a restart raises the active ones again,
unacknowledged. A lock makes the book safe to read from API threads while the monitoring loop
evaluates.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Final, Literal

from inventory.document import InventoryDoc
from inventory.enums import DeviceKind, LinkRole, Tier
from inventory.errors import NotFound
from monitors.linkstate import Health, LinkHealthReport

log = logging.getLogger(__name__)


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Final = {
    Severity.CRITICAL: 3,
    Severity.MAJOR: 2,
    Severity.MINOR: 1,
    Severity.WARNING: 0,
}


class AlarmKind(enum.StrEnum):
    SITE_UNREACHABLE = "site_unreachable"
    LINK_DOWN = "link_down"
    LINK_DEGRADED = "link_degraded"
    DEVICE_UNREACHABLE = "device_unreachable"
    ESNO_LOW = "esno_low"


# ---- what the book knows of the network ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    reason: str | None = None

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class SiteInfo:
    name: str
    tier: Tier
    parent: str | None
    province: str | None  # the province-tier site it lies in (itself for a province)
    province_code: str | None  # the two-digit GB/T 2260 province prefix, when known
    maintenance: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    name: str
    site: str
    kind: DeviceKind


@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str
    site: str
    role: LinkRole
    router: str
    interface: str
    probe_address: str
    terminal: str | None = None


@dataclass(frozen=True)
class Topology:
    """Sites, devices and links by name, with each site's devices and links."""

    sites: Mapping[str, SiteInfo]
    devices: Mapping[str, DeviceInfo]
    links: Mapping[str, LinkInfo]
    site_devices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    site_links: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        sites: Iterable[SiteInfo],
        devices: Iterable[DeviceInfo],
        links: Iterable[LinkInfo],
    ) -> Topology:
        site_map = {s.name: s for s in sites}
        device_map = {d.name: d for d in devices}
        link_map = {lk.name: lk for lk in links}
        by_site_devices: dict[str, list[str]] = {name: [] for name in site_map}
        by_site_links: dict[str, list[str]] = {name: [] for name in site_map}
        for d in device_map.values():
            by_site_devices.setdefault(d.site, []).append(d.name)
        for lk in link_map.values():
            by_site_links.setdefault(lk.site, []).append(lk.name)
        return cls(
            sites=MappingProxyType(site_map),
            devices=MappingProxyType(device_map),
            links=MappingProxyType(link_map),
            site_devices=MappingProxyType({k: tuple(v) for k, v in by_site_devices.items()}),
            site_links=MappingProxyType({k: tuple(v) for k, v in by_site_links.items()}),
        )

    @classmethod
    def from_document(cls, doc: InventoryDoc) -> Topology:
        parents = {s.name: s.parent for s in doc.sites}
        tiers = {s.name: s.tier for s in doc.sites}
        codes = {s.name: s.province_code for s in doc.sites}

        def province_of(name: str) -> str | None:
            seen: set[str] = set()
            current: str | None = name
            while current is not None and current not in seen:
                if tiers.get(current) is Tier.PROVINCE:
                    return current
                seen.add(current)
                current = parents.get(current)
            return None

        sites: list[SiteInfo] = []
        devices: list[DeviceInfo] = []
        links: list[LinkInfo] = []
        for s in doc.sites:
            province = province_of(s.name)
            code = s.province_code or (codes.get(province) if province else None)
            sites.append(
                SiteInfo(
                    name=s.name,
                    tier=s.tier,
                    parent=s.parent,
                    province=province,
                    province_code=code[:2] if code else None,
                    maintenance=tuple(Window(w.start, w.end, w.reason) for w in s.maintenance),
                )
            )
            devices += [DeviceInfo(d.name, s.name, d.kind) for d in s.devices]
            links += [
                LinkInfo(
                    name=lk.name,
                    site=s.name,
                    role=lk.role,
                    router=lk.router,
                    interface=lk.interface,
                    probe_address=str(lk.probe_address),
                    terminal=lk.terminal,
                )
                for lk in s.links
            ]
        return cls.build(sites, devices, links)

    def in_province(self, site: str, province: str) -> bool:
        """``province`` is a province site's name or a GB/T 2260 code (first two digits count)."""
        info = self.sites.get(site)
        if info is None:
            return False
        if province.isdigit():
            return info.province_code is not None and info.province_code == province[:2]
        return info.province == province


EMPTY_TOPOLOGY: Final = Topology.build((), (), ())


# ---- inputs and outputs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceCondition:
    """What the poller last learnt of a device."""

    reachable: bool | None  # None: not polled yet
    detail: str | None = None  # why not reachable (the poll failure)
    esno_db: float | None = None  # satellite terminals: receive Es/No


@dataclass(frozen=True, slots=True)
class Alarm:
    id: int
    kind: AlarmKind
    target: str  # the link, device or site the alarm is about
    site: str
    province: str | None
    severity: Severity
    message: str
    raised_at: datetime
    updated_at: datetime
    cleared_at: datetime | None = None
    acked_by: str | None = None
    acked_at: datetime | None = None
    suppressed: bool = False
    suppressed_reason: str | None = None
    behind_parent: str | None = None  # the unreachable ancestor the site sits behind

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    @property
    def key(self) -> tuple[AlarmKind, str]:
        return (self.kind, self.target)


@dataclass(frozen=True, slots=True)
class AlarmChange:
    change: Literal["raised", "updated", "cleared"]
    alarm: Alarm


@dataclass(frozen=True, slots=True)
class AlarmPolicy:
    esno_low_db: float = 6.0
    esno_clear_db: float = 7.0
    history: int = 10_000  # cleared alarms kept for GET /alarms

    def __post_init__(self) -> None:
        if self.esno_clear_db < self.esno_low_db:
            raise ValueError("esno_clear_db must be >= esno_low_db (hysteresis)")


@dataclass(frozen=True, slots=True)
class _Want:
    kind: AlarmKind
    target: str
    site: str
    severity: Severity
    message: str


@dataclass(frozen=True, slots=True)
class SiteCondition:
    """A site's overall state as the alarm book sees it."""

    outage: str | None  # why the site is cut off, or None
    behind_parent: str | None  # the unreachable ancestor, or None
    maintenance: Window | None  # the window covering now, or None


_LINK_DOWN_SEVERITY: Final = {
    LinkRole.PRIMARY: Severity.MAJOR,
    LinkRole.BACKUP: Severity.MINOR,
    LinkRole.SATELLITE: Severity.MINOR,
}
_DEVICE_SEVERITY: Final = {
    DeviceKind.ROUTER: Severity.MAJOR,
    DeviceKind.MCU: Severity.MAJOR,
    DeviceKind.SATELLITE_TERMINAL: Severity.MINOR,
    DeviceKind.VIDEO_ENDPOINT: Severity.MINOR,
}


def site_conditions(
    topology: Topology,
    links: Mapping[str, LinkHealthReport],
    devices: Mapping[str, DeviceCondition],
    now: datetime,
) -> dict[str, SiteCondition]:
    """Outage, unreachable ancestor and maintenance of every site (pure)."""
    outage: dict[str, str | None] = {}
    for name in topology.sites:
        link_names = topology.site_links.get(name, ())
        down = [lk for lk in link_names if (r := links.get(lk)) and r.health is Health.DOWN]
        routers = [
            d
            for d in topology.site_devices.get(name, ())
            if topology.devices[d].kind is DeviceKind.ROUTER
        ]
        dead = [d for d in routers if (c := devices.get(d)) and c.reachable is False]
        if link_names and len(down) == len(link_names):
            outage[name] = f"all {len(link_names)} link(s) down"
        elif routers and len(dead) == len(routers):
            outage[name] = f"router(s) {', '.join(dead)} unreachable"
        else:
            outage[name] = None

    behind: dict[str, str | None] = {}

    def ancestor_down(name: str) -> str | None:
        if name in behind:
            return behind[name]
        behind[name] = None  # guards against a parent cycle
        parent = topology.sites[name].parent
        found: str | None = None
        if parent is not None and parent in topology.sites:
            found = parent if outage.get(parent) else ancestor_down(parent)
        behind[name] = found
        return found

    result: dict[str, SiteCondition] = {}
    for name, info in topology.sites.items():
        window = next((w for w in info.maintenance if w.covers(now)), None)
        result[name] = SiteCondition(outage[name], ancestor_down(name), window)
    return result


class AlarmBook:
    """Active alarms and the recent history; see the module docstring."""

    def __init__(
        self,
        topology: Topology = EMPTY_TOPOLOGY,
        policy: AlarmPolicy | None = None,
        *,
        first_id: int = 1,
    ) -> None:
        self.topology = topology
        self.policy = policy or AlarmPolicy()
        self._ids = itertools.count(first_id)
        self._active: dict[tuple[AlarmKind, str], Alarm] = {}
        self._by_id: dict[int, Alarm] = {}
        self._history: deque[Alarm] = deque()
        self._sites: dict[str, SiteCondition] = {}
        self._lock = threading.Lock()

    def set_topology(self, topology: Topology) -> None:
        """Follow the inventory; alarms of objects that are gone clear at the next evaluation."""
        self.topology = topology

    # ---- evaluation ------------------------------------------------------------------------

    def _wanted(
        self,
        links: Mapping[str, LinkHealthReport],
        devices: Mapping[str, DeviceCondition],
        sites: Mapping[str, SiteCondition],
    ) -> dict[tuple[AlarmKind, str], _Want]:
        topo = self.topology
        want: dict[tuple[AlarmKind, str], _Want] = {}

        def add(kind: AlarmKind, target: str, site: str, severity: Severity, msg: str) -> None:
            want[(kind, target)] = _Want(kind, target, site, severity, msg)

        for name, site_cond in sites.items():
            if site_cond.outage is None:
                continue
            if site_cond.behind_parent is not None:
                msg = f"site {name} unreachable behind parent {site_cond.behind_parent!r}"
            else:
                msg = f"site {name} unreachable: {site_cond.outage}"
            add(AlarmKind.SITE_UNREACHABLE, name, name, Severity.CRITICAL, msg)
        for name, info in topo.links.items():
            report = links.get(name)
            if report is None:
                continue
            if report.health is Health.DOWN:
                add(
                    AlarmKind.LINK_DOWN,
                    name,
                    info.site,
                    _LINK_DOWN_SEVERITY.get(info.role, Severity.MINOR),
                    f"{info.role} link {name} down: {report.reason}",
                )
            elif report.health is Health.DEGRADED:
                add(
                    AlarmKind.LINK_DEGRADED,
                    name,
                    info.site,
                    Severity.WARNING,
                    f"{info.role} link {name} degraded: {report.reason}",
                )
        for name, dev in topo.devices.items():
            cond = devices.get(name)
            if cond is None:
                continue
            if cond.reachable is False:
                add(
                    AlarmKind.DEVICE_UNREACHABLE,
                    name,
                    dev.site,
                    _DEVICE_SEVERITY.get(dev.kind, Severity.MINOR),
                    f"{dev.kind} {name} unreachable" + (f": {cond.detail}" if cond.detail else ""),
                )
            if dev.kind is DeviceKind.SATELLITE_TERMINAL and cond.esno_db is not None:
                active = (AlarmKind.ESNO_LOW, name) in self._active
                limit = self.policy.esno_clear_db if active else self.policy.esno_low_db
                if cond.esno_db < limit:
                    add(
                        AlarmKind.ESNO_LOW,
                        name,
                        dev.site,
                        Severity.WARNING,
                        f"satellite terminal {name}: Es/No {cond.esno_db:.1f} dB (low below "
                        f"{self.policy.esno_low_db:g} dB, clears at {self.policy.esno_clear_db:g} "
                        "dB)",
                    )
        return want

    def evaluate(
        self,
        links: Mapping[str, LinkHealthReport],
        devices: Mapping[str, DeviceCondition],
        now: datetime,
    ) -> list[AlarmChange]:
        """Raise, update and clear alarms for the state at ``now`` (aware datetime)."""
        sites = site_conditions(self.topology, links, devices, now)
        changes: list[AlarmChange] = []
        with self._lock:
            want = self._wanted(links, devices, sites)
            self._sites = sites
            for key, alarm in list(self._active.items()):
                if key not in want:
                    cleared = replace(alarm, cleared_at=now, updated_at=now)
                    del self._active[key]
                    self._by_id[cleared.id] = cleared
                    self._remember(cleared)
                    changes.append(AlarmChange("cleared", cleared))
            for key, w in want.items():
                cond = sites.get(w.site)
                suppressed_reason = self._suppression(w.site, cond)
                province = (
                    self.topology.sites[w.site].province if w.site in self.topology.sites else None
                )
                behind = cond.behind_parent if cond is not None else None
                current = self._active.get(key)
                if current is None:
                    alarm = Alarm(
                        id=next(self._ids),
                        kind=w.kind,
                        target=w.target,
                        site=w.site,
                        province=province,
                        severity=w.severity,
                        message=w.message,
                        raised_at=now,
                        updated_at=now,
                        suppressed=suppressed_reason is not None,
                        suppressed_reason=suppressed_reason,
                        behind_parent=behind,
                    )
                    self._active[key] = alarm
                    self._by_id[alarm.id] = alarm
                    changes.append(AlarmChange("raised", alarm))
                    continue
                if (
                    current.severity is not w.severity
                    or current.message != w.message
                    or current.suppressed_reason != suppressed_reason
                    or current.behind_parent != behind
                ):
                    updated = replace(
                        current,
                        severity=w.severity,
                        message=w.message,
                        updated_at=now,
                        suppressed=suppressed_reason is not None,
                        suppressed_reason=suppressed_reason,
                        behind_parent=behind,
                        province=province,
                    )
                    self._active[key] = updated
                    self._by_id[updated.id] = updated
                    changes.append(AlarmChange("updated", updated))
        for c in changes:
            a = c.alarm
            level = logging.INFO if a.suppressed or c.change == "updated" else logging.WARNING
            log.log(
                level,
                "alarm %s #%d %s %s (site %s)%s: %s",
                c.change,
                a.id,
                a.severity,
                a.kind,
                a.site,
                f" [suppressed: {a.suppressed_reason}]" if a.suppressed else "",
                a.message,
            )
        return changes

    def _suppression(self, site: str, cond: SiteCondition | None) -> str | None:
        if cond is None:
            return None
        if cond.behind_parent is not None:
            return f"behind unreachable parent {cond.behind_parent!r}"
        if cond.maintenance is not None:
            w = cond.maintenance
            why = f": {w.reason}" if w.reason else ""
            return f"maintenance until {w.end.isoformat()}{why}"
        return None

    def _remember(self, alarm: Alarm) -> None:
        self._history.append(alarm)
        while len(self._history) > self.policy.history:
            old = self._history.popleft()
            if self._by_id.get(old.id) is old:
                del self._by_id[old.id]

    # ---- reading and acknowledging ---------------------------------------------------------

    def acknowledge(self, alarm_id: int, user: str, now: datetime) -> Alarm:
        """Mark an alarm acknowledged by ``user``; acknowledging again keeps the first."""
        with self._lock:
            alarm = self._by_id.get(alarm_id)
            if alarm is None:
                raise NotFound(
                    f"no alarm {alarm_id} (cleared alarms are kept for the last "
                    f"{self.policy.history}; alarms are held in memory and reset on restart)"
                )
            if alarm.acked_by is not None:
                return alarm
            acked = replace(alarm, acked_by=user, acked_at=now)
            self._by_id[alarm_id] = acked
            if self._active.get(acked.key) is alarm:
                self._active[acked.key] = acked
            else:
                for i, old in enumerate(self._history):
                    if old.id == alarm_id:
                        self._history[i] = acked
                        break
            return acked

    def get(self, alarm_id: int) -> Alarm | None:
        with self._lock:
            return self._by_id.get(alarm_id)

    def alarms(
        self,
        *,
        active: bool | None = None,
        severity: Severity | None = None,
        site: str | None = None,
        province: str | None = None,
        suppressed: bool | None = None,
    ) -> list[Alarm]:
        """Matching alarms, most severe first, then newest first."""
        with self._lock:
            pool: list[Alarm] = []
            if active is not False:
                pool += self._active.values()
            if active is not True:
                pool += self._history
        topo = self.topology
        out = [
            a
            for a in pool
            if (severity is None or a.severity is severity)
            and (site is None or a.site == site)
            and (province is None or topo.in_province(a.site, province) or a.province == province)
            and (suppressed is None or a.suppressed is suppressed)
        ]
        out.sort(
            key=lambda a: (a.cleared_at is None, a.severity.rank, a.raised_at, a.id), reverse=True
        )
        return out

    def site_condition(self, site: str) -> SiteCondition | None:
        return self._sites.get(site)

    def site_conditions(self) -> dict[str, SiteCondition]:
        return dict(self._sites)

    def active_for_site(self, site: str) -> list[Alarm]:
        with self._lock:
            return [a for a in self._active.values() if a.site == site]
