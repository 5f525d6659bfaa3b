"""Loading one register into the output database, set-based in DuckDB SQL (``datasets.build``'s
``_load_register``): pseudonymisation of CPR numbers, per-row checks, rejects, typed good rows
sorted by person_id, and the catalog and build tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from datasets.build_commit import _place_rejects
from datasets.build_inputs import CPR_COLUMN, _Input
from datasets.build_report import RegisterReport
from datasets.build_support import BuildError, RejectsAboveLimit, _run, _scalar, _sha256, _version
from datasets.ingest_checks import column_check, quote, sql_literal
from datasets.pseudonymise import cpr_problem, cpr_sql, pseudonymise
from datasets.reject_policy import RejectPolicy, RejectReason, reject_summary
from query_engine.catalog import CATALOG_TABLE, ROW_RANK_COLUMN, SQL_TYPES, Catalog

BUILD_TABLE = "sundstat_build"
_CPR_SHARE_LIMIT = 0.01  # above this share of CPR-shaped person_id values, the column is refused
_CPR_SAMPLE_ROWS = 10_000
_CPR_MISSING = cpr_problem(None)


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
    person, row_key = quote(reg.person_key), quote(reg.row_key)
    if reg.grain != "person":
        # Each row's rank among its person's rows by the random row_key: depends on that person's rows only.
        definition += f", {quote(ROW_RANK_COLUMN)} BIGINT NOT NULL"
        columns += f", ROW_NUMBER() OVER (PARTITION BY {person} ORDER BY {row_key})"
    con.execute(f"CREATE TABLE out.{quote(reg.name)} ({definition})")
    _run(
        con,
        f"INSERT INTO out.{quote(reg.name)} SELECT {columns} FROM ({good}) ORDER BY {person}, {row_key}",
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
