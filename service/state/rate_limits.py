"""Rate limits kept in the state store, so one limit holds across worker processes and hosts.

Each key (a token, a client address, an address's failed authentications) is a token bucket in the
GCRA form: one row holds the key's theoretical arrival time ``tat``. A request at ``now`` is allowed
when ``max(tat, now) + 1/rate - now <= burst/rate`` and then advances ``tat``; that check and update
is one atomic upsert in the store, so concurrent requests on any host are counted exactly once each.
:class:`StoreWindowLimiter` is the exact form for rare events (applications): at most ``limit`` per key
in any ``window`` seconds, one row per counted event, checked and counted in one write transaction
(SQLite's ``BEGIN IMMEDIATE``; on PostgreSQL under an advisory lock on the key). The clock is the
hosts' wall clock (keep them NTP-synchronised; a skew of s seconds shifts a host's
view of a bucket by s * rate requests).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..errors import RateLimited
from .base import StateStore

__all__ = ["StoreRateLimiter", "StoreWindowLimiter"]

_FORGET_EVERY = 1000


class _StoreLimit:
    """What both limits keep: the store, the prefix of their keys in it, what they count (named in the
    refusal) and the clock; and their calls, so that every ``_FORGET_EVERY``-th sweeps out old rows."""

    def __init__(self, store: StateStore, prefix: str, what: str, clock: Callable[[], float]) -> None:
        self._store = store
        self._prefix = prefix
        self._what = what
        self._clock = clock
        self._calls = 0

    def _sweep_due(self) -> bool:
        """Count one call; True when this one should also sweep out the rows no key needs any more."""
        self._calls += 1
        return self._calls % _FORGET_EVERY == 0


class StoreRateLimiter(_StoreLimit):
    """``rate`` requests per second sustained and ``burst`` at once, per key, in ``store``."""

    def __init__(
        self,
        store: StateStore,
        rate: float,
        burst: int,
        *,
        prefix: str = "",
        what: str = "requests",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(store, prefix, what, clock)
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        # Float slack so that exactly ``burst`` requests at one instant are allowed.
        self._tolerance = burst * self._interval * (1 + 1e-9)

    def check(self, key: str) -> None:
        """Count one request of ``key`` or raise ``RateLimited`` with the wait (nothing counted)."""
        now = self._clock()
        tat = self._store.rate_take(self._prefix + key, now, self._interval, self._tolerance)
        if self._sweep_due():
            self._store.rate_forget(now)
        if tat is not None:
            raise self._limited(tat, now)

    def ensure_open(self, key: str) -> None:
        """Raise ``RateLimited`` if one more request of ``key`` would be refused (counts nothing)."""
        now = self._clock()
        tat = self._store.rate_peek(self._prefix + key)
        if tat is not None and max(tat, now) + self._interval - now > self._tolerance:
            raise self._limited(tat, now)

    def _limited(self, tat: float, now: float) -> RateLimited:
        wait = max(tat + self._interval - now - self._tolerance, 0.1)
        return RateLimited(
            f"Too many {self._what}: the limit is {self.rate:g} per second (bursts of {self.burst}). "
            f"Retry in {math.ceil(wait * 10) / 10:g} s.",
            retry_after=wait,
        )


class StoreWindowLimiter(_StoreLimit):
    """At most ``limit`` events per key in any ``window`` seconds, in ``store`` (a sliding log)."""

    def __init__(
        self,
        store: StateStore,
        limit: int,
        window: float,
        *,
        prefix: str = "",
        what: str = "requests",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(store, prefix, what, clock)
        self.limit = limit
        self.window = window

    def check(self, key: str) -> None:
        """Count one event of ``key`` or raise ``RateLimited`` saying when the next one is allowed."""
        now = self._clock()
        key = self._prefix + key
        sweep = self._sweep_due()
        with self._store.write() as conn:
            if self._store.dialect == "postgresql":
                # READ COMMITTED: without the lock two hosts could both count limit - 1 and both insert.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))
            conn.execute("DELETE FROM rate_events WHERE key = ? AND at <= ?", (key, now - self.window))
            if sweep:
                conn.execute("DELETE FROM rate_events WHERE at <= ?", (now - self.window,))
            rows = conn.execute(
                "SELECT at FROM rate_events WHERE key = ? ORDER BY at LIMIT ?", (key, self.limit)
            ).fetchall()
            if len(rows) < self.limit:
                conn.execute("INSERT INTO rate_events (key, at) VALUES (?, ?)", (key, now))
                return
        wait = max(self.window - (now - float(rows[0]["at"])), 0.1)
        raise RateLimited(
            f"Too many {self._what}: the limit is {self.limit} per {self.window:g} s. "
            f"Retry in {math.ceil(wait)} s.",
            retry_after=wait,
        )
