"""Models benchmark: a DP model or Table 1 versus raw SQL computing the same exact table plus the same fit.

    python -m benchmarks.models --persons 1000000

Reuses the dataset helper of ``benchmarks.engine``. Per query, interleaved: one DP run (cost,
recheck, the analysis SQL, OpenDP noise, the fit with its bootstrap intervals, the release) and one
raw run: the identical SQL on the same DuckDB connection (the engine's backend, which holds the
file's one configuration) plus the same statsmodels fit of the exact
table (naive intervals only: without noise there is nothing to simulate). Prints a table and, as its
last line, one JSON object with ``max_ratio``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from benchmarks.engine import CONTEXT, dataset, dp_run, interleaved, report_timings, timing_parser
from query_engine import Engine, EngineSettings, Query
from query_engine.estimators.design import categorical_design
from query_engine.linear_release import _moments
from query_engine.models import compiled_model
from tests.helpers.cohorts import INCOME_ON_AGE, lpr_cohort, metformin

COHORT = lpr_cohort("I21", exposures=[metformin()])
QUERIES: dict[str, dict[str, Any]] = {
    "poisson_metformin_sex_age": {
        "measure": "poisson_regression",
        "cohort": COHORT,
        "group_by": ["cohort.metformin", "cpr.sex", "cohort.age_band"],
    },
    "logistic_metformin_sex": {
        "measure": "logistic_regression",
        "cohort": {**{k: v for k, v in COHORT.items() if k != "follow_up_years"}, "follow_up_days": 30},
        "group_by": ["cohort.metformin", "cpr.sex"],
    },
    "linear_income_age_sex": {**INCOME_ON_AGE, "group_by": ["cpr.sex", "cpr.region"]},
    "table1_metformin": {
        "measure": "table1",
        "cohort": COHORT,
        "group_by": ["cohort.metformin"],
        "variables": ["cpr.sex", "cpr.region", "cohort.age"],
    },
}


def _raw_fit(name: str, query: Query, table: Any, plan: Any) -> None:
    """The same fit on the exact table (what a non-private analysis would do)."""
    if name.startswith("table1"):
        return  # percentages of the exact histograms: nothing to fit
    if name.startswith("linear"):
        values = np.array([table.column(i)[0].as_py() for i in range(table.num_columns)], dtype=float)
        moments = _moments(plan, values, np.zeros_like(values), "laplace")
        np.linalg.solve(moments.xtx, moments.xty)
        return
    covariates = list(query.group_by)
    keys = [table.column(f"g{i}").to_pylist() for i in range(len(covariates))]
    if name.startswith("poisson"):
        design = categorical_design(dict(zip(covariates, keys, strict=True)), table.num_rows)
        events = table.column("ev").to_numpy().astype(float)
        days = np.maximum(table.column("pt").to_numpy().astype(float), 1.0)
        GLM(events, design.matrix, family=families.Poisson(), offset=np.log(days)).fit()
        return
    counts = table.column("n").to_numpy().astype(float).reshape(-1, 2)
    labels = {c: k[::2] for c, k in zip(covariates, keys, strict=True)}
    design = categorical_design(labels, counts.shape[0])
    observed = counts.sum(axis=1) > 0  # a covariate pattern nobody has adds nothing to the likelihood
    GLM(counts[observed, ::-1], design.matrix[observed], family=families.Binomial()).fit()


def _raw_run(engine: Engine, name: str, query: Query, statements: Any, plan: Any) -> None:
    """The identical SQL on the engine's DuckDB connection, then the same fit of each exact table."""
    for compiled in statements:
        _raw_fit(name, query, engine.backend.execute(compiled), plan)


def bench(db: Path, repeats: int, threads: int) -> dict[str, dict[str, float]]:
    settings = EngineSettings(threads=threads, memory_limit="4GB")
    results: dict[str, dict[str, float]] = {}
    with Engine.open(db, settings) as engine:
        for name, fields in QUERIES.items():
            query = Query.model_validate({"project": "bench", "epsilon": 1.0, **fields})
            prepared = engine._model(query, CONTEXT)
            statements = compiled_model(prepared, engine.catalog, "duckdb")
            raw_run = partial(_raw_run, engine, name, query, statements, prepared.plan)
            results[name] = interleaved(partial(dp_run, engine, query), raw_run, repeats, warmups=1)
    return results


def main(argv: list[str] | None = None) -> None:
    args = timing_parser(__doc__.splitlines()[0], repeats=5).parse_args(argv)
    results = bench(dataset(args.persons, args.seed, args.data_dir), args.repeats, args.threads)
    report_timings(args.persons, results, width=30)


if __name__ == "__main__":
    main()
