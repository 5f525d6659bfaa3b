"""Validate a Query against the catalog, the project context and the settings; touches no data.

Every error names what is wrong and, where possible, what would be right (did-you-mean over the
catalog's names and keys). All errors carry ``stage="validate"``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from .catalog import Catalog, Column, KeySet, Register
from .errors import (
    ColumnNotQueryable,
    InvalidBounding,
    InvalidBounds,
    InvalidOperator,
    LossNotAllowed,
    LossOutOfRange,
    LossTooSmall,
    PrivateKeysNeedDelta,
    QueryError,
    RegisterNotLoaded,
    TooManyCells,
    TooManyGroupColumns,
    UnknownColumn,
    UnknownRegister,
    UnsupportedQuery,
    ValueOutsideDomain,
)
from .mechanisms import quantile_fraction
from .settings import EngineSettings
from .spec import Condition, ProjectContext, Query
from .suggest import did_you_mean

__all__ = [
    "TypedValue",
    "cell_count",
    "check_condition",
    "check_loss",
    "not_loaded_message",
    "resolve_column",
    "resolve_register",
    "typed_value",
    "validate",
]

TypedValue = str | int | float | dt.date

_STAGE = "validate"
_RANGE_OPS = ("between", "<", "<=", ">", ">=")
_EQUALITY_OPS = ("=", "!=", "in")
_VALUE_MEASURES = ("sum", "mean", "quantile")
_LOOK_UP = " Look the keys up in the catalog (GET /v1/catalog, or the dashboard's code search)."


def validate(query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings) -> None:
    """Raise a ``QueryError`` (stage ``validate``) unless the query can be planned and run."""
    _check_loss(query, context, settings)
    grain = _grain_register(query, catalog)
    _check_measure(query, catalog, grain)
    _check_groups(query, catalog, context, settings, grain)
    for condition in query.where:
        _check_condition(condition, catalog)
    _check_bounding(query, grain)


def not_loaded_message(catalog: Catalog, name: str) -> str:
    """The sentence for a register the catalog declares but this installation did not load."""
    return (
        f"Register '{name}' is not loaded in this installation; loaded: {', '.join(catalog.register_names)}. "
        "Ask with the loaded registers (GET /v1/catalog lists them)."
    )


def group_warnings(query: Query, catalog: Catalog) -> list[str]:
    """Warnings, not errors, about a valid query's groups: two group columns of the same variable
    (``cpr.age_band`` and ``cpr.age_band_5``, both from ``cpr.birth_date``) nest one inside the other,
    so most cells of the product are empty by construction and cost privacy loss for nothing."""
    first_of: dict[tuple[str, str], str] = {}
    warnings = []
    for qualified in query.group_by:
        register, column = resolve_column(catalog, qualified)
        variable = column.derivation.source if column.derivation else column.name
        earlier = first_of.setdefault((register.name, variable), qualified)
        if earlier != qualified:
            warnings.append(
                f"{earlier} and {qualified} group by the same variable twice (both are "
                f"{register.name}.{variable}): most cells are empty by construction; group by one of them."
            )
    return warnings


def resolve_column(catalog: Catalog, qualified: str) -> tuple[Register, Column]:
    """Resolve ``register.column`` to catalog objects, refusing unknown and non-queryable columns."""
    register_name, dot, column_name = qualified.partition(".")
    if not dot or not column_name:
        raise UnknownColumn(
            f"Column {qualified!r} must be qualified with its register, e.g. 'cpr.region'.", stage=_STAGE
        )
    register = resolve_register(catalog, register_name)
    if not register.has_column(column_name):
        queryable = [c.name for c in register.columns if c.queryable]
        raise UnknownColumn(
            f"Unknown column {column_name!r} in register {register.name}.{did_you_mean(column_name, queryable)}"
            f" Columns of {register.name}: {', '.join(queryable)}.",
            stage=_STAGE,
        )
    column = register.column(column_name)
    if not column.queryable:
        raise ColumnNotQueryable(
            f"Column {register.name}.{column.name} is a key or identifier ({column.role}) and cannot be "
            "filtered, grouped or aggregated; to count persons, use the measure 'count_persons'.",
            stage=_STAGE,
        )
    return register, column


def cell_count(catalog: Catalog, columns: Iterable[Column]) -> int:
    """Number of output cells: the product of the key-set sizes (open-domain columns count 1)."""
    cells = 1
    for column in columns:
        if column.keyset is not None:
            cells *= len(catalog.keyset(column.keyset).values)
    return cells


def typed_value(column: Column, value: Any, what: str) -> TypedValue:
    """Convert one analyst-supplied value to the column's type, or raise ``ValueOutsideDomain``.

    ``what`` names where the value comes from in the message, e.g. ``"the condition on cpr.sex"``.
    """
    if column.type == "date":
        if not isinstance(value, str):
            raise ValueOutsideDomain(f"Give a date 'YYYY-MM-DD' for {what}, not {value!r}.", stage=_STAGE)
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueOutsideDomain(
                f"Give a date 'YYYY-MM-DD' for {what}, not {value!r}.", stage=_STAGE
            ) from None
    if column.type == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueOutsideDomain(f"Give a whole number for {what}, not {value!r}.", stage=_STAGE)
        return value
    if column.type == "float":
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueOutsideDomain(f"Give a number for {what}, not {value!r}.", stage=_STAGE)
        return float(value)
    if not isinstance(value, str):
        raise ValueOutsideDomain(f"Give a text value (in quotes) for {what}, not {value!r}.", stage=_STAGE)
    return value


def resolve_register(catalog: Catalog, name: str) -> Register:
    if name in catalog.absent_registers:
        raise RegisterNotLoaded(not_loaded_message(catalog, name), stage=_STAGE)
    if not catalog.has_register(name):
        raise UnknownRegister(
            f"Unknown register {name!r}.{did_you_mean(name, catalog.register_names)}"
            f" Registers: {', '.join(catalog.register_names)}.",
            stage=_STAGE,
        )
    return catalog.register(name)


def _check_loss(query: Query, context: ProjectContext, settings: EngineSettings) -> None:
    if query.rho is not None:
        if context.mode == "pure":
            raise LossNotAllowed(
                "This project is in pure DP mode, and rho (zero-concentrated DP) is only for projects in "
                "zcdp mode; give epsilon or target_ci instead.",
                stage=_STAGE,
            )
        _check_stated_loss("rho", query.rho, settings.min_rho, settings.max_rho)
    if query.epsilon is not None:
        _check_stated_loss("epsilon", query.epsilon, settings.min_epsilon, settings.max_epsilon)
    if query.target_ci is not None:
        if not query.target_ci > 0:
            raise LossOutOfRange(
                f"The target_ci must be a positive interval half-width, got {query.target_ci}; give a "
                "number above 0 (in the units of the measure).",
                stage=_STAGE,
            )
        if query.measure in ("mean", "quantile"):
            raise UnsupportedQuery(
                f"A target_ci is not available for measure {query.measure!r} (its accuracy depends on the "
                "data); give epsilon or rho instead.",
                stage=_STAGE,
            )


def _check_stated_loss(name: str, value: float, minimum: float, maximum: float) -> None:
    """A stated epsilon or rho must lie in [minimum, maximum]; a positive one below is ``LossTooSmall``."""
    if minimum <= value <= maximum:
        return
    allowed = f"[{minimum:g}, {maximum:g}]"
    if 0 < value < minimum:
        raise LossTooSmall(
            f"The privacy loss {name} = {value:g} is below the minimum per query, {minimum:g}; give a "
            f"{name} in {allowed} (every query is charged at least the minimum).",
            stage=_STAGE,
        )
    raise LossOutOfRange(
        f"The privacy loss {name} = {value:g} is outside the per-query range {allowed}; give a {name} "
        f"of at least {minimum:g} and at most {maximum:g}.",
        stage=_STAGE,
    )


def _grain_register(query: Query, catalog: Catalog) -> Register:
    grain = resolve_register(catalog, query.register)
    if query.measure == "count_persons":
        effective = query.effective_register
        grain = resolve_register(catalog, effective)
    return grain


def _check_measure(query: Query, catalog: Catalog, grain: Register) -> None:
    measure = query.measure
    if measure in ("count_persons", "count_rows"):
        if query.column is not None:
            raise UnsupportedQuery(f"Measure {measure!r} takes no column; remove 'column'.", stage=_STAGE)
        if query.bounds is not None:
            raise UnsupportedQuery(f"Measure {measure!r} takes no bounds; remove 'bounds'.", stage=_STAGE)
        return
    qualified = query.qualified_column
    if qualified is None:
        raise UnsupportedQuery(
            f"Measure {measure!r} needs a numeric column of register {grain.name}, e.g. "
            f"{_numeric_example(grain)}.",
            stage=_STAGE,
        )
    register, column = resolve_column(catalog, qualified)
    if register.name != grain.name:
        raise UnsupportedQuery(
            f"The column of a {measure} must be on the grain register {grain.name!r}, not {register.name!r}; "
            f"set 'register' to {register.name!r}.",
            stage=_STAGE,
        )
    if not column.is_numeric or column.bounds is None:
        raise UnsupportedQuery(
            f"Column {qualified} has no declared numeric bounds, so it cannot be summed or averaged. "
            f"Numeric columns of {grain.name}: {_numeric_example(grain)}.",
            stage=_STAGE,
        )
    lo, hi = float(column.bounds.lo), float(column.bounds.hi)
    if query.bounds is not None:
        qlo, qhi = query.bounds
        if qlo > qhi:
            raise InvalidBounds(f"Bounds [{qlo}, {qhi}] are reversed: give [low, high].", stage=_STAGE)
        if qlo < lo or qhi > hi:
            raise InvalidBounds(
                f"Bounds [{qlo}, {qhi}] must lie inside the catalog bounds of {qualified}: [{lo}, {hi}].",
                stage=_STAGE,
            )
        lo, hi = qlo, qhi
    if measure == "quantile":
        try:
            quantile_fraction(query.quantile_level or 0.5)
        except QueryError as exc:
            raise type(exc)(exc.message, stage=_STAGE) from None
    if measure == "quantile" and math.floor(hi / column.bounds.resolution) <= math.ceil(
        lo / column.bounds.resolution
    ):
        raise InvalidBounds(
            f"A quantile needs bounds wider than the resolution {column.bounds.resolution} of {qualified}; "
            "widen the bounds.",
            stage=_STAGE,
        )


def _numeric_example(register: Register) -> str:
    names = [
        f"{register.name}.{c.name}" for c in register.columns if c.queryable and c.is_numeric and c.bounds
    ]
    return ", ".join(names) if names else "(none)"


def _check_groups(
    query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings, grain: Register
) -> None:
    if len(query.group_by) > settings.max_group_columns:
        raise TooManyGroupColumns(
            f"At most {settings.max_group_columns} group-by columns are allowed, got {len(query.group_by)}; "
            "remove some from group_by.",
            stage=_STAGE,
        )
    if len(set(query.group_by)) != len(query.group_by):
        raise UnsupportedQuery("A column appears twice in group_by; list each once.", stage=_STAGE)
    person = catalog.person_register
    columns: list[Column] = []
    open_domain = 0
    for qualified in query.group_by:
        register, column = resolve_column(catalog, qualified)
        if register.name not in (grain.name, person):
            if query.measure == "count_persons":
                raise UnsupportedQuery(
                    f"Group columns of a count_persons may come from {person} and one other register; "
                    f"{qualified} is on {register.name}, but {grain.name} is already the grouping register. "
                    f"Group by columns of {person} and {grain.name} only, or run one query per register.",
                    stage=_STAGE,
                )
            raise UnsupportedQuery(
                f"Group column {qualified} must be on the grain register {grain.name} or on {person} "
                "(one value per person).",
                stage=_STAGE,
            )
        if column.open_domain:
            open_domain += 1
            if not context.delta_available:
                raise PrivateKeysNeedDelta(
                    f"Column {qualified} has no public key set: "
                    "grouping by it needs DP partition selection, which "
                    "spends delta, and this project has no delta budget. Group by a column with a public key "
                    "set instead (e.g. lpr.icd10).",
                    stage=_STAGE,
                )
            if query.measure not in ("count_persons", "count_rows"):
                raise UnsupportedQuery(
                    f"Grouping by the open-domain column {qualified} is only available for counts; use the "
                    "measure 'count_persons' or 'count_rows', or group by a column with a public key set.",
                    stage=_STAGE,
                )
            if query.target_ci is not None:
                raise UnsupportedQuery(
                    f"Grouping by the open-domain column {qualified} needs epsilon or rho, not target_ci.",
                    stage=_STAGE,
                )
        elif column.keyset is None:
            raise UnsupportedQuery(
                f"Column {qualified} has no public key set and cannot be grouped by; "
                "filter on it with 'between' instead.",
                stage=_STAGE,
            )
        columns.append(column)
    if open_domain > 1:
        raise UnsupportedQuery(
            "At most one open-domain group column is allowed; keep one and remove the others from group_by.",
            stage=_STAGE,
        )
    cells = cell_count(catalog, columns)
    if cells > settings.max_cells:
        raise TooManyCells(
            f"The query has {cells} output cells (product of the key-set sizes of its group columns); "
            f"at most {settings.max_cells} are allowed. Group by fewer or coarser columns, e.g. "
            "icd10_chapter instead of icd10.",
            stage=_STAGE,
        )


def _check_condition(condition: Condition, catalog: Catalog) -> None:
    register, column = resolve_column(catalog, condition.column)
    name = f"{register.name}.{column.name}"
    op = condition.op
    keyset = catalog.keyset(column.keyset) if column.keyset else None
    if op == "prefix":
        if column.type != "string" or not (
            column.open_domain or (keyset is not None and keyset.hierarchical)
        ):
            raise InvalidOperator(
                f"Operator 'prefix' is only for hierarchical codes (ICD-10, ATC) and open-domain text; "
                f"{name} is not one. Use '=' or 'in'.",
                stage=_STAGE,
            )
    elif op in _RANGE_OPS:
        ordered = column.type == "date" or column.is_numeric
        if not ordered:
            raise InvalidOperator(
                f"Operator {op!r} needs a numeric, date or integer-coded column; {name} is text. "
                "Use '=', 'in'" + (" or 'prefix'." if keyset is not None and keyset.hierarchical else "."),
                stage=_STAGE,
            )
    elif column.is_numeric and keyset is None and column.type == "float":
        raise InvalidOperator(
            f"Operator {op!r} is not available on the continuous column {name}; use a range such as 'between'.",
            stage=_STAGE,
        )
    raw_values = condition.value if isinstance(condition.value, list) else [condition.value]
    values = [typed_value(column, v, f"the condition on {name}") for v in raw_values]
    if op == "prefix":
        prefix = values[0]
        assert isinstance(prefix, str)
        if not prefix:
            raise ValueOutsideDomain(
                f"A prefix on {name} must not be empty; give the start of a code, e.g. 'E11'.", stage=_STAGE
            )
        if keyset is not None and not any(str(k).startswith(prefix) for k in keyset.values):
            suggestion = did_you_mean(prefix, _prefixes(keyset, len(prefix))) or _LOOK_UP
            raise ValueOutsideDomain(f"No code of {name} starts with {prefix!r}.{suggestion}", stage=_STAGE)
        return
    if op == "between" and values[0] > values[1]:  # type: ignore[operator]
        raise InvalidBounds(
            f"The operator 'between' on {name} needs [low, high], got [{raw_values[0]}, {raw_values[1]}]; "
            "give the lower value first.",
            stage=_STAGE,
        )
    if keyset is not None:
        if op in _EQUALITY_OPS:
            for value in values:
                if value not in keyset:
                    suggestion = did_you_mean(str(value), keyset.values) or _LOOK_UP
                    raise ValueOutsideDomain(
                        f"The value {value!r} is not a key of {name} (key set {keyset.name}).{suggestion}",
                        stage=_STAGE,
                    )
        else:
            _check_range(name, values, min(keyset.values), max(keyset.values))
    elif column.bounds is not None:
        lo, hi = column.bounds.lo, column.bounds.hi
        if column.type == "date":
            _check_range(name, values, dt.date.fromisoformat(str(lo)), dt.date.fromisoformat(str(hi)))
        else:
            _check_range(name, values, float(lo), float(hi))


def _check_range(name: str, values: list[TypedValue], lo: Any, hi: Any) -> None:
    for value in values:
        if not lo <= value <= hi:
            raise ValueOutsideDomain(
                f"The value {_show(value)} is outside the domain of {name}, [{_show(lo)}, {_show(hi)}]; "
                "give a value inside it.",
                stage=_STAGE,
            )


def _show(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _prefixes(keyset: KeySet, length: int) -> list[str]:
    return sorted({str(k)[:length] for k in keyset.values})


def _check_bounding(query: Query, grain: Register) -> None:
    for given, (_, maximum), what in (
        (query.max_groups, grain.groups_per_person, "max_groups"),
        (query.max_rows, grain.rows_per_person, "max_rows"),
    ):
        if given is not None and given > maximum:
            raise InvalidBounding(
                f"The catalog allows {what} of at most {maximum} for register {grain.name}, got {given}; "
                f"give {what} between 1 and {maximum}, or leave it out for the catalog default.",
                stage=_STAGE,
            )


# The checks that analyses (query_engine.cohort) share with every other query.
check_loss = _check_loss
check_condition = _check_condition
