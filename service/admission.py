"""Admission of a request: an in-memory rate limit (token buckets per key) and the worker's query slots.

The service's shared rate limits live in the state store (:mod:`service.state.rate_limits`);
:class:`RateLimiter` is the same bucket in memory, for tests, benchmarks and per-worker use.
:class:`QuerySlots` bounds how many queries execute at once in one worker.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from .errors import Busy, RateLimited

__all__ = ["QuerySlots", "RateLimiter"]


class RateLimiter:
    """Token buckets: ``rate`` requests per second sustained, ``burst`` at once, per key."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> None:
        """Take one token from ``key``'s bucket or raise ``RateLimited`` with the wait."""
        now = self._clock()
        with self._lock:
            level, last = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - last) * self.rate)
            if level < 1.0:
                self._buckets[key] = (level, now)
                wait = (1.0 - level) / self.rate
                raise RateLimited(
                    f"Too many requests: the limit is {self.rate:g} per second (bursts of {self.burst}). "
                    f"Retry in {math.ceil(wait * 10) / 10:g} s.",
                    retry_after=wait,
                )
            self._buckets[key] = (level - 1.0, now)
            if len(self._buckets) > 10_000:
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled completely (they hold no state worth keeping)."""
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class QuerySlots:
    """At most ``limit`` queries execute at once in this worker; others wait up to ``timeout``."""

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self._semaphore: anyio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the duration of the block, or raise ``Busy``; nothing is spent."""
        if self._semaphore is None:
            self._semaphore = anyio.Semaphore(self.limit)
        semaphore = self._semaphore
        try:
            semaphore.acquire_nowait()
            acquired = True
        except anyio.WouldBlock:
            acquired = False
            with anyio.move_on_after(self.timeout):
                await semaphore.acquire()
                acquired = True
        if not acquired:
            raise Busy(
                f"All {self.limit} query slots stayed busy for {self.timeout:g} s; nothing was spent. "
                "Retry in a moment.",
                retry_after=1.0,
            )
        try:
            yield
        finally:
            semaphore.release()
