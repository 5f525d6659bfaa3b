"""Build: validate register files, pseudonymise CPR numbers, load one DuckDB database atomically.

    build(DIR, db)
      ├─ _resolve_catalog    --catalog, else DIR/catalog.json, else the packaged catalog
      ├─ _find_inputs        DIR/<register>.parquet or .csv; the person register required, the rest
      │                        optional (the stored catalog lists the others as absent_registers)
      ├─ _check_output_path  the database must not land in DIR or overwrite an input
      ├─ _inspect            column names and types of every file; one error lists every problem
      ├─ _load_register      per register, the person register first, set-based in DuckDB SQL:
      │                        pass 1: CPR texts -> pseudonyms; every row's problems -> __bad
      │                        pass 2: converted good rows, sorted by person_id -> the output
      │                        __bad -> <register>.rejects.csv (row number, column, reason)
      ├─ RejectPolicy        too many rejected rows: stop (reject files written, database not)
      └─ _commit             catalog and build tables, CHECKPOINT, fsync, os.replace

All staging lives in an in-memory DuckDB and only converted, checked columns are written to the
output file, so CPR numbers never reach it, not even as freed pages. Until the final os.replace
the previous database is untouched; any failure removes every temporary file.

Errors:
    BuildError   bad input, key or output path; the message says what to do. Raised before
                 anything is replaced, and never containing a CPR number, a key or a cell value.
    └─ RejectsAboveLimit   more rows rejected than the RejectPolicy allows; the message starts
                 with the summary of reasons (datasets.reject_policy) and names the reject files.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import importlib.metadata
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from datasets.ingest_checks import SourceTypeError, column_check, quote, sql_literal
from datasets.packaged_catalog import load_packaged_catalog
from datasets.pseudonymise import PseudonymKeyError, cpr_problem, cpr_sql, load_key, pseudonymise
from datasets.reject_policy import RejectPolicy, RejectReason, reject_summary
from query_engine.catalog import CATALOG_TABLE, SQL_TYPES, Catalog, CatalogError, Register, load_catalog

__all__ = [
    "BUILD_TABLE",
    "BuildError",
    "BuildReport",
    "RegisterReport",
    "RejectsAboveLimit",
    "build",
    "open_catalog_from_db",
]

BUILD_TABLE = "sundstat_build"
CPR_COLUMN = "cpr"
_FORMATS = ("parquet", "csv")
_CSV_DELIMITERS = (",", ";", "\t", "|")
_CPR_LIKE = re.compile(r"\d{6}-?\d{4}")
_CPR_SHARE_LIMIT = 0.01  # above this share of CPR-shaped person_id values, the column is refused
_CPR_SAMPLE_ROWS = 10_000
_MB = 1 << 20
_CPR_MISSING = cpr_problem(None)


class BuildError(Exception):
    """The build cannot go ahead; the message says why and what to do. Nothing was replaced."""


class RejectsAboveLimit(BuildError):
    """More rows were rejected than allowed; the previous database is untouched."""


@dataclass(frozen=True)
class RegisterReport:
    """What happened to one register file."""

    register: str
    file: str
    sha256: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    pseudonymised: bool
    row_key_assigned: bool
    reject_file: Path | None
    reasons: tuple[RejectReason, ...] = ()
    """The (column, reason) pairs of the rejected rows with their counts, most frequent first."""


@dataclass(frozen=True)
class BuildReport:
    """The outcome of a build: where it went and, per register, rows loaded and rejected."""

    db: Path
    source: Path
    catalog_source: str
    registers: tuple[RegisterReport, ...]
    seconds: float
    policy: RejectPolicy = RejectPolicy()
    person_register: str = "cpr"
    not_loaded: tuple[str, ...] = ()  # registers of the catalog without a file in the directory

    def register(self, name: str) -> RegisterReport:
        """The report of register ``name``."""
        return next(r for r in self.registers if r.register == name)

    @property
    def rows_loaded(self) -> int:
        return sum(r.rows_loaded for r in self.registers)

    @property
    def rows_rejected(self) -> int:
        return sum(r.rows_rejected for r in self.registers)

    def reject_summary(self) -> str:
        """Rejected rows per register, their top reasons per column and reject files ('' if none)."""
        return reject_summary(self.registers, self.policy, self.person_register)

    def describe(self) -> str:
        """A short human summary: the rejects first (if any), then one line per register."""
        summary = self.reject_summary()
        lines = [summary, ""] if summary else []
        lines.append(
            f"Built {self.db} from {self.source} in {self.seconds:.1f} s (catalog: {self.catalog_source})."
        )
        width = max(len(r.file) for r in self.registers)
        lines.append(f"  {'register':<9} {'file':<{width}} {'read':>12} {'loaded':>12} {'rejected':>10}")
        for r in self.registers:
            notes = ["CPR pseudonymised"] if r.pseudonymised else []
            notes += ["row_key assigned"] if r.row_key_assigned else []
            lines.append(
                f"  {r.register:<9} {r.file:<{width}} {r.rows_read:>12,} {r.rows_loaded:>12,} {r.rows_rejected:>10,}"
                + (f"  ({', '.join(notes)})" if notes else "")
            )
        if self.not_loaded:
            lines.append(
                f"Not loaded (no file): {', '.join(self.not_loaded)}; queries naming them are refused "
                "with register_not_loaded."
            )
        rejected = [r for r in self.registers if r.reject_file is not None]
        if rejected:
            lines.append(f"{self.rows_rejected:,} rows were rejected; the reasons are in:")
            lines += [f"  {r.reject_file}" for r in rejected]
        else:
            lines.append("No rows were rejected.")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Input:
    """One register file and its columns (name -> DuckDB type, in file order)."""

    register: Register
    path: Path
    columns: dict[str, str]
    delimiter: str | None  # None for Parquet

    @property
    def has_cpr(self) -> bool:
        return CPR_COLUMN in self.columns and CPR_COLUMN not in self.register_columns

    @property
    def has_row_key(self) -> bool:
        return self.register.row_key in self.columns

    @property
    def register_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.register.physical_columns)


def build(
    directory: Path,
    db: Path,
    catalog_dir: Path | None = None,
    pseudonym_key_file: Path | None = None,
    reject_dir: Path | None = None,
    policy: RejectPolicy | None = None,
) -> BuildReport:
    """Validate, pseudonymise and load the register files in ``directory`` into the DuckDB file ``db``.

    ``db`` is replaced atomically; on any failure the previous database is left as it was and no
    temporary or partial file remains. Bad rows are not loaded but listed in
    ``<reject_dir>/<register>.rejects.csv`` (default ``reject_dir``: the database's directory).
    When more rows are rejected than ``policy`` allows (default: no person, 0.1% of any other
    register), ``RejectsAboveLimit`` is raised after the reject files are written, and ``db`` is
    left as it was.
    """
    policy = policy if policy is not None else RejectPolicy()
    started = time.monotonic()
    if not directory.is_dir():
        raise BuildError(
            f"{directory} is not a directory; pass the directory holding the register files "
            "(for synthetic data, the --out directory of `sundstat generate`)."
        )
    catalog, catalog_source, catalog_files = _resolve_catalog(directory, catalog_dir)
    paths = _find_inputs(directory, catalog)
    catalog = catalog.only(paths)  # the stored catalog lists what is loaded, the rest as absent
    _check_output_path(db, directory, [*paths.values(), *catalog_files, *filter(None, [pseudonym_key_file])])
    reject_dir = reject_dir if reject_dir is not None else db.parent
    tag = secrets.token_hex(6)
    tmp = db.with_name(f"{db.name}.tmp-{tag}")
    spill = db.with_name(f"{db.name}.tmp-{tag}.spill")
    reject_tmps: dict[str, Path] = {}
    con = duckdb.connect(":memory:", config={"temp_directory": str(spill)})
    try:
        with _engine_errors():
            inputs = _inspect(con, catalog, paths)
            key = _key(inputs, pseudonym_key_file)
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
                reject_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BuildError(
                    f"Cannot create {exc.filename} ({exc.strerror}); choose a writable location."
                ) from None
            _run(con, f"ATTACH {sql_literal(str(tmp))} AS out", f"create {tmp}")
            _create_keyset_tables(con, catalog)
            con.execute("CREATE TEMP TABLE __pseudonyms (cpr VARCHAR, person_id BIGINT)")
            order = sorted(inputs.values(), key=lambda i: i.register.name != catalog.person_register)
            reports = []
            for inp in order:
                reject_tmp = reject_dir / f".{inp.register.name}.rejects.csv.tmp-{tag}"
                report = _load_register(con, catalog, inp, key, reject_tmp, reject_dir)
                if report.reject_file is not None:
                    reject_tmps[inp.register.name] = reject_tmp
                reports.append(report)
            by_name = {r.register: r for r in reports}
            ordered = tuple(by_name[name] for name in catalog.register_names)
            _refuse_too_many_rejects(db, ordered, policy, catalog, reject_tmps, reject_dir)
            _write_metadata(con, catalog, catalog_source, directory, ordered)
            _run(con, "CHECKPOINT out", f"write {tmp}")
            _run(con, "DETACH out", f"write {tmp}")
            con.close()
            _commit(tmp, db, reject_tmps, reject_dir, catalog)
    except BaseException:
        with contextlib.suppress(Exception):
            con.close()
        for path in (tmp, Path(f"{tmp}.wal"), *reject_tmps.values()):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    elapsed = time.monotonic() - started
    return BuildReport(
        db,
        directory,
        catalog_source,
        ordered,
        elapsed,
        policy,
        catalog.person_register,
        catalog.absent_registers,
    )


def open_catalog_from_db(path: Path) -> Catalog:
    """The catalog stored in a database built by ``build`` (opened read-only)."""
    if not Path(path).is_file():
        raise CatalogError(
            f"There is no database at {path}; build one with `sundstat build DIR --db {path}`."
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        raise CatalogError(
            f"{path} is not a DuckDB database; build one with `sundstat build DIR --db {path}`."
        ) from None
    try:
        rows = con.execute(f"SELECT catalog FROM {CATALOG_TABLE}").fetchall()
    except duckdb.CatalogException:
        raise CatalogError(
            f"{path} has no {CATALOG_TABLE} table, so it was not made by `sundstat build`; rebuild it with that command."
        ) from None
    finally:
        con.close()
    if len(rows) != 1:
        raise CatalogError(
            f"{path} holds {len(rows)} catalogs instead of one; rebuild it with `sundstat build`."
        )
    return Catalog.loads(rows[0][0])


# --- before anything is written ------------------------------------------------------------------


def _resolve_catalog(directory: Path, catalog_dir: Path | None) -> tuple[Catalog, str, list[Path]]:
    """The catalog to validate against, a description of where it came from, and its files."""
    if catalog_dir is not None:
        base, source = catalog_dir, str(catalog_dir)
    elif (directory / "catalog.json").is_file():
        base, source = directory, str(directory / "catalog.json")
    else:
        base, source = None, "packaged"
    try:
        catalog = load_catalog(base) if base is not None else load_packaged_catalog()
    except Exception as exc:  # a broken catalog of any kind is the user's to fix, not a crash
        raise BuildError(
            f"Cannot load the catalog ({source}): {exc}. Fix it, or pass --catalog DIR."
        ) from None
    files = [p for p in base.iterdir() if p.is_file()] if base is not None and base.is_dir() else []
    return catalog, source, files


def _find_inputs(directory: Path, catalog: Catalog) -> dict[str, Path]:
    """One file per register present; the person register is required (everyone is in it), the
    others are optional: an installation may hold only some registers."""
    found, problems = {}, []
    for name in catalog.register_names:
        candidates = [directory / f"{name}.{fmt}" for fmt in _FORMATS]
        present = [p for p in candidates if p.is_file()]
        if not present and name == catalog.person_register:
            problems.append(
                f"the person register {name} has no file: expected {name}.parquet or {name}.csv "
                "(every person is in it, so it is required; the other registers are optional)"
            )
        elif not present:
            continue
        elif len(present) > 1:
            problems.append(
                f"register {name} has both {name}.parquet and {name}.csv: remove one so the build knows which to load"
            )
        else:
            found[name] = present[0]
    if problems:
        raise BuildError(_problem_list(f"The register files in {directory} are incomplete", problems))
    return found


def _check_output_path(db: Path, directory: Path, inputs: list[Path]) -> None:
    target = db.resolve()
    if target.is_dir():
        raise BuildError(f"--db {db} is a directory; give the path of the database file to write.")
    source = directory.resolve()
    if target == source or source in target.parents:
        raise BuildError(
            f"--db {db} lies inside the input directory {directory}; write the database outside it, "
            f"e.g. --db {directory.resolve().parent / 'sundstat.duckdb'}."
        )
    if target in {p.resolve() for p in inputs}:
        raise BuildError(
            f"--db {db} is one of the build's input files; choose another path for the database."
        )


def _inspect(con: duckdb.DuckDBPyConnection, catalog: Catalog, paths: dict[str, Path]) -> dict[str, _Input]:
    """Read every file's column names and types and check them; one BuildError lists all problems."""
    inputs, problems = {}, []
    for name, path in paths.items():
        try:
            if path.suffix == ".csv":
                names, delimiter = _csv_header(path)
                columns = dict.fromkeys(names, "VARCHAR")
                if len(columns) != len(names):
                    twice = sorted({_safe_name(n) for n in names if names.count(n) > 1})
                    raise _Unreadable(f"names column(s) {', '.join(twice)} more than once in its header")
            else:
                delimiter = None
                described = con.execute(
                    f"DESCRIBE SELECT * FROM read_parquet({sql_literal(str(path))})"
                ).fetchall()
                columns = {str(row[0]): str(row[1]) for row in described}
        except _Unreadable as exc:
            problems.append(f"{path.name} {exc}")
            continue
        except duckdb.Error as exc:
            problems.append(f"{path.name} cannot be read: {_scrub(exc)}")
            continue
        inp = _Input(catalog.register(name), path, columns, delimiter)
        problems += _column_problems(inp)
        inputs[name] = inp
    if problems:
        raise BuildError(_problem_list("The register files do not match the catalog", problems))
    return inputs


class _Unreadable(Exception):
    """A file cannot be read as the kind of file its name says."""


def _csv_header(path: Path) -> tuple[list[str], str]:
    """The header's column names and the delimiter (the most frequent of , ; tab | in the header).

    Reading the header here, rather than letting DuckDB sniff the dialect, makes every later row
    parse strictly against it, so a malformed row is reported by its line number.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise _Unreadable("is not UTF-8 text; convert it (e.g. iconv -f latin1 -t utf-8)") from None
    if not first.strip():
        raise _Unreadable("is empty or starts with an empty line; the first line must be the header")
    delimiter = max(_CSV_DELIMITERS, key=first.count)
    names = next(csv.reader([first], delimiter=delimiter))
    return [n.strip() for n in names], delimiter


def _column_problems(inp: _Input) -> list[str]:
    reg, name = inp.register, inp.path.name
    expected = list(inp.register_columns)
    present = set(inp.columns)
    problems = []
    if CPR_COLUMN in present and reg.person_key in present and CPR_COLUMN not in expected:
        problems.append(
            f"{name} has both {CPR_COLUMN} and {reg.person_key}: keep {CPR_COLUMN} for raw CPR numbers "
            f"or {reg.person_key} for pseudonyms, not both"
        )
    optional = {reg.row_key} | ({reg.person_key} if inp.has_cpr else set())
    missing = [c for c in expected if c not in present and c not in optional]
    derived = {c.name for c in reg.columns if c.is_derived}
    unknown = [c for c in inp.columns if c not in expected and not (c == CPR_COLUMN and inp.has_cpr)]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"is missing column(s) {', '.join(missing)}")
        if unknown:
            named = [
                _safe_name(c) + (" (derived by the engine, drop it)" if c in derived else "") for c in unknown
            ]
            parts.append(f"has unknown column(s) {', '.join(named)}")
        wanted = [
            f"{c} (or {CPR_COLUMN} with raw CPR numbers)"
            if c == reg.person_key
            else f"{c} (optional)"
            if c == reg.row_key
            else c
            for c in expected
        ]
        problems.append(f"{name} {' and '.join(parts)}; expected columns: {', '.join(wanted)}")
    if inp.has_cpr and inp.columns[CPR_COLUMN] != "VARCHAR":
        problems.append(
            f"{name}: column {CPR_COLUMN} is stored as {inp.columns[CPR_COLUMN]}; store CPR numbers as text so leading zeros survive"
        )
    for col in reg.physical_columns:
        source_type = inp.columns.get(col.name)
        if source_type is None:
            continue
        try:
            column_check(col, source_type, None, source="x", raw="x", value="x")
        except SourceTypeError as exc:
            problems.append(f"{name}: column {col.name} {exc}")
    return problems


def _key(inputs: dict[str, _Input], key_file: Path | None) -> bytes | None:
    try:
        key = load_key(key_file)
    except PseudonymKeyError as exc:
        raise BuildError(str(exc)) from None
    with_cpr = [i.path.name for i in inputs.values() if i.has_cpr]
    if with_cpr and key is None:
        raise BuildError(
            f"{', '.join(with_cpr)} hold raw CPR numbers (column {CPR_COLUMN}) but no pseudonymisation key is set. "
            "Set SUNDSTAT_PSEUDONYM_KEY, or pass --pseudonym-key-file, to 32 random bytes as hex or base64 "
            '(e.g. 64 hex digits from `python -c "import secrets; print(secrets.token_hex(32))"`), '
            "and keep using the same key so pseudonyms stay the same across builds."
        )
    return key


# --- loading ------------------------------------------------------------------------------------


def _reader(inp: _Input) -> str:
    if inp.delimiter is None:
        return f"read_parquet({sql_literal(str(inp.path))})"
    columns = ", ".join(f"{sql_literal(name)}: 'VARCHAR'" for name in inp.columns)
    return (
        f"read_csv({sql_literal(str(inp.path))}, header = true, auto_detect = false, "
        f"delim = {sql_literal(inp.delimiter)}, quote = '\"', escape = '\"', columns = {{{columns}}})"
    )


def _keyset_table(keyset: str, sql_type: str) -> str:
    return quote(f"__ks_{keyset}_{sql_type}")


def _create_keyset_tables(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """One table per (key set, column type) pair, so that membership is a plain semi-join."""
    needed = {
        (c.keyset, SQL_TYPES[c.type]) for r in catalog.registers for c in r.physical_columns if c.keyset
    }
    for keyset, sql_type in sorted(needed):
        table = _keyset_table(keyset, sql_type)
        values = [str(v) for v in catalog.keyset(keyset).values]
        con.execute(
            f"CREATE TEMP TABLE {table} AS SELECT DISTINCT TRY_CAST(unnest(?::VARCHAR[]) AS {sql_type}) AS v",
            [values],
        )
        if _scalar(con, f"SELECT count(*) FROM {table} WHERE v IS NULL"):
            raise BuildError(
                f"The catalog's key set {keyset} has values that are not of type {sql_type}; fix the catalog."
            )


def _load_register(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    inp: _Input,
    key: bytes | None,
    reject_tmp: Path,
    reject_dir: Path,
) -> RegisterReport:
    """Check, pseudonymise and load one register file; write its rejects to ``reject_tmp``.

    Two passes over the file: the first computes every row's problems and keeps only the bad rows
    (usually few), the second converts, sorts and writes the good rows. Parquet is read straight
    from the file both times; CSV text is parsed once into memory first.
    """
    reg = inp.register
    sha256 = _sha256(inp.path)
    if inp.delimiter is not None:
        # Parsed once into memory, then read by both passes: cheaper than parsing twice.
        _run(
            con,
            f"CREATE OR REPLACE TEMP TABLE __raw AS SELECT * FROM {_reader(inp)}",
            f"read {inp.path.name}",
        )
    source = _source(inp)
    rows_read = _scalar(con, f"SELECT count(*) FROM {source}")
    joins = []
    if inp.has_cpr:
        assert key is not None
        joins.append(_add_pseudonyms(con, key, source))
    else:
        _refuse_cpr_like_person_ids(con, inp, source)
    if not inp.has_row_key:
        joins.append(_add_row_keys(con, rows_read))
    checks = _checks(inp)
    _run(con, _problems_sql(catalog, inp, checks, source, joins), f"check {inp.path.name}")
    rejected = _scalar(con, "SELECT count(*) FROM __bad")
    names = [c.name for c in reg.physical_columns]
    columns = ", ".join(quote(name) for name in names)
    definition = ", ".join(
        f"{quote(c.name)} {SQL_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}"
        for c in reg.physical_columns
    )
    good = _typed_sql(checks, names, source, joins, with_raw=False)
    if rejected:
        good += " WHERE r.__row NOT IN (SELECT __row FROM __bad)"
    con.execute(f"CREATE TABLE out.{quote(reg.name)} ({definition})")
    _run(
        con,
        f"INSERT INTO out.{quote(reg.name)} SELECT {columns} FROM ({good}) ORDER BY {quote(reg.person_key)}",
        f"write {reg.name}",
    )
    reasons: tuple[RejectReason, ...] = ()
    if rejected:
        _write_rejects(con, reject_tmp)
        reasons = _reject_reasons(con)
    for table in ("__bad", "__raw", "__keys", "__cpr_ids"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return RegisterReport(
        register=reg.name,
        file=inp.path.name,
        sha256=sha256,
        rows_read=rows_read,
        rows_loaded=rows_read - rejected,
        rows_rejected=rejected,
        pseudonymised=inp.has_cpr,
        row_key_assigned=not inp.has_row_key,
        reject_file=reject_dir / f"{reg.name}.rejects.csv" if rejected else None,
        reasons=reasons,
    )


def _source(inp: _Input) -> str:
    """The file as a relation with ``__row``, the 1-based row number (header not counted)."""
    if inp.delimiter is None:
        path = sql_literal(str(inp.path))
        return f"(SELECT *, file_row_number + 1 AS __row FROM read_parquet({path}, file_row_number = true))"
    return "(SELECT *, rowid + 1 AS __row FROM __raw)"  # insertion order is file order


@dataclass(frozen=True)
class _Check:
    """One physical column: how it is read from the file row ``r`` and why a row is rejected."""

    column: str  # the name the file uses: the column's own, or cpr for the person key
    select_raw: str  # staged as __raw_<i> for the reason; never a CPR number
    typed: str
    reason: str


def _checks(inp: _Input) -> list[_Check]:
    reg = inp.register
    checks = []
    for i, col in enumerate(reg.physical_columns):
        raw = f"__raw_{i}"
        if col.name == reg.person_key and inp.has_cpr:
            # The staged "raw" value is the CPR problem, so the number itself goes no further.
            problem = f"CASE WHEN r.{quote(CPR_COLUMN)} IS NULL THEN {sql_literal(str(_CPR_MISSING))} ELSE p.problem END"
            checks.append(_Check(CPR_COLUMN, problem, "p.person_id", raw))
        elif col.name == reg.row_key and not inp.has_row_key:
            checks.append(_Check(col.name, "k.row_key", "k.row_key", "NULL"))
        else:
            source = f"r.{quote(col.name)}"
            keyset = _keyset_table(col.keyset, SQL_TYPES[col.type]) if col.keyset else None
            check = column_check(
                col, inp.columns[col.name], keyset, source=source, raw=raw, value=quote(col.name)
            )
            checks.append(_Check(col.name, source, check.typed, check.reason))
    return checks


def _typed_sql(
    checks: list[_Check], names: list[str], source: str, joins: list[str], *, with_raw: bool
) -> str:
    """The file's rows with every physical column converted to its SQL type (NULL if it does not convert)."""
    selected = ["r.__row AS __row"]
    if with_raw:
        selected += [f"{c.select_raw} AS __raw_{i}" for i, c in enumerate(checks)]
    selected += [f"{c.typed} AS {quote(name)}" for c, name in zip(checks, names, strict=True)]
    return f"SELECT {', '.join(selected)} FROM {source} r {' '.join(joins)}"


def _problems_sql(catalog: Catalog, inp: _Input, checks: list[_Check], source: str, joins: list[str]) -> str:
    """``__bad``: the row number and the list of (column, reason) of every row with a problem."""
    reg = inp.register
    person = quote(reg.person_key)
    people = catalog.register(catalog.person_register)
    if reg.name == people.name:
        person_reason = (
            f"CASE WHEN {person} IS NOT NULL AND count(*) OVER (PARTITION BY {person}) > 1 THEN "
            f"'the person appears more than once in {reg.name}; all of their rows are rejected' END"
        )
    else:
        person_reason = (
            f"CASE WHEN {person} IS NOT NULL AND {person} NOT IN "
            f"(SELECT {quote(people.person_key)} FROM out.{quote(people.name)}) THEN "
            f"'the person is not in the loaded {people.name} register (absent there, or rejected)' END"
        )
    names = [c.name for c in reg.physical_columns]
    typed = _typed_sql(checks, names, source, joins, with_raw=True)
    reasons = [f"{c.reason} AS __r_{i}" for i, c in enumerate(checks)] + [f"{person_reason} AS __r_person"]
    person_column = checks[names.index(reg.person_key)].column
    labelled = [(c.column, f"__r_{i}") for i, c in enumerate(checks)] + [(person_column, "__r_person")]
    problems = ", ".join(f"{{'column': {sql_literal(col)}, 'reason': {r}}}" for col, r in labelled)
    return (
        f"CREATE OR REPLACE TEMP TABLE __bad AS "
        f"WITH t AS ({typed}), c AS (SELECT __row, {', '.join(reasons)} FROM t) "
        f"SELECT __row, list_filter([{problems}], lambda x: x.reason IS NOT NULL) AS problems FROM c "
        f"WHERE coalesce({', '.join(r for _, r in labelled)}) IS NOT NULL"
    )


def _add_pseudonyms(con: duckdb.DuckDBPyConnection, key: bytes, source: str) -> str:
    """Validate the file's distinct CPR texts and pseudonymise the new valid numbers.

    Returns the join that gives each row ``p.problem`` and ``p.person_id``. Validation runs once
    per distinct text rather than per row, which matters for event registers.
    """
    cpr = cpr_sql("raw")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __cpr_texts AS "
        f"SELECT raw, {cpr.problem} AS problem, CASE WHEN {cpr.problem} IS NULL THEN {cpr.normalised} END AS cpr "
        f"FROM (SELECT DISTINCT r.{quote(CPR_COLUMN)} AS raw FROM {source} r WHERE r.{quote(CPR_COLUMN)} IS NOT NULL)"
    )
    new = con.sql(
        "SELECT DISTINCT cpr FROM __cpr_texts WHERE cpr IS NOT NULL EXCEPT SELECT cpr FROM __pseudonyms"
    ).to_arrow_table()
    numbers = new.column("cpr")
    ids = pseudonymise(numbers.to_pylist(), key)
    con.register("__new_pseudonyms", pa.table({"cpr": numbers, "person_id": pa.array(ids, pa.int64())}))
    con.execute("INSERT INTO __pseudonyms SELECT cpr, person_id FROM __new_pseudonyms")
    con.unregister("__new_pseudonyms")
    collisions = _scalar(
        con,
        "SELECT count(*) FROM (SELECT person_id FROM __pseudonyms GROUP BY person_id HAVING count(*) > 1)",
    )
    if collisions:
        raise BuildError(
            f"{collisions} pseudonym(s) are shared by different CPR numbers, which would merge different "
            "people; nothing was written. Build again with a new pseudonymisation key."
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __cpr_ids AS SELECT t.raw, t.problem, s.person_id "
        "FROM __cpr_texts t LEFT JOIN __pseudonyms s USING (cpr)"
    )
    con.execute("DROP TABLE __cpr_texts")
    return f"LEFT JOIN __cpr_ids p ON p.raw = r.{quote(CPR_COLUMN)}"


def _add_row_keys(con: duckdb.DuckDBPyConnection, rows: int) -> str:
    """Unique random row keys from a cryptographically seeded generator; return their join."""
    rng = np.random.Generator(np.random.PCG64(secrets.randbits(128)))
    keys = pa.table(
        {
            "__row": pa.array(np.arange(1, rows + 1, dtype=np.int64)),
            "row_key": pa.array(rng.permutation(rows).astype(np.int64)),
        }
    )
    con.register("__new_keys", keys)
    con.execute("CREATE OR REPLACE TEMP TABLE __keys AS SELECT * FROM __new_keys")
    con.unregister("__new_keys")
    return "LEFT JOIN __keys k ON k.__row = r.__row"


def _refuse_cpr_like_person_ids(con: duckdb.DuckDBPyConnection, inp: _Input, source: str) -> None:
    """Stop raw CPR numbers in a person_id column from being loaded as if they were pseudonyms.

    Looks at the first rows only: a mislabelled column is CPR numbers throughout.
    """
    column = quote(inp.register.person_key)
    if inp.columns[inp.register.person_key] == "VARCHAR":
        text = f"trim({column}, ' ')"
    else:
        text = (
            f"CASE WHEN {column} BETWEEN 0 AND 9999999999 THEN lpad(CAST({column} AS VARCHAR), 10, '0') END"
        )
    cpr = cpr_sql("__t")
    share = _scalar(
        con,
        f"SELECT coalesce(avg(CASE WHEN {cpr.problem} IS NULL THEN 1.0 ELSE 0.0 END), 0) FROM "
        f"(SELECT {text} AS __t FROM {source} LIMIT {_CPR_SAMPLE_ROWS})",
    )
    if share > _CPR_SHARE_LIMIT:
        raise BuildError(
            f"{inp.path.name}: column {inp.register.person_key} looks like raw CPR numbers "
            f"({share:.0%} of its first rows are valid CPR numbers). If they are, rename the column to "
            f"{CPR_COLUMN} so they are pseudonymised; CPR numbers must never be loaded as person keys."
        )


def _write_rejects(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """``__bad`` as CSV: one line per problem (row_number, column, reason), in file order."""
    rows = (
        'SELECT __row AS row_number, p.column AS "column", p.reason AS reason FROM '
        "(SELECT __row, unnest(problems) AS p, generate_subscripts(problems, 1) AS i FROM __bad) "
        "ORDER BY row_number, i"
    )
    _run(con, f"COPY ({rows}) TO {sql_literal(str(path))} (FORMAT csv, HEADER true)", f"write {path}")


def _reject_reasons(con: duckdb.DuckDBPyConnection) -> tuple[RejectReason, ...]:
    """How many rows of ``__bad`` have each (column, reason), most frequent first."""
    rows = con.execute(
        "SELECT p.column, p.reason, count(*) AS n FROM (SELECT unnest(problems) AS p FROM __bad) "
        "GROUP BY ALL ORDER BY n DESC, p.column, p.reason"
    ).fetchall()
    return tuple(RejectReason(str(column), str(reason), int(n)) for column, reason, n in rows)


def _refuse_too_many_rejects(
    db: Path,
    reports: tuple[RegisterReport, ...],
    policy: RejectPolicy,
    catalog: Catalog,
    reject_tmps: dict[str, Path],
    reject_dir: Path,
) -> None:
    """Stop before the database is replaced when more rows were rejected than ``policy`` allows.

    The reject files are put in place first, so that the summary's file names can be opened.
    """
    over = policy.exceeded(reports, catalog.person_register)
    if not over:
        return
    summary = reject_summary(reports, policy, catalog.person_register)
    kept = f"the previous database {db} is untouched" if db.exists() else f"{db} was not written"
    try:
        _place_rejects(reject_tmps, reject_dir, catalog)
    except OSError as exc:
        raise BuildError(
            f"Cannot write {exc.filename} ({exc.strerror}); check the disk and permissions."
        ) from None
    raise RejectsAboveLimit(
        f"{summary}\n\nThe build stopped: {', '.join(over)} lost more rows than allowed, and nothing was "
        f"loaded: {kept}. Read the reject files, fix the files or the "
        "catalog (key sets, bounds) and build again; or pass --max-reject-rate RATE to allow a larger "
        "share, or --allow-rejects to load the remaining rows knowingly."
    )


def _write_metadata(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    catalog_source: str,
    directory: Path,
    reports: tuple[RegisterReport, ...],
) -> None:
    """The catalog (so the database describes itself) and what this build read and loaded."""
    text = catalog.dumps()
    con.execute(f"CREATE TABLE out.{CATALOG_TABLE} (catalog VARCHAR NOT NULL)")
    con.execute(f"INSERT INTO out.{CATALOG_TABLE} VALUES (?)", [text])
    con.execute(
        f"CREATE TABLE out.{BUILD_TABLE} (register VARCHAR NOT NULL, file VARCHAR NOT NULL, "
        "file_sha256 VARCHAR NOT NULL, rows_read BIGINT NOT NULL, rows_loaded BIGINT NOT NULL, "
        "rows_rejected BIGINT NOT NULL, pseudonymised BOOLEAN NOT NULL, row_key_assigned BOOLEAN NOT NULL, "
        "source VARCHAR NOT NULL, catalog_source VARCHAR NOT NULL, catalog_sha256 VARCHAR NOT NULL, "
        "built_at TIMESTAMP NOT NULL, sundstat_version VARCHAR NOT NULL, duckdb_version VARCHAR NOT NULL)"
    )
    built_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    catalog_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    for r in reports:
        con.execute(
            f"INSERT INTO out.{BUILD_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r.register,
                r.file,
                r.sha256,
                r.rows_read,
                r.rows_loaded,
                r.rows_rejected,
                r.pseudonymised,
                r.row_key_assigned,
                directory.resolve().name,
                catalog_source,
                catalog_sha,
                built_at,
                _version(),
                duckdb.__version__,
            ],
        )


# --- committing ---------------------------------------------------------------------------------


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


# --- helpers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _engine_errors() -> Iterator[None]:
    """Turn an unexpected DuckDB error into a BuildError with a scrubbed message."""
    try:
        yield
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except duckdb.Error as exc:
        raise BuildError(f"The database engine failed: {_scrub(exc)}") from None


def _run(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> None:
    """Execute ``sql``; a DuckDB failure becomes a BuildError whose message holds no data values."""
    try:
        con.execute(sql)
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except duckdb.Error as exc:
        raise BuildError(f"Could not {what}: {_scrub(exc)}") from None


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
