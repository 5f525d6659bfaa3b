"""Explore (analysts): build a query or write SQL, see its cost and expected accuracy (free), run it,
see the release.

Two tabs with the same flow: the query builder and SQL (``/v1/sql``). Widgets only change the draft;
the draft is previewed once per distinct query (previews touch no data and spend nothing). Budget is
spent only by a Run button, with an idempotency key made once per distinct query (for SQL: per distinct
SQL text and loss) and kept in the session, so a rerun, a double click or a retry never spends twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import streamlit as st

from dashboard import catalog_lookup, query_draft, results
from dashboard import formatting as fmt
from dashboard.release_view import render_query_code, render_release, render_sql_code
from dashboard.session import (
    API_ERRORS,
    api,
    forget_session_data,
    labeller,
    lang,
    public_catalog,
    query_options,
    require_role,
    session_cached,
    show_error,
    t,
)
from service.client import ApiError, Client

__all__ = ["render"]

CONDITION_IDS = "explore_condition_ids"
PREVIEWS = "explore_previews"
IDEMPOTENCY_KEYS = "explore_idempotency_keys"
RELEASE = "explore_release"
RELEASE_QUERY = "explore_release_query"
SQL_IDEMPOTENCY_KEYS = "explore_sql_idempotency_keys"
SQL_RELEASE = "explore_sql_release"
SQL_RELEASE_BODY = "explore_sql_release_body"
_SMALL_KEYSET = 40
_MAX_PREVIEWS = 32
_DEFAULT_LOSS = {"epsilon": 0.1, "rho": 0.005, "target_ci": 10.0}


def _add_condition() -> None:
    ids: list[int] = st.session_state.setdefault(CONDITION_IDS, [])
    ids.append(max(ids, default=-1) + 1)


def _remove_condition(cid: int) -> None:
    ids: list[int] = st.session_state.setdefault(CONDITION_IDS, [])
    if cid in ids:
        ids.remove(cid)


def _column_labeller(columns: Mapping[str, Any]) -> Callable[[str], str]:
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


def _code_picker(cid: int, keyset: Mapping[str, Any], single: bool) -> list[Any]:
    """Pick codes of a key set; large lists (ICD-10, ATC) are searched by code or title first."""
    values = list(keyset.get("values", []))
    key = f"cond_{cid}_codes"
    chosen = list(st.session_state.get(key) or [])
    if len(values) <= _SMALL_KEYSET:
        options = values
    else:
        text = st.text_input(
            t("code_search_text"), key=f"cond_{cid}_search", placeholder=t("code_search_hint")
        )
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


def _number_input(label: str, key: str, column: Mapping[str, Any], default: Any) -> float | int:
    integer = column.get("type") == "integer"
    bounds = column.get("bounds") or {}
    step: float | int = 1 if integer else float(bounds.get("resolution") or 0.01)
    value: float | int = int(default) if integer else float(default)
    result = st.number_input(label, value=value, step=step, key=key)
    return int(result) if integer else float(result)


def _date_input(label: str, value: dt.date, key: str) -> dt.date:
    return st.date_input(
        label,
        value=value,
        min_value=dt.date(1900, 1, 1),
        max_value=dt.date(2100, 12, 31),
        key=key,
        format="YYYY-MM-DD",
    )


def _condition_value(cid: int, column: Mapping[str, Any], op: str, catalog: Mapping[str, Any]) -> Any:
    """The value widgets for the column's kind and the operator; returns the condition's value."""
    kind = catalog_lookup.column_kind(column)
    bounds = column.get("bounds") or {}
    if kind == "codes" and op in ("in", "=", "!="):
        keyset = catalog.get("keysets", {}).get(column["keyset"], {})
        picked = _code_picker(cid, keyset, single=op != "in")
        return picked if op == "in" else (picked[0] if picked else None)
    if op == "prefix" or kind == "text":
        text = st.text_input(t("value"), key=f"cond_{cid}_text", help=t("text_value_help")).strip()
        if op == "in":
            return [v.strip() for v in text.split(",") if v.strip()]
        return text
    if kind == "date":
        lo = _date(bounds.get("lo"), dt.date(1900, 1, 1))
        hi = _date(bounds.get("hi"), dt.date.today())
        if op == "between":
            a, b = st.columns(2)
            with a:
                first = _date_input(t("from"), lo, f"cond_{cid}_date_lo")
            with b:
                last = _date_input(t("to"), hi, f"cond_{cid}_date_hi")
            return [first, last]
        return _date_input(t("value"), lo, f"cond_{cid}_date")
    values = catalog.get("keysets", {}).get(column.get("keyset") or "", {}).get("values") or []
    lo_default = bounds.get("lo", values[0] if values else 0)
    hi_default = bounds.get("hi", values[-1] if values else 0)
    if op == "between":
        a, b = st.columns(2)
        with a:
            start = _number_input(t("from"), f"cond_{cid}_num_lo", column, lo_default)
        with b:
            end = _number_input(t("to"), f"cond_{cid}_num_hi", column, hi_default)
        return [start, end]
    return _number_input(t("value"), f"cond_{cid}_num", column, lo_default)


def _conditions(catalog: Mapping[str, Any], columns: Mapping[str, Any]) -> list[query_draft.Condition]:
    st.subheader(t("cohort"))
    st.caption(t("cohort_help"))
    conditions: list[query_draft.Condition] = []
    for cid in list(st.session_state.setdefault(CONDITION_IDS, [])):
        with st.container(border=True, key=f"cond_{cid}"):
            c1, c2, c3 = st.columns([3, 2, 1])
            name = c1.selectbox(
                t("column"),
                list(columns),
                key=f"cond_{cid}_column",
                format_func=_column_labeller(columns),
            )
            column = columns[name]
            op = c2.selectbox(
                t("operator"),
                catalog_lookup.operators_for(column),
                key=f"cond_{cid}_op",
                format_func=labeller("op_"),
            )
            c3.button(
                t("remove"),
                key=f"cond_{cid}_remove",
                on_click=_remove_condition,
                args=(cid,),
                icon=":material/delete:",
            )
            value = _condition_value(cid, column, op, catalog)
            try:
                conditions.append(query_draft.Condition(name, op, value))
            except query_draft.DraftError as exc:
                st.caption(t(exc.key, **exc.values))
    st.button(t("add_condition"), key="explore_add_condition", on_click=_add_condition, icon=":material/add:")
    return conditions


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
            format_func=_column_labeller(all_columns),
            placeholder=t("no_numeric_columns"),
        )
        if column:
            declared = all_columns[column].get("bounds") or {}
            own = st.checkbox(t("own_bounds"), key="explore_bounds_on", help=t("own_bounds_help"))
            if own:
                a, b = st.columns(2)
                with a:
                    lo = _number_input(
                        t("lower_bound"), "explore_lo", all_columns[column], declared.get("lo", 0)
                    )
                with b:
                    hi = _number_input(
                        t("upper_bound"), "explore_hi", all_columns[column], declared.get("hi", 1)
                    )
                bounds = (float(lo), float(hi))
            else:
                st.caption(t("declared_bounds", lo=declared.get("lo"), hi=declared.get("hi")))
        if measure == "quantile":
            quantile = st.slider(t("quantile"), 0.01, 0.99, 0.5, 0.01, key="explore_quantile")
    where = _conditions(catalog, columns)
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
        format_func=_column_labeller(all_columns),
        placeholder=t("group_by_placeholder"),
    )
    bounding = _bounding(_query_options(measure, register, group_by)["bounding"])
    confidence, kind, loss = _loss_inputs(project, "explore")
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


def _loss_inputs(project: Mapping[str, Any], prefix: str) -> tuple[float, query_draft.LossKind, float]:
    """Confidence level, how the loss is stated, and its value (widget keys start with ``prefix``)."""
    d1, d2, d3 = st.columns(3)
    confidence = d1.select_slider(
        t("confidence"),
        options=list(query_draft.CONFIDENCE_LEVELS),
        value=0.95,
        key=f"{prefix}_confidence",
        format_func=lambda c: f"{c:.0%}",
    )
    kinds = query_draft.loss_kinds(str(project.get("mode", "pure")))
    kind = d2.radio(t("loss_kind"), kinds, key=f"{prefix}_loss_kind", format_func=labeller("loss_kind_"))
    kind = kind if kind in kinds else kinds[0]
    loss = d3.number_input(
        t(f"loss_value_{kind}"),
        min_value=0.0,
        value=_DEFAULT_LOSS[kind],
        step=0.01 if kind != "target_ci" else 1.0,
        format="%.4f" if kind != "target_ci" else "%.2f",
        key=f"{prefix}_{kind}",
        help=t(f"loss_help_{kind}"),
    )
    return float(confidence), kind, float(loss)


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


def _preview(
    request: Mapping[str, Any], ask: Callable[[Client], Any], route: str = "queries"
) -> tuple[str, Any]:
    """The preview of ``request`` (``ask`` sends it), asked once per distinct request in this session."""
    memo: dict[str, tuple[str, Any]] = st.session_state.setdefault(PREVIEWS, {})
    fingerprint = query_draft.query_fingerprint({"route": route, "request": request})
    if fingerprint in memo:
        return memo[fingerprint]
    try:
        with api() as client:
            answer: tuple[str, Any] = ("ok", ask(client))
    except API_ERRORS as exc:
        answer = ("error", exc)
        if not isinstance(exc, ApiError) or exc.status >= 500 or exc.status == 429:
            return answer  # transient: ask again on the next run
    memo[fingerprint] = answer
    while len(memo) > _MAX_PREVIEWS:
        memo.pop(next(iter(memo)))
    return answer


def _show_error(exc: ApiError | httpx.TransportError, sql: str | None = None) -> None:
    """The service's sentence; for an SQL error with a position, also the line with a caret under it."""
    show_error(exc)
    position = query_draft.error_position(exc.body) if sql is not None and isinstance(exc, ApiError) else None
    if position is not None and sql is not None:
        excerpt = query_draft.sql_excerpt(sql, *position)
        if excerpt:
            with st.container(key="explore_sql_error"):
                st.caption(t("sql_error_at", line=position[0], column=position[1]))
                st.code(excerpt, language=None)


def _render_preview(
    query: Mapping[str, Any], answer: tuple[str, Any], *, key: str = "explore_preview", sql: str | None = None
) -> str | None:
    """Show the cost and expected accuracy, or why the service refuses the query; return that reason
    (None when Run may spend: the preview accepted it, or the service could not be asked just now)."""
    status, body = answer
    with st.container(border=True, key=key):
        st.markdown(f"**{t('preview_title')}**")
        if status == "error":
            _show_error(body, sql)
            if isinstance(body, ApiError) and body.status < 500 and body.status not in (401, 429):
                return str(body.error)
            return None
        summary = results.preview_summary(body)
        c1, c2, c3 = st.columns(3)
        if summary.rho is not None and (summary.epsilon is None or query.get("rho") is not None):
            c1.metric(t("cost_rho"), fmt.number(summary.rho))
        else:
            c1.metric(t("cost_epsilon"), fmt.number(summary.epsilon))
        confidence = summary.confidence or float(query.get("confidence") or 0.95)
        if summary.half_width is not None:
            c2.metric(t("expected_ci", confidence=f"{confidence:.0%}"), f"± {fmt.number(summary.half_width)}")
        elif summary.rank_error is not None:
            c2.metric(
                t("expected_rank_error", confidence=f"{confidence:.0%}"),
                f"± {fmt.number(summary.rank_error)}",
            )
        else:
            c2.metric(t("expected_ci", confidence=f"{confidence:.0%}"), "-")
        if summary.epsilon_remaining is not None:
            c3.metric(t("preview_left"), fmt.remaining(summary.epsilon_remaining))
        if summary.delta:
            st.caption(t("cost_delta", delta=fmt.delta(summary.delta)))
        if summary.cells is not None:
            st.caption(
                t("preview_cells_one") if summary.cells == 1 else t("preview_cells", cells=summary.cells)
            )
        for note in summary.notes:
            st.caption(note)
        for warning in body.get("warnings") or []:
            st.warning(warning, icon=":material/warning:")
        if summary.fits is False:
            st.warning(t("preview_exceeds"), icon=":material/block:")
            return t("preview_exceeds")
    return None


def _run_button(key: str, refused: str | None) -> bool:
    """Run, disabled (and saying why) while the preview says the service would refuse the query."""
    if refused:
        st.caption(t("run_refused", reason=refused))
    return st.button(
        t("run"), key=key, type="primary", icon=":material/play_arrow:", disabled=bool(refused), help=refused
    )


def _spend(
    request: dict[str, Any],
    send: Callable[[Client, str], Any],
    *,
    keys_at: str,
    kept_at: tuple[str, str],
    sql: str | None = None,
) -> None:
    """Spend: send ``request`` with its idempotency key and keep the release (and request) in the session.

    The key is made once per distinct request and kept under ``keys_at``; ``kept_at`` names where the
    release and the request are kept.
    """
    keys: dict[str, str] = st.session_state.setdefault(keys_at, {})
    key = query_draft.idempotency_key(keys, request)
    try:
        with st.spinner(t("running")), api() as client:
            release = send(client, key)
    except API_ERRORS as exc:
        _show_error(exc, sql)
        return
    finally:
        forget_session_data("budget", "releases")
        st.session_state[PREVIEWS] = {}  # the remaining budget they show has changed
    st.session_state[kept_at[0]] = release
    st.session_state[kept_at[1]] = request


def _builder_tab(catalog: Mapping[str, Any], project: Mapping[str, Any]) -> None:
    """The query builder, its preview, Run, and the release of the last builder query."""
    try:
        draft = _builder(catalog, project)
    except query_draft.DraftError as exc:
        st.warning(t(exc.key, **exc.values))
        draft = None
    if draft is not None:
        query = draft.to_query()
        refused = _render_preview(query, _preview(query, lambda client: client.preview(query)))
        with st.expander(t("query_as_code")):
            render_query_code(query, key="explore_draft_code")
        if _run_button("explore_run", refused):
            _spend(
                query,
                lambda client, key: client.run(query, idempotency_key=key),
                keys_at=IDEMPOTENCY_KEYS,
                kept_at=(RELEASE, RELEASE_QUERY),
            )
    release = st.session_state.get(RELEASE)
    if release:
        st.divider()
        st.subheader(t("result"))
        shown_query = st.session_state.get(RELEASE_QUERY)
        if draft is not None and shown_query != draft.to_query():
            st.caption(t("result_of_earlier_query"))
        render_release(release, shown_query, key="explore_result")


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
    confidence, kind, loss = _loss_inputs(project, "explore_sql")
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
        preview = _preview(
            body, lambda client: client.sql_preview(sql, project=draft.project, **options), route="sql"
        )
        refused = _render_preview(body, preview, key="explore_sql_preview", sql=sql)
        with st.expander(t("sql_as_code")):
            render_sql_code(body, key="explore_sql_draft_code")
        if _run_button("explore_sql_run", refused):
            _spend(
                body,
                lambda client, key: client.sql(sql, project=draft.project, idempotency_key=key, **options),
                keys_at=SQL_IDEMPOTENCY_KEYS,
                kept_at=(SQL_RELEASE, SQL_RELEASE_BODY),
                sql=sql,
            )
    release = st.session_state.get(SQL_RELEASE)
    if release:
        st.divider()
        st.subheader(t("result"))
        shown = st.session_state.get(SQL_RELEASE_BODY)
        if draft is not None and shown != draft.to_body():
            st.caption(t("result_of_earlier_query"))
        render_release(release, None, key="explore_sql_result", sql=shown)


def render() -> None:
    """The Explore page."""
    st.title(t("page_explore"))
    who = require_role("analyst")
    if who is None:
        return
    project_id = str(who.get("project"))
    try:
        catalog = public_catalog()
        with api() as client:
            project = session_cached("project", lambda: client.project(project_id))
    except API_ERRORS as exc:
        show_error(exc)
        return
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
