"""The preview tells an analyst what a run would do: cached or not, its cost, whether it fits, a mean's
expected interval at stated counts, and a warning when the interval is likely too wide to be useful."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import yaml

from tests.helpers.server_fixtures import ROOT
from tests.service.svc_helpers import ProjectAccess

DECLARED_PERSONS = 100_000  # the server's default SUNDSTAT_DECLARED_PERSONS


def _count(project: str, epsilon: float, group_by: list[str] | None = None) -> dict[str, Any]:
    return {
        "project": project,
        "measure": "count_persons",
        "group_by": group_by or ["cpr.region"],
        "epsilon": epsilon,
    }


def _preview(http: httpx.Client, access: ProjectAccess, query: dict[str, Any]) -> dict[str, Any]:
    answer = http.post("/v1/queries/preview", json=query, headers=access.headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_preview_says_cached_and_free_after_a_run(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(2.0)
    query = _count(access.id, 0.5)
    before = _preview(http, access, query)
    assert before["cached"] is False and before["fits"] is True and before["fit_problem"] is None
    assert before["cost_if_run"] == {"epsilon": 0.5, "rho": 0.0, "delta": 0.0}
    ran = http.post("/v1/queries", json=query, headers=access.headers)
    assert ran.status_code == 200, ran.text
    after = _preview(http, access, query)
    assert after["cached"] is True and after["fits"] is True
    assert after["cost_if_run"] == {"epsilon": 0.0, "rho": 0.0, "delta": 0.0}
    assert any(note.startswith("Free: this exact query is stored") for note in after["notes"])
    assert after["loss"]["epsilon"] > 0  # the loss of the release itself is still shown


def test_preview_says_when_a_run_would_not_fit(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(0.3)
    body = _preview(http, access, _count(access.id, 0.5))
    assert body["fits"] is False
    assert body["fit_problem"].startswith(
        f"This query needs epsilon 0.5 but project '{access.id}' has 0.3 left"
    )
    ran = http.post("/v1/queries", json=_count(access.id, 0.5), headers=access.headers)
    assert ran.status_code == 403 and ran.json()["error"] == body["fit_problem"]


def test_mean_preview_states_its_half_width_as_a_function_of_the_count(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(5.0)
    query = {
        "project": access.id, "measure": "mean", "register": "lpr", "column": "los_days",
        "group_by": ["cpr.sex"], "epsilon": 1,
    }  # fmt: skip
    body = _preview(http, access, query)
    by_count = body["mean_half_width_by_count"]
    widths = [entry["half_width"] for entry in by_count]
    assert [entry["count"] for entry in by_count] == [10, 100, 1_000, 10_000, 100_000]
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0]
    lpr = yaml.safe_load((ROOT / "datasets" / "catalog" / "lpr.yaml").read_text(encoding="utf-8"))
    reference = DECLARED_PERSONS * lpr["declared_rows_per_person"] / body["cells"]
    assert body["reference_count"] == reference
    assert body["expected_half_width"] is not None and 0 < body["expected_half_width"] <= widths[-2]
    assert body["warnings"] == []
    assert any("expected_half_width assumes" in note for note in body["notes"])  # the assumption is stated


def test_a_too_wide_interval_is_warned_about(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(5.0)
    fine = _preview(http, access, _count(access.id, 1.0))
    assert fine["warnings"] == []
    half = int(fine["expected_half_width"])
    assert f"Each cell's count is known to within ±{half} persons" in " ".join(fine["notes"])
    wide = _preview(http, access, _count(access.id, 0.01, ["cpr.municipality", "cpr.age_band_5", "cpr.sex"]))
    assert wide["expected_half_width"] > wide["reference_count"] / 10
    (warning,) = wide["warnings"]
    assert "is more than a tenth of" in warning and "persons" in warning
