"""``sundstat generate --volume national``: the registers' published yearly event sizes, the stated
truths untouched, and the default volume as it was."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from datasets.generate import generate
from datasets.synthetic.model import NATIONAL_TARGETS

PERSONS = 6000
SEED = 17
YEAR = 2021  # the year of the outpatient figure


def _figures(out: Path) -> dict[str, float]:
    """Per inhabitant alive through YEAR: contacts, inpatient contacts; share with a prescription."""
    db = duckdb.connect()
    for name in ("cpr", "lpr", "lmdb"):
        db.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{out / name}.parquet')")
    sql = f"""
        WITH alive AS (
            SELECT person_id FROM cpr
            WHERE year(birth_date) < {YEAR} AND (death_date IS NULL OR year(death_date) > {YEAR})
        )
        SELECT
            (SELECT count(*) FROM lpr JOIN alive USING (person_id) WHERE year(admission_date) = {YEAR}),
            (SELECT count(*) FROM lpr JOIN alive USING (person_id)
             WHERE year(admission_date) = {YEAR} AND contact_type = 'inpatient'),
            (SELECT count(DISTINCT person_id) FROM lmdb JOIN alive USING (person_id) WHERE year(date) = {YEAR}),
            (SELECT count(*) FROM alive)
    """
    contacts, inpatient, users, alive = db.execute(sql).fetchone()  # type: ignore[misc]
    db.close()
    return {
        "contacts_per_person_year": contacts / alive,
        "admissions_per_person_year": inpatient / alive,
        "prescription_users_share": users / alive,
    }


def _first_events(out: Path) -> list[tuple[object, ...]]:
    """Each person's first E11 and first I21 contact, and metformin in the 400 days up to that I21."""
    db = duckdb.connect()
    rows = db.execute(
        f"""
        WITH first AS (
            SELECT person_id, left(icd10, 3) AS code, min(admission_date) AS day
            FROM read_parquet('{out / "lpr.parquet"}') WHERE left(icd10, 3) IN ('E11', 'I21') GROUP BY ALL
        )
        SELECT f.person_id, f.code, f.day, count(m.person_id) > 0 AS metformin
        FROM first f LEFT JOIN read_parquet('{out / "lmdb.parquet"}') m
          ON m.person_id = f.person_id AND m.atc = 'A10BA02' AND f.code = 'I21'
         AND m.date BETWEEN f.day - INTERVAL 400 DAY AND f.day
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    db.close()
    return rows


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("volumes")
    for volume in ("default", "national"):
        generate(PERSONS, SEED, base / volume, progress=False, volume=volume)
    return {volume: base / volume for volume in ("default", "national")}


def test_national_volume_meets_the_published_yearly_figures(volumes: dict[str, Path]) -> None:
    figures = _figures(volumes["national"])
    for name, target in NATIONAL_TARGETS.items():
        assert figures[name] == pytest.approx(target, rel=0.2), name


def test_the_default_volume_misses_them_so_the_check_can_fail(volumes: dict[str, Path]) -> None:
    figures = _figures(volumes["default"])
    assert figures["contacts_per_person_year"] < 0.5 * NATIONAL_TARGETS["contacts_per_person_year"]
    assert figures["admissions_per_person_year"] < 0.7 * NATIONAL_TARGETS["admissions_per_person_year"]


def test_the_truths_streams_are_the_same_at_both_volumes(volumes: dict[str, Path]) -> None:
    # Persons, deaths, first E11 and I21 contacts and the metformin exposure do not depend on volume.
    for register in ("cpr", "dar"):
        default = (volumes["default"] / f"{register}.parquet").read_bytes()
        assert (volumes["national"] / f"{register}.parquet").read_bytes() == default, register
    first = _first_events(volumes["default"])
    assert len(first) > 200
    assert _first_events(volumes["national"]) == first


def test_an_unknown_volume_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown volume 'huge'; choose one of default, national"):
        generate(10, 1, tmp_path, progress=False, volume="huge")
    assert not any(tmp_path.iterdir())
