"""A daemon thread that calls a ``flush`` function every ``interval`` seconds, sooner when woken.

The access log (``service.access_log``) and the denied-access tally (``service.denied_access``)
buffer per worker and write in the background with it; ``close`` stops the thread and flushes what is
left, so nothing buffered is lost on an orderly shutdown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["PeriodicFlush"]


class PeriodicFlush:
    """Runs ``flush`` every ``interval`` seconds in a daemon thread named ``name`` once started."""

    def __init__(self, flush: Callable[[], object], interval: float, name: str) -> None:
        self._flush = flush
        self._interval = interval
        self._name = name
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the background thread was started (else callers flush themselves)."""
        return self._thread is not None

    def start(self) -> None:
        """Flush in the background from now on (a second call does nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Flush now rather than at the end of the interval."""
        self._wake.set()

    def close(self) -> None:
        """Stop the background thread and flush what is left."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._flush()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if not self._stopped.is_set():
                self._flush()
