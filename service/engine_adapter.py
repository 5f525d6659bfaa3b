"""The boundary between the service and the query engine.

The engine and the ledger never import each other; this module is where the engine's privacy loss
becomes the ledger's exact :class:`~budget_ledger.Charge`, and where the engine is opened with limits
taken from the service's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from budget_ledger import Charge
from query_engine.catalog import Catalog
from query_engine.engine import Cost
from query_engine.release_models import Preview, Release
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, Query

from .settings import Settings

__all__ = ["EngineLike", "QueryCost", "charge_of", "cost_of", "open_engine"]


class EngineLike(Protocol):
    """What the service uses of ``query_engine.engine.Engine``."""

    @property
    def catalog(self) -> Catalog:
        """The catalog of the served database."""
        ...

    def cost(self, query: Query, context: ProjectContext) -> Cost:
        """Validate and compute the exact privacy loss; touches no data."""
        ...

    def preview(self, query: Query, context: ProjectContext) -> Preview:
        """Cost and expected accuracy; touches no data."""
        ...

    def preview_and_cost(self, query: Query, context: ProjectContext) -> tuple[Preview, Cost]:
        """``preview`` and ``cost`` from one validation and plan; touches no data."""
        ...

    def run(
        self,
        query: Query,
        context: ProjectContext | None = None,
        *,
        cost: Cost | None = None,
        timeout_s: float | None = None,
    ) -> Release:
        """Execute, add noise, and return the release (refusing if the loss differs from ``cost``);
        ``timeout_s`` shortens the execution time limit."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...


@dataclass(frozen=True)
class QueryCost:
    """What the ledger needs to charge a query: exact loss, touched registers, canonical form and hash."""

    charge: Charge
    registers: tuple[str, ...]
    canonical_json: str
    query_hash: str
    engine_cost: Cost


def cost_of(engine: EngineLike, query: Query, context: ProjectContext) -> QueryCost:
    """Ask the engine for the query's cost and express it as a ledger charge.

    The engine states losses as floats (OpenDP's ``map``); ``Charge.of`` converts them exactly,
    rounding up, so the ledger never charges less than OpenDP computed.
    """
    return charge_of(query, engine.cost(query, context))


def charge_of(query: Query, cost: Cost) -> QueryCost:
    """The engine's ``cost`` of ``query`` as the ledger's exact charge (see ``cost_of``)."""
    loss = cost.loss
    charge = Charge.of(epsilon=loss.epsilon or 0, rho=loss.rho or 0, delta=loss.delta)
    return QueryCost(
        charge=charge,
        registers=tuple(cost.registers),
        canonical_json=query.canonical_json(),  # the text the hash is of (``Query`` owns it)
        query_hash=cost.query_hash,
        engine_cost=cost,
    )


def engine_settings(settings: Settings) -> EngineSettings:
    """The engine's limits, from the service's settings."""
    return EngineSettings.model_validate(
        {
            "max_cells": settings.engine_max_cells,
            "small_cell_threshold": settings.small_cell_threshold,
            "query_timeout_s": settings.engine_timeout_seconds,
            "memory_limit": settings.engine_memory_limit,
            "threads": settings.engine_threads,
            "temp_dir": str(settings.engine_spill_dir),
            "max_group_columns": settings.engine_max_group_columns,
            "max_epsilon": settings.engine_max_epsilon,
            "max_rho": settings.engine_max_rho,
            "min_epsilon": settings.min_epsilon,
            "min_rho": settings.min_rho,
        }
    )


def open_engine(settings: Settings) -> EngineLike:
    """Open the engine read-only on the settings' database (or on Spark over Parquet files)."""
    from query_engine.engine import Engine

    if settings.backend == "spark":
        from query_engine.backends.spark_backend import open_spark_engine

        assert settings.parquet_dir is not None
        spark: EngineLike = open_spark_engine(
            settings.parquet_dir, settings.spark_master, engine_settings(settings)
        )
        return spark
    engine: EngineLike = Engine.open(settings.db_path, engine_settings(settings))
    return engine
