"""Accuracy of a DP rate ratio at national scale (issue 16): coverage of the exact estimate by the
noise-aware and the naive intervals, and the median relative error of the DP rate ratio.

    python -m benchmarks.models_accuracy --persons 1000000 --repetitions 200

The exact table of the Poisson model is computed once by the engine's SQL; each repetition adds fresh
OpenDP noise (the release's own calibrations, epsilon 1) and fits the model as a release does. The
exact estimate is the same fit on the exact table. Last line: one JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.engine import CONTEXT, dataset, dataset_parser
from benchmarks.models import QUERIES
from query_engine import Engine, EngineSettings, Query
from query_engine.analyses import exact_analysis
from query_engine.models_plan import ModelPlan
from tests.statistical.noisy_poisson import exact_rate_ratios, noisy_fits

_YOUNG_BANDS = ("0-", "10-", "20-")


def measure(db: Path, repetitions: int, epsilon: float) -> dict[str, float | int]:
    with Engine.open(db, EngineSettings(threads=2, memory_limit="4GB")) as engine:
        query = Query.model_validate(
            {"project": "bench", "epsilon": epsilon, **QUERIES["poisson_metformin_sex_age"]}
        )
        prepared = engine._model(query, CONTEXT)
        assert isinstance(prepared.plan, ModelPlan)
        (table,) = prepared.plan.tables
        exact = exact_analysis(engine.backend, engine.catalog, table).values
    keys = [g.keys for g in table.groups]
    cells = [(a, b, c) for a in keys[0] for b in keys[1] for c in keys[2]]
    # Myocardial infarction before 30 is (almost) absent, so the exact fit of those age levels has no
    # finite maximum; the comparison uses the age bands from 30 (a fixed, public choice), noisy and exact.
    adult = np.array([not str(c[2]).startswith(_YOUNG_BANDS) for c in cells])
    cells = [c for c, keep in zip(cells, adult, strict=True) if keep]
    exact = {name: np.asarray(values)[adult] for name, values in exact.items()}
    labels = {name: [cell[i] for cell in cells] for i, name in enumerate(query.group_by)}
    truth = exact_rate_ratios(labels, exact)[0]  # cohort.metformin=1
    covered = naive_covered = 0
    errors = []
    for result in noisy_fits(labels, exact, prepared.calibrations, repetitions):
        covered += bool(result.ci_low[0] <= truth <= result.ci_high[0])
        naive_covered += bool(result.naive_ci_low[0] <= truth <= result.naive_ci_high[0])
        errors.append(abs(result.estimate[0] / truth - 1))
    return {
        "events": int(exact["events"].sum()),
        "exact_rate_ratio": round(float(truth), 4),
        "coverage": covered / repetitions,
        "naive_coverage": naive_covered / repetitions,
        "median_relative_error": round(float(np.median(errors)), 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = dataset_parser(__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--epsilon", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = measure(dataset(args.persons, args.seed, args.data_dir), args.repetitions, args.epsilon)
    print(json.dumps({"persons": args.persons, "epsilon": args.epsilon, **result}))


if __name__ == "__main__":
    main()
