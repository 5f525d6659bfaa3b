"""The engine: validate -> plan -> compile -> execute -> exact aggregates -> mechanisms -> release.

The service calls ``cost`` (the exact loss to charge, touching no data), charges the ledger, then
``run`` with that cost; ``run`` re-derives the loss and refuses (``PrivacyInvariantError``) if it
differs. Exact aggregates never leave the engine except through ``_exact_for_tests``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from .accuracy import alpha_for
from .analyses import (
    AnalysisExact,
    PreparedAnalysis,
    compiled_analysis,
    exact_analysis,
    prepare_analysis,
    preview_analysis,
    run_analysis,
)
from .backends import Backend, DuckDBBackend
from .calibrate import calibrate_plan
from .catalog import Catalog
from .compile import CompiledQuery, compile_plan
from .errors import EngineInternalError, LossOutOfRange, PrivacyInvariantError, QueryError
from .mechanisms import (
    DPArray,
    NoiseCalibration,
    PrivacyLoss,
    add_noise,
    release_threshold,
    select_quantile,
    total_loss,
)
from .models import PreparedModel, compiled_model, prepare_model, preview_model, run_model
from .person_grain import check_person_grain
from .plan import Plan, plan_query
from .preaggregate import usable_preaggregates
from .quantile_interval import end_scores, interval_shift
from .release import ReleaseFacts, make_preview, make_release, mechanism_label, release_facts
from .release_models import Preview, Release
from .row_ranks import row_ranked_registers
from .settings import EngineSettings
from .spec import ProjectContext, Query
from .validate import group_warnings, validate

__all__ = ["Cost", "Engine", "ExactAggregates"]

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True)
class Cost:
    """What a query will be charged, computed from the query and the catalog only."""

    loss: PrivacyLoss
    mechanism: str
    registers: tuple[str, ...]
    canonical: dict[str, Any] = field(hash=False)
    query_hash: str
    plan: Plan | None = field(default=None, hash=False, compare=False)  # public: for the response-time model


@dataclass(frozen=True)
class ExactAggregates:
    """Exact bounded aggregates in key order: ``values[name]`` is (cells,) or (cells, candidates).

    Quantiles: ``scores`` (the point's), ``below`` (rows below each candidate) and ``rows`` (per cell).
    """

    keys: tuple[tuple[Any, ...], ...]
    values: dict[str, np.ndarray] = field(hash=False)


@dataclass(frozen=True)
class _Prepared:
    plan: Plan
    calibrations: tuple[NoiseCalibration, ...]  # one per plan output (quantile: point, lower, upper)
    loss: PrivacyLoss
    mechanism: str
    facts: ReleaseFacts  # what its releases state before the data is read


class _BoundedCache(dict[_K, _V]):
    """A small thread-safe memo; cleared when full (the working set of a service is small)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._lock = threading.Lock()

    def get_or_make(self, key: _K, make: Callable[[], _V]) -> _V:
        with self._lock:
            if key in self:
                return self[key]
        value = make()
        with self._lock:
            if len(self) >= self._size:
                self.clear()
            self[key] = value
        return value


def _cost(query: Query, prepared: _Prepared | PreparedAnalysis | PreparedModel) -> Cost:
    """The cost of a prepared query, analysis or model; a plain query's carries its plan."""
    return Cost(
        loss=prepared.loss,
        mechanism=prepared.mechanism,
        registers=prepared.plan.registers,
        canonical=query.canonical(),
        query_hash=query.query_hash(),
        plan=prepared.plan if isinstance(prepared, _Prepared) else None,
    )


class Engine:
    """A DP query engine over one database. Thread-safe; open once, query many times."""

    def __init__(
        self,
        backend: Backend,
        catalog: Catalog,
        settings: EngineSettings | None = None,
        preaggregates: frozenset[str] = frozenset(),
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.settings = settings or EngineSettings()
        # Current build-time pre-aggregates of the DuckDB database (checked at open), or none.
        self.preaggregates = preaggregates
        self._prepared: _BoundedCache[tuple[str, ProjectContext], _Prepared] = _BoundedCache(1024)
        self._compiled: _BoundedCache[tuple[Any, ...], CompiledQuery] = _BoundedCache(1024)
        self._analyses: _BoundedCache[tuple[str, ProjectContext], PreparedAnalysis] = _BoundedCache(256)
        self._models: _BoundedCache[tuple[str, ProjectContext], PreparedModel] = _BoundedCache(256)

    @classmethod
    def open(cls, db_path: str | Path, settings: EngineSettings | None = None) -> Engine:
        """Open a database built by ``sundstat build``; the catalog is read from the database.

        Refuses (``PersonGrainViolated``) a database whose person-grain registers repeat a person.
        """
        settings = settings or EngineSettings()
        backend = DuckDBBackend(
            db_path,
            memory_limit=settings.memory_limit,
            threads=settings.threads,
            timeout_s=settings.query_timeout_s,
            temp_dir=settings.temp_dir,
        )
        try:
            catalog = Catalog.loads(backend.read_catalog_json())
            check_person_grain(backend, catalog)

            def run(sql: str) -> pa.Table:
                return backend.execute(CompiledQuery(sql, (), backend.dialect))

            # The connection is read-only: what was verified and stored holds while this engine serves.
            catalog = dataclasses.replace(
                catalog, person_grain_verified=True, row_ranked_registers=row_ranked_registers(run, catalog)
            )
            preaggregates = usable_preaggregates(run, catalog)
        except Exception:
            backend.close()
            raise
        return cls(backend, catalog, settings, preaggregates)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- public API ----------------------------------------------------------------------------

    def cost(self, query: Query, context: ProjectContext) -> Cost:
        """The exact privacy loss to charge (OpenDP's map), registers touched, canonical query."""
        if query.is_model:
            return _cost(query, self._model(query, context))
        if query.is_analysis:
            return _cost(query, self._analysis(query, context))
        return _cost(query, self._prepare(query, context))

    def preview(self, query: Query, context: ProjectContext) -> Preview:
        """Loss, mechanism, scale and expected per-cell accuracy; touches no data, spends nothing."""
        if query.is_model:
            return preview_model(query, self._model(query, context))
        if query.is_analysis:
            return preview_analysis(query, self._analysis(query, context))
        return self._preview(query, self._prepare(query, context))

    def preview_and_cost(self, query: Query, context: ProjectContext) -> tuple[Preview, Cost]:
        """``preview`` and ``cost`` from one preparation (a preview shows what a run would be charged)."""
        if query.is_model:
            return self.preview(query, context), self.cost(query, context)  # one preparation, cached
        if query.is_analysis:
            analysis = self._analysis(query, context)
            return preview_analysis(query, analysis), _cost(query, analysis)
        prepared = self._prepare(query, context)
        return self._preview(query, prepared), _cost(query, prepared)

    def _preview(self, query: Query, prepared: _Prepared) -> Preview:
        preview = make_preview(query, prepared.plan, prepared.calibrations)
        return preview.model_copy(update={"warnings": group_warnings(query, self.catalog)})

    def run(
        self,
        query: Query,
        context: ProjectContext | None = None,
        *,
        cost: Cost | None = None,
        timeout_s: float | None = None,
    ) -> Release:
        """Execute and release. ``cost`` is what ``cost()`` said (and the ledger charged).

        ``timeout_s`` shortens the backend's execution time limit for this query (never lengthens it).
        """
        context = context or ProjectContext("pure")
        if query.is_model:  # regression models and Table 1: query_engine.models
            charged, charged_hash = (cost.loss, cost.query_hash) if cost is not None else (None, None)
            model = self._model(query, context)
            return run_model(
                self.backend,
                self.catalog,
                self.settings,
                query,
                context,
                model,
                charged=charged,
                charged_hash=charged_hash,
                timeout_s=timeout_s,
            )
        if query.is_analysis:  # cohorts, rates, survival, prevalence: query_engine.analyses
            analysis = self._analysis(query, context)
            charged, charged_hash = (cost.loss, cost.query_hash) if cost is not None else (None, None)
            return run_analysis(
                self.backend,
                self.catalog,
                self.settings,
                query,
                context,
                analysis,
                charged=charged,
                charged_hash=charged_hash,
                timeout_s=timeout_s,
            )
        prepared = self._prepare(query, context)
        self._recheck(query, context, prepared, cost)
        exact = self._execute(prepared.plan, timeout_s)
        keys, noisy = _noise(prepared, exact)
        return make_release(
            query,
            prepared.plan,
            prepared.calibrations,
            keys,
            noisy,
            small_cell_threshold=self.settings.small_cell_threshold,
            facts=prepared.facts,
            warnings=group_warnings(query, self.catalog),
        )

    def _exact_for_tests(self, query: Query, context: ProjectContext | None = None) -> ExactAggregates:
        """The exact bounded aggregates, for tests only: never call this from the service."""
        prepared = self._prepare(query, context or ProjectContext("zcdp", delta_available=True))
        return self._execute(prepared.plan)

    def _exact_analysis_for_tests(self, query: Query, context: ProjectContext | None = None) -> AnalysisExact:
        """The exact private table of an analysis, for tests only: never call this from the service."""
        plan = self._analysis(query, context or ProjectContext("pure")).plan
        return exact_analysis(self.backend, self.catalog, plan)

    def compiled(self, query: Query, context: ProjectContext, dialect: str = "duckdb") -> CompiledQuery:
        """The bounded aggregate SQL of a query (what ``run`` executes), e.g. for benchmarks."""
        if query.is_model:
            return compiled_model(self._model(query, context), self.catalog, dialect)[0]
        if query.is_analysis:
            return compiled_analysis(self._analysis(query, context), self.catalog, dialect)
        return self._compile(self._prepare(query, context).plan, dialect)

    # --- steps -------------------------------------------------------------------------------------

    def _prepare(self, query: Query, context: ProjectContext) -> _Prepared:
        return self._prepared.get_or_make(
            (query.canonical_json(), context), lambda: self._derive(query, context)
        )

    def _analysis(self, query: Query, context: ProjectContext) -> PreparedAnalysis:
        return self._analyses.get_or_make(
            (query.canonical_json(), context),
            lambda: prepare_analysis(query, self.catalog, context, self.settings),
        )

    def _model(self, query: Query, context: ProjectContext) -> PreparedModel:
        return self._models.get_or_make(
            (query.canonical_json(), context),
            lambda: prepare_model(query, self.catalog, context, self.settings),
        )

    def _derive(self, query: Query, context: ProjectContext) -> _Prepared:
        """Validate, plan and calibrate from scratch (calibrations are cached inside mechanisms)."""
        validate(query, self.catalog, context, self.settings)
        plan = plan_query(query, self.catalog, context, self.settings)
        try:
            calibrations = calibrate_plan(plan, self.settings)
        except QueryError as exc:
            if exc.stage is None:
                exc.stage = "plan"
            raise
        loss = _combined(calibrations)
        self._check_limits(loss)
        mechanism = mechanism_label(calibrations)
        return _Prepared(plan, calibrations, loss, mechanism, release_facts(query, plan, calibrations))

    def _check_limits(self, loss: PrivacyLoss) -> None:
        limit = self.settings.max_epsilon if loss.epsilon is not None else self.settings.max_rho
        name = "epsilon" if loss.epsilon is not None else "rho"
        if loss.value > limit:
            raise LossOutOfRange(
                f"Reaching this target_ci needs {name} = {loss.value:.4g}, above the per-query limit {limit}; "
                "ask for a wider interval or coarser groups.",
                stage="plan",
            )

    def _compile(self, plan: Plan, dialect: str = "duckdb") -> CompiledQuery:
        key = (dialect, _sql_key(plan))
        preaggregates = self.preaggregates if dialect == self.backend.dialect == "duckdb" else frozenset()
        return self._compiled.get_or_make(
            key, lambda: compile_plan(plan, self.catalog, dialect, preaggregates=preaggregates)
        )

    def _execute(self, plan: Plan, timeout_s: float | None = None) -> ExactAggregates:
        compiled = self._compile(plan, self.backend.dialect)
        if timeout_s is None:
            table = self.backend.execute(compiled)
        else:
            table = self.backend.execute(compiled, timeout_s=timeout_s)
        return _exact(plan, table)

    def _recheck(self, query: Query, context: ProjectContext, prepared: _Prepared, cost: Cost | None) -> None:
        """Re-derive the plan from the query and check it, the calibrations and the loss against the cost.

        The sensitivities of a fresh plan must be those the calibrations were made for; the loss is
        recomputed from the calibrations (and each calibration's OpenDP map is re-checked by
        ``mechanisms`` right before sampling), so what is released is what was charged.
        """
        validate(query, self.catalog, context, self.settings)
        plan = plan_query(query, self.catalog, context, self.settings)
        sensitivities = tuple(o.sensitivity for o in plan.outputs)
        loss = _combined(prepared.calibrations)
        problems = []
        if plan != prepared.plan or sensitivities != tuple(c.sensitivity for c in prepared.calibrations):
            problems.append("the plan's sensitivity differs from the calibrated one")
        if loss != prepared.loss:
            problems.append(f"the calibrations add up to {loss}, not {prepared.loss}")
        if cost is not None and cost.loss != loss:
            problems.append(f"the charged cost is {cost.loss}, the derived loss {loss}")
        if cost is not None and cost.query_hash != query.query_hash():
            problems.append("the cost belongs to a different query")
        if problems:
            raise PrivacyInvariantError(
                f"Refusing to release: {'; '.join(problems)}. This is a bug in sundstat; nothing was released.",
                stage="mechanism",
            )


def _noise(prepared: _Prepared, exact: ExactAggregates) -> tuple[list[tuple[Any, ...]], dict[str, DPArray]]:
    """The mechanisms on the exact aggregates: the released keys and the DP outputs by name.

    Nothing exact leaves this function: the keys are public (key-set order), or, with partition
    selection, the keys that the noisy threshold kept.
    """
    plan, calibrations = prepared.plan, prepared.calibrations
    if plan.partition_selection:
        encoded = [json.dumps(list(k), ensure_ascii=False) for k in exact.keys]
        kept, noisy_count = release_threshold(calibrations[0], encoded, exact.values["count"])
        return [tuple(json.loads(k)) for k in kept], {"count": noisy_count}
    keys = list(exact.keys)
    if plan.measure == "quantile":
        assert plan.quantile is not None
        shift = interval_shift(calibrations[1], alpha_for(plan.loss.confidence))
        lower, upper = end_scores(
            exact.values["below"],
            exact.values["rows"],
            plan.quantile.numerator,
            plan.quantile.denominator,
            shift,
        )
        return keys, {
            "index": select_quantile(calibrations[0], exact.values["scores"]),
            "lower_index": select_quantile(calibrations[1], lower),
            "upper_index": select_quantile(calibrations[2], upper),
        }
    return keys, {
        output.name: add_noise(calibration, exact.values[output.name])
        for output, calibration in zip(plan.outputs, calibrations, strict=True)
    }


def _combined(calibrations: tuple[NoiseCalibration, ...]) -> PrivacyLoss:
    return calibrations[0].loss if len(calibrations) == 1 else total_loss(calibrations)


def _sql_key(plan: Plan) -> tuple[Any, ...]:
    """Everything the SQL depends on (not the privacy loss)."""
    return (
        plan.measure,
        plan.grain,
        plan.row_filters,
        plan.person_filters,
        plan.cohorts,
        plan.groups,
        plan.bounding,
        plan.value,
        plan.quantile,
        plan.partition_selection,
    )


def _int64(table: pa.Table, column: str) -> np.ndarray:
    """A writable int64 copy (Arrow buffers are read-only, and OpenDP needs writable memory)."""
    return np.array(table.column(column).to_numpy(zero_copy_only=False), dtype=np.int64, copy=True)


def _exact(plan: Plan, table: pa.Table) -> ExactAggregates:
    """Exact aggregates from the result table: keys in order, int64 vectors per output."""
    key_names = [f"g{i}" for i in range(len(plan.groups))]
    if plan.measure == "quantile":
        assert plan.quantile is not None
        m = plan.quantile.candidates
        scores = _int64(table, "score")
        if scores.size % m:
            raise EngineInternalError(
                "Internal error: the quantile scores do not fill the candidate grid. This is a bug in "
                "sundstat; nothing was released.",
                stage="execute",
            )
        cells = scores.size // m
        columns = [table.column(k).to_pylist()[::m] for k in key_names]
        keys = tuple(zip(*columns, strict=True)) if key_names else ((),)
        if len(keys) != cells:
            raise EngineInternalError(
                "Internal error: the quantile cells do not match the key sets. This is a bug in sundstat; "
                "nothing was released.",
                stage="execute",
            )
        below = _int64(table, "below").reshape(cells, m)
        rows = _int64(table, "n_rows").reshape(cells, m)[:, 0]
        return ExactAggregates(keys, {"scores": scores.reshape(cells, m), "below": below, "rows": rows})
    columns = [table.column(k).to_pylist() for k in key_names]
    keys = tuple(zip(*columns, strict=True)) if key_names else ((),) * table.num_rows
    if not plan.partition_selection and len(keys) != plan.cells:
        raise EngineInternalError(
            "Internal error: the result does not hold one row per public key. This is a bug in sundstat; "
            "nothing was released.",
            stage="execute",
        )
    values: dict[str, np.ndarray] = {
        o.name: _int64(table, {"count": "n", "sum": "s"}[o.name]) for o in plan.outputs
    }
    return ExactAggregates(keys, values)
