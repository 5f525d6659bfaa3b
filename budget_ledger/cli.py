"""Command-line hooks of the ledger, called by the service's CLI (``sundstat ledger verify``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from .audit_chain import load_or_create_audit_key, parse_audit_key
from .errors import LedgerError, LedgerUnavailable
from .startup import RESTORE_HINT
from .store import is_postgres_url, open_store
from .verify import verify_ledger

__all__ = ["EXIT_BROKEN", "EXIT_OK", "EXIT_USAGE", "verify_command"]

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_USAGE = 2


def _load_key(key_path_or_hex: str | os.PathLike[str]) -> bytes:
    path = Path(key_path_or_hex)
    if path.is_file():
        return load_or_create_audit_key(path)
    return parse_audit_key(str(key_path_or_hex))


def _describe(target: str) -> str:
    """How the report names the ledger: the file path, or ``user@host:port/db`` without the password."""
    if is_postgres_url(target):
        from .postgres_store import describe_url  # imported only when asked for: needs psycopg

        return f"{describe_url(target)} (PostgreSQL)"
    return target


def verify_command(
    target: str | os.PathLike[str],
    key_path_or_hex: str | os.PathLike[str],
    expected_head: str | None = None,
    expected_count: int | None = None,
    *,
    out: TextIO | None = None,
) -> int:
    """Verify the ledger at ``target`` and print a report; return 0 (OK), 1 (broken) or 2 (usage).

    ``target`` is the SQLite ledger file or a ``postgresql://`` URL (opened with ``open_store``; the
    report never shows the URL's password). ``key_path_or_hex`` is the audit key file or the key as
    hex (``SUNDSTAT_AUDIT_KEY``). ``expected_head`` / ``expected_count`` are a previously published
    head, to detect truncation. Nothing is written: a missing file or an empty database is an error.
    """
    stream = out if out is not None else sys.stdout
    text = os.fspath(target)
    if "://" not in text and not Path(text).is_file():
        print(f"No ledger database at {text}; pass the state directory's ledger file.", file=stream)
        return EXIT_USAGE
    try:
        key = _load_key(key_path_or_hex)
    except LedgerError as exc:
        print(f"Cannot use the audit key: {exc.message}", file=stream)
        return EXIT_USAGE
    try:
        where = _describe(text)
        store = open_store(text, create=False)
    except LedgerError as exc:
        print(f"Cannot open the ledger: {exc.message}", file=stream)
        return EXIT_USAGE
    except Exception as exc:  # a damaged file fails while the store sets itself up
        return _broken(text, f"the database cannot be opened ({_first_line(exc)})", stream)
    try:
        problems = store.integrity_problems()
        if problems:
            return _broken(where, "the database's integrity check reports: " + "; ".join(problems), stream)
        with store.snapshot() as tx:
            report = verify_ledger(tx, key, expected_head=expected_head, expected_count=expected_count)
    except LedgerUnavailable as exc:
        print(f"Cannot read the ledger {where}: {exc.message}", file=stream)
        return EXIT_USAGE
    except Exception as exc:  # any database error while reading means the ledger cannot be trusted
        return _broken(where, f"the database cannot be read ({_first_line(exc)})", stream)
    finally:
        store.close()
    print(f"Ledger {where}: {'OK' if report.ok else 'BROKEN'}", file=stream)
    print(f"  entries:   {report.entries}", file=stream)
    print(f"  head hash: {report.head_hash}", file=stream)
    if not report.ok:
        where_bad = "none named" if report.first_bad_index is None else f"entry {report.first_bad_index}"
        print(f"  first bad: {where_bad}", file=stream)
        for problem in report.problems:
            print(f"  - {problem}", file=stream)
    _print_spends(
        "pending", report.pending, "charged, no release yet: running now, or left by a crash", stream
    )
    _print_spends(
        "interrupted",
        report.interrupted,
        "left pending by a crash, failed at start-up, still charged",
        stream,
    )
    return EXIT_OK if report.ok else EXIT_BROKEN


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _broken(where: str, reason: str, stream: TextIO) -> int:
    print(f"Ledger {where}: BROKEN", file=stream)
    print(f"  reason: {reason}.", file=stream)
    print(f"  {RESTORE_HINT}", file=stream)
    return EXIT_BROKEN


def _print_spends(label: str, spend_ids: tuple[str, ...], meaning: str, stream: TextIO) -> None:
    print(f"  {label + ':':<13}{len(spend_ids)} ({meaning})", file=stream)
    for spend_id in spend_ids:
        print(f"    {spend_id}", file=stream)
