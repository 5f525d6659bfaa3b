"""Load benchmark of the HTTP API: cached releases, previews and distinct DP queries per second.

    python -m benchmarks.load [--workers 2] [--duration 10] [--clients 3] [--threads 16]

Starts ``sundstat serve`` itself (2 uvicorn workers by default) on the embedded default dataset
(100,000 synthetic persons, built under ``data/`` if missing) with a fresh state directory, then
drives it from separate client processes over loopback (httpx, one client per thread). Three phases:

* ``cached``: the same query again and again (each request returns the stored release, free);
* ``preview``: previews of a handful of queries (no data touched, nothing spent);
* ``query``: distinct DP queries, each one charged, executed on DuckDB, noised and stored.

Rate limits are lifted for the run (a load generator is one token sending as fast as it can);
``--min-response`` sets the response padding of POST /v1/queries (default 0: measure capacity; the
service's default is 0.3 s, which costs latency, not throughput, since padding does not hold a CPU).
Prints a table and, as its LAST line, one JSON object
``{"cached_rps": ..., "preview_rps": ..., "query_rps": ..., "p99_ms": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "sst_admin_benchmark_" + "b" * 40
PROJECT = "load"
BASE_QUERY: dict[str, Any] = {
    "project": PROJECT,
    "measure": "count_persons",
    "group_by": ["cpr.region", "cpr.sex"],
    "epsilon": 0.01,
}
PREVIEWS: list[dict[str, Any]] = [
    BASE_QUERY,
    {**BASE_QUERY, "group_by": ["cpr.age_band"]},
    {
        "project": PROJECT,
        "measure": "count_persons",
        "where": [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}],
        "group_by": ["cpr.region"],
        "epsilon": 0.05,
    },
    {
        "project": PROJECT,
        "measure": "mean",
        "register": "ind",
        "column": "disposable_income",
        "group_by": ["cpr.region"],
        "epsilon": 0.1,
    },
]


@dataclass(frozen=True)
class PhaseResult:
    """What one phase measured."""

    kind: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_dataset() -> Path:
    from service.settings import default_db_path

    db = ROOT / default_db_path()
    if not db.is_file():
        from service.cli_commands import _build_default_dataset

        db.parent.mkdir(parents=True, exist_ok=True)
        _build_default_dataset(db)
    return db


def _start_server(
    db: Path, state: Path, workers: int, min_response: float
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "SUNDSTAT_ADMIN_TOKEN": ADMIN_TOKEN,
        "SUNDSTAT_MIN_RESPONSE_SECONDS": str(min_response),
        "SUNDSTAT_RATE_LIMIT_PER_SECOND": "1000000",
        "SUNDSTAT_RATE_LIMIT_BURST": "1000000",
        "SUNDSTAT_PUBLIC_RATE_LIMIT_PER_SECOND": "1000000",
        "SUNDSTAT_PUBLIC_RATE_LIMIT_BURST": "1000000",
        "SUNDSTAT_ENGINE_THREADS": "1",
        "SUNDSTAT_MAX_CONCURRENT_QUERIES": "8",
    }
    command = [
        sys.executable, "-m", "service.cli", "serve", "--no-dashboard", "--no-access-log", "--log-level", "warning",
        "--db", str(db), "--state-dir", str(state), "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    log = (state.parent / "server.log").open("wb")
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: see {state.parent / 'server.log'}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit("the server did not start within 120 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _setup(url: str) -> str:
    """Create the benchmark project (a large budget) and return an analyst token."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60) as admin:
        body = {"id": PROJECT, "title": "Load benchmark", "purpose": "research",
                "registers": ["cpr", "lpr", "lmdb", "dar", "ind", "udda"], "epsilon": 1_000_000.0}  # fmt: skip
        admin.post("/v1/projects", json=body).raise_for_status()
        token = admin.post(f"/v1/projects/{PROJECT}/tokens", json={"name": "load"}).json()["token"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as analyst:
        analyst.post("/v1/queries", json=BASE_QUERY).raise_for_status()  # the release the cached phase hits
    return str(token)


# --- the load generator (runs in client processes) ----------------------------------------------


def _drive(
    url: str, token: str, kind: str, threads: int, seconds: float, offset: int
) -> tuple[int, int, list[float]]:
    """One client process: ``threads`` threads send ``kind`` requests for ``seconds``."""
    stop_at = time.monotonic() + seconds

    def thread(index: int) -> tuple[int, int, list[float]]:
        done = errors = 0
        latencies: list[float] = []
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                if kind == "cached":
                    path, body = "/v1/queries", BASE_QUERY
                elif kind == "preview":
                    path, body = "/v1/queries/preview", PREVIEWS[n % len(PREVIEWS)]
                else:  # a distinct query every time: a new confidence level changes the canonical query
                    unique = (offset * 1000 + index) * 100_000 + n
                    path, body = "/v1/queries", {**BASE_QUERY, "confidence": 0.5 + unique * 1e-9}
                started = time.perf_counter()
                response = client.post(path, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code == 200:
                    done += 1
                    latencies.append(elapsed)
                else:
                    errors += 1
        return done, errors, latencies

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(thread, range(threads)))
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        [latency for r in results for latency in r[2]],
    )


def _phase(url: str, token: str, kind: str, clients: int, threads: int, seconds: float) -> PhaseResult:
    with ProcessPoolExecutor(clients) as pool:
        # Warm up (connections, caches), then measure.
        list(
            pool.map(
                _drive, *zip(*[(url, token, kind, threads, 1.0, 90 + i) for i in range(clients)], strict=True)
            )
        )
        started = time.monotonic()
        futures = [pool.submit(_drive, url, token, kind, threads, seconds, i) for i in range(clients)]
        results = [f.result() for f in futures]
        elapsed = time.monotonic() - started
    return PhaseResult(
        kind,
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        elapsed,
        [latency for r in results for latency in r[2]],
    )


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (default 10)")
    parser.add_argument("--clients", type=int, default=3, help="client processes (default 3)")
    parser.add_argument("--threads", type=int, default=16, help="threads per client process (default 16)")
    parser.add_argument(
        "--min-response", type=float, default=0.0, help="response padding in seconds (default 0)"
    )
    args = parser.parse_args(argv)

    db = _ensure_dataset()
    with tempfile.TemporaryDirectory(prefix="sundstat-load-") as tmp:
        process, url = _start_server(db, Path(tmp) / "state", args.workers, args.min_response)
        try:
            token = _setup(url)
            results = [
                _phase(url, token, kind, args.clients, args.threads, args.duration)
                for kind in ("cached", "preview", "query")
            ]
            verified = httpx.get(
                f"{url}/v1/admin/ledger/verify",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=120,
            ).json()
        finally:
            _stop(process)

    targets = {"cached": 500, "preview": 300, "query": 30}
    print(f"sundstat load benchmark: {db.name}, {args.workers} workers, {args.clients} client processes x "
          f"{args.threads} threads, {args.duration:g} s per phase, padding {args.min_response:g} s")  # fmt: skip
    print(f"{'kind':<8} {'requests':>9} {'errors':>7} {'req/s':>8} {'target':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(
            f"{r.kind:<8} {r.requests:>9} {r.errors:>7} {r.rps:>8.1f} {targets[r.kind]:>7} "
            f"{r.percentile(0.5):>8.1f} {r.percentile(0.99):>8.1f}"
        )
    print(f"ledger verify after the run: ok={verified['ok']}, {verified['entries']} entries")
    by_kind = {r.kind: r for r in results}
    summary = {
        "cached_rps": round(by_kind["cached"].rps, 1),
        "preview_rps": round(by_kind["preview"].rps, 1),
        "query_rps": round(by_kind["query"].rps, 1),
        "p99_ms": {r.kind: round(r.percentile(0.99), 1) for r in results},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
