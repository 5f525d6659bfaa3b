"""Rate ratios released through the real engine path cover the exact estimate at their level, and the
naive intervals (the noisy table taken as exact) do not when the noise matters (issue 16).

The exact table of a Poisson model is computed once by the engine's SQL on a generated database; each
repetition adds fresh OpenDP noise to it (``mechanisms.add_noise``, the release's own calibrations)
and fits the model as the release does. The exact estimate is the same fit on the exact table.
Coverage: the hypothesis "miss rate <= 5%" must not be rejected (one-sided binomial, p < 1e-6);
power: for the naive interval it must be. No seed is set.
"""

from __future__ import annotations

import pytest

from query_engine.analyses import exact_analysis
from query_engine.engine import Engine
from query_engine.models_plan import ModelPlan
from query_engine.spec import ProjectContext, parse_query
from tests.helpers.cohorts import lpr_cohort
from tests.helpers.server_fixtures import build_dataset
from tests.statistical.noisy_poisson import exact_rate_ratios, noisy_fits
from tests.statistical.stat_checks import P_REJECT, miss_rate_p

pytestmark = pytest.mark.slow

REPETITIONS = 200
QUERY = {
    "project": "p",
    "measure": "poisson_regression",
    "cohort": lpr_cohort("I"),
    "group_by": ["cpr.sex", "cohort.period"],
    # A small loss, so that the noise is large beside the sampling error of the cells.
    "epsilon": 0.1,
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine.open(build_dataset(tmp_path_factory.mktemp("models-coverage"), persons=5000))


def test_rate_ratio_intervals_cover_the_exact_estimate_and_naive_ones_do_not(engine: Engine) -> None:
    query = parse_query(QUERY)
    prepared = engine._model(query, ProjectContext("pure"))
    assert isinstance(prepared.plan, ModelPlan)
    (table,) = prepared.plan.tables
    exact = exact_analysis(engine.backend, engine.catalog, table).values
    cells = len(exact["events"])
    labels = {
        "cpr.sex": [k for k in table.groups[0].keys for _ in table.groups[1].keys],
        "cohort.period": [k for _ in table.groups[0].keys for k in table.groups[1].keys],
    }
    assert len(labels["cpr.sex"]) == cells and exact["events"].sum() > 100
    truth = exact_rate_ratios(labels, exact)
    sex = 0  # the term cpr.sex=M: every cell informs it
    misses = naive_misses = 0
    for result in noisy_fits(labels, exact, prepared.calibrations, REPETITIONS):
        misses += not result.ci_low[sex] <= truth[sex] <= result.ci_high[sex]
        naive_misses += not result.naive_ci_low[sex] <= truth[sex] <= result.naive_ci_high[sex]
    assert miss_rate_p(misses, REPETITIONS, 0.05) > P_REJECT, f"{misses}/{REPETITIONS} misses"
    assert miss_rate_p(naive_misses, REPETITIONS, 0.05) < P_REJECT, (
        f"naive: {naive_misses}/{REPETITIONS} misses"
    )
