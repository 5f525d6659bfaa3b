"""One SQL statement for all the histograms of a Table 1 (the cohort is built once, not per variable).

The statement is the cohort SQL of ``compile_cohort`` over the *cross* plan (every group and variable
column), ending in ``SELECT g0, ..., gk, COUNT(*) AS n FROM cohort GROUP BY g0, ..., gk``: the exact
number of members per combination that occurs, NULL keys included. Each variable's histogram is then
the margin over its own columns (``table1_histograms``), summed over the public keys of those
columns only, so a person with a missing value in one variable still counts in the others: exactly
the histogram that variable's own SQL would give (a test compares them). The combinations never
leave the engine; only the margins, each with its declared sensitivity, get noise.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from .backends import Backend
from .catalog import Catalog
from .compile import CompiledQuery
from .compile_cohort import _AnalysisSQL
from .errors import EngineInternalError
from .models_plan import ModelPlan

__all__ = ["compile_table1", "table1_histograms"]


def compile_table1(plan: ModelPlan, catalog: Catalog, dialect: str = "duckdb") -> CompiledQuery:
    """The members per occurring combination of the cross plan's group columns."""
    cross = plan.cross
    if cross is None or cross.cohort is None:
        raise EngineInternalError("Internal error: a Table 1 plan without its cross plan.", stage="compile")
    builder = _AnalysisSQL(cross, catalog, dialect)
    ctes: list[tuple[str, exp.Expr]] = [*builder.persons(), *builder.cohort_ctes(cross.cohort)]
    keys = [f"g{i}" for i in range(len(cross.groups))]
    final = exp.select(*keys, exp.alias_(exp.Count(this=exp.Star()), "n")).from_("cohort").group_by(*keys)
    for name, query in ctes:
        final = final.with_(name, as_=query)
    return CompiledQuery(sql=final.sql(dialect=dialect), params=tuple(builder.params), dialect=dialect)


def table1_histograms(
    backend: Backend, catalog: Catalog, plan: ModelPlan, timeout_s: float | None = None
) -> list[np.ndarray]:
    """The exact histogram of each variable (int64, in its table's key order), from one statement."""
    compiled = compile_table1(plan, catalog, backend.dialect)
    table = backend.execute(compiled) if timeout_s is None else backend.execute(compiled, timeout_s=timeout_s)
    assert plan.cross is not None
    names = [g.name for g in plan.cross.groups]
    return [
        _margin(table, names, [g.name for g in t.groups], [g.keys for g in t.groups]) for t in plan.tables
    ]


def _margin(table: pa.Table, names: list[str], columns: list[str], keys: list[tuple[Any, ...]]) -> np.ndarray:
    positions = [f"g{names.index(c)}" for c in columns]
    summed = table.group_by(positions).aggregate([("n", "sum")]) if positions else None
    counts: dict[tuple[Any, ...], int] = {}
    if summed is not None:
        values = [summed.column(p).to_pylist() for p in positions]
        for key, n in zip(zip(*values, strict=True), summed.column("n_sum").to_pylist(), strict=True):
            counts[key] = int(n)
    out = np.array([counts.get(key, 0) for key in product(*keys)], dtype=np.int64)
    return out
