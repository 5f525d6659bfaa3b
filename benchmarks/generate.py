"""Generator benchmark: wall time and peak memory of ``sundstat generate``.

Run with ``python -m benchmarks.generate --persons N``. The generator runs in a subprocess (the CLI,
without progress bar) so its peak resident memory can be read from ``RUSAGE_CHILDREN``. Targets:
at most 60 s per million persons (1,000,000 in 60 s, 6,000,000 in 6 minutes) and peak memory at
most 8 GB. Prints a table, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

SECONDS_PER_MILLION = 60.0
PEAK_RSS_TARGET_GB = 8.0


def run(persons: int, seed: int, out: Path) -> dict[str, Any]:
    """Generate into ``out`` in a child process and measure it."""
    command = [sys.executable, "-m", "service.cli", "generate", "--persons", str(persons)]
    command += ["--seed", str(seed), "--out", str(out), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    files = sorted(out.glob("*.parquet"))
    target_seconds = SECONDS_PER_MILLION * max(persons, 1_000_000) / 1_000_000
    peak_gb = usage.ru_maxrss / 1024**2  # kilobytes on Linux
    return {
        "benchmark": "generate",
        "persons": persons,
        "seed": seed,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime, 2),
        "peak_rss_gb": round(peak_gb, 3),
        "rows": {f.stem: pq.read_metadata(f).num_rows for f in files},
        "megabytes": round(sum(f.stat().st_size for f in files) / 1e6, 1),
        "load_average": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "target_seconds": target_seconds,
        "target_peak_rss_gb": PEAK_RSS_TARGET_GB,
        "ok": seconds <= target_seconds and peak_gb <= PEAK_RSS_TARGET_GB,
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"persons          {result['persons']:>14,}",
        f"wall time        {result['seconds']:>12.1f} s   (target {result['target_seconds']:.0f} s)",
        f"cpu time         {result['cpu_seconds']:>12.1f} s   ({result['cpus']} cpus, load {result['load_average']})",
        f"peak memory      {result['peak_rss_gb']:>12.2f} GB  (target {result['target_peak_rss_gb']:.0f} GB)",
        f"written          {result['megabytes']:>12.1f} MB",
    ]
    lines += [f"  {name:<14} {rows:>14,} rows" for name, rows in result["rows"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--out", help="keep the files in this directory (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.out:
        result = run(args.persons, args.seed, Path(args.out))
    else:
        with tempfile.TemporaryDirectory(prefix="sundstat-bench-") as tmp:
            result = run(args.persons, args.seed, Path(tmp))
    print(_table(result))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
