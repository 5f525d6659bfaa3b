"""Median income by region at 100,000 persons and epsilon 1: accurate, and its 95% interval covers.

The real path: a synthetic population of 100,000 persons made by the real generator and build, the
engine's plan and bounded SQL run once (``Engine._execute``), then many releases drawn from the
engine's OpenDP measurements (``engine._noise``: three noisy-max selections per region) and turned
into rows by ``make_release``. The exact medians come from DuckDB directly, not from the engine.

1. Accuracy: in the median over repetitions, the DP median of each region is within 2% of the exact.
2. Coverage: ``[ci_low, ci_high]`` meets the exact median range ``[Q-, Q+]`` (the lower and upper
   median) in at least 93% of all region-releases, and the hypothesis "miss rate <= 5%" is not
   rejected (one-sided binomial, p < 1e-6).
3. Power: two broken builds fail the same coverage check: interval ends drawn with 20 times the
   noise scale the interval was computed for (an understated noise scale: about 19% misses), and the
   grid bin of the point as the interval (a deliberately too narrow one: about 60% misses).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from query_engine import Engine, ProjectContext, parse_query
from query_engine import engine as engine_module
from query_engine.accuracy import alpha_for
from query_engine.mechanisms import calibrate_quantile, select_quantile
from query_engine.quantile_interval import end_scores, interval_shift, value_interval
from query_engine.release import make_release
from tests.statistical.stat_checks import P_REJECT, miss_rate_p

pytestmark = pytest.mark.slow

PERSONS = 100_000
REPETITIONS = 200
UNDERSTATED = 20
CONTEXT = ProjectContext("pure")
QUERY = {
    "project": "stat",
    "measure": "quantile",
    "register": "ind",
    "column": "disposable_income",
    "quantile": 0.5,
    "where": [{"column": "ind.year", "op": "=", "value": 2023}],
    "group_by": ["cpr.region"],
    "epsilon": 1.0,
}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datasets.build import build
    from datasets.generate import generate

    directory = tmp_path_factory.mktemp("income")
    generate(PERSONS, 20261206, directory / "raw", progress=False)
    build(directory / "raw", directory / "db.duckdb")
    return directory / "db.duckdb"


def _exact_median_ranges(db: Path) -> dict[str, tuple[int, int]]:
    """Per region, the lower and upper median of the clamped 2023 incomes (NULL as 0), by DuckDB."""
    sql = """
        SELECT p.region, LEAST(GREATEST(COALESCE(i.disposable_income, 0), -200000), 2000000)
        FROM ind AS i JOIN cpr AS p ON p.person_id = i.person_id WHERE i.year = 2023
    """
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.sql(sql).fetchall()
    by_region: dict[str, list[int]] = {}
    for region, value in rows:
        by_region.setdefault(region, []).append(int(value))
    ranges = {}
    for region, values in by_region.items():
        ordered = np.sort(values)
        n = len(ordered)
        ranges[region] = (int(ordered[(n + 1) // 2 - 1]), int(ordered[n // 2]))
    return ranges


def test_median_income_by_region_is_accurate_and_its_interval_covers(population: Path) -> None:
    query = parse_query(QUERY)
    exact_ranges = _exact_median_ranges(population)
    with Engine.open(population) as engine:
        prepared = engine._prepare(query, CONTEXT)
        exact = engine._execute(prepared.plan)  # the real bounded SQL, once
    plan, quantile, value = prepared.plan, prepared.plan.quantile, prepared.plan.value
    assert quantile is not None and value is not None and quantile.candidates >= 1_000
    regions = [key[0] for key in exact.keys]
    assert sorted(regions) == sorted(exact_ranges)
    # Understated noise: the ends' scores use the real shift, the selections 1/20 of the loss.
    end = prepared.calibrations[1]
    noisier = calibrate_quantile(
        end.sensitivity.linf, end.loss.value / UNDERSTATED, quantile.candidates, end.sensitivity.l0
    )
    shift = interval_shift(end, alpha_for(query.confidence))
    lower_scores, upper_scores = end_scores(
        exact.values["below"], exact.values["rows"], quantile.numerator, quantile.denominator, shift
    )
    errors: dict[str, list[float]] = {region: [] for region in regions}
    misses = understated_misses = narrow_misses = 0
    for _ in range(REPETITIONS):
        keys, noisy = engine_module._noise(prepared, exact)
        release = make_release(query, plan, prepared.calibrations, keys, noisy, small_cell_threshold=0)
        understated = value_interval(
            quantile,
            value.resolution,
            noisy["index"],
            select_quantile(noisier, lower_scores),
            select_quantile(noisier, upper_scores),
        )
        narrow = value_interval(quantile, value.resolution, noisy["index"], noisy["index"], noisy["index"])
        for i, row in enumerate(release.rows):
            low, high = exact_ranges[row["cpr.region"]]
            errors[row["cpr.region"]].append(abs(row["value"] - (low + high) / 2) / ((low + high) / 2))
            misses += not (row["ci_low"] <= high and low <= row["ci_high"])
            understated_misses += not (understated[0][i] <= high and low <= understated[1][i])
            narrow_misses += not (narrow[0][i] <= high and low <= narrow[1][i])
    for region, relative in errors.items():
        assert np.median(relative) <= 0.02, f"{region}: median relative error {np.median(relative):.4f}"
    total = REPETITIONS * len(regions)
    alpha = alpha_for(query.confidence)
    assert misses <= 0.07 * total, f"the 95% interval covered only {1 - misses / total:.3f}"
    assert miss_rate_p(misses, total, alpha) > P_REJECT, f"{misses}/{total} misses at alpha {alpha}"
    for name, wrong in (("understated noise", understated_misses), ("point's grid bin", narrow_misses)):
        assert wrong > 0.07 * total, f"{name}: the broken interval still covered ({wrong}/{total} misses)"
        assert miss_rate_p(wrong, total, alpha) < P_REJECT, f"{name}: {wrong}/{total} misses not rejected"
