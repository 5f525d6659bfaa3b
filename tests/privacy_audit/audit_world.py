"""The audited system: neighbouring DuckDB files, one query per measure, releases drawn through the engine.

Databases (real DuckDB files in the engine's schema, written by the query-engine test helpers):

``base``            a few hundred random persons (``engine_fixtures.random_dataset``)
``plus_unique``     ``base`` plus one *heavy* person: 20 hospital contacts of each contact type
                    (60 rows, 365 bed-days each, all with a diagnosis code nobody else has), 60
                    prescriptions and 10 income years
``plus_shared``     ``base`` plus the same heavy person, whose diagnosis code is instead the one
                    shared by the most persons in ``base`` (a key near the release threshold)
``minus_busiest``   ``base`` without its person with the most hospital contacts (the removal neighbour)

Each pair differs by one person with many rows, so contribution bounding (c rows per group, G groups
per person, clamped values) is what limits the heavy person's effect.

What each audit exercises. The query goes through the real ``Engine`` on the real file: validate,
plan, compile, and the bounded aggregate SQL in DuckDB, once per database (``Engine._execute``,
so the bounding's effect is in the exact aggregates of the pair). The loss the audit checks is the
one ``Engine.cost`` reports, which is what the ledger charges. Releases are then drawn many times
from the OpenDP measurements the engine built for the plan (``query_engine.engine._noise`` on the
engine's ``_Prepared`` calibrations: discrete Laplace, noisy max or noise threshold, each call a
real OpenDP invocation with the engine's re-check of the OpenDP map). Post-processing into the
Release JSON (rounding, clipping, small-cell suppression) is a function of these DP outputs only,
so it is not re-run per sample: a bound on the DP outputs holds for the releases.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dp_tester import ALPHA, AuditResult, audit
from engine_fixtures import build_fixture_catalog, create_db, random_dataset

from query_engine import Engine, ExactAggregates, ProjectContext, Query, parse_query
from query_engine import compile as compile_module
from query_engine import engine as engine_module
from query_engine import plan as plan_module
from query_engine.catalog import Catalog
from query_engine.mechanisms import DPArray, NoiseCalibration, Sensitivity, calibrate_threshold

BASE_PERSONS = 300
BASE_SEED = 20261206
HEAVY_ID = 900_001
HEAVY_ROWS_PER_TYPE = 20
UNIQUE_CODE = "DEAUDIT"
CODE_PREFIX = "DE"  # partition selection is audited on the diagnosis codes of this prefix (~10 keys)

Row = dict[str, Any]
Tables = dict[str, list[Row]]
Release = tuple[list[tuple[Any, ...]], dict[str, DPArray]]
Batch = np.ndarray | list[Release]
Projection = Callable[[Batch], np.ndarray]
Patcher = Callable[[pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class World:
    """The neighbouring database files and the fixture catalog they were written with."""

    catalog: Catalog
    paths: dict[str, Path]
    shared_code: str


def heavy_person(catalog: Catalog, diagnosis_code: str) -> Tables:
    """One person with many rows in every event register, at the top of every value range."""
    contact_types = catalog.keyset("contact_types").values
    key = iter(range(2 * 10**9, 2 * 10**9 + 1000))
    day = dt.date(2016, 3, 1)
    lpr = [
        {
            "person_id": HEAVY_ID,
            "row_key": next(key),
            "contact_id": next(key),
            "admission_date": day + dt.timedelta(days=i),
            "discharge_date": day + dt.timedelta(days=i + 365),
            "los_days": 365,
            "icd10": "E11",
            "diagnosis_code": diagnosis_code,
            "contact_type": contact_type,
            "hospital_region": "Hovedstaden",
        }
        for contact_type in contact_types
        for i in range(HEAVY_ROWS_PER_TYPE)
    ]
    lmdb = [
        {
            "person_id": HEAVY_ID,
            "row_key": next(key),
            "date": day + dt.timedelta(days=i),
            "atc": "A10BA02",
            "ddd": 1e6,
            "packages": 3,
        }
        for i in range(60)
    ]
    ind = [
        {"person_id": HEAVY_ID, "row_key": next(key), "year": year, "disposable_income": 10**8}
        for year in range(2015, 2025)
    ]
    cpr = [
        {
            "person_id": HEAVY_ID,
            "row_key": next(key),
            "sex": "F",
            "birth_date": dt.date(1960, 5, 5),
            "region": "Hovedstaden",
            "municipality": catalog.keyset("municipalities").values[0],
            "death_date": None,
        }
    ]
    return {"cpr": cpr, "lpr": lpr, "lmdb": lmdb, "ind": ind}


def _most_shared_code(base: Tables) -> str:
    """The ``CODE_PREFIX`` code that most persons' first such contact (by row key) has in ``base``."""
    first: dict[int, tuple[int, str]] = {}
    for row in base["lpr"]:
        code, pid = row["diagnosis_code"], row["person_id"]
        if code and code.startswith(CODE_PREFIX) and (pid not in first or row["row_key"] < first[pid][0]):
            first[pid] = (row["row_key"], code)
    return Counter(code for _, code in first.values()).most_common(1)[0][0]


def _plus(base: Tables, extra: Tables) -> Tables:
    return {name: rows + extra.get(name, []) for name, rows in base.items()}


def _minus_busiest(base: Tables) -> Tables:
    """``base`` without the person with the most hospital contacts (most bed-days among those)."""
    contacts = Counter(row["person_id"] for row in base["lpr"])
    days = Counter({pid: 0 for pid in contacts})
    for row in base["lpr"]:
        days[row["person_id"]] += row["los_days"] or 0
    busiest = max(contacts, key=lambda pid: (contacts[pid], days[pid]))
    return {name: [row for row in table if row["person_id"] != busiest] for name, table in base.items()}


def build_world(directory: Path, persons: int = BASE_PERSONS, seed: int = BASE_SEED) -> World:
    """Write the four database files (a few hundred persons each) under ``directory``."""
    catalog = build_fixture_catalog(directory)
    base = random_dataset(seed, persons, catalog)
    shared = _most_shared_code(base)
    tables = {
        "base": base,
        "plus_unique": _plus(base, heavy_person(catalog, UNIQUE_CODE)),
        "plus_shared": _plus(base, heavy_person(catalog, shared)),
        "minus_busiest": _minus_busiest(base),
    }
    paths = {name: create_db(directory / f"{name}.duckdb", catalog, rows) for name, rows in tables.items()}
    return World(catalog, paths, shared)


# --- the audited queries ----------------------------------------------------------------------------


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
        Case("sum", {"measure": "sum", **lpr_los, "epsilon": 1.0}),
        Case("mean", {"measure": "mean", **lpr_los, "epsilon": 2.0}),
        Case(
            "quantile",
            {"measure": "quantile", **lpr_los, "bounds": [0, 10], "quantile": 0.5, "epsilon": 1.0},
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


# --- drawing releases ---------------------------------------------------------------------------


class Sampler:
    """The engine's plan for one query on one database: exact aggregates once, releases many times."""

    def __init__(self, engine: Engine, query: Query, context: ProjectContext) -> None:
        self.prepared = engine._prepare(query, context)
        self.exact = engine._execute(self.prepared.plan)  # the real bounded SQL, once

    def draw(self, n: int) -> Batch:
        """``n`` independent releases, each from the engine's OpenDP measurements.

        Partition selection: a list of (released keys, DP outputs). Quantiles: an ``(n, cells)``
        matrix of selected candidates. Additive noise: an ``(n, entries)`` matrix of the DP outputs
        of all outputs and cells, drawn in one call of ``_noise`` on the exact vectors repeated n
        times (the measurement adds independent noise to every entry, so the rows are n
        independent releases).
        """
        plan = self.prepared.plan
        if plan.partition_selection:
            return [engine_module._noise(self.prepared, self.exact) for _ in range(n)]
        if plan.measure == "quantile":
            return np.array([engine_module._noise(self.prepared, self.exact)[1]["index"] for _ in range(n)])
        tiled = ExactAggregates(
            self.exact.keys * n, {name: np.tile(v, n) for name, v in self.exact.values.items()}
        )
        _, noisy = engine_module._noise(self.prepared, tiled)
        return np.hstack([np.asarray(noisy[o.name]).reshape(n, -1) for o in plan.outputs])


def projection_for(case: Case, first: Sampler, second: Sampler) -> Projection:
    """The numbers each release is mapped to before bucketing (fixed before any sampling).

    Additive noise (counts, sums, means): the log-likelihood ratio of the release under the Laplace
    noise the engine calibrated, ``sum_i (|x_i - e_i| - |x_i - e'_i|) / scale_i`` over all outputs
    and cells, where ``e`` and ``e'`` are the pair's exact aggregates (the Neyman-Pearson statistic:
    its upper and lower tails are the sets where a privacy loss shows first).
    Quantiles: the selected candidate of each cell. Partition selection: the watched key's noisy
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

    def log_likelihood_ratio(batch: Batch) -> np.ndarray:
        x = np.asarray(batch, dtype=float)
        return ((np.abs(x - exact_first) - np.abs(x - exact_second)) / scales).sum(axis=1)[:, None]

    return log_likelihood_ratio


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
        if loss.epsilon is None:
            raise ValueError("the audit checks (epsilon, delta) claims: state the query's loss as epsilon")
        first = Sampler(first_engine, query, case.context)
        second = Sampler(second_engine, query, case.context)
    project = projection_for(case, first, second)
    pilot_samples = np.vstack([project(first.draw(pilot // 2)), project(second.draw(pilot - pilot // 2))])
    return audit(
        project(first.draw(samples)),
        project(second.draw(samples)),
        pilot_samples,
        loss.epsilon,
        loss.delta,
        alpha=alpha,
        buckets=buckets,
    )


# --- deliberately broken builds -------------------------------------------------------------------


def remove_bounding(patch: pytest.MonkeyPatch) -> None:
    """The compiled SQL applies no c/G bounding: every row of a person reaches the aggregate."""
    patch.setattr(compile_module._Builder, "bounding", lambda self, source: [])


def _halved(s: Sensitivity) -> Sensitivity:
    return Sensitivity(l1=max(1, s.l1 // 2), l2=s.l2 / 2, linf=max(1, s.linf // 2), l0=s.l0)


def halve_sensitivity(patch: pytest.MonkeyPatch) -> None:
    """The planner declares half the real sensitivity, so noise is calibrated (and charged) for it."""
    original = plan_module._outputs

    def halved(*args: Any) -> tuple[plan_module.Output, ...]:
        return tuple(dataclasses.replace(o, sensitivity=_halved(o.sensitivity)) for o in original(*args))

    patch.setattr(plan_module, "_outputs", halved)


def charge_mean_sum_only(patch: pytest.MonkeyPatch) -> None:
    """A mean's loss is taken from its noisy sum only: the noisy count's half is not accounted."""
    patch.setattr(engine_module, "_combined", lambda calibrations: calibrations[0].loss)


def charge_mean_count_only(patch: pytest.MonkeyPatch) -> None:
    """A mean's loss is taken from its noisy count only: the noisy sum's half is not accounted."""
    patch.setattr(engine_module, "_combined", lambda calibrations: calibrations[-1].loss)


def lower_threshold(patch: pytest.MonkeyPatch) -> None:
    """Partition selection releases with the threshold of delta = 0.4 while charging the real delta."""
    original = engine_module.release_threshold

    def loose(
        calibration: NoiseCalibration, keys: Sequence[str], counts: np.ndarray
    ) -> tuple[list[str], DPArray]:
        assert calibration.loss.epsilon is not None
        lowered = calibrate_threshold(
            "laplace", calibration.sensitivity, epsilon=calibration.loss.epsilon, delta=0.4
        )
        return original(lowered, keys, counts)

    patch.setattr(engine_module, "release_threshold", loose)


BROKEN_BUILDS: dict[str, tuple[Patcher, str]] = {
    "bounding_removed": (remove_bounding, "count_rows"),
    "bounding_removed_sum": (remove_bounding, "sum"),
    "sensitivity_halved": (halve_sensitivity, "count_rows"),
    "sensitivity_halved_sum": (halve_sensitivity, "sum"),
    "mean_charged_sum_only": (charge_mean_sum_only, "mean"),
    "mean_charged_count_only": (charge_mean_count_only, "mean"),
    "threshold_lowered": (lower_threshold, "partition_selection_new_key"),
}
"""Each broken build and the case it is audited on (the audit must FAIL)."""
