"""`sundstat build`: validation, pseudonymisation and atomic loading (datasets/build.py).

The fixtures are written here: a copy of the packaged catalog with a few classification rows, and
small register files (Parquet or CSV, with pseudonymous person_id or raw CPR numbers).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import datasets.build as build_module
import datasets.build_commit as build_commit_module
import datasets.build_load as build_load_module
from datasets.build import BUILD_TABLE, BuildError, build, open_catalog_from_db
from datasets.packaged_catalog import packaged_catalog_dir
from datasets.pseudonymise import KEY_ENV_VAR, pseudonym
from datasets.reject_policy import RejectPolicy
from query_engine.catalog import (
    CATALOG_TABLE,
    ROW_RANK_COLUMN,
    SQL_TYPES,
    Catalog,
    CatalogError,
    load_catalog,
)

KEY_HEX = "6c9673f3b5a1c35d4d5f4f772d71cf880ec4e30aad8fbb385802cd1e8b2ef4ed"  # 32 random bytes (made once with secrets.token_hex)
OTHER_KEY_HEX = "769cc4f3a31d8128651d66642bffc27bc13490059db8cc032f65a1032a549f1c"
KEY = bytes.fromhex(KEY_HEX)
ALLOW = RejectPolicy(allow_rejects=True)  # tests of what is rejected, not of the reject limit

_CLASSIFICATIONS: dict[str, list[tuple[str, ...]]] = {  # name -> header and rows
    "regions.csv": [
        ("code", "name", "name_en"),
        ("1084", "Hovedstaden", "Capital Region"),
        ("1085", "Sjælland", "Region Zealand"),
        ("1083", "Syddanmark", "Southern Denmark"),
    ],
    "municipalities.csv": [
        ("code", "name"),
        ("101", "København"),
        ("147", "Frederiksberg"),
        ("461", "Odense"),
    ],
    "icd10.csv": [
        ("code", "title_en"),
        ("E10", "Type 1 diabetes"),
        ("E11", "Type 2 diabetes"),
        ("I21", "AMI"),
    ],
    "icd10_chapters.csv": [
        ("chapter", "first", "last", "title_en"),
        ("IV", "E00", "E90", "Endocrine"),
        ("IX", "I00", "I99", "Circulatory"),
    ],
    "atc.csv": [
        ("code", "level", "name_en"),
        ("A", "1", "Alimentary"),
        ("A10", "2", "Diabetes drugs"),
        ("A10B", "3", "Blood glucose lowering"),
        ("A10BA", "4", "Biguanides"),
        ("A10BA02", "5", "Metformin"),
    ],
    "isced.csv": [("level", "name_en"), *((str(i), f"Level {i}") for i in range(9))],
}


@pytest.fixture(scope="session")
def yaml_catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged register definitions (YAML) with a handful of classification rows."""
    base = tmp_path_factory.mktemp("catalog")
    shutil.copytree(packaged_catalog_dir(), base / "catalog", ignore=shutil.ignore_patterns("*.csv"))
    (base / "classifications").mkdir()
    for name, rows in _CLASSIFICATIONS.items():
        with (base / "classifications" / name).open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)
    return base / "catalog"


@pytest.fixture(scope="session")
def catalog(yaml_catalog_dir: Path) -> Catalog:
    return load_catalog(yaml_catalog_dir)


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Path:
    """The same catalog resolved to catalog.json, which loads faster than the YAML files."""
    base = tmp_path_factory.mktemp("resolved")
    (base / "catalog.json").write_text(catalog.dumps(), encoding="utf-8")
    return base


# --- register files -----------------------------------------------------------------------------

PERSONS = 30


def _person_tables(persons: int = PERSONS) -> dict[str, dict[str, list[Any]]]:
    """Valid small registers, as columns, keyed by pseudonymous person_id 1..persons."""
    ids = list(range(1, persons + 1))
    d = dt.date.fromisoformat
    tables: dict[str, dict[str, list[Any]]] = {
        "cpr": {
            "person_id": ids,
            "row_key": [1000 + i for i in ids],
            "sex": ["F" if i % 2 else "M" for i in ids],
            "birth_date": [d("1950-01-01") + dt.timedelta(days=400 * i) for i in ids],
            "region": [("Hovedstaden", "Sjælland", "Syddanmark")[i % 3] for i in ids],
            "municipality": [("101", "147", "461")[i % 3] for i in ids],
            "death_date": [d("2020-06-01") if i % 10 == 0 else None for i in ids],
        }
    }
    events = [(i, k) for i in ids for k in range(i % 3 + 1)]
    n = len(events)
    tables["lpr"] = {
        "person_id": [i for i, _ in events],
        "row_key": list(range(5000, 5000 + n)),
        "contact_id": list(range(1, n + 1)),
        "admission_date": [d("2015-01-01") + dt.timedelta(days=37 * j) for j in range(n)],
        "discharge_date": [d("2015-01-03") + dt.timedelta(days=37 * j) for j in range(n)],
        "los_days": [2 if j % 4 else None for j in range(n)],
        "icd10": [("E10", "E11", "I21")[j % 3] for j in range(n)],
        "diagnosis_code": [("DE109", "DE119", "DI219")[j % 3] for j in range(n)],
        "contact_type": [("inpatient", "outpatient", "emergency")[j % 3] for j in range(n)],
        "hospital_region": [("Hovedstaden", "Syddanmark")[j % 2] for j in range(n)],
    }
    tables["lmdb"] = {
        "person_id": [i for i, _ in events],
        "row_key": list(range(9000, 9000 + n)),
        "date": [d("2016-02-01") + dt.timedelta(days=11 * j) for j in range(n)],
        "atc": ["A10BA02"] * n,
        "ddd": [30.0 if j % 5 else None for j in range(n)],
        "packages": [1 + j % 3 for j in range(n)],
    }
    dead = [i for i in ids if i % 10 == 0]
    tables["dar"] = {
        "person_id": dead,
        "row_key": [7000 + i for i in dead],
        "death_date": [d("2020-06-01")] * len(dead),
        "cause_icd10": ["I21"] * len(dead),
    }
    years = [(i, y) for i in ids for y in (2019, 2020)]
    tables["ind"] = {
        "person_id": [i for i, _ in years],
        "row_key": list(range(20000, 20000 + len(years))),
        "year": [y for _, y in years],
        "disposable_income": [100000 + 1000 * i for i, _ in years],
    }
    tables["udda"] = {
        "person_id": [i for i, _ in years],
        "row_key": list(range(30000, 30000 + len(years))),
        "year": [y for _, y in years],
        "isced_level": [i % 9 for i, _ in years],
    }
    return tables


def cpr_number(person: int) -> str:
    """A valid CPR number for test person ``person`` (born 1 Jan 19xx, serials vary)."""
    return f"01{1 + person % 12:02d}{50 + person % 40:02d}{1000 + person:04d}"


def _with_cpr(tables: dict[str, dict[str, list[Any]]], dash: bool) -> dict[str, dict[str, list[Any]]]:
    """The same registers as a real extract: raw CPR numbers instead of person_id, no row_key."""
    out = {}
    for name, cols in tables.items():
        numbers = [cpr_number(p) for p in cols["person_id"]]
        if dash:
            numbers = [f"{c[:6]}-{c[6:]}" for c in numbers]
        rest = {k: v for k, v in cols.items() if k not in ("person_id", "row_key")}
        out[name] = {"cpr": numbers, **rest}
    return out


def write_registers(directory: Path, tables: dict[str, dict[str, list[Any]]], fmt: str = "parquet") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, cols in tables.items():
        table = pa.table(cols)
        if fmt == "parquet":
            pq.write_table(table, directory / f"{name}.parquet")
        else:
            pacsv.write_csv(table, directory / f"{name}.csv")
    return directory


def write_csv_text(directory: Path, name: str, header: str, rows: list[str]) -> None:
    (directory / f"{name}.parquet").unlink(missing_ok=True)
    (directory / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def table_rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    """The register's own columns (not the build's row rank)."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"SELECT COLUMNS(lambda c: c <> '{ROW_RANK_COLUMN}') FROM {table}").fetchall()


def rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return write_registers(tmp_path / "raw", _person_tables())


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


def _leftovers(*dirs: Path) -> list[str]:
    return sorted(p.name for d in dirs if d.exists() for p in d.iterdir() if ".tmp-" in p.name)


# --- happy paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [pytest.param("parquet", id="parquet"), pytest.param("csv", id="csv")])
def test_build_loads_every_register_with_the_catalog_layout(
    tmp_path: Path, out: Path, yaml_catalog_dir: Path, catalog: Catalog, fmt: str
) -> None:
    tables = _person_tables()
    raw = write_registers(tmp_path / "raw", tables, fmt)
    db = out / "sundstat.duckdb"
    report = build(raw, db, catalog_dir=yaml_catalog_dir)
    assert report.rows_rejected == 0
    with duckdb.connect(str(db), read_only=True) as con:
        for reg in catalog.registers:
            described = con.execute(f"DESCRIBE {reg.name}").fetchall()
            ranked = [(ROW_RANK_COLUMN, "BIGINT")] if reg.grain != "person" else []
            assert [(r[0], r[1]) for r in described] == [
                (c.name, SQL_TYPES[c.type]) for c in reg.physical_columns
            ] + ranked
            rows = con.execute(f"SELECT person_id FROM {reg.name}").fetchall()
            assert len(rows) == len(tables[reg.name]["person_id"]) == report.register(reg.name).rows_loaded
            assert [r[0] for r in rows] == sorted(r[0] for r in rows)
        assert con.execute(f"SELECT catalog FROM {CATALOG_TABLE}").fetchall() == [(catalog.dumps(),)]
        build_rows = con.execute(f"SELECT register, file, rows_loaded, source FROM {BUILD_TABLE}").fetchall()
    assert {r[0] for r in build_rows} == set(catalog.register_names)
    assert {r[1] for r in build_rows} == {f"{name}.{fmt}" for name in catalog.register_names}
    assert {r[3] for r in build_rows} == {"raw"}
    assert open_catalog_from_db(db) == catalog
    assert sorted(p.name for p in out.iterdir()) == ["sundstat.duckdb"]
    assert "No rows were rejected" in report.describe() and "cpr" in report.describe()


def test_csv_and_parquet_give_the_same_tables(tmp_path: Path, catalog_dir: Path, catalog: Catalog) -> None:
    tables = _person_tables()
    dbs = []
    for fmt in ("parquet", "csv"):
        db = tmp_path / f"{fmt}.duckdb"
        build(write_registers(tmp_path / fmt, tables, fmt), db, catalog_dir=catalog_dir)
        dbs.append(db)
    for name in catalog.register_names:
        assert table_rows(dbs[0], name) == table_rows(dbs[1], name), name


def test_catalog_json_in_the_directory_is_used(raw: Path, out: Path, catalog: Catalog) -> None:
    (raw / "catalog.json").write_text(catalog.dumps(), encoding="utf-8")
    report = build(raw, out / "db.duckdb")
    assert report.catalog_source.endswith("catalog.json")
    assert open_catalog_from_db(out / "db.duckdb").dumps() == catalog.dumps()


def test_rebuild_replaces_the_database_and_drops_stale_reject_files(
    raw: Path, out: Path, catalog_dir: Path
) -> None:
    db = out / "db.duckdb"
    build(raw, db, catalog_dir=catalog_dir)
    (out / "lpr.rejects.csv").write_text("row_number,column,reason\n1,icd10,old\n")
    report = build(raw, db, catalog_dir=catalog_dir)
    assert report.rows_rejected == 0
    assert not (out / "lpr.rejects.csv").exists()
    assert _leftovers(out) == []


# --- real files with CPR numbers ----------------------------------------------------------------


@pytest.mark.parametrize("dash", [pytest.param(True, id="with_dash"), pytest.param(False, id="without_dash")])
def test_cpr_numbers_are_pseudonymised_and_linked(
    tmp_path: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, dash: bool
) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, KEY_HEX)
    tables = _person_tables()
    raw = write_registers(tmp_path / "raw", _with_cpr(tables, dash), "csv")
    db = out / "db.duckdb"
    report = build(raw, db, catalog_dir=catalog_dir)
    assert report.rows_rejected == 0
    assert all(r.pseudonymised and r.row_key_assigned for r in report.registers)
    expected = {pseudonym(cpr_number(p), KEY) for p in tables["cpr"]["person_id"]}
    with duckdb.connect(str(db), read_only=True) as con:
        assert {r[0] for r in con.execute("SELECT person_id FROM cpr").fetchall()} == expected
        linked = con.execute("SELECT count(*) FROM lpr JOIN cpr USING (person_id)").fetchone()
        assert linked == (len(tables["lpr"]["person_id"]),)
        for name in ("cpr", "lpr", "ind"):
            keys = con.execute(f"SELECT count(DISTINCT row_key), count(*) FROM {name}").fetchone()
            assert keys is not None and keys[0] == keys[1]
    _assert_no_cpr_or_key(tables, db)
    assert b"DI219" in db.read_bytes(), "the byte search must be able to see stored text"


def _assert_no_cpr_or_key(tables: dict[str, dict[str, list[Any]]], *files: Path) -> None:
    content = b"".join(f.read_bytes() for f in files)
    for person in tables["cpr"]["person_id"]:
        number = cpr_number(person)
        for form in (number, f"{number[:6]}-{number[6:]}"):
            assert form.encode() not in content, "a CPR number reached an output file"
    assert KEY not in content and KEY_HEX.encode() not in content


def test_pseudonyms_are_stable_per_key_and_change_with_the_key(
    tmp_path: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = write_registers(tmp_path / "raw", _with_cpr(_person_tables(), dash=True), "csv")
    ids = []
    for i, key in enumerate((KEY_HEX, KEY_HEX, OTHER_KEY_HEX)):
        monkeypatch.setenv(KEY_ENV_VAR, key)
        db = tmp_path / f"db{i}.duckdb"
        build(raw, db, catalog_dir=catalog_dir)
        ids.append(sorted(r[0] for r in table_rows(db, "cpr")))
    assert ids[0] == ids[1]
    assert set(ids[0]).isdisjoint(ids[2])


def test_key_file_is_used_when_given(
    tmp_path: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    key_file = tmp_path / "key.txt"
    key = bytes.fromhex(OTHER_KEY_HEX)
    key_file.write_text(base64.b64encode(key).decode() + "\n")  # base64 works as well as hex
    raw = write_registers(tmp_path / "raw", _with_cpr(_person_tables(), dash=False), "csv")
    build(raw, out / "db.duckdb", catalog_dir=catalog_dir, pseudonym_key_file=key_file)
    assert min(r[0] for r in table_rows(out / "db.duckdb", "cpr")) in {
        pseudonym(cpr_number(p), key) for p in range(1, PERSONS + 1)
    }


def test_invalid_cpr_numbers_are_rejected_without_their_digits(
    tmp_path: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, KEY_HEX)
    raw = write_registers(tmp_path / "raw", _with_cpr(_person_tables(), dash=True), "csv")
    header = "cpr,contact_id,admission_date,discharge_date,los_days,icd10,diagnosis_code,contact_type,hospital_region"
    good = f"{cpr_number(1)},1,2015-01-01,2015-01-02,1,E11,DE119,inpatient,Hovedstaden"
    bad = {
        "310290-1234": "real date",
        "010190-123": "9 digits",
        "01019A-1234": "characters other than digits",
        "": "missing",
        "0101909999": "not in the loaded cpr register",  # valid, but not a person in cpr
    }
    rows = [good] + [good.replace(cpr_number(1), number, 1) for number in bad]
    write_csv_text(raw, "lpr", header, rows)
    report = build(raw, out / "db.duckdb", catalog_dir=catalog_dir, policy=ALLOW)
    assert report.register("lpr").rows_loaded == 1
    assert report.register("lpr").rows_rejected == len(bad)
    found = rejects(out / "lpr.rejects.csv")
    assert [r["row_number"] for r in found] == [str(i) for i in range(2, 2 + len(bad))]
    assert all(r["column"] == "cpr" for r in found)
    for row, reason in zip(found, bad.values(), strict=True):
        assert reason in row["reason"]
    text = (out / "lpr.rejects.csv").read_text()
    assert not any(number and number in text for number in bad)
    _assert_no_cpr_or_key(_person_tables(), out / "db.duckdb", out / "lpr.rejects.csv")


def test_duplicate_cpr_number_rejects_every_row_of_that_person(
    tmp_path: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, KEY_HEX)
    tables = _with_cpr(_person_tables(), dash=False)
    tables["cpr"] = {k: v + v[:1] for k, v in tables["cpr"].items()}
    tables["cpr"]["cpr"][-1] = (
        tables["cpr"]["cpr"][0][:6] + "-" + tables["cpr"]["cpr"][0][6:]
    )  # same number, dashed
    raw = write_registers(tmp_path / "raw", tables, "csv")
    report = build(raw, out / "db.duckdb", catalog_dir=catalog_dir, policy=ALLOW)
    assert report.register("cpr").rows_rejected == 2
    reasons = {(r["row_number"], r["reason"]) for r in rejects(out / "cpr.rejects.csv")}
    assert {n for n, _ in reasons} == {"1", str(PERSONS + 1)}
    assert all("more than once" in reason for _, reason in reasons)
    assert report.register("lpr").rows_rejected == len(
        [p for p in _person_tables()["lpr"]["person_id"] if p == 1]
    )


def test_missing_key_is_refused_with_what_to_set(
    tmp_path: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    raw = write_registers(tmp_path / "raw", _with_cpr(_person_tables(), dash=True), "csv")
    with pytest.raises(
        BuildError, match=f"no pseudonymisation key is set.*{KEY_ENV_VAR}.*--pseudonym-key-file"
    ):
        build(raw, out / "db.duckdb", catalog_dir=catalog_dir)
    assert list(out.iterdir()) == []


def test_short_key_is_refused_without_echoing_it(
    tmp_path: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, "passwordpassword")
    raw = write_registers(tmp_path / "raw", _with_cpr(_person_tables(), dash=True), "csv")
    with pytest.raises(BuildError, match="shorter than the 32 random bytes.*secrets.token_hex") as info:
        build(raw, out / "db.duckdb", catalog_dir=catalog_dir)
    assert "passwordpassword" not in str(info.value)
    assert list(out.iterdir()) == []


def test_pseudonym_collision_stops_the_build(
    tmp_path: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    monkeypatch.setenv(KEY_ENV_VAR, KEY_HEX)
    monkeypatch.setattr(
        build_load_module, "pseudonymise", lambda cprs, key: np.zeros(len(list(cprs)), dtype=np.int64)
    )
    raw = write_registers(tmp_path / "raw", _with_cpr(_person_tables(), dash=True), "csv")
    with pytest.raises(BuildError, match="shared by different CPR numbers"):
        build(raw, out / "db.duckdb", catalog_dir=catalog_dir)
    assert list(out.iterdir()) == []


def test_cpr_numbers_in_a_person_id_column_are_refused(tmp_path: Path, out: Path, catalog_dir: Path) -> None:
    tables = _person_tables()
    tables["lpr"]["person_id"] = [cpr_number(p) for p in tables["lpr"]["person_id"]]
    raw = write_registers(tmp_path / "raw", tables, "csv")
    with pytest.raises(BuildError, match="looks like raw CPR numbers.*rename the column to cpr") as info:
        build(raw, out / "db.duckdb", catalog_dir=catalog_dir)
    assert cpr_number(1) not in str(info.value)
    assert list(out.iterdir()) == []


# --- rejected rows ------------------------------------------------------------------------------

LPR_HEADER = "person_id,row_key,contact_id,admission_date,discharge_date,los_days,icd10,diagnosis_code,contact_type,hospital_region"
LPR_GOOD = "1,1,1,2015-01-01,2015-01-02,1,E11,DE119,inpatient,Hovedstaden"


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        pytest.param(
            "1,2,2,2015-02-30,2015-03-01,1,E11,DE119,inpatient,Hovedstaden",
            "admission_date",
            "not a real calendar date",
            id="impossible_date",
        ),
        pytest.param(
            "1,2,2,01/02/2015,2015-03-01,1,E11,DE119,inpatient,Hovedstaden",
            "admission_date",
            "YYYY-MM-DD",
            id="date_format",
        ),
        pytest.param(
            "1,2,2,2009-12-31,2015-03-01,1,E11,DE119,inpatient,Hovedstaden",
            "admission_date",
            "before the declared lower bound 2010-01-01",
            id="date_below_bounds",
        ),
        pytest.param(
            "1,2,2,2015-01-01,2015-03-01,1,X99,DE119,inpatient,Hovedstaden",
            "icd10",
            "not in the public key set icd10",
            id="code_outside_key_set",
        ),
        pytest.param(
            "1,2,2,2015-01-01,2015-03-01,400,E11,DE119,inpatient,Hovedstaden",
            "los_days",
            "above the declared upper bound 365",
            id="number_above_bounds",
        ),
        pytest.param(
            "1,2,2,2015-01-01,2015-03-01,1.5,E11,DE119,inpatient,Hovedstaden",
            "los_days",
            "not a whole number",
            id="not_a_whole_number",
        ),
        pytest.param(
            "1,2,2,2015-01-01,2015-03-01,abc,E11,DE119,inpatient,Hovedstaden",
            "los_days",
            "not a whole number",
            id="not_a_number",
        ),
        pytest.param(
            "1,2,2,2015-01-01,2015-03-01,1,E11,DE119,,Hovedstaden",
            "contact_type",
            "missing, but the column is not nullable",
            id="null_in_non_nullable",
        ),
        pytest.param(
            "999,2,2,2015-01-01,2015-03-01,1,E11,DE119,inpatient,Hovedstaden",
            "person_id",
            "not in the loaded cpr register",
            id="unknown_person",
        ),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(
    raw: Path, out: Path, catalog_dir: Path, row: str, column: str, reason: str
) -> None:
    write_csv_text(raw, "lpr", LPR_HEADER, [LPR_GOOD, row])
    report = build(raw, out / "db.duckdb", catalog_dir=catalog_dir, policy=ALLOW)
    assert (report.register("lpr").rows_loaded, report.register("lpr").rows_rejected) == (1, 1)
    [found] = rejects(out / "lpr.rejects.csv")
    assert (found["row_number"], found["column"]) == ("2", column)
    assert reason in found["reason"]
    assert "lpr.rejects.csv" in report.describe()
    assert table_rows(out / "db.duckdb", "lpr")[0][0] == 1


def test_every_problem_of_a_row_is_listed_in_the_reject_dir(
    raw: Path, out: Path, tmp_path: Path, catalog_dir: Path
) -> None:
    write_csv_text(raw, "lpr", LPR_HEADER, ["999,2,2,2015-02-30,2015-03-01,-1,X99,DE119,inpatient,Nowhere"])
    report = build(
        raw, out / "db.duckdb", catalog_dir=catalog_dir, reject_dir=tmp_path / "rejects", policy=ALLOW
    )
    assert report.register("lpr").rows_rejected == 1
    assert report.register("lpr").reject_file == tmp_path / "rejects" / "lpr.rejects.csv"
    columns = [r["column"] for r in rejects(tmp_path / "rejects" / "lpr.rejects.csv")]
    assert columns == ["admission_date", "los_days", "icd10", "hospital_region", "person_id"]
    assert sorted(p.name for p in out.iterdir()) == ["db.duckdb"]


def test_rows_of_rejected_persons_are_rejected_in_other_registers(
    raw: Path, out: Path, catalog_dir: Path
) -> None:
    tables = _person_tables()
    tables["cpr"]["sex"][0] = "X"  # person 1
    write_registers(raw, {"cpr": tables["cpr"]})
    report = build(raw, out / "db.duckdb", catalog_dir=catalog_dir, policy=ALLOW)
    assert report.register("cpr").rows_rejected == 1
    assert report.register("ind").rows_rejected == 2  # person 1's two years
    assert {r["reason"] for r in rejects(out / "ind.rejects.csv")} == {
        "the person is not in the loaded cpr register (absent there, or rejected)"
    }


def test_whole_number_floats_in_parquet_are_accepted_and_fractions_rejected(
    raw: Path, out: Path, catalog_dir: Path
) -> None:
    tables = _person_tables()
    ind = tables["ind"]
    ind["disposable_income"] = [float(v) for v in ind["disposable_income"]]
    ind["disposable_income"][0] = 1.5
    write_registers(raw, {"ind": ind})
    report = build(raw, out / "db.duckdb", catalog_dir=catalog_dir, policy=ALLOW)
    assert report.register("ind").rows_rejected == 1
    assert rejects(out / "ind.rejects.csv") == [
        {"row_number": "1", "column": "disposable_income", "reason": "not a whole number"}
    ]


@pytest.mark.parametrize(
    ("text", "loaded"),
    [
        pytest.param("2", True, id="integer"),
        pytest.param(" 2 ", True, id="spaces"),
        pytest.param("2.0", True, id="whole_decimal"),
        pytest.param("2.5", False, id="fraction"),
        pytest.param("2,5", False, id="decimal_comma"),
        pytest.param("0x10", False, id="hex"),
    ],
)
def test_whole_numbers_in_text(raw: Path, out: Path, catalog_dir: Path, text: str, loaded: bool) -> None:
    write_csv_text(raw, "udda", "person_id;year;isced_level", [f"1;2020;{text}"])
    report = build(raw, out / "db.duckdb", catalog_dir=catalog_dir, policy=ALLOW)
    assert report.register("udda").rows_loaded == int(loaded)
    if loaded:
        assert [r[2:] for r in table_rows(out / "db.duckdb", "udda")] == [(2020, 2)]


def test_a_header_only_csv_loads_an_empty_table(raw: Path, out: Path, catalog_dir: Path) -> None:
    write_csv_text(raw, "dar", "person_id,row_key,death_date,cause_icd10", [])
    report = build(raw, out / "db.duckdb", catalog_dir=catalog_dir)
    assert (report.register("dar").rows_read, report.register("dar").rows_loaded) == (0, 0)
    assert table_rows(out / "db.duckdb", "dar") == []


# --- refused inputs: nothing is written ---------------------------------------------------------


def _drop_column(raw: Path, register: str, column: str, add: tuple[str, Any] | None = None) -> None:
    """Remove ``column`` from a Parquet file; optionally add a column holding one value throughout."""
    table = pq.read_table(raw / f"{register}.parquet").drop_columns([column])
    if add is not None:
        table = table.append_column(add[0], pa.array([add[1]] * table.num_rows))
    pq.write_table(table, raw / f"{register}.parquet")


def _add_column(raw: Path, register: str, column: str, values: Callable[[int], list[Any]]) -> None:
    table = pq.read_table(raw / f"{register}.parquet")
    pq.write_table(table.append_column(column, pa.array(values(table.num_rows))), raw / f"{register}.parquet")


def _with_integer_cpr(raw: Path) -> None:
    table = pq.read_table(raw / "dar.parquet").drop_columns(["person_id", "row_key"])
    numbers = pa.array([int(cpr_number(p)) for p in range(table.num_rows)], pa.int64())
    pq.write_table(table.append_column("cpr", numbers), raw / "dar.parquet")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(
            lambda raw: (raw / "cpr.parquet").unlink(),
            "the person register cpr has no file: expected cpr.parquet or cpr.csv",
            id="missing_person_register",
        ),
        pytest.param(
            lambda raw: (raw / "dar.csv").write_text("x\n"),
            "register dar has both dar.parquet and dar.csv",
            id="both_formats",
        ),
        pytest.param(
            lambda raw: _drop_column(raw, "lpr", "icd10"),
            "lpr.parquet is missing column(s) icd10; expected columns: person_id (or cpr",
            id="missing_column",
        ),
        pytest.param(
            lambda raw: _add_column(raw, "lmdb", "colour", lambda n: ["red"] * n),
            "lmdb.parquet has unknown column(s) colour",
            id="unknown_column",
        ),
        pytest.param(
            lambda raw: _add_column(raw, "lmdb", "year", lambda n: [2020] * n),
            "year (derived by the engine, drop it)",
            id="derived_column",
        ),
        pytest.param(
            lambda raw: _drop_column(raw, "dar", "cause_icd10", add=("person_id_x", 1)),
            "dar.parquet is missing column(s) cause_icd10 and has unknown column(s) person_id_x",
            id="missing_and_unknown",
        ),
        pytest.param(
            lambda raw: _drop_column(raw, "cpr", "birth_date", add=("birth_date", [1])),
            "column birth_date is stored as BIGINT[]; expected DATE",
            id="unusable_column_type",
        ),
        pytest.param(
            lambda raw: _with_integer_cpr(raw),
            "column cpr is stored as BIGINT; store CPR numbers as text so leading zeros survive",
            id="cpr_as_integer",
        ),
    ],
)
def test_bad_files_are_refused_before_anything_is_written(
    raw: Path, out: Path, catalog_dir: Path, damage: Callable[[Path], None], message: str
) -> None:
    damage(raw)
    with pytest.raises(BuildError) as info:
        build(raw, out / "db.duckdb", catalog_dir=catalog_dir)
    assert message in str(info.value)
    assert "Fix these and build again" in str(info.value)
    assert list(out.iterdir()) == []


def test_a_csv_without_header_is_refused_without_repeating_its_data(
    raw: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, KEY_HEX)
    write_csv_text(raw, "dar", "0101901234,2020-06-01,I21", ["0202901234,2020-06-01,I21"])
    with pytest.raises(BuildError, match="does the file lack its header row") as info:
        build(raw, out / "db.duckdb", catalog_dir=catalog_dir)
    assert "0101901234" not in str(info.value)


def test_malformed_csv_is_refused_naming_the_line_not_its_content(
    raw: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, KEY_HEX)
    rows = [f"{cpr_number(i)},2020-06-01,I21" for i in range(1, 4)] + [
        f"{cpr_number(4)},2020-06-01,I21,extra,more"
    ]
    write_csv_text(raw, "dar", "cpr,death_date,cause_icd10", rows)
    with pytest.raises(BuildError, match="line 5 is not well-formed CSV") as info:
        build(raw, out / "db.duckdb", catalog_dir=catalog_dir)
    assert cpr_number(4) not in str(info.value)
    assert _leftovers(out) == [] and list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("db_in", "message"),
    [
        pytest.param(lambda raw: raw / "cpr.parquet", "inside the input directory", id="equals_input"),
        pytest.param(lambda raw: raw / "sub" / "db.duckdb", "inside the input directory", id="inside_dir"),
        pytest.param(
            lambda raw: raw.parent / "key.txt", "one of the build's input files", id="equals_key_file"
        ),
    ],
)
def test_output_path_must_not_touch_the_inputs(
    raw: Path, catalog_dir: Path, db_in: Callable[[Path], Path], message: str
) -> None:
    key_file = raw.parent / "key.txt"
    key_file.write_text(KEY_HEX)
    before = {p: p.read_bytes() for p in raw.iterdir()}
    with pytest.raises(BuildError, match=message):
        build(raw, db_in(raw), catalog_dir=catalog_dir, pseudonym_key_file=key_file)
    assert {p: p.read_bytes() for p in raw.iterdir()} == before


# --- atomicity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(RuntimeError("disk on fire"), id="exception"),
        pytest.param(KeyboardInterrupt(), id="keyboard_interrupt"),
    ],
)
def test_crash_mid_build_leaves_the_old_database_and_no_temporary_files(
    raw: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    db = out / "db.duckdb"
    build(raw, db, catalog_dir=catalog_dir)
    old = db.read_bytes()
    (raw / "lpr.parquet").unlink()
    write_csv_text(
        raw, "lpr", LPR_HEADER, [LPR_GOOD, "999,2,2,2015-01-01,2015-01-02,1,E11,DE119,inpatient,Hovedstaden"]
    )
    real = build_module._load_register
    calls: list[str] = []

    def crashing(con: Any, catalog: Any, inp: Any, *args: Any) -> Any:
        calls.append(inp.register.name)
        if len(calls) == 4:  # after lpr, whose rejects are already in a temporary file
            raise failure
        return real(con, catalog, inp, *args)

    monkeypatch.setattr(build_module, "_load_register", crashing)
    with pytest.raises(type(failure)):
        build(raw, db, catalog_dir=catalog_dir)
    assert "lpr" in calls[:3]
    assert db.read_bytes() == old
    assert sorted(p.name for p in out.iterdir()) == ["db.duckdb"]
    assert open_catalog_from_db(db).register_names[0] == "cpr"


def test_failure_while_committing_leaves_the_old_database(
    raw: Path, out: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = out / "db.duckdb"
    build(raw, db, catalog_dir=catalog_dir)
    old = db.read_bytes()

    def no_fsync(path: Path) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(build_commit_module, "_fsync", no_fsync)
    with pytest.raises(BuildError, match="No space left on device"):
        build(raw, db, catalog_dir=catalog_dir)
    assert db.read_bytes() == old
    assert sorted(p.name for p in out.iterdir()) == ["db.duckdb"]


# --- reading the catalog back -------------------------------------------------------------------


def test_open_catalog_from_db_explains_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="There is no database"):
        open_catalog_from_db(tmp_path / "absent.duckdb")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(CatalogError, match="not made by `sundstat build`"):
        open_catalog_from_db(other)
    text = tmp_path / "text.duckdb"
    text.write_text("hello")
    with pytest.raises(CatalogError, match="not a DuckDB database"):
        open_catalog_from_db(text)


# --- the CLI and the generator ------------------------------------------------------------------


def test_cli_prints_the_report_or_the_error(
    raw: Path, out: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import main

    assert main(["build", str(raw), "--db", str(out / "db.duckdb"), "--catalog", str(catalog_dir)]) == 0
    assert "Built" in capsys.readouterr().out
    (raw / "udda.parquet").unlink()  # an optional register: the rest is built, and the report says so
    assert main(["build", str(raw), "--db", str(out / "db.duckdb"), "--catalog", str(catalog_dir)]) == 0
    assert "Not loaded (no file): udda" in capsys.readouterr().out
    (raw / "cpr.parquet").unlink()
    assert main(["build", str(raw), "--db", str(out / "db.duckdb"), "--catalog", str(catalog_dir)]) == 2
    assert "error: The register files" in capsys.readouterr().err


def test_generator_output_round_trips_without_rejects(tmp_path: Path) -> None:
    generate_module = pytest.importorskip("datasets.generate")
    raw = tmp_path / "raw"
    generate_module.generate(2000, 7, raw, progress=False)
    db = tmp_path / "db.duckdb"
    report = build(raw, db)
    assert report.rows_rejected == 0, report.describe()
    catalog = load_catalog(raw)
    assert open_catalog_from_db(db) == catalog
    for reg in catalog.registers:
        assert report.register(reg.name).rows_loaded == pq.read_metadata(raw / f"{reg.name}.parquet").num_rows
