"""The embedded DuckDB backend, locked down: read-only, no external access, fixed configuration."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from ..catalog import CATALOG_TABLE
from ..compile import CompiledQuery
from ..errors import ExecutionFailed, QueryTimeout

__all__ = ["DuckDBBackend"]

_STAGE = "execute"


class _Watchdog:
    """One thread that interrupts cursors whose deadline has passed (no thread per query)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._active: dict[int, tuple[duckdb.DuckDBPyConnection, threading.Event]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, cursor: duckdb.DuckDBPyConnection, timeout_s: float) -> tuple[int, threading.Event]:
        fired = threading.Event()
        with self._cond:
            ticket = next(self._ids)
            self._active[ticket] = (cursor, fired)
            heapq.heappush(self._heap, (time.monotonic() + timeout_s, ticket))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="duckdb-watchdog", daemon=True)
                self._thread.start()
            # Wake the watchdog only if this deadline is now the earliest: a wake-up costs a context switch.
            if self._heap[0][1] == ticket:
                self._cond.notify()
        return ticket, fired

    def release(self, ticket: int) -> None:
        with self._cond:
            self._active.pop(ticket, None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                while self._heap and self._heap[0][1] not in self._active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, ticket = self._heap[0]
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                heapq.heappop(self._heap)
                cursor, fired = self._active.pop(ticket)
                fired.set()
                cursor.interrupt()


class DuckDBBackend:
    """A read-only DuckDB database; each query runs on its own cursor with a timeout.

    The configuration is locked when the database is opened, so no statement (``SET``, ``PRAGMA``,
    ``ATTACH``, ``INSTALL``/``LOAD``, ``COPY``, ``read_csv``) can widen what the connection may touch.
    DuckDB shares one instance per file within a process: a second backend on the same file must
    use the same memory limit and thread count.
    """

    dialect = "duckdb"

    def __init__(
        self, path: str | Path, *, memory_limit: str = "2GB", threads: int = 2, timeout_s: float = 30.0
    ) -> None:
        if not Path(path).is_file():
            raise ExecutionFailed(f"Database file {str(path)!r} does not exist.", stage=_STAGE)
        config: dict[str, str | bool | int | float | list[str]] = {
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "memory_limit": memory_limit,
            "threads": threads,
            # Locked from the start: no statement can change any setting afterwards.
            "lock_configuration": True,
        }
        try:
            self._con = duckdb.connect(str(path), read_only=True, config=config)
        except duckdb.Error as exc:
            raise ExecutionFailed(
                f"Could not open database {str(path)!r}: {type(exc).__name__}.", stage=_STAGE
            ) from None
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._watchdog = _Watchdog()

    def execute(self, compiled: CompiledQuery, *, timeout_s: float | None = None) -> pa.Table:
        """Run one query on a fresh cursor; interrupt it after the timeout (``timeout_s`` if shorter)."""
        if compiled.dialect != self.dialect:
            raise ExecutionFailed(f"DuckDB cannot run SQL compiled for {compiled.dialect!r}.", stage=_STAGE)
        with self._lock:
            if self._closed:
                raise ExecutionFailed("The database connection is closed.", stage=_STAGE)
            cursor = self._con.cursor()
        limit = self._timeout_s if timeout_s is None else max(0.0, min(timeout_s, self._timeout_s))
        ticket, timed_out = self._watchdog.watch(cursor, limit)
        try:
            return cursor.sql(compiled.sql, params=list(compiled.params)).to_arrow_table()
        except duckdb.Error as exc:
            if timed_out.is_set():
                raise QueryTimeout(
                    f"The query ran longer than {limit:g} s and was stopped; narrow it (fewer "
                    "groups, a shorter period) or ask an administrator for a longer timeout.",
                    stage=_STAGE,
                ) from None
            # The DuckDB message may quote data (e.g. a failed cast); only its type is passed on.
            raise ExecutionFailed(
                f"The query failed in the database ({type(exc).__name__}).", stage=_STAGE
            ) from None
        finally:
            self._watchdog.release(ticket)
            cursor.close()

    def read_catalog_json(self) -> str:
        """The catalog JSON stored in the database's catalog table."""
        table = self.execute(CompiledQuery(f"SELECT catalog FROM {CATALOG_TABLE}", (), self.dialect))
        if table.num_rows != 1:
            raise ExecutionFailed(
                f"The database's {CATALOG_TABLE} table must hold exactly one row.", stage=_STAGE
            )
        return str(table.column(0)[0].as_py())

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._watchdog.stop()
                self._con.close()
