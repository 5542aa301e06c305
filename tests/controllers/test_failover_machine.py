"""The pure failover state machine: every policy rule, on a fake clock (no sleeps, no network)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controllers.failover.machine import (
    Alarm as AlarmDecision,
)
from controllers.failover.machine import (
    AlarmKind,
    Cause,
    Decision,
    LinkSpec,
    Note,
    PinKind,
    Refused,
    SiteMachine,
    SiteState,
    Switch,
)
from controllers.failover.policy import (
    DEFAULT_POLICY,
    FailoverPolicy,
    PolicyInvalid,
    PolicySet,
)
from inventory.enums import LinkRole, Tier
from monitors.linkstate import Health, LinkHealthReport, LinkQuality

SITE = "gd-qujiang"
P, B, S = "gd-qujiang-primary", "gd-qujiang-backup", "gd-qujiang-satellite"
LINKS = [
    LinkSpec(S, LinkRole.SATELLITE),
    LinkSpec(P, LinkRole.PRIMARY),
    LinkSpec(B, LinkRole.BACKUP),
]
POLICY = FailoverPolicy(
    leave_down_after_s=0.0,
    leave_degraded_after_s=30.0,
    hold_down_s=180.0,
    flap_window_s=3600.0,
    flap_max_switches=4,
    flap_pin_s=3600.0,
    retry_after_s=30.0,
    manual_pin_s=3600.0,
)


class Calls:
    """A ConferenceActivity fake: which sites are in a call."""

    def __init__(self) -> None:
        self.sites: set[str] = set()

    def in_call(self, site: str) -> bool:
        return site in self.sites


class Rig:
    """A machine with a fake clock and helpers to feed it."""

    def __init__(self, policy: FailoverPolicy = POLICY, current: str | None = P) -> None:
        self.t = 1000.0
        self.calls = Calls()
        self.m = SiteMachine(SITE, LINKS, policy, current=current, conference=self.calls)

    def at(self, t: float) -> Rig:
        self.t = t
        return self

    def report(
        self,
        link: str,
        health: Health,
        *,
        since: float | None = None,
        loss: float | None = None,
        reason: str = "",
    ) -> list[Decision]:
        quality = None if loss is None else LinkQuality(loss, 20.0, 1.0, 10)
        return self.m.observe(
            LinkHealthReport(
                link=link,
                site=SITE,
                health=health,
                since=self.t if since is None else since,
                at=self.t,
                quality=quality,
                interface_up=health is not Health.DOWN,
                reason=reason or f"{health.value} by test",
            )
        )

    def all_up(self, since: float = 0.0) -> None:
        for link in (P, B, S):
            assert self.report(link, Health.UP, since=since) == []

    def tick(self, t: float) -> list[Decision]:
        self.t = t
        return self.m.tick(t)

    def apply(self, decisions: Sequence[Decision]) -> list[Decision]:
        """The router did what the (single) switch asked."""
        (sw,) = switches(decisions)
        return self.m.applied(sw.to_link, self.t)


def switches(decisions: Sequence[Decision]) -> list[Switch]:
    return [d for d in decisions if isinstance(d, Switch)]


def alarms(decisions: Sequence[Decision], *, cleared: bool = False) -> list[AlarmDecision]:
    return [d for d in decisions if isinstance(d, AlarmDecision) and d.cleared is cleared]


def notes(decisions: Sequence[Decision]) -> list[Note]:
    return [d for d in decisions if isinstance(d, Note)]


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.all_up()
    return r


# ---- construction ---------------------------------------------------------------------------


def test_links_are_ordered_by_preference_whatever_the_order_given() -> None:
    m = SiteMachine(SITE, LINKS, POLICY, current=P)
    assert [v.name for v in m.ordered] == [P, B, S]
    assert m.preferred.name == P
    assert m.state() is SiteState.NORMAL


def test_a_site_without_links_or_with_an_unknown_current_link_is_refused() -> None:
    with pytest.raises(ValueError, match="no links"):
        SiteMachine(SITE, [], POLICY)
    with pytest.raises(ValueError, match="no link 'nope'"):
        SiteMachine(SITE, LINKS, POLICY, current="nope")


def test_an_unknown_current_link_decides_nothing_until_the_router_says() -> None:
    r = Rig(current=None)
    assert r.m.state() is SiteState.UNKNOWN
    r.all_up()
    assert r.report(P, Health.DOWN) == []
    decisions = r.m.set_current(P, r.t)
    assert [(s.to_link, s.cause) for s in switches(decisions)] == [(B, Cause.FAILOVER)]


def test_a_router_without_a_default_route_is_given_one() -> None:
    r = Rig(current=None)
    r.all_up()
    (sw,) = switches(r.m.set_current(None, r.t))
    assert (sw.from_link, sw.to_link) == (None, P)
    assert "no default route" in sw.reason


# ---- leaving a failing link -----------------------------------------------------------------


def test_a_down_primary_is_left_at_once_for_the_backup_with_the_numbers(rig: Rig) -> None:
    rig.at(1000.5)
    decisions = rig.report(P, Health.DOWN, since=1000.0, loss=100.0, reason="loss 100.0% >= 80%")
    (sw,) = switches(decisions)
    assert (sw.from_link, sw.to_link, sw.cause) == (P, B, Cause.FAILOVER)
    assert "primary link gd-qujiang-primary down for 0.5 s" in sw.reason
    assert "loss 100.0% >= 80%" in sw.reason
    assert "backup link gd-qujiang-backup up for 1000.5 s" in sw.reason
    assert sw.numbers["from_health"] == "down"
    assert sw.numbers["from_loss_pct"] == 100.0
    assert sw.numbers["threshold_s"] == 0.0
    assert sw.numbers["to_up_for_s"] == 1000.5
    assert rig.m.state() is SiteState.SWITCHING


def test_leave_down_after_waits_when_configured() -> None:
    r = Rig(POLICY.but(leave_down_after_s=5.0))
    r.all_up()
    assert switches(r.report(P, Health.DOWN)) == []
    assert switches(r.tick(r.t + 4.9)) == []
    (sw,) = switches(r.tick(r.t + 0.1))
    assert sw.to_link == B


def test_one_change_at_a_time(rig: Rig) -> None:
    assert switches(rig.report(P, Health.DOWN))
    # the backup dies while the change is in flight: nothing new until the outcome
    assert rig.report(B, Health.DOWN) == []
    assert rig.tick(rig.t + 10) == []
    decisions = rig.m.applied(B, rig.t)
    (sw,) = switches(decisions)
    assert (sw.from_link, sw.to_link) == (B, S)


def test_backup_also_cut_goes_to_satellite(rig: Rig) -> None:
    rig.apply(rig.report(P, Health.DOWN))
    rig.at(1005)
    (sw,) = switches(rig.report(B, Health.DOWN))
    assert (sw.from_link, sw.to_link, sw.cause) == (B, S, Cause.FAILOVER)
    rig.m.applied(S, rig.t)
    assert rig.m.state() is SiteState.FAILED_OVER
    assert rig.m.current == S


def test_degraded_is_left_only_after_the_configured_time(rig: Rig) -> None:
    assert rig.report(P, Health.DEGRADED, loss=8.0) == []
    assert switches(rig.tick(1029.9)) == []
    (sw,) = switches(rig.tick(1030.0))
    assert sw.to_link == B
    assert "degraded, not up for 30.0 s >= 30 s" in sw.reason
    assert sw.numbers["not_up_for_s"] == 30.0


def test_degraded_time_counts_from_when_the_link_stopped_being_up(rig: Rig) -> None:
    rig.report(S, Health.DOWN)
    rig.report(P, Health.DOWN)  # would leave at once...
    decisions = rig.m.failed(B, rig.t, current=P, error="test: backup refused")  # ...but failed
    assert switches(decisions) == []
    rig.at(1010)
    rig.report(P, Health.DEGRADED, reason="recovering")  # down -> degraded at 1010
    # 30 s after it stopped being up (1000), not after it became degraded (1010); the backup is
    # in its retry pause until 1030 too
    (sw,) = switches(rig.tick(1030.0))
    assert sw.to_link == B


def test_a_degraded_link_is_only_left_for_a_stable_one(rig: Rig) -> None:
    rig.report(B, Health.DOWN)
    rig.report(S, Health.DOWN)
    rig.at(1100).report(B, Health.UP, since=1100)  # back, but only just
    rig.report(P, Health.DEGRADED)
    assert switches(rig.tick(1100 + 180)) == []  # held down, but not 10 min clean yet
    assert switches(rig.tick(1100 + 599)) == []
    (sw,) = switches(rig.tick(1100 + 600))
    assert sw.to_link == B
    assert sw.numbers["to_up_for_s"] == 600.0


def test_a_down_link_is_left_even_for_a_freshly_up_one(rig: Rig) -> None:
    rig.report(B, Health.DOWN)
    rig.report(S, Health.DOWN)
    rig.at(1100).report(B, Health.UP, since=1100)
    (sw,) = switches(rig.at(1101).report(P, Health.DOWN))
    assert sw.to_link == B


def test_a_brief_degradation_does_not_move_the_site(rig: Rig) -> None:
    rig.report(P, Health.DEGRADED)
    assert rig.at(1020).report(P, Health.UP) == []
    assert rig.tick(2000) == []
    assert rig.m.current == P


def test_never_switch_to_an_unhealthy_link(rig: Rig) -> None:
    rig.report(B, Health.DEGRADED)
    rig.report(S, Health.UNKNOWN)
    rig.report(P, Health.DEGRADED)
    decisions = rig.tick(rig.t + 60)
    # degraded primary (for 60 s), degraded backup, unknown satellite: no target, an alarm
    assert switches(decisions) == []
    assert [a.kind for a in alarms(decisions)] == [AlarmKind.NO_HEALTHY_LINK]
    assert "degraded, not up for 60.0 s >= 30 s" in alarms(decisions)[0].message


def test_a_down_link_is_never_a_target_even_as_last_resort(rig: Rig) -> None:
    rig.report(B, Health.DOWN)
    rig.report(S, Health.UNKNOWN)
    decisions = rig.report(P, Health.DOWN)
    assert switches(decisions) == []
    (alarm,) = alarms(decisions)
    assert alarm.kind is AlarmKind.NO_HEALTHY_LINK
    assert "no other link is fit to take over" in alarm.message


def test_a_degraded_link_is_the_last_resort_when_the_current_one_is_down(rig: Rig) -> None:
    rig.report(B, Health.DEGRADED)
    rig.report(S, Health.DOWN)
    (sw,) = switches(rig.report(P, Health.DOWN))
    assert sw.to_link == B


def test_no_last_resort_when_the_policy_says_so() -> None:
    r = Rig(POLICY.but(last_resort_degraded=False))
    r.all_up()
    r.report(B, Health.DEGRADED)
    r.report(S, Health.DOWN)
    decisions = r.report(P, Health.DOWN)
    assert switches(decisions) == []
    assert [a.kind for a in alarms(decisions)] == [AlarmKind.NO_HEALTHY_LINK]


def test_a_stable_target_is_preferred_over_a_more_preferred_fresh_one(rig: Rig) -> None:
    rig.apply(rig.report(P, Health.DOWN))  # on backup
    rig.at(1100)
    rig.report(P, Health.UP, since=1100)  # primary back, not held down yet
    rig.at(1120)
    (sw,) = switches(rig.report(B, Health.DOWN))
    assert sw.to_link == S  # up for 1120 s, not the primary (up for 20 s)


def test_a_fresh_link_is_taken_when_it_is_the_only_one_up(rig: Rig) -> None:
    rig.report(S, Health.DOWN)
    rig.apply(rig.report(P, Health.DOWN))  # on backup
    rig.at(1100)
    rig.report(P, Health.UP, since=1100)
    rig.at(1110)
    (sw,) = switches(rig.report(B, Health.DOWN))
    assert sw.to_link == P


# ---- all links down ---------------------------------------------------------------------------


def test_all_links_down_changes_nothing_and_alarms_once(rig: Rig) -> None:
    rig.report(B, Health.DOWN)
    rig.report(S, Health.DOWN)
    decisions = rig.report(P, Health.DOWN)
    assert switches(decisions) == []
    (alarm,) = alarms(decisions)
    assert alarm.kind is AlarmKind.ALL_LINKS_DOWN
    assert "the router is left as it is" in alarm.message
    assert rig.m.state() is SiteState.ALL_DOWN
    assert alarms(rig.tick(rig.t + 100)) == []  # raised once, not every tick
    decisions = rig.at(rig.t + 200).report(B, Health.UP)
    cleared = alarms(decisions, cleared=True)
    assert [a.kind for a in cleared] == [AlarmKind.ALL_LINKS_DOWN]
    (sw,) = switches(decisions)
    assert sw.to_link == B


# ---- failback ------------------------------------------------------------------------------


def test_failback_only_after_the_hold_down(rig: Rig) -> None:
    rig.apply(rig.report(P, Health.DOWN))
    rig.at(1060)
    rig.report(P, Health.UP, since=1060)
    assert switches(rig.tick(1060 + 179.9)) == []
    (sw,) = switches(rig.tick(1060 + 180))
    assert (sw.from_link, sw.to_link, sw.cause) == (B, P, Cause.FAILBACK)
    assert "failback: primary link gd-qujiang-primary up for 180.0 s" in sw.reason
    assert ">= hold-down 180 s; leaving backup link gd-qujiang-backup" in sw.reason
    assert sw.numbers["to_up_for_s"] == 180.0
    rig.m.applied(P, rig.t)
    assert rig.m.state() is SiteState.NORMAL


def test_a_relapse_restarts_the_hold_down(rig: Rig) -> None:
    rig.apply(rig.report(P, Health.DOWN))
    rig.at(1060).report(P, Health.UP, since=1060)
    rig.at(1200).report(P, Health.DOWN)
    rig.at(1210).report(P, Health.UP, since=1210)
    assert switches(rig.tick(1060 + 180)) == []
    assert switches(rig.tick(1210 + 179)) == []
    assert switches(rig.tick(1210 + 180))


def test_failback_goes_to_the_most_preferred_held_down_link(rig: Rig) -> None:
    rig.apply(rig.report(P, Health.DOWN))
    rig.apply(rig.at(1001).report(B, Health.DOWN))  # on satellite
    rig.at(1010).report(B, Health.UP, since=1010)
    rig.at(1050).report(P, Health.UP, since=1050)
    (sw,) = switches(rig.tick(1010 + 180))
    assert sw.to_link == B  # only the backup is held down yet
    rig.m.applied(B, rig.t)
    (sw,) = switches(rig.tick(1050 + 180))
    assert sw.to_link == P


def test_failback_is_deferred_during_a_conference(rig: Rig) -> None:
    rig.apply(rig.report(P, Health.DOWN))
    rig.at(1060).report(P, Health.UP, since=1060)
    rig.calls.sites.add(SITE)
    decisions = rig.tick(1300)
    assert switches(decisions) == []
    (note,) = notes(decisions)
    assert note.kind == "deferred"
    assert "is in a conference" in note.message
    assert notes(rig.tick(1400)) == []  # recorded once
    rig.calls.sites.clear()
    (sw,) = switches(rig.tick(1401))
    assert sw.cause is Cause.FAILBACK


def test_a_conference_does_not_hold_a_site_on_a_failing_link(rig: Rig) -> None:
    rig.calls.sites.add(SITE)
    (sw,) = switches(rig.report(P, Health.DOWN))  # failover is never deferred
    rig.m.applied(sw.to_link, rig.t)
    rig.at(1060).report(P, Health.UP, since=1060)
    rig.at(1230).report(B, Health.DEGRADED)  # the current link is itself failing (not long)
    (sw,) = switches(rig.tick(1060 + 180))
    assert (sw.to_link, sw.cause) == (P, Cause.FAILBACK)


# ---- flap damping --------------------------------------------------------------------------


def _flap_once(r: Rig, t: float) -> None:
    """Primary fails at t, comes back, the site fails back after the hold-down."""
    r.at(t)
    r.apply(r.report(P, Health.DOWN))
    r.at(t + 10).report(P, Health.UP, since=t + 10)
    r.apply(r.tick(t + 10 + r.m.policy.hold_down_s))


def test_flapping_pins_the_site_to_its_most_stable_link_and_alarms(rig: Rig) -> None:
    _flap_once(rig, 1000)  # switches 1 and 2
    _flap_once(rig, 1300)  # 3 and 4
    assert rig.m.recent_switches(rig.t) == 4
    rig.at(1600)
    decisions = rig.report(P, Health.DOWN)  # the 5th would exceed 4 per hour
    (sw,) = switches(decisions)
    assert (sw.to_link, sw.cause) == (B, Cause.DAMPING)
    (alarm,) = alarms(decisions)
    assert alarm.kind is AlarmKind.FLAPPING
    assert "4 automatic switches in the last 3600 s (limit 4)" in alarm.message
    assert "most stable link gd-qujiang-backup (0 health changes" in alarm.message
    assert rig.m.pin is not None and rig.m.pin.kind is PinKind.DAMPING
    assert rig.m.pin.until == 1600 + 3600
    rig.m.applied(B, rig.t)
    # the primary comes back and stays up: no failback while pinned
    rig.at(1610).report(P, Health.UP, since=1610)
    assert switches(rig.tick(3000)) == []
    # the pin expires: failback resumes, and the alarm clears
    decisions = rig.tick(1600 + 3600)
    assert [n.kind for n in notes(decisions)] == ["pin_expired"]
    assert [a.kind for a in alarms(decisions, cleared=True)] == [AlarmKind.FLAPPING]
    (sw,) = switches(decisions)
    assert sw.cause is Cause.FAILBACK


def test_switches_older_than_the_window_do_not_count(rig: Rig) -> None:
    _flap_once(rig, 1000)
    _flap_once(rig, 1300)
    rig.at(1000 + 3600 + 200)
    (sw,) = switches(rig.report(P, Health.DOWN))
    assert sw.cause is Cause.FAILOVER


def test_damping_stays_on_the_current_link_when_it_is_the_most_stable() -> None:
    r = Rig(POLICY.but(flap_max_switches=3, hold_down_s=10.0))
    r.all_up()
    _flap_once(r, 1000)  # 1 and 2
    r.at(1030)
    r.apply(r.report(P, Health.DOWN))  # 3: on the backup
    r.at(1040).report(P, Health.UP, since=1040)
    decisions = r.tick(1050)  # the failback would be the 4th: damping instead
    assert switches(decisions) == []
    assert [a.kind for a in alarms(decisions)] == [AlarmKind.FLAPPING]
    assert r.m.pin is not None and (r.m.pin.link, r.m.pin.kind) == (B, PinKind.DAMPING)
    assert r.m.current == B


def rig_alarm_kinds(r: Rig) -> set[AlarmKind]:
    return {a.kind for a in r.m.status(r.t).alarms}


def test_a_damping_pin_follows_the_site_when_its_link_goes_down(rig: Rig) -> None:
    _flap_once(rig, 1000)
    _flap_once(rig, 1300)
    rig.at(1600)
    rig.apply(rig.report(P, Health.DOWN))  # damping: pinned to backup
    rig.at(1700)
    (sw,) = switches(rig.report(B, Health.DOWN))
    assert (sw.to_link, sw.cause) == (S, Cause.FAILOVER)
    assert "the flap-damping pin follows" in sw.reason
    assert rig.m.pin is not None and rig.m.pin.link == S


def test_manual_switches_do_not_count_for_damping() -> None:
    rig = Rig(POLICY.but(hold_down_s=1e9))
    rig.all_up()
    for i in range(6):
        link = B if i % 2 == 0 else P
        rig.at(1000 + i)
        decisions = rig.m.switch(link, rig.t, actor="li.na", reason="drill")
        rig.m.applied(link, rig.t)
        assert switches(decisions)
        if rig.m.pin is not None:
            rig.m.release(rig.t, actor="li.na")
    assert rig.m.recent_switches(rig.t) == 0


# ---- retry after a failed change -------------------------------------------------------------


def test_a_failed_change_alarms_and_is_not_retried_before_the_pause(rig: Rig) -> None:
    rig.report(P, Health.DOWN)
    decisions = rig.m.failed(B, rig.t, current=P, error="verification failed: no route")
    (alarm,) = alarms(decisions)
    assert alarm.kind is AlarmKind.CHANGE_FAILED
    assert "verification failed" in alarm.message
    assert "not retried for 30 s" in alarm.message
    # the backup is paused: the satellite takes the site instead
    (sw,) = switches(decisions)
    assert sw.to_link == S
    cleared = rig.m.applied(S, rig.t)
    assert [a.kind for a in alarms(cleared, cleared=True)] == [AlarmKind.CHANGE_FAILED]


def test_a_failed_target_is_tried_again_after_the_pause(rig: Rig) -> None:
    rig.report(S, Health.DOWN)
    rig.report(P, Health.DOWN)
    decisions = rig.m.failed(B, rig.t, current=P, error="ssh lost")
    assert switches(decisions) == []
    assert switches(rig.tick(rig.t + 29.9)) == []
    (sw,) = switches(rig.tick(rig.t + 0.1))
    assert sw.to_link == B


def test_a_failure_that_leaves_the_router_unreadable_waits_for_a_reading(rig: Rig) -> None:
    rig.report(P, Health.DOWN)
    rig.m.failed(B, rig.t, current=None, known=False, error="unreachable")
    assert rig.m.state() is SiteState.UNKNOWN
    assert switches(rig.tick(rig.t + 60)) == []
    assert switches(rig.m.set_current(P, rig.t))


# ---- maintenance windows -------------------------------------------------------------------


def test_maintenance_suppresses_automatic_moves_and_alarms(rig: Rig) -> None:
    decisions = rig.m.set_maintenance(True, rig.t)
    assert [n.kind for n in notes(decisions)] == ["maintenance"]
    rig.report(B, Health.DOWN)
    rig.report(S, Health.DOWN)
    decisions = rig.report(P, Health.DOWN)
    assert switches(decisions) == []
    assert alarms(decisions) == []  # not even all-links-down
    assert [n.kind for n in notes(decisions)] == ["suppressed"]
    rig.at(1100).report(B, Health.UP, since=1100)
    decisions = rig.m.set_maintenance(False, rig.t)
    (sw,) = switches(decisions)
    assert sw.to_link == B


def test_manual_actions_work_during_maintenance(rig: Rig) -> None:
    rig.m.set_maintenance(True, rig.t)
    (sw,) = switches(rig.m.switch(B, rig.t, actor="li.na", reason="carrier work"))
    assert sw.cause is Cause.MANUAL


# ---- manual switch, pin, release -----------------------------------------------------------


def test_a_manual_switch_pins_the_site_once_applied(rig: Rig) -> None:
    (sw,) = switches(rig.m.switch(B, rig.t, actor="li.na", reason="primary carrier maintenance"))
    assert (sw.cause, sw.actor, sw.to_link) == (Cause.MANUAL, "li.na", B)
    assert "manual switch by li.na: primary carrier maintenance" in sw.reason
    assert rig.m.pin is None
    rig.m.applied(B, rig.t)
    assert rig.m.pin is not None
    assert (rig.m.pin.link, rig.m.pin.kind, rig.m.pin.until) == (B, PinKind.OPERATOR, 1000 + 3600)
    # the primary is up and held down, yet the site stays where the operator put it
    assert switches(rig.tick(2000)) == []


def test_a_manual_switch_to_the_preferred_link_pins_nothing(rig: Rig) -> None:
    rig.apply(rig.report(P, Health.DOWN))
    rig.at(1010).report(P, Health.UP, since=1010)
    rig.apply(rig.m.switch(P, rig.t, actor="li.na", reason="it is fixed"))
    assert rig.m.pin is None


def test_a_failed_manual_switch_does_not_pin(rig: Rig) -> None:
    rig.m.switch(B, rig.t, actor="li.na", reason="x")
    rig.m.failed(B, rig.t, current=P, error="refused")
    assert rig.m.pin is None


def test_manual_switch_refusals(rig: Rig) -> None:
    with pytest.raises(Refused, match="has no link 'nope'; its links are"):
        rig.m.switch("nope", rig.t, actor="a", reason="")
    rig.report(S, Health.DOWN)
    with pytest.raises(Refused, match="never moves a site onto a link that is down"):
        rig.m.switch(S, rig.t, actor="a", reason="")
    rig.m.switch(B, rig.t, actor="a", reason="")
    with pytest.raises(Refused, match="in progress"):
        rig.m.switch(P, rig.t, actor="b", reason="")
    rig.m.applied(B, rig.t)
    with pytest.raises(Refused, match="pinned to gd-qujiang-backup by a"):
        rig.m.switch(P, rig.t, actor="b", reason="")


def test_switching_to_the_current_link_is_a_no_op(rig: Rig) -> None:
    (note,) = rig.m.switch(P, rig.t, actor="a", reason="")
    assert isinstance(note, Note) and note.kind == "unchanged"
    assert rig.m.pending is None


def test_pin_moves_the_site_and_holds_it_even_when_its_link_dies(rig: Rig) -> None:
    decisions = rig.m.pin_to(B, rig.t + 600, rig.t, actor="li.na", reason="test the backup")
    assert [n.kind for n in notes(decisions)] == ["pinned"]
    (sw,) = switches(decisions)
    assert (sw.to_link, sw.cause) == (B, Cause.PIN)
    rig.m.applied(B, rig.t)
    assert switches(rig.tick(rig.t + 300)) == []
    decisions = rig.at(rig.t + 1).report(B, Health.DOWN)
    assert switches(decisions) == []
    (alarm,) = alarms(decisions)
    assert alarm.kind is AlarmKind.PINNED_LINK_DOWN
    assert "release the pin" in alarm.message
    decisions = rig.m.release(rig.t, actor="li.na")
    assert [n.kind for n in notes(decisions)] == ["released"]
    assert [a.kind for a in alarms(decisions, cleared=True)] == [AlarmKind.PINNED_LINK_DOWN]
    (sw,) = switches(decisions)
    assert (sw.to_link, sw.cause) == (P, Cause.FAILOVER)


def test_pin_to_the_current_link_moves_nothing_and_expires(rig: Rig) -> None:
    decisions = rig.m.pin_to(P, rig.t + 60, rig.t, actor="li.na", reason="hold")
    assert switches(decisions) == []
    rig.report(P, Health.DEGRADED)
    assert switches(rig.tick(rig.t + 59)) == []
    decisions = rig.tick(rig.t + 1)
    assert [n.kind for n in notes(decisions)] == ["pin_expired"]
    assert switches(decisions)  # degraded for 60 s > 30 s: now it may leave


def test_pin_refusals(rig: Rig) -> None:
    rig.report(S, Health.DOWN)
    with pytest.raises(Refused, match="down"):
        rig.m.pin_to(S, rig.t + 60, rig.t, actor="a", reason="")
    with pytest.raises(Refused, match="future"):
        rig.m.pin_to(B, rig.t, rig.t, actor="a", reason="")


def test_release_without_a_pin_says_so(rig: Rig) -> None:
    (note,) = rig.m.release(rig.t, actor="a")
    assert isinstance(note, Note) and note.kind == "unchanged"


def test_an_operator_switch_overrides_a_damping_pin(rig: Rig) -> None:
    _flap_once(rig, 1000)
    _flap_once(rig, 1300)
    rig.at(1600)
    rig.apply(rig.report(P, Health.DOWN))
    assert rig.m.pin is not None and rig.m.pin.kind is PinKind.DAMPING
    rig.at(1700).report(P, Health.UP, since=1700)
    (sw,) = switches(rig.m.switch(P, rig.t, actor="li.na", reason="I checked the carrier"))
    assert sw.cause is Cause.MANUAL
    assert rig.m.pin is None


# ---- restore and status --------------------------------------------------------------------


def test_restore_brings_back_pin_and_switch_history() -> None:
    from controllers.failover.machine import Pin

    r = Rig(current=B)
    r.m.restore(
        pin=Pin(B, r.t + 100, PinKind.DAMPING, "failover-engine", "flapping: test"),
        switch_times=[r.t - 10, r.t - 20],
    )
    r.all_up()
    assert r.m.recent_switches(r.t) == 2
    assert switches(r.tick(r.t + 50)) == []  # pinned
    status = r.m.status(r.t)
    assert status.pin is not None and status.pin.link == B
    assert {a.kind for a in status.alarms} == {AlarmKind.FLAPPING}
    assert status.state is SiteState.FAILED_OVER
    assert [(lk.name, lk.health) for lk in status.links] == [
        (P, Health.UP),
        (B, Health.UP),
        (S, Health.UP),
    ]


def test_reports_of_other_links_are_ignored(rig: Rig) -> None:
    assert rig.report("someone-else", Health.DOWN) == []


def test_the_machine_is_deterministic() -> None:
    def run() -> list[str]:
        r = Rig()
        r.all_up()
        out = []
        for t, link, health in [
            (1000, P, Health.DOWN),
            (1001, B, Health.DEGRADED),
            (1040, P, Health.UP),
            (1300, S, Health.DOWN),
        ]:
            r.at(t)
            for d in r.report(link, health):
                out.append(repr(d))
                if isinstance(d, Switch):
                    r.m.applied(d.to_link, r.t)
            out += [repr(d) for d in r.tick(t + 1)]
        return out

    assert run() == run()


# ---- policy --------------------------------------------------------------------------------


def test_policy_defaults_and_validation() -> None:
    assert DEFAULT_POLICY.leave_down_after_s == 0.0
    assert DEFAULT_POLICY.hold_down_s == 180.0
    assert DEFAULT_POLICY.flap_max_switches == 4
    with pytest.raises(PolicyInvalid, match="hold_down_s"):
        DEFAULT_POLICY.but(hold_down_s=-1)
    with pytest.raises(PolicyInvalid, match="flap_max_switches"):
        DEFAULT_POLICY.but(flap_max_switches=0)
    with pytest.raises(PolicyInvalid, match="known policy fields"):
        DEFAULT_POLICY.but(hold_dwn_s=1)


def test_policy_per_site_then_tier_then_default() -> None:
    policies = PolicySet.from_mapping(
        {
            "default": {"hold_down_s": 120},
            "tiers": {"county": {"leave_degraded_after_s": 20}},
            "sites": {"gd-qujiang": {"hold_down_s": 60}},
        }
    )
    assert policies.for_site("gd-qujiang", Tier.COUNTY).hold_down_s == 60
    county = policies.for_site("other", Tier.COUNTY)
    assert (county.hold_down_s, county.leave_degraded_after_s) == (120, 20)
    assert policies.for_site("guangdong", Tier.PROVINCE).hold_down_s == 300  # hub default
    assert policies.for_site("x", None).hold_down_s == 120
    assert PolicySet().for_site("ministry", Tier.MINISTRY).hold_down_s == 300
    assert PolicySet().for_site("c", Tier.COUNTY) == DEFAULT_POLICY
    with pytest.raises(PolicyInvalid, match="unknown tier"):
        PolicySet.from_mapping({"tiers": {"city": {}}})
    with pytest.raises(PolicyInvalid, match="unknown policy sections"):
        PolicySet.from_mapping({"defaults": {}})
