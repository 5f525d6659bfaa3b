"""The embedded DuckDB backend, locked down: read-only, no external access, fixed configuration."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import shutil
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from ..catalog import CATALOG_TABLE
from ..compile import CompiledQuery
from ..errors import ExecutionFailed
from .base import query_timeout, time_limit

__all__ = ["DuckDBBackend"]

_STAGE = "execute"


# DuckDB settings of every engine connection (benchmarks open their raw connections with them too).
# DuckDB 2's partitioned execution splits an aggregate over a table sorted by its group key (the
# registers are stored sorted by person) into range partitions that each rescan the table: 2-8x slower
# on the national benchmark's cohort and grouped shapes, and never faster there.
QUERY_TUNING: dict[str, str] = {"disabled_optimizers": "partitioned_execution"}


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


def private_spill_dir(temp_dir: str | Path) -> Path:
    """This process's own directory under ``temp_dir`` (``pid-<pid>``, 0700) for DuckDB to spill into.

    Several worker processes may serve one database with one ``temp_dir``: each spills into its own
    directory. Directories of processes that no longer run (a crash leaves DuckDB's files behind) are
    removed here.
    """
    base = Path(temp_dir)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    for entry in base.glob("pid-*"):
        pid = entry.name.removeprefix("pid-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    own = base / f"pid-{os.getpid()}"
    own.mkdir(exist_ok=True, mode=0o700)
    return own


# DuckDB shares one instance per file within a process and refuses a second connection with another
# configuration: a backend opened while another one serves the same file uses that one's spill dir.
_open_spill_dirs: dict[str, tuple[Path | None, int]] = {}
_open_lock = threading.Lock()


def _acquire_spill_dir(database: Path, temp_dir: str | Path | None) -> Path | None:
    with _open_lock:
        key = str(database.resolve())
        if key in _open_spill_dirs:
            spill, count = _open_spill_dirs[key]
        else:
            spill, count = (None if temp_dir is None else private_spill_dir(temp_dir)), 0
        _open_spill_dirs[key] = (spill, count + 1)
        return spill


def _release_spill_dir(database: Path) -> None:
    with _open_lock:
        key = str(database.resolve())
        spill, count = _open_spill_dirs.pop(key)
        if count > 1:
            _open_spill_dirs[key] = (spill, count - 1)
        elif spill is not None:
            # DuckDB removed its files when the instance's last connection closed.
            with contextlib.suppress(OSError):
                spill.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to clean up
        return True
    return True


class DuckDBBackend:
    """A read-only DuckDB database; each query runs on its own cursor with a timeout.

    The configuration is locked when the database is opened, so no statement (``SET``, ``PRAGMA``,
    ``ATTACH``, ``INSTALL``/``LOAD``, ``COPY``, ``read_csv``) can widen what the connection may touch.
    DuckDB shares one instance per file within a process: a second backend on the same file must
    use the same memory limit, thread count and temporary directory.

    What does not fit in ``memory_limit`` (large joins, sorts, windows) spills to disk: into a
    private directory of this process under ``temp_dir`` (see :func:`private_spill_dir`), or, when
    ``temp_dir`` is None, into DuckDB's default ``<database>.tmp`` next to the file. While a backend
    of this process serves the file, another one opened on it spills where the first does.
    """

    dialect = "duckdb"

    def __init__(
        self,
        path: str | Path,
        *,
        memory_limit: str = "2GB",
        threads: int = 2,
        timeout_s: float = 30.0,
        temp_dir: str | Path | None = None,
    ) -> None:
        if not Path(path).is_file():
            raise ExecutionFailed(f"Database file {str(path)!r} does not exist.", stage=_STAGE)
        config: dict[str, str | bool | int | float | list[str]] = {
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "memory_limit": memory_limit,
            "threads": threads,
            **QUERY_TUNING,
            # Locked from the start: no statement can change any setting afterwards.
            "lock_configuration": True,
        }
        self._database = Path(path)
        try:
            self._spill_dir = _acquire_spill_dir(self._database, temp_dir)
        except OSError as exc:
            raise ExecutionFailed(
                f"Cannot create the temporary directory under {str(temp_dir)!r} ({exc.strerror}); "
                "set a writable one.",
                stage=_STAGE,
            ) from None
        try:
            self._con = self._connect(config)
        except duckdb.Error as exc:
            _release_spill_dir(self._database)
            raise ExecutionFailed(
                f"Could not open database {str(path)!r}: {type(exc).__name__}.", stage=_STAGE
            ) from None
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._watchdog = _Watchdog()

    def _connect(self, config: dict[str, str | bool | int | float | list[str]]) -> duckdb.DuckDBPyConnection:
        if self._spill_dir is None:
            return duckdb.connect(str(self._database), read_only=True, config=config)
        # DuckDB refuses a temporary directory in the same connect as external access off, so the
        # directory comes first and the locks right after, before the connection runs any query.
        locks = ("enable_external_access", "lock_configuration")
        opening = {k: v for k, v in config.items() if k not in locks}
        con = duckdb.connect(
            str(self._database), read_only=True, config={"temp_directory": str(self._spill_dir), **opening}
        )
        try:
            locked = con.sql("SELECT current_setting('lock_configuration')").fetchall()[0][0]
            if not locked:  # else another backend of this process already locked the shared instance
                con.execute("SET enable_external_access = false")
                con.execute("SET lock_configuration = true")
            check = "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
            if con.sql(check).fetchall()[0] != (False, True):
                raise duckdb.InvalidInputException("the configuration could not be locked")
        except BaseException:
            con.close()
            raise
        return con

    def execute(self, compiled: CompiledQuery, *, timeout_s: float | None = None) -> pa.Table:
        """Run one query on a fresh cursor; interrupt it after the timeout (``timeout_s`` if shorter)."""
        if compiled.dialect != self.dialect:
            raise ExecutionFailed(f"DuckDB cannot run SQL compiled for {compiled.dialect!r}.", stage=_STAGE)
        with self._lock:
            if self._closed:
                raise ExecutionFailed("The database connection is closed.", stage=_STAGE)
            cursor = self._con.cursor()
        limit = time_limit(self._timeout_s, timeout_s)
        ticket, timed_out = self._watchdog.watch(cursor, limit)
        try:
            return cursor.sql(compiled.sql, params=list(compiled.params)).to_arrow_table()
        except duckdb.Error as exc:
            if timed_out.is_set():
                raise query_timeout(limit) from None
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
                _release_spill_dir(self._database)
