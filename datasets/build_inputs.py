"""The build's steps before anything is written: the catalog to build against, the register files,
the output path, the files' columns and types (one error lists every problem) and the CPR key.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb

from datasets.build_support import BuildError, _problem_list, _safe_name, _scrub
from datasets.ingest_checks import SourceTypeError, column_check, sql_literal
from datasets.packaged_catalog import load_packaged_catalog
from datasets.pseudonymise import PseudonymKeyError, load_key
from query_engine.catalog import Catalog, Register, load_catalog

CPR_COLUMN = "cpr"
_FORMATS = ("parquet", "csv")
_CSV_DELIMITERS = (",", ";", "\t", "|")


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
