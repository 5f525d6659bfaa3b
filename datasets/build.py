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
      ├─ _write_preaggregates  per-person counts by a common group key (lpr by ICD-10 chapter),
      │                        with a manifest of their definition and source digest
      └─ _commit             catalog and build tables, CHECKPOINT, fsync, os.replace

The steps live in their own modules: ``build_inputs`` (everything before anything is written),
``build_load`` (``_load_register`` and the rejects), ``build_commit`` (``_commit``); ``build_report``
holds the report and ``build_support`` the errors and SQL helpers every step shares.

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
import secrets
import shutil
import time
from pathlib import Path

import duckdb

from datasets.build_commit import _commit
from datasets.build_inputs import _check_output_path, _find_inputs, _inspect, _key, _resolve_catalog
from datasets.build_load import (
    BUILD_TABLE,
    _create_keyset_tables,
    _load_register,
    _refuse_too_many_rejects,
    _write_metadata,
)
from datasets.build_preaggregate import _write_preaggregates
from datasets.build_report import BuildReport, RegisterReport
from datasets.build_support import BuildError, RejectsAboveLimit, _engine_errors, _run
from datasets.ingest_checks import sql_literal
from datasets.reject_policy import RejectPolicy
from query_engine.catalog import CATALOG_TABLE, Catalog, CatalogError

# DuckDB's memory for the build; what exceeds it spills to disk (the 6M national build peaks near it).
DEFAULT_BUILD_MEMORY_LIMIT = "4GB"

__all__ = [
    "BUILD_TABLE",
    "DEFAULT_BUILD_MEMORY_LIMIT",
    "BuildError",
    "BuildReport",
    "RegisterReport",
    "RejectsAboveLimit",
    "build",
    "open_catalog_from_db",
]


def build(
    directory: Path,
    db: Path,
    catalog_dir: Path | None = None,
    pseudonym_key_file: Path | None = None,
    reject_dir: Path | None = None,
    policy: RejectPolicy | None = None,
    memory_limit: str = DEFAULT_BUILD_MEMORY_LIMIT,
) -> BuildReport:
    """Validate, pseudonymise and load the register files in ``directory`` into the DuckDB file ``db``.

    ``db`` is replaced atomically; on any failure the previous database is left as it was and no
    temporary or partial file remains. Bad rows are not loaded but listed in
    ``<reject_dir>/<register>.rejects.csv`` (default ``reject_dir``: the database's directory).
    When more rows are rejected than ``policy`` allows (default: no person, 0.1% of any other
    register), ``RejectsAboveLimit`` is raised after the reject files are written, and ``db`` is
    left as it was. ``memory_limit`` caps DuckDB's memory (e.g. ``"4GB"``); sorts and joins beyond it
    spill to a temporary directory next to ``db``, so national volumes build on a small machine.
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
    try:
        con = duckdb.connect(":memory:", config={"temp_directory": str(spill), "memory_limit": memory_limit})
    except duckdb.Error:
        raise BuildError(
            f"The memory limit {memory_limit!r} is not a size DuckDB understands; give a number and a unit "
            "such as 4GB or 500MB."
        ) from None
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
            _write_preaggregates(con, catalog)
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
