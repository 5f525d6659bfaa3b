"""Numbers, titles and tables as people read them (issue 13 items 6, 7, 9, 10, 11): no snake_case, no
None, labels instead of codes, ε as 0.5, δ as 1e-6, budgets never rounded up, pure and zCDP apart."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard import catalog_lookup, charts, results, tables
from dashboard import formatting as fmt
from dashboard.i18n import translate
from tests.dashboard.test_dashboard_logic import RELEASE


def en(key: str, **values: Any) -> str:
    return translate("en", key, **values)


def da(key: str, **values: Any) -> str:
    return translate("da", key, **values)


@pytest.mark.parametrize(
    "value, shown, left",
    [
        pytest.param(0.4999999999995, "0.5", "0.5", id="float_noise_of_a_half"),
        pytest.param(0.123456, "0.1235", "0.1234", id="a_remaining_budget_is_rounded_down"),
        pytest.param(1.7, "1.7", "1.7", id="plain"),
        pytest.param(2.0, "2", "2", id="whole"),
        pytest.param(0, "0", "0", id="zero"),
        pytest.param(1e-6, "1e-6", "1e-6", id="tiny"),
        pytest.param(99999.99, "100000", "99990", id="never_up"),
        pytest.param(None, "-", "-", id="none"),
    ],
)
def test_numbers_as_people_write_them(value: Any, shown: str, left: str) -> None:
    assert fmt.number(value) == shown
    assert fmt.remaining(value) == left


def test_remaining_is_never_more_than_the_value_beyond_float_noise() -> None:
    for value in (0.123456, 3.99999, 1.0005, 12345.678, 0.00123456):
        assert float(fmt.remaining(value)) <= value


def test_delta_is_written_like_1e_6_and_zero_as_0() -> None:
    assert [fmt.delta(v) for v in (1e-6, 2.5e-7, 0.0, None)] == ["1e-6", "2.5e-7", "0", "-"]


def test_column_titles_come_from_the_catalog_in_both_languages(catalog: dict[str, Any]) -> None:
    columns = catalog_lookup.column_index(catalog)
    assert fmt.column_title(columns, "cpr.region", "en") == "Region of residence"
    assert fmt.column_title(columns, "cpr.age_band", "en") == "10-year age band"
    assert fmt.column_title(columns, "cpr.age_band", "da") == "10-års aldersgruppe"
    assert fmt.column_title(columns, "no.such", "en") == "no.such"


def test_the_release_table_has_titles_labels_and_one_ci_column(catalog: dict[str, Any]) -> None:
    table = tables.release_table(RELEASE, catalog, "en", en)
    assert list(table.columns) == ["Region of residence", "Sex", "Number of persons", "95% CI"]
    assert table["Sex"].tolist()[:2] == ["Female", "Male"]
    assert table["Number of persons"].tolist()[1] == "<5" and table["95% CI"].tolist()[:2] == [
        "1228 – 1240",
        "",
    ]
    assert not table.isin(["None", "nan"]).any().any()
    danish = tables.release_table(RELEASE, catalog, "da", da)
    assert list(danish.columns) == ["Bopælsregion", "Køn", "Antal personer", "95% KI"]
    assert danish["Køn"].tolist()[:2] == ["Kvinde", "Mand"]


def test_a_release_describes_its_question(catalog: dict[str, Any]) -> None:
    release = {
        **RELEASE,
        "created_at": "2026-12-06T13:32:10Z",
        "query": {
            "measure": "count_persons",
            "register": "cpr",
            "group_by": ["cpr.region", "cpr.sex"],
            "where": [{"column": "lpr.icd10", "op": "in", "value": ["E10", "E11", "E13", "E14"]}],
        },
    }
    text = tables.describe_query(release, catalog, "en", en)
    assert text == (
        "Number of persons (cpr) · where lpr.icd10 in E10, E11, E13, … · by Region of residence, Sex"
        " · ε 0.5 · 2026-12-06 13:32"
    )
    listed = tables.releases_table([release], catalog, "en", en)
    assert listed.iloc[0].tolist()[2:5] == ["ε 0.5", "0", "3 cells"]


REPORT: dict[str, Any] = {
    "projects": [
        {
            "id": "a",
            "mode": "pure",
            "epsilon_total": 2.0,
            "epsilon_spent": 0.30000000000000004,
            "delta_total": 0,
        },
        {"id": "b", "mode": "zcdp", "epsilon_total": 1.0, "epsilon_spent": 0.25, "delta_total": 1e-6},
    ],
    "registers": [
        {
            "register": "cpr",
            "cap_unit": "epsilon",
            "cap_epsilon_requested": 30.0,
            "epsilon_spent": 0.3,
            "epsilon_remaining": 29.7,
            "spends": 3,
        },
        {
            "register": "lpr",
            "cap_unit": "epsilon_delta",
            "cap_epsilon_requested": 50.0,
            "cap_delta_requested": 1e-5,
            "epsilon_equivalent_spent": 1.23456,
            "epsilon_remaining": 48.76544,
            "rho_spent": 0.001,
            "spends": 2,
        },
        {
            "register": "udda",
            "cap_unit": "rho",
            "cap_rho": 0.5,
            "rho_spent": 0.01,
            "rho_remaining": 0.49,
            "spends": 1,
        },
        {"register": "dar", "cap_unit": None, "rho_spent": 0.0, "spends": 0},
    ],
}


def test_register_loss_is_in_the_unit_of_each_cap() -> None:
    table = tables.register_loss_table(REPORT, en).set_index("Register")
    assert table.loc["cpr"].tolist() == ["ε 30", "ε 0.3", "ε 29.7", 3]
    assert table.loc["lpr"].tolist() == ["ε 50 at δ 1e-5", "ε 1.235 at δ 1e-5", "ε 48.76 at δ 1e-5", 2]
    assert table.loc["udda"].tolist() == ["ρ 0.5", "ρ 0.01", "ρ 0.49", 1]
    assert table.loc["dar"].tolist()[0] == "no cap"


def test_pure_and_zcdp_projects_are_kept_apart() -> None:
    by_mode = tables.projects_tables(REPORT, en)
    assert by_mode["pure"]["Project"].tolist() == ["a"] and by_mode["zcdp"]["Project"].tolist() == ["b"]
    assert by_mode["pure"]["ε spent"].tolist() == ["0.3"] and by_mode["zcdp"]["δ budget"].tolist() == ["1e-6"]


def test_admin_tables_have_titles_and_no_none_or_true() -> None:
    frame = tables.admin_table(
        [{"id": "tok_1", "active": True, "revoked_at": None, "created_at": "2026-12-06T13:32:10.123+00:00"}],
        ["id", "active", "revoked_at", "created_at"],
        en,
    )
    assert frame.columns.tolist() == ["Id", "Active", "Revoked", "Created"]
    assert frame.iloc[0].tolist() == ["tok_1", "yes", "", "2026-12-06 13:32"]


def test_the_chart_uses_labels_dark_error_bars_and_a_sequential_scheme_for_ordered_colours() -> None:
    frame = results.release_frame(RELEASE)
    spec = charts.release_chart(
        frame,
        ["cpr.region", "cpr.sex"],
        labels={"cpr.sex": {"F": "Female", "M": "Male"}},
        titles={"cpr.region": "Region", "cpr.sex": "Sex"},
        ordered_colour=True,
    ).to_dict()
    bars, errors = spec["layer"]
    assert errors["mark"]["color"] == "#222222" and "color" not in errors["encoding"]
    assert bars["encoding"]["color"]["scale"]["scheme"] == "viridis"
    assert bars["encoding"]["x"]["title"] == "Region" and bars["encoding"]["color"]["title"] == "Sex"
    data = next(iter(spec["datasets"].values()))
    assert {row["g1"] for row in data} <= {"Female", "Male"}
    nominal = charts.release_chart(frame, ["cpr.region", "cpr.sex"]).to_dict()
    assert nominal["layer"][0]["encoding"]["color"]["scale"]["scheme"] == "tableau10"


def test_a_faceted_chart_gives_every_layer_the_facet_data() -> None:
    three = results.release_frame(RELEASE).assign(extra="x")
    spec = charts.release_chart(three, ["cpr.region", "cpr.sex", "extra"]).to_dict()
    assert "data" in spec and all("data" not in layer for layer in spec["spec"]["layer"])
