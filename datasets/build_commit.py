"""The build's last step: the finished database and its reject files replace the previous ones
atomically (fsync of the files and their directories, then os.replace).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from datasets.build_support import BuildError
from query_engine.catalog import Catalog


def _commit(tmp: Path, db: Path, reject_tmps: dict[str, Path], reject_dir: Path, catalog: Catalog) -> None:
    """Make the new database and its reject files durable, then move them into place."""
    if Path(f"{tmp}.wal").exists():
        raise RuntimeError(f"internal error (a bug): {tmp}.wal remains after CHECKPOINT and DETACH")
    try:
        for path in (tmp, *reject_tmps.values()):
            os.chmod(path, 0o600)  # private whatever the umask: person-level data
            _fsync(path)
        # A write-ahead log left by the old database would be replayed onto the new file.
        Path(f"{db}.wal").unlink(missing_ok=True)
        os.replace(tmp, db)
        _place_rejects(reject_tmps, reject_dir, catalog)
        _fsync_dir(db.parent)
        if reject_dir.resolve() != db.parent.resolve():
            _fsync_dir(reject_dir)
    except OSError as exc:
        raise BuildError(
            f"Cannot write {exc.filename or db} ({exc.strerror}); check the disk and permissions."
        ) from None


def _place_rejects(reject_tmps: dict[str, Path], reject_dir: Path, catalog: Catalog) -> None:
    """Move this build's reject files into place and remove those of registers without rejects."""
    for name in catalog.register_names:
        final = reject_dir / f"{name}.rejects.csv"
        if name in reject_tmps:
            os.replace(reject_tmps[name], final)
        else:
            final.unlink(missing_ok=True)  # a stale list from an earlier build would mislead


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem can fsync a directory
        _fsync(path)
