"""Recognise storage trouble: a write of the ledger or the service store failed at the OS level.

SQLite says ``database or disk is full`` (SQLITE_FULL), ``disk I/O error`` (SQLITE_IOERR) and the like;
Python raises ``OSError`` with ENOSPC, EDQUOT, EIO or EROFS; PostgreSQL answers SQLSTATE class 53
(insufficient resources: ``disk_full`` 53100) or 58 (system error: ``io_error`` 58030), which the ledger
wraps in ``LedgerUnavailable`` with the driver's error as the exception's context. None of these is a
bug in sundstat: the service answers ``503 storage_unavailable`` with a sentence for the operator, and
``/v1/health`` reports the storage of the state directory.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import uuid
from pathlib import Path

__all__ = ["MIN_FREE_BYTES", "storage_failure", "storage_message", "storage_problem"]

# Below this much free space in the state directory /v1/health reports the storage as unavailable:
# SQLite needs room for its write-ahead log before a commit can succeed.
MIN_FREE_BYTES = 1 << 20

_SQLITE_CODES = {
    13: "the disk is full",  # SQLITE_FULL
    10: "a disk I/O error",  # SQLITE_IOERR
    14: "the database file cannot be opened",  # SQLITE_CANTOPEN
    8: "the database is read-only",  # SQLITE_READONLY
}
_OS_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EIO: "a disk I/O error",
    errno.EROFS: "the file system is read-only",
    errno.EFBIG: "a file is larger than the system allows",
}
_SQLSTATE_CLASSES = {
    "53": "the database server is out of disk space or memory",
    "58": "a database server I/O error",
}


def storage_failure(exc: BaseException) -> str | None:
    """What went wrong with the storage (``"the disk is full"``), if ``exc`` or its cause is storage trouble."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        reason = _reason(current)
        if reason is not None:
            return reason
        current = current.__cause__ or current.__context__
    return None


def _reason(exc: BaseException) -> str | None:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            return _SQLITE_CODES.get(code & 0xFF)
        return None
    if isinstance(exc, OSError):
        return _OS_ERRNOS.get(exc.errno) if exc.errno is not None else None
    sqlstate = getattr(exc, "sqlstate", None)  # psycopg errors, without importing the driver
    if isinstance(sqlstate, str):
        return _SQLSTATE_CLASSES.get(sqlstate[:2])
    return None


def storage_message(reason: str) -> str:
    """The sentence of a ``storage_unavailable`` answer."""
    return (
        f"The service cannot write to its storage ({reason}), so the request was not completed and nothing "
        "was released; privacy loss already committed stays charged. This is not a problem with your "
        "request: ask the operator to free space or fix the disk of the state directory (or of the "
        "PostgreSQL ledger), then retry."
    )


def storage_problem(state_dir: Path) -> str | None:
    """Whether the state directory can take a write now: enough free space and a small fsynced file."""
    try:
        usage = os.statvfs(state_dir)
        if usage.f_bavail * usage.f_frsize < MIN_FREE_BYTES:
            return "the disk is full"
        probe = state_dir / f".storage-probe-{uuid.uuid4().hex}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        return _OS_ERRNOS.get(exc.errno or 0, f"the state directory cannot be written ({exc.strerror})")
    return None
