"""Explore (analysts): build a query or write SQL, see its cost and expected accuracy (free), run it,
see the release.

Two tabs with the same flow: the query builder and SQL (``/v1/sql``). Widgets only change the draft;
the draft is previewed once per distinct query (previews touch no data and spend nothing). Budget is
spent only by a Run button, with an idempotency key made once per distinct query (for SQL: per distinct
SQL text and loss) and kept in the session, so a rerun, a double click or a retry never spends twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import streamlit as st

from dashboard import catalog_lookup, query_draft
from dashboard.condition_widgets import column_labeller, condition_list, number_input
from dashboard.release_view import render_query_code, render_release, render_sql_code
from dashboard.session import (
    analyst_project,
    labeller,
    lang,
    query_options,
    t,
)
from dashboard.spend_flow import kept_release, loss_inputs, preview, render_preview, run_button, spend
from service.client import ApiError

__all__ = ["render"]

IDEMPOTENCY_KEYS = "explore_idempotency_keys"
RELEASE = "explore_release"
RELEASE_QUERY = "explore_release_query"
SQL_IDEMPOTENCY_KEYS = "explore_sql_idempotency_keys"
SQL_RELEASE = "explore_sql_release"
SQL_RELEASE_BODY = "explore_sql_release_body"


def _builder(catalog: Mapping[str, Any], project: Mapping[str, Any]) -> query_draft.QueryDraft:
    """The query builder; raises ``DraftError`` while the draft is incomplete."""
    registers = list(project.get("registers") or [])
    all_columns = catalog_lookup.column_index(catalog)
    columns = {n: c for n, c in all_columns.items() if c["register"] in registers}
    c1, c2, c3 = st.columns(3)
    measure = c1.selectbox(
        t("measure"), query_draft.MEASURES, key="explore_measure", format_func=labeller("measure_")
    )
    register, column, bounds, quantile = "cpr", None, None, None
    titles = {
        r["name"]: catalog_lookup.localized(r.get("title"), lang()) for r in catalog.get("registers", [])
    }
    if measure != "count_persons":
        register = c2.selectbox(
            t("grain_register"),
            registers,
            key="explore_register",
            format_func=lambda r: f"{r} — {titles.get(r, '')}",
        )
    if measure in ("sum", "mean", "quantile"):
        numeric = catalog_lookup.measure_columns(catalog, register)
        column = c3.selectbox(
            t("numeric_column"),
            numeric,
            key="explore_column",
            format_func=column_labeller(all_columns),
            placeholder=t("no_numeric_columns"),
        )
        if column:
            declared = all_columns[column].get("bounds") or {}
            own = st.checkbox(t("own_bounds"), key="explore_bounds_on", help=t("own_bounds_help"))
            if own:
                a, b = st.columns(2)
                with a:
                    lo = number_input(
                        t("lower_bound"), "explore_lo", all_columns[column], declared.get("lo", 0)
                    )
                with b:
                    hi = number_input(
                        t("upper_bound"), "explore_hi", all_columns[column], declared.get("hi", 1)
                    )
                bounds = (float(lo), float(hi))
            else:
                st.caption(t("declared_bounds", lo=declared.get("lo"), hi=declared.get("hi")))
        if measure == "quantile":
            quantile = st.slider(t("quantile"), 0.01, 0.99, 0.5, 0.01, key="explore_quantile")
    st.subheader(t("cohort"))
    st.caption(t("cohort_help"))
    where = condition_list(catalog, columns)
    st.subheader(t("groups_and_loss"))
    limits = _query_options(measure, register, [])["limits"]
    most = limits.get("max_group_columns")
    group_by = st.multiselect(
        t("group_by", most=most) if most else t("group_by_any"),
        catalog_lookup.group_columns(catalog, registers),
        key="explore_group_by",
        max_selections=most,
        # Streamlit's multiselect puts "Select N matches" first for a filter text matching several
        # options, so Enter after typing "cpr.age_band" would add age_band and age_band_5 together.
        select_all=False,
        format_func=column_labeller(all_columns),
        placeholder=t("group_by_placeholder"),
    )
    bounding = _bounding(_query_options(measure, register, group_by)["bounding"])
    confidence, kind, loss = loss_inputs(project, "explore")
    return query_draft.QueryDraft(
        project=str(project["id"]),
        measure=measure,
        register=register,
        column=column,
        bounds=bounds,
        quantile=quantile,
        where=tuple(where),
        group_by=tuple(group_by),
        loss_kind=kind,
        loss=loss,
        confidence=confidence,
        max_groups=bounding.get("max_groups"),
        max_rows=bounding.get("max_rows"),
    )


def _query_options(measure: str, register: str, group_by: list[str]) -> dict[str, Any]:
    """The engine's limits and the bounds this query may set, from the API; none while it cannot say
    (an unknown column, the service away): the preview then names the problem."""
    try:
        return query_options(measure, register, group_by)
    except (ApiError, httpx.HTTPError):
        return {"limits": {}, "bounding": []}


def _bounding(options: list[dict[str, Any]]) -> dict[str, int]:
    """Optional ``max_groups``/``max_rows`` inputs within the catalog's limits; empty means its default."""
    chosen: dict[str, int] = {}
    with st.expander(t("bounding_title")):
        if not options:
            st.caption(t("bounding_none"))
        else:
            st.caption(t("bounding_help"))
        for option in options:
            name, maximum = str(option["name"]), int(option["maximum"])
            # One key per register: the limits differ, and a value above a new maximum must not linger.
            label = (
                t("max_groups", maximum=maximum) if name == "max_groups" else t("max_rows", maximum=maximum)
            )
            value = st.number_input(
                label,
                min_value=1,
                max_value=maximum,
                value=None,
                step=1,
                key=f"explore_{name}_{option['register']}",
                placeholder=t("bounding_default", default=option["default"]),
            )
            if value is not None:
                chosen[name] = int(value)
    return chosen


def _builder_tab(catalog: Mapping[str, Any], project: Mapping[str, Any]) -> None:
    """The query builder, its preview, Run, and the release of the last builder query."""
    try:
        draft = _builder(catalog, project)
    except query_draft.DraftError as exc:
        st.warning(t(exc.key, **exc.values))
        draft = None
    if draft is not None:
        query = draft.to_query()
        refused = render_preview(query, preview(query, lambda client: client.preview(query)))
        with st.expander(t("query_as_code")):
            render_query_code(query, key="explore_draft_code")
        if run_button("explore_run", refused):
            spend(
                query,
                lambda client, key: client.run(query, idempotency_key=key),
                keys_at=IDEMPOTENCY_KEYS,
                kept_at=(RELEASE, RELEASE_QUERY),
            )
    kept = kept_release(RELEASE, RELEASE_QUERY, None if draft is None else draft.to_query())
    if kept is not None:
        render_release(kept[0], kept[1], key="explore_result")


def _sql_draft(project: Mapping[str, Any]) -> query_draft.SqlDraft:
    """The SQL tab's inputs; raises ``DraftError`` while the text is empty or the loss invalid."""
    text = st.text_area(
        t("sql_text"),
        key="explore_sql_text",
        height=180,
        placeholder=t("sql_placeholder"),
        help=t("sql_help"),
    )
    with st.expander(t("bounding_title")):
        st.caption(t("sql_bounding_help"))
        b1, b2 = st.columns(2)
        max_groups = b1.number_input(
            t("max_groups_sql"), min_value=1, value=None, step=1, key="explore_sql_max_groups"
        )
        max_rows = b2.number_input(
            t("max_rows_sql"), min_value=1, value=None, step=1, key="explore_sql_max_rows"
        )
    confidence, kind, loss = loss_inputs(project, "explore_sql")
    return query_draft.SqlDraft(
        project=str(project["id"]),
        sql=str(text or ""),
        loss_kind=kind,
        loss=loss,
        confidence=confidence,
        max_groups=None if max_groups is None else int(max_groups),
        max_rows=None if max_rows is None else int(max_rows),
    )


def _sql_tab(project: Mapping[str, Any]) -> None:
    """SQL (docs/sql.md): the same preview, Run and release view as the builder, through ``/v1/sql``."""
    try:
        draft = _sql_draft(project)
    except query_draft.DraftError as exc:
        st.caption(t(exc.key, **exc.values))
        draft = None
    if draft is not None:
        body = draft.to_body()
        sql = str(body["sql"])
        options = {k: v for k, v in body.items() if k not in ("project", "sql")}
        answer = preview(
            body, lambda client: client.sql_preview(sql, project=draft.project, **options), route="sql"
        )
        refused = render_preview(body, answer, key="explore_sql_preview", sql=sql)
        with st.expander(t("sql_as_code")):
            render_sql_code(body, key="explore_sql_draft_code")
        if run_button("explore_sql_run", refused):
            spend(
                body,
                lambda client, key: client.sql(sql, project=draft.project, idempotency_key=key, **options),
                keys_at=SQL_IDEMPOTENCY_KEYS,
                kept_at=(SQL_RELEASE, SQL_RELEASE_BODY),
                sql=sql,
            )
    kept = kept_release(SQL_RELEASE, SQL_RELEASE_BODY, None if draft is None else draft.to_body())
    if kept is not None:
        render_release(kept[0], None, key="explore_sql_result", sql=kept[1])


def render() -> None:
    """The Explore page."""
    st.title(t("page_explore"))
    opened = analyst_project()
    if opened is None:
        return
    project_id, catalog, project = opened
    st.caption(
        t(
            "explore_project",
            project=project_id,
            mode=t(f"mode_{project.get('mode')}"),
            registers=", ".join(project.get("registers") or []),
        )
    )
    # Both tabs run on every rerun (Streamlit's default), so neither loses its widgets' state.
    builder_tab, sql_tab = st.tabs([t("tab_builder"), t("tab_sql")])
    with builder_tab:
        _builder_tab(catalog, project)
    with sql_tab:
        _sql_tab(project)


if __name__ == "__main__":
    render()
