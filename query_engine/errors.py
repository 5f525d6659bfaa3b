"""Errors of the query engine, each with a stable ``code`` and an HTTP ``status``.

::

    EngineError
    ├── QueryError                    422  the query is invalid; nothing was touched or spent
    │   ├── UnknownRegister           unknown_register
    │   │   └── RegisterNotLoaded     register_not_loaded (declared, not loaded by this installation)
    │   ├── UnknownColumn             unknown_column
    │   ├── InvalidOperator           invalid_operator
    │   ├── ValueOutsideDomain        value_outside_domain
    │   ├── InvalidBounds             invalid_bounds
    │   ├── PrivateKeysNeedDelta      private_keys_need_delta
    │   ├── TooManyGroupColumns       too_many_group_columns
    │   ├── TooManyCells              too_many_cells
    │   ├── LossOutOfRange            loss_out_of_range
    │   │   └── LossTooSmall          loss_too_small (below the minimum loss per query)
    │   ├── LossNotAllowed            loss_not_allowed (rho in a pure project)
    │   ├── ColumnNotQueryable        column_not_queryable (keys and identifiers)
    │   ├── InvalidBounding           invalid_bounding (max_groups/max_rows beyond the catalog)
    │   ├── FixedPointOverflow        fixed_point_overflow (plan-time sum overflow check)
    │   └── UnsupportedQuery          unsupported_query
    ├── PersonGrainViolated           503  person_grain_violated: a person-grain register holds
    │                                      several rows of one person; the engine refuses to open
    ├── ExecutionFailed               503  execution_failed (never carries data-derived text)
    │   └── QueryTimeout              504  query_timeout
    └── EngineInternalError           500  internal_error: a bug, never a release
        └── PrivacyInvariantError     the computed privacy loss differs from what is charged

Messages are sentences a person can act on. No message is ever derived from private data: only
from the query, the catalog and the settings.
"""

from __future__ import annotations

__all__ = [
    "ColumnNotQueryable",
    "EngineError",
    "EngineInternalError",
    "ExecutionFailed",
    "FixedPointOverflow",
    "InvalidBounding",
    "InvalidBounds",
    "InvalidOperator",
    "LossNotAllowed",
    "LossOutOfRange",
    "LossTooSmall",
    "PersonGrainViolated",
    "PrivacyInvariantError",
    "PrivateKeysNeedDelta",
    "QueryError",
    "QueryTimeout",
    "RegisterNotLoaded",
    "TooManyCells",
    "TooManyGroupColumns",
    "UnknownColumn",
    "UnknownRegister",
    "UnsupportedQuery",
    "ValueOutsideDomain",
]


class EngineError(Exception):
    """Base of every engine error."""

    code = "engine_error"
    status = 500

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage  # validate | plan | compile | execute | mechanism


class QueryError(EngineError):
    """The query is invalid; validation errors cost nothing."""

    code = "invalid_query"
    status = 422


class UnknownRegister(QueryError):
    code = "unknown_register"


class RegisterNotLoaded(UnknownRegister):
    """A register the catalog declares but this installation did not load (built from a subset)."""

    code = "register_not_loaded"


class UnknownColumn(QueryError):
    code = "unknown_column"


class InvalidOperator(QueryError):
    code = "invalid_operator"


class ValueOutsideDomain(QueryError):
    code = "value_outside_domain"


class InvalidBounds(QueryError):
    code = "invalid_bounds"


class PrivateKeysNeedDelta(QueryError):
    code = "private_keys_need_delta"


class TooManyGroupColumns(QueryError):
    code = "too_many_group_columns"


class TooManyCells(QueryError):
    code = "too_many_cells"


class LossOutOfRange(QueryError):
    code = "loss_out_of_range"


class LossTooSmall(LossOutOfRange):
    """The loss is below the minimum per query (a floor against near-free repeated queries)."""

    code = "loss_too_small"


class UnsupportedQuery(QueryError):
    code = "unsupported_query"


class ExecutionFailed(EngineError):
    """Executing the query failed; the text never depends on the data."""

    code = "execution_failed"
    status = 503


class QueryTimeout(ExecutionFailed):
    code = "query_timeout"
    status = 504


class EngineInternalError(EngineError):
    """An invariant of the engine failed: this is a bug, and no release is made."""

    code = "internal_error"
    status = 500


class PrivacyInvariantError(EngineInternalError):
    """The loss computed by OpenDP differs from the loss that will be charged."""


class ColumnNotQueryable(QueryError):
    code = "column_not_queryable"


class LossNotAllowed(QueryError):
    code = "loss_not_allowed"


class InvalidBounding(QueryError):
    code = "invalid_bounding"


class FixedPointOverflow(QueryError):
    code = "fixed_point_overflow"


class PersonGrainViolated(EngineError):
    """A register declared person grain has more than one row for some person: nothing is served.

    The message names the register and the number of such persons, never a person.
    """

    code = "person_grain_violated"
    status = 503
