"""Table 1's one statement gives, for every variable, exactly the histogram of that variable's own
analysis SQL, also when some persons have a missing value in another variable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from query_engine.analyses import exact_analysis
from query_engine.backends import DuckDBBackend
from query_engine.catalog import Catalog
from query_engine.compile_table1 import table1_histograms
from query_engine.models_plan import ModelPlan, plan_model
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from tests.helpers.cohorts import lpr_cohort, metformin
from tests.query_engine.engine_fixtures import create_db, random_dataset


def test_one_statement_equals_the_per_variable_histograms(catalog: Catalog, tmp_path: Path) -> None:
    tables = random_dataset(seed=11, persons=600, catalog=catalog)
    for i, person in enumerate(tables["cpr"]):
        if i % 7 == 0:
            person["region"] = None  # missing in one variable only
    query = parse_query(
        {
            "project": "p",
            "measure": "table1",
            "cohort": lpr_cohort(
                "E",
                entry=("2010-01-01", "2024-12-31"),
                exposures=[metformin(op="=", lookback_days=None)],
                follow_up_years=3,
            ),
            "group_by": ["cohort.metformin"],
            "variables": ["cpr.sex", "cpr.region", "cohort.age", "cohort.event", "cohort.period"],
            "epsilon": 1.0,
        }
    )
    plan = plan_model(query, catalog, ProjectContext("pure"), EngineSettings())
    assert isinstance(plan, ModelPlan) and plan.cross is not None
    backend = DuckDBBackend(create_db(tmp_path / "t1.duckdb", catalog, tables))
    try:
        together = table1_histograms(backend, catalog, plan)
        alone = [exact_analysis(backend, catalog, table).values["count"] for table in plan.tables]
    finally:
        backend.close()
    assert [h.sum() for h in together] and together[0].sum() > 50
    for variable, one, own in zip(plan.variables, together, alone, strict=True):
        np.testing.assert_array_equal(one, own, err_msg=variable.name)
    # The missing regions are missing from the region histogram only.
    sex, region = together[0], together[1]
    assert region.sum() < sex.sum()
