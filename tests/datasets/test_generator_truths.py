"""The generator's stated truths (``datasets.synthetic.model.TRUTHS``) hold in the generated registers.

Each truth is recovered from the raw files with exact SQL and a standard estimate (observed against
expected deaths, a piecewise-exponential Poisson model, incidence by age band, least squares) and
compared with the stated value within 4 standard errors: at these sample sizes a true value fails with
chance below 1 in 10,000 per check, whatever the seed. Each check also runs with a deliberately wrong
truth (``pytest.param(..., id="wrong_...")``) and must then fail: the wrong values sit at least 7
standard errors away, so the checks have the power to notice a mistake in the generator or the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pytest
import statsmodels.api as sm

from datasets.generate import generate
from datasets.packaged_catalog import load_packaged_catalog
from datasets.synthetic.model import TRUTHS
from datasets.synthetic.truths import DiabetesIncidence, IncomeModel, InfarctionSurvival
from tests.helpers.diabetes_truth import TRUTH_CASES, Z, assert_incidence

PERSONS = 300_000
SEED = 20_261_206
Array = npt.NDArray[np.float64]
INF = TRUTHS.infarction


@dataclass(frozen=True)
class Registers:
    db: duckdb.DuckDBPyConnection
    reference_date: str

    def arrays(self, sql: str) -> dict[str, Array]:
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.db.execute(sql).fetchnumpy().items()}


def open_registers(out: Path) -> Registers:
    """Views on the generated files, and ``mi``: every person's first I21 contact (the index) with
    the metformin exposure in the year before."""
    catalog = load_packaged_catalog()
    db = duckdb.connect()
    for name in catalog.register_names:
        db.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{out / name}.parquet')")
    db.execute(
        f"""CREATE TABLE mi AS
        WITH first AS (SELECT person_id, min(admission_date) AS idx FROM lpr WHERE icd10 = 'I21' GROUP BY 1),
        exposed AS (
            SELECT DISTINCT f.person_id FROM first f JOIN lmdb m ON m.person_id = f.person_id
            WHERE m.atc = '{TRUTHS.metformin.atc}' AND m.date >= f.idx - 365 AND m.date < f.idx)
        SELECT person_id, idx, year(idx) AS index_year, (sex = 'M')::INT AS male,
               (idx - birth_date) / 365.25 AS age, (e.person_id IS NOT NULL)::INT AS metformin,
               death_date IS NOT NULL AS dead, coalesce(death_date - idx, -1) AS days_to_death,
               DATE '{catalog.reference_date}' - idx AS last_day
        FROM first JOIN cpr USING (person_id) LEFT JOIN exposed e USING (person_id)"""
    )
    return Registers(db, catalog.reference_date)


@pytest.fixture(scope="module")
def registers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registers]:
    out: Path = tmp_path_factory.mktemp("truths") / "raw"
    generate(PERSONS, SEED, out, progress=False)
    opened = open_registers(out)
    yield opened
    opened.db.close()


# --- consistency ----------------------------------------------------------------------------------


def test_nothing_happens_after_death_or_before_birth(registers: Registers) -> None:
    db = registers.db
    checks = {
        "lpr": "SELECT count(*) FROM lpr JOIN cpr USING (person_id) WHERE admission_date > death_date",
        "lmdb": "SELECT count(*) FROM lmdb JOIN cpr USING (person_id) WHERE date > death_date",
        "ind": "SELECT count(*) FROM ind JOIN cpr USING (person_id) WHERE year >= year(death_date)",
        "udda": "SELECT count(*) FROM udda JOIN cpr USING (person_id) WHERE year >= year(death_date)",
        "birth": "SELECT count(*) FROM cpr WHERE death_date < birth_date",
        "dar": "SELECT count(*) FROM dar FULL JOIN (SELECT * FROM cpr WHERE death_date IS NOT NULL) c "
        "USING (person_id) WHERE dar.death_date IS DISTINCT FROM c.death_date",
        "index": "SELECT count(*) FROM mi WHERE dead AND days_to_death < 0",
    }
    assert {name: db.execute(sql).fetchone() for name, sql in checks.items()} == dict.fromkeys(checks, (0,))


def test_early_deaths_after_infarction_are_mostly_from_infarction(registers: Registers) -> None:
    n, share = registers.db.execute(
        "SELECT count(*), avg((cause_icd10 = 'I21')::INT) FROM mi JOIN dar USING (person_id) WHERE days_to_death < 30"
    ).fetchone() or (0, 0.0)
    expected = INF.early_cause_i21
    assert n > 200 and abs(share - expected) < Z * np.sqrt(expected * (1 - expected) / n)


def test_metformin_exposure_does_not_depend_on_the_window(registers: Registers) -> None:
    """Any "year before the index" gives the same exposed persons (stated as truth 2)."""
    differ = registers.db.execute(
        f"""SELECT count(*) FROM mi WHERE metformin != EXISTS (SELECT 1 FROM lmdb m WHERE m.person_id = mi.person_id
        AND m.atc = '{TRUTHS.metformin.atc}' AND m.date BETWEEN mi.idx - 366 AND mi.idx)::INT"""
    ).fetchone()
    exposed = registers.db.execute("SELECT sum(metformin) FROM mi").fetchone()
    assert differ == (0,) and exposed is not None and exposed[0] > 150


# --- survival after a first myocardial infarction --------------------------------------------------


def _mortality_gaps(
    registers: Registers, truth: InfarctionSurvival, days: int, years: str
) -> dict[str, float]:
    """(observed - expected) deaths within ``days`` of the index in standard errors, by sex and by
    age band and sex, for first I21s in ``years`` (all followed for ``days``)."""
    mi = registers.arrays(f"SELECT * FROM mi WHERE index_year BETWEEN {years}")
    assert np.all(mi["last_day"] >= days)
    died = (mi["days_to_death"] >= 0) & (mi["days_to_death"] < days)
    p = truth.death_probability(days, mi["age"], mi["male"], mi["metformin"])
    band = np.clip(mi["age"] // 10 * 10, 40, 90)
    groups = {f"sex={int(s)}": mi["male"] == s for s in (0, 1)}
    groups |= {
        f"sex={int(s)},age={int(b)}": (mi["male"] == s) & (band == b) for s in (0, 1) for b in np.unique(band)
    }
    gaps = {}
    for name, rows in groups.items():
        if p[rows].sum() < 20:  # too few expected deaths for a normal approximation
            continue
        gaps[name] = (died[rows].sum() - p[rows].sum()) / np.sqrt((p[rows] * (1 - p[rows])).sum())
    return gaps


@pytest.mark.parametrize(
    ("truth", "holds"),
    [
        pytest.param(INF, True, id="stated"),
        pytest.param(
            dataclasses.replace(INF, baseline=((0, 1.5), *INF.baseline[1:])), False, id="wrong_early_hazard"
        ),
        pytest.param(dataclasses.replace(INF, hr_male=1 / INF.hr_male), False, id="wrong_male_hr"),
    ],
)
def test_30_day_mortality_by_sex_and_age_band(
    registers: Registers, truth: InfarctionSurvival, holds: bool
) -> None:
    gaps = _mortality_gaps(registers, truth, 30, "2012 AND 2020")
    assert len(gaps) >= 6
    assert (max(abs(g) for g in gaps.values()) < Z) == holds, gaps


@pytest.mark.parametrize(
    ("truth", "holds"),
    [
        pytest.param(INF, True, id="stated"),
        pytest.param(
            dataclasses.replace(INF, baseline=(*INF.baseline[:2], (365, 2 * INF.baseline[2][1]))),
            False,
            id="wrong_late_hazard",
        ),
    ],
)
def test_5_year_mortality_by_sex_and_age_band(
    registers: Registers, truth: InfarctionSurvival, holds: bool
) -> None:
    gaps = _mortality_gaps(registers, truth, round(5 * 365.25), "2012 AND 2019")
    assert (max(abs(g) for g in gaps.values()) < Z) == holds, gaps


def _piecewise_poisson(registers: Registers) -> tuple[dict[str, float], dict[str, float]]:
    """Log rates per person-year of each baseline phase and log hazard ratios, with standard errors,
    from all first I21s late enough for metformin to be observed."""
    lead = TRUTHS.metformin.diabetes_lead_days
    mi = registers.arrays(f"SELECT * FROM mi WHERE idx >= DATE '2010-01-01' + {lead}")
    dead = mi["days_to_death"] >= 0
    # Death on day d happened at a time in [d, d + 1); the living are followed to the reference date.
    end = np.where(dead, mi["days_to_death"] + 0.5, mi["last_day"] + 1.0)
    starts = [start for start, _ in INF.baseline]
    stops = [*starts[1:], np.inf]
    columns: list[Array] = []
    events, exposure = [], []
    for k, (start, stop) in enumerate(zip(starts, stops, strict=True)):
        time = np.clip(np.minimum(end, stop) - start, 0, None)
        at_risk = time > 0
        phase = np.zeros((at_risk.sum(), len(starts)))
        phase[:, k] = 1
        columns.append(
            np.column_stack(
                [
                    phase,
                    (mi["age"][at_risk] - INF.reference_age) / 10,
                    mi["male"][at_risk],
                    mi["metformin"][at_risk],
                ]
            )
        )
        died_here = dead & (mi["days_to_death"] >= start) & (mi["days_to_death"] < stop)
        events.append(died_here[at_risk].astype(np.float64))
        exposure.append(time[at_risk] / 365.25)
    fit = sm.GLM(
        np.concatenate(events),
        np.vstack(columns),
        family=sm.families.Poisson(),
        exposure=np.concatenate(exposure),
    ).fit()
    names = [f"phase_{s}" for s in starts] + ["age_per_10", "male", "metformin"]
    return dict(zip(names, fit.params, strict=True)), dict(zip(names, fit.bse, strict=True))


def _stated_log_effects(truth: InfarctionSurvival) -> dict[str, float]:
    stated = {f"phase_{start}": np.log(rate) for start, rate in truth.baseline}
    return stated | {
        "age_per_10": np.log(truth.hr_per_10_years),
        "male": np.log(truth.hr_male),
        "metformin": np.log(truth.hr_metformin),
    }


@pytest.fixture(scope="module")
def poisson_fit(registers: Registers) -> tuple[dict[str, float], dict[str, float]]:
    return _piecewise_poisson(registers)


@pytest.mark.parametrize(
    ("truth", "wrong"),
    [
        pytest.param(INF, None, id="stated"),
        pytest.param(dataclasses.replace(INF, hr_per_10_years=1.3), "age_per_10", id="wrong_age_hr"),
        pytest.param(dataclasses.replace(INF, hr_male=1 / INF.hr_male), "male", id="wrong_male_hr"),
        pytest.param(dataclasses.replace(INF, hr_metformin=1.5), "metformin", id="wrong_metformin_hr"),
        pytest.param(
            dataclasses.replace(INF, baseline=((0, 1.5), *INF.baseline[1:])), "phase_0", id="wrong_early"
        ),
    ],
)
def test_poisson_model_recovers_the_hazard_ratios_and_baseline(
    poisson_fit: tuple[dict[str, float], dict[str, float]], truth: InfarctionSurvival, wrong: str | None
) -> None:
    estimate, se = poisson_fit
    z = {name: (estimate[name] - value) / se[name] for name, value in _stated_log_effects(truth).items()}
    failing = {name for name, value in z.items() if abs(value) >= Z}
    assert failing == ({wrong} if wrong else set()), z


# --- type 2 diabetes incidence ---------------------------------------------------------------------


def _diabetes_by_band(registers: Registers) -> dict[str, Array]:
    """First E11 contacts and person-years at risk (18+, from 2010, until the first E11 or death) by
    attained 10-year age band and sex. A contact on day d happened in [d, d + 1): half a day at risk."""
    return registers.arrays(
        f"""WITH e AS (SELECT person_id, min(admission_date) AS onset FROM lpr WHERE icd10 = 'E11' GROUP BY 1),
        p AS (
            SELECT (sex = 'M')::INT AS male, birth_date, onset,
                   greatest(DATE '2010-01-01', birth_date + INTERVAL {TRUTHS.diabetes.min_age} YEAR)::DATE AS start,
                   coalesce(onset, death_date, DATE '{registers.reference_date}') + 1 AS stop
            FROM cpr LEFT JOIN e USING (person_id)),
        split AS (
            SELECT band, male, onset,
                   greatest(start, (birth_date + INTERVAL (10 * band) YEAR)::DATE) AS lo,
                   CASE WHEN band = 9 THEN stop
                        ELSE least(stop, (birth_date + INTERVAL (10 * band + 10) YEAR)::DATE) END AS hi
            FROM p JOIN (SELECT range AS band FROM range(0, 10)) ON TRUE)
        SELECT band, male,
               sum(hi - lo - CASE WHEN onset >= lo AND onset < hi THEN 0.5 ELSE 0 END) / 365.25 AS years,
               count(*) FILTER (WHERE onset >= lo AND onset < hi) AS events
        FROM split WHERE hi > lo GROUP BY ALL ORDER BY male, band"""
    )


@pytest.fixture(scope="module")
def diabetes(registers: Registers) -> dict[str, Array]:
    return _diabetes_by_band(registers)


@pytest.mark.parametrize(("truth", "holds"), TRUTH_CASES)
def test_diabetes_incidence_by_age_band_and_sex(
    diabetes: dict[str, Array], truth: DiabetesIncidence, holds: bool
) -> None:
    assert_incidence(truth, holds, diabetes, min_cells=14)


def test_diabetes_incidence_rises_with_age(diabetes: dict[str, Array]) -> None:
    for male in (0, 1):
        rows = (diabetes["male"] == male) & (diabetes["band"] >= 2) & (diabetes["band"] <= 7)
        rate = diabetes["events"][rows] / diabetes["years"][rows]
        assert np.all(np.diff(rate) > 0), rate


# --- disposable income -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def income_fit(registers: Registers) -> tuple[dict[str, float], dict[str, float]]:
    return _income_fit(registers)


def _income_fit(registers: Registers) -> tuple[dict[str, float], dict[str, float]]:
    """Least squares of 2024 income on age, sex and ISCED level (3 the reference), ages 25-64, with
    heteroscedasticity-robust standard errors (the noise is multiplicative)."""
    lo, hi = TRUTHS.income.linear_ages
    data = registers.arrays(
        f"""SELECT disposable_income AS income, 2024 - year(birth_date) AS age,
                   (sex = 'M')::INT AS male, isced_level AS level
            FROM ind JOIN udda USING (person_id, year) JOIN cpr USING (person_id)
            WHERE year = 2024 AND disposable_income IS NOT NULL AND 2024 - year(birth_date) BETWEEN {lo} AND {hi}"""
    )
    levels = [level for level in range(9) if level != 3]
    x = np.column_stack(
        [np.ones_like(data["age"]), data["age"], data["male"]] + [data["level"] == k for k in levels]
    )
    fit = sm.OLS(data["income"], x.astype(np.float64)).fit(cov_type="HC1")
    names = ["intercept", "age", "male"] + [f"level_{k}" for k in levels]
    return dict(zip(names, fit.params, strict=True)), dict(zip(names, fit.bse, strict=True))


def test_incomes_stay_inside_the_catalog_bounds(registers: Registers) -> None:
    """Clamping at the bounds never bites, so it cannot bias the linear truth."""
    bounds = load_packaged_catalog().register("ind").column("disposable_income").bounds
    assert bounds is not None
    low, high = (
        registers.db.execute("SELECT min(disposable_income), max(disposable_income) FROM ind").fetchone()
        or ()
    )
    assert float(bounds.lo) < low < 0 < high < float(bounds.hi)


def _stated_income(truth: IncomeModel, year: int) -> dict[str, float]:
    reference = truth.education[3]
    return {
        "intercept": truth.intercept + reference + truth.per_income_year * (year - truth.base_year),
        "age": truth.per_year_of_age,
        "male": truth.male,
    } | {f"level_{k}": truth.education[k] - reference for k in range(9) if k != 3}


@pytest.mark.parametrize(
    ("truth", "wrong"),
    [
        pytest.param(TRUTHS.income, set(), id="stated"),
        pytest.param(dataclasses.replace(TRUTHS.income, male=25_000), {"male"}, id="wrong_male"),
        pytest.param(
            dataclasses.replace(TRUTHS.income, age_anchors=((25, 170_000), (64, 248_000))),
            {"age", "intercept"},
            id="wrong_age_slope",
        ),
        pytest.param(
            dataclasses.replace(TRUTHS.income, per_income_year=4_000), {"intercept"}, id="wrong_year_trend"
        ),
        pytest.param(
            dataclasses.replace(TRUTHS.income, education=(*TRUTHS.income.education[:7], 80_000, 140_000)),
            {"level_7"},
            id="wrong_level_7",
        ),
    ],
)
def test_income_regression_recovers_the_linear_truth(
    income_fit: tuple[dict[str, float], dict[str, float]], truth: IncomeModel, wrong: set[str]
) -> None:
    estimate, se = income_fit
    z = {name: (estimate[name] - value) / se[name] for name, value in _stated_income(truth, 2024).items()}
    assert {name for name, value in z.items() if abs(value) >= Z} == wrong, z


# --- the documentation -----------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "synthetic-data.md"


def _table_rows(text: str, first_cell: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {first_cell}")
    ]


def test_the_documentation_states_the_table_of_truths() -> None:
    """docs/synthetic-data.md shows the numbers of ``TRUTHS``, and the implied mortality computed from it."""
    text = DOC.read_text(encoding="utf-8")
    assert [float(rate) for _, rate in _table_rows(text, "0-29") + _table_rows(text, "30-364")] == [
        rate for _, rate in INF.baseline[:2]
    ]
    assert f"| 365 and later | {INF.baseline[2][1]} |" in text
    for ratio in (INF.hr_per_10_years, INF.hr_male, INF.hr_metformin):
        assert f"| {ratio} |" in text
    for age, *cells in _table_rows(text, "45") + [
        r for a in (55, 65, 75, 85, 95) for r in _table_rows(text, str(a))
    ]:
        p30 = [INF.death_probability(30, float(age), m, x) for x in (0, 1) for m in (0, 1)]
        p5 = [INF.death_probability(round(5 * 365.25), float(age), m, 0) for m in (0, 1)]
        assert [float(c) for c in cells] == [round(100 * float(p), 1) for p in p30 + p5], age
    women, men = _table_rows(text, "women |")[0][1:], _table_rows(text, "men |")[0][1:]
    assert [float(v) for v in women] == list(TRUTHS.diabetes.female[1:])
    assert [float(v) for v in men] == list(TRUTHS.diabetes.male[1:])
    income = TRUTHS.income
    assert (
        f"{income.intercept:,.0f} + {income.per_year_of_age:,.0f} * age + {income.male:,.0f} * (sex = M)"
        f" + education[isced_level] + {income.per_income_year:,.0f} * (year - {income.base_year})"
    ) in text
    effects = _table_rows(text, "education effect")[0][1:]
    assert [float(v.replace(",", "")) for v in effects] == list(income.education)
