"""National-scale benchmark: the engine benchmark queries on DuckDB and on Spark local, 1M to 6M persons.

The shapes: ``benchmarks.engine``'s queries, two lpr contact counts, and two analyses of
``benchmarks.epi`` (a cohort count and an incidence rate, issue 15).

    python -m benchmarks.national --persons 1000000
    python -m benchmarks.national --persons 6000000
    python -m benchmarks.national --persons 1000000 6000000 --engines duckdb
    python -m benchmarks.national --persons 100000 --engines duckdb --spark-cluster
    python -m benchmarks.national --persons 1000000 --engines duckdb --volume national

``--volume national`` generates the registers at the Danish registers' yearly numbers of hospital
contacts and prescriptions (``sundstat generate --volume national``; docs/synthetic-data.md), into
files and a database of their own (suffix ``-national``). Generation runs in its own child process, so
its time, peak memory (``generate_peak_gb``) and disk size (``raw_gb``) are its own.
On DuckDB each DP run is interleaved with a raw execution of the identical bounded SQL on a plain
connection (``raw_ms``; ``ratio`` = DP / raw) and the rows of the registers the query reads are counted
(``rows_scanned``).

``--spark-cluster`` also starts a Spark standalone cluster on this machine (a master and
``--cluster-workers`` workers of one core each, pyspark's own daemons on loopback) and runs the
queries on it as the engine ``spark_cluster``, beside the others: the same backend over the network
to separate executor JVMs. Its peak memory is the driver's only (Python and its JVM).

Generates and builds the synthetic registers under ``data/`` (reused when present), in a child
process. Each engine then runs in its own child process, one after the other, so its peak memory
is its own: the worker's peak RSS (``VmHWM``), plus for Spark its JVM's. Per query: one warm-up
execution whose exact result table is digested (the two engines must agree), then ``--repeats``
timed DP runs (cost, run, noise, release). Each size's result is kept in
``data/national-<persons>-<seed>.json`` (``--engines`` re-runs some engines and keeps the others'
stored figures); every stored size is shown as a cost curve. Targets on a 2-core machine: DuckDB grouped joined counts at
most 2 s median, DuckDB peak memory at most 8 GB. The last line printed is one JSON object, with
``max_duckdb_ms`` (the slowest DuckDB DP median), ``max_ratio`` (the largest DP / raw ratio) and
``spark_parity`` (every Spark engine's exact tables equal DuckDB's; null when no Spark engine ran).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.engine import DEFAULT_SEED
from benchmarks.engine import QUERIES as ENGINE_QUERIES
from benchmarks.epi import QUERIES as ANALYSES

QUERIES: dict[str, dict[str, Any]] = {
    **ENGINE_QUERIES,
    "contacts_2023_by_region_chapter": {
        "measure": "count_rows",
        "register": "lpr",
        "where": [{"column": "lpr.year", "op": "=", "value": 2023}],
        "group_by": ["cpr.region", "lpr.icd10_chapter"],
    },
    # Every contact of every year, bounded row by row (c = 10 per chapter, G = 5 chapters per person).
    "contacts_by_region_chapter": {
        "measure": "count_rows",
        "register": "lpr",
        "group_by": ["cpr.region", "lpr.icd10_chapter"],
    },
    # The analyses of issue 15: a cohort (first I21, 5 years' follow-up) counted, and a rate.
    "cohort_count_mi_by_age_sex": ANALYSES["cohort_count_mi_by_age_sex"],
    "e11_incidence_by_age_sex": ANALYSES["e11_incidence_by_age_sex"],
}
# The grouped joined counts the 2 s target applies to: a register joined to the person register.
JOINED_COUNTS = (
    "persons_with_e11_by_region_sex",
    "contacts_2023_by_region_chapter",
    "contacts_by_region_chapter",
)
TARGET_JOINED_COUNT_MS = 2000.0
TARGET_PEAK_GB = 8.0
ENGINES = ("duckdb", "spark", "spark_cluster")
VOLUMES = ("default", "national")
# Figures of the data preparation, kept from an earlier run when the files are reused.
STORED_DATA_FIGURES = ("generate_s", "generate_peak_gb", "raw_gb", "build_s", "prepare_peak_gb")
REGISTERS = ("cpr", "lpr", "lmdb", "dar", "ind", "udda")


def _suffix(volume: str) -> str:
    """File name suffix of a volume's data: none for the default volume (the paths stay as they were)."""
    return "" if volume == "default" else f"-{volume}"


# --- data ---------------------------------------------------------------------------------------


def dataset(
    persons: int, seed: int, data_dir: Path, volume: str = "default"
) -> tuple[Path, Path, dict[str, float]]:
    """The built database and the Parquet directory that holds the same rows, made if missing."""
    from datasets.build import build

    suffix = _suffix(volume)
    raw = data_dir / f"synthetic-{persons}-{seed}{suffix}"
    db = data_dir / f"sundstat-{persons}-{seed}{suffix}.duckdb"
    timings: dict[str, float] = {}
    if not db.is_file():
        if not (raw / "catalog.json").is_file():
            command = [sys.executable, "-m", "benchmarks.national", "--worker", "generate"]
            command += ["--persons", str(persons), "--seed", str(seed), "--volume", volume, "--out", str(raw)]
            done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
            timings |= json.loads(done.stdout.strip().splitlines()[-1])
        started = time.perf_counter()
        build(raw, db)
        timings["build_s"] = round(time.perf_counter() - started, 1)
    return db, _parquet_for(db, raw, data_dir / f"parquet-{persons}-{seed}{suffix}"), timings


def generate_raw(args: argparse.Namespace) -> dict[str, float]:
    """Generate the registers; called in its own child process, so its peak memory is its own."""
    from datasets.generate import generate

    started = time.perf_counter()
    generate(args.persons[0], args.seed, args.out, progress=sys.stderr.isatty(), volume=args.volume)
    return {
        "generate_s": round(time.perf_counter() - started, 1),
        "generate_peak_gb": round(_peak_gb() or 0.0, 3),
        "raw_gb": round(sum(f.stat().st_size for f in args.out.glob("*.parquet")) / 1024**3, 2),
    }


def _parquet_for(db: Path, raw: Path, exported: Path) -> Path:
    """The generator's files if the build kept every row of them; otherwise an export of the database."""
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect(str(db), read_only=True)
    try:
        loaded = {name: con.sql(f'SELECT count(*) FROM "{name}"').fetchall()[0][0] for name in REGISTERS}
    finally:
        con.close()
    if all((raw / f"{n}.parquet").is_file() for n in loaded) and all(
        pq.read_metadata(raw / f"{n}.parquet").num_rows == rows for n, rows in loaded.items()
    ):
        return raw
    if not (exported / "catalog.json").is_file():
        from query_engine.backends.spark_backend import export_parquet

        export_parquet(db, exported)
    return exported


# --- one engine, in a child process --------------------------------------------------------------


def _peak_gb(pid: int | str = "self") -> float | None:
    """Peak RSS of a live process in GB (Linux ``VmHWM``), or None where there is no /proc.

    Not ``ru_maxrss``: Linux carries the parent's high-water mark into a forked and exec'd child, so
    a worker started by a process that had just built a large database would report the builder's peak.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except (OSError, ValueError):
        return None
    return None


def _jvm_peak_gb(engine: Any) -> float | None:
    """Peak RSS of the Spark JVM this process launched, or None if unknown."""
    try:
        pid = engine.backend._session.sparkContext._gateway.proc.pid
    except AttributeError:
        return None
    return _peak_gb(pid)


def _digest(table: Any) -> str:
    rows = json.dumps(table.to_pydict(), sort_keys=True, default=str)
    return hashlib.sha256(rows.encode()).hexdigest()[:16]


def _rows_scanned(raw: Any, sql: str) -> int:
    """Rows of the registers the compiled query reads (each table it names, counted once)."""
    return sum(
        raw.sql(f'SELECT count(*) FROM "{name}"').fetchall()[0][0] for name in REGISTERS if f'"{name}"' in sql
    )


def _floor_ms(raw: Any, sql: str) -> float:
    """The physical floor of a query: reading and hashing once every column it names, per register
    (median of three), i.e. the scan at the bandwidth this machine reaches for those columns."""
    total = 0.0
    for name in REGISTERS:
        if f'"{name}"' not in sql:
            continue
        columns = [c for (c,) in raw.sql(f"SELECT name FROM pragma_table_info('{name}')").fetchall()]
        used = ", ".join(f'"{c}"' for c in columns if f'"{c}"' in sql)
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            raw.sql(f'SELECT sum(hash({used})) FROM "{name}"').fetchall()
            samples.append(time.perf_counter() - started)
        total += statistics.median(samples)
    return total * 1000


def run_engine(args: argparse.Namespace) -> dict[str, Any]:
    """Open one engine, time every query; called in the child process."""
    from benchmarks.engine import raw_connection
    from query_engine import Engine, EngineSettings, ProjectContext, Query

    context = ProjectContext("pure")
    load_before = os.getloadavg()[0]
    settings = EngineSettings(threads=args.threads, memory_limit=args.memory_limit, query_timeout_s=1800)
    started = time.perf_counter()
    raw = None
    if args.worker == "duckdb":
        engine = Engine.open(args.db, settings)
        raw = raw_connection(args.db, settings)
        repeats = args.repeats
    else:
        from query_engine.backends.spark_backend import open_spark_engine

        engine = open_spark_engine(args.parquet, args.spark_master, settings)
        repeats = args.spark_repeats
    open_s = time.perf_counter() - started
    queries: dict[str, dict[str, Any]] = {}
    with engine:
        for name, fields in QUERIES.items():
            query = Query.model_validate({"project": "bench", "epsilon": 1.0, **fields})
            engine.cost(query, context)  # warms the plan and calibration caches, as a service's are
            compiled = engine.compiled(query, context, engine.backend.dialect)
            started = time.perf_counter()
            table = engine.backend.execute(compiled)
            first_ms = (time.perf_counter() - started) * 1000
            samples, raw_samples = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                engine.run(query, context, cost=engine.cost(query, context))
                samples.append(time.perf_counter() - started)
                if raw is not None:  # the identical SQL and parameters, interleaved
                    started = time.perf_counter()
                    raw.sql(compiled.sql, params=list(compiled.params)).to_arrow_table()
                    raw_samples.append(time.perf_counter() - started)
            queries[name] = {
                "median_ms": round(statistics.median(samples) * 1000, 1),
                "min_ms": round(min(samples) * 1000, 1),
                "first_ms": round(first_ms, 1),
                "digest": _digest(table),
            }
            if raw is not None:
                raw_ms = statistics.median(raw_samples) * 1000
                queries[name] |= {
                    "raw_ms": round(raw_ms, 1),
                    "ratio": round(queries[name]["median_ms"] / raw_ms, 3),
                    "rows_scanned": _rows_scanned(raw, compiled.sql),
                }
                floor_ms = _floor_ms(raw, compiled.sql)
                queries[name] |= {
                    "floor_ms": round(floor_ms, 1),
                    "floor_ratio": round(queries[name]["median_ms"] / floor_ms, 2),
                }
            print(f"  {args.worker:<6} {name:<34} {queries[name]['median_ms']:>10.1f} ms", file=sys.stderr)
        jvm_gb = _jvm_peak_gb(engine) if args.worker != "duckdb" else None
    if raw is not None:
        raw.close()
    python_gb = _peak_gb() or 0.0
    return {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "open_s": round(open_s, 2),
        "repeats": repeats,
        "queries": queries,
        "python_peak_gb": round(python_gb, 3),
        "jvm_peak_gb": None if jvm_gb is None else round(jvm_gb, 3),
        "peak_gb": round(python_gb + (jvm_gb or 0.0), 3),
    }


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Generate and build if needed; called in a child process, so its memory is its own."""
    db, parquet, timings = dataset(args.persons[0], args.seed, args.data_dir, args.volume)
    return {"db": str(db), "parquet": str(parquet), **timings, "prepare_peak_gb": round(_peak_gb() or 0.0, 3)}


def _child(worker: str, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.national", "--worker", worker, *extra]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _engine_child(engine: str, db: str, parquet: str, args: argparse.Namespace) -> dict[str, Any]:
    memory = args.memory_limit if engine == "duckdb" else args.spark_driver_memory
    master = args.cluster_master if engine == "spark_cluster" else args.spark_master
    return _child(
        engine,
        args,
        *("--db", db, "--parquet", parquet, "--repeats", str(args.repeats)),
        *("--spark-repeats", str(args.spark_repeats), "--spark-master", master),
        *("--threads", str(args.threads), "--memory-limit", memory),
    )


# --- report --------------------------------------------------------------------------------------


def bench_size(persons: int, args: argparse.Namespace) -> dict[str, Any]:
    """Generate/build if needed, then run each engine in turn; the result of one dataset size."""
    print(f"{persons:,} persons: preparing data under {args.data_dir}", file=sys.stderr)
    data = args.data_dir
    prepared = _child(
        "prepare",
        args,
        *("--persons", str(persons), "--seed", str(args.seed), "--data-dir", str(data)),
        *("--volume", args.volume),
    )
    db, parquet = Path(prepared.pop("db")), Path(prepared.pop("parquet"))
    stored_path = data / f"national-{persons}-{args.seed}{_suffix(args.volume)}.json"
    stored = json.loads(stored_path.read_text()) if stored_path.is_file() else {}
    # Engines not run now keep their stored figures (same data: the files are reused, not regenerated).
    engines = {e: r for e, r in stored.get("engines", {}).items() if e not in args.engines}
    engines |= {engine: _engine_child(engine, str(db), str(parquet), args) for engine in args.engines}
    result: dict[str, Any] = {
        "persons": persons,
        "seed": args.seed,
        "volume": args.volume,
        "cpus": os.cpu_count(),
        "db_gb": round(db.stat().st_size / 1024**3, 2),
        "parquet_gb": round(sum(f.stat().st_size for f in parquet.glob("*.parquet")) / 1024**3, 2),
        "parquet_dir": str(parquet),
        **{k: v for k, v in stored.items() if k in STORED_DATA_FIGURES},
        **prepared,
        "engines": {e: engines[e] for e in ENGINES if e in engines},
    }
    others = [e for e in engines if e != "duckdb"]
    if "duckdb" in engines and others:
        # Every other engine's exact result table equals DuckDB's.
        result["parity"] = {
            name: all(
                engines[e]["queries"][name]["digest"] == engines["duckdb"]["queries"][name]["digest"]
                for e in others
            )
            for name in QUERIES
        }
    if "duckdb" in engines:
        duck = engines["duckdb"]
        joined = {n: duck["queries"][n]["median_ms"] for n in JOINED_COUNTS}
        result["targets"] = {
            "duckdb_joined_count_ms": joined,
            "duckdb_joined_count_ok": {n: ms <= TARGET_JOINED_COUNT_MS for n, ms in joined.items()},
            "duckdb_peak_gb": duck["peak_gb"],
            "ok": max(joined.values()) <= TARGET_JOINED_COUNT_MS and duck["peak_gb"] <= TARGET_PEAK_GB,
        }
    stored_path.write_text(json.dumps(result, indent=2))
    return result


def headline(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The issue's three figures over the sizes run now: slowest DuckDB DP median, largest DP / raw
    ratio, and whether every Spark engine's exact tables equalled DuckDB's (None if none ran)."""
    duck = [q for r in results.values() for q in r["engines"].get("duckdb", {}).get("queries", {}).values()]
    parity = [same for r in results.values() for same in r.get("parity", {}).values()]
    return {
        "max_duckdb_ms": max((q["median_ms"] for q in duck), default=None),
        "max_ratio": max((q["ratio"] for q in duck if "ratio" in q), default=None),
        "spark_parity": all(parity) if parity else None,
    }


def _stored(data_dir: Path, seed: int, volume: str) -> dict[int, dict[str, Any]]:
    runs = {}
    for path in data_dir.glob(f"national-*-{seed}{_suffix(volume)}.json"):
        result = json.loads(path.read_text())
        runs[int(result["persons"])] = result
    return dict(sorted(runs.items()))


def curve(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Median ms and peak GB per engine at every stored size, and the factor from the smallest size."""
    sizes = list(runs)
    out: dict[str, Any] = {"persons": sizes}
    for engine in ENGINES:
        present = [p for p in sizes if engine in runs[p]["engines"]]
        if not present:
            continue
        per_query = {}
        for name in QUERIES:
            ms = [runs[p]["engines"][engine]["queries"].get(name, {}).get("median_ms") for p in present]
            factor = round(ms[-1] / ms[0], 2) if len(ms) > 1 and ms[0] and ms[-1] else None
            per_query[name] = {"median_ms": dict(zip(map(str, present), ms, strict=True)), "factor": factor}
        peak = {str(p): runs[p]["engines"][engine]["peak_gb"] for p in present}
        out[engine] = {"queries": per_query, "peak_gb": peak}
    return out


def _print_size(result: dict[str, Any]) -> None:
    engines = result["engines"]
    loads = ", ".join(f"{e} {v['load_average']}" for e, v in engines.items())
    print(f"\n{result['persons']:,} persons ({result['cpus']} cpus; load average before/after: {loads})")
    header = f"{'query':<34}" + "".join(f" {e + ' ms':>12}" for e in engines)
    # DuckDB's raw execution of the same bounded SQL, when measured (not in older stored results).
    raw = "duckdb" in engines and "raw_ms" in next(iter(engines["duckdb"]["queries"].values()))
    if raw:
        header += f" {'raw ms':>10} {'ratio':>6} {'rows scanned':>14} {'floor ms':>9} {'x floor':>7}"
    print(header + ("  parity" if "parity" in result else ""))
    for name in QUERIES:
        line = f"{name:<34}" + "".join(f" {engines[e]['queries'][name]['median_ms']:>12.1f}" for e in engines)
        if raw:
            q = engines["duckdb"]["queries"][name]
            line += f" {q['raw_ms']:>10.1f} {q['ratio']:>6.2f} {q['rows_scanned']:>14,}"
            line += f" {q.get('floor_ms', 0):>9.1f} {q.get('floor_ratio', 0):>7.2f}"
        if "parity" in result:
            line += f"  {'same' if result['parity'][name] else 'DIFFERENT'}"
        print(line)
    print(f"{'open (s)':<34}" + "".join(f" {engines[e]['open_s']:>12.2f}" for e in engines))
    print(f"{'peak memory (GB)':<34}" + "".join(f" {engines[e]['peak_gb']:>12.2f}" for e in engines))
    if "targets" in result:
        t = result["targets"]
        counts = ", ".join(
            f"{n} {ms:.0f} ms {'ok' if t['duckdb_joined_count_ok'][n] else 'MISSED'}"
            for n, ms in t["duckdb_joined_count_ms"].items()
        )
        print(f"target DuckDB grouped joined counts <= {TARGET_JOINED_COUNT_MS:.0f} ms: {counts}")
        peak_ok = t["duckdb_peak_gb"] <= TARGET_PEAK_GB
        print(
            f"target DuckDB peak memory <= {TARGET_PEAK_GB:.0f} GB: {t['duckdb_peak_gb']:.2f} GB "
            f"{'ok' if peak_ok else 'MISSED'}"
        )


def _print_curve(table: dict[str, Any]) -> None:
    sizes = table["persons"]
    print(f"\ncost curve, median ms at {', '.join(f'{p:,}' for p in sizes)} persons (factor last/first)")
    for engine in ENGINES:
        if engine not in table:
            continue
        for name, q in table[engine]["queries"].items():
            values = " ".join(
                f"{v:>10.1f}" if v is not None else f"{'-':>10}" for v in q["median_ms"].values()
            )
            factor = f"x{q['factor']}" if q["factor"] is not None else ""
            print(f"  {engine:<6} {name:<34} {values}  {factor}")
        peaks = " ".join(f"{v:>10.2f}" for v in table[engine]["peak_gb"].values())
        print(f"  {engine:<6} {'peak memory (GB)':<34} {peaks}")


@contextlib.contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[None]:
    """A local standalone cluster for the ``spark_cluster`` engine, stopped on leaving."""
    from query_engine.backends.spark_cluster import start_local_cluster

    work = args.data_dir / "spark-cluster"
    print(f"starting a Spark cluster: {args.cluster_workers} workers under {work}", file=sys.stderr)
    with start_local_cluster(
        work, workers=args.cluster_workers, worker_memory=args.cluster_worker_memory
    ) as cluster:
        args.cluster_master = cluster.master_url
        saved = dict(os.environ)
        os.environ.update(cluster.driver_env())  # the engine children read SPARK_CONF_DIR
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument(
        "--engines",
        type=lambda s: s.split(","),
        default=["duckdb", "spark"],
        help="duckdb,spark,spark_cluster",
    )
    parser.add_argument("--repeats", type=int, default=11, help="timed runs per query on DuckDB")
    parser.add_argument("--spark-repeats", type=int, default=3, help="timed runs per query on Spark")
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument(
        "--spark-driver-memory", default="4GB", help="Spark driver heap (local: all of Spark)"
    )
    parser.add_argument(
        "--spark-cluster", action="store_true", help="also run on a local Spark standalone cluster"
    )
    parser.add_argument("--cluster-workers", type=int, default=2, help="workers of the local cluster")
    parser.add_argument(
        "--cluster-worker-memory", default="2g", help="memory of each cluster worker (and its executor)"
    )
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory limit")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    parser.add_argument(
        "--volume", choices=VOLUMES, default="default", help="event volume of the generated registers"
    )
    parser.add_argument("--worker", choices=(*ENGINES, "prepare", "generate"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parquet", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        workers = {"prepare": prepare, "generate": generate_raw}
        print(json.dumps(workers.get(args.worker, run_engine)(args)))
        return
    unknown = sorted(set(args.engines) - set(ENGINES))
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {list(ENGINES)}")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    with contextlib.ExitStack() as stack:
        if args.spark_cluster or "spark_cluster" in args.engines:
            args.engines = [e for e in args.engines if e != "spark_cluster"] + ["spark_cluster"]
            stack.enter_context(_cluster(args))
        for persons in args.persons:
            results[persons] = bench_size(persons, args)
            _print_size(results[persons])
    table = curve(_stored(args.data_dir, args.seed, args.volume))
    if len(table["persons"]) > 1:
        _print_curve(table)
    summary = {
        "benchmark": "national",
        "runs": {str(p): {k: v for k, v in r.items() if k != "parquet_dir"} for p, r in results.items()},
        "curve": table,
        "ok": all(r.get("targets", {}).get("ok", True) for r in results.values()),
        **headline(results),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
