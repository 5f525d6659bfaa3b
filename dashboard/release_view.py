"""The view of one release, shared by Explore (a fresh release) and My project (a reopened one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from . import catalog_lookup, charts, query_draft, results, tables
from . import formatting as fmt
from .catalog_lookup import Json
from .session import api_url, lang, public_catalog, t

__all__ = ["render_privacy_facts", "render_query_code", "render_release", "render_sql_code"]

_PLAIN_TABLE_ROWS = 100

# Per code language: the downloaded file's name and media type.
_DOWNLOADS = {
    "json": ("query.json", "application/json"),
    "python": ("query.py", "text/x-python"),
    "sql": ("query.sql", "application/sql"),
}


def _code_download(label: str, text: str, language: str, key: str) -> None:
    """``text`` shown as code in ``language``, with a button (``label``) that downloads it."""
    file_name, mime = _DOWNLOADS[language]
    st.code(text, language=language)
    st.download_button(label, text, file_name=file_name, mime=mime, key=key, on_click="ignore")


def render_query_code(query: Mapping[str, Any], key: str) -> None:
    """The query as JSON and as Python client code, each with a download button."""
    as_json, as_python = st.tabs([t("query_as_json"), t("query_as_python")])
    with as_json:
        _code_download(t("download_json"), query_draft.query_json(query), "json", f"{key}_json")
    with as_python:
        _code_download(
            t("download_python"), query_draft.python_snippet(query, api_url()), "python", f"{key}_py"
        )


def render_sql_code(body: Mapping[str, Any], key: str, parsed: Mapping[str, Any] | None = None) -> None:
    """An SQL request as SQL and as Python client code (``client.sql``), and the query it was parsed
    into (``parsed``, a release's ``query``) as JSON; each with a download button."""
    names = [t("query_as_sql"), t("query_as_python")] + ([t("query_as_parsed")] if parsed else [])
    tabs = st.tabs(names)
    with tabs[0]:
        _code_download(t("download_sql"), str(body.get("sql", "")), "sql", f"{key}_sql")
    with tabs[1]:
        _code_download(t("download_python"), query_draft.sql_snippet(body, api_url()), "python", f"{key}_py")
    if parsed:
        with tabs[2]:
            st.code(query_draft.query_json(parsed), language="json")


def render_privacy_facts(release: Mapping[str, Any], key: str) -> Json:
    """The privacy facts above every release: loss, confidence, cells, what is left, the release id;
    returns the release's summary (``results.release_summary``)."""
    summary = results.release_summary(release)
    if summary["cached"]:
        st.info(t("release_cached"), icon=":material/history:")
    cols = st.columns(4)
    if summary["rho"] is not None and summary["epsilon"] is None:
        cols[0].metric(t("loss_rho"), fmt.number(summary["rho"]))
    else:
        cols[0].metric(t("loss_epsilon"), fmt.number(summary["epsilon"]))
    cols[1].metric(t("confidence"), "-" if summary["confidence"] is None else f"{summary['confidence']:.0%}")
    cols[2].metric(t("cells"), summary["cells"])
    remaining = summary["epsilon_remaining"]
    cols[3].metric(t("epsilon_remaining"), fmt.remaining(remaining))
    with st.container(key=f"{key}_release_id"):
        st.caption(
            t("release_caption", release_id=summary["release_id"], mechanism=summary["mechanism"] or "-")
        )
    return summary


def render_release(
    release: Mapping[str, Any],
    query: Mapping[str, Any] | None,
    *,
    key: str,
    sql: Mapping[str, Any] | None = None,
) -> None:
    """Privacy facts, chart with error bars, table with CIs (``<5`` for small cells) and downloads.

    ``query`` is the JSON query shown as code; for a release of an SQL query, ``sql`` is the request
    body instead (shown as SQL, Python client code and the parsed query).
    """
    summary = render_privacy_facts(release, key)

    catalog = public_catalog()
    language = lang()
    columns = catalog_lookup.column_index(catalog)
    groups = results.group_columns_of(release)
    frame = results.release_frame(release)
    time_axis = bool(groups) and catalog_lookup.is_time_column(catalog, groups[0])
    measure = str(summary["measure"] or (query or {}).get("measure") or "")
    level = fmt.number(100 * (summary["confidence"] or 0.95), 3)
    for warning in release.get("warnings") or []:
        st.warning(warning, icon=":material/warning:")
    chart = charts.release_chart(
        frame,
        groups,
        time_axis=time_axis,
        value_title=t(f"measure_{measure}") if measure else t("value"),
        total_label=t("total"),
        labels={g: tables.value_labels(catalog, g, language) for g in groups},
        titles={g: fmt.column_title(columns, g, language) for g in groups},
        ordered_colour=len(groups) > 1 and tables.is_ordered_column(catalog, groups[1]),
        ci_title=t("ci_column", level=level),
    )
    with st.container(key=f"{key}_chart"):
        st.altair_chart(chart, width="stretch")
    threshold = results.suppression_threshold(release)
    suppressed = int(frame["suppressed"].sum())
    if suppressed:
        st.caption(t("suppressed_note", count=suppressed, threshold=threshold))
    table = tables.release_table(release, catalog, language, t)
    with st.container(key=f"{key}_table"):
        # every row, not a 10-row scroll box: a plain table (text people and screen readers can read)
        # for the usual sizes, a grid as tall as its rows for large ones
        if len(table) <= _PLAIN_TABLE_ROWS:
            st.table(table, hide_index=True)
        else:
            st.dataframe(table, hide_index=True, width="stretch", height="content")
    d1, d2 = st.columns(2)
    stem = str(summary["release_id"] or "release")
    for column, label, data, suffix, mime in (
        (d1, t("download_csv"), results.csv_bytes(release), "csv", "text/csv"),
        (
            d2,
            t("download_parquet"),
            results.parquet_bytes(release),
            "parquet",
            "application/vnd.apache.parquet",
        ),
    ):
        column.download_button(
            label, data, file_name=f"{stem}.{suffix}", mime=mime, key=f"{key}_{suffix}", on_click="ignore"
        )
    if sql:
        with st.expander(t("same_sql_as_code")):
            render_sql_code(sql, key=f"{key}_code", parsed=release.get("query"))
    elif query:
        with st.expander(t("same_query_as_code")):
            render_query_code(query, key=f"{key}_code")
