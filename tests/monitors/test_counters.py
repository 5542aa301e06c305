"""Counter maths: wraps, restarts, resets, ambiguity and implausible rates — no spikes, ever."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from monitors.counters import (
    COUNTER32_MODULUS,
    COUNTER64_MODULUS,
    UPTIME_MODULUS,
    CounterReading,
    Discontinuity,
    counter_rate,
    uptime_restarted,
)

DAY_TICKS = 86_400 * 100


def r(value: int, at: float, uptime: int | None = None) -> CounterReading:
    return CounterReading(value, at, uptime)


# ---- the plain cases ----------------------------------------------------------------------------


def test_first_reading_has_no_rate() -> None:
    rate = counter_rate(None, r(10, 0.0), bits=64)
    assert rate.per_second is None and rate.reason is Discontinuity.FIRST


def test_steady_growth_gives_the_rate_in_bits_per_second() -> None:
    rate = counter_rate(r(1_000, 0.0), r(76_000, 60.0), bits=64, scale=8)
    assert rate.ok and rate.delta == 75_000
    assert rate.per_second == pytest.approx(75_000 * 8 / 60)


def test_no_change_is_a_rate_of_zero() -> None:
    rate = counter_rate(r(5, 0.0, 100), r(5, 60.0, 6_100), bits=32)
    assert rate.per_second == 0.0


@pytest.mark.parametrize("dt", [0.0, -1.0])
def test_time_must_advance(dt: float) -> None:
    rate = counter_rate(r(5, 10.0), r(6, 10.0 + dt), bits=64)
    assert rate.per_second is None and rate.reason is Discontinuity.NO_TIME


def test_values_outside_the_counter_width_are_refused() -> None:
    with pytest.raises(ValueError):
        counter_rate(None, r(COUNTER32_MODULUS, 0.0), bits=32)
    with pytest.raises(ValueError):
        counter_rate(r(-1, 0.0), r(1, 1.0), bits=64)
    with pytest.raises(ValueError):
        counter_rate(None, r(1, 0.0), bits=16)


# ---- wraps ---------------------------------------------------------------------------------------


def test_counter32_wraps_once() -> None:
    prev = r(COUNTER32_MODULUS - 1_000, 0.0, 100)
    curr = r(4_000, 10.0, 1_100)
    rate = counter_rate(prev, curr, bits=32, scale=8, max_rate=100e6)
    assert rate.delta == 5_000
    assert rate.per_second == pytest.approx(5_000 * 8 / 10)


def test_counter64_going_backwards_is_a_reset_not_a_wrap() -> None:
    rate = counter_rate(r(10**15, 0.0), r(5, 60.0), bits=64, scale=8)
    assert rate.per_second is None and rate.reason is Discontinuity.RESET


def test_counter64_near_its_top_still_counts_forwards() -> None:
    prev = r(COUNTER64_MODULUS - 10_000, 0.0)
    curr = r(COUNTER64_MODULUS - 1, 1.0)
    assert counter_rate(prev, curr, bits=64).delta == 9_999


def test_counter32_on_a_fast_interface_over_a_long_interval_is_ambiguous() -> None:
    # 1 Gbit/s x 1.5 fills 2^32 octets in ~23 s: a 60 s interval may hide several wraps.
    rate = counter_rate(r(10, 0.0), r(20, 60.0), bits=32, scale=8, max_rate=1e9)
    assert rate.per_second is None and rate.reason is Discontinuity.AMBIGUOUS_WRAP


def test_counter32_wrap_without_a_known_speed_over_a_long_interval_is_ambiguous() -> None:
    rate = counter_rate(r(4_000_000_000, 0.0), r(10, 3_600.0), bits=32)
    assert rate.per_second is None and rate.reason is Discontinuity.AMBIGUOUS_WRAP


def test_counter32_wrap_without_a_known_speed_over_a_short_interval_is_taken() -> None:
    rate = counter_rate(r(COUNTER32_MODULUS - 10, 0.0), r(10, 60.0), bits=32)
    assert rate.delta == 20


# ---- restarts ------------------------------------------------------------------------------------


def test_reboot_seen_in_sysuptime_gives_no_rate_and_no_spike() -> None:
    # Before: 5e12 octets after 3 days up. After the reboot: 2,000 octets, up 40 s.
    prev = r(5_000_000_000_000, 0.0, 3 * DAY_TICKS)
    curr = r(2_000, 60.0, 4_000)
    rate = counter_rate(prev, curr, bits=64, scale=8)
    assert rate.per_second is None and rate.reason is Discontinuity.REBOOT


def test_reboot_is_seen_even_when_the_new_uptime_exceeds_the_old() -> None:
    # Up 10 s at the first poll, rebooted, up 50 s at the next one 60 s later.
    prev = r(1_000_000, 0.0, 1_000)
    curr = r(2_000_000, 60.0, 5_000)
    assert counter_rate(prev, curr, bits=64).reason is Discontinuity.REBOOT


def test_sysuptime_wrapping_after_497_days_is_not_a_reboot() -> None:
    prev_up = UPTIME_MODULUS - 3_000  # 30 s before the wrap
    curr_up = 3_000  # 30 s after it, 60 s later
    assert not uptime_restarted(prev_up, curr_up, 60.0)
    rate = counter_rate(r(100, 0.0, prev_up), r(700, 60.0, curr_up), bits=64)
    assert rate.delta == 600


def test_small_clock_disagreements_are_not_reboots() -> None:
    assert not uptime_restarted(10 * DAY_TICKS, 10 * DAY_TICKS + 5_900, 60.0)  # 1 s slow
    assert not uptime_restarted(10 * DAY_TICKS, 10 * DAY_TICKS + 6_150, 60.0)  # 1.5 s fast
    assert not uptime_restarted(1_000, 7_000, 60.0)  # young device, exact
    assert uptime_restarted(10 * DAY_TICKS, 100, 60.0)


def test_unknown_uptime_cannot_detect_a_reboot_but_the_counter_check_still_protects() -> None:
    rate = counter_rate(r(5_000_000_000_000, 0.0), r(2_000, 60.0), bits=64, scale=8)
    assert rate.per_second is None and rate.reason is Discontinuity.RESET


# ---- implausible rates ---------------------------------------------------------------------------


def test_a_rate_above_speed_times_headroom_is_dropped_not_clipped() -> None:
    # 2 Mbit/s link, 60 s: 15 MB is 2 Mbit/s; 30 MB is 4 Mbit/s > 3 Mbit/s (x1.5).
    ok = counter_rate(r(0, 0.0), r(15_000_000, 60.0), bits=64, scale=8, max_rate=2e6)
    assert ok.per_second == pytest.approx(2e6)
    bad = counter_rate(r(0, 0.0), r(30_000_000, 60.0), bits=64, scale=8, max_rate=2e6)
    assert bad.per_second is None and bad.reason is Discontinuity.IMPLAUSIBLE
    assert bad.delta == 30_000_000


def test_unknown_or_zero_speed_means_no_ceiling() -> None:
    for speed in (None, 0.0):
        rate = counter_rate(r(0, 0.0), r(10**12, 1.0), bits=64, scale=8, max_rate=speed)
        assert rate.ok


# ---- properties -------------------------------------------------------------------------------


@given(
    start=st.integers(0, COUNTER64_MODULUS - 1),
    bps=st.floats(0, 10e9),
    dt=st.floats(1.0, 600.0),
    uptime=st.integers(DAY_TICKS, 400 * DAY_TICKS),
)
def test_counter64_rate_is_recovered(start: int, bps: float, dt: float, uptime: int) -> None:
    grown = int(bps / 8 * dt)
    curr_value = (start + grown) % COUNTER64_MODULUS
    assume(start + grown < COUNTER64_MODULUS)  # a 64-bit wrap within the interval: not real
    prev = r(start, 100.0, uptime)
    curr = r(curr_value, 100.0 + dt, uptime + round(dt * 100))
    rate = counter_rate(prev, curr, bits=64, scale=8, max_rate=10e9)
    assert rate.ok
    assert rate.per_second == pytest.approx(grown * 8 / dt, rel=1e-9, abs=1e-6)


@given(
    start=st.integers(0, COUNTER32_MODULUS - 1),
    speed=st.sampled_from([2e6, 8e6, 100e6]),
    load=st.floats(0.0, 1.0),
    dt=st.floats(1.0, 120.0),
)
def test_counter32_wraps_are_handled_when_unambiguous(
    start: int, speed: float, load: float, dt: float
) -> None:
    grown = int(speed * load / 8 * dt)
    assume(speed * 1.5 / 8 * dt < COUNTER32_MODULUS)
    curr = r((start + grown) % COUNTER32_MODULUS, dt, 100 + round(dt * 100))
    rate = counter_rate(r(start, 0.0, 100), curr, bits=32, scale=8, max_rate=speed)
    assert rate.ok
    assert rate.delta == grown


@given(
    before=st.integers(0, COUNTER64_MODULUS - 1),
    after=st.integers(0, COUNTER64_MODULUS - 1),
    up_before=st.integers(0, UPTIME_MODULUS - 1),
    up_after=st.integers(0, UPTIME_MODULUS - 1),
    dt=st.floats(0.001, 3_600.0),
    speed=st.one_of(st.none(), st.floats(1e3, 100e9)),
    bits=st.sampled_from([32, 64]),
)
def test_never_a_spike(
    before: int,
    after: int,
    up_before: int,
    up_after: int,
    dt: float,
    speed: float | None,
    bits: int,
) -> None:
    """Whatever the readings, a rate that comes out is within the interface's capability."""
    mod = 2**bits
    rate = counter_rate(
        r(before % mod, 0.0, up_before),
        r(after % mod, dt, up_after),
        bits=bits,
        scale=8,
        max_rate=speed,
    )
    assert (rate.per_second is None) == (rate.reason is not None)
    if rate.per_second is not None:
        assert rate.per_second >= 0
        assert rate.delta is not None and 0 <= rate.delta < mod
        if speed is not None:
            assert rate.per_second <= speed * 1.5 + 1e-6
        assert not uptime_restarted(up_before, up_after, dt)


@given(
    up=st.integers(0, UPTIME_MODULUS - 1),
    dt=st.floats(1.0, 3_600.0),
    jitter=st.floats(-0.5, 0.5),
)
def test_an_uptime_that_advances_with_the_clock_is_never_a_restart(
    up: int, dt: float, jitter: float
) -> None:
    after = (up + round((dt + jitter) * 100)) % UPTIME_MODULUS
    assert not uptime_restarted(up, after, dt)


@given(up=st.integers(10 * 100, UPTIME_MODULUS - 1), since_boot=st.floats(0.0, 50.0))
def test_a_boot_within_the_interval_is_a_restart(up: int, since_boot: float) -> None:
    # The device was up `up` ticks, rebooted, and has been up `since_boot` s 60 s later.
    assume(up / 100 > since_boot + 5)
    assert uptime_restarted(up, round(since_boot * 100), 60.0)
