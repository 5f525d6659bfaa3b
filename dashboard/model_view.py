"""The view of a model or Table 1 release, and what a model's preview expects of it.

A model: a forest plot (one row per term; the estimate on its noise-aware interval, the naive
interval beside it in a lighter mark; log scale and a line at 1 for ratios, 0 for coefficients) and
the table of terms with both intervals. A Table 1: the familiar table with CSV and HTML downloads.
Frames come from the Python client (``service.model_frames``); every figure is the service's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, model_tables, tables
from dashboard import formatting as fmt
from dashboard.analysis_view import group_titles
from dashboard.cohort_draft import COHORT_GROUPS
from dashboard.model_draft import TABLE1_NUMERIC
from dashboard.release_view import render_privacy_facts
from dashboard.session import lang, public_catalog, t
from service.model_frames import model_frames, table1_frames

__all__ = ["render_expected_intervals", "render_model_release", "render_table1_release"]


def _labels_and_titles(columns: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    catalog = public_catalog()
    language = lang()
    labels = {c: tables.value_labels(catalog, c, language) for c in columns}
    for column in columns:  # the cohort's own 0/1 columns (the outcome, exposures)
        if column.startswith("cohort.") and column not in (*COHORT_GROUPS, *TABLE1_NUMERIC):
            labels[column] = {"0": t("no"), "1": t("yes")}
    return labels, group_titles(columns)


def _level(confidence: Any) -> str:
    return fmt.number(100 * float(confidence), 3) if isinstance(confidence, int | float) else "95"


def render_model_release(release: Mapping[str, Any], *, key: str) -> None:
    """The forest plot and the table of terms with both intervals."""
    render_privacy_facts(release, key)
    frames = model_frames(release)
    model = frames.release.get("model") or {}
    kind = str(model.get("estimate") or "coefficient")
    terms = frames.terms
    if terms.empty:  # not fitted: the service says why (e.g. a level lost to the noise)
        st.warning(str(model.get("error") or t("model_no_terms")), icon=":material/warning:")
        return
    covariates = sorted({str(term).partition("=")[0] for term in terms["term"]})
    labels, titles = _labels_and_titles(covariates)
    names = model_tables.term_labels(terms, model.get("reference") or {}, labels, titles, t)
    estimate_title = t(f"model_estimate_{kind}")
    level = _level(model.get("confidence") or release.get("confidence"))
    plotted = (terms["term"] != "intercept").to_numpy()  # the intercept is no effect to compare
    chart = charts.forest_chart(
        terms[plotted].reset_index(drop=True),
        [name for name, shown in zip(names, plotted, strict=True) if shown],
        ratio=kind != "coefficient",
        estimate_title=estimate_title,
        interval_titles=(t("model_ci_level", level=level), t("model_naive_ci_level", level=level)),
    )
    with st.container(key=f"{key}_chart"):
        st.altair_chart(chart, width="stretch")
    st.caption(t("model_table_help", level=level))
    with st.container(key=f"{key}_terms"):
        st.table(model_tables.terms_table(terms, names, estimate_title, t), hide_index=True)


def render_table1_release(release: Mapping[str, Any], *, key: str) -> None:
    """The familiar Table 1, and the same table as CSV and as an HTML table for a paper."""
    render_privacy_facts(release, key)
    frames = table1_frames(release)
    layout = frames.release.get("table1") or {}
    columns = [str(c) for c in (layout.get("variables") or [])]
    if layout.get("group_by"):
        columns.append(str(layout["group_by"]))
    labels, titles = _labels_and_titles(columns)
    titles["cohort.age"] = t("cohort_col_age")
    table = model_tables.table1_table(frames, labels, titles, t)
    level = _level(release.get("confidence"))
    with st.container(key=f"{key}_table"):
        st.table(table, hide_index=True)
    note = t("table1_note", level=level)
    st.caption(note)
    c1, c2 = st.columns(2)
    c1.download_button(
        t("download_csv"),
        model_tables.table1_csv(table),
        file_name="table1.csv",
        mime="text/csv",
        key=f"{key}_csv",
        on_click="ignore",
    )
    c2.download_button(
        t("table1_download_html"),
        model_tables.table1_html(table, t("page_table1"), note),
        file_name="table1.html",
        mime="text/html",
        key=f"{key}_html",
        on_click="ignore",
    )


def _ratio_interval(half: float) -> str:
    return f"{fmt.number(math.exp(-half), 3)} – {fmt.number(math.exp(half), 3)}"


def render_expected_intervals(preview: Mapping[str, Any], *, key: str) -> None:
    """What the preview expects of the estimates asked for (``expected_intervals``), as a table."""
    rows = list(preview.get("expected_intervals") or [])
    if not rows:
        return
    frame = pd.DataFrame.from_records(rows)
    if "events_per_level" in frame.columns:
        titles = group_titles([str(c) for c in frame["covariate"].unique()])
        shown = pd.DataFrame(
            {
                t("expected_covariate"): [titles.get(c, c) for c in frame["covariate"]],
                t("expected_events"): [f"{int(n):,}" for n in frame["events_per_level"]],
                t("expected_ratio_ci"): [_ratio_interval(h) for h in frame["half_width_log"]],
                t("expected_ratio_naive"): [_ratio_interval(h) for h in frame["naive_half_width_log"]],
            }
        )
        note = t("expected_ratio_help")
    elif "persons_per_group" in frame.columns:
        titles = group_titles([str(c) for c in frame["variable"].unique() if c != "cohort.age"])
        titles["cohort.age"] = t("cohort_col_age")
        shown = pd.DataFrame(
            {
                t("expected_variable"): [titles.get(c, c) for c in frame["variable"]],
                t("expected_persons"): [f"{int(n):,}" for n in frame["persons_per_group"]],
                t("expected_percent"): [f"± {fmt.number(h, 3)}" for h in frame["percent_half_width_at_50"]],
            }
        )
        note = t("expected_percent_help")
    else:
        shown = pd.DataFrame(
            {
                t("expected_moment"): frame.get("moment", pd.Series(dtype=str)).astype(str),
                t("expected_noise"): [f"± {fmt.number(h)}" for h in frame.get("noise_half_width", [])],
            }
        )
        note = t("expected_moment_help")
    with st.expander(t("expected_title"), expanded=True), st.container(key=key):
        st.caption(note)
        st.table(shown, hide_index=True)
