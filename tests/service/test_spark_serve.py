"""``sundstat serve --backend spark``: the API on the Spark backend over Parquet files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.serve_checks import check_serving
from service.settings import Settings, SettingsError
from tests.helpers.required import require_spark
from tests.helpers.server_fixtures import REGIONS, e11_by_region_project
from tests.service.svc_helpers import ADMIN_TOKEN, bearer, start_server


def test_spark_backend_needs_a_parquet_dir_with_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="--parquet-dir"):
        check_serving(Settings(backend="spark", state_dir=tmp_path / "s"), need_db=False)
    with pytest.raises(SettingsError, match="no catalog.json"):
        check_serving(
            Settings(backend="spark", parquet_dir=str(tmp_path), state_dir=tmp_path / "s"), need_db=False
        )


def test_spark_backend_runs_one_worker(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SettingsError, match="--workers 1"):
        check_serving(
            Settings(backend="spark", parquet_dir=str(tmp_path), workers=2, state_dir=tmp_path / "s"),
            need_db=False,
        )


@pytest.mark.slow
def test_serve_on_spark_answers_a_grouped_count(tmp_path: Path, dataset: Path) -> None:
    require_spark()
    raw = dataset.parent / "raw"  # the generator's Parquet files and catalog.json
    args = ["--backend", "spark", "--parquet-dir", str(raw)]
    with (
        start_server(dataset, tmp_path / "state", args=args, timeout=240) as server,
        httpx.Client(base_url=server.url, timeout=120, headers=bearer(ADMIN_TOKEN)) as http,
    ):
        token, query = e11_by_region_project(http, "spark-demo")
        first = http.post("/v1/queries", json=query, headers=bearer(token))
        assert first.status_code == 200, first.text
        release = first.json()
        assert [row["cpr.region"] for row in release["rows"]] == REGIONS
        assert release["privacy"]["mechanism"] == "discrete_laplace" and not release["cached"]
        again = http.post("/v1/queries", json=query, headers=bearer(token)).json()
        assert again["cached"] and again["rows"] == release["rows"]
        budget = http.get("/v1/projects/spark-demo/budget", headers=bearer(token)).json()
        assert budget["epsilon_spent"] == pytest.approx(0.25, abs=1e-9)
