"""Incidence by attained age through the engine: a population cohort on generated registers recovers
the generator's stated type 2 diabetes rates (``TRUTHS.diabetes``), and the release carries the new
attained group columns.

The exact (non-private) table of the engine is compared with the truth cell by cell: observed first E11
contacts against ``rate x person-years`` within 4 Poisson standard errors (a true rate fails with chance
below 1 in 10,000 per cell). The same check with deliberately wrong truths must fail, so it has power.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from datasets.synthetic.truths import TRUTHS, DiabetesIncidence
from query_engine import Engine, ProjectContext
from query_engine.errors import EngineError
from query_engine.spec import parse_query
from tests.helpers.diabetes_truth import TRUTH_CASES, assert_incidence

PERSONS = 40_000
SEED = 20_261_206
PURE = ProjectContext("pure")
E11 = [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}]
ADULTS_FROM_2010: dict[str, Any] = {
    "index": {"register": "cpr", "entry": ["2010-01-01", "2024-12-31"], "min_age": TRUTHS.diabetes.min_age},
    "exclude": [{"register": "lpr", "date": "admission_date", "where": E11}],
    "outcome": {"register": "lpr", "date": "admission_date", "where": E11},
    "follow_up_years": 15,
    "period_years": 5,
}
INCIDENCE = {
    "project": "p",
    "measure": "rate",
    "cohort": ADULTS_FROM_2010,
    "group_by": ["cpr.sex", "cohort.attained_age_band"],
    "epsilon": 1.0,
}


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datasets.build import build
    from datasets.generate import generate

    base = tmp_path_factory.mktemp("population")
    generate(PERSONS, SEED, base / "raw", progress=False)
    build(base / "raw", base / "sundstat.duckdb")
    return base / "sundstat.duckdb"


@pytest.fixture(scope="module")
def plain_members(db_path: Path) -> list[int]:
    """Members by sex (F, M) by hand-written SQL; read before the engine holds the file."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        rows = con.execute(
            """WITH p AS (SELECT person_id, sex, death_date, greatest(DATE '2010-01-01',
                          (birth_date + INTERVAL 18 YEAR)::DATE) AS entry FROM cpr),
                  e AS (SELECT person_id, min(admission_date) AS first FROM lpr WHERE icd10 LIKE 'E11%' GROUP BY 1)
               SELECT sex, count(*) FROM p LEFT JOIN e USING (person_id)
               WHERE entry <= DATE '2024-12-31' AND (death_date IS NULL OR death_date >= entry)
                 AND (e.first IS NULL OR e.first >= entry)
               GROUP BY sex ORDER BY sex"""
        ).fetchall()
    finally:
        con.close()
    return [n for _, n in rows]


@pytest.fixture(scope="module")
def engine(db_path: Path, plain_members: list[int]) -> Iterator[Engine]:
    with Engine.open(db_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def incidence(engine: Engine) -> dict[str, np.ndarray]:
    exact = engine._exact_analysis_for_tests(parse_query(INCIDENCE), PURE)
    bands = [9 if band == "90+" else int(str(band).split("-")[0]) // 10 for _, band in exact.keys]
    return {
        "male": np.array([sex == "M" for sex, _ in exact.keys]),
        "band": np.array(bands, dtype=np.int64),
        "events": exact.values["events"].astype(np.float64),
        "years": exact.values["person_time"] / 365.25,
    }


@pytest.mark.parametrize(("truth", "holds"), TRUTH_CASES)
def test_population_incidence_recovers_the_stated_rates(
    incidence: dict[str, np.ndarray], truth: DiabetesIncidence, holds: bool
) -> None:
    assert_incidence(truth, holds, incidence, min_cells=10)


def test_attained_time_adds_up_to_the_unsplit_person_time(engine: Engine) -> None:
    """Splitting moves days between cells and loses none: everyone is born before their entry."""
    split = engine._exact_analysis_for_tests(parse_query(INCIDENCE), PURE)
    whole = engine._exact_analysis_for_tests(parse_query({**INCIDENCE, "group_by": ["cpr.sex"]}), PURE)
    for name in ("events", "person_time"):
        by_sex = split.values[name].reshape(2, -1).sum(axis=1)
        assert by_sex.tolist() == whole.values[name].tolist()
    assert whole.values["person_time"].sum() > PERSONS * 365  # most persons are followed for years


def test_the_release_by_attained_period_and_standardised(engine: Engine) -> None:
    query = parse_query(
        {
            **INCIDENCE,
            "group_by": ["cohort.attained_period", "cohort.attained_age_band"],
            "standard_population": "esp2013",
        }
    )
    release = engine.run(query, PURE)
    assert release.columns[:2] == ["cohort.attained_period", "cohort.attained_age_band"]
    periods = [row["cohort.attained_period"] for row in release.rows]
    assert sorted(set(periods)) == ["2010-2014", "2015-2019", "2020-2024"]
    assert release.standardised is not None
    assert [r["cohort.attained_period"] for r in release.standardised["rows"]] == sorted(set(periods))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"measure": "survival"}, "only a rate can use", id="attained_in_survival"),
        pytest.param(
            {"cohort": {**ADULTS_FROM_2010, "index": {**ADULTS_FROM_2010["index"], "register": "lpr"}}},
            "population index",
            id="population_index_not_on_cpr",
        ),
        pytest.param(
            {
                "cohort": {
                    **ADULTS_FROM_2010,
                    "index": {"register": "lpr", "date": "admission_date", "entry": ["2010-01-01", "2012-01-01"],
                              "min_age": 18},
                }
            },
            "min_age belongs to a population index",
            id="min_age_with_an_index_event",
        ),
    ],
)  # fmt: skip
def test_clear_errors(engine: Engine, change: dict[str, Any], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        engine.cost(parse_query({**INCIDENCE, **change}), PURE)


def test_population_members_match_plain_sql(engine: Engine, plain_members: list[int]) -> None:
    """The members are the adults alive on their entry day without an earlier E11, by hand-written SQL."""
    counted = engine._exact_analysis_for_tests(
        parse_query({**INCIDENCE, "measure": "count_persons", "group_by": ["cpr.sex"]}), PURE
    )
    assert [int(v) for v in counted.values["count"]] == plain_members
