"""The latest polled state of every device, interface and link, in memory.

Written by the poll engine (one event loop), read by the API (worker threads) and by link health:

- reads are O(1) dictionary look-ups returning **immutable snapshots** (frozen dataclasses,
  read-only mappings): a reader never sees a half-written device, from any thread;
- a write replaces a device's whole snapshot (one dictionary assignment), and the indexes that
  can change size (sites, links) are replaced whole when the topology changes, so no reader
  iterates a dictionary while it grows;
- ``site(name)`` gives a snapshot of a site: its devices and the interface status of each of
  its links.

Interface conventions (from the ``interface`` measurement, ``docs/metrics.md``): a row is an
interface, named by its ``ifname`` tag; ``oper_status`` 1 is up; ``in_bps``/``out_bps`` its rates;
a ``link`` tag says which inventory link rides on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from inventory.enums import DeviceKind
from monitors.sinks.base import FieldValue
from monitors.snmp.base import FailureCause, PollFailure
from monitors.targets import PollTarget, interface_key

IF_STATUS_UP: Final = 1
_EMPTY: Final[Mapping[str, FieldValue]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PollStatus:
    """How the polls of a device went. Times are epoch seconds (UTC)."""

    reachable: bool | None = None  # None: not polled yet
    polled_at: float | None = None  # end of the last attempt
    last_ok_at: float | None = None
    last_failure_at: float | None = None
    failure_cause: FailureCause | None = None  # of the last failure (kept after recovery)
    failure_detail: str | None = None
    consecutive_failures: int = 0
    response_ms: float | None = None  # of the last successful poll

    @property
    def error(self) -> str | None:
        """The current failure as "cause: detail", None while the device answers."""
        if self.reachable is not False or self.failure_cause is None:
            return None
        return f"{self.failure_cause}: {self.failure_detail}"


@dataclass(frozen=True, slots=True)
class RowState:
    """One table row as last polled (an interface, a call, a conference...)."""

    measurement: str
    tags: Mapping[str, str]  # the row's own tags (ifname, link, role, remote...)
    fields: Mapping[str, FieldValue]


@dataclass(frozen=True, slots=True)
class InterfaceState:
    """One interface as last polled."""

    device: str
    name: str  # ifname as the device reports it
    oper_up: bool | None
    admin_up: bool | None
    in_bps: float | None
    out_bps: float | None
    link: str | None
    role: str | None
    fields: Mapping[str, FieldValue]
    at: float  # epoch seconds of the poll
    at_monotonic: float  # the same moment on the monotonic clock (staleness checks)


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """A device's latest poll: status, scalar values, table rows, interfaces."""

    device: str
    site: str
    kind: DeviceKind
    profile: str | None  # the device profile used
    status: PollStatus
    values: Mapping[str, FieldValue] = field(default_factory=lambda: _EMPTY)  # "meas.field"
    rows: tuple[RowState, ...] = ()
    interfaces: Mapping[str, InterfaceState] = field(
        default_factory=lambda: MappingProxyType({})
    )  # by ifname
    at: float | None = None  # epoch seconds of the values (last successful poll)
    at_monotonic: float | None = None


@dataclass(frozen=True, slots=True)
class LinkInterface:
    """The router interface a link rides on, as last polled."""

    link: str
    site: str
    role: str
    device: str
    interface: str  # as the inventory names it
    state: InterfaceState | None  # None: not polled yet, or the device does not report it

    @property
    def oper_up(self) -> bool | None:
        return self.state.oper_up if self.state is not None else None

    @property
    def at_monotonic(self) -> float | None:
        return self.state.at_monotonic if self.state is not None else None


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    site: str
    devices: tuple[DeviceSnapshot, ...]
    links: tuple[LinkInterface, ...]


@dataclass(frozen=True, slots=True)
class _LinkPlace:
    site: str
    role: str
    device: str
    interface: str
    key: str  # interface_key(interface)


class LatestStore:
    """Latest state per device, interface and link. See the module documentation."""

    def __init__(self) -> None:
        self._devices: dict[str, DeviceSnapshot] = {}
        self._sites: Mapping[str, tuple[str, ...]] = MappingProxyType({})
        self._site_links: Mapping[str, tuple[str, ...]] = MappingProxyType({})
        self._links: Mapping[str, _LinkPlace] = MappingProxyType({})

    # ---- topology ---------------------------------------------------------------------------

    def set_targets(self, targets: Iterable[PollTarget]) -> None:
        """Know the devices, sites and links (call again when the inventory changes)."""
        sites: dict[str, list[str]] = {}
        site_links: dict[str, list[str]] = {}
        links: dict[str, _LinkPlace] = {}
        devices: dict[str, DeviceSnapshot] = {}
        for t in targets:
            sites.setdefault(t.site, []).append(t.device)
            for ref in t.links:
                if ref.interface is None:
                    continue
                links[ref.link] = _LinkPlace(
                    t.site, ref.role.value, t.device, ref.interface, interface_key(ref.interface)
                )
                site_links.setdefault(t.site, []).append(ref.link)
            old = self._devices.get(t.device)
            if old is not None and old.site == t.site and old.kind is t.kind:
                devices[t.device] = old
            else:
                devices[t.device] = DeviceSnapshot(t.device, t.site, t.kind, None, PollStatus())
        self._devices = devices
        self._sites = MappingProxyType({k: tuple(v) for k, v in sites.items()})
        self._site_links = MappingProxyType({k: tuple(v) for k, v in site_links.items()})
        self._links = MappingProxyType(links)

    # ---- writes (the poll engine) -----------------------------------------------------------

    def record_success(
        self,
        target: PollTarget,
        *,
        profile: str | None,
        at: float,
        at_monotonic: float,
        response_ms: float,
        values: Mapping[str, FieldValue],
        rows: Iterable[RowState],
    ) -> DeviceSnapshot:
        old = self._devices.get(target.device)
        prev = old.status if old is not None else PollStatus()
        status = PollStatus(
            reachable=True,
            polled_at=at,
            last_ok_at=at,
            last_failure_at=prev.last_failure_at,
            failure_cause=prev.failure_cause,
            failure_detail=prev.failure_detail,
            consecutive_failures=0,
            response_ms=response_ms,
        )
        rows = tuple(rows)
        interfaces: dict[str, InterfaceState] = {}
        for row in rows:
            name = row.tags.get("ifname")
            if row.measurement != "interface" or name is None:
                continue
            f = row.fields
            interfaces[name] = InterfaceState(
                device=target.device,
                name=name,
                oper_up=_is_up(f.get("oper_status")),
                admin_up=_is_up(f.get("admin_status")),
                in_bps=_float(f.get("in_bps")),
                out_bps=_float(f.get("out_bps")),
                link=row.tags.get("link"),
                role=row.tags.get("role"),
                fields=f,
                at=at,
                at_monotonic=at_monotonic,
            )
        snap = DeviceSnapshot(
            device=target.device,
            site=target.site,
            kind=target.kind,
            profile=profile,
            status=status,
            values=MappingProxyType(dict(values)),
            rows=rows,
            interfaces=MappingProxyType(interfaces),
            at=at,
            at_monotonic=at_monotonic,
        )
        self._devices[target.device] = snap
        return snap

    def record_failure(
        self, target: PollTarget, failure: PollFailure, *, at: float, profile: str | None = None
    ) -> DeviceSnapshot:
        """The values of the last successful poll stay (with their time); the status changes."""
        old = self._devices.get(target.device)
        if old is None:
            old = DeviceSnapshot(target.device, target.site, target.kind, profile, PollStatus())
        prev = old.status
        status = PollStatus(
            reachable=False,
            polled_at=at,
            last_ok_at=prev.last_ok_at,
            last_failure_at=at,
            failure_cause=failure.cause,
            failure_detail=failure.detail,
            consecutive_failures=prev.consecutive_failures + 1,
            response_ms=prev.response_ms,
        )
        snap = DeviceSnapshot(
            device=old.device,
            site=old.site,
            kind=old.kind,
            profile=profile or old.profile,
            status=status,
            values=old.values,
            rows=old.rows,
            interfaces=old.interfaces,
            at=old.at,
            at_monotonic=old.at_monotonic,
        )
        self._devices[target.device] = snap
        return snap

    # ---- reads (any thread) -----------------------------------------------------------------

    def device(self, name: str) -> DeviceSnapshot | None:
        return self._devices.get(name)

    def devices(self) -> tuple[DeviceSnapshot, ...]:
        return tuple(self._devices.values())

    def interface(self, device: str, ifname: str) -> InterfaceState | None:
        snap = self._devices.get(device)
        return snap.interfaces.get(ifname) if snap is not None else None

    def link(self, link: str) -> LinkInterface | None:
        """The interface ``link`` rides on, matched by name (short or long form)."""
        place = self._links.get(link)
        if place is None:
            return None
        snap = self._devices.get(place.device)
        state: InterfaceState | None = None
        if snap is not None:
            state = snap.interfaces.get(place.interface)
            if state is None:
                state = next(
                    (
                        i
                        for i in snap.interfaces.values()
                        if i.link == link or interface_key(i.name) == place.key
                    ),
                    None,
                )
        return LinkInterface(link, place.site, place.role, place.device, place.interface, state)

    def site(self, site: str) -> SiteSnapshot | None:
        names = self._sites.get(site)
        if names is None:
            return None
        devices = tuple(d for n in names if (d := self._devices.get(n)) is not None)
        links = tuple(
            lk for n in self._site_links.get(site, ()) if (lk := self.link(n)) is not None
        )
        return SiteSnapshot(site, devices, links)

    def counts(self) -> dict[str, int]:
        """Devices by poll state: ``ok``, ``failing``, ``never`` (not polled yet)."""
        out = {"ok": 0, "failing": 0, "never": 0}
        for snap in tuple(self._devices.values()):
            r = snap.status.reachable
            out["never" if r is None else "ok" if r else "failing"] += 1
        return out


def _is_up(value: FieldValue | None) -> bool | None:
    if value is None or isinstance(value, bool | str):
        return None
    return int(value) == IF_STATUS_UP


def _float(value: FieldValue | None) -> float | None:
    if value is None or isinstance(value, bool | str):
        return None
    return float(value)
