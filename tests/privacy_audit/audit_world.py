"""The audited queries: one per measure, run through the real engine, releases drawn many times.

What each audit exercises. The query goes through the real ``Engine`` on the real DuckDB files of
``neighbours``: validate, plan, compile, and the bounded aggregate SQL in DuckDB, once per database
(``Engine._execute``, so the bounding's effect is in the exact aggregates of the pair). The loss the
audit checks is the one ``Engine.cost`` reports, which is what the ledger charges. Releases are then
drawn many times from the OpenDP measurements the engine built for the plan
(``query_engine.engine._noise`` on the engine's ``_Prepared`` calibrations: discrete Laplace or
Gaussian, noisy max or noise threshold, each call a real OpenDP invocation with the engine's re-check
of the OpenDP map). A rho (zCDP) charge is audited as the (epsilon, delta) it implies at delta
0.01. Post-processing into the Release JSON (rounding, clipping, small-cell suppression) is a
function of these DP outputs only, so it is not re-run per sample: a bound on the DP outputs holds
for the releases.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import opendp.prelude as dp

from query_engine import Engine, ExactAggregates, ProjectContext, Query, parse_query
from query_engine import engine as engine_module
from query_engine.mechanisms import DPArray, PrivacyLoss, total_loss
from tests.privacy_audit.dp_tester import ALPHA, AuditResult, audit
from tests.privacy_audit.neighbours import CODE_PREFIX, UNIQUE_CODE, World

Release = tuple[list[tuple[Any, ...]], dict[str, DPArray]]
Batch = np.ndarray | list[Release]
Projection = Callable[[Batch], np.ndarray]


@dataclass(frozen=True)
class Case:
    """One query, the neighbour pair it is audited on, and (partition selection) the key watched."""

    name: str
    query: dict[str, Any]
    pair: tuple[str, str] = ("base", "plus_unique")
    context: ProjectContext = ProjectContext("pure")
    watched_key: str | None = None

    def parsed(self) -> Query:
        return parse_query({"project": "audit", **self.query})


PARTITION_CONTEXT = ProjectContext("pure", delta_available=True)


def cases(world: World) -> dict[str, Case]:
    """One audited query per measure (and two pairs for partition selection), by name."""
    lpr_los = {"register": "lpr", "column": "los_days"}
    by_code = {
        "measure": "count_persons",
        "where": [{"column": "lpr.diagnosis_code", "op": "prefix", "value": CODE_PREFIX}],
        "group_by": ["lpr.diagnosis_code"],
        "epsilon": 1.0,
    }
    listed = [
        Case(
            "count_persons",
            {
                "measure": "count_persons",
                "where": [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}],
                "group_by": ["cpr.sex"],
                "epsilon": 1.0,
            },
        ),
        Case(
            "count_rows",
            {
                "measure": "count_rows",
                "register": "lpr",
                "group_by": ["lpr.contact_type"],
                "max_groups": 1,
                "max_rows": 10,
                "epsilon": 1.0,
            },
        ),
        Case(
            "count_rows_zcdp",
            {
                "measure": "count_rows",
                "register": "lpr",
                "group_by": ["lpr.contact_type"],
                "max_groups": 1,
                "max_rows": 10,
                "rho": 0.5,
            },
            context=ProjectContext("zcdp"),
        ),
        Case("sum", {"measure": "sum", **lpr_los, "epsilon": 1.0}),
        Case("mean", {"measure": "mean", **lpr_los, "epsilon": 2.0}),
        Case(
            "quantile",
            {
                "measure": "quantile",
                **lpr_los,
                "bounds": [0, 10],
                "quantile": 0.5,
                # A cell of a few dozen contacts, so the candidates' scores are within a few noise
                # scales of each other and the heavy person's 10 contacts move the selection.
                "where": [
                    {"column": "cpr.region", "op": "=", "value": "Hovedstaden"},
                    {"column": "cpr.sex", "op": "=", "value": "F"},
                ],
                # The point gets half of the loss: at 2.0 it is audited at 1.0, as before the split.
                "epsilon": 2.0,
            },
        ),
        Case(
            "partition_selection_new_key",
            by_code,
            context=PARTITION_CONTEXT,
            watched_key=UNIQUE_CODE,
        ),
        Case(
            "partition_selection_shared_key",
            by_code,
            pair=("base", "plus_shared"),
            context=PARTITION_CONTEXT,
            watched_key=world.shared_code,
        ),
    ]
    return {case.name: case for case in listed}


class Sampler:
    """The engine's plan for one query on one database: exact aggregates once, releases many times."""

    def __init__(self, engine: Engine, query: Query, context: ProjectContext) -> None:
        self.prepared = engine._prepare(query, context)
        self.exact = engine._execute(self.prepared.plan)  # the real bounded SQL, once

    def draw(self, n: int) -> Batch:
        """``n`` independent releases, each from the engine's OpenDP measurements.

        Partition selection: a list of (released keys, DP outputs). Quantiles: an ``(n, 3 * cells)``
        matrix of the selected candidates (point, interval's lower end, upper end) per cell. Additive noise: an ``(n, entries)`` matrix of the DP outputs
        of all outputs and cells, drawn in one call of ``_noise`` on the exact vectors repeated n
        times (the measurement adds independent noise to every entry, so the rows are n
        independent releases).
        """
        plan = self.prepared.plan
        if plan.partition_selection:
            return [engine_module._noise(self.prepared, self.exact) for _ in range(n)]
        if plan.measure == "quantile":
            selections = ("index", "lower_index", "upper_index")
            draws = [engine_module._noise(self.prepared, self.exact)[1] for _ in range(n)]
            return np.array([np.concatenate([draw[name] for name in selections]) for draw in draws])
        tiled = ExactAggregates(
            self.exact.keys * n, {name: np.tile(v, n) for name, v in self.exact.values.items()}
        )
        _, noisy = engine_module._noise(self.prepared, tiled)
        return np.hstack([np.asarray(noisy[o.name]).reshape(n, -1) for o in plan.outputs])


def projection_for(case: Case, first: Sampler, second: Sampler) -> Projection:
    """The numbers each release is mapped to before bucketing (fixed before any sampling).

    Additive noise (counts, sums, means): the log-likelihood ratio of the release under the noise
    the engine calibrated, ``sum_i (|x_i - e_i| - |x_i - e'_i|) / scale_i`` (Laplace) or
    ``sum_i ((x_i - e_i)^2 - (x_i - e'_i)^2) / (2 scale_i^2)`` (Gaussian) over all outputs and cells,
    where ``e`` and ``e'`` are the pair's exact aggregates (the Neyman-Pearson statistic: its upper
    and lower tails are the sets where a privacy loss shows first).
    Quantiles: the selected candidates (point, interval's lower end, upper end; per cell), which
    ``audit_case`` audits one selection at a time against that selection's own charged part. Partition selection: the watched key's noisy
    count, or -1 when the key is not released.
    """
    plan = first.prepared.plan
    if plan.partition_selection:
        watched = (case.watched_key,)

        def threshold(batch: Batch) -> np.ndarray:
            assert isinstance(batch, list)
            counts = [
                dict(zip(keys, noisy["count"].tolist(), strict=True)).get(watched, -1)
                for keys, noisy in batch
            ]
            return np.asarray(counts, dtype=float)[:, None]

        return threshold
    if plan.measure == "quantile":
        return lambda batch: np.asarray(batch, dtype=float)
    names = [o.name for o in plan.outputs]
    scales = np.concatenate(
        [
            np.full(len(first.exact.values[name]), calibration.scale)
            for name, calibration in zip(names, first.prepared.calibrations, strict=True)
        ]
    )
    exact_first = np.concatenate([first.exact.values[n] for n in names]).astype(float)
    exact_second = np.concatenate([second.exact.values[n] for n in names]).astype(float)

    gaussian = first.prepared.calibrations[0].noise == "gaussian"

    def log_likelihood_ratio(batch: Batch) -> np.ndarray:
        x = np.asarray(batch, dtype=float)
        if gaussian:
            ratio = ((x - exact_first) ** 2 - (x - exact_second) ** 2) / (2 * scales**2)
        else:
            ratio = (np.abs(x - exact_first) - np.abs(x - exact_second)) / scales
        return ratio.sum(axis=1)[:, None]

    return log_likelihood_ratio


ZCDP_AUDIT_DELTA = 0.01
"""The delta at which a rho (zCDP) claim is audited: rho-zCDP implies (epsilon(delta), delta)-DP for
every delta, and a large delta keeps the sets the audit needs within reach of its samples."""


def claimed(loss: PrivacyLoss) -> tuple[float, float]:
    """The (epsilon, delta) a charged loss promises: as charged for epsilon; for rho, OpenDP's
    zCDP -> approx-DP conversion at ``ZCDP_AUDIT_DELTA`` (plus any thresholding delta)."""
    if loss.epsilon is not None:
        return loss.epsilon, loss.delta
    assert loss.rho is not None
    space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=float)
    converted = dp.c.make_zCDP_to_approxDP(dp.m.make_gaussian(*space, scale=1.0))
    # A unit Gaussian at L2 distance sqrt(2 rho) is rho-zCDP; the distance is rounded up.
    profile = converted.map(math.nextafter(math.sqrt(2 * loss.rho), math.inf))
    return float(profile.epsilon(delta=ZCDP_AUDIT_DELTA)), ZCDP_AUDIT_DELTA + loss.delta


def audit_case(
    world: World,
    case: Case,
    *,
    samples: int,
    pilot: int,
    alpha: float = ALPHA,
    buckets: int = 10,
) -> AuditResult:
    """Audit one case's claimed loss on its neighbour pair with ``samples`` releases per database."""
    query = case.parsed()
    first_path, second_path = (world.paths[name] for name in case.pair)
    with Engine.open(first_path) as first_engine, Engine.open(second_path) as second_engine:
        loss = first_engine.cost(query, case.context).loss
        if loss != second_engine.cost(query, case.context).loss:
            raise AssertionError("the claimed loss must not depend on the data")
        first = Sampler(first_engine, query, case.context)
        second = Sampler(second_engine, query, case.context)
    project = projection_for(case, first, second)
    pilot_samples = np.vstack([project(first.draw(pilot // 2)), project(second.draw(pilot - pilot // 2))])
    if first.prepared.plan.measure == "quantile":
        return _audit_quantile_parts(first, second, project, pilot_samples, loss, samples, alpha, buckets)
    return audit(
        project(first.draw(samples)),
        project(second.draw(samples)),
        pilot_samples,
        *claimed(loss),
        alpha=alpha,
        buckets=buckets,
    )


def _audit_quantile_parts(
    first: Sampler,
    second: Sampler,
    project: Projection,
    pilot_samples: np.ndarray,
    loss: PrivacyLoss,
    samples: int,
    alpha: float,
    buckets: int,
) -> AuditResult:
    """Audit each of a quantile's three selections against its own charged part of the loss.

    The charge is the composition of the parts (checked here: OpenDP's per-part maps add up to the
    charged loss), so if every part meets its claim the release meets the charge. The audit of a
    part is as strong as the audit of a single selection; a loss split over three selections would
    show in a joint statistic only with many more samples. Returns the failing part, if any, else
    the part closest to its claim.
    """
    calibrations = first.prepared.calibrations
    if total_loss(calibrations) != loss:
        raise AssertionError(f"the charged loss {loss} is not the composition of the quantile's parts")
    cells = first.prepared.plan.cells
    d, d2 = project(first.draw(samples)), project(second.draw(samples))
    results = []
    for k, calibration in enumerate(calibrations):
        part = slice(k * cells, (k + 1) * cells)
        results.append(
            audit(
                d[:, part],
                d2[:, part],
                pilot_samples[:, part],
                *claimed(calibration.loss),
                alpha=alpha,
                buckets=buckets,
            )
        )
    failing = [r for r in results if not r.passed]
    return (failing or sorted(results, key=lambda r: r.epsilon_lower_bound / r.epsilon_claimed))[-1]
