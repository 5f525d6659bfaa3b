"""Analyses at 1,000,000 persons and epsilon 1: accurate, and their stated intervals cover (issue 15).

The real path, once: the engine plans and compiles each analysis (``plan_analysis``,
``compile_analysis``) and DuckDB runs its exact private table, which must equal the table of the
hand-written SQL of ``analysis_exact`` cell for cell. Then, many times over, the engine's own
mechanism code (``add_noise`` with the calibration of the plan's declared sensitivity, the loss of a
rate split evenly between events and person-time) adds fresh OpenDP noise to that exact table, and
the estimators turn it into curves and rates. "Exact" below is the same estimate computed without
noise from the exact table (the non-private estimate of this very population).

Checks, for the Kaplan-Meier survival at 1 and 5 years after a first I21 (by region and sex), the
incidence of E11 after a hospital contact by region, sex and age band, and its ESP2013 age-standardised
rate by region and sex:

1. Accuracy: in the median over repetitions the DP estimate is within 1 percentage point of the exact
   survival, within 1% of the exact rate (cells with at least 200 exact events) and of the exact
   standardised rate.
2. Coverage: the stated 95% interval (``ci``: noise and sampling) and the noise interval
   (``noise_ci``: the noise alone) cover the exact estimate in at least 93% of the repetitions, and
   the hypothesis "the noise interval misses at most 5%" is not rejected (one-sided binomial,
   p < 1e-6). The noise interval is the one whose level is exact here; ``ci`` also holds the sampling
   error, which the exact estimate of the population does not have, so it covers more.
3. Power: the same noisy tables with intervals from a noise model that understates the scale 1.3x
   (and, for survival, one that ignores the noise) must fail check 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from query_engine import Engine, ProjectContext, parse_query
from query_engine.cohort import AnalysisPlan, plan_analysis
from query_engine.compile_cohort import compile_analysis, result_key_columns
from query_engine.estimators import NoiseModel, direct_standardise, incidence_rates, standard_weights
from query_engine.estimators.survival import kaplan_meier
from query_engine.mechanisms import NoiseCalibration, PrivacyLoss, add_noise, calibrate, split_loss
from tests.statistical.analysis_exact import (
    DAYS_PER_YEAR,
    E11_AFTER_CONTACT,
    FIRST_MI,
    CohortMembers,
    binned_kaplan_meier,
    cohort_members,
    daily_kaplan_meier,
    month_edges,
    survival_histogram,
)
from tests.statistical.stat_checks import P_REJECT, miss_rate_p

pytestmark = pytest.mark.slow

EPSILON = 1.0
REPETITIONS = 200
ALPHA = 0.05
MIN_COVERAGE = 0.93
UNDERSTATED = 1 / 1.3
HORIZONS_YEARS = (1, 5)
SURVIVAL_QUERY = {
    "project": "stat",
    "measure": "survival",
    "cohort": FIRST_MI,
    "group_by": ["cpr.region", "cpr.sex"],
    "time_bins": {"unit": "months", "width": 1},
    "horizons_years": list(HORIZONS_YEARS),
    "epsilon": EPSILON,
}
RATE_QUERY = {
    "project": "stat",
    "measure": "rate",
    "cohort": E11_AFTER_CONTACT,
    "group_by": ["cpr.region", "cpr.sex", "cohort.age_band"],
    "standard_population": "esp2013",
    "epsilon": EPSILON,
}
PER_YEARS = DAYS_PER_YEAR * 1000  # rates per 1,000 person-years


@dataclass(frozen=True)
class PrivateTable:
    """An analysis's exact private table as the engine computed it, and its key columns."""

    plan: AnalysisPlan
    keys: dict[str, np.ndarray]
    values: dict[str, np.ndarray]

    def calibrations(self) -> dict[str, NoiseCalibration]:
        """The Laplace calibration of each output at its declared sensitivity (a rate's loss halved)."""
        n = len(self.plan.outputs)
        parts = split_loss(PrivacyLoss(epsilon=EPSILON), [Fraction(1, n)] * n)
        return {
            output.name: calibrate("laplace", output.sensitivity, epsilon=part.epsilon)
            for output, part in zip(self.plan.outputs, parts, strict=True)
        }


@dataclass
class Tally:
    """Misses of the exact estimate by the stated intervals and by the broken ones, over repetitions."""

    checks: int = 0
    ci: int = 0
    noise_ci: int = 0
    understated: int = 0
    ignored: int = 0

    def add(self, exact: np.ndarray, ci: tuple, noise_ci: tuple, understated: tuple, ignored: tuple = ()) -> None:
        def misses(interval: tuple) -> int:
            return int(((interval[0] > exact) | (interval[1] < exact)).sum()) if interval else 0

        self.checks += exact.size
        self.ci += misses(ci)
        self.noise_ci += misses(noise_ci)
        self.understated += misses(understated)
        self.ignored += misses(ignored)

    def report(self, what: str) -> str:
        n = self.checks
        return (
            f"{what}: coverage ci {1 - self.ci / n:.4f}, noise_ci {1 - self.noise_ci / n:.4f}, "
            f"understated 1.3x {1 - self.understated / n:.4f}"
            + (f", noise ignored {1 - self.ignored / n:.4f}" if self.ignored else "")
            + f" ({n} checks)"
        )

    def assert_covers_and_has_power(self, what: str) -> None:
        print(self.report(what))
        n = self.checks
        assert 1 - self.ci / n >= MIN_COVERAGE, self.report(what)
        assert 1 - self.noise_ci / n >= MIN_COVERAGE, self.report(what)
        p = miss_rate_p(self.noise_ci, n, ALPHA)
        assert p > P_REJECT, f"{self.report(what)}: {self.noise_ci}/{n} misses at alpha {ALPHA} (p={p:.2e})"
        broken = [("understated 1.3x", self.understated)] + ([("noise ignored", self.ignored)] if self.ignored else [])
        for name, misses in broken:
            p_power = miss_rate_p(misses, n, ALPHA)
            assert p_power < P_REJECT, f"{self.report(what)}: the {name} interval still covered (p={p_power:.2e})"


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def members(analyses_db: Path) -> dict[str, CohortMembers]:
    """The cohorts by the hand-written SQL (before the engine opens the file: one configuration)."""
    return {"mi": cohort_members(analyses_db, FIRST_MI), "e11": cohort_members(analyses_db, E11_AFTER_CONTACT)}


@pytest.fixture(scope="module")
def tables(analyses_db: Path, members: dict[str, CohortMembers]) -> Iterator[dict[str, PrivateTable]]:
    """The engine's exact private tables of the two analyses, each run once."""
    out = {}
    with Engine.open(analyses_db) as engine:
        for name, fields in (("survival", SURVIVAL_QUERY), ("rate", RATE_QUERY)):
            plan = plan_analysis(parse_query(fields), engine.catalog, ProjectContext("pure"), engine.settings)
            table = engine.backend.execute(compile_analysis(plan, engine.catalog)).to_pydict()
            keys = {column: np.asarray(table[column]) for column, _ in result_key_columns(plan)}
            values = {c: np.asarray(v, dtype=np.int64) for c, v in table.items() if c not in keys}
            out[name] = PrivateTable(plan, keys, values)
    yield out


def _group_keys(table: PrivateTable) -> list[tuple[Any, ...]]:
    return [tuple(combo) for combo in _product(*(g.keys for g in table.plan.groups))]


def _product(*keysets: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    if not keysets:
        yield ()
        return
    for head in keysets[0]:
        for tail in _product(*keysets[1:]):
            yield (head, *tail)


def _masks(members: CohortMembers, groups: tuple[Any, ...], key: tuple[Any, ...]) -> np.ndarray:
    columns = {"cpr.region": members.region, "cpr.sex": members.sex, "cohort.age_band": members.age_band}
    mask = np.ones(members.event.size, dtype=bool)
    for group, value in zip(groups, key, strict=True):
        mask &= columns[group.name] == value
    return mask


# --- survival ------------------------------------------------------------------------------------


def _survival_cells(table: PrivateTable) -> np.ndarray:
    """The table's counts as [group, status (0 censored, 1 event), bin] in key-set order."""
    plan = table.plan
    assert plan.bins is not None
    groups = len(_group_keys(table))
    counts = table.values["n"].reshape(groups, plan.bins.count, 2)  # keys: groups..., bin, status
    return np.transpose(counts, (0, 2, 1))


def test_engine_tables_equal_the_hand_written_sql(
    tables: dict[str, PrivateTable], members: dict[str, CohortMembers]
) -> None:
    survival = tables["survival"]
    assert survival.plan.bins is not None and survival.plan.bins.count == 60
    cells = _survival_cells(survival)
    edges = month_edges(5)
    for g, key in enumerate(_group_keys(survival)):
        events, censored = survival_histogram(members["mi"], _masks(members["mi"], survival.plan.groups, key), edges)
        assert (cells[g, 1] == events).all() and (cells[g, 0] == censored).all(), key
    assert cells.sum() == members["mi"].event.size > 10_000
    rate = tables["rate"]
    for i, key in enumerate(_group_keys(rate)):
        mask = _masks(members["e11"], rate.plan.groups, key)
        assert rate.values["ev"][i] == members["e11"].event[mask].sum(), key
        assert rate.values["pt"][i] == members["e11"].exit_days[mask].sum(), key
    assert rate.values["ev"].sum() == members["e11"].event.sum() > 5_000


def test_kaplan_meier_is_accurate_and_its_intervals_cover(
    tables: dict[str, PrivateTable], members: dict[str, CohortMembers]
) -> None:
    table = tables["survival"]
    bins = table.plan.bins
    assert bins is not None
    time_end = np.array([float(bins.end_days(b)) for b in range(bins.count)]) / DAYS_PER_YEAR
    # The horizon's bin: the last one ending by then (the last bin ends at T = 1826 days < 5 years).
    at = [int(np.searchsorted(time_end, h + 1e-9, side="right")) - 1 for h in HORIZONS_YEARS]
    assert at == [11, 59]
    cells = _survival_cells(table)
    exact = np.array([binned_kaplan_meier(cells[g, 1], cells[g, 0])[at] for g in range(cells.shape[0])])
    # The binned exact estimate is the unbinned one to within 0.1 percentage point.
    mi = members["mi"]
    for h, years in enumerate(HORIZONS_YEARS):
        overall = binned_kaplan_meier(*survival_histogram(mi, np.ones(mi.event.size, bool), month_edges(5)))[at[h]]
        unbinned = daily_kaplan_meier(mi.exit_days, mi.event, round(DAYS_PER_YEAR * years))
        assert abs(overall - unbinned) < 0.001, (years, overall, unbinned)
    calibration = table.calibrations()["count"]
    model = NoiseModel("laplace", calibration.scale)
    understated = NoiseModel("laplace", calibration.scale * UNDERSTATED)
    ignored = NoiseModel("laplace", 0.0)
    rng = np.random.default_rng()
    tallies = {years: Tally() for years in HORIZONS_YEARS}
    errors = []
    flat = table.values["n"]
    for _ in range(REPETITIONS):
        noisy = _survival_cells_of(table, np.asarray(add_noise(calibration, flat)))
        estimates = np.empty_like(exact)
        bounds: dict[str, list[np.ndarray]] = {k: [] for k in ("ci", "noise_ci", "understated", "ignored")}
        for g in range(noisy.shape[0]):
            curve = kaplan_meier(noisy[g, 1], noisy[g, 0], time_end, noise=model, rng=rng)
            wrong = kaplan_meier(noisy[g, 1], noisy[g, 0], time_end, noise=understated, rng=rng, draws=200)
            blind = kaplan_meier(noisy[g, 1], noisy[g, 0], time_end, noise=ignored, rng=rng, draws=100)
            estimates[g] = curve.survival[at]
            bounds["ci"].append(np.stack([curve.ci_low[at], curve.ci_high[at]]))
            bounds["noise_ci"].append(np.stack([curve.noise_ci_low[at], curve.noise_ci_high[at]]))
            bounds["understated"].append(np.stack([wrong.noise_ci_low[at], wrong.noise_ci_high[at]]))
            bounds["ignored"].append(np.stack([blind.ci_low[at], blind.ci_high[at]]))
        errors.append(np.abs(estimates - exact))
        stacked = {k: np.stack(v) for k, v in bounds.items()}  # [group, low/high, horizon]
        for h, years in enumerate(HORIZONS_YEARS):
            pick = {k: (v[:, 0, h], v[:, 1, h]) for k, v in stacked.items()}
            tallies[years].add(exact[:, h], pick["ci"], pick["noise_ci"], pick["understated"], pick["ignored"])
    median_error = np.median(errors, axis=0)
    print(f"Kaplan-Meier median |DP - exact| at {HORIZONS_YEARS} years, by group: {np.round(median_error, 4)}")
    for years, tally in tallies.items():
        print(tally.report(f"survival at {years} years"))
    for years, tally in tallies.items():
        tally.assert_covers_and_has_power(f"survival at {years} years")
    assert (median_error <= 0.01).all(), f"median absolute errors above 1 point: {median_error}"


def _survival_cells_of(table: PrivateTable, flat: np.ndarray) -> np.ndarray:
    return _survival_cells(PrivateTable(table.plan, table.keys, {"n": flat}))


# --- rates ---------------------------------------------------------------------------------------


def test_incidence_and_standardised_rates_are_accurate_and_their_intervals_cover(
    tables: dict[str, PrivateTable],
) -> None:
    table = tables["rate"]
    calibrations = table.calibrations()
    events_cal, time_cal = calibrations["events"], calibrations["person_time"]
    assert time_cal.sensitivity.linf == table.plan.cohort.follow_up_days  # type: ignore[union-attr]
    events, days = table.values["ev"], table.values["pt"]
    bands = table.plan.groups[-1].keys
    strata = events.size // len(bands)
    exact_rate = events / days * PER_YEARS
    weights = standard_weights("esp2013", [str(b) for b in bands])
    exact_standardised = (exact_rate.reshape(strata, len(bands)) * weights).sum(axis=1)
    models = {
        "stated": (NoiseModel("laplace", events_cal.scale), NoiseModel("laplace", time_cal.scale)),
        "understated": (
            NoiseModel("laplace", events_cal.scale * UNDERSTATED),
            NoiseModel("laplace", time_cal.scale * UNDERSTATED),
        ),
    }
    rng = np.random.default_rng()
    rates, standardised = Tally(), Tally()
    rate_errors, standardised_errors = [], []
    for _ in range(REPETITIONS):
        noisy_events = np.asarray(add_noise(events_cal, events))
        noisy_days = np.asarray(add_noise(time_cal, days))
        out = {}
        for name, (events_noise, time_noise) in models.items():
            out[name] = (
                incidence_rates(noisy_events, noisy_days, events_noise=events_noise, time_noise=time_noise, rng=rng),
                direct_standardise(
                    noisy_events.reshape(strata, -1),
                    noisy_days.reshape(strata, -1),
                    weights,
                    events_noise=events_noise,
                    time_noise=time_noise,
                    rng=rng,
                ),
            )
        (rate, std), (wrong_rate, wrong_std) = out["stated"], out["understated"]
        rates.add(
            exact_rate,
            (rate.ci_low, rate.ci_high),
            (rate.noise_ci_low, rate.noise_ci_high),
            (wrong_rate.noise_ci_low, wrong_rate.noise_ci_high),
        )
        standardised.add(
            exact_standardised,
            (std.ci_low, std.ci_high),
            (std.noise_ci_low, std.noise_ci_high),
            (wrong_std.noise_ci_low, wrong_std.noise_ci_high),
        )
        rate_errors.append(np.abs(rate.rate - exact_rate))
        standardised_errors.append(np.abs(std.rate - exact_standardised))
    large = events >= 200
    assert large.sum() >= 20
    relative = np.median(rate_errors, axis=0)[large] / exact_rate[large]
    relative_standardised = np.median(standardised_errors, axis=0) / exact_standardised
    print(
        f"rates: median relative error, cells with >= 200 events: max {relative.max():.4f}; "
        f"standardised: max {relative_standardised.max():.4f}"
    )
    assert (relative <= 0.01).all(), f"median relative errors above 1%: {relative}"
    assert (relative_standardised <= 0.01).all(), f"standardised: {relative_standardised}"
    rates.assert_covers_and_has_power("incidence rates")
    standardised.assert_covers_and_has_power("standardised rates")
