"""The dashboard's plain functions: catalog lookups, query drafts, keys, releases, exports, snippets."""

from __future__ import annotations

import ast
import datetime as dt
import io
import json
from typing import Any

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dashboard import budgets, catalog_lookup, charts, query_draft, results
from query_engine.spec import parse_query
from tests.dashboard.dash_helpers import REGISTERS, Api

RELEASE: dict[str, Any] = {
    "release_id": "r_0123",
    "project": "p",
    "cached": False,
    "privacy": {"epsilon": 0.5, "delta": 0.0, "rho": None, "mechanism": "discrete_laplace", "scale": 2.0},
    "confidence": 0.95,
    "columns": ["cpr.region", "cpr.sex", "value", "ci_low", "ci_high", "suppressed", "value_raw"],
    "rows": [
        {
            "cpr.region": "Hovedstaden",
            "cpr.sex": "F",
            "value": 1234,
            "ci_low": 1228,
            "ci_high": 1240,
            "suppressed": False,
        },
        {
            "cpr.region": "Hovedstaden",
            "cpr.sex": "M",
            "value": None,
            "ci_low": None,
            "ci_high": None,
            "suppressed": True,
        },
        {
            "cpr.region": "Sjælland",
            "cpr.sex": "F",
            "value": 0,
            "ci_low": 0,
            "ci_high": 6,
            "suppressed": False,
        },
    ],
    "budget": {"epsilon_spent": 0.5, "epsilon_remaining": 1.5},
    "measure": "count_persons",
    "query": {"measure": "count_persons", "group_by": ["cpr.region", "cpr.sex"]},
    "created_at": "2026-01-02T03:04:05Z",
}


# --- catalog ------------------------------------------------------------------------------------


def test_localized_picks_the_language_and_falls_back_to_english() -> None:
    text = {"en": "Region", "da": "Region (da)"}
    assert catalog_lookup.localized(text, "da") == "Region (da)"
    assert catalog_lookup.localized({"en": "Only English"}, "da") == "Only English"
    assert catalog_lookup.localized("plain", "da") == "plain"
    assert catalog_lookup.localized(None, "en") == ""


def test_column_index_holds_only_queryable_columns(catalog: dict[str, Any]) -> None:
    columns = catalog_lookup.column_index(catalog)
    assert "cpr.region" in columns and "lpr.icd10" in columns
    assert "cpr.person_id" not in columns and "lpr.row_key" not in columns
    assert columns["lpr.icd10"]["register"] == "lpr"


@pytest.mark.parametrize(
    ("register", "expected"),
    [
        pytest.param("lpr", ["lpr.los_days"], id="lpr_bed_days"),
        pytest.param("ind", ["ind.disposable_income"], id="ind_income"),
        pytest.param("lmdb", ["lmdb.ddd", "lmdb.packages"], id="lmdb_amounts"),
    ],
)
def test_measure_columns_are_bounded_numbers(
    catalog: dict[str, Any], register: str, expected: list[str]
) -> None:
    assert catalog_lookup.measure_columns(catalog, register) == expected


def test_group_columns_have_public_keys_first_and_open_domains_last(catalog: dict[str, Any]) -> None:
    groups = catalog_lookup.group_columns(catalog)
    assert {"cpr.region", "cpr.age_band", "lpr.icd10", "lpr.year", "lmdb.atc"} <= set(groups)
    assert "cpr.birth_date" not in groups and "lpr.los_days" not in groups
    assert groups[-1] == "lpr.diagnosis_code"
    assert all(g.startswith("cpr.") for g in catalog_lookup.group_columns(catalog, ["cpr"]))


@pytest.mark.parametrize(
    ("column", "kind", "has", "lacks"),
    [
        pytest.param("lpr.icd10", "codes", {"in", "prefix"}, {"between"}, id="icd10_codes_with_prefix"),
        pytest.param("cpr.sex", "codes", {"in", "="}, {"prefix", "between"}, id="sex_codes"),
        pytest.param(
            "cpr.birth_year", "codes", {"in", "between", ">="}, {"prefix"}, id="year_codes_and_ranges"
        ),
        pytest.param("lpr.los_days", "number", {"between", "<"}, {"in", "prefix"}, id="number"),
        pytest.param("lpr.admission_date", "date", {"between", ">="}, {"in", "="}, id="date"),
        pytest.param("lpr.diagnosis_code", "text", {"prefix", "in"}, {"between"}, id="open_text"),
    ],
)
def test_operators_follow_the_column(
    catalog: dict[str, Any], column: str, kind: str, has: set[str], lacks: set[str]
) -> None:
    col = catalog_lookup.column_index(catalog)[column]
    assert catalog_lookup.column_kind(col) == kind
    ops = set(catalog_lookup.operators_for(col))
    assert has <= ops and not (lacks & ops)


def test_year_columns_are_time_axes(catalog: dict[str, Any]) -> None:
    assert catalog_lookup.is_time_column(catalog, "lpr.year")
    assert catalog_lookup.is_time_column(catalog, "ind.year")
    assert not catalog_lookup.is_time_column(catalog, "cpr.region")


def test_code_search_finds_diabetes_by_title(catalog: dict[str, Any]) -> None:
    found = [code for code, _ in catalog_lookup.search_codes(catalog["keysets"]["icd10"], "diabetes")]
    assert {"E10", "E11", "E12", "E13", "E14"} <= set(found)
    assert "E15" not in found  # "Nondiabetic hypoglycaemic coma" is not diabetes


def test_code_search_by_code_prefix_and_several_words(catalog: dict[str, Any]) -> None:
    icd10 = catalog["keysets"]["icd10"]
    assert [c for c, _ in catalog_lookup.search_codes(icd10, "E11")] == ["E11"]
    type2 = catalog_lookup.search_codes(icd10, "type 2 diabetes")
    assert [c for c, _ in type2] == ["E11"] and "Type 2" in type2[0][1]
    metformin = catalog_lookup.search_codes(catalog["keysets"]["atc5"], "metformin")
    assert metformin[0][0] == "A10BA02" and all("metformin" in label for _, label in metformin)
    assert len(catalog_lookup.search_codes(icd10, "", limit=10)) == 10


def test_code_search_uses_danish_labels_when_the_catalog_has_them() -> None:
    keyset = {
        "values": ["E11"],
        "labels": {"E11": "Type 2 diabetes mellitus"},
        "labels_da": {"E11": "Type 2-diabetes"},
    }
    assert catalog_lookup.search_codes(keyset, "2-diabetes", lang="da") == [("E11", "Type 2-diabetes")]
    assert catalog_lookup.code_label(keyset, "E11", "en") == "Type 2 diabetes mellitus"


def test_catalog_search_finds_registers_and_columns(catalog: dict[str, Any]) -> None:
    assert catalog_lookup.search_catalog(catalog, "income", "en") == {"ind": ["year", "disposable_income"]}
    assert "lpr" in catalog_lookup.search_catalog(catalog, "Landspatientregisteret", "da")
    assert set(catalog_lookup.search_catalog(catalog, "", "en")) == REGISTERS
    assert catalog_lookup.search_catalog(catalog, "no-such-thing", "en") == {}


# --- query drafts -------------------------------------------------------------------------------

WHERE = (
    query_draft.Condition("lpr.icd10", "prefix", "E11"),
    query_draft.Condition("lpr.admission_date", "between", [dt.date(2018, 1, 1), dt.date(2020, 12, 31)]),
    query_draft.Condition("cpr.sex", "in", ["F"]),
)


@pytest.mark.parametrize(
    "draft",
    [
        pytest.param(
            query_draft.QueryDraft(
                "p", "count_persons", register="lpr", where=WHERE, group_by=("cpr.region", "cpr.age_band")
            ),
            id="count_persons",
        ),
        pytest.param(
            query_draft.QueryDraft("p", "count_rows", register="lpr", group_by=("lpr.year",)), id="count_rows"
        ),
        pytest.param(
            query_draft.QueryDraft(
                "p", "sum", register="lpr", column="lpr.los_days", bounds=(0, 30), loss_kind="rho", loss=0.01
            ),
            id="sum_rho",
        ),
        pytest.param(
            query_draft.QueryDraft("p", "mean", register="ind", column="ind.disposable_income"), id="mean"
        ),
        pytest.param(
            query_draft.QueryDraft(
                "p", "quantile", register="ind", column="ind.disposable_income", quantile=0.9
            ),
            id="quantile",
        ),
        pytest.param(
            query_draft.QueryDraft("p", "count_persons", loss_kind="target_ci", loss=25.0, confidence=0.9),
            id="accuracy_first",
        ),
    ],
)
def test_drafts_become_contract_queries(draft: query_draft.QueryDraft) -> None:
    query = draft.to_query()
    parsed = parse_query(query)  # the engine's own model accepts it
    assert parsed.measure == draft.measure
    given = [name for name in ("epsilon", "rho", "target_ci") if query.get(name) is not None]
    assert given == [draft.loss_kind]
    if draft.measure in ("count_persons", "count_rows"):
        assert query["column"] is None and query["bounds"] is None
    if draft.measure == "count_persons":
        assert query["register"] == "cpr"
    assert (query["quantile"] is not None) == (draft.measure == "quantile")


def test_condition_values_are_json() -> None:
    assert WHERE[1].to_json() == {
        "column": "lpr.admission_date",
        "op": "between",
        "value": ["2018-01-01", "2020-12-31"],
    }
    assert query_draft.Condition("cpr.age", ">=", 40.0).to_json()["value"] == 40


@pytest.mark.parametrize(
    ("make", "key"),
    [
        pytest.param(
            lambda: query_draft.QueryDraft("p", "mean"), "error_need_column", id="mean_without_column"
        ),
        pytest.param(
            lambda: query_draft.QueryDraft("p", "sum", column="lpr.los_days", bounds=(5, 5)),
            "error_bounds",
            id="empty_bounds",
        ),
        pytest.param(
            lambda: query_draft.QueryDraft("p", group_by=("a", "a")),
            "error_group_by_repeat",
            id="repeated_group",
        ),
        pytest.param(lambda: query_draft.QueryDraft("p", loss=0.0), "error_loss", id="zero_loss"),
        pytest.param(
            lambda: query_draft.Condition("cpr.sex", "in", []), "error_condition_values", id="empty_in"
        ),
        pytest.param(
            lambda: query_draft.Condition("cpr.age", "between", [1]),
            "error_condition_between",
            id="half_between",
        ),
        pytest.param(
            lambda: query_draft.Condition("lpr.icd10", "prefix", ""),
            "error_condition_value",
            id="empty_prefix",
        ),
    ],
)
def test_incomplete_drafts_name_their_message(make: Any, key: str) -> None:
    with pytest.raises(query_draft.DraftError) as raised:
        make()
    assert raised.value.key == key


def test_loss_kinds_follow_the_accounting_mode() -> None:
    assert query_draft.loss_kinds("pure") == ["epsilon", "target_ci"]
    assert query_draft.loss_kinds("zcdp") == ["epsilon", "rho", "target_ci"]


def test_idempotency_key_is_made_once_per_distinct_query() -> None:
    keys: dict[str, str] = {}
    made = iter(["k1", "k2", "k3"])
    query = query_draft.QueryDraft("p", group_by=("cpr.region",)).to_query()
    first = query_draft.idempotency_key(keys, query, new=lambda: next(made))
    again = query_draft.idempotency_key(keys, dict(reversed(list(query.items()))), new=lambda: next(made))
    other = query_draft.idempotency_key(keys, {**query, "epsilon": 0.2}, new=lambda: next(made))
    assert (first, again, other) == ("k1", "k1", "k2")


def test_python_snippet_runs_the_same_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snippet is valid Python that previews and runs exactly the shown query with the client."""
    query = query_draft.QueryDraft("p", "count_persons", where=WHERE, group_by=("cpr.region",)).to_query()
    code = query_draft.python_snippet(query, "http://api.example")
    assigned = next(
        n for n in ast.parse(code).body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "query"
    )
    assert ast.literal_eval(assigned.value) == query
    assert "sst_" not in code and "SUNDSTAT_TOKEN" in code
    seen = _recorded_snippet_requests(code, monkeypatch)
    assert [r.url.path for r in seen] == ["/v1/queries/preview", "/v1/queries"]
    assert seen[1].headers["Idempotency-Key"] and seen[1].headers["Authorization"] == "Bearer sst_analyst_x"
    assert httpx.Response(200, content=seen[1].content).json() == query


def test_query_json_round_trips() -> None:
    query = query_draft.QueryDraft("p").to_query()
    assert json.loads(query_draft.query_json(query)) == query


def _recorded_snippet_requests(code: str, monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Execute a client snippet against a recording fake API; the requests it sent."""
    import service.client

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"rows": [{"value": 1}]})

    real = service.client.Client

    class Recording(real):  # type: ignore[misc,valid-type]
        def __init__(self, base_url: str, token: str | None = None, **kwargs: Any) -> None:
            super().__init__(base_url, token, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(service.client, "Client", Recording)
    monkeypatch.setenv("SUNDSTAT_TOKEN", "sst_analyst_x")
    exec(compile(code, "snippet", "exec"), {})
    return seen


# --- contribution bounding ----------------------------------------------------------------------


def test_bounds_go_into_the_query_only_when_set() -> None:
    plain = query_draft.QueryDraft("p", "count_rows", register="lpr", group_by=("lpr.year",)).to_query()
    assert "max_groups" not in plain and "max_rows" not in plain
    bounded = query_draft.QueryDraft(
        "p", "count_rows", register="lpr", group_by=("lpr.year",), max_groups=2, max_rows=3
    ).to_query()
    assert (bounded["max_groups"], bounded["max_rows"]) == (2, 3)
    parsed = parse_query(bounded)
    assert (parsed.max_groups, parsed.max_rows) == (2, 3)
    with pytest.raises(query_draft.DraftError) as raised:
        query_draft.QueryDraft("p", max_rows=0)
    assert raised.value.key == "error_bounding" and raised.value.values == {"name": "max_rows"}


# --- SQL ----------------------------------------------------------------------------------------

SQL = "SELECT region, COUNT(*)\nFROM cpr\nGROUP BY region"


def test_sql_draft_body() -> None:
    body = query_draft.SqlDraft(
        "p", SQL + "\n\n", loss_kind="rho", loss=0.01, confidence=0.9, max_rows=3
    ).to_body()
    assert body == {"project": "p", "sql": SQL, "rho": 0.01, "confidence": 0.9, "max_rows": 3}
    assert query_draft.SqlDraft("p", "  " + SQL).to_body()["sql"] == "  " + SQL  # positions stay those typed


@pytest.mark.parametrize(
    ("make", "key"),
    [
        pytest.param(lambda: query_draft.SqlDraft("p", "  \n "), "error_sql_empty", id="empty"),
        pytest.param(lambda: query_draft.SqlDraft("p", SQL, loss=-1.0), "error_loss", id="negative_loss"),
        pytest.param(
            lambda: query_draft.SqlDraft("p", SQL, max_groups=0), "error_bounding", id="zero_groups"
        ),
    ],
)
def test_incomplete_sql_drafts_name_their_message(make: Any, key: str) -> None:
    with pytest.raises(query_draft.DraftError) as raised:
        make()
    assert raised.value.key == key


def test_idempotency_key_is_made_once_per_sql_text_and_loss() -> None:
    keys: dict[str, str] = {}
    made = iter(["k1", "k2", "k3", "k4"])

    def key(**changes: Any) -> str:
        body = query_draft.SqlDraft(**{"project": "p", "sql": SQL, **changes}).to_body()
        return query_draft.idempotency_key(keys, body, new=lambda: next(made))

    assert [key(), key(), key(loss=0.2), key(sql=SQL.lower()), key(sql=SQL + "  ")] == [
        "k1",
        "k1",
        "k2",
        "k3",
        "k1",
    ]


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param(SQL, id="plain"),
        pytest.param("SELECT COUNT(*) FROM lpr WHERE icd10 = 'E11' -- a \"quote\"", id="ends_in_a_quote"),
        pytest.param('SELECT COUNT(*) FROM cpr /* """ */', id="triple_quotes"),
        pytest.param("SELECT COUNT(*)\r\nFROM cpr\tWHERE sex = 'F\\'", id="carriage_return_tab_backslash"),
    ],
)
def test_sql_snippet_sends_exactly_the_shown_request(sql: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snippet previews and runs the same SQL text and options with ``client.sql``."""
    body = query_draft.SqlDraft(
        "p", sql, loss_kind="target_ci", loss=25.0, confidence=0.9, max_groups=2
    ).to_body()
    code = query_draft.sql_snippet(body, "http://api.example")
    assert "api.sql(" in code and "sst_" not in code and "SUNDSTAT_TOKEN" in code
    seen = _recorded_snippet_requests(code, monkeypatch)
    assert [r.url.path for r in seen] == ["/v1/sql/preview", "/v1/sql"]
    assert seen[1].headers["Idempotency-Key"] and "Idempotency-Key" not in seen[0].headers
    for request in seen:
        assert httpx.Response(200, content=request.content).json() == body


def test_sql_error_position_and_excerpt() -> None:
    body = {"ok": False, "code": "unsupported_sql", "position": {"line": 3, "column": 7}}
    assert query_draft.error_position(body) == (3, 7)
    assert query_draft.error_position({"code": "budget_exceeded"}) is None
    assert query_draft.error_position({"position": {"line": 0, "column": 1}}) is None
    sql = "SELECT COUNT(*)\nFROM cpr\nWHERE\tsex = 'F' OR sex = 'M'"
    assert query_draft.sql_excerpt(sql, 3, 18) == "3 | WHERE\tsex = 'F' OR sex = 'M'\n  |      \t           ^"
    assert query_draft.sql_excerpt(sql, 4, 1) == ""


# --- releases -----------------------------------------------------------------------------------


def test_release_frame_is_typed_and_drops_numbers_of_suppressed_cells() -> None:
    frame = results.release_frame(RELEASE)
    assert list(frame.columns) == ["cpr.region", "cpr.sex", "value", "ci_low", "ci_high", "suppressed"]
    assert frame["value"].tolist()[0] == 1234 and pd.isna(frame["value"][1])
    assert frame["suppressed"].tolist() == [False, True, False]


def test_table_and_csv_show_small_cells_as_below_threshold() -> None:
    table = results.table_frame(RELEASE)
    assert table["value"].tolist() == ["1234", "<5", "0"]
    assert table["ci_low"].tolist() == ["1228", "", "0"]
    csv = results.csv_bytes(RELEASE).decode("utf-8").splitlines()
    assert csv == [
        "cpr.region,cpr.sex,value,ci_low,ci_high",
        "Hovedstaden,F,1234,1228,1240",
        "Hovedstaden,M,<5,,",
        "Sjælland,F,0,0,6",
    ]
    assert results.table_frame({**RELEASE, "small_cell_threshold": 10})["value"][1] == "<10"


def test_parquet_keeps_types_and_the_suppressed_flag() -> None:
    table = pq.read_table(io.BytesIO(results.parquet_bytes(RELEASE)))
    assert table.column_names == ["cpr.region", "cpr.sex", "value", "ci_low", "ci_high", "suppressed"]
    assert table.column("value").to_pylist() == [1234.0, None, 0.0]
    assert table.column("suppressed").to_pylist() == [False, True, False]


def test_means_keep_their_decimals() -> None:
    release: dict[str, Any] = {"columns": ["value", "ci_low", "ci_high", "suppressed"], "measure": "mean"}
    release["rows"] = [{"value": 4.25, "ci_low": 3.5, "ci_high": 5.125, "suppressed": False}]
    assert results.table_frame(release).iloc[0].tolist() == ["4.25", "3.5", "5.125"]


def test_release_list_is_newest_first() -> None:
    older = {**RELEASE, "release_id": "r_old", "created_at": "2026-01-01T00:00:00Z"}
    frame = results.releases_frame([older, RELEASE])
    assert frame["release_id"].tolist() == ["r_0123", "r_old"]
    assert frame.loc[0, "group_by"] == "cpr.region, cpr.sex" and frame.loc[0, "cells"] == 3


def test_preview_summary_reads_the_real_preview(real_api: Api) -> None:
    project, token = real_api.new_project(epsilon=1.0)
    from service.client import Client

    with Client(real_api.url, token) as client:
        count = client.preview(query_draft.QueryDraft(project, group_by=("cpr.region",)).to_query())
        costly = client.preview(query_draft.QueryDraft(project, loss=5.0).to_query())
        quantile = client.preview(
            query_draft.QueryDraft(
                project, "quantile", register="ind", column="ind.disposable_income"
            ).to_query()
        )
    summary = results.preview_summary(count)
    assert summary.epsilon == pytest.approx(0.1) and summary.cells == 5 and summary.fits is True
    assert summary.half_width is not None and summary.half_width > 0 and summary.confidence == 0.95
    assert results.preview_summary(costly).fits is False
    assert results.preview_summary(quantile).half_width is None


def test_preview_fit_in_zcdp_is_judged_in_rho() -> None:
    budget = {"mode": "zcdp", "rho_remaining": 0.01, "epsilon_remaining": 1.0, "delta_remaining": 0.0}
    assert results.preview_summary({"loss": {"rho": 0.02}, "budget": budget}).fits is False
    assert results.preview_summary({"loss": {"epsilon": 0.1}, "budget": budget}).fits is True  # rho = 0.005
    assert results.preview_summary({"loss": {"epsilon": 0.1, "delta": 1e-6}, "budget": budget}).fits is False


def test_budget_summary_and_its_share() -> None:
    pure = budgets.budget_summary(
        {"mode": "pure", "epsilon_total": 2.0, "epsilon_spent": 0.5, "epsilon_remaining": 1.5}
    )
    assert pure.fraction_spent == pytest.approx(0.25)
    zcdp = budgets.budget_summary(
        {"mode": "zcdp", "epsilon_total": 3.0, "epsilon_spent": 2.9, "rho_total": 0.2, "rho_spent": 0.05}
    )
    assert zcdp.fraction_spent == pytest.approx(0.25)


def test_application_body_is_trimmed() -> None:
    body = budgets.application_body(
        title=" T ",
        purpose="research",
        institution=" SDU ",
        summary=" s ",
        registers=["cpr"],
        epsilon=1,
        delta=0,
        duration_days=90,
        name=" A ",
        email=" a@b.dk ",
    )
    assert body["title"] == "T" and body["applicant"] == {"name": "A", "email": "a@b.dk"}
    assert isinstance(body["epsilon"], float) and body["duration_days"] == 90


def test_transparency_frames() -> None:
    report = {
        "projects": [
            {
                "id": "p",
                "registers": ["cpr", "lpr"],
                "epsilon_spent": 0.1,
                "releases": 2,
                "permit_id": "SDS-1",
                "analysts": ["Dr. Jensen", "Dr. Nielsen"],
            }
        ],
        "registers": [{"register": "cpr", "rho_spent": 0.005, "spends": 1}],
    }
    projects = budgets.transparency_projects_frame(report)
    assert projects.loc[0, "registers"] == "cpr, lpr" and projects.loc[0, "releases"] == 2
    assert projects.loc[0, "permit_id"] == "SDS-1"
    assert projects.loc[0, "analysts"] == "Dr. Jensen, Dr. Nielsen"
    assert budgets.transparency_registers_frame(report).loc[0, "rho_spent"] == 0.005


# --- charts -------------------------------------------------------------------------------------


def _marks(spec: dict[str, Any]) -> list[str]:
    layers = spec.get("spec", spec).get("layer", [spec])
    return [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers]


def test_categories_are_bars_with_error_bars_and_years_are_lines() -> None:
    frame = results.release_frame(RELEASE)
    bars = charts.release_chart(frame, ["cpr.region", "cpr.sex"]).to_dict()
    assert _marks(bars) == ["bar", "errorbar"]
    assert bars["layer"][0]["encoding"]["xOffset"]["field"] == "g1"
    years = {**RELEASE, "columns": ["lpr.year", "value", "ci_low", "ci_high", "suppressed"]}
    years["rows"] = [
        {"lpr.year": y, "value": 10, "ci_low": 5, "ci_high": 15, "suppressed": False} for y in (2019, 2020)
    ]
    lines = charts.release_chart(results.release_frame(years), ["lpr.year"], time_axis=True).to_dict()
    assert _marks(lines) == ["line", "errorbar"]


def test_chart_leaves_out_suppressed_cells_and_facets_a_third_group() -> None:
    frame = results.release_frame(RELEASE)
    spec = charts.release_chart(frame, ["cpr.region", "cpr.sex"]).to_dict()
    data = next(iter(spec["datasets"].values()))
    assert len(data) == 2 and all(row["value"] is not None for row in data)
    three = frame.assign(extra="x")
    faceted = charts.release_chart(three, ["cpr.region", "cpr.sex", "extra"]).to_dict()
    assert faceted["facet"]["row"]["field"] == "g2"


def test_a_single_number_and_a_quantile_without_interval() -> None:
    single = results.release_frame(
        {"columns": ["value", "ci_low", "ci_high", "suppressed"], "rows": [{"value": 7, "suppressed": False}]}
    )
    spec = charts.release_chart(single, [], total_label="i alt").to_dict()
    assert _marks(spec) == ["bar"]
    assert next(iter(spec["datasets"].values()))[0]["g0"] == "i alt"


def test_budget_chart_shows_the_spent_share() -> None:
    summary = budgets.budget_summary({"mode": "pure", "epsilon_total": 2.0, "epsilon_spent": 0.5})
    spec = charts.budget_chart(summary, spent="spent", remaining="left").to_dict()
    texts = [row for data in spec["datasets"].values() for row in data if "label" in row]
    assert texts == [{"label": "25%"}]
