"""`sundstat generate`: the files it writes, their determinism, and values within the catalog."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datasets.generate as generate_module
import datasets.synthetic.output as output_module
from datasets.generate import GenerationSummary, generate
from datasets.packaged_catalog import load_packaged_catalog
from query_engine.catalog import Column, Register

if TYPE_CHECKING:
    from tests.datasets.conftest import Synthetic

ARROW = {"integer": pa.int64(), "string": pa.string(), "float": pa.float64(), "date": pa.date32()}
REGISTERS = [pytest.param(name, id=name) for name in load_packaged_catalog().register_names]


def _files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


# --- files and schema -----------------------------------------------------------------------------


def test_writes_one_file_per_register_and_the_resolved_catalog(synthetic: Synthetic) -> None:
    names = sorted(path.name for path in synthetic.out.iterdir())
    assert names == sorted([f"{n}.parquet" for n in synthetic.catalog.register_names] + ["catalog.json"])
    assert (synthetic.out / "catalog.json").read_text(encoding="utf-8") == synthetic.catalog.dumps()


@pytest.mark.parametrize("register", REGISTERS)
def test_columns_and_types_are_the_catalogs_physical_columns(synthetic: Synthetic, register: str) -> None:
    reg = synthetic.catalog.register(register)
    schema = pq.read_schema(synthetic.out / f"{register}.parquet")
    assert schema.names == [c.name for c in reg.physical_columns]
    assert [schema.field(c.name).type for c in reg.physical_columns] == [
        ARROW[c.type] for c in reg.physical_columns
    ]


def test_same_persons_and_seed_give_identical_bytes_and_another_seed_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several chunks and row groups, so that chunking and row-group buffering are covered too.
    monkeypatch.setattr(generate_module, "CHUNK_PERSONS", 700)
    monkeypatch.setattr(output_module, "ROW_GROUP_ROWS", 5000)
    first = generate(2000, 5, tmp_path / "a", progress=False)
    generate(2000, 5, tmp_path / "b", progress=False)
    generate(2000, 6, tmp_path / "c", progress=False)
    a, b, c = (_files(tmp_path / d) for d in "abc")
    assert a == b
    assert all(a[name] != c[name] for name in a if name != "catalog.json")
    lmdb = pq.ParquetFile(tmp_path / "a" / "lmdb.parquet").metadata
    sizes = [lmdb.row_group(i).num_rows for i in range(lmdb.num_row_groups)]
    assert sizes[:-1] == [5000] * (len(sizes) - 1) and 0 < sizes[-1] <= 5000
    assert sum(sizes) == first.rows["lmdb"]


def test_a_failed_run_leaves_the_previous_files_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(300, 1, tmp_path, progress=False)
    before = _files(tmp_path)
    monkeypatch.setattr(generate_module, "CHUNK_PERSONS", 100)
    real_chunk = generate_module._chunk
    calls = []

    def failing_chunk(*args: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real_chunk(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(generate_module, "_chunk", failing_chunk)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate(300, 2, tmp_path, progress=False)
    assert _files(tmp_path) == before


def test_summary_counts_the_rows_written(tmp_path: Path) -> None:
    summary = generate(500, 3, tmp_path / "out", progress=False)
    assert isinstance(summary, GenerationSummary)
    assert (summary.persons, summary.seed, summary.out) == (500, 3, tmp_path / "out")
    assert summary.rows["cpr"] == 500
    for name, rows in summary.rows.items():
        assert pq.read_metadata(tmp_path / "out" / f"{name}.parquet").num_rows == rows
        assert name in summary.describe() and f"{rows:,}" in summary.describe()
    assert summary.seconds > 0


def test_cli_generates_and_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli import main

    assert main(["generate", "--persons", "200", "--seed", "4", "--out", str(tmp_path), "--quiet"]) == 0
    assert "200 persons" in capsys.readouterr().out
    assert (tmp_path / "catalog.json").is_file()


@pytest.mark.parametrize(
    ("persons", "seed", "message"),
    [
        pytest.param(0, 1, "positive", id="no_persons"),
        pytest.param(10, -1, "non-negative", id="negative_seed"),
    ],
)
def test_invalid_arguments_are_refused(tmp_path: Path, persons: int, seed: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(persons, seed, tmp_path, progress=False)


# --- every value inside the catalog ---------------------------------------------------------------


def _outside(register: Register, col: Column, synthetic: Synthetic) -> int:
    """Rows whose value breaks the column's declaration (key set, bounds, resolution, nullability)."""
    conditions = [] if col.nullable else [f"{col.name} IS NULL"]
    params: list[object] = []
    if col.keyset is not None:
        conditions.append(f"{col.name} NOT IN (SELECT unnest($1))")
        params.append(list(synthetic.catalog.keyset(col.keyset).values))
    if col.bounds is not None:
        lo, hi = col.bounds.lo, col.bounds.hi
        if col.type == "date":
            lo, hi = f"DATE '{lo}'", f"DATE '{hi}'"
        conditions.append(f"{col.name} < {lo} OR {col.name} > {hi}")
        if col.is_numeric:
            r = col.bounds.resolution
            conditions.append(f"abs({col.name} / {r} - round({col.name} / {r})) > 1e-6")
    where = " OR ".join(f"({c})" for c in conditions) or "FALSE"
    row = synthetic.db.execute(f"SELECT count(*) FROM {register.name} WHERE {where}", params).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("register", REGISTERS)
def test_every_value_is_inside_its_declared_key_set_or_bounds(synthetic: Synthetic, register: str) -> None:
    reg = synthetic.catalog.register(register)
    bad = {c.name: n for c in reg.physical_columns if (n := _outside(reg, c, synthetic))}
    assert bad == {}


def test_diagnosis_codes_are_sks_subdivisions_of_the_icd10_category(synthetic: Synthetic) -> None:
    bad = synthetic.scalar(
        "SELECT count(*) FROM lpr WHERE NOT regexp_full_match(diagnosis_code, 'D[A-Z][0-9][0-9A-Z][0-9]') "
        "OR substr(diagnosis_code, 2, 3) <> icd10"
    )
    assert bad == 0
    assert synthetic.scalar("SELECT count(DISTINCT diagnosis_code) > 2 * count(DISTINCT icd10) FROM lpr")


@pytest.mark.parametrize("register", REGISTERS)
def test_keys_are_unique_random_positive_int64(synthetic: Synthetic, register: str) -> None:
    reg = synthetic.catalog.register(register)
    keys = [reg.row_key] + [c.name for c in reg.columns if c.role == "identifier"]
    if reg.grain == "person":
        keys.append(reg.person_key)
    for key in keys:
        n, distinct, lo, hi = synthetic.row(
            f"SELECT count(*), count(DISTINCT {key}), min({key}), max({key}) FROM {register}"
        )
        assert n == distinct, key
        assert lo >= 1 and hi < 2**62, key
        # Not sequential: the keys spread over the whole range.
        assert hi - lo > 2**60, key


def test_row_keys_are_independent_of_the_row_order_within_a_person(synthetic: Synthetic) -> None:
    share_increasing = synthetic.scalar(
        "SELECT avg((row_key > prev)::INT) FROM (SELECT row_key, lag(row_key) OVER "
        "(PARTITION BY person_id ORDER BY admission_date, contact_id) AS prev FROM lpr) WHERE prev IS NOT NULL"
    )
    assert 0.47 < float(share_increasing) < 0.53  # type: ignore[arg-type]


# --- linkage and life spans -----------------------------------------------------------------------


@pytest.mark.parametrize("register", [p for p in REGISTERS if p.values[0] != "cpr"])
def test_event_registers_only_hold_persons_of_cpr(synthetic: Synthetic, register: str) -> None:
    orphans = synthetic.scalar(f"SELECT count(*) FROM {register} ANTI JOIN cpr USING (person_id)")
    assert orphans == 0


def test_deaths_are_within_coverage_and_after_birth(synthetic: Synthetic) -> None:
    assert synthetic.scalar("SELECT count(*) FROM cpr WHERE death_date < birth_date") == 0
    assert synthetic.scalar("SELECT count(*) FROM cpr WHERE birth_date > DATE '2024-12-31'") == 0


def test_dar_has_one_row_per_death_on_the_cpr_death_date(synthetic: Synthetic) -> None:
    dead = synthetic.scalar("SELECT count(*) FROM cpr WHERE death_date IS NOT NULL")
    assert synthetic.scalar("SELECT count(DISTINCT person_id) FROM dar") == dead
    assert synthetic.scalar("SELECT count(*) FROM dar") == dead
    assert (
        synthetic.scalar(
            "SELECT count(*) FROM dar JOIN cpr USING (person_id) WHERE dar.death_date = cpr.death_date"
        )
        == dead
    )


@pytest.mark.parametrize(
    ("register", "start", "stop"),
    [
        pytest.param("lpr", "admission_date", "discharge_date", id="lpr"),
        pytest.param("lmdb", "date", "date", id="lmdb"),
    ],
)
def test_events_happen_between_birth_and_death(
    synthetic: Synthetic, register: str, start: str, stop: str
) -> None:
    outside = synthetic.scalar(
        f"SELECT count(*) FROM {register} e JOIN cpr c USING (person_id) "
        f"WHERE e.{start} < c.birth_date OR e.{start} > coalesce(c.death_date, DATE '2024-12-31') "
        f"OR e.{stop} > coalesce(c.death_date, DATE '2025-12-31') OR e.{stop} < e.{start}"
    )
    assert outside == 0


def test_discharge_is_admission_plus_length_of_stay(synthetic: Synthetic) -> None:
    bad = synthetic.scalar(
        "SELECT count(*) FROM lpr WHERE los_days IS NOT NULL AND discharge_date <> admission_date + los_days::INTEGER"
    )
    assert bad == 0
    assert (
        synthetic.scalar("SELECT count(*) FROM lpr WHERE contact_type = 'outpatient' AND los_days <> 0") == 0
    )


@pytest.mark.parametrize(
    ("register", "min_age"), [pytest.param("ind", 18, id="ind"), pytest.param("udda", 15, id="udda")]
)
def test_person_years_cover_exactly_the_years_alive_and_old_enough(
    synthetic: Synthetic, register: str, min_age: int
) -> None:
    first, last = synthetic.catalog.register(register).coverage
    year_end = "make_date(y, 12, 31)"
    expected = synthetic.db.execute(
        f"SELECT person_id, y AS year FROM cpr, range({first}, {last + 1}) t(y) "
        f"WHERE (death_date IS NULL OR death_date > {year_end}) "
        f"AND {synthetic.age_sql('birth_date', year_end)} >= {min_age} "
        f"EXCEPT ALL SELECT person_id, year FROM {register}"
    ).fetchall()
    extra = synthetic.db.execute(
        f"SELECT person_id, year FROM {register} EXCEPT ALL SELECT person_id, y FROM cpr, range({first}, {last + 1}) t(y) "
        f"WHERE (death_date IS NULL OR death_date > {year_end}) AND {synthetic.age_sql('birth_date', year_end)} >= {min_age}"
    ).fetchall()
    assert expected == [] and extra == []


def test_education_never_decreases(synthetic: Synthetic) -> None:
    drops = synthetic.scalar(
        "SELECT count(*) FROM (SELECT isced_level, lag(isced_level) OVER (PARTITION BY person_id ORDER BY year) "
        "AS prev FROM udda) WHERE isced_level < prev"
    )
    assert drops == 0


def test_the_fixture_is_the_size_asked_for(synthetic: Synthetic) -> None:
    assert synthetic.scalar("SELECT count(*) FROM cpr") == synthetic.persons
    assert dt.date.fromisoformat(synthetic.catalog.reference_date) == dt.date(2024, 12, 31)
