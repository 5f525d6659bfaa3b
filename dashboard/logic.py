"""The dashboard's logic as plain functions: no Streamlit, no network, so every piece is unit-tested.

Catalog lookups (columns, operators, code search, contribution-bounding limits), the query draft and
its JSON, the SQL draft and the position of SQL errors, idempotency keys, releases as DataFrames,
CSV/Parquet bytes, client-code snippets, and the shapes of previews, budgets and transparency reports.
Everything works on the JSON bodies of the HTTP API (DESIGN.md section 6).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import pprint
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

__all__ = [
    "CONFIDENCE_LEVELS",
    "MEASURES",
    "BoundingLimit",
    "BudgetSummary",
    "ColumnKind",
    "Condition",
    "DraftError",
    "LossKind",
    "PreviewSummary",
    "QueryDraft",
    "SqlDraft",
    "application_body",
    "bounding_limits",
    "budget_summary",
    "code_label",
    "column_index",
    "column_kind",
    "csv_bytes",
    "error_position",
    "group_columns",
    "group_columns_of",
    "idempotency_key",
    "is_time_column",
    "keyset_of",
    "localized",
    "loss_kinds",
    "measure_columns",
    "operators_for",
    "parquet_bytes",
    "preview_summary",
    "python_snippet",
    "query_fingerprint",
    "query_json",
    "release_frame",
    "release_summary",
    "releases_frame",
    "search_catalog",
    "search_codes",
    "sql_excerpt",
    "sql_snippet",
    "suppression_threshold",
    "table_frame",
    "transparency_projects_frame",
    "transparency_registers_frame",
]

Json = dict[str, Any]
Measure = Literal["count_persons", "count_rows", "sum", "mean", "quantile"]
LossKind = Literal["epsilon", "rho", "target_ci"]
BoundingName = Literal["max_groups", "max_rows"]
ColumnKind = Literal["codes", "number", "date", "text"]

MEASURES: tuple[Measure, ...] = ("count_persons", "count_rows", "sum", "mean", "quantile")
CONFIDENCE_LEVELS = (0.8, 0.9, 0.95, 0.99)
_NUMERIC_TYPES = ("integer", "float", "decimal", "double")
_VALUE_MEASURES = ("sum", "mean", "quantile")
_CODE_OPS = ("in", "=", "!=")
_NUMBER_OPS = ("between", "=", "!=", "<", "<=", ">", ">=")
_DATE_OPS = ("between", "<", "<=", ">", ">=")
_TEXT_OPS = ("=", "!=", "in", "prefix")
_DEFAULT_THRESHOLD = 5


# --- catalog ------------------------------------------------------------------------------------


def localized(text: Any, lang: str) -> str:
    """A catalog text (``{"en": ..., "da": ...}`` or a plain string) in ``lang``, else English."""
    if isinstance(text, Mapping):
        return str(text.get(lang) or text.get("en") or next(iter(text.values()), ""))
    return "" if text is None else str(text)


def column_index(catalog: Mapping[str, Any]) -> dict[str, Json]:
    """Every queryable column by its qualified name (``register.column``), in catalog order, with its
    register and whether its key set is hierarchical (ICD-10, ATC: codes that ``prefix`` can match)."""
    keysets = catalog.get("keysets", {})
    out: dict[str, Json] = {}
    for reg in catalog.get("registers", []):
        for col in reg.get("columns", []):
            if col.get("queryable", True):
                hierarchical = bool(keysets.get(col.get("keyset") or "", {}).get("hierarchical"))
                qualified = col.get("qualified") or f"{reg['name']}.{col['name']}"
                out[qualified] = {**col, "register": reg["name"], "hierarchical": hierarchical}
    return out


def _in_registers(columns: Mapping[str, Json], registers: Iterable[str] | None) -> dict[str, Json]:
    if registers is None:
        return dict(columns)
    allowed = set(registers)
    return {name: col for name, col in columns.items() if col["register"] in allowed}


def measure_columns(catalog: Mapping[str, Any], register: str) -> list[str]:
    """Numeric columns of ``register`` with declared bounds: what sum, mean and quantile can measure."""
    return [
        name
        for name, col in column_index(catalog).items()
        if col["register"] == register and col.get("type") in _NUMERIC_TYPES and col.get("bounds")
    ]


def group_columns(catalog: Mapping[str, Any], registers: Iterable[str] | None = None) -> list[str]:
    """Columns a query can group by: those with a public key set, then open-domain ones (need delta)."""
    cols = _in_registers(column_index(catalog), registers)
    public = [name for name, col in cols.items() if col.get("keyset")]
    open_ = [name for name, col in cols.items() if col.get("open_domain") and not col.get("keyset")]
    return public + open_


@dataclass(frozen=True)
class BoundingLimit:
    """A contribution bound the analyst may tighten: the catalog's default and maximum for the register."""

    name: BoundingName
    register: str
    default: int
    maximum: int


def _grain(catalog: Mapping[str, Any], measure: str, register: str, group_by: Sequence[str]) -> str:
    """The register whose rows are bounded: for ``count_persons``, the one non-person group register."""
    if measure != "count_persons":
        return register
    person = str(catalog.get("person_register") or "cpr")
    others = [g.partition(".")[0] for g in group_by if "." in g and g.partition(".")[0] != person]
    return others[0] if others else person


def bounding_limits(
    catalog: Mapping[str, Any], measure: str, register: str, group_by: Sequence[str]
) -> list[BoundingLimit]:
    """The contribution bounds (``max_groups``, ``max_rows``) that can be tightened for this query.

    As the engine bounds: nothing on a register with one row per person; ``max_groups`` only when a
    group column is on the bounded register; ``max_rows`` not when counting persons. A bound whose
    catalog maximum is 1 has nothing to tighten.
    """
    grain = _grain(catalog, measure, register, group_by)
    reg = next((r for r in catalog.get("registers", []) if r.get("name") == grain), None)
    if reg is None or reg.get("grain") == "person":
        return []
    found: list[BoundingLimit] = []
    wanted: list[tuple[BoundingName, str, bool]] = [
        ("max_groups", "groups_per_person", any(g.partition(".")[0] == grain for g in group_by)),
        ("max_rows", "rows_per_person", measure != "count_persons"),
    ]
    for name, field_name, applies in wanted:
        limits = reg.get(field_name) or {}
        maximum, default = int(limits.get("max") or 1), int(limits.get("default") or 1)
        if applies and maximum > 1:
            found.append(BoundingLimit(name, grain, default, maximum))
    return found


def keyset_of(catalog: Mapping[str, Any], qualified: str) -> Json | None:
    """The key set (values and labels) of a column, if it has one."""
    col = column_index(catalog).get(qualified)
    if not col or not col.get("keyset"):
        return None
    keyset: Json | None = catalog.get("keysets", {}).get(col["keyset"])
    return keyset


def column_kind(column: Mapping[str, Any]) -> ColumnKind:
    """How a condition on the column is entered: codes from its key set, a number, a date, or text."""
    if column.get("keyset"):
        return "codes"
    kind = column.get("type")
    if kind in _NUMERIC_TYPES:
        return "number"
    if kind == "date":
        return "date"
    return "text"


def operators_for(column: Mapping[str, Any]) -> list[str]:
    """The operators offered for a column of ``column_index`` (``prefix`` only for hierarchical code lists)."""
    kind = column_kind(column)
    if kind == "codes":
        ops = list(_CODE_OPS)
        if column.get("type") == "string" and column.get("hierarchical"):
            ops.append("prefix")
        if column.get("type") in _NUMERIC_TYPES:
            ops += [op for op in _NUMBER_OPS if op not in ops]
        return ops
    if kind == "number":
        return list(_NUMBER_OPS)
    if kind == "date":
        return list(_DATE_OPS)
    return list(_TEXT_OPS)


def is_time_column(catalog: Mapping[str, Any], qualified: str) -> bool:
    """True for year columns, which are drawn as lines rather than bars."""
    col = column_index(catalog).get(qualified, {})
    keyset = str(col.get("keyset") or "")
    return col.get("name") == "year" or keyset.startswith("years_") or keyset.endswith("_years")


def code_label(keyset: Mapping[str, Any] | None, code: Any, lang: str = "en") -> str:
    """The label of a code in its key set (Danish when the catalog has Danish labels)."""
    if not keyset:
        return ""
    labels_da = keyset.get("labels_da") or {}
    if lang == "da" and str(code) in labels_da:
        return str(labels_da[str(code)])
    return str((keyset.get("labels") or {}).get(str(code), ""))


def search_codes(
    keyset: Mapping[str, Any], text: str, *, lang: str = "en", limit: int = 200
) -> list[tuple[Any, str]]:
    """Codes whose code starts with ``text`` or whose label contains every word of it (case-insensitive).

    Labels in both languages are searched when the catalog has them, so "diabetes" finds E10-E14.
    """
    words = text.casefold().split()
    labels = keyset.get("labels") or {}
    labels_da = keyset.get("labels_da") or {}
    found: list[tuple[Any, str]] = []
    for value in keyset.get("values", []):
        code = str(value)
        haystack = f"{labels.get(code, '')} {labels_da.get(code, '')}".casefold()
        if (
            not words
            or code.casefold().startswith(text.strip().casefold())
            or all(word in haystack for word in words)
        ):
            found.append((value, code_label(keyset, value, lang)))
            if len(found) >= limit:
                break
    return found


def search_catalog(catalog: Mapping[str, Any], text: str, lang: str) -> dict[str, list[str]]:
    """Registers and their columns that mention ``text`` (name, title or description), by register.

    A register that matches lists all its queryable columns; otherwise only its matching columns.
    """
    needle = text.casefold().strip()
    out: dict[str, list[str]] = {}
    for reg in catalog.get("registers", []):
        cols = [c for c in reg.get("columns", []) if c.get("queryable", True)]
        reg_text = " ".join(
            [
                reg["name"],
                localized(reg.get("title"), lang),
                localized(reg.get("description"), lang),
                reg.get("controller", ""),
            ]
        ).casefold()
        if not needle or needle in reg_text:
            out[reg["name"]] = [c["name"] for c in cols]
            continue
        hits = [
            c["name"]
            for c in cols
            if needle
            in f"{c['name']} {localized(c.get('description'), lang)} {c.get('keyset') or ''}".casefold()
        ]
        if hits:
            out[reg["name"]] = hits
    return out


# --- the query draft ----------------------------------------------------------------------------


class DraftError(ValueError):
    """The draft cannot become a query yet; ``key`` names the UI message, ``values`` fill it in."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class Condition:
    """One filter of the cohort: column, operator and value(s), as in the query JSON."""

    column: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op in ("in", "between"):
            if not isinstance(self.value, list | tuple) or not self.value:
                raise DraftError("error_condition_values", column=self.column)
            if self.op == "between" and len(self.value) != 2:
                raise DraftError("error_condition_between", column=self.column)
        elif self.value is None or self.value == "" or isinstance(self.value, list | tuple):
            raise DraftError("error_condition_value", column=self.column)

    def to_json(self) -> Json:
        """The condition as the query JSON has it (dates as ISO strings)."""
        return {"column": self.column, "op": self.op, "value": _jsonable(self.value)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_bounding(max_groups: int | None, max_rows: int | None) -> None:
    for name, value in (("max_groups", max_groups), ("max_rows", max_rows)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DraftError("error_bounding", name=name)


def _check_loss(loss: Any, kind: str) -> None:
    if not (isinstance(loss, int | float) and math.isfinite(loss) and loss > 0):
        raise DraftError("error_loss", kind=kind)


def loss_kinds(mode: str) -> list[LossKind]:
    """How the loss can be stated: epsilon always, rho in zCDP projects, or accuracy-first."""
    return ["epsilon", "rho", "target_ci"] if mode == "zcdp" else ["epsilon", "target_ci"]


@dataclass(frozen=True)
class QueryDraft:
    """What the query builder holds; ``to_query()`` is the request body of preview and run."""

    project: str
    measure: Measure = "count_persons"
    register: str = "cpr"
    column: str | None = None
    bounds: tuple[float, float] | None = None
    quantile: float | None = None
    where: tuple[Condition, ...] = ()
    group_by: tuple[str, ...] = ()
    loss_kind: LossKind = "epsilon"
    loss: float = 0.1
    confidence: float = 0.95
    max_groups: int | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise DraftError("error_measure", measure=self.measure)
        if self.measure in _VALUE_MEASURES and not self.column:
            raise DraftError("error_need_column", measure=self.measure)
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise DraftError("error_bounds", lo=self.bounds[0], hi=self.bounds[1])
        if len(self.group_by) > 3:
            raise DraftError("error_group_by", count=len(self.group_by))
        if len(set(self.group_by)) != len(self.group_by):
            raise DraftError("error_group_by_repeat")
        _check_loss(self.loss, self.loss_kind)
        _check_bounding(self.max_groups, self.max_rows)

    def to_query(self) -> Json:
        """The query JSON: one of epsilon, rho or target_ci; column, bounds and quantile only where used;
        ``max_groups``/``max_rows`` only when set."""
        value_measure = self.measure in _VALUE_MEASURES
        query: Json = {
            "project": self.project,
            "measure": self.measure,
            "register": "cpr" if self.measure == "count_persons" else self.register,
            "column": self.column if value_measure else None,
            "bounds": list(self.bounds) if value_measure and self.bounds is not None else None,
            "quantile": self.quantile if self.measure == "quantile" else None,
            "where": [c.to_json() for c in self.where],
            "group_by": list(self.group_by),
            self.loss_kind: self.loss,
            "confidence": self.confidence,
        }
        for name, value in (("max_groups", self.max_groups), ("max_rows", self.max_rows)):
            if value is not None:
                query[name] = value
        return query


@dataclass(frozen=True)
class SqlDraft:
    """What the SQL tab holds; ``to_body()`` is the request body of ``/v1/sql/preview`` and ``/v1/sql``."""

    project: str
    sql: str
    loss_kind: LossKind = "epsilon"
    loss: float = 0.1
    confidence: float = 0.95
    max_groups: int | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        if not self.sql.strip():
            raise DraftError("error_sql_empty")
        _check_loss(self.loss, self.loss_kind)
        _check_bounding(self.max_groups, self.max_rows)

    def to_body(self) -> Json:
        """The body: project, the SQL text (trailing blanks dropped, so positions stay those of the
        text as typed), one of epsilon, rho or target_ci, confidence, and the bounds that are set."""
        body: Json = {
            "project": self.project,
            "sql": self.sql.rstrip(),
            self.loss_kind: self.loss,
            "confidence": self.confidence,
        }
        for name, value in (("max_groups", self.max_groups), ("max_rows", self.max_rows)):
            if value is not None:
                body[name] = value
        return body


def error_position(body: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(line, column)`` of an SQL error body's ``position``, if it has one."""
    position = body.get("position")
    if not isinstance(position, Mapping):
        return None
    line, column = position.get("line"), position.get("column")
    if isinstance(line, int) and isinstance(column, int) and line >= 1 and column >= 1:
        return line, column
    return None


def sql_excerpt(sql: str, line: int, column: int) -> str:
    r"""The line of ``sql`` an error points at, numbered, with a caret under the column (1-based).

    >>> print(sql_excerpt("SELECT a\nFROM cpr WHERE a = 1 OR b = 2", 2, 22))
    2 | FROM cpr WHERE a = 1 OR b = 2
      |                      ^
    """
    lines = sql.split("\n")  # the service counts lines by newline characters
    if not 1 <= line <= len(lines):
        return ""
    text = lines[line - 1].rstrip("\r")
    number = f"{line} | "
    pad = "".join("\t" if ch == "\t" else " " for ch in text[: column - 1])
    return f"{number}{text}\n{' ' * (len(number) - 2)}| {pad}^"


def query_fingerprint(query: Mapping[str, Any]) -> str:
    """A stable hash of a query body (key order does not matter)."""
    text = json.dumps(query, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def idempotency_key(
    keys: MutableMapping[str, str],
    query: Mapping[str, Any],
    new: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> str:
    """The idempotency key of ``query``: made once per distinct query and kept in ``keys``.

    A rerun, a double click or a retry of the same query sends the same key, so the service returns
    the stored release instead of spending again.
    """
    fingerprint = query_fingerprint(query)
    if fingerprint not in keys:
        keys[fingerprint] = new()
    return keys[fingerprint]


def query_json(query: Mapping[str, Any]) -> str:
    """The query as pretty JSON text, as sent to the API."""
    return json.dumps(query, indent=2, ensure_ascii=False)


def python_snippet(query: Mapping[str, Any], api_url: str) -> str:
    """Python code that previews and runs the same query with ``service.client.Client``.

    The token is read from the ``SUNDSTAT_TOKEN`` environment variable, never written into the code.
    """
    literal = pprint.pformat(dict(query), sort_dicts=False, width=100)
    return (
        "import os\n"
        "import uuid\n\n"
        "from service.client import Client\n\n"
        f"query = {literal}\n\n"
        "# Keep the key: a retry with the same key returns the stored release instead of spending again.\n"
        "key = str(uuid.uuid4())\n"
        f'with Client("{api_url}", token=os.environ["SUNDSTAT_TOKEN"]) as api:\n'
        "    preview = api.preview(query)  # free: cost and expected accuracy\n"
        "    release = api.run(query, idempotency_key=key)  # spends budget\n\n"
        'for row in release["rows"]:\n'
        "    print(row)\n"
    )


def _sql_literal(sql: str) -> str:
    """The SQL text as a Python literal: a triple-quoted string where that is exact, else ``repr``."""
    if '"""' in sql or "\\" in sql or "\r" in sql or sql.endswith('"'):
        return repr(sql)
    return f'"""{sql}"""'


def sql_snippet(body: Mapping[str, Any], api_url: str) -> str:
    """Python code that previews and runs the same SQL query with ``Client.sql_preview`` and ``Client.sql``.

    The token is read from the ``SUNDSTAT_TOKEN`` environment variable, never written into the code.
    """
    project = body.get("project")
    options = "".join(f", {k}={v!r}" for k, v in body.items() if k not in ("project", "sql"))
    return (
        "import os\n"
        "import uuid\n\n"
        "from service.client import Client\n\n"
        f"sql = {_sql_literal(str(body.get('sql', '')))}\n\n"
        "# Keep the key: a retry with the same key returns the stored release instead of spending again.\n"
        "key = str(uuid.uuid4())\n"
        f'with Client("{api_url}", token=os.environ["SUNDSTAT_TOKEN"]) as api:\n'
        f"    preview = api.sql_preview(sql, project={project!r}{options})  # free: cost and accuracy\n"
        f"    release = api.sql(sql, project={project!r}, idempotency_key=key{options})  # spends budget\n\n"
        'for row in release["rows"]:\n'
        "    print(row)\n"
    )


# --- previews and releases ----------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _first(mappings: Sequence[Mapping[str, Any]], *names: str) -> Any:
    """The first non-null value of any of ``names`` in any of ``mappings`` (in that order)."""
    for mapping in mappings:
        for name in names:
            if mapping.get(name) is not None:
                return mapping[name]
    return None


@dataclass(frozen=True)
class PreviewSummary:
    """What a preview says: the loss it would charge and the expected per-cell CI half-width."""

    epsilon: float | None
    rho: float | None
    delta: float | None
    half_width: float | None
    confidence: float | None
    cells: int | None
    mechanism: str | None
    epsilon_remaining: float | None
    fits: bool | None
    rank_error: float | None = None
    notes: tuple[str, ...] = field(default=())


def _fits(
    budget: Mapping[str, Any], epsilon: float | None, rho: float | None, delta: float | None
) -> bool | None:
    """Whether a loss fits in what the budget has left (pure: epsilon; zCDP: rho, epsilon as eps^2/2)."""
    slack = 1e-12
    if delta and (_number(budget.get("delta_remaining")) or 0.0) + slack < delta:
        return False
    if budget.get("mode") == "zcdp":
        rho_left = _number(budget.get("rho_remaining"))
        cost = rho if rho is not None else (None if epsilon is None else epsilon * epsilon / 2)
        return None if rho_left is None or cost is None else cost <= rho_left + slack
    eps_left = _number(budget.get("epsilon_remaining"))
    return None if eps_left is None or epsilon is None else epsilon <= eps_left + slack


def preview_summary(preview: Mapping[str, Any]) -> PreviewSummary:
    """Read a preview body: the loss under ``loss`` (or ``privacy``), accuracy at the top or under ``accuracy``."""
    privacy: Mapping[str, Any] = next(
        (preview[n] for n in ("loss", "privacy", "cost") if isinstance(preview.get(n), Mapping)), {}
    )
    accuracy = preview.get("accuracy") if isinstance(preview.get("accuracy"), Mapping) else {}
    budget = preview.get("budget") if isinstance(preview.get("budget"), Mapping) else {}
    assert isinstance(accuracy, Mapping) and isinstance(budget, Mapping)
    loss_first = (privacy, preview)
    accuracy_first = (preview, accuracy)
    epsilon = _number(_first(loss_first, "epsilon"))
    rho = _number(_first(loss_first, "rho"))
    delta = _number(_first(loss_first, "delta"))
    remaining = _number(budget.get("epsilon_remaining"))
    fits = preview.get("fits")
    if fits is None and budget:
        fits = _fits(budget, epsilon, rho, delta)
    cells = _first(accuracy_first, "cells", "n_cells")
    half = _first(
        accuracy_first, "expected_half_width", "ci_half_width", "expected_ci_half_width", "half_width"
    )
    return PreviewSummary(
        epsilon=epsilon,
        rho=rho,
        delta=delta,
        half_width=_number(half),
        confidence=_number(_first(accuracy_first, "confidence")),
        cells=int(cells) if isinstance(cells, int | float) and not isinstance(cells, bool) else None,
        mechanism=_first(loss_first, "mechanism"),
        epsilon_remaining=remaining,
        fits=None if fits is None else bool(fits),
        rank_error=_number(_first(accuracy_first, "rank_error")),
        notes=tuple(str(n) for n in preview.get("notes", []) or []),
    )


def group_columns_of(release: Mapping[str, Any]) -> list[str]:
    """The release's group columns: those before ``value`` in ``columns``."""
    columns = list(release.get("columns") or [])
    if "value" in columns:
        return columns[: columns.index("value")]
    rows = release.get("rows") or []
    return [c for c in (rows[0] if rows else {}) if c not in ("value", "ci_low", "ci_high", "suppressed")]


def suppression_threshold(release: Mapping[str, Any]) -> int:
    """The small-cell threshold of a release (the service's default is 5)."""
    for name in ("small_cell_threshold", "threshold", "suppression_threshold"):
        value = release.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return _DEFAULT_THRESHOLD


def release_frame(release: Mapping[str, Any]) -> pd.DataFrame:
    """The release as typed columns: groups, ``value``, ``ci_low``, ``ci_high``, ``suppressed``.

    A suppressed cell keeps no number: its value and interval are empty (shown as ``<5``).
    """
    groups = group_columns_of(release)
    records = []
    for row in release.get("rows") or []:
        suppressed = bool(row.get("suppressed", False))
        record = {g: row.get(g) for g in groups}
        record["value"] = None if suppressed else _number(row.get("value"))
        record["ci_low"] = None if suppressed else _number(row.get("ci_low"))
        record["ci_high"] = None if suppressed else _number(row.get("ci_high"))
        record["suppressed"] = suppressed
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[*groups, "value", "ci_low", "ci_high", "suppressed"])
    for name in ("value", "ci_low", "ci_high"):
        frame[name] = frame[name].astype("Float64")
    frame["suppressed"] = frame["suppressed"].astype(bool)
    return frame


def _shown(value: Any, integer: bool) -> str:
    if value is None or pd.isna(value):
        return ""
    number = float(value)
    if integer and number.is_integer():
        return str(int(number))
    return f"{number:.6g}"


def table_frame(release: Mapping[str, Any]) -> pd.DataFrame:
    """The release as text for people: ``<5`` for suppressed cells, empty intervals where there are none."""
    frame = release_frame(release)
    threshold = suppression_threshold(release)
    integer = str(release.get("measure", "count")).startswith("count") or all(
        float(v).is_integer() for v in frame["value"].dropna()
    )
    out = frame[group_columns_of(release)].astype(object).copy()
    for name in ("value", "ci_low", "ci_high"):
        out[name] = [_shown(v, integer) for v in frame[name]]
    out.loc[frame["suppressed"].to_numpy(), "value"] = f"<{threshold}"
    return out


def csv_bytes(release: Mapping[str, Any]) -> bytes:
    """The release table as UTF-8 CSV (suppressed cells as ``<5``)."""
    return table_frame(release).to_csv(index=False).encode("utf-8")


def parquet_bytes(release: Mapping[str, Any]) -> bytes:
    """The release as Parquet (pyarrow): typed values, nulls for suppressed cells, and a ``suppressed`` flag."""
    buffer = io.BytesIO()
    frame = release_frame(release)
    frame.columns = [str(c) for c in frame.columns]
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


def release_summary(release: Mapping[str, Any]) -> Json:
    """The privacy facts of a release in one flat mapping (for metrics and the release list)."""
    privacy = release.get("privacy") or {}
    budget = release.get("budget") or {}
    query = release.get("query") or {}
    return {
        "release_id": release.get("release_id"),
        "created_at": release.get("created_at"),
        "measure": release.get("measure") or query.get("measure"),
        "group_by": ", ".join(query.get("group_by") or group_columns_of(release)),
        "epsilon": _number(privacy.get("epsilon")),
        "rho": _number(privacy.get("rho")),
        "delta": _number(privacy.get("delta")),
        "mechanism": privacy.get("mechanism"),
        "confidence": _number(release.get("confidence")),
        "cells": len(release.get("rows") or []),
        "cached": bool(release.get("cached", False)),
        "epsilon_remaining": _number(budget.get("epsilon_remaining")),
    }


def releases_frame(releases: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per past release, newest first."""
    columns = [
        "release_id",
        "created_at",
        "measure",
        "group_by",
        "epsilon",
        "rho",
        "delta",
        "mechanism",
        "cells",
    ]
    records = [{k: release_summary(r)[k] for k in columns} for r in releases]
    frame = pd.DataFrame.from_records(records, columns=columns)
    return frame.iloc[::-1].reset_index(drop=True)


# --- budgets, applications and transparency -----------------------------------------------------


@dataclass(frozen=True)
class BudgetSummary:
    """A project's budget as the gauge shows it: epsilon at the project's delta, plus rho for zCDP."""

    project: str
    mode: str
    epsilon_total: float
    epsilon_spent: float
    epsilon_remaining: float
    delta_total: float
    rho_total: float | None
    rho_spent: float | None
    rho_remaining: float | None
    spends: int

    @property
    def fraction_spent(self) -> float:
        """Spent share of the budget, 0..1 (by rho for zCDP projects, where rho is what composes)."""
        if self.mode == "zcdp" and self.rho_total:
            return min(1.0, max(0.0, (self.rho_spent or 0.0) / self.rho_total))
        if self.epsilon_total <= 0:
            return 1.0 if self.epsilon_spent > 0 else 0.0
        return min(1.0, max(0.0, self.epsilon_spent / self.epsilon_total))


def budget_summary(budget: Mapping[str, Any]) -> BudgetSummary:
    """Read a ``GET /v1/projects/{id}/budget`` body."""
    return BudgetSummary(
        project=str(budget.get("project", "")),
        mode=str(budget.get("mode", "pure")),
        epsilon_total=_number(budget.get("epsilon_total")) or 0.0,
        epsilon_spent=_number(budget.get("epsilon_spent")) or 0.0,
        epsilon_remaining=_number(budget.get("epsilon_remaining")) or 0.0,
        delta_total=_number(budget.get("delta_total")) or 0.0,
        rho_total=_number(budget.get("rho_total")),
        rho_spent=_number(budget.get("rho_spent")),
        rho_remaining=_number(budget.get("rho_remaining")),
        spends=int(budget.get("spends") or 0),
    )


def application_body(
    *,
    title: str,
    purpose: str,
    institution: str,
    summary: str,
    registers: Sequence[str],
    epsilon: float,
    delta: float,
    duration_days: int,
    name: str,
    email: str,
) -> Json:
    """The body of ``POST /v1/applications`` (text trimmed)."""
    return {
        "title": title.strip(),
        "purpose": purpose,
        "institution": institution.strip(),
        "summary": summary.strip(),
        "registers": list(registers),
        "epsilon": float(epsilon),
        "delta": float(delta),
        "duration_days": int(duration_days),
        "applicant": {"name": name.strip(), "email": email.strip()},
    }


def transparency_projects_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The public list of projects with their budgets and spend."""
    columns = [
        "id",
        "title",
        "purpose",
        "institution",
        "registers",
        "mode",
        "epsilon_total",
        "epsilon_spent",
        "delta_total",
        "releases",
        "approval_route",
        "expires",
        "permit_id",
        "analysts",
    ]
    records = [
        {c: (", ".join(p.get(c) or []) if c in ("registers", "analysts") else p.get(c)) for c in columns}
        for p in report.get("projects", [])
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def transparency_registers_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The privacy loss each register bears across all projects (rho and delta), with its cap."""
    columns = ["register", "rho_spent", "delta_spent", "spends", "cap_rho", "cap_delta", "rho_remaining"]
    records = [{c: r.get(c) for c in columns} for r in report.get("registers", [])]
    return pd.DataFrame.from_records(records, columns=columns)
