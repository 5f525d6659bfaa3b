"""What a query form may offer (``GET /v1/query-options``): the engine's per-query limits and the
contribution bounds a given measure, register and grouping may tighten.

Both are the engine's rules (its settings, ``query_engine.bounding_options``), served so that a
client such as the dashboard never keeps its own copy of them. Public: they depend on the
installation's settings and the declared catalog only.
"""

from __future__ import annotations

from collections.abc import Sequence

from query_engine.bounding_options import bounding_options
from query_engine.catalog import Catalog
from query_engine.models_plan import MAX_COVARIATES
from query_engine.settings import EngineSettings
from query_engine.spec import ANALYSIS_MEASURES, MODEL_MEASURES, Measure, Query

from .schemas import BoundingOptionPublic, QueryLimitsPublic, QueryOptionsPublic

__all__ = ["query_limits", "query_options"]

_REGRESSIONS = ("poisson_regression", "logistic_regression", "linear_regression")


def query_limits(settings: EngineSettings) -> QueryLimitsPublic:
    """The engine's per-query limits."""
    return QueryLimitsPublic.model_validate(settings, from_attributes=True)


def query_options(
    catalog: Catalog, settings: EngineSettings, measure: Measure, register: str, group_by: Sequence[str]
) -> QueryOptionsPublic:
    """The limits, and the bounds a query of this ``measure`` on ``register`` grouped by ``group_by``
    may set (raises the engine's ``QueryError`` for an unknown register or column). An analysis
    (rate, survival, prevalence) counts each person once in one cell, and a model or Table 1 reads one
    row per person: they have no bound to tighten. A regression's group columns are its categorical
    covariates: it takes up to the models' own limit of them, whatever the plain queries' limit."""
    if measure in _REGRESSIONS:
        limits = query_limits(settings).model_copy(update={"max_group_columns": MAX_COVARIATES})
        return QueryOptionsPublic(limits=limits, bounding=[])
    if measure in ANALYSIS_MEASURES or measure in MODEL_MEASURES:
        return QueryOptionsPublic(limits=query_limits(settings), bounding=[])
    # The loss does not change which bounds apply; a Query needs one, so it gets a placeholder.
    query = Query(
        project="query-options", measure=measure, register=register, group_by=tuple(group_by), epsilon=1.0
    )
    options = [
        BoundingOptionPublic(name=o.name, register=o.register, default=o.default, maximum=o.maximum)
        for o in bounding_options(query, catalog)
    ]
    return QueryOptionsPublic(limits=query_limits(settings), bounding=options)
