"""The Models and Table 1 pages under AppTest against a fake API (``httpx.MockTransport``): the query
each page sends, the preview's expected intervals, the forest plot and the terms, a model the service
could not fit, and Table 1 with its downloads (the real service behind these pages:
tests/dashboard/test_dashboard_models_live.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pandas as pd
import pytest

from dashboard import charts as charts_module
from dashboard import model_tables
from dashboard.i18n import translate
from query_engine.models_release import TABLE1_COLUMNS
from service.model_frames import table1_frames
from tests.dashboard.dash_helpers import FakeApi, app_test, charts, open_page, pure_privacy, sign_in, texts
from tests.dashboard.test_dashboard_analyses import FIRST_MI, PREVIEW, _api, _sent

PRIVACY = pure_privacy(1.0)
TERMS = [
    {
        "term": "cohort.metformin=1",
        "covariate": "cohort.metformin",
        "level": "1",
        "estimate": 0.8,
        "ci_low": 0.55,
        "ci_high": 1.16,
        "naive_ci_low": 0.66,
        "naive_ci_high": 0.97,
    },
    {
        "term": "cpr.sex=F",
        "covariate": "cpr.sex",
        "level": "F",
        "estimate": 0.62,
        "ci_low": 0.48,
        "ci_high": 0.81,
        "naive_ci_low": 0.53,
        "naive_ci_high": 0.73,
    },
]
STORED = {
    "name": "first-mi",
    "definition": {
        **FIRST_MI,
        "exposures": [
            {"name": "metformin", "register": "lmdb", "date": "date", "where": [], "lookback_days": 365}
        ],
    },
    "created_at": "2026-12-06T10:00:00+00:00",
    "created_by": "analyst:tok_a",
}
MODEL_PREVIEW = {
    **PREVIEW,
    "expected_intervals": [
        {
            "covariate": c,
            "cells_per_level": 2,
            "events_per_level": n,
            "half_width_log": h,
            "naive_half_width_log": nh,
            "ratio_interval_at_1": [0.0, 0.0],
        }
        for c in ("cohort.metformin", "cpr.sex")
        for n, h, nh in ((100, 0.4055, 0.2772), (1000, 0.1054, 0.0877))
    ],
}


def _release(model: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    return {
        "release_id": "r_model",
        "project": "p1",
        "cached": False,
        "privacy": PRIVACY,
        "confidence": 0.95,
        "columns": [],
        "rows": [],
        "budget": {"epsilon_remaining": 1.0},
        "query": query,
        "model": model,
    }


POISSON = _release(
    {
        "family": "poisson",
        "estimate": "rate_ratio",
        "reference": {"cohort.metformin": "0", "cpr.sex": "M"},
        "confidence": 0.95,
        "terms": TERMS,
    },
    {"measure": "poisson_regression", "group_by": ["cohort.metformin", "cpr.sex"], "cohort": "first-mi"},
)


def _models(fake: FakeApi, release: dict[str, Any]) -> FakeApi:
    _api(fake, [STORED])
    fake.routes["POST /v1/queries/preview"] = MODEL_PREVIEW
    fake.routes["POST /v1/queries"] = release
    return fake


def test_a_poisson_model_of_a_stored_cohort_with_its_exposure_shows_a_forest_plot_and_both_intervals(
    fake_api: FakeApi,
) -> None:
    _models(fake_api, POISSON)
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "models")
    assert at.title[0].value == "Models"
    at.radio(key="models_cohort_mode").set_value("stored").run()
    covariates = at.multiselect(key="models_poisson_regression_group_by")
    assert "cohort.metformin" in covariates.options[-1]  # the stored cohort's exposure is offered
    covariates.set_value(["cohort.metformin", "cpr.sex"]).run()
    at.selectbox(key="models_reference_cpr.sex").set_value("M").run()
    assert not at.exception, [e.value for e in at.exception]
    previewed = _sent(fake_api, "/v1/queries/preview")
    assert previewed["measure"] == "poisson_regression" and previewed["cohort"] == "first-mi"
    assert previewed["group_by"] == ["cohort.metformin", "cpr.sex"]
    assert previewed["reference"] == {"cohort.metformin": "0", "cpr.sex": "M"}
    expected = next(t.value for t in at.table if "Events per level" in t.value.columns)
    # exp(±0.4055) = 0.667 – 1.5: the interval a ratio of 1 gets with 100 events on each side.
    assert list(expected["Interval of a ratio of 1 (with the noise)"])[0] == "0.667 – 1.5"
    assert list(expected["Without the noise"])[0] == "0.758 – 1.32"
    assert fake_api.calls("POST", "/v1/queries") == []  # nothing spent before Run

    at.button(key="models_run").click().run()
    at.button(key="models_run").click().run()  # a second click: the same key, the stored release
    assert not at.exception, [e.value for e in at.exception]
    runs = fake_api.calls("POST", "/v1/queries")
    assert len(runs) == 2 and runs[0].headers["idempotency-key"] == runs[1].headers["idempotency-key"]
    assert json.loads(runs[0].content) == previewed
    terms = next(t.value for t in at.table if "Rate ratio" in t.value.columns)
    assert list(terms["Term"]) == ["metformin: yes (vs no)", "Sex: Female (vs Male)"]
    assert list(terms["Rate ratio"]) == ["0.8", "0.62"]
    assert list(terms["Interval (with the noise)"]) == ["0.55 – 1.16", "0.48 – 0.81"]
    assert list(terms["Naive interval (without the noise)"]) == ["0.66 – 0.97", "0.53 – 0.73"]
    (spec,) = charts(at)
    layers = spec["layer"]
    assert layers[0]["mark"]["type"] == "rule" and layers[0]["encoding"]["x"]["scale"]["type"] == "log"
    assert layers[0]["encoding"]["size"]["field"] == "kind"  # the naive interval behind, lighter and thicker
    assert layers[0]["encoding"]["color"]["scale"]["domain"] == [
        "95% interval with the noise",
        "95% naive interval",
    ]
    assert [layer["encoding"]["x"].get("field") for layer in layers] == ["low", "estimate", None]
    assert layers[2]["encoding"]["x"]["datum"] == 1.0  # the reference line of a ratio


@pytest.mark.parametrize(
    ("ratio", "line", "scale"), [(True, 1.0, "log"), (False, 0.0, None)], ids=["ratio", "coefficient"]
)
def test_the_forest_plot_has_both_intervals_per_term_and_its_reference_line(
    ratio: bool, line: float, scale: str | None
) -> None:
    terms = pd.DataFrame.from_records(TERMS)
    terms.loc[1, "ci_low"] = -0.1 if ratio else terms.loc[1, "ci_low"]  # a log axis cannot show it
    spec = charts_module.forest_chart(
        terms, ["a", "b"], ratio=ratio, estimate_title="RR", interval_titles=("noise", "naive")
    ).to_dict()
    data = {name: rows for name, rows in spec["datasets"].items()}
    intervals, points, _ = (data[layer["data"]["name"]] for layer in spec["layer"])
    assert {(r["term"], r["kind"]) for r in intervals} == {
        (t, k) for t in "ab" for k in ("noise", "naive")
    } - ({("b", "noise")} if ratio else set())
    assert [(r["term"], r["estimate"]) for r in points] == [("a", 0.8), ("b", 0.62)]
    assert spec["layer"][2]["encoding"]["x"] == {"datum": line}
    assert spec["layer"][0]["encoding"]["x"]["scale"].get("type") == scale


def test_a_logistic_model_the_service_could_not_fit_says_why(fake_api: FakeApi) -> None:
    unfitted = _release(
        {
            "family": "binomial",
            "estimate": "odds_ratio",
            "reference": {},
            "confidence": 0.95,
            "terms": [],
            "error": "The model could not be fitted to the noisy table (no usable cell of cpr.sex=F).",
        },
        {"measure": "logistic_regression"},
    )
    _models(fake_api, unfitted)
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "models")
    at.radio(key="models_kind").set_value("logistic_regression").run()
    assert "Choose at least one covariate." in texts(at)
    assert fake_api.calls("POST", "/v1/queries/preview") == []  # nothing asked while incomplete
    at.multiselect(key="models_logistic_regression_group_by").set_value(["cpr.sex"]).run()
    assert _sent(fake_api, "/v1/queries/preview")["measure"] == "logistic_regression"
    at.button(key="models_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "no usable cell of cpr.sex=F" in texts(at)
    assert charts(at) == []


def test_a_linear_model_sends_clamped_columns_and_draws_coefficients_around_zero(fake_api: FakeApi) -> None:
    linear = _release(
        {
            "family": "gaussian",
            "estimate": "coefficient",
            "reference": {"cpr.sex": "F"},
            "confidence": 0.95,
            "terms": [
                {
                    "term": "intercept",
                    "estimate": 120.0,
                    "ci_low": 90.0,
                    "ci_high": 150.0,
                    "naive_ci_low": 110.0,
                    "naive_ci_high": 130.0,
                },
                {
                    "term": "cpr.age",
                    "estimate": -1.5,
                    "ci_low": -2.5,
                    "ci_high": -0.5,
                    "naive_ci_low": -1.75,
                    "naive_ci_high": -1.25,
                },
            ],
        },
        {"measure": "linear_regression"},
    )
    _models(fake_api, linear)
    fake_api.routes["GET /v1/projects/p1"] = {
        **fake_api.routes["GET /v1/projects/p1"],
        "registers": ["cpr", "ind"],
    }
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "models")
    at.radio(key="models_kind").set_value("linear_regression").run()
    at.selectbox(key="models_register").set_value("ind").run()
    at.number_input(key="models_hi_ind.disposable_income").set_value(600000).run()
    at.multiselect(key="models_numeric_ind").set_value(["cpr.age"]).run()
    assert not at.exception, [e.value for e in at.exception]
    previewed = _sent(fake_api, "/v1/queries/preview")
    assert previewed["measure"] == "linear_regression" and "cohort" not in previewed
    assert previewed["register"] == "ind" and previewed["column"] == "ind.disposable_income"
    assert previewed["bounds"] == [-200000, 600000]
    assert previewed["covariates"] == [{"column": "cpr.age", "bounds": [0, 110]}]
    at.button(key="models_run").click().run()
    terms = next(t.value for t in at.table if "Coefficient" in t.value.columns)
    assert list(terms["Term"])[0] == "Intercept"
    (spec,) = charts(at)
    assert "log" not in json.dumps(spec["layer"][0]["encoding"]["x"])
    assert spec["layer"][2]["encoding"]["x"]["datum"] == 0.0  # the reference line of a coefficient
    assert spec["layer"][0]["encoding"]["y"]["sort"] == [
        "Age in whole years at the reference date, or at death if earlier"
    ]  # no intercept in the plot


def test_the_covariate_limit_is_the_engines(fake_api: FakeApi) -> None:
    _models(fake_api, POISSON)
    limits = {
        "max_group_columns": 2,
        "max_cells": 20000,
        "max_epsilon": 10.0,
        "max_rho": 5.0,
        "min_epsilon": 0.01,
        "min_rho": 5e-05,
    }
    fake_api.routes["GET /v1/query-options"] = {"limits": limits, "bounding": []}
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "models")
    assert at.multiselect(key="models_poisson_regression_group_by").max_selections == 2
    asked = fake_api.calls("GET", "/v1/query-options")
    assert asked and asked[-1].url.params["measure"] == "poisson_regression"


TABLE1_ROWS = (
    [
        {
            "variable": "persons",
            "level": None,
            "statistic": "n",
            "group": g,
            "value": n,
            "ci_low": n - 9,
            "ci_high": n + 9,
            "count": n,
            "suppressed": False,
        }
        for g, n in (("F", 412.0), ("M", 590.0))
    ]
    + [
        {
            "variable": "cohort.age_band",
            "level": "70-79",
            "statistic": "percent",
            "group": g,
            "value": p,
            "ci_low": p - 3,
            "ci_high": p + 3,
            "count": c,
            "suppressed": False,
        }
        for g, p, c in (("F", 41.1, 169.0), ("M", 38.5, 227.0))
    ]
    + [
        {
            "variable": "cohort.age",
            "level": None,
            "statistic": "median",
            "group": g,
            "value": v,
            "ci_low": v - 1,
            "ci_high": v + 1,
            "count": None,
            "suppressed": False,
        }
        for g, v in (("F", 79.9), ("M", 77.0))
    ]
)
TABLE1 = {
    "release_id": "r_t1",
    "project": "p1",
    "cached": False,
    "privacy": PRIVACY,
    "confidence": 0.95,
    "columns": TABLE1_COLUMNS,
    "rows": TABLE1_ROWS,
    "small_cell_threshold": 5,
    "budget": {"epsilon_remaining": 1.0},
    "query": {"measure": "table1"},
    "table1": {"group_by": "cpr.sex", "groups": ["F", "M"], "variables": ["cohort.age_band", "cohort.age"]},
}
TABLE1_PREVIEW = {
    **PREVIEW,
    "expected_intervals": [
        {"variable": v, "persons_per_group": n, "percent_half_width_at_50": h}
        for v in ("cohort.age_band", "cohort.age")
        for n, h in ((100, 10.2), (1000, 3.12))
    ],
}


def test_table1_sends_group_and_variables_and_shows_the_familiar_table(fake_api: FakeApi) -> None:
    _api(fake_api, [])
    fake_api.routes["POST /v1/queries/preview"] = TABLE1_PREVIEW
    fake_api.routes["POST /v1/queries"] = TABLE1
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "table1")
    assert at.title[0].value == "Table 1"
    at.selectbox(key="table1_group_by").set_value("cpr.sex").run()
    assert "cpr.sex" not in at.multiselect(key="table1_variables").options[0]  # the group is no variable
    assert not at.exception, [e.value for e in at.exception]
    previewed = _sent(fake_api, "/v1/queries/preview")
    assert previewed["measure"] == "table1" and previewed["group_by"] == ["cpr.sex"]
    assert previewed["variables"] == ["cohort.age_band", "cohort.age"]
    expected = next(t.value for t in at.table if "Persons per group" in t.value.columns)
    assert list(expected["Interval of 50% (percentage points)"])[:2] == ["± 10.2", "± 3.12"]
    at.button(key="table1_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(t.value for t in at.table if "Level" in t.value.columns)
    assert list(table.columns) == ["Variable", "Level", "Sex: Female", "Sex: Male"]
    assert list(table["Variable"]) == ["Persons", "Age at index (10-year band)", "Age at index"]
    assert list(table["Level"]) == ["", "70-79", "Median"]
    assert list(table["Sex: Female"]) == ["412", "169 (41.1%) [38.1-44.1]", "79.9 [78.9-80.9]"]
    assert {b.key for b in at.get("download_button")} >= {"table1_result_csv", "table1_result_html"}


def test_table1_downloads_are_the_shown_table_as_csv_and_as_an_html_document() -> None:
    def tr(key: str, **values: Any) -> str:
        return translate("da", key, **values)

    titles = {"cpr.sex": "Køn", "cohort.age_band": "Alder ved indgang", "cohort.age": "Alder"}
    labels = {"cpr.sex": {"F": "Kvinde", "M": "Mand"}}
    table = model_tables.table1_table(table1_frames(TABLE1), labels, titles, tr)
    csv = model_tables.table1_csv(table).decode("utf-8-sig")
    assert csv.splitlines()[0] == "Variabel,Niveau,Køn: Kvinde,Køn: Mand"
    assert pd.read_csv(__import__("io").StringIO(csv)).shape == (3, 4)
    page = model_tables.table1_html(table, "Tabel 1", "n (%) <5 skjult").decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<th>Køn: Kvinde</th>" in page and "<td>169 (41.1%) [38.1-44.1]</td>" in page
    assert "&lt;5 skjult" in page  # escaped text, never markup


def test_the_pages_speak_danish(fake_api: FakeApi) -> None:
    _models(fake_api, POISSON)
    at = sign_in(app_test(fake_api.transport()), "sst_a")
    at.radio(key="lang").set_value("da").run()
    open_page(at, "models")
    assert at.title[0].value == "Modeller"
    assert at.radio(key="models_kind").options[0] == "Poisson-regression (rateratioer)"
    open_page(at, "table1")
    assert at.title[0].value == "Tabel 1"


def test_an_unreachable_query_options_says_so_and_asks_no_preview(fake_api: FakeApi) -> None:
    _models(fake_api, POISSON)

    def down(request: httpx.Request) -> Any:
        raise httpx.ConnectError("refused", request=request)

    fake_api.routes["GET /v1/query-options"] = down
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "models")
    assert "could not say how many covariates" in texts(at)
    assert fake_api.calls("POST", "/v1/queries/preview") == []


def test_an_exposure_defined_on_the_page_is_in_the_cohort_and_offered_as_a_covariate(
    fake_api: FakeApi,
) -> None:
    _models(fake_api, POISSON)
    project = fake_api.routes["GET /v1/projects/p1"]
    fake_api.routes["GET /v1/projects/p1"] = {**project, "registers": [*project["registers"], "lmdb"]}
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "models")
    at.checkbox(key="models_exposure_on").check().run()
    at.text_input(key="models_exposure_name").set_value("age").run()
    assert "'age' is not a valid exposure name" in texts(at)
    at.text_input(key="models_exposure_name").set_value("metformin").run()
    at.number_input(key="models_exposure_lookback").set_value(365).run()
    at.button(key="models_exposure_add_condition_lmdb").click().run()
    at.selectbox(key="models_exposure_cond_lmdb_0_column").set_value("lmdb.atc").run()
    at.selectbox(key="models_exposure_cond_lmdb_0_op").set_value("prefix").run()
    at.text_input(key="models_exposure_cond_lmdb_0_text").set_value("A10BA02").run()
    covariates = at.multiselect(key="models_poisson_regression_group_by")
    assert covariates.options[-1].startswith("cohort.metformin")
    covariates.set_value(["cohort.metformin"]).run()
    assert not at.exception, [e.value for e in at.exception]
    previewed = _sent(fake_api, "/v1/queries/preview")
    assert previewed["cohort"]["exposures"] == [
        {
            "name": "metformin",
            "register": "lmdb",
            "date": "date",
            "where": [{"column": "lmdb.atc", "op": "prefix", "value": "A10BA02"}],
            "lookback_days": 365,
        }
    ]
    assert previewed["group_by"] == ["cohort.metformin"]
