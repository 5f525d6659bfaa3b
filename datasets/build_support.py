"""What every step of the build shares: its errors and the helpers that run DuckDB SQL with scrubbed
messages (never a CPR number, a key or a cell value), plus hashing and naming helpers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb

_CPR_LIKE = re.compile(r"\d{6}-?\d{4}")
_MB = 1 << 20


class BuildError(Exception):
    """The build cannot go ahead; the message says why and what to do. Nothing was replaced."""


class RejectsAboveLimit(BuildError):
    """More rows were rejected than allowed; the previous database is untouched."""


_MORE_MEMORY = "give the build more with --memory-limit (e.g. 4GB), or free disk space for its spill files."


@contextlib.contextmanager
def _engine_errors(what: str | None = None) -> Iterator[None]:
    """Turn an unexpected DuckDB error into a BuildError with a scrubbed message (which holds no data
    values), saying what could not be done when ``what`` names it."""
    try:
        yield
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except duckdb.OutOfMemoryException as exc:
        failed = "The build ran out of memory" if what is None else f"Could not {what}, out of memory"
        raise BuildError(f"{failed} ({_scrub(exc)}); {_MORE_MEMORY}") from None
    except duckdb.Error as exc:
        failed = "The database engine failed" if what is None else f"Could not {what}"
        raise BuildError(f"{failed}: {_scrub(exc)}") from None


def _run(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> None:
    """Execute ``sql``; a DuckDB failure becomes a BuildError that says it could not ``what``."""
    with _engine_errors(what):
        con.execute(sql)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    rows = con.execute(sql).fetchall()  # fetch to the end: DuckDB 2 keeps a half-read result open
    return rows[0][0]


def _scrub(exc: BaseException) -> str:
    """The first line of a DuckDB error, with anything that could be a CPR number removed.

    DuckDB quotes offending values and CSV lines in its messages; those may hold CPR numbers.
    """
    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    if line:
        if "unicode" in text.lower() or "utf-8" in text.lower():
            return f"line {line.group(1)} is not valid UTF-8; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        found = re.search(r"Expected Number of Columns: (\d+)", text)
        detail = f" (it should have {found.group(1)} fields, like the header)" if found else ""
        return f"line {line.group(1)} is not well-formed CSV{detail}; fix the file and build again"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = re.sub(r"(['\"]).*?\1", "<value>", first)
    return _CPR_LIKE.sub("<redacted>", first)


def _safe_name(name: str) -> str:
    """A column name fit for a message: a header made of data (a missing header row) is not repeated."""
    if _CPR_LIKE.search(name):
        return "<a name that looks like a CPR number: does the file lack its header row?>"
    return name


def _problem_list(title: str, problems: list[str]) -> str:
    return title + ":\n" + "\n".join(f"  - {p}" for p in problems) + "\nFix these and build again."


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_MB), b""):
            digest.update(block)
    return digest.hexdigest()


def _version() -> str:
    try:
        return importlib.metadata.version("sundstat")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
