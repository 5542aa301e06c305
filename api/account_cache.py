"""Recently read user and API-token rows, kept for a few seconds so that auth costs no query.

Every authenticated request needs the caller's user row (is it enabled, which role) and, for an
API token, the token's row. Reading them from the database on every request cost a session, a
query and a worker-thread hop; :func:`api.deps.current_principal` keeps them here instead, and
also the access tokens whose signature it has checked (by SHA-256 of the token, with the user
name and expiry they carry: a cached token is still refused once it expires).

How fresh an entry is:

* a change made through this API process (``PATCH /users/...``, revoking an API token, any
  commit through :data:`api.deps.SessionDep`) empties the cache when it commits, so it holds
  from the caller's next request on;
* a change made elsewhere (``tiandi users disable|set-role`` from the CLI, another API process)
  holds within ``ttl_s`` (:attr:`api.config.ApiConfig.account_cache_seconds`, 5 s by default):
  an entry is used for that long after it was read, then read again.

Only rows that exist are kept (an unknown user or API token is looked up every time), and never
more than ``max_entries`` of them (the least recently used go first). An API token's expiry is
checked against the clock on every request, not only when its row is read.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from api.roles import Role

DEFAULT_TTL_S = 5.0
DEFAULT_MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class UserRow:
    """What auth needs of a user."""

    username: str
    role: Role
    disabled: bool


@dataclass(frozen=True, slots=True)
class ApiTokenRow:
    """What auth needs of an API token, with its owner as read at the same time."""

    id: int
    name: str
    role: Role
    expires_at: datetime | None
    revoked_at: datetime | None
    owner: UserRow


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token whose signature and claims were checked: whom it names, until when."""

    username: str
    expires_at: float  # epoch seconds; valid while time.time() < expires_at


Entry = UserRow | ApiTokenRow | VerifiedToken
Key = tuple[str, str]
"""("user", user name), ("api_token", SHA-256 of the API token) or ("access_token", SHA-256 of
the access token)."""


class AccountCache:
    """A bounded, time-limited map of :data:`Entry`; thread-safe.

    Lookups happen on the event loop, :meth:`clear` in whichever thread committed a change. A
    row read from the database before a :meth:`clear` and stored after it would bring the old
    state back: :meth:`generation` is taken before the read and :meth:`put` drops the row if a
    clear happened since.
    """

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0 or max_entries < 1:
            raise ValueError("ttl_s must be >= 0 and max_entries >= 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        self._entries: OrderedDict[Key, tuple[float, Entry]] = OrderedDict()
        self._generation = 0
        self._source: object = None

    def __len__(self) -> int:
        return len(self._entries)

    def generation(self) -> int:
        return self._generation

    def get(self, key: Key) -> Entry | None:
        """The row stored under ``key`` if it was read less than ``ttl_s`` ago."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            read_at, row = found
            if self.clock() - read_at >= self.ttl_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return row

    def load(self, key: Key, read: Callable[[], Entry | None]) -> Entry | None:
        """The row under ``key``, from the cache or else from ``read()`` (which reads the
        database; call this in a worker thread). Misses are read one at a time, so requests that
        miss the same row together (its entry just expired) read it once, not once each."""
        with self._loading:
            found = self.get(key)
            if found is not None:
                return found
            generation = self.generation()
            row = read()
            if row is not None:
                self.put(key, row, generation)
            return row

    def put(self, key: Key, row: Entry, generation: int) -> None:
        """Keep ``row``, read from the database after :meth:`generation` returned
        ``generation``; unless the cache was cleared since (the row may be stale then)."""
        if self.ttl_s == 0:
            return
        with self._lock:
            if generation != self._generation:
                return
            self._entries[key] = (self.clock(), row)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def read_from(self, source: object) -> None:
        """Entries hold for one database (its session factory): another one empties the cache
        (tests point an app at another database by replacing ``app.state.session_factory``)."""
        if source is not self._source:
            with self._lock:
                self._generation += 1
                self._entries.clear()
                self._source = source

    def clear(self) -> None:
        """Forget everything: a user or API token may have changed."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
