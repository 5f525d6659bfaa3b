"""The Python client's analysis methods through the real server: pandas frames of rates, survival,
prevalence and named cohorts, with the raw release kept beside them (issue 15 item 6)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pandas as pd
import pytest

from service.client import Client
from service.client_frames import frames_for
from tests.helpers.cohorts import lpr_cohort
from tests.service.svc_helpers import ProjectAccess, Server

COHORT = lpr_cohort("I21", name="first-mi-client")


def test_rates_survival_prevalence_and_cohorts_as_frames(
    server: Server, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(10.0)
    with Client(server.url, token=access.token) as api:
        rates = api.rates(
            {
                "project": access.id,
                "cohort": COHORT,
                "group_by": ["cpr.sex", "cohort.age_band"],
                "standard_population": "esp2013",
                "epsilon": 1.0,
            }
        )
        release = rates.release
        assert list(rates.table.columns) == release["columns"]
        assert len(rates.table) == len(release["rows"]) > 0
        assert set(rates.table["cpr.sex"]) == {row["cpr.sex"] for row in release["rows"]}
        for column in ("events", "person_years", "rate", "noise_ci_low", "sampling_ci_high"):
            assert column in rates.table
        assert rates.standardised is not None
        assert len(rates.standardised) == len(release["standardised"]["rows"])
        assert {"rate", "crude_rate", "ci_low", "crude_ci_high"} <= set(rates.standardised.columns)
        assert rates.standardised.attrs["population"] == "esp2013"
        assert frames_for(release).table.equals(rates.table)

        survival = api.survival(
            {
                "project": access.id,
                "cohort": "first-mi-client",
                "group_by": ["cpr.sex"],
                "time_bins": {"unit": "months", "width": 6},
                "horizons_years": [1, 5],
                "epsilon": 1.0,
            }
        )
        curve = survival.curve
        assert survival.unit == survival.release["survival"]["unit"]
        assert list(curve.columns[:7]) == [
            "cpr.sex",
            "time",
            "at_risk",
            "events",
            "survival",
            "ci_low",
            "ci_high",
        ]
        assert len(curve) == len(survival.release["survival"]["rows"]) > 0
        assert sorted(set(survival.horizons["years"])) == [1, 5]
        assert set(survival.median["cpr.sex"]) == set(curve["cpr.sex"])
        assert pd.api.types.is_float_dtype(survival.median["median_years"])
        assert list(survival.table.columns) == survival.release["columns"]

        prevalence = api.prevalence(
            {
                "project": access.id,
                "condition": {
                    "register": "lpr",
                    "where": [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}],
                },
                "group_by": ["cpr.sex"],
                "epsilon": 0.5,
            }
        )
        assert list(prevalence.table.columns) == prevalence.release["columns"]
        assert set(prevalence.table["cpr.sex"]) == {"F", "M"}

        cohorts = api.cohorts(access.id)
        assert list(cohorts["name"]) == ["first-mi-client"]
        assert cohorts.loc[0, "index_register"] == "lpr" and cohorts.loc[0, "follow_up_years"] == 5
        assert cohorts.loc[0, "outcome_register"] == "death"
        assert cohorts.loc[0, "follow_up_days"] is None  # declared in years
        assert cohorts.loc[0, "definition"]["index"]["where"] == COHORT["index"]["where"]


def test_an_analysis_method_refuses_another_measure() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"columns": [], "rows": [], "query": {"measure": "rate"}})

    with Client("http://api.test", token="t", transport=httpx.MockTransport(handler)) as api:
        with pytest.raises(ValueError, match="use run"):
            api.rates({"project": "p", "measure": "count_persons", "epsilon": 1})
        assert sent == []  # nothing was sent, nothing spent
        frames = api.rates({"project": "p", "cohort": "x", "epsilon": 1})
    assert json.loads(sent[0].content)["measure"] == "rate"
    assert frames.table.empty and frames.standardised is None


def test_frames_for_names_the_measures_it_knows() -> None:
    with pytest.raises(ValueError, match="rate_frames"):
        frames_for({"query": {"measure": "count_persons"}, "columns": [], "rows": []})
