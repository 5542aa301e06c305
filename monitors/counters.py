"""Counter maths: from two readings of an SNMP counter to a rate, or to nothing at all.

Pure functions, no I/O, no clock: the poll engine passes the readings in.

An SNMP counter (Counter32, Counter64) only ever grows, wrapping to 0 past its maximum
(2³² - 1 or 2⁶⁴ - 1). Its absolute value means nothing; only the difference between two
readings does — and only when nothing happened in between that the difference cannot show. The
rules, in the order they are applied (:func:`counter_rate`):

1. **No previous reading** → no rate (``FIRST``).
2. **Time did not advance** between the readings → no rate (``NO_TIME``).
3. **The device (or its agent) restarted** in between → no rate (``REBOOT``). Seen through
   sysUpTime (hundredths of a second, itself a 32-bit counter that wraps after 497 days): it went
   backwards without wrapping, or it grew by clearly less than the time that passed *and* is now
   no larger than that time. A restart resets counters to arbitrary values: without this rule a
   counter that restarts from 0 reads as a wrap of almost 2⁶⁴ — a petabyte spike.
4. **The difference is ambiguous** → no rate (``AMBIGUOUS_WRAP``): a Counter32 whose maximum
   plausible growth over the interval (``max_rate`` x interval) reaches 2³² may have wrapped any
   number of times, and a Counter32 that went backwards over an interval longer than
   ``max_wrap_interval_s`` (when no maximum rate is known) cannot be told from a reset.
5. **The counter went backwards**: a Counter32 wrapped once (the difference is taken modulo 2³²);
   a Counter64 cannot wrap in any realistic interval (2⁶⁴ octets at 100 Gbit/s is 46 years), so
   it was reset → no rate (``RESET``).
6. **The rate is implausible**, above ``max_rate`` x ``headroom`` (default 1.5: an interface
   cannot carry more than its speed; the headroom absorbs timing jitter and speed rounding) →
   no rate (``IMPLAUSIBLE``). Dropped, never clipped: a clipped value would be invented.

A dropped rate is absent, not zero: the next pair of readings gives one again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

COUNTER32_MODULUS: Final = 2**32
COUNTER64_MODULUS: Final = 2**64
UPTIME_MODULUS: Final = 2**32  # sysUpTime is TimeTicks: hundredths of a second, 32 bits
TICKS_PER_S: Final = 100

DEFAULT_HEADROOM: Final = 1.5
DEFAULT_MAX_WRAP_INTERVAL_S: Final = 300.0
# sysUpTime and our clock disagree by jitter (request/response times, agent scheduling): allow
# this much, or this fraction of the interval, whichever is more.
UPTIME_SLACK_S: Final = 2.0
UPTIME_SLACK_FRACTION: Final = 0.05


class Discontinuity(enum.StrEnum):
    """Why a rate was not computed."""

    FIRST = "first"  # no previous reading to compare with
    NO_TIME = "no_time"  # the readings are not separated by a positive time
    REBOOT = "reboot"  # sysUpTime says the device (or agent) restarted in between
    RESET = "reset"  # the counter went backwards and a wrap cannot explain it
    AMBIGUOUS_WRAP = "ambiguous_wrap"  # a counter32 may have wrapped an unknown number of times
    IMPLAUSIBLE = "implausible"  # the rate is above what the interface can carry


@dataclass(frozen=True, slots=True)
class CounterReading:
    """One reading: the counter's value, the device's sysUpTime with it, and when (seconds)."""

    value: int
    at: float  # seconds on a steady clock (the poller uses time.monotonic())
    uptime_ticks: int | None = None  # sysUpTime read in the same poll; None if unknown


@dataclass(frozen=True, slots=True)
class Rate:
    """The outcome of comparing two readings: a rate per second, or why there is none."""

    per_second: float | None  # already multiplied by ``scale`` (e.g. 8: octets -> bit/s)
    delta: int | None  # counter units between the readings (after a wrap, if one)
    seconds: float  # time between the readings (0 for FIRST)
    reason: Discontinuity | None = None  # set exactly when ``per_second`` is None

    @property
    def ok(self) -> bool:
        return self.per_second is not None


def modulus(bits: int) -> int:
    if bits == 32:
        return COUNTER32_MODULUS
    if bits == 64:
        return COUNTER64_MODULUS
    raise ValueError(f"counters are 32 or 64 bits wide, not {bits}")


def uptime_restarted(previous_ticks: int, current_ticks: int, elapsed_s: float) -> bool:
    """Did the device restart between two sysUpTime readings ``elapsed_s`` apart?

    A sysUpTime that wrapped (497 days of uptime) is not a restart: it is recognised because
    the previous value plus the elapsed time crosses 2³² and lands near the current value.
    """
    slack_s = max(UPTIME_SLACK_S, UPTIME_SLACK_FRACTION * elapsed_s)
    expected = previous_ticks + elapsed_s * TICKS_PER_S
    if current_ticks < previous_ticks:
        if expected >= UPTIME_MODULUS:
            wrapped = expected - UPTIME_MODULUS
            if abs(current_ticks - wrapped) <= slack_s * TICKS_PER_S:
                return False
        return True
    grew_s = (current_ticks - previous_ticks) / TICKS_PER_S
    # Grew clearly less than the time that passed, and the device has not been up longer than
    # that time: it booted in between (a boot long ago would have shown in the previous value).
    return grew_s + slack_s < elapsed_s and current_ticks / TICKS_PER_S <= elapsed_s + slack_s


def counter_rate(
    previous: CounterReading | None,
    current: CounterReading,
    *,
    bits: int,
    scale: float = 1.0,
    max_rate: float | None = None,
    headroom: float = DEFAULT_HEADROOM,
    max_wrap_interval_s: float = DEFAULT_MAX_WRAP_INTERVAL_S,
) -> Rate:
    """The rate between two readings of one counter, in counter units x ``scale`` per second.

    ``max_rate`` is the most the counter can plausibly carry, in the same units as the result
    (e.g. the interface speed in bit/s with ``scale=8`` for an octet counter); ``None`` or a
    value <= 0 means unknown. See the module documentation for the rules.
    """
    mod = modulus(bits)
    if not 0 <= current.value < mod:
        raise ValueError(f"a {bits}-bit counter cannot read {current.value}")
    if previous is None:
        return Rate(None, None, 0.0, Discontinuity.FIRST)
    if not 0 <= previous.value < mod:
        raise ValueError(f"a {bits}-bit counter cannot read {previous.value}")
    seconds = current.at - previous.at
    if not seconds > 0:
        return Rate(None, None, max(seconds, 0.0), Discontinuity.NO_TIME)
    if (
        previous.uptime_ticks is not None
        and current.uptime_ticks is not None
        and uptime_restarted(previous.uptime_ticks, current.uptime_ticks, seconds)
    ):
        return Rate(None, None, seconds, Discontinuity.REBOOT)
    limit = max_rate * headroom if max_rate is not None and max_rate > 0 else None
    if bits == 32 and limit is not None and limit / scale * seconds >= mod:
        # At the highest plausible rate the counter could have gone round at least once: any
        # difference is consistent with several numbers of wraps.
        return Rate(None, None, seconds, Discontinuity.AMBIGUOUS_WRAP)
    raw = current.value - previous.value
    if raw >= 0:
        delta = raw
    elif bits == 64:
        return Rate(None, None, seconds, Discontinuity.RESET)
    elif limit is None and seconds > max_wrap_interval_s:
        return Rate(None, None, seconds, Discontinuity.AMBIGUOUS_WRAP)
    else:
        delta = raw + mod
    per_second = delta * scale / seconds
    if limit is not None and per_second > limit:
        return Rate(None, delta, seconds, Discontinuity.IMPLAUSIBLE)
    return Rate(per_second, delta, seconds)
