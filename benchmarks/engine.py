"""Engine overhead benchmark: the full DP run versus the same bounded aggregate SQL run directly in DuckDB.

    python -m benchmarks.engine --persons 1000000

Generates (or reuses, under ``data/``) the synthetic dataset with ``datasets.generate`` and
``datasets.build``, then times each query interleaved: one DP run (validate, plan, compile from
cache, execute, noise, release), one raw execution of the identical SQL and parameters on a plain
DuckDB connection. Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from query_engine import Engine, EngineSettings, ProjectContext, Query
from query_engine.backends.duckdb_backend import QUERY_TUNING

DEFAULT_SEED = 20261128
CONTEXT = ProjectContext("pure")

QUERIES: dict[str, dict[str, Any]] = {
    "count_persons_by_region": {"measure": "count_persons", "group_by": ["cpr.region"]},
    "persons_with_e11_by_region_sex": {
        "measure": "count_persons",
        "where": [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}],
        "group_by": ["cpr.region", "cpr.sex"],
    },
    "bed_days_sum_by_region": {
        "measure": "sum",
        "register": "lpr",
        "column": "los_days",
        "bounds": [0, 60],
        "group_by": ["cpr.region"],
    },
    "mean_age_metformin_by_region": {
        "measure": "mean",
        "column": "cpr.age",
        "where": [{"column": "lmdb.atc", "op": "=", "value": "A10BA02"}],
        "group_by": ["cpr.region"],
    },
    "median_income_by_region": {
        "measure": "quantile",
        "register": "ind",
        "column": "disposable_income",
        "where": [{"column": "ind.year", "op": "=", "value": 2023}],
        "group_by": ["cpr.region"],
    },
}


def dataset(persons: int, seed: int, data_dir: Path) -> Path:
    """The built database for ``persons``/``seed`` (the Makefile's paths), generated if missing."""
    from datasets.build import build
    from datasets.generate import generate

    raw = data_dir / f"synthetic-{persons}-{seed}"
    db = data_dir / f"sundstat-{persons}-{seed}.duckdb"
    if not db.is_file():
        if not (raw / "catalog.json").is_file():
            generate(persons, seed, raw, progress=True)
        build(raw, db)
    return db


def raw_connection(db: Path, settings: EngineSettings) -> duckdb.DuckDBPyConnection:
    """A plain read-only DuckDB connection configured as the engine's (one instance per file)."""
    return duckdb.connect(
        str(db),
        read_only=True,
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "memory_limit": settings.memory_limit,
            "threads": settings.threads,
            **QUERY_TUNING,
            "lock_configuration": True,
        },
    )


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def dataset_parser(description: str, persons: int = 100_000) -> argparse.ArgumentParser:
    """The options of a benchmark on the synthetic dataset: ``--persons``, ``--seed``, ``--data-dir``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--persons", type=int, default=persons)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    return parser


def interleaved(
    dp: Callable[[], object], raw: Callable[[], object], repeats: int, warmups: int = 2
) -> dict[str, float]:
    """Median milliseconds of ``dp`` and ``raw`` run alternately ``repeats`` times (after ``warmups``
    of each, to warm caches: plan, SQL, OpenDP measurements, DuckDB buffers), and their ratio."""
    for _ in range(warmups):
        dp()
        raw()
    dp_times, raw_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        dp()
        dp_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        raw()
        raw_times.append(time.perf_counter() - started)
    dp_ms, raw_ms = _median_ms(dp_times), _median_ms(raw_times)
    return {"dp_ms": dp_ms, "raw_ms": raw_ms, "ratio": round(dp_ms / raw_ms, 3)}


def timing_parser(description: str, repeats: int, persons: int = 100_000) -> argparse.ArgumentParser:
    """``dataset_parser`` plus the options of a DP-versus-raw timing: ``--repeats``, ``--threads``."""
    parser = dataset_parser(description, persons)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=2)
    return parser


def report_timings(
    persons: int,
    results: dict[str, dict[str, float]],
    key: str = "queries",
    label: str = "query",
    width: int = 34,
    **extra: object,
) -> None:
    """The table of ``interleaved`` results, one row per query, then as the last line one JSON object:
    ``persons``, the results under ``key``, ``max_ratio`` (the largest DP / raw ratio) and ``extra``."""
    print(f"{label:<{width}} {'dp_ms':>9} {'raw_ms':>9} {'ratio':>7}")
    for name, r in results.items():
        print(f"{name:<{width}} {r['dp_ms']:>9.2f} {r['raw_ms']:>9.2f} {r['ratio']:>7.3f}")
    max_ratio = max(r["ratio"] for r in results.values())
    print(json.dumps({"persons": persons, key: results, "max_ratio": max_ratio, **extra}))


def dp_run(engine: Engine, query: Query) -> object:
    """One full DP run of ``query``: the cost, then validate, plan, execute, noise and release."""
    return engine.run(query, CONTEXT, cost=engine.cost(query, CONTEXT))


def _raw_run(raw: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> None:
    """The identical SQL and parameters on the plain connection, fetched as Arrow like the engine does."""
    raw.sql(sql, params=params).to_arrow_table()


def bench(
    db: Path, repeats: int, threads: int, queries: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, float]]:
    """Median latency of the DP run and of the raw SQL per query (default: ``QUERIES``), interleaved."""
    settings = EngineSettings(threads=threads, memory_limit="4GB")
    results: dict[str, dict[str, float]] = {}
    with Engine.open(db, settings) as engine:
        # Same configuration as the engine's connection (DuckDB shares one instance per file).
        raw = raw_connection(db, settings)
        for name, fields in (QUERIES if queries is None else queries).items():
            query = Query.model_validate({"project": "bench", "epsilon": 1.0, **fields})
            compiled = engine.compiled(query, CONTEXT)
            raw_run = partial(_raw_run, raw, compiled.sql, list(compiled.params))
            results[name] = interleaved(partial(dp_run, engine, query), raw_run, repeats)
        raw.close()
    return results


def main(argv: list[str] | None = None) -> None:
    args = timing_parser(__doc__.splitlines()[0], repeats=21).parse_args(argv)
    db = dataset(args.persons, args.seed, args.data_dir)
    report_timings(args.persons, bench(db, args.repeats, args.threads))


if __name__ == "__main__":
    main()
