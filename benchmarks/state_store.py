"""State-store benchmark: what the shared service state adds to each request.

Every request with a token now does, in the state store: the failed-authentication check of its
address (a read), the token lookup (a read), and the per-token rate-limit step (one atomic upsert).
This measures each of those, and the three together, on SQLite (the state dir's ``service.sqlite``)
and on PostgreSQL (a throwaway server on loopback from ``tests/budget_ledger/pg_server.py``), next
to the in-memory per-worker bucket the service used before. Run with ``python -m
benchmarks.state_store [--n 2000]``; prints a table of median and p99 microseconds per operation,
then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from service.admission import RateLimiter
from service.state import StateStore, open_state_store
from service.state.rate_limits import StoreRateLimiter
from service.tokens import TokenStore


def _timed(operation: Callable[[int], object], n: int) -> dict[str, float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        operation(i)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return {"median_us": statistics.median(samples), "p99_us": samples[int(0.99 * (len(samples) - 1))]}


def _measure(store: StateStore, n: int) -> dict[str, dict[str, float]]:
    tokens = TokenStore(store)
    secret = tokens.issue("admin", name="bench", ttl=dt.timedelta(days=1)).token
    limiter = StoreRateLimiter(store, rate=1e9, burst=10**9)
    failures = StoreRateLimiter(store, rate=1e9, burst=10**9, prefix="authfail:")

    def request(i: int) -> None:
        failures.ensure_open("203.0.113.7")
        tokens.authenticate(secret)
        limiter.check(f"token:{i % 50}")

    return {
        "rate limit step": _timed(lambda i: limiter.check(f"token:{i % 50}"), n),
        "failed-auth check": _timed(lambda i: failures.ensure_open("203.0.113.7"), n),
        "token lookup": _timed(lambda i: tokens.authenticate(secret), n),
        "per request (all three)": _timed(request, n),
    }


@contextmanager
def _postgres() -> Iterator[str]:
    from tests.helpers.pg_server import TemporaryPostgres, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found; install the Debian package 'postgresql'.")
    with TemporaryPostgres(bindir) as server:
        yield server.url(server.create_database("state"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="operations per measurement")
    args = parser.parse_args(argv)
    memory = RateLimiter(rate=1e9, burst=10**9)
    results: dict[str, dict[str, dict[str, float]]] = {
        "in-memory (before)": {"rate limit step": _timed(lambda i: memory.check(f"token:{i % 50}"), args.n)}
    }
    with tempfile.TemporaryDirectory() as directory:
        store = open_state_store(None, Path(directory) / "service.sqlite")
        results["SQLite"] = _measure(store, args.n)
        store.close()
    with _postgres() as url:
        store = open_state_store(url, Path("unused"))
        results["PostgreSQL (loopback)"] = _measure(store, args.n)
        store.close()
    print(f"{'store':<24} {'operation':<26} {'median us':>10} {'p99 us':>10}")
    for name, operations in results.items():
        for operation, numbers in operations.items():
            print(f"{name:<24} {operation:<26} {numbers['median_us']:>10.1f} {numbers['p99_us']:>10.1f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
