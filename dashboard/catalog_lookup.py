"""Catalog lookups for the query builder: columns by register, operators by column kind, code search,
localized titles. Plain functions on the catalog's JSON body (``GET /v1/catalog``); the engine's
rules (limits, which contribution bounds a query may set) come from ``GET /v1/query-options``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

__all__ = [
    "ColumnKind",
    "code_label",
    "column_index",
    "column_kind",
    "group_columns",
    "is_time_column",
    "keyset_of",
    "localized",
    "measure_columns",
    "operators_for",
    "search_catalog",
    "search_codes",
]


Json = dict[str, Any]
ColumnKind = Literal["codes", "number", "date", "text"]
_NUMERIC_TYPES = ("integer", "float", "decimal", "double")
_CODE_OPS = ("in", "=", "!=")
_NUMBER_OPS = ("between", "=", "!=", "<", "<=", ">", ">=")
_DATE_OPS = ("between", "<", "<=", ">", ">=")
_TEXT_OPS = ("=", "!=", "in", "prefix")


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
