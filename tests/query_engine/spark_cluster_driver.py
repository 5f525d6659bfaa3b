"""Run exact aggregates on a Spark cluster in a process of their own (the test process runs Spark local).

    python spark_cluster_driver.py MASTER PARQUET_DIR CASES_JSON OUT_JSON

Opens the engine with ``open_spark_engine`` on MASTER, compiles each query of CASES_JSON (a list of
query objects) for Spark and writes ``{"tables": [{column: values}], "app_id": ...}`` to OUT_JSON.
The cluster's driver settings come from ``SPARK_CONF_DIR`` (``LocalCluster.driver_env``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from query_engine.backends.spark_backend import open_spark_engine
from query_engine.spec import ProjectContext, parse_query

CONTEXT = ProjectContext("zcdp", delta_available=True)


def main(master: str, parquet_dir: str, cases_json: str, out_json: str) -> None:
    cases = json.loads(Path(cases_json).read_text(encoding="utf-8"))
    with open_spark_engine(parquet_dir, master) as engine:
        tables = []
        for case in cases:
            query = parse_query({"project": "parity", "rho": 0.5, **case})
            table = engine.backend.execute(engine.compiled(query, CONTEXT, "spark"))
            tables.append({name: table.column(name).to_pylist() for name in table.column_names})
        context = engine.backend._session.sparkContext  # type: ignore[attr-defined]
        result = {"tables": tables, "app_id": context.applicationId, "master": context.master}
    Path(out_json).write_text(json.dumps(result, default=str), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:5])
