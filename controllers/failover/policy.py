"""When a site leaves a link, when it comes back, and when it stops moving: the failover policy.

A :class:`FailoverPolicy` is a frozen set of numbers; a :class:`PolicySet` picks one per site
(site override, else tier override, else the default). The state machine
(:mod:`controllers.failover.machine`) applies them; nothing here does I/O.

Defaults, and why
-----------------
``leave_down_after_s = 0``
    Leave a ``down`` link at once. The health evaluator (``monitors.health``) already applies
    hysteresis before it calls a link down (several lost probes in a row / ifOperStatus down), so
    waiting again here only lengthens the outage a conference sees; the goal is a county on its
    backup within 3 s of a cut.
``leave_degraded_after_s = 30``
    A ``degraded`` link still carries traffic, and short loss bursts (a congested carrier
    minute, a rain cell on satellite) are common and pass. Thirty seconds of sustained
    degradation is long enough to rule out a burst and short enough that a plenary does not sit
    through a minute of broken video. The clock runs from when the link stopped being ``up``, so
    a link that went down and came back merely degraded does not restart the count.
``degraded_target_up_s = 600``
    A degraded link still carries traffic, so leaving it trades one quality for another: the
    target must have been ``up`` without a break for ten minutes (a ``down`` link, which carries
    nothing, is left for any link that is ``up``). On a network where every link is a little
    noisy — the bench's hour of 5 % random loss on every link — the health evaluator's
    hysteresis keeps each link in ``up`` or ``degraded`` for minutes at a time; with only the
    hold-down as the bar, sites traded one noisy link for another. Ten minutes of clean service
    is what a link that is really better shows.
``hold_down_s = 180`` (``300`` for the ministry and provincial nodes)
    Return to a more preferred link only after it has been ``up`` without a break for this long.
    A carrier circuit that has just come back often drops again within a minute or two (the
    carrier is still working on it), and each failback briefly interrupts every call at the site.
    Three minutes catches most of those relapses while keeping a site off the satellite pool (a
    shared, expensive resource) for no longer than needed. A hub's failback disturbs every call
    of its province, so hubs wait five.
``flap_window_s = 3600, flap_max_switches = 4, flap_pin_s = 3600``
    At most four automatic switches per rolling hour: two complete outage-and-return cycles are
    believable bad luck, a third is a flapping circuit. The move that would exceed the limit
    pins the site instead to its most stable link (fewest health changes in the window) for an
    hour and raises a ``flapping`` alarm; an operator may release the pin earlier.
``retry_after_s = 30``
    After a change to a link failed (verification failed, SSH broke, timed out) and was rolled
    back, do not try that link again for thirty seconds: a router that refused a change a second
    ago will most likely refuse it again, and hammering it delays the other sites of a mass
    event.
``manual_pin_s = 3600``
    A manual switch to a link other than the most preferred one pins the site there for an hour,
    otherwise the automatic failback would undo the operator's move as soon as the hold-down
    allows. Switching by hand to the most preferred link pins nothing.
``last_resort_degraded = True``
    A link that is ``down`` or ``unknown`` is never a target. A ``degraded`` link is a target
    only when the current link is ``down`` (carries nothing) and no link is ``up``: a lossy path
    beats no path. Set it to False to never move onto a degraded link.

If every link of a site is ``down`` the machine does nothing to the router (there is nowhere to
go, and changing the route would only make the recovery slower) and raises ``all_links_down``.

How soon a cut is *seen* is the monitors' business, not this policy's: with the production
probe settings (a probe a second, lost after 2 s, down after 4 of the last 5 lost for 3 s) a
cut takes 5-8 s to detect; the 3 s target needs sub-second probing (``bench/failover.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inventory.enums import Tier
from inventory.errors import TiandiError


class PolicyInvalid(TiandiError):
    """A failover policy value is out of range; the message names the field."""


@dataclass(frozen=True, slots=True)
class FailoverPolicy:
    """Timings and limits of the failover state machine for one site (seconds)."""

    leave_down_after_s: float = 0.0
    leave_degraded_after_s: float = 30.0
    degraded_target_up_s: float = 600.0
    hold_down_s: float = 180.0
    flap_window_s: float = 3600.0
    flap_max_switches: int = 4
    flap_pin_s: float = 3600.0
    retry_after_s: float = 30.0
    manual_pin_s: float = 3600.0
    last_resort_degraded: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_s") and (not isinstance(value, int | float) or value < 0):
                raise PolicyInvalid(f"{f.name} must be a number of seconds >= 0, not {value!r}")
        if self.flap_max_switches < 1:
            raise PolicyInvalid("flap_max_switches must be at least 1")
        if self.flap_window_s <= 0 or self.flap_pin_s <= 0:
            raise PolicyInvalid("flap_window_s and flap_pin_s must be > 0")

    def but(self, **changes: Any) -> FailoverPolicy:
        """A copy with some values changed (validated)."""
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as err:
            names = ", ".join(f.name for f in dataclasses.fields(self))
            raise PolicyInvalid(f"{err}; known policy fields: {names}") from err

    def as_dict(self) -> dict[str, float | int | bool]:
        return dataclasses.asdict(self)


DEFAULT_POLICY = FailoverPolicy()
HUB_CHANGES: Mapping[str, Any] = {"hold_down_s": 300.0}
"""What the ministry and provincial nodes change from the default (see the module docstring)."""
HUB_POLICY = DEFAULT_POLICY.but(**HUB_CHANGES)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The policy of each site: its own override, else its tier's, else the default."""

    default: FailoverPolicy = DEFAULT_POLICY
    by_tier: Mapping[Tier, FailoverPolicy] = field(
        default_factory=lambda: {Tier.MINISTRY: HUB_POLICY, Tier.PROVINCE: HUB_POLICY}
    )
    by_site: Mapping[str, FailoverPolicy] = field(default_factory=dict)

    def for_site(self, site: str, tier: Tier | None) -> FailoverPolicy:
        if site in self.by_site:
            return self.by_site[site]
        if tier is not None and tier in self.by_tier:
            return self.by_tier[tier]
        return self.default

    @classmethod
    def uniform(cls, policy: FailoverPolicy) -> PolicySet:
        """The same policy for every site and tier (tests, benches)."""
        return cls(default=policy, by_tier={}, by_site={})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> PolicySet:
        """``{"default": {...}, "tiers": {"province": {...}}, "sites": {"name": {...}}}``; each
        override changes the default only in the fields it names."""
        unknown = set(raw) - {"default", "tiers", "sites"}
        if unknown:
            raise PolicyInvalid(
                f"unknown policy sections {sorted(unknown)}; use default/tiers/sites"
            )
        base = DEFAULT_POLICY.but(**dict(raw.get("default", {})))
        tier_changes: dict[Tier, dict[str, Any]] = {
            Tier.MINISTRY: dict(HUB_CHANGES),
            Tier.PROVINCE: dict(HUB_CHANGES),
        }
        for name, values in dict(raw.get("tiers", {})).items():
            try:
                tier = Tier(name)
            except ValueError:
                raise PolicyInvalid(
                    f"unknown tier {name!r}; tiers are {', '.join(t.value for t in Tier)}"
                ) from None
            tier_changes[tier] = {**tier_changes.get(tier, {}), **dict(values)}
        tiers = {tier: base.but(**changes) for tier, changes in tier_changes.items()}
        sites = {name: base.but(**dict(v)) for name, v in dict(raw.get("sites", {})).items()}
        return cls(default=base, by_tier=tiers, by_site=sites)
