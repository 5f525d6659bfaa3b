"""The Spark backend on a real standalone cluster: a master and two workers in their own processes.

The cluster (pyspark's own daemons, on loopback with free ports, 1 core and 512 MB per worker) is
started once for the session and stopped at the end whatever happens. A driver in its own process
(the test process already runs Spark local) computes a small parity corpus on the cluster, one
query per measure, and every table must equal DuckDB's; then ``sundstat serve --backend spark
--spark-master spark://...`` answers an API query from the cluster. Skipped without pyspark or Java,
failed instead when ``SUNDSTAT_REQUIRE_SPARK`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from query_engine.engine import Engine
from tests.helpers.server_fixtures import REGIONS, e11_by_region_project, start_server
from tests.query_engine.spark_fixtures import FAST_SQL_CONF, require_spark
from tests.query_engine.test_spark_parity import CONTEXT, GENERATED_CASES, _query

pytestmark = pytest.mark.slow

# One query per measure, two of them with bounds tight enough to drop rows.
CLUSTER_CASE_IDS = (
    "persons_e11_by_region_sex",
    "contacts_by_region_person_level_group",
    "bed_days_by_region_null_los",
    "mean_age_metformin_by_region",
    "median_income_by_region",
)
CASES = [p.values[0] for p in GENERATED_CASES if p.id in CLUSTER_CASE_IDS]
ADMIN_TOKEN = "cluster-admin-token-" + "x" * 32


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two workers of 1 core and 512 MB each under one master; stopped at the end of the session."""
    require_spark()
    from query_engine.backends.spark_cluster import ClusterError, start_local_cluster

    try:
        cluster = start_local_cluster(tmp_path_factory.mktemp("spark-cluster"), workers=2, quick_jvm=True)
    except ClusterError as exc:
        require_spark(f"the Spark cluster did not start: {exc}")
        raise
    with cluster:
        yield cluster


def _json_tables(tables: list[dict[str, list[Any]]]) -> Any:
    return json.loads(json.dumps(tables, default=str))


def test_cluster_gives_duckdbs_exact_aggregates(
    spark_cluster: Any, generated_db: Path, tmp_path: Path
) -> None:
    assert len(CASES) == len(CLUSTER_CASE_IDS)
    assert spark_cluster.alive_workers() == 2
    cases_file, out_file = tmp_path / "cases.json", tmp_path / "out.json"
    cases_file.write_text(json.dumps([{k: v for k, v in c.items() if k != "tight"} for c in CASES]))
    driver = Path(__file__).with_name("spark_cluster_driver.py")
    command = [sys.executable, str(driver), spark_cluster.master_url, str(generated_db.parent / "raw")]
    done = subprocess.run(
        [*command, str(cases_file), str(out_file)],
        env={**os.environ, **spark_cluster.driver_env(FAST_SQL_CONF)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out_file.read_text())
    assert result["master"] == spark_cluster.master_url
    # The master ran this application on both workers (one executor each).
    apps = {app["id"]: app for app in spark_cluster.state()["completedapps"]}
    assert result["app_id"] in apps, apps
    with Engine.open(generated_db) as engine:
        expected = []
        for case in CASES:
            table = engine.backend.execute(engine.compiled(_query(case), CONTEXT, "duckdb"))
            assert table.num_rows > 0
            expected.append({name: table.column(name).to_pylist() for name in table.column_names})
    assert result["tables"] == _json_tables(expected)


def test_serve_answers_from_the_cluster(spark_cluster: Any, generated_db: Path, tmp_path: Path) -> None:
    raw = generated_db.parent / "raw"
    args = ["--backend", "spark", "--spark-master", spark_cluster.master_url, "--parquet-dir", str(raw)]
    settings = {**spark_cluster.driver_env(FAST_SQL_CONF), "SUNDSTAT_ENGINE_TIMEOUT_SECONDS": "240"}
    with (
        start_server(
            generated_db,
            tmp_path / "state",
            admin_token=ADMIN_TOKEN,
            args=args,
            settings=settings,
            timeout=240,
        ) as server,
        httpx.Client(base_url=server.url, timeout=240) as http,
    ):
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        token, query = e11_by_region_project(http, "cluster", headers=admin)
        answer = http.post("/v1/queries", json=query, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        apps = [a for a in spark_cluster.state()["activeapps"] if a["name"] == "sundstat"]
        assert len(apps) == 1 and apps[0]["cores"] == 2, spark_cluster.state()["activeapps"]
        assert {row["cpr.region"] for row in answer.json()["rows"]} == set(REGIONS)
