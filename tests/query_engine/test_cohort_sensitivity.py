"""Cohort analyses through the real SQL on a real DuckDB file, with adversarial persons.

Hypothesis draws small linked datasets where persons have many index candidates (ties on the date
included), exclusion rows before the index, death before the index or after the reference date,
several deaths in ``dar``, dates far beyond the follow-up, and duplicated ``cpr`` rows. For each:

- the exact private table equals an independent pure-Python reading of the contract's rules
  (``cohort_reference``), so each person is one row with event in {0, 1} and time in [0, T];
- a population cohort (everyone aged 30 in the entry window) and an event cohort split over attained
  age band and calendar year (Lexis) match a day-by-day walk of each person's time at risk;
- removing any one person (all their rows in every register) changes each released vector by at
  most its declared sensitivity (L1): 1 for histograms and events, T days for person-time.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import tempfile
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from query_engine.catalog import Catalog
from query_engine.cohort import AnalysisPlan, plan_analysis
from query_engine.compile import CompiledQuery
from query_engine.compile_cohort import compile_analysis
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from tests.helpers.cohorts import icd10, lpr_cohort, lpr_history, metformin
from tests.query_engine import cohort_reference as ref
from tests.query_engine.engine_fixtures import create_db

CONTEXT = ProjectContext("pure")
ENTRY = (dt.date(2012, 1, 1), dt.date(2020, 12, 31))
YEARS = 2
T = ref.follow_up_days(YEARS)
SEXES = ("F", "M")
FEW_DATES = [dt.date(2012, 3, 1), dt.date(2013, 5, 5), dt.date(2015, 1, 1), dt.date(2020, 12, 31)]
DATES = st.one_of(st.sampled_from(FEW_DATES), st.dates(dt.date(2008, 1, 1), dt.date(2026, 6, 30)))


def _cohort(outcome: str) -> dict[str, Any]:
    return lpr_cohort(
        "I21",
        entry=[str(d) for d in ENTRY],
        exclude=[lpr_history(icd10("I21"), lookback_days=1000)],
        outcome={"register": "dar", "date": "death_date"} if outcome == "dar" else None,
        exposures=[metformin()],
        follow_up_years=YEARS,
        period_years=3,
    )


E11 = icd10("E11")
POPULATION = {
    "index": {"register": "cpr", "entry": [str(d) for d in ENTRY], "min_age": 30},
    "exclude": [lpr_history(E11)],
    "outcome": {"register": "lpr", "date": "admission_date", "where": E11},
    "follow_up_years": YEARS,
    "period_years": 1,
}
ATTAINED = ["cpr.sex", "cohort.attained_age_band", "cohort.attained_period"]
# Attained periods run from the entry's first year to the last day of follow-up, 2020-12-31 + T days.
YEARLY = [(str(y), y, y) for y in range(2012, 2024)]
TRIENNIAL = [
    ("2012-2014", 2012, 2014),
    ("2015-2017", 2015, 2017),
    ("2018-2020", 2018, 2020),
    ("2021-2023", 2021, 2023),
]

QUERIES = {
    "rate_population_attained": {"measure": "rate", "cohort": POPULATION, "group_by": ATTAINED},
    "rate_dar_attained": {"measure": "rate", "cohort": _cohort("dar"), "group_by": ATTAINED},
    "rate_dar_by_sex_age": {
        "measure": "rate",
        "cohort": _cohort("dar"),
        "group_by": ["cpr.sex", "cohort.age_band"],
    },
    "rate_death": {"measure": "rate", "cohort": _cohort("death")},
    "survival_by_period": {
        "measure": "survival",
        "cohort": _cohort("dar"),
        "group_by": ["cohort.period"],
        "time_bins": {"unit": "months", "width": 6},
    },
    "persons_by_event_exposure": {
        "measure": "count_persons",
        "cohort": _cohort("dar"),
        "group_by": ["cohort.event", "cohort.metformin"],
    },
    "prevalence_by_sex": {
        "measure": "prevalence",
        "condition": {"register": "lpr", "where": E11},
        "group_by": ["cpr.sex"],
    },
}

PERSON = st.fixed_dictionaries(
    {
        "cpr": st.lists(
            st.tuples(
                st.sampled_from(SEXES),
                st.dates(dt.date(1920, 1, 1), dt.date(2012, 1, 1)),
                st.one_of(st.none(), DATES),
            ),
            min_size=1,
            max_size=2,
        ),
        "lpr": st.lists(st.tuples(DATES, st.sampled_from(["I21", "I21", "E11", "J45"])), max_size=6),
        "dar": st.lists(DATES, max_size=2),
        "lmdb": st.lists(st.tuples(DATES, st.sampled_from(["A10BA02", "N02BE01"])), max_size=3),
    }
)


def _tables(persons: Sequence[Mapping[str, Any]], seed: int) -> dict[str, list[dict[str, Any]]]:
    """Rows in the catalog's layout; row keys are a random permutation (they decide ties)."""
    keys = iter(random.Random(seed).sample(range(1, 10**7), 20 * len(persons) + 20))
    tables: dict[str, list[dict[str, Any]]] = {"cpr": [], "lpr": [], "dar": [], "lmdb": []}
    for pid, person in enumerate(persons, start=1):
        for sex, birth, death in person["cpr"]:
            tables["cpr"].append(
                {
                    "person_id": pid,
                    "row_key": next(keys),
                    "sex": sex,
                    "birth_date": birth,
                    "death_date": death,
                }
            )
        for date, code in person["lpr"]:
            tables["lpr"].append(
                {"person_id": pid, "row_key": next(keys), "admission_date": date, "icd10": code}
            )
        for date in person["dar"]:
            tables["dar"].append({"person_id": pid, "row_key": next(keys), "death_date": date})
        for date, atc in person["lmdb"]:
            tables["lmdb"].append({"person_id": pid, "row_key": next(keys), "date": date, "atc": atc})
    return tables


@functools.cache
def _plans(catalog: Catalog) -> dict[str, AnalysisPlan]:
    return {
        name: plan_analysis(
            parse_query({"project": "p", "epsilon": 1.0, **q}), catalog, CONTEXT, EngineSettings()
        )
        for name, q in QUERIES.items()
    }


@functools.cache
def _compiled(plan: AnalysisPlan, catalog: Catalog) -> CompiledQuery:
    return compile_analysis(plan, catalog)


def _vectors(con: duckdb.DuckDBPyConnection, plan: AnalysisPlan, catalog: Catalog) -> dict[str, np.ndarray]:
    compiled = _compiled(plan, catalog)
    table = con.sql(compiled.sql, params=list(compiled.params)).to_arrow_table()
    names = {"count": "n", "events": "ev", "person_time": "pt"}
    return {o.name: np.array(table.column(names[o.name]).to_pylist(), dtype=np.int64) for o in plan.outputs}


def _expected(tables: Mapping[str, Any], catalog: Catalog) -> dict[str, dict[str, list[int]]]:
    """The exact tables by the independent reading of the rules."""
    bands = catalog.keyset("age_band_10").values
    periods = ("2012-2014", "2015-2017", "2018-2020")
    rule: dict[str, Any] = {
        "index_code": "I21",
        "entry": ENTRY,
        "lookback": 1000,
        "exposure_atc": "A10BA02",
        "exposure_lookback": 365,
        "years": YEARS,
        "period_years": 3,
    }
    dar = ref.members(tables, outcome="dar", **rule)
    death = ref.members(tables, outcome="death", **rule)
    for member in (*dar, *death):
        assert member.event in (0, 1) and 0 <= member.days <= T
    assert len({m.pid for m in dar}) == len(dar)
    bin_length = Fraction(1461, 48) * 6  # 182.625 days; T = 731 days: 4 bins, the last ending at T
    bins = 4
    survival = {(p, b, s): 0 for p in periods for b in range(bins) for s in (0, 1)}
    for member in dar:
        survival[(member.period, min(int(member.days // bin_length), bins - 1), member.event)] += 1
    population = ref.population_members(tables, entry=ENTRY, min_age=30, code="E11", years=YEARS)
    for member in population:
        assert member.event in (0, 1) and 0 <= member.days <= T
    pop_events, pop_days = ref.lexis_cells(population, SEXES, bands, YEARLY)
    dar_events, dar_days = ref.lexis_cells(dar, SEXES, bands, TRIENNIAL)
    return {
        "rate_population_attained": {"events": pop_events, "person_time": pop_days},
        "rate_dar_attained": {"events": dar_events, "person_time": dar_days},
        "rate_dar_by_sex_age": {
            "events": ref.cells(dar, ["sex", "age_band"], [SEXES, bands], "event"),
            "person_time": ref.cells(dar, ["sex", "age_band"], [SEXES, bands], "days"),
        },
        "rate_death": {
            "events": [sum(m.event for m in death)],
            "person_time": [sum(m.days for m in death)],
        },
        "survival_by_period": {"count": list(survival.values())},
        "persons_by_event_exposure": {"count": ref.cells(dar, ["event", "exposed"], [(0, 1), (0, 1)], None)},
        "prevalence_by_sex": {"count": ref.prevalence_cells(tables, "E11", SEXES)},
    }


# Lexis edge cases: a first E11 on New Year's Day (the event opens a new period), a 29 February birth
# whose 50th birthday falls on 28 February 2014 during follow-up, a 30th birthday inside the window.
EDGES = [
    {
        "cpr": [("F", dt.date(1982, 6, 15), None)],
        "lpr": [(dt.date(2014, 1, 1), "E11")],
        "dar": [],
        "lmdb": [],
    },
    {
        "cpr": [("M", dt.date(1964, 2, 29), dt.date(2014, 12, 1))],
        "lpr": [(dt.date(2013, 1, 1), "I21"), (dt.date(2014, 2, 28), "E11")],
        "dar": [dt.date(2014, 12, 1)],
        "lmdb": [],
    },
]


@settings(
    max_examples=12,
    deadline=None,
    # Shrinking these datasets takes minutes; a failure prints its (unshrunk) example at once.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@example(persons=EDGES, seed=3)
@given(persons=st.lists(PERSON, min_size=1, max_size=5), seed=st.integers(0, 2**32 - 1))
def test_each_person_contributes_within_the_declared_bounds(
    catalog: Catalog, persons: list[dict[str, Any]], seed: int
) -> None:
    tables = _tables(persons, seed)
    plans = _plans(catalog)
    expected = _expected(tables, catalog)
    with tempfile.TemporaryDirectory() as directory:
        path = create_db(Path(directory) / "cohort.duckdb", catalog, tables)
        con = duckdb.connect(str(path))
        try:
            full = {name: _vectors(con, plan, catalog) for name, plan in plans.items()}
            for name, vectors in full.items():
                for output, values in vectors.items():
                    assert values.tolist() == expected[name][output], (name, output)
            for pid in range(1, len(persons) + 1):
                con.execute("BEGIN TRANSACTION")
                for register in tables:
                    con.execute(f'DELETE FROM "{register}" WHERE person_id = ?', [pid])
                for name, plan in plans.items():
                    neighbour = _vectors(con, plan, catalog)
                    for part in plan.outputs:
                        change = int(np.abs(full[name][part.name] - neighbour[part.name]).sum())
                        assert change <= part.sensitivity.l1, (name, part.name, pid, change)
                con.execute("ROLLBACK")
        finally:
            con.close()


def test_the_declared_sensitivities(catalog: Catalog) -> None:
    plans = _plans(catalog)
    rate = plans["rate_dar_by_sex_age"]
    assert [(o.name, o.sensitivity.l1) for o in rate.outputs] == [("events", 1), ("person_time", T)]
    split = plans["rate_population_attained"]
    bands = len(catalog.keyset("age_band_10").values)
    assert [(o.name, o.sensitivity.l1, o.sensitivity.l2, o.sensitivity.l0) for o in split.outputs] == [
        ("events", 1, 1.0, 1),
        ("person_time", T, float(T), bands * len(YEARLY)),
    ]
    for name in ("survival_by_period", "persons_by_event_exposure", "prevalence_by_sex"):
        assert [(o.name, o.sensitivity.l1, o.sensitivity.l0) for o in plans[name].outputs] == [
            ("count", 1, 1)
        ]


@pytest.mark.parametrize("register", ["lpr", "cpr"])
def test_a_person_with_many_rows_is_still_one_member(catalog: Catalog, tmp_path: Path, register: str) -> None:
    """One person with 30 index candidates (and 3 cpr rows) against the same person with one: one member."""
    one = {
        "cpr": [("F", dt.date(1950, 6, 1), None)],
        "lpr": [(dt.date(2014, 2, 2), "I21")],
        "dar": [],
        "lmdb": [],
    }
    many = {
        "cpr": [("F", dt.date(1950, 6, 1), None)] * (3 if register == "cpr" else 1),
        "lpr": [(dt.date(2014, 2, 2), "I21")]
        + [(dt.date(2014 + i % 6, 1 + i % 12, 3), "I21") for i in range(29)],
        "dar": [],
        "lmdb": [],
    }
    plan = _plans(catalog)["rate_death"]
    results = []
    for i, person in enumerate((one, many)):
        path = create_db(tmp_path / f"{i}.duckdb", catalog, _tables([person], seed=i))
        con = duckdb.connect(str(path))
        try:
            results.append(_vectors(con, plan, catalog))
        finally:
            con.close()
    assert results[0]["person_time"].tolist() == results[1]["person_time"].tolist() == [T]
    assert results[0]["events"].tolist() == results[1]["events"].tolist() == [0]
