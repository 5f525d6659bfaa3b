"""Denied requests in the audit chain, coalesced so that nobody can flood the chain with them.

A 401 (no valid token), a 403 (role, permit or register not allowed) and the 404 for a project the
caller may not see are each recorded with the actor (a token id, or ``anonymous`` with the client
address), the route (its template, e.g. ``/v1/projects/{project_id}/budget``) and the project asked
for. Each worker aggregates them per (actor, address, route, project, status) over a window
(``denied_audit_window_seconds``, default one minute) and chains one ``access_denied`` record per
key and window, with a count and the first and last time, through the access log's batches. At most
``max_keys`` keys per window are kept apart; the rest are counted in one ``overflow`` record, so a
window adds a bounded number of records however many requests are refused.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ProjectNotFound
from .periodic_flush import PeriodicFlush

__all__ = ["ACCESS_DENIED", "DeniedAccessLog", "ProjectNotVisible"]

ACCESS_DENIED = "access_denied"


class ProjectNotVisible(ProjectNotFound):
    """The 404 for a project the caller may not see; it carries the project asked for (never shown)."""

    def __init__(self, message: str, project: str) -> None:
        super().__init__(message)
        self.project = project


class AccessSink(Protocol):
    """Where records go: :meth:`service.access_log.AccessLog.record`."""

    def record(self, kind: str, project: str | None, actor: str, **details: Any) -> None:
        """Queue one access record."""
        ...


@dataclass
class _Tally:
    count: int
    first: str
    last: str


_Key = tuple[str, str | None, str, str | None, int, str]


class DeniedAccessLog:
    """A per-worker tally of denied requests, handed to the access log once per window."""

    def __init__(self, sink: AccessSink, *, window: float = 60.0, max_keys: int = 1000) -> None:
        self._sink = sink
        self._max_keys = max_keys
        self._tallies: dict[_Key, _Tally] = {}
        self._overflow = 0
        self._lock = threading.Lock()
        self._background = PeriodicFlush(self.flush, window, "sundstat-denied-access")

    def record(
        self, actor: str, address: str | None, route: str, project: str | None, status: int, code: str
    ) -> None:
        """Count one denied request."""
        now = dt.datetime.now(dt.UTC).isoformat()
        key: _Key = (actor, address if actor == "anonymous" else None, route, project, status, code)
        with self._lock:
            tally = self._tallies.get(key)
            if tally is not None:
                tally.count += 1
                tally.last = now
            elif len(self._tallies) < self._max_keys:
                self._tallies[key] = _Tally(1, now, now)
            else:
                self._overflow += 1

    def flush(self) -> int:
        """Hand this window's records to the access log; returns how many records."""
        with self._lock:
            tallies, self._tallies = self._tallies, {}
            overflow, self._overflow = self._overflow, 0
        for (actor, address, route, project, status, code), tally in tallies.items():
            self._sink.record(
                ACCESS_DENIED,
                project,
                actor,
                address=address,
                route=route,
                status=status,
                code=code,
                count=tally.count,
                first=tally.first,
                last=tally.last,
            )
        if overflow:
            self._sink.record(ACCESS_DENIED, None, "various", route="overflow", count=overflow)
        return len(tallies) + (1 if overflow else 0)

    def start(self) -> None:
        """Flush once per window in the background from now on."""
        self._background.start()

    def close(self) -> None:
        """Stop the background thread and flush what is left (before the access log closes)."""
        self._background.close()
