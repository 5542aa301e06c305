"""Failed logins, counted, so that password guessing is slow and cheap to refuse.

Two limits, each over a sliding window of ``window_s`` (5 min):

- ``per_account`` (5) failures for one user name *from one client address*: further attempts
  for that name from that address are refused until the oldest failure leaves the window.
  Keyed by the pair, so that someone guessing from one machine cannot lock the real user out
  from theirs;
- ``per_client`` (20) failures from one client address, whatever the names: that address is
  refused (someone trying many names).

A refusal comes *before* the password is checked — an argon2 verification costs ~0.4 s of CPU
here, so guessing must not be able to buy CPU time — and says how long to wait. A successful
login clears its pair's failures. State is in memory, per API process (lost on restart), and
bounded: at most ``max_keys`` keys, the least recently failed forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from inventory.errors import TiandiError


class TooManyLogins(TiandiError):
    """Refused before checking the password: too many recent failures."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    per_account: int = 5
    per_client: int = 20
    window_s: float = 300.0
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        if min(self.per_account, self.per_client, self.max_keys) < 1 or self.window_s <= 0:
            raise ValueError("login limits must be positive")


class LoginThrottle:
    """See the module docstring. Thread-safe (the login route runs in worker threads)."""

    def __init__(
        self, limits: ThrottleLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or ThrottleLimits()
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, username: str, client: str) -> None:
        """Raise :class:`TooManyLogins` if this attempt must be refused unchecked."""
        lim = self.limits
        with self._lock:
            now = self.clock()
            for key, limit, who in (
                ((username, client), lim.per_account, f"user {username!r} from {client}"),
                (("", client), lim.per_client, f"client {client}"),
            ):
                times = self._recent(key, now)
                if times is not None and len(times) >= limit:
                    wait = max(1.0, times[0] + lim.window_s - now)
                    raise TooManyLogins(
                        f"too many failed logins for {who} ({len(times)} in the last "
                        f"{lim.window_s / 60:g} min); try again in {wait:.0f} s, or ask an "
                        "admin to reset the password (`tiandi users reset-password`)",
                        retry_after_s=wait,
                    )

    def failed(self, username: str, client: str) -> None:
        with self._lock:
            now = self.clock()
            for key in ((username, client), ("", client)):
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = deque()
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.limits.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, username: str, client: str) -> None:
        with self._lock:
            self._failures.pop((username, client), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.limits.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
