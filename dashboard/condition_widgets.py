"""Filter widgets: rows of (column, operator, value) built from the public catalog, shared by the
Explore query builder and the cohort builder.

Values are picked from the column's public key set (searched by code or title for long lists such as
ICD-10 and ATC), typed as text for prefixes, or entered as dates and numbers within the declared bounds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from dashboard import catalog_lookup, query_draft
from dashboard.session import labeller, lang, t

__all__ = ["column_labeller", "condition_list", "date_input", "number_input"]

_SMALL_KEYSET = 40


def _add_condition(ids_key: str) -> None:
    ids: list[int] = st.session_state.setdefault(ids_key, [])
    ids.append(max(ids, default=-1) + 1)


def _remove_condition(ids_key: str, cid: int) -> None:
    ids: list[int] = st.session_state.setdefault(ids_key, [])
    if cid in ids:
        ids.remove(cid)


def column_labeller(columns: Mapping[str, Any]) -> Callable[[str], str]:
    """A ``format_func``: the qualified name and its description, in the language chosen now."""
    language = lang()

    def label(name: str) -> str:
        description = catalog_lookup.localized(columns[name].get("description"), language)
        return f"{name} — {description}" if description else name

    return label


def _date(value: Any, fallback: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return fallback


def _code_picker(stem: str, keyset: Mapping[str, Any], single: bool) -> list[Any]:
    """Pick codes of a key set; large lists (ICD-10, ATC) are searched by code or title first."""
    values = list(keyset.get("values", []))
    key = f"{stem}_codes"
    chosen = list(st.session_state.get(key) or [])
    if len(values) <= _SMALL_KEYSET:
        options = values
    else:
        text = st.text_input(t("code_search_text"), key=f"{stem}_search", placeholder=t("code_search_hint"))
        hits = (
            [code for code, _ in catalog_lookup.search_codes(keyset, text, lang=lang(), limit=150)]
            if text
            else []
        )
        options = chosen + [code for code in hits if code not in chosen]
        if text and not hits:
            st.caption(t("code_no_hits", text=text))
    language = lang()
    picked = st.multiselect(
        t("codes"),
        options,
        key=key,
        max_selections=1 if single else None,
        select_all=False,  # Enter takes the first match, not "Select N matches"
        format_func=lambda code: f"{code} — {catalog_lookup.code_label(keyset, code, language)}".rstrip(" —"),
        placeholder=t("codes_placeholder"),
    )
    return list(picked)


def number_input(label: str, key: str, column: Mapping[str, Any], default: Any) -> float | int:
    integer = column.get("type") == "integer"
    bounds = column.get("bounds") or {}
    step: float | int = 1 if integer else float(bounds.get("resolution") or 0.01)
    value: float | int = int(default) if integer else float(default)
    result = st.number_input(label, value=value, step=step, key=key)
    return int(result) if integer else float(result)


def date_input(label: str, value: dt.date, key: str) -> dt.date:
    return st.date_input(
        label,
        value=value,
        min_value=dt.date(1900, 1, 1),
        max_value=dt.date(2100, 12, 31),
        key=key,
        format="YYYY-MM-DD",
    )


def _condition_value(stem: str, column: Mapping[str, Any], op: str, catalog: Mapping[str, Any]) -> Any:
    """The value widgets for the column's kind and the operator; returns the condition's value."""
    kind = catalog_lookup.column_kind(column)
    bounds = column.get("bounds") or {}
    if kind == "codes" and op in ("in", "=", "!="):
        keyset = catalog.get("keysets", {}).get(column["keyset"], {})
        picked = _code_picker(stem, keyset, single=op != "in")
        return picked if op == "in" else (picked[0] if picked else None)
    if op == "prefix" or kind == "text":
        text = st.text_input(t("value"), key=f"{stem}_text", help=t("text_value_help")).strip()
        if op == "in":
            return [v.strip() for v in text.split(",") if v.strip()]
        return text
    if kind == "date":
        lo = _date(bounds.get("lo"), dt.date(1900, 1, 1))
        hi = _date(bounds.get("hi"), dt.date.today())
        if op == "between":
            a, b = st.columns(2)
            with a:
                first = date_input(t("from"), lo, f"{stem}_date_lo")
            with b:
                last = date_input(t("to"), hi, f"{stem}_date_hi")
            return [first, last]
        return date_input(t("value"), lo, f"{stem}_date")
    values = catalog.get("keysets", {}).get(column.get("keyset") or "", {}).get("values") or []
    lo_default = bounds.get("lo", values[0] if values else 0)
    hi_default = bounds.get("hi", values[-1] if values else 0)
    if op == "between":
        a, b = st.columns(2)
        with a:
            start = number_input(t("from"), f"{stem}_num_lo", column, lo_default)
        with b:
            end = number_input(t("to"), f"{stem}_num_hi", column, hi_default)
        return [start, end]
    return number_input(t("value"), f"{stem}_num", column, lo_default)


def condition_list(
    catalog: Mapping[str, Any],
    columns: Mapping[str, Any],
    *,
    prefix: str = "cond",
    ids_key: str = "explore_condition_ids",
    add_key: str = "explore_add_condition",
) -> list[query_draft.Condition]:
    """Rows of (column, operator, value) with Remove buttons and an Add button; returns the complete
    conditions. Widget keys start with ``prefix``; ``ids_key`` keeps the rows' ids in the session."""
    conditions: list[query_draft.Condition] = []
    for cid in list(st.session_state.setdefault(ids_key, [])):
        stem = f"{prefix}_{cid}"
        with st.container(border=True, key=stem):
            c1, c2, c3 = st.columns([3, 2, 1])
            name = c1.selectbox(
                t("column"),
                list(columns),
                key=f"{stem}_column",
                format_func=column_labeller(columns),
            )
            column = columns[name]
            op = c2.selectbox(
                t("operator"),
                catalog_lookup.operators_for(column),
                key=f"{stem}_op",
                format_func=labeller("op_"),
            )
            c3.button(
                t("remove"),
                key=f"{stem}_remove",
                on_click=_remove_condition,
                args=(ids_key, cid),
                icon=":material/delete:",
            )
            value = _condition_value(stem, column, op, catalog)
            try:
                conditions.append(query_draft.Condition(name, op, value))
            except query_draft.DraftError as exc:
                st.caption(t(exc.key, **exc.values))
    st.button(
        t("add_condition"), key=add_key, on_click=_add_condition, args=(ids_key,), icon=":material/add:"
    )
    return conditions
