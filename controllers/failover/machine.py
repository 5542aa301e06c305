"""The per-site failover state machine: pure, deterministic, driven by health reports and a clock.

One :class:`SiteMachine` per site holds what it knows of the site's links (in preference order:
primary > backup > satellite), which link the router uses now, any pin, whether the site is in
a maintenance window, and the times of its recent automatic switches. It is fed:

- :meth:`~SiteMachine.observe` — a :class:`monitors.linkstate.LinkHealthReport`;
- :meth:`~SiteMachine.tick` — time passing (degraded timers, hold-downs, pin expiry);
- operator actions: :meth:`~SiteMachine.switch`, :meth:`~SiteMachine.pin`,
  :meth:`~SiteMachine.release`; :meth:`~SiteMachine.set_maintenance`;
- what the router did: :meth:`~SiteMachine.applied` (the change is verified),
  :meth:`~SiteMachine.failed` (it was rolled back), :meth:`~SiteMachine.set_current` (what the
  router says, at start-up or when the engine reconciles);

and answers with a list of decisions: :class:`Switch` (move the site to a link, with the reason
and the numbers behind it), :class:`Alarm` (raised, or cleared), :class:`Note` (something worth
recording that changes nothing, e.g. a failback deferred by a call). An empty list is "nothing".

Rules (the numbers come from :class:`~controllers.failover.policy.FailoverPolicy`):

1. At most one change at a time: after a :class:`Switch` the machine waits for ``applied`` or
   ``failed`` and decides nothing else.
2. Maintenance windows suppress every automatic move (and the site's alarms); manual actions
   still work.
3. If every link is ``down``: nothing changes on the router; ``all_links_down`` is raised.
4. The current link is left when it has been ``down`` for ``leave_down_after_s`` or not ``up``
   (degraded, possibly down in between) for ``leave_degraded_after_s``. A degraded link is left
   only for the most preferred link ``up`` without a break for ``degraded_target_up_s`` (and the
   hold-down). A ``down`` link is left for the most preferred link ``up`` for the hold-down, else
   the most preferred ``up`` at all, else (``last_resort_degraded``) the most preferred degraded
   one. A ``down`` or ``unknown`` link is never a target. With no target, ``no_healthy_link`` is
   raised.
5. Failback: a more preferred link that has been ``up`` without a break for ``hold_down_s`` takes
   the site back — unless the site is in a conference (:class:`ConferenceActivity`) and its
   current link is not itself failing (not degraded or down), in which case a ``Note`` records
   that the failback waits.
6. Flap damping: the automatic move that would make more than ``flap_max_switches`` automatic
   switches within ``flap_window_s`` pins the site instead to its most stable link (fewest health
   changes in the window, then longest up, then preference) for ``flap_pin_s`` and raises
   ``flapping``. Should that link go down, the pin follows the site to the link it fails over to.
7. A link whose change failed is not tried again for ``retry_after_s``.
8. Pins: while a site is pinned nothing moves it automatically, except as rule 6 says for a
   flap-damping pin; an operator's pin on a link that goes down raises ``pinned_link_down``. A
   manual switch to a link other than the most preferred pins it there for ``manual_pin_s``.

Times are seconds on one monotonic clock (the ``at``/``since`` of the reports); the engine turns
them into wall-clock times where they are stored.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from controllers.failover.policy import FailoverPolicy
from inventory.enums import LinkRole
from inventory.errors import TiandiError
from monitors.linkstate import Health, LinkHealthReport, LinkQuality

Number = float | int | str | bool | None
Numbers = Mapping[str, Number]

ENGINE_ACTOR = "failover-engine"


# ---- what the conference module will implement --------------------------------------------


@runtime_checkable
class ConferenceActivity(Protocol):
    """Whether a site takes part in a conference right now (the conference module answers)."""

    def in_call(self, site: str) -> bool: ...


class NoConferences:
    """The answer until the conference module exists: no site is ever in a call."""

    def in_call(self, site: str) -> bool:
        return False


NO_CONFERENCES = NoConferences()


# ---- decisions ------------------------------------------------------------------------------


class Cause(enum.StrEnum):
    FAILOVER = "failover"  # leaving a failing link
    FAILBACK = "failback"  # back to a more preferred link after its hold-down
    DAMPING = "damping"  # flap damping: onto the most stable link, pinned
    MANUAL = "manual"  # an operator's switch
    PIN = "pin"  # onto the link an operator pinned


AUTOMATIC_CAUSES = frozenset({Cause.FAILOVER, Cause.FAILBACK, Cause.DAMPING})


class AlarmKind(enum.StrEnum):
    ALL_LINKS_DOWN = "all_links_down"
    NO_HEALTHY_LINK = "no_healthy_link"
    FLAPPING = "flapping"
    PINNED_LINK_DOWN = "pinned_link_down"
    CHANGE_FAILED = "change_failed"


class PinKind(enum.StrEnum):
    OPERATOR = "operator"
    DAMPING = "damping"


@dataclass(frozen=True, slots=True)
class Pin:
    link: str
    until: float
    kind: PinKind
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class Switch:
    """Move ``site`` from ``from_link`` (None: no default route) to ``to_link``."""

    site: str
    from_link: str | None
    to_link: str
    cause: Cause
    reason: str
    at: float
    numbers: Numbers = field(default_factory=dict)
    actor: str = ENGINE_ACTOR
    pin_until: float | None = None  # a manual switch pins the site there once applied
    pin_reason: str = ""

    @property
    def automatic(self) -> bool:
        return self.cause in AUTOMATIC_CAUSES


@dataclass(frozen=True, slots=True)
class Alarm:
    site: str
    kind: AlarmKind
    message: str
    at: float
    numbers: Numbers = field(default_factory=dict)
    cleared: bool = False


@dataclass(frozen=True, slots=True)
class Note:
    """Recorded, changes nothing: ``deferred``, ``suppressed``, ``pinned``, ``released``..."""

    site: str
    kind: str
    message: str
    at: float
    numbers: Numbers = field(default_factory=dict)


Decision = Switch | Alarm | Note


class Refused(TiandiError):
    """A manual action the machine will not carry out; the message says why and what to do."""


class SiteState(enum.StrEnum):
    UNKNOWN = "unknown"  # which link the router uses is not known yet
    NORMAL = "normal"  # on its most preferred link
    FAILED_OVER = "failed_over"  # on a less preferred link
    SWITCHING = "switching"  # a change is being made
    ALL_DOWN = "all_down"  # every link is down
    NO_ROUTE = "no_route"  # the router has no default route


# ---- per-link memory -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkSpec:
    name: str
    role: LinkRole


PREFERENCE = {role: i for i, role in enumerate(LinkRole)}


@dataclass
class LinkView:
    """What the machine knows of one link."""

    name: str
    role: LinkRole
    rank: int  # 0 = most preferred
    health: Health = Health.UNKNOWN
    since: float | None = None
    up_since: float | None = None  # start of the current unbroken up period
    bad_since: float | None = None  # when it stopped being up (degraded or down since)
    reason: str = "no report yet"
    quality: LinkQuality | None = None
    interface_up: bool | None = None
    last_at: float | None = None
    changes: deque[float] = field(default_factory=deque)  # times of health changes
    retry_at: float = -math.inf  # a failed change to it is not retried before this

    def up_for(self, now: float) -> float:
        return (
            now - self.up_since if self.health is Health.UP and self.up_since is not None else 0.0
        )

    def bad_for(self, now: float) -> float:
        return now - self.bad_since if self.bad_since is not None else 0.0

    def in_state_for(self, now: float) -> float:
        return now - self.since if self.since is not None else 0.0

    def describe(self, now: float) -> str:
        """``backup link gd-x-backup up for 12.0 s (loss 0.0%, rtt 31.2 ms)``."""
        return (
            f"{self.role.value} link {self.name} {self.health.value} for "
            f"{self.in_state_for(now):.1f} s ({self.evidence()})"
        )

    def evidence(self) -> str:
        parts = [self.reason] if self.reason else []
        q = self.quality
        if q is not None:
            stats = f"loss {q.loss_pct:.1f}% over {q.samples} probes"
            if q.rtt_ms is not None:
                stats += f", rtt {q.rtt_ms:.1f} ms"
            if q.jitter_ms is not None:
                stats += f", jitter {q.jitter_ms:.1f} ms"
            if stats not in self.reason:
                parts.append(stats)
        if self.interface_up is False and "interface" not in self.reason:
            parts.append("interface down")
        return "; ".join(parts) or "no evidence"

    def numbers(self, prefix: str, now: float) -> dict[str, Number]:
        q = self.quality
        return {
            f"{prefix}_link": self.name,
            f"{prefix}_role": self.role.value,
            f"{prefix}_health": self.health.value,
            f"{prefix}_for_s": round(self.in_state_for(now), 3),
            f"{prefix}_up_for_s": round(self.up_for(now), 3),
            f"{prefix}_loss_pct": None if q is None else q.loss_pct,
            f"{prefix}_rtt_ms": None if q is None else q.rtt_ms,
            f"{prefix}_jitter_ms": None if q is None else q.jitter_ms,
            f"{prefix}_interface_up": self.interface_up,
        }


@dataclass(frozen=True, slots=True)
class LinkStatus:
    name: str
    role: LinkRole
    health: Health
    for_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class SiteStatus:
    site: str
    state: SiteState
    current: str | None
    preferred: str | None
    switching_to: str | None
    pin: Pin | None
    maintenance: bool
    links: tuple[LinkStatus, ...]
    alarms: tuple[Alarm, ...]
    recent_switches: int


# ---- the machine -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verdict:
    switch: Switch | None = None
    alarms: dict[AlarmKind, Alarm] = field(default_factory=dict)
    notes: dict[str, Note] = field(default_factory=dict)


class SiteMachine:
    """The failover state of one site. Not thread-safe: one owner feeds it."""

    def __init__(
        self,
        site: str,
        links: Iterable[LinkSpec],
        policy: FailoverPolicy,
        *,
        current: str | None = None,
        current_known: bool | None = None,
        conference: ConferenceActivity = NO_CONFERENCES,
    ) -> None:
        specs = sorted(links, key=lambda s: PREFERENCE[s.role])
        if not specs:
            raise ValueError(f"site {site!r} has no links: nothing to fail over between")
        self.site = site
        self.policy = policy
        self.conference = conference
        self.links: dict[str, LinkView] = {
            s.name: LinkView(s.name, s.role, rank) for rank, s in enumerate(specs)
        }
        self.ordered: tuple[LinkView, ...] = tuple(self.links.values())
        if current is not None and current not in self.links:
            raise ValueError(f"site {site!r} has no link {current!r}")
        self.current = current
        self.current_known = current is not None if current_known is None else current_known
        self.pending: Switch | None = None
        self.pin: Pin | None = None
        self.maintenance = False
        self.switch_times: deque[float] = deque()  # automatic switches, for flap damping
        self._alarms: dict[AlarmKind, Alarm] = {}
        self._notes: dict[str, Note] = {}
        self._failed: Alarm | None = None

    # -- inputs ----------------------------------------------------------------------------

    def observe(self, report: LinkHealthReport) -> list[Decision]:
        """A link's health; decides at ``report.at``. Reports of other sites' links are ignored."""
        view = self.links.get(report.link)
        if view is None:
            return []
        if report.health is not view.health:
            if view.health is not Health.UNKNOWN and report.health is not Health.UNKNOWN:
                view.changes.append(report.at)
            view.health = report.health
            view.since = report.since
            if report.health is Health.UP:
                view.up_since, view.bad_since = report.since, None
            elif report.health in (Health.DOWN, Health.DEGRADED):
                view.up_since = None
                if view.bad_since is None:
                    view.bad_since = report.since
            else:
                view.up_since = None
        view.reason = report.reason
        view.quality = report.quality
        view.interface_up = report.interface_up
        view.last_at = report.at
        return self._evaluate(report.at)

    def tick(self, now: float) -> list[Decision]:
        """Time has passed: degraded timers, hold-downs and pins may have run out."""
        return self._evaluate(now)

    def set_maintenance(self, active: bool, now: float) -> list[Decision]:
        if active == self.maintenance:
            return []
        self.maintenance = active
        note = Note(
            self.site,
            "maintenance",
            "maintenance window began: automatic moves and alarms suppressed"
            if active
            else "maintenance window ended: automatic failover resumes",
            now,
        )
        return [note, *self._evaluate(now)]

    def set_current(self, link: str | None, now: float) -> list[Decision]:
        """What the router says it uses (None: no default route)."""
        if link is not None and link not in self.links:
            raise ValueError(f"site {self.site!r} has no link {link!r}")
        self.current, self.current_known = link, True
        return self._evaluate(now)

    def restore(
        self, *, pin: Pin | None, switch_times: Sequence[float], current: str | None = None
    ) -> None:
        """State rebuilt from the database after a restart (times on this machine's clock)."""
        if pin is not None and pin.link not in self.links:
            pin = None
        self.pin = pin
        self.switch_times = deque(sorted(switch_times))
        if current is not None and current in self.links:
            self.current = current
        if pin is not None and pin.kind is PinKind.DAMPING:
            self._alarms[AlarmKind.FLAPPING] = self._flapping_alarm(pin, pin.until)

    # -- what the router did ---------------------------------------------------------------

    def applied(self, link: str, now: float) -> list[Decision]:
        """The change to ``link`` was made and verified."""
        sw = self.pending
        self.pending = None
        self.current, self.current_known = link, True
        out: list[Decision] = []
        if sw is not None and sw.to_link == link:
            if sw.automatic:
                self.switch_times.append(now)
            if sw.pin_until is not None:
                why = sw.pin_reason or sw.reason
                self.pin = Pin(link, sw.pin_until, PinKind.OPERATOR, sw.actor, why)
        if self._failed is not None:
            out.append(dataclasses.replace(self._failed, at=now, cleared=True))
            self._failed = None
        return out + self._evaluate(now)

    def failed(
        self, link: str, now: float, *, current: str | None, error: str, known: bool = True
    ) -> list[Decision]:
        """The change to ``link`` failed and was rolled back; ``current`` is what the router
        uses now (``known=False`` if even that could not be read)."""
        sw = self.pending
        self.pending = None
        view = self.links.get(link)
        if view is not None:
            view.retry_at = now + self.policy.retry_after_s
        if current is not None and current not in self.links:
            current = None
        self.current, self.current_known = current, known
        cause = sw.cause.value if sw is not None else "change"
        alarm = Alarm(
            self.site,
            AlarmKind.CHANGE_FAILED,
            f"{cause} to {link} failed and was rolled back: {error}; not retried for "
            f"{self.policy.retry_after_s:g} s",
            now,
            {"to_link": link, "retry_after_s": self.policy.retry_after_s, "error": error},
        )
        self._failed = alarm
        return [alarm, *self._evaluate(now)]

    # -- operator actions ------------------------------------------------------------------

    def switch(self, link: str, now: float, *, actor: str, reason: str) -> list[Decision]:
        """Move the site to ``link`` now (Refused if that cannot or must not be done)."""
        target = self._target_or_refuse(link)
        if self.current == link and self.current_known:
            return [Note(self.site, "unchanged", f"{actor}: already on {link}", now)]
        if self.pin is not None and self.pin.kind is PinKind.OPERATOR and self.pin.link != link:
            raise Refused(
                f"site {self.site} is pinned to {self.pin.link} by {self.pin.actor} "
                f"({self.pin.reason}); release the pin first"
            )
        if self.pin is not None and self.pin.kind is PinKind.DAMPING:
            self.pin = None  # an operator's decision overrides flap damping
        pin_until = now + self.policy.manual_pin_s if target.rank > 0 else None
        sw = Switch(
            self.site,
            self.current,
            link,
            Cause.MANUAL,
            f"manual switch by {actor}: {reason or 'no reason given'}; {target.describe(now)}",
            now,
            {
                **target.numbers("to", now),
                "pin_s": None if pin_until is None else self.policy.manual_pin_s,
            },
            actor=actor,
            pin_until=pin_until,
            pin_reason=f"manual switch: {reason or 'no reason given'}",
        )
        self.pending = sw
        return [sw]

    def pin_to(
        self, link: str, until: float, now: float, *, actor: str, reason: str
    ) -> list[Decision]:
        """Keep the site on ``link`` until ``until``; moves it there first if needed (even in a
        maintenance window: this is an operator's action)."""
        moving = not (self.current == link and self.current_known)
        target = self._target_or_refuse(link, moving=moving)
        if until <= now:
            raise Refused("a pin must end in the future")
        self.pin = Pin(link, until, PinKind.OPERATOR, actor, reason or "pinned by an operator")
        self._alarms.pop(AlarmKind.FLAPPING, None)
        out: list[Decision] = [
            Note(
                self.site,
                "pinned",
                f"pinned to {link} by {actor} for {until - now:.0f} s: {reason or 'no reason'}",
                now,
                {"link": link, "pin_s": round(until - now, 3)},
            )
        ]
        if not moving:
            return out
        sw = Switch(
            self.site,
            self.current,
            link,
            Cause.PIN,
            f"pinned to {link} by {actor}: {reason or 'no reason given'}; {target.describe(now)}",
            now,
            {**target.numbers("to", now), "pin_s": round(until - now, 3)},
            actor=actor,
        )
        self.pending = sw
        return [*out, sw]

    def release(self, now: float, *, actor: str) -> list[Decision]:
        """End the pin (an operator's, or flap damping's); automatic failover resumes."""
        if self.pin is None:
            return [Note(self.site, "unchanged", f"{actor}: site {self.site} was not pinned", now)]
        pin, self.pin = self.pin, None
        note = Note(
            self.site,
            "released",
            f"{actor} released the {pin.kind.value} pin on {pin.link}",
            now,
            {"link": pin.link},
        )
        return [note, *self._evaluate(now)]

    # -- status ----------------------------------------------------------------------------

    @property
    def preferred(self) -> LinkView:
        return self.ordered[0]

    def recent_switches(self, now: float) -> int:
        self._trim(now)
        return len(self.switch_times)

    def state(self) -> SiteState:
        if self.pending is not None:
            return SiteState.SWITCHING
        if all(v.health is Health.DOWN for v in self.ordered):
            return SiteState.ALL_DOWN
        if not self.current_known:
            return SiteState.UNKNOWN
        if self.current is None:
            return SiteState.NO_ROUTE
        return SiteState.NORMAL if self.current == self.preferred.name else SiteState.FAILED_OVER

    def status(self, now: float) -> SiteStatus:
        alarms = list(self._alarms.values())
        if self._failed is not None:
            alarms.append(self._failed)
        return SiteStatus(
            site=self.site,
            state=self.state(),
            current=self.current,
            preferred=self.preferred.name,
            switching_to=self.pending.to_link if self.pending else None,
            pin=self.pin,
            maintenance=self.maintenance,
            links=tuple(
                LinkStatus(v.name, v.role, v.health, round(v.in_state_for(now), 3), v.reason)
                for v in self.ordered
            ),
            alarms=tuple(alarms),
            recent_switches=self.recent_switches(now),
        )

    # -- deciding --------------------------------------------------------------------------

    def _target_or_refuse(self, link: str, *, moving: bool = True) -> LinkView:
        target = self.links.get(link)
        if target is None:
            names = ", ".join(self.links)
            raise Refused(f"site {self.site} has no link {link!r}; its links are {names}")
        if self.pending is not None:
            raise Refused(
                f"a change of site {self.site} to {self.pending.to_link} is in progress; "
                "retry when it is done"
            )
        if moving and target.health is Health.DOWN:
            raise Refused(
                f"{target.name} is down ({target.evidence()}); Tiandi never moves a site onto "
                "a link that is down"
            )
        return target

    def _trim(self, now: float) -> None:
        window = self.policy.flap_window_s
        while self.switch_times and now - self.switch_times[0] >= window:
            self.switch_times.popleft()
        for view in self.ordered:
            while view.changes and now - view.changes[0] >= window:
                view.changes.popleft()

    def _evaluate(self, now: float) -> list[Decision]:
        out: list[Decision] = []
        if self.pin is not None and now >= self.pin.until:
            pin, self.pin = self.pin, None
            out.append(
                Note(
                    self.site,
                    "pin_expired",
                    f"the {pin.kind.value} pin on {pin.link} ({pin.reason}) expired",
                    now,
                    {"link": pin.link},
                )
            )
        if self.pending is not None:
            return out
        self._trim(now)
        verdict = self._decide(now)
        for kind, alarm in verdict.alarms.items():
            if kind not in self._alarms:
                out.append(alarm)
                self._alarms[kind] = alarm
        for kind in [k for k in self._alarms if k not in verdict.alarms]:
            old = self._alarms.pop(kind)
            out.append(dataclasses.replace(old, at=now, cleared=True))
        for key, note in verdict.notes.items():
            if key not in self._notes:
                out.append(note)
        self._notes = dict(verdict.notes)
        if verdict.switch is not None:
            self.pending = verdict.switch
            out.append(verdict.switch)
        return out

    def _failing(self, now: float) -> tuple[str, dict[str, Number]] | None:
        """Why the current link must be left now, with the numbers; None if it need not."""
        if self.current is None:
            return "the router has no default route", {"from_link": None}
        cur = self.links[self.current]
        p = self.policy
        if cur.health is Health.DOWN and cur.in_state_for(now) >= p.leave_down_after_s:
            why = f"{cur.describe(now)} >= {p.leave_down_after_s:g} s"
            return why, {**cur.numbers("from", now), "threshold_s": p.leave_down_after_s}
        if cur.health is Health.DEGRADED and cur.bad_for(now) >= p.leave_degraded_after_s:
            why = (
                f"{cur.role.value} link {cur.name} degraded, not up for {cur.bad_for(now):.1f} s "
                f">= {p.leave_degraded_after_s:g} s ({cur.evidence()})"
            )
            return why, {
                **cur.numbers("from", now),
                "not_up_for_s": round(cur.bad_for(now), 3),
                "threshold_s": p.leave_degraded_after_s,
            }
        return None

    def _candidates(self, now: float, exclude: str | None) -> list[LinkView]:
        return [
            v
            for v in self.ordered
            if v.name != exclude and v.health is Health.UP and now >= v.retry_at
        ]

    def _failover_target(self, now: float) -> LinkView | None:
        up = self._candidates(now, self.current)
        cur = self.links.get(self.current) if self.current is not None else None
        urgent = cur is None or cur.health is Health.DOWN
        p = self.policy
        if not urgent:
            # a degraded link still carries traffic: trade it only for one proven clean
            bar = max(p.hold_down_s, p.degraded_target_up_s)
            return next((v for v in up if v.up_for(now) >= bar), None)
        stable = [v for v in up if v.up_for(now) >= p.hold_down_s]
        if stable:
            return stable[0]
        if up:
            return up[0]
        if self.policy.last_resort_degraded:
            for v in self.ordered:
                if v is not cur and v.health is Health.DEGRADED and now >= v.retry_at:
                    return v
        return None

    def _failback_target(self, now: float) -> LinkView | None:
        if self.current is None:
            return None
        cur = self.links[self.current]
        for v in self.ordered[: cur.rank]:
            if (
                v.health is Health.UP
                and v.up_for(now) >= self.policy.hold_down_s
                and now >= v.retry_at
            ):
                return v
        return None

    def _most_stable(self, now: float, failing: bool) -> LinkView | None:
        pool = self._candidates(now, self.current)
        if self.current is not None and not failing:
            cur = self.links[self.current]
            if cur.health is not Health.DOWN:
                pool.append(cur)
        if not pool:
            return None
        return min(pool, key=lambda v: (len(v.changes), -v.up_for(now), v.rank))

    def _summary(self, now: float) -> str:
        parts = []
        for v in self.ordered:
            text = f"{v.name} {v.health.value}"
            if now < v.retry_at:
                text += f", paused {v.retry_at - now:.0f} s after a failed change"
            parts.append(text)
        return "; ".join(parts)

    def _flap_due(self) -> bool:
        return len(self.switch_times) >= self.policy.flap_max_switches

    def _flapping_alarm(self, pin: Pin, at: float) -> Alarm:
        return Alarm(
            self.site,
            AlarmKind.FLAPPING,
            pin.reason,
            at,
            {"pinned_link": pin.link, "flap_max_switches": self.policy.flap_max_switches},
        )

    def _switch(
        self, now: float, to: LinkView, cause: Cause, reason: str, numbers: Mapping[str, Number]
    ) -> Switch:
        return Switch(
            self.site,
            self.current,
            to.name,
            cause,
            reason,
            now,
            {**numbers, **to.numbers("to", now), "hold_down_s": self.policy.hold_down_s},
        )

    def _decide(self, now: float) -> _Verdict:
        if not self.current_known:
            return _Verdict()
        failing = self._failing(now)
        if self.maintenance:
            notes = {}
            if failing is not None or self._failback_target(now) is not None:
                notes["suppressed"] = Note(
                    self.site,
                    "suppressed",
                    "automatic move suppressed by the maintenance window"
                    + (f": {failing[0]}" if failing else ""),
                    now,
                )
            return _Verdict(notes=notes)
        if all(v.health is Health.DOWN for v in self.ordered):
            summary = "; ".join(f"{v.name} down {v.in_state_for(now):.1f} s" for v in self.ordered)
            alarm = Alarm(
                self.site,
                AlarmKind.ALL_LINKS_DOWN,
                f"all {len(self.ordered)} links of {self.site} are down ({summary}); "
                "the router is left as it is",
                now,
                {v.name: round(v.in_state_for(now), 3) for v in self.ordered},
            )
            return _Verdict(alarms={AlarmKind.ALL_LINKS_DOWN: alarm})
        if self.pin is not None:
            return self._decide_pinned(now, failing)
        if failing is not None:
            return self._leave(now, failing)
        back = self._failback_target(now)
        if back is None:
            return _Verdict()
        cur = self.links[self.current] if self.current is not None else None
        if (
            cur is not None
            and cur.health not in (Health.DEGRADED, Health.DOWN)
            and self.conference.in_call(self.site)
        ):
            note = Note(
                self.site,
                "deferred",
                f"failback to {back.name} (up for {back.up_for(now):.0f} s >= hold-down "
                f"{self.policy.hold_down_s:g} s) deferred: {self.site} is in a conference and "
                f"{cur.name} is {cur.health.value}",
                now,
                back.numbers("to", now),
            )
            return _Verdict(notes={"deferred": note})
        if self._flap_due():
            return self._damp(now, failing=False)
        reason = (
            f"failback: {back.describe(now)} >= hold-down {self.policy.hold_down_s:g} s; "
            f"leaving {cur.describe(now) if cur else 'no link'}"
        )
        numbers = cur.numbers("from", now) if cur is not None else {}
        return _Verdict(switch=self._switch(now, back, Cause.FAILBACK, reason, numbers))

    def _leave(self, now: float, failing: tuple[str, dict[str, Number]]) -> _Verdict:
        why, numbers = failing
        target = self._failover_target(now)
        if target is None:
            alarm = Alarm(
                self.site,
                AlarmKind.NO_HEALTHY_LINK,
                f"{why}; no other link is fit to take over ({self._summary(now)})",
                now,
                numbers,
            )
            return _Verdict(alarms={AlarmKind.NO_HEALTHY_LINK: alarm})
        if self._flap_due():
            damped = self._damp(now, failing=True)
            if damped.switch is not None or damped.alarms:
                return damped
        reason = f"failover: {why}; to {target.describe(now)}"
        return _Verdict(switch=self._switch(now, target, Cause.FAILOVER, reason, numbers))

    def _damp(self, now: float, *, failing: bool) -> _Verdict:
        stable = self._most_stable(now, failing)
        p = self.policy
        count = len(self.switch_times)
        if stable is None:
            return _Verdict()
        reason = (
            f"flapping: {count} automatic switches in the last {p.flap_window_s:g} s "
            f"(limit {p.flap_max_switches}); pinned to the most stable link {stable.name} "
            f"({len(stable.changes)} health changes in the window, up for "
            f"{stable.up_for(now):.0f} s) for {p.flap_pin_s:g} s"
        )
        pin = Pin(stable.name, now + p.flap_pin_s, PinKind.DAMPING, ENGINE_ACTOR, reason)
        self.pin = pin
        alarms = {AlarmKind.FLAPPING: self._flapping_alarm(pin, now)}
        if stable.name == self.current:
            return _Verdict(alarms=alarms)
        numbers: dict[str, Number] = {
            "switches_in_window": count,
            "flap_window_s": p.flap_window_s,
            "flap_max_switches": p.flap_max_switches,
            "pin_s": p.flap_pin_s,
        }
        return _Verdict(
            switch=self._switch(now, stable, Cause.DAMPING, reason, numbers), alarms=alarms
        )

    def _decide_pinned(self, now: float, failing: tuple[str, dict[str, Number]] | None) -> _Verdict:
        pin = self.pin
        assert pin is not None
        alarms: dict[AlarmKind, Alarm] = {}
        if pin.kind is PinKind.DAMPING:
            alarms[AlarmKind.FLAPPING] = self._alarms.get(
                AlarmKind.FLAPPING
            ) or self._flapping_alarm(pin, now)
        target = self.links[pin.link]
        if self.current != pin.link:
            if target.health is Health.DOWN:
                alarms[AlarmKind.PINNED_LINK_DOWN] = Alarm(
                    self.site,
                    AlarmKind.PINNED_LINK_DOWN,
                    f"pinned to {pin.link} by {pin.actor}, but it is down ({target.evidence()}); "
                    "the site stays where it is",
                    now,
                    target.numbers("pinned", now),
                )
                return _Verdict(alarms=alarms)
            if now < target.retry_at:
                return _Verdict(alarms=alarms)
            reason = (
                f"pinned to {pin.link} by {pin.actor} until +{pin.until - now:.0f} s: "
                f"{pin.reason}; {target.describe(now)}"
            )
            numbers: dict[str, Number] = {"pin_s": round(pin.until - now, 3)}
            return _Verdict(
                switch=self._switch(now, target, Cause.PIN, reason, numbers), alarms=alarms
            )
        if target.health is not Health.DOWN or failing is None:
            return _Verdict(alarms=alarms)
        if pin.kind is PinKind.OPERATOR:
            alarms[AlarmKind.PINNED_LINK_DOWN] = Alarm(
                self.site,
                AlarmKind.PINNED_LINK_DOWN,
                f"{pin.link} is down ({target.evidence()}) but pinned by {pin.actor} "
                f"({pin.reason}); release the pin to let failover move the site",
                now,
                target.numbers("pinned", now),
            )
            return _Verdict(alarms=alarms)
        # A flap-damping pin must not keep a site dark: it follows the site to its new link.
        leave = self._leave_unpinned(now, failing)
        if leave.switch is not None:
            self.pin = dataclasses.replace(pin, link=leave.switch.to_link)
        return _Verdict(switch=leave.switch, alarms={**alarms, **leave.alarms})

    def _leave_unpinned(self, now: float, failing: tuple[str, dict[str, Number]]) -> _Verdict:
        why, numbers = failing
        target = self._failover_target(now)
        if target is None:
            return self._leave(now, failing)
        reason = f"failover: {why}; to {target.describe(now)} (the flap-damping pin follows)"
        return _Verdict(switch=self._switch(now, target, Cause.FAILOVER, reason, numbers))
