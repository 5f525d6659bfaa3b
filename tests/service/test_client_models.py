"""Models and Table 1 through the real server and the Python client (issue 16 item 6): frames of the
fitted terms, Table 1 as CSV and HTML, one charge per analysis, and the error body for a bad model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.client import Client, InvalidQuery
from tests.helpers.cohorts import lpr_cohort, metformin
from tests.service.svc_helpers import ProjectAccess, Server

COHORT = lpr_cohort("I", exposures=[metformin()])


def test_models_and_table1_as_frames(
    server: Server, make_project: Callable[..., ProjectAccess], tmp_path: Path
) -> None:
    access = make_project(10.0)
    with Client(server.url, token=access.token) as api:
        query = {
            "project": access.id,
            "cohort": COHORT,
            "group_by": ["cohort.metformin", "cpr.sex"],
            "epsilon": 1.0,
        }
        preview = api.preview({**query, "measure": "poisson_regression"})
        assert preview["expected_intervals"] and preview["loss"]["epsilon"] <= 1.0
        poisson = api.poisson_regression(query)
        assert list(poisson.terms["term"]) == ["cohort.metformin=1", "cpr.sex=M"]
        assert (poisson.terms["ci_low"] <= poisson.terms["estimate"]).all()
        assert len(poisson.table) == 4 and "person_years" in poisson.table
        logistic = api.logistic_regression({**query, "epsilon": 0.5})
        assert poisson.release["model"]["estimate"] == "rate_ratio"
        assert logistic.release["model"]["estimate"] == "odds_ratio" and len(logistic.terms) == 2
        table = api.table1(
            {
                "project": access.id,
                "cohort": COHORT,
                "group_by": ["cohort.metformin"],
                "variables": ["cpr.sex", "cohort.age"],
                "epsilon": 1.0,
            }
        )
        assert {"variable", "level", "statistic", "cohort.metformin = 0", "cohort.metformin = 1"} <= set(
            table.wide
        )
        csv = table.to_csv(tmp_path / "table1.csv").read_text()
        html = table.to_html(tmp_path / "table1.html").read_text()
        assert (
            csv.startswith("variable,level,statistic,group,value") and "<table" in html and "median" in html
        )
        budget = api.budget(access.id)
        assert budget["epsilon_spent"] == pytest.approx(2.5, rel=1e-6)
        with pytest.raises(InvalidQuery) as caught:
            api.poisson_regression({**query, "group_by": ["cohort.event"]})
        assert caught.value.code == "unsupported_query" and "outcome" in caught.value.error
        assert api.budget(access.id)["epsilon_spent"] == pytest.approx(2.5, rel=1e-6)
