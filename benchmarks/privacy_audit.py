"""The privacy audit, long form: certified lower bounds on epsilon for every measure and broken build.

    python -m benchmarks.privacy_audit [--samples 100000] [--slow-samples 10000] [--seeds 2]

The same audit as ``tests/privacy_audit`` (read ``tests/privacy_audit/dp_tester.py`` for the test
and ``audit_world.py`` for what runs per sample), with more releases per database and more
neighbour pairs: for each base seed, the heavy person added (``plus_unique``, ``plus_shared``) and
the base's busiest person removed (``minus_busiest``). Every correct build must pass and every
deliberately broken build must FAIL. Prints a table (measure, pair, build, claimed epsilon and
delta, the certified lower bound on epsilon at confidence 1 - alpha, verdict) and, as its last
line, one JSON object. Exits with status 1 when any verdict is not the expected one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.privacy_audit.audit_world import Case, audit_case, cases
from tests.privacy_audit.broken_builds import BROKEN_BUILDS
from tests.privacy_audit.dp_tester import ALPHA, AuditResult
from tests.privacy_audit.neighbours import World, build_world

SLOW_CASES = ("quantile", "partition_selection_new_key", "partition_selection_shared_key")


def _row(
    case: Case, build: str, expected: str, result: AuditResult, seed: int, seconds: float
) -> dict[str, Any]:
    bound = result.epsilon_lower_bound
    return {
        "case": case.name,
        "measure": case.query["measure"],
        "pair": f"{case.pair[0]} / {case.pair[1]}",
        "seed": seed,
        "build": build,
        "epsilon_claimed": result.epsilon_claimed,
        "delta_claimed": result.delta_claimed,
        "epsilon_lower_bound": bound if math.isfinite(bound) else None,
        "samples": result.samples,
        "verdict": result.verdict,
        "expected": expected,
        "as_expected": result.verdict == expected,
        "worst_set": result.worst_set,
        "seconds": round(seconds, 2),
    }


def _audit(world: World, case: Case, args: argparse.Namespace) -> AuditResult:
    samples = args.slow_samples if case.name in SLOW_CASES else args.samples
    return audit_case(world, case, samples=samples, pilot=max(400, samples // 10), alpha=args.alpha)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for seed in range(args.base_seed, args.base_seed + args.seeds):
        with tempfile.TemporaryDirectory(prefix="privacy-audit-") as directory:
            world = build_world(Path(directory), persons=args.persons, seed=seed)
            audited = cases(world)
            for case in audited.values():
                pairs = [case.pair]
                if case.watched_key is None:  # partition selection watches the heavy person's key
                    pairs.append(("base", "minus_busiest"))
                for pair in pairs:
                    paired = dataclasses.replace(case, pair=pair)
                    start = time.perf_counter()
                    result = _audit(world, paired, args)
                    rows.append(_row(paired, "correct", "pass", result, seed, time.perf_counter() - start))
                    print(_format(rows[-1]), flush=True)
            for build, (patch, name) in BROKEN_BUILDS.items():
                with pytest.MonkeyPatch.context() as patcher:
                    patch(patcher)
                    start = time.perf_counter()
                    result = _audit(world, audited[name], args)
                rows.append(_row(audited[name], build, "FAIL", result, seed, time.perf_counter() - start))
                print(_format(rows[-1]), flush=True)
    return rows


HEADER = (
    f"{'case':<31} {'pair':<26} {'build':<28} {'eps':>5} {'delta':>8} {'eps >= (1-a)':>12} "
    f"{'samples':>8} {'verdict':>7}"
)


def _format(row: dict[str, Any]) -> str:
    bound = row["epsilon_lower_bound"]
    shown = "-inf" if bound is None else f"{bound:.3f}"
    mark = "" if row["as_expected"] else "  <-- NOT AS EXPECTED"
    return (
        f"{row['case']:<31} {row['pair']:<26} {row['build']:<28} {row['epsilon_claimed']:>5.2f} "
        f"{row['delta_claimed']:>8.1e} {shown:>12} {row['samples']:>8} {row['verdict']:>7}{mark}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000, help="releases per database (additive noise)")
    parser.add_argument(
        "--slow-samples", type=int, default=10_000, help="releases per database (quantiles, thresholds)"
    )
    parser.add_argument("--seeds", type=int, default=2, help="number of base datasets (neighbour pairs)")
    parser.add_argument("--base-seed", type=int, default=20261206)
    parser.add_argument("--persons", type=int, default=300)
    parser.add_argument("--alpha", type=float, default=ALPHA, help="false-failure probability per audit")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(HEADER, flush=True)
    rows = run(args)
    ok = all(row["as_expected"] for row in rows)
    summary = {
        "benchmark": "privacy_audit",
        "alpha": args.alpha,
        "samples": args.samples,
        "slow_samples": args.slow_samples,
        "seeds": args.seeds,
        "persons": args.persons,
        "all_as_expected": ok,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
