"""Access records in the audit chain, written in batches (group commit).

Spends, releases, budgets, caps, projects and decisions are chained by the ledger synchronously, in the
same transaction as the change. Requests that change nothing but touch a project (reads, previews,
refusals, releases served from the cache) are recorded too, but one fsynced chain entry per request
would serialise every worker on the disk. Each worker therefore buffers them and chains one
``access_batch`` entry per batch (at most ``interval`` seconds or ``max_batch`` records later, and on
shutdown). A crash can lose the last fraction of a second of access records, never a spend or a release.

The buffer is bounded (``max_records``, default 10,000). It fills only when batches cannot be chained
(the storage is full or failing) for a while: then ``record`` raises ``StorageUnavailable`` and the
request that needed the record is answered ``503 storage_unavailable``. No record is dropped: an access
that cannot be recorded is refused instead, and the buffered records are chained once the storage
takes writes again. A failing flush is logged as one line when it starts failing and one when it
recovers, not once per attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, Protocol

from .errors import StorageUnavailable
from .periodic_flush import PeriodicFlush
from .storage_errors import storage_failure

__all__ = ["ACCESS_BATCH", "MAX_QUEUED_RECORDS", "AccessLog", "EventSink"]

ACCESS_BATCH = "access_batch"
MAX_QUEUED_RECORDS = 10_000

log = logging.getLogger("sundstat.service")


class EventSink(Protocol):
    """Where batches go: ``budget_ledger.Ledger.append_event``."""

    def append_event(self, kind: str, payload: dict[str, Any], actor: str) -> Any:
        """Chain one service event."""
        ...


class AccessLog:
    """A per-worker buffer of access records, flushed to the audit chain by a background thread."""

    def __init__(
        self,
        sink: EventSink,
        *,
        interval: float = 0.1,
        max_batch: int = 500,
        max_records: int = MAX_QUEUED_RECORDS,
    ) -> None:
        self._sink = sink
        self._max_batch = max_batch
        self._max_records = max_records
        self._failing: str | None = None  # why the last flush failed (None: it succeeded)
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._background = PeriodicFlush(self.flush, interval, "sundstat-access-log")

    def record(self, kind: str, project: str | None, actor: str, **details: Any) -> None:
        """Queue one access record; it reaches the chain within ``interval`` seconds.

        Raises ``StorageUnavailable`` when ``max_records`` are already waiting (see the module docstring).
        """
        entry = {"kind": kind, "project": project, "actor": actor, "ts": dt.datetime.now(dt.UTC).isoformat()}
        entry.update(details)
        with self._lock:
            if len(self._records) >= self._max_records:
                why = self._failing or "batches are not being written"
                raise StorageUnavailable(
                    f"The service cannot record this access in the audit chain: {len(self._records)} access "
                    f"records are waiting because the storage cannot be written ({why}), so nothing was "
                    "released. This is not a problem with your request: ask the operator to free space or "
                    "fix the disk of the state directory, then retry."
                )
            self._records.append(entry)
            full = len(self._records) >= self._max_batch
        if not self._background.running:
            self.flush()
        elif full:
            self._background.wake()

    def flush(self) -> int:
        """Chain everything queued so far as one entry; returns how many records were written."""
        with self._flush_lock:
            with self._lock:
                records, self._records = self._records, []
            if not records:
                return 0
            try:
                self._sink.append_event(ACCESS_BATCH, {"records": records}, "service")
            except Exception as exc:
                with self._lock:
                    self._records[:0] = records
                    waiting = len(self._records)
                if self._failing is None:
                    log.error(
                        "could not chain %d access records (%s, %s); they are kept and retried",
                        waiting,
                        type(exc).__name__,
                        storage_failure(exc) or "not a storage error",
                    )
                self._failing = storage_failure(exc) or type(exc).__name__
                return 0
            if self._failing is not None:
                log.warning("access records are chained again (%d written)", len(records))
                self._failing = None
            return len(records)

    def start(self) -> None:
        """Flush in the background from now on."""
        self._background.start()

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        self._background.close()
