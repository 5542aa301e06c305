"""The running monitor: SNMP pollers, link probes, health, alarms and the metric store, wired.

``MonitoringRuntime`` builds and runs, on one event loop, the parts ``MonitoringOptions`` ask
for (``tiandi poll`` runs the poller and the prober in two processes, each a runtime):

- the metric store from Settings: InfluxDB through the v1 API when ``TIANDI_INFLUX_URL`` is set
  (``BatchingSink(SpoolingSink(InfluxV1Sink, Spool(<data dir>/spool-<part>)))``), otherwise the
  embedded SQLite store ``<data dir>/metrics.db`` (``BatchingSink(EmbeddedStore)``);
- the poll engine (``monitors.poller.Poller`` over the v2c fast path with pysnmp behind it) and
  its ``LatestStore``;
- the prober (``monitors.probes.ProbeEngine``);
- every ``evaluate_every_s`` (1 s): what the poller learnt goes to the state file; each link's
  health from its probe window and its interface status (``monitors.health.HealthBoard``);
  every ``alarm_every_s`` (2 s) the alarms (``monitors.alarms.AlarmBook``) from the health
  reports and the devices' poll status — on a worker thread, as are the state file's writes;
- every ``reload_every_s`` (60 s): the inventory is read again from the database; when it has
  changed, pollers, probes, health and alarms follow it.

The state file (``monitors.state_store``, ``<data dir>/state.db``) joins the processes: the
prober reads the poller's interface status and device reachability there, and the API reads
everything there (``state_view``), so that API requests never compete with polling or probing
for a GIL.

In memory only (lost on restart): latest values, probe windows, health state and alarms (the
state file mirrors them while the monitor runs and is cleared when it starts again);
acknowledgements live in the state file until their alarm is pruned, and in the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.monitoring_view import DeviceState, InterfaceState, MonitoringView
from inventory.document import InventoryDoc
from inventory.enums import LinkRole, Tier
from inventory.model import Site
from inventory.store import load_document
from monitors.alarms import (
    Alarm,
    AlarmBook,
    AlarmPolicy,
    DeviceCondition,
    Severity,
    SiteCondition,
    Topology,
)
from monitors.health import DEFAULT_POLICIES, HealthBoard, HealthPolicy, LinkEvidence, LinkRef
from monitors.latest import DeviceSnapshot, LatestStore
from monitors.linkstate import Health, LinkHealthReport
from monitors.poller import Poller, PollerConfig
from monitors.probes import ProbeConfig, ProbeEngine, ProbeTarget
from monitors.profiles import load_profiles
from monitors.sinks.base import MetricQuery, MetricSink, QueryLimits
from monitors.sinks.batching import BatchingSink
from monitors.sinks.embedded import EmbeddedStore
from monitors.sinks.influx_v1 import InfluxV1Config, InfluxV1Sink
from monitors.sinks.spool import Spool, SpoolingSink
from monitors.snmp.fastpath import FastV2cTransport
from monitors.snmp.pysnmp_transport import PysnmpTransport
from monitors.state_store import DeviceRow, StateStore
from monitors.targets import TargetBuilder
from tiandi.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
HealthListener = Callable[[LinkHealthReport], None]


@dataclass(frozen=True)
class MonitoringOptions:
    """What the monitor does; ``tiandi poll`` / ``tiandi serve`` fill it from their options."""

    data_dir: Path = Path("tiandi-data")
    poll: bool = True
    probes: bool = True
    poller: PollerConfig = field(default_factory=PollerConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    port_offset: int = 0  # added to every SNMP and probe port (a lab on high ports)
    evaluate_every_s: float = 1.0
    alarm_every_s: float = 2.0
    publish_every_s: float = 5.0  # every link's state to the state file (changes at once)
    reload_every_s: float = 60.0
    policies: Mapping[LinkRole, HealthPolicy] = field(default_factory=lambda: DEFAULT_POLICIES)
    alarm_policy: AlarmPolicy = field(default_factory=AlarmPolicy)
    query_limits: QueryLimits = field(default_factory=QueryLimits)


@dataclass
class MetricStores:
    """The write chain, the reader, and how to close them (in order)."""

    sink: MetricSink
    query: MetricQuery | None
    description: str
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in self.closers:
            try:
                await close()
            except Exception as err:  # one store failing to close must not keep the others
                log.error("closing the metric store failed: %s", err, exc_info=True)


async def build_metric_stores(
    settings: Settings, data_dir: Path, limits: QueryLimits, *, spool: str = "spool"
) -> MetricStores:
    """The metric store Settings ask for. Call on the loop that will use it. Each process
    writing to InfluxDB needs a ``spool`` directory of its own."""
    if settings.influx_url:
        password = settings.influx_password.get_secret_value() if settings.influx_password else None
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        influx = InfluxV1Sink(
            InfluxV1Config(
                url=settings.influx_url,
                database=settings.influx_database,
                username=settings.influx_username,
                password=password,
                token=token,
                query_limits=limits,
            )
        )
        spooling = SpoolingSink(influx, Spool(data_dir / spool))
        spooling.start()
        batching = BatchingSink(spooling)
        return MetricStores(
            sink=batching,
            query=influx,
            description=f"InfluxDB {settings.influx_url} db {settings.influx_database!r} "
            f"(spool {data_dir / spool})",
            closers=[batching.close],  # closes the spooling sink and InfluxDB client too
        )
    store = EmbeddedStore(data_dir / "metrics.db", query_limits=limits)
    await store.start()
    batching = BatchingSink(store)
    return MetricStores(
        sink=batching,
        query=store,
        description=f"embedded store {data_dir / 'metrics.db'}",
        closers=[batching.close],  # closes the store behind it too
    )


def probe_targets(doc: InventoryDoc, topology: Topology) -> list[ProbeTarget]:
    return [
        ProbeTarget(
            link=lk.name,
            site=site.name,
            role=lk.role.value,
            address=str(lk.probe_address),
            province=topology.sites[site.name].province,
        )
        for site in doc.sites
        for lk in site.links
    ]


def device_row(snap: DeviceSnapshot) -> DeviceRow:
    """A poller snapshot as the state file stores it."""
    status = snap.status
    return DeviceRow(
        device=snap.device,
        site=snap.site,
        reachable=status.reachable,
        polled_at=status.polled_at,
        last_ok_at=status.last_ok_at,
        error=status.error,
        esno_db=_number(snap.values.get("satellite.esno_db")),
        fields=snap.values,
        interfaces=tuple(
            (i.name, i.oper_up, i.in_bps, i.out_bps, i.link) for i in snap.interfaces.values()
        ),
    )


class MonitoringRuntime:
    """Pollers, probes, health and alarms on one event loop; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        options: MonitoringOptions | None = None,
        *,
        stores: Callable[[], Awaitable[MetricStores]] | None = None,
        state: StateStore | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.session_factory = session_factory
        self.options = options or MonitoringOptions()
        self._make_stores = stores
        self.latest = LatestStore()
        self.health = HealthBoard(policies=self.options.policies)
        self.alarms = AlarmBook(policy=self.options.alarm_policy)
        self.stores: MetricStores | None = None
        self.prober: ProbeEngine | None = None
        self.poller: Poller | None = None
        self.topology = Topology.build((), (), ())
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listeners: list[HealthListener] = []
        self.rounds = 0
        self.last_round_ms = 0.0
        self._digest = ""
        self._next_alarms = 0.0
        self._next_publish = 0.0
        self._next_prune = 0.0
        self._published_devices: dict[str, DeviceSnapshot] = {}
        self._published_interfaces: dict[str, tuple[bool | None, float | None]] = {}
        self._published_sites: dict[str, SiteCondition] = {}
        self._interfaces: dict[str, tuple[bool | None, float | None]] = {}
        self._published_links: set[str] = set()
        self._targets = TargetBuilder(port_offset=self.options.port_offset)
        self._tasks: list[asyncio.Task[None]] = []
        self._transport: FastV2cTransport | None = None

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        opts = self.options
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        if self._make_stores is not None:
            self.stores = await self._make_stores()
        else:
            spool = (
                "spool"
                if opts.poll == opts.probes
                else "spool-snmp"
                if opts.poll
                else "spool-probes"
            )
            self.stores = await build_metric_stores(
                self.settings, opts.data_dir, opts.query_limits, spool=spool
            )
        log.info("monitor: metrics go to the %s", self.stores.description)
        doc, self._digest = await asyncio.to_thread(self._load_document)
        if self.state is not None:
            state = self.state
            for owner, wanted in (("poller", opts.poll), ("health", opts.probes)):
                if wanted:
                    await asyncio.to_thread(state.reset, owner)
            if opts.probes:
                first = await asyncio.to_thread(state.next_alarm_id)
                self.alarms = AlarmBook(policy=opts.alarm_policy, first_id=first)
        if opts.probes:
            probe = opts.probe
            if opts.port_offset:
                probe = _with_port(probe, probe.port + opts.port_offset)
            self.prober = ProbeEngine(probe, sink=self.stores.sink)
        if opts.poll:
            self._transport = FastV2cTransport(PysnmpTransport())
            self.poller = Poller(
                self._transport,
                load_profiles(),
                sink=self.stores.sink,
                latest=self.latest,
                config=opts.poller,
            )
        self._apply(doc)
        if self.prober is not None:
            await self.prober.start()
        loop = self.loop
        if self.poller is not None:
            self._tasks.append(loop.create_task(self._run_poller(), name="monitor-poller"))
        self._tasks.append(loop.create_task(self._evaluate_loop(), name="monitor-evaluate"))
        self._tasks.append(loop.create_task(self._reload_loop(), name="monitor-reload"))
        # What exists now (inventory, targets, profiles, the app) lives as long as the process:
        # keep it out of the cyclic GC's full collections, which otherwise stall the loop for
        # 100-500 ms at national scale and show up as probe RTT.
        gc.freeze()

    async def stop(self) -> None:
        """Stop every task, then flush and close the metric store."""
        if self.poller is not None:
            self.poller.stop()
        for task in reversed(self._tasks):
            if task.get_name() != "monitor-poller":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.prober is not None:
            await self.prober.close()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self.stores is not None:
            await self.stores.close()
            self.stores = None

    async def _run_poller(self) -> None:
        assert self.poller is not None
        await self.poller.run()

    # ---- inventory -------------------------------------------------------------------------

    def _load_document(self) -> tuple[InventoryDoc, str]:
        with self.session_factory() as session:
            doc = load_document(session)
        return doc, hashlib.sha256(doc.model_dump_json().encode("utf-8")).hexdigest()

    def _apply(self, doc: InventoryDoc) -> None:
        """Make every part follow ``doc``."""
        topology = Topology.from_document(doc)
        self.topology = topology
        self.alarms.set_topology(topology)
        now = time.monotonic()
        self.health.set_links(
            (LinkRef(lk.name, lk.site, lk.role) for lk in topology.links.values()), now
        )
        targets = self._targets.from_document(doc)
        if self.poller is not None:
            self.poller.set_targets(targets)
        else:
            self.latest.set_targets(targets)
        if self.prober is not None:
            self.prober.set_targets(probe_targets(doc, topology))
            if self.state is not None:
                gone = [n for n in self._published_links if n not in topology.links]
                self.state.drop_links(gone)
                self._published_links -= set(gone)
        log.info(
            "monitor: %d sites, %d devices, %d links",
            len(topology.sites),
            len(topology.devices),
            len(topology.links),
        )

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.reload_every_s)
            try:
                doc, digest = await asyncio.to_thread(self._load_document)
            except Exception as err:  # the database may be down for a while: keep monitoring
                log.error("monitor: reading the inventory failed (%s); keeping the last one", err)
                continue
            if digest != self._digest:
                log.info("monitor: the inventory changed; following it")
                self._digest = digest
                self._apply(doc)
                gc.freeze()

    # ---- evaluation ------------------------------------------------------------------------

    async def _evaluate_loop(self) -> None:
        every = self.options.evaluate_every_s
        while True:
            started = time.perf_counter()
            await self.evaluate()
            self.last_round_ms = (time.perf_counter() - started) * 1000.0
            await asyncio.sleep(max(0.05, every - (time.perf_counter() - started)))

    async def evaluate(self, chunk: int = 100) -> None:
        """One round: publish what the poller learnt, evaluate every link's health, then (every
        ``alarm_every_s``) the alarms. Yields to the loop every ``chunk`` links so that probes
        keep their timing; file writes and the alarm evaluation run on worker threads."""
        if self.poller is not None and self.state is not None:
            await asyncio.to_thread(self._publish_polls)
        if self.prober is None:
            self.rounds += 1
            return
        if self.poller is None and self.state is not None:
            self._interfaces = await asyncio.to_thread(self.state.interfaces)
        prober = self.prober
        changed: list[LinkHealthReport] = []
        for i, ref in enumerate(self.health.links()):
            now = time.monotonic()
            up, at = self._interface(ref.link)
            evidence = LinkEvidence(prober.reading(ref.link), up, at)
            try:
                report = self.health.evaluate(ref.link, evidence, now)
            except KeyError:  # removed by a reload meanwhile
                continue
            if report is not None:
                changed.append(report)
                self._announce(report)
            if i % chunk == chunk - 1:
                await asyncio.sleep(0)
        if self.state is not None:
            if time.monotonic() >= self._next_publish:
                self._next_publish = time.monotonic() + self.options.publish_every_s
                changed = list(self.health.reports().values())
            if changed:
                await asyncio.to_thread(self._publish_links, changed)
        if time.monotonic() >= self._next_alarms:
            self._next_alarms = time.monotonic() + self.options.alarm_every_s
            # pure computation over snapshots: on a worker thread, so that the loop (and the
            # probes' timing) never waits for it
            await asyncio.to_thread(self.evaluate_alarms, self.health.reports())
        self.rounds += 1

    def _interface(self, link: str) -> tuple[bool | None, float | None]:
        if self.poller is not None or self.state is None:
            place = self.latest.link(link)
            return (place.oper_up, place.at_monotonic) if place is not None else (None, None)
        return self._interfaces.get(link, (None, None))

    def _device_conditions(self) -> dict[str, DeviceCondition]:
        if self.poller is None and self.state is not None:
            return {
                device: DeviceCondition(reachable, error, esno)
                for device, reachable, error, esno in self.state.device_conditions()
            }
        return {
            snap.device: DeviceCondition(
                reachable=snap.status.reachable,
                detail=snap.status.error,
                esno_db=_number(snap.values.get("satellite.esno_db")),
            )
            for snap in self.latest.devices()
        }

    def evaluate_alarms(self, reports: Mapping[str, LinkHealthReport]) -> None:
        changes = self.alarms.evaluate(reports, self._device_conditions(), datetime.now(UTC))
        state = self.state
        if state is None:
            return
        if changes:
            state.put_alarms(c.alarm for c in changes)
        sites = self.alarms.site_conditions()
        if sites != self._published_sites:
            state.put_sites(sites)
            self._published_sites = sites
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 60.0
            state.prune_alarms(self.options.alarm_policy.history)

    # ---- publishing to the state file (worker threads) -------------------------------------

    def _publish_links(self, reports: list[LinkHealthReport]) -> None:
        assert self.state is not None
        self.state.put_links(reports)
        self._published_links.update(r.link for r in reports)

    def _publish_polls(self) -> None:
        """Devices polled since the last round, and link interfaces whose status changed."""
        assert self.state is not None
        devices = [
            snap
            for snap in self.latest.devices()
            if self._published_devices.get(snap.device) is not snap
        ]
        interfaces: list[tuple[str, bool | None, float | None]] = []
        for name in self.topology.links:
            place = self.latest.link(name)
            if place is None:
                continue
            current = (place.oper_up, place.at_monotonic)
            if self._published_interfaces.get(name) != current:
                interfaces.append((name, *current))
        if devices:
            self.state.put_devices(device_row(snap) for snap in devices)
            for snap in devices:
                self._published_devices[snap.device] = snap
        if interfaces:
            self.state.put_interfaces(interfaces)
            for name, up, at in interfaces:
                self._published_interfaces[name] = (up, at)

    def _announce(self, report: LinkHealthReport) -> None:
        level = logging.WARNING if report.health is Health.DOWN else logging.INFO
        log.log(
            level,
            "link %s (site %s) is %s: %s",
            report.link,
            report.site,
            report.health,
            report.reason,
        )
        for listener in self.listeners:
            try:
                listener(report)
            except Exception as err:  # a listener's bug must not stop health evaluation
                log.error("health listener %r failed: %s", listener, err, exc_info=True)

    def summary(self) -> str:
        """One line for the log: what this process does and how it goes."""
        parts: list[str] = []
        if self.poller is not None:
            devices = ", ".join(f"{n} {k}" for k, n in self.latest.counts().items())
            parts.append(f"devices: {devices}")
        if self.prober is not None:
            by_health = dict.fromkeys(Health, 0)
            for report in self.health.reports().values():
                by_health[report.health] += 1
            links = ", ".join(f"{n} {h}" for h, n in by_health.items())
            alarms = self.alarms.alarms(active=True)
            hidden = sum(1 for a in alarms if a.suppressed)
            st = self.prober.stats
            parts += [
                f"links: {links}",
                f"alarms: {len(alarms)} active ({hidden} suppressed)",
                f"probes sent {st.sent}, replies {st.replies}, lost {st.lost}, late {st.late}, "
                f"points written {st.written_points}, dropped {st.dropped_points}",
            ]
        parts.append(f"round {self.last_round_ms:.0f} ms")
        return "; ".join(parts)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _with_port(config: ProbeConfig, port: int) -> ProbeConfig:
    return replace(config, port=port)


# ---- the API's view of monitor processes (through the state file) ---------------------------

STALE_AFTER_S = 30.0
"""A link whose state is older than this is shown ``unknown``: its monitor has stopped."""


def state_path(data_dir: Path) -> Path:
    return data_dir / "state.db"


class _StateDevices:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def device_state(self, device: str) -> DeviceState | None:
        row = self.state.device(device)
        if row is None:
            return None

        def at(epoch: float | None) -> datetime | None:
            return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None

        return DeviceState(
            device=device,
            reachable=row.reachable,
            polled_at=at(row.polled_at),
            last_ok_at=at(row.last_ok_at),
            error=row.error,
            values=row.fields,
            interfaces=tuple(InterfaceState(*i) for i in row.interfaces),
        )


class _StateHealth:
    def __init__(self, state: StateStore, stale_after_s: float) -> None:
        self.state = state
        self.stale_after_s = stale_after_s

    def report(self, link: str) -> LinkHealthReport | None:
        found = self.state.link_report(link)
        if found is None:
            return None
        age = time.monotonic() - found.at
        if age <= self.stale_after_s:
            return found
        return replace(
            found,
            health=Health.UNKNOWN,
            since=found.at,
            reason=f"not evaluated for {age:.0f} s: is the monitor (tiandi poll) running?",
        )


class _StateAlarms:
    def __init__(self, state: StateStore, session_factory: sessionmaker[Session]) -> None:
        self.state = state
        self.session_factory = session_factory

    def _provinces(self, province: str) -> list[str]:
        if not province.isdigit():
            return [province]
        with self.session_factory() as session:
            return list(
                session.scalars(
                    select(Site.name).where(
                        Site.tier == Tier.PROVINCE, Site.province_code.startswith(province[:2])
                    )
                )
            )

    def alarms(
        self,
        *,
        active: bool | None = None,
        severity: Severity | None = None,
        site: str | None = None,
        province: str | None = None,
        suppressed: bool | None = None,
    ) -> list[Alarm]:
        return self.state.alarms(
            active=active,
            severity=severity,
            site=site,
            provinces=self._provinces(province) if province is not None else None,
            suppressed=suppressed,
        )

    def acknowledge(self, alarm_id: int, user: str, now: datetime) -> Alarm:
        return self.state.acknowledge(alarm_id, user, now)

    def site_condition(self, site: str) -> SiteCondition | None:
        return self.state.site_condition(site)


def build_metric_reader(settings: Settings, data_dir: Path, limits: QueryLimits) -> MetricQuery:
    """What the API reads series from: the InfluxDB the monitor writes to, or its embedded
    store (read through a connection of this process; SQLite's WAL lets it read while the
    monitor writes)."""
    if settings.influx_url:
        password = settings.influx_password.get_secret_value() if settings.influx_password else None
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        return InfluxV1Sink(
            InfluxV1Config(
                url=settings.influx_url,
                database=settings.influx_database,
                username=settings.influx_username,
                password=password,
                token=token,
                query_limits=limits,
            )
        )
    return EmbeddedStore(data_dir / "metrics.db", query_limits=limits)


def state_view(
    settings: Settings,
    session_factory: sessionmaker[Session],
    data_dir: Path,
    *,
    limits: QueryLimits | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> MonitoringView:
    """The API's view of the monitor processes writing ``<data_dir>/state.db``."""
    limits = limits or QueryLimits()
    state = StateStore(state_path(data_dir))
    return MonitoringView(
        devices=_StateDevices(state),
        health=_StateHealth(state, stale_after_s),
        alarms=_StateAlarms(state, session_factory),
        metrics=build_metric_reader(settings, data_dir, limits),
        query_limits=limits,
    )
