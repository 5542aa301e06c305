"""Link health with hysteresis: probe statistics and interface status in, ``LinkHealthReport`` out.

Pure logic: no sockets, no clock of its own. The caller (``tiandi.monitoring_runtime``) hands in
the evidence and the time (monotonic seconds), so tests drive it with a fake clock.

States and transitions (``monitors.linkstate.Health``)::

                 down condition held down_hold_s
      UP ───────────────────────────────────────────▶ DOWN
      │  ▲                                              │
      │  │ up condition held up_hold_s                  │ clear condition held clear_down_hold_s
      │  │                                              │ (doubled per recent down: flap damping)
      ▼  │          down condition held down_hold_s     ▼
      DEGRADED ◀───────────────────────────────────── (DEGRADED, "recovering")
         degraded condition held degraded_hold_s (from UP)

- **down condition**: the interface is oper-down, or the loss over the last few probes
  (``recent_loss_pct``) or over the whole window is ``>= down_loss_pct``;
- **clear condition** (leaves DOWN): interface not down and recent loss ``< clear_down_loss_pct``.
  A link leaves DOWN for DEGRADED, never straight for UP: it must then prove itself for
  ``up_hold_s`` before the failover engine may move traffic back;
- **degraded condition**: window loss ``>= degraded_loss_pct``, or mean RTT ``> degraded_rtt_ms``,
  or jitter ``> degraded_jitter_ms``;
- **up condition** (leaves DEGRADED): loss ``< up_loss_pct`` and RTT ``<= up_rtt_ms`` and jitter
  ``<= up_jitter_ms`` and interface not down — thresholds stricter than the degraded ones, so a
  link sitting on a threshold does not alternate;
- **UNKNOWN**: no fresh evidence — no probe result for ``probe_stale_s`` and no interface status
  for ``interface_stale_s``, or probes stale and the interface up (an interface that is up says
  nothing about loss). From UNKNOWN, fresh evidence classifies the link at once — DEGRADED if
  the degraded condition holds, else UP (DOWN still needs its hold) — once the window holds
  ``min_samples`` probe results.

"Held" means true at every evaluation since it first became true; a condition that turns false
restarts its timer. Flap damping: every entry into DOWN within ``flap_window_s`` doubles the
clear hold (capped at ``flap_max_hold_s``), so a link that keeps dropping out stays DOWN rather
than bouncing DOWN/DEGRADED with its input.

Each transition yields a ``LinkHealthReport`` whose ``reason`` carries the numbers, e.g.
``"loss 100.0% >= 80% for 3.0 s"`` or ``"rtt 950.3 ms > 900 ms for 10.0 s"``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from inventory.enums import LinkRole
from monitors.linkstate import Health, LinkHealthReport, LinkQuality


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds for one link role. Loss in percent, times in seconds, RTT/jitter in ms."""

    down_loss_pct: float = 80.0
    down_hold_s: float = 3.0
    clear_down_loss_pct: float = 20.0
    clear_down_hold_s: float = 10.0
    degraded_loss_pct: float = 5.0
    degraded_rtt_ms: float = 150.0
    degraded_jitter_ms: float = 30.0
    degraded_hold_s: float = 10.0
    up_loss_pct: float = 1.0
    up_rtt_ms: float = 120.0
    up_jitter_ms: float = 20.0
    up_hold_s: float = 30.0
    min_samples: int = 10
    probe_stale_s: float = 10.0
    interface_stale_s: float = 300.0
    flap_window_s: float = 600.0
    flap_max_hold_s: float = 300.0

    def __post_init__(self) -> None:
        problems = []
        if not self.up_loss_pct <= self.degraded_loss_pct <= self.down_loss_pct:
            problems.append("loss thresholds must satisfy up <= degraded <= down")
        if self.clear_down_loss_pct > self.down_loss_pct:
            problems.append("clear_down_loss_pct must not exceed down_loss_pct")
        if self.up_rtt_ms > self.degraded_rtt_ms:
            problems.append("up_rtt_ms must not exceed degraded_rtt_ms")
        if self.up_jitter_ms > self.degraded_jitter_ms:
            problems.append("up_jitter_ms must not exceed degraded_jitter_ms")
        holds = (self.down_hold_s, self.clear_down_hold_s, self.degraded_hold_s, self.up_hold_s)
        if min(holds) < 0 or self.probe_stale_s <= 0 or self.interface_stale_s <= 0:
            problems.append("hold and staleness times must be >= 0 (staleness > 0)")
        if self.min_samples < 1:
            problems.append("min_samples must be at least 1")
        if problems:
            raise ValueError("invalid health policy: " + "; ".join(problems))

    def scaled(self, factor: float) -> HealthPolicy:
        """The same thresholds with every time multiplied by ``factor`` (tests, fast probing)."""
        return replace(
            self,
            down_hold_s=self.down_hold_s * factor,
            clear_down_hold_s=self.clear_down_hold_s * factor,
            degraded_hold_s=self.degraded_hold_s * factor,
            up_hold_s=self.up_hold_s * factor,
            probe_stale_s=self.probe_stale_s * factor,
            interface_stale_s=self.interface_stale_s * factor,
            flap_window_s=self.flap_window_s * factor,
            flap_max_hold_s=self.flap_max_hold_s * factor,
        )


TERRESTRIAL: Final = HealthPolicy()
"""Primary (e-government extranet) and backup (second carrier): RTT 15-60 ms when healthy."""

SATELLITE: Final = HealthPolicy(
    degraded_rtt_ms=900.0,
    up_rtt_ms=800.0,
    degraded_jitter_ms=60.0,
    up_jitter_ms=40.0,
)
"""GEO VSAT: ~550-650 ms RTT is normal (two hops of ~36,000 km), so only the RTT and jitter
limits differ; loss limits are the same because video suffers from loss whatever the medium."""

DEFAULT_POLICIES: Final[Mapping[LinkRole, HealthPolicy]] = MappingProxyType(
    {LinkRole.PRIMARY: TERRESTRIAL, LinkRole.BACKUP: TERRESTRIAL, LinkRole.SATELLITE: SATELLITE}
)


@dataclass(frozen=True, slots=True)
class ProbeReading:
    """What the prober knows about one link right now."""

    quality: LinkQuality  # over the sliding window
    recent_loss_pct: float | None  # over the last few resolved probes (None: none yet)
    at: float  # monotonic time of the last probe result (a reply or a timeout)


@dataclass(frozen=True, slots=True)
class LinkEvidence:
    """Everything the evaluator looks at for one link at one moment."""

    probe: ProbeReading | None = None
    interface_up: bool | None = None  # ifOperStatus of the link's router interface
    interface_at: float | None = None  # monotonic time that status was read


@dataclass(frozen=True, slots=True)
class LinkRef:
    link: str
    site: str
    role: LinkRole


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _num(value: float) -> str:
    return f"{value:g}"


def _within(q: LinkQuality, p: HealthPolicy) -> str:
    parts = [f"loss {_pct(q.loss_pct)} < {_num(p.degraded_loss_pct)}%"]
    if q.rtt_ms is not None:
        parts.append(f"rtt {q.rtt_ms:.1f} ms <= {_num(p.degraded_rtt_ms)} ms")
    if q.jitter_ms is not None:
        parts.append(f"jitter {q.jitter_ms:.1f} ms <= {_num(p.degraded_jitter_ms)} ms")
    return ", ".join(parts)


class _Timer:
    """How long a condition has been true without interruption."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since: float | None = None

    def update(self, true: bool, now: float) -> float | None:
        if not true:
            self.since = None
            return None
        if self.since is None:
            self.since = now
        return now - self.since

    def reset(self) -> None:
        self.since = None


@dataclass(slots=True)
class _Facts:
    """The evidence reduced to what the conditions test, with the words for the reasons."""

    probe_fresh: bool
    interface_fresh: bool
    interface_up: bool | None
    quality: LinkQuality | None
    down_why: str | None = None
    clear_why: str | None = None
    degraded_why: str | None = None
    up_why: str | None = None
    unknown_why: str | None = None
    enough_samples: bool = False


class LinkHealth:
    """The hysteresis state machine of one link."""

    def __init__(self, ref: LinkRef, policy: HealthPolicy, now: float) -> None:
        self.ref = ref
        self.policy = policy
        self._down = _Timer()
        self._clear = _Timer()
        self._degraded = _Timer()
        self._up = _Timer()
        self._downs: deque[float] = deque()
        self.report = LinkHealthReport(
            link=ref.link,
            site=ref.site,
            health=Health.UNKNOWN,
            since=now,
            at=now,
            quality=None,
            interface_up=None,
            reason="not evaluated yet",
        )

    # ---- the conditions -------------------------------------------------------------------

    def _facts(self, ev: LinkEvidence, now: float) -> _Facts:
        p = self.policy
        probe = ev.probe
        probe_fresh = probe is not None and now - probe.at <= p.probe_stale_s
        interface_fresh = (
            ev.interface_up is not None
            and ev.interface_at is not None
            and now - ev.interface_at <= p.interface_stale_s
        )
        iface = ev.interface_up if interface_fresh else None
        quality = probe.quality if probe is not None and probe_fresh else None
        f = _Facts(probe_fresh, interface_fresh, iface, quality)
        if not probe_fresh:
            age = "never probed" if probe is None else f"no probe result for {now - probe.at:.1f} s"
            f.unknown_why = age if iface is None else f"{age}; interface up"
        if iface is False:
            f.down_why = "interface down"
        if quality is None or probe is None:
            return f
        f.enough_samples = quality.samples >= p.min_samples
        recent = probe.recent_loss_pct
        loss = quality.loss_pct
        if f.down_why is None:
            if recent is not None and recent >= p.down_loss_pct:
                f.down_why = f"loss {_pct(recent)} >= {_num(p.down_loss_pct)}%"
            elif f.enough_samples and loss >= p.down_loss_pct:
                f.down_why = f"loss {_pct(loss)} >= {_num(p.down_loss_pct)}% over the window"
        if iface is not False and recent is not None and recent < p.clear_down_loss_pct:
            f.clear_why = f"loss {_pct(recent)} < {_num(p.clear_down_loss_pct)}%" + (
                " and interface up" if iface else ""
            )
        if f.enough_samples:
            rtt, jitter = quality.rtt_ms, quality.jitter_ms
            if loss >= p.degraded_loss_pct:
                f.degraded_why = f"loss {_pct(loss)} >= {_num(p.degraded_loss_pct)}%"
            elif rtt is not None and rtt > p.degraded_rtt_ms:
                f.degraded_why = f"rtt {rtt:.1f} ms > {_num(p.degraded_rtt_ms)} ms"
            elif jitter is not None and jitter > p.degraded_jitter_ms:
                f.degraded_why = f"jitter {jitter:.1f} ms > {_num(p.degraded_jitter_ms)} ms"
            if (
                iface is not False
                and rtt is not None
                and loss < p.up_loss_pct
                and rtt <= p.up_rtt_ms
                and (jitter is None or jitter <= p.up_jitter_ms)
            ):
                jit = f", jitter {jitter:.1f} ms <= {_num(p.up_jitter_ms)} ms" if jitter else ""
                f.up_why = (
                    f"loss {_pct(loss)} < {_num(p.up_loss_pct)}%, rtt {rtt:.1f} ms <= "
                    f"{_num(p.up_rtt_ms)} ms{jit}"
                )
        return f

    def _clear_hold(self, now: float) -> float:
        p = self.policy
        while self._downs and now - self._downs[0] > p.flap_window_s:
            self._downs.popleft()
        n = len(self._downs)
        if n <= 1:
            return p.clear_down_hold_s
        damped: float = p.clear_down_hold_s * float(2 ** (n - 1))
        return min(damped, max(p.flap_max_hold_s, p.clear_down_hold_s))

    def _waiting(self, f: _Facts) -> str:
        if f.unknown_why is not None:
            return f.unknown_why
        if f.down_why is not None:
            return f"{f.down_why}, not yet for {_num(self.policy.down_hold_s)} s"
        samples = f.quality.samples if f.quality is not None else 0
        return f"waiting for {self.policy.min_samples} probe results ({samples} so far)"

    # ---- one evaluation -------------------------------------------------------------------

    def update(self, ev: LinkEvidence, now: float) -> LinkHealthReport | None:
        """Evaluate at ``now``; returns the new report if the health changed, else None
        (``self.report`` is refreshed either way)."""
        p = self.policy
        f = self._facts(ev, now)
        state = self.report.health
        held_down = self._down.update(f.down_why is not None, now)
        held_clear = self._clear.update(f.clear_why is not None, now)
        held_degraded = self._degraded.update(f.degraded_why is not None, now)
        held_up = self._up.update(f.up_why is not None, now)

        new: Health | None = None
        reason = ""
        if f.down_why is not None and held_down is not None and held_down >= p.down_hold_s:
            if state is not Health.DOWN:
                new, reason = Health.DOWN, f"{f.down_why} for {held_down:.1f} s"
        elif f.unknown_why is not None and f.down_why is None:
            if state is not Health.UNKNOWN:
                new, reason = Health.UNKNOWN, f.unknown_why
        elif state is Health.DOWN:
            hold = self._clear_hold(now)
            if held_clear is not None and held_clear >= hold:
                flaps = len(self._downs)
                damped = f" after {flaps} downs in {_num(p.flap_window_s)} s" if flaps > 1 else ""
                new = Health.DEGRADED
                reason = f"recovering: {f.clear_why} for {held_clear:.1f} s{damped}"
        elif state is Health.UNKNOWN:
            if f.down_why is None and f.enough_samples:
                if f.degraded_why is not None:
                    new, reason = Health.DEGRADED, f.degraded_why
                elif f.quality is not None:  # first judgement: the degraded limits decide
                    new, reason = Health.UP, _within(f.quality, p)
        elif state is Health.UP:
            if held_degraded is not None and held_degraded >= p.degraded_hold_s:
                new, reason = Health.DEGRADED, f"{f.degraded_why} for {held_degraded:.1f} s"
        elif state is Health.DEGRADED and held_up is not None and held_up >= p.up_hold_s:
            new, reason = Health.UP, f"{f.up_why} for {held_up:.1f} s"

        if new is None:
            why = self.report.reason
            if state is Health.UNKNOWN:
                why = self._waiting(f)
            old = self.report
            self.report = LinkHealthReport(
                link=old.link,
                site=old.site,
                health=old.health,
                since=old.since,
                at=now,
                quality=f.quality,
                interface_up=f.interface_up,
                reason=why,
            )
            return None
        if new is Health.DOWN:
            self._downs.append(now)
        if state is Health.DOWN or new is Health.UNKNOWN:
            # a new episode: timers restart from this moment's evidence
            for timer in (self._degraded, self._up):
                timer.reset()
        self.report = LinkHealthReport(
            link=self.ref.link,
            site=self.ref.site,
            health=new,
            since=now,
            at=now,
            quality=f.quality,
            interface_up=f.interface_up,
            reason=reason,
        )
        return self.report


@dataclass
class HealthBoard:
    """The health of every monitored link; ``evaluate`` is called once per link per round."""

    policies: Mapping[LinkRole, HealthPolicy] = field(default_factory=lambda: DEFAULT_POLICIES)
    _links: dict[str, LinkHealth] = field(default_factory=dict)

    def set_links(self, refs: Iterable[LinkRef], now: float) -> None:
        """Follow the inventory: new links start UNKNOWN, removed ones are forgotten, and a
        link whose site or role changed starts afresh."""
        wanted = {ref.link: ref for ref in refs}
        for name in list(self._links):
            if name not in wanted:
                del self._links[name]
        for name, ref in wanted.items():
            current = self._links.get(name)
            if current is None or current.ref != ref:
                self._links[name] = LinkHealth(ref, self.policy_for(ref.role), now)

    def policy_for(self, role: LinkRole) -> HealthPolicy:
        return self.policies.get(role, TERRESTRIAL)

    def links(self) -> list[LinkRef]:
        return [h.ref for h in self._links.values()]

    def evaluate(self, link: str, evidence: LinkEvidence, now: float) -> LinkHealthReport | None:
        """Returns the new report when ``link`` changed health; KeyError for an unknown link."""
        return self._links[link].update(evidence, now)

    def report(self, link: str) -> LinkHealthReport | None:
        entry = self._links.get(link)
        return entry.report if entry is not None else None

    def reports(self) -> dict[str, LinkHealthReport]:
        return {name: h.report for name, h in self._links.items()}
