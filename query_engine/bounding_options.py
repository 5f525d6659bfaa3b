"""The contribution bounds an analyst may tighten for a query, by the planner's own rules.

A query may lower ``max_groups`` (G) and ``max_rows`` (c) below the catalog's maximum for the
register whose rows are bounded (its grain). Which of the two a query uses, and on which register,
is the planner's decision (``plan.grain_of``, ``plan.tunable_bounds``); this module only says it, so
that a form (the dashboard) offers exactly the inputs the engine reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .catalog import Catalog
from .plan import grain_of, tunable_bounds
from .spec import Query
from .validate import resolve_column, resolve_register

__all__ = ["BoundingOption", "bounding_options"]


@dataclass(frozen=True)
class BoundingOption:
    """A bound the query may set: on ``register``, the catalog's ``default`` and ``maximum``."""

    name: Literal["max_groups", "max_rows"]
    register: str
    default: int
    maximum: int


def bounding_options(query: Query, catalog: Catalog) -> list[BoundingOption]:
    """The bounds ``query`` may tighten; a bound whose catalog maximum is 1 has nothing to tighten.

    Only ``measure``, ``register`` and ``group_by`` of the query matter (its loss and filters do not).
    Raises ``QueryError`` for an unknown register or group column.
    """
    resolve_register(catalog, query.register)
    for qualified in query.group_by:
        resolve_column(catalog, qualified)
    grain, grain_groups = grain_of(query, catalog)
    groups_tunable, rows_tunable = tunable_bounds(query, grain, grain_groups)
    found = []
    if groups_tunable and grain.groups_per_person[1] > 1:
        default, maximum = grain.groups_per_person
        found.append(BoundingOption("max_groups", grain.name, default, maximum))
    if rows_tunable and grain.rows_per_person[1] > 1:
        default, maximum = grain.rows_per_person
        found.append(BoundingOption("max_rows", grain.name, default, maximum))
    return found
