"""Ledger benchmark: reserve-and-commit latency and sustained multi-process spend throughput.

Run with ``python -m benchmarks.ledger`` (SQLite, the default store) or ``python -m benchmarks.ledger
--store postgres`` (a throwaway PostgreSQL server on loopback, started with the test suite's
``tests/budget_ledger/pg_server.py``; fsync=on, synchronous_commit=on). Targets: median
reserve-and-commit <= 5 ms; >= 200 spends/s from 4 processes on one project, with no spend lost or
doubled (rows == successes, totals exact). Prints a table, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

from budget_ledger import Charge, Ledger, Mode, ProjectSpec
from budget_ledger.store import open_store

KEY = bytes(range(32))
COST = Fraction(1, 1000)
LATENCY_TARGET_MS = 5.0
THROUGHPUT_TARGET = 200.0


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _postgres_floor(url: str, n: int = 200) -> float:
    """Median ms of a bare one-row PostgreSQL commit on the ledger's server: its fsync floor."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE TABLE floor (x INTEGER)")
        samples = []
        for i in range(n):
            start = time.perf_counter()
            with con.transaction():
                con.execute("INSERT INTO floor VALUES (%s)", (i,))
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


@contextlib.contextmanager
def _stores(kind: str, directory: Path) -> Iterator[tuple[Callable[[str], str], str, float]]:
    """(a function naming a fresh, empty ledger, the store's description, the commit floor in ms)."""
    if kind == "sqlite":
        yield (
            (lambda name: str(directory / f"{name}.sqlite")),
            "SQLite WAL, synchronous=FULL",
            _fsync_floor(directory),
        )
        return
    from tests.helpers.pg_server import TemporaryPostgres, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found; install the Debian package 'postgresql'.")
    with TemporaryPostgres(bindir) as server:
        version = server.sql("SHOW server_version")[0][0]
        yield (
            lambda name: server.url(server.create_database(name)),
            f"PostgreSQL {version}, fsync=on, synchronous_commit=on, TCP loopback",
            _postgres_floor(server.url(server.create_database("floor"))),
        )


def _fsync_floor(directory: Path, n: int = 200) -> float:
    """Median ms of a bare one-row SQLite commit with the ledger's pragmas: the disk's fsync floor."""
    con = sqlite3.connect(directory / "floor.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("CREATE TABLE t (x INTEGER)")
    samples = []
    for i in range(n):
        start = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?)", (i,))
        con.execute("COMMIT")
        samples.append((time.perf_counter() - start) * 1000)
    con.close()
    return statistics.median(samples)


def _latency(fresh: Callable[[str], str], mode: Mode, n: int) -> dict[str, float]:
    store = open_store(fresh(f"latency_{mode}"))
    ledger = Ledger(store, KEY)
    delta = "1e-6" if mode == "zcdp" else 0
    ledger.create_project(
        ProjectSpec(
            id="bench",
            title="Benchmark",
            purpose="benchmark",
            registers=("cpr", "lpr"),
            mode=mode,
            epsilon=10**6,
            delta=delta,
        ),
        "bench",
    )
    ledger.set_register_cap("lpr", rho=10**9, delta=0, reason="benchmark", actor="bench")
    charge = Charge(epsilon=COST)
    spend_ms, cpu_ms, release_ms, cached_ms = [], [], [], []
    for i in range(n):
        start, cpu = time.perf_counter(), time.process_time()
        result = ledger.reserve_and_commit(
            "bench", ("cpr", "lpr"), charge, f"h{i}", f"q{i}", f"k{i}", actor="a"
        )
        spend_ms.append((time.perf_counter() - start) * 1000)
        cpu_ms.append((time.process_time() - cpu) * 1000)
        start = time.perf_counter()
        ledger.store_release(result.spend_id, f"r{i}", '{"rows": []}')
        release_ms.append((time.perf_counter() - start) * 1000)
    for i in range(0, n, 4):
        start = time.perf_counter()
        assert (
            ledger.reserve_and_commit("bench", ("cpr",), charge, f"h{i}", f"q{i}", actor="a").status
            == "cached"
        )
        cached_ms.append((time.perf_counter() - start) * 1000)
    assert ledger.get_project("bench").totals.epsilon == n * COST
    store.close()
    return {
        "median_ms": statistics.median(spend_ms),
        "cpu_median_ms": statistics.median(cpu_ms),
        "p95_ms": _percentile(spend_ms, 0.95),
        "p99_ms": _percentile(spend_ms, 0.99),
        "store_release_median_ms": statistics.median(release_ms),
        "cached_median_ms": statistics.median(cached_ms),
    }


def _spender(
    target: str, index: int, duration: float, start_at: float, results: multiprocessing.Queue
) -> None:
    store = open_store(target)
    ledger = Ledger(store, KEY)
    charge = Charge(epsilon=COST)
    successes = errors = 0
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + duration
    i = 0
    while time.time() < deadline:
        try:
            ledger.reserve_and_commit("bench", ("cpr",), charge, f"p{index}-{i}", "q", actor=f"proc-{index}")
            successes += 1
        except Exception:
            errors += 1
        i += 1
    store.close()
    results.put((successes, errors, time.time()))


def _throughput(
    fresh: Callable[[str], str], processes: int, duration: float
) -> dict[str, float | int | bool]:
    target = fresh("throughput")
    store = open_store(target)
    ledger = Ledger(store, KEY)
    ledger.create_project(
        ProjectSpec(
            id="bench", title="Benchmark", purpose="benchmark", registers=("cpr",), mode="pure", epsilon=10**6
        ),
        "bench",
    )
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.5
    workers = [
        context.Process(target=_spender, args=(target, i, duration, start_at, results))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=duration + 60) for _ in workers]
    for worker in workers:
        worker.join()
    successes = sum(o[0] for o in outcomes)
    errors = sum(o[1] for o in outcomes)
    elapsed = max(o[2] for o in outcomes) - start_at
    with store.snapshot() as tx:
        rows = sum(1 for _ in tx.list_spends())
    totals = ledger.get_project("bench").totals
    exact = rows == successes == totals.spends and totals.epsilon == successes * COST
    verified = ledger.verify().ok
    store.close()
    return {
        "processes": processes,
        "spends": successes,
        "errors": errors,
        "seconds": elapsed,
        "spends_per_second": successes / elapsed,
        "rows": rows,
        "totals_exact": exact,
        "chain_verified": verified,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table and a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="spends for the latency measurement")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of sustained spending")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite", help="ledger store")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="sundstat-ledger-bench-") as name,
        _stores(args.store, Path(name)) as (fresh, described, floor),
    ):
        pure = _latency(fresh, "pure", args.n)
        zcdp = _latency(fresh, "zcdp", args.n)
        throughput = _throughput(fresh, args.processes, args.duration)
    ok = (
        pure["median_ms"] <= LATENCY_TARGET_MS
        and zcdp["median_ms"] <= LATENCY_TARGET_MS
        and float(throughput["spends_per_second"]) >= THROUGHPUT_TARGET
        and bool(throughput["totals_exact"])
        and bool(throughput["chain_verified"])
        and throughput["errors"] == 0
    )
    print(f"sundstat ledger benchmark ({described}, {os.cpu_count()} cores)")
    print(f"{'measurement':<44}{'value':>12}  target")
    rows = [
        ("bare one-row commit median: fsync floor (ms)", floor, ""),
        ("reserve_and_commit median, pure (ms)", pure["median_ms"], f"<= {LATENCY_TARGET_MS:g}"),
        ("reserve_and_commit p95, pure (ms)", pure["p95_ms"], ""),
        ("reserve_and_commit p99, pure (ms)", pure["p99_ms"], ""),
        ("reserve_and_commit CPU median, pure (ms)", pure["cpu_median_ms"], ""),
        ("reserve_and_commit median, zcdp + cap (ms)", zcdp["median_ms"], f"<= {LATENCY_TARGET_MS:g}"),
        ("store_release median (ms)", pure["store_release_median_ms"], ""),
        ("cached query median (ms)", pure["cached_median_ms"], ""),
        (
            f"spends/s, {args.processes} processes, one project",
            float(throughput["spends_per_second"]),
            f">= {THROUGHPUT_TARGET:g}",
        ),
        ("spends committed (= rows)", float(throughput["spends"]), f"rows {throughput['rows']}"),
    ]
    for label, value, target in rows:
        print(f"{label:<44}{value:>12.3f}  {target}")
    print(
        f"totals exact: {throughput['totals_exact']}, chain verified: {throughput['chain_verified']}, "
        f"errors: {throughput['errors']}"
    )
    print(
        json.dumps(
            {
                "ok": ok,
                "store": args.store,
                "fsync_floor_ms": floor,
                "latency_pure": pure,
                "latency_zcdp": zcdp,
                "throughput": throughput,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
