"""The view of an analysis release: rates (table and chart with intervals, standardised beside crude)
and survival (Kaplan-Meier curves with bands, numbers at risk under the chart, horizons, median).

Frames come from the Python client (``service.client_frames``); every figure is the service's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import analysis_tables, catalog_lookup, charts, tables
from dashboard import formatting as fmt
from dashboard.release_view import render_privacy_facts, render_query_code
from dashboard.session import lang, public_catalog, t
from service.client_frames import RateFrames, SurvivalFrames, frames_for, rate_frames, survival_frames

__all__ = [
    "ANALYSIS_MEASURES",
    "group_titles",
    "render_analysis_release",
    "render_rate_release",
    "render_survival_release",
]

ANALYSIS_MEASURES = ("rate", "survival", "prevalence")
_COHORT_COLUMNS = ("age_band", "age_band_5", "period", "event")


def group_titles(groups: Sequence[str]) -> dict[str, str]:
    """Titles of group columns in the page's language: the catalog's, and for the cohort's own columns
    (which the catalog does not list) the page's."""
    columns = catalog_lookup.column_index(public_catalog())
    language = lang()
    titles = {}
    for group in groups:
        register, _, name = group.partition(".")
        if register == "cohort" and name in _COHORT_COLUMNS:
            titles[group] = t(f"cohort_col_{name}")
        elif register == "cohort":  # an exposure: its own name
            titles[group] = name
        else:
            titles[group] = fmt.column_title(columns, group, language)
    return titles


def _labels_and_titles(groups: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Labels of group codes and titles of group columns, in the page's language."""
    catalog = public_catalog()
    language = lang()
    labels = {g: tables.value_labels(catalog, g, language) for g in groups}
    return labels, group_titles(groups)


def _is_ordered(group: str) -> bool:
    """Whether a group's categories have an order (age bands, calendar periods): a sequential scheme."""
    return group.startswith(("cohort.age_band", "cohort.period")) or tables.is_ordered_column(
        public_catalog(), group
    )


def _table(frame: pd.DataFrame, key: str) -> None:
    with st.container(key=key):
        st.table(frame, hide_index=True)


def _level(release: Mapping[str, Any]) -> str:
    confidence = release.get("confidence")
    return fmt.number(100 * float(confidence), 3) if isinstance(confidence, int | float) else "95"


def render_rate_release(release: Mapping[str, Any], *, key: str) -> None:
    """Rates per group with their intervals (chart and table), and standardised beside crude rates."""
    render_privacy_facts(release, key)
    frames = rate_frames(release)
    groups = frames.groups
    labels, titles = _labels_and_titles(groups)
    per = frames.table.attrs.get("per_person_years") or 1000
    value_title = t("rate_per", per=fmt.number(per))
    ci_title = t("ci_column", level=_level(release))
    st.markdown(f"**{t('rate_crude_title')}**")
    chart = charts.release_chart(
        frames.table.assign(value=frames.table["rate"]),
        groups,
        value_title=value_title,
        total_label=t("total"),
        labels=labels,
        titles=titles,
        ordered_colour=len(groups) > 1 and _is_ordered(groups[1]),
        ci_title=ci_title,
    )
    with st.container(key=f"{key}_chart"):
        st.altair_chart(chart, width="stretch")
    st.caption(t("rate_table_help", level=_level(release)))
    _table(analysis_tables.rate_table(frames.table, groups, labels, titles, t), f"{key}_table")
    if frames.standardised is not None:
        st.markdown(
            f"**{t('rate_standardised_title', population=t('population_' + str(frames.standardised.attrs.get('population'))))}**"
        )
        strata = [g for g in groups if g in frames.standardised.columns]
        side_by_side = _standardised_long(frames.standardised, strata)
        chart = charts.release_chart(
            side_by_side,
            [*strata, "kind"],
            value_title=value_title,
            total_label=t("total"),
            labels={**labels, "kind": {"standardised": t("rate_standardised"), "crude": t("rate_crude")}},
            titles={**titles, "kind": t("rate_kind")},
            ci_title=ci_title,
        )
        with st.container(key=f"{key}_standardised_chart"):
            st.altair_chart(chart, width="stretch")
        _table(
            analysis_tables.standardised_table(frames.standardised, strata, labels, titles, t),
            f"{key}_standardised",
        )


def _standardised_long(frame: pd.DataFrame, strata: Sequence[str]) -> pd.DataFrame:
    """Standardised and crude rates as rows of one frame (``kind``), for one chart side by side."""
    parts = []
    for kind, prefix in (("standardised", ""), ("crude", "crude_")):
        part = frame[list(strata)].copy()
        part["kind"] = kind
        part["value"] = frame[f"{prefix}rate"]
        part["ci_low"] = frame[f"{prefix}ci_low"]
        part["ci_high"] = frame[f"{prefix}ci_high"]
        part["suppressed"] = False
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _at_risk_times(curve: pd.DataFrame, unit: str | None) -> list[float]:
    """Where the numbers at risk are shown: at most about ten even steps over the curve's time span."""
    if curve.empty:
        return []
    end = float(curve["time"].max())
    step = {"days": 30.0, "months": 6.0, "years": 1.0}.get(str(unit), 1.0)
    while end / step > 10:
        step *= 2
    count = int(end // step) + 1
    return [i * step for i in range(count)]


def render_survival_release(release: Mapping[str, Any], *, key: str) -> None:
    """Kaplan-Meier curves with interval bands, numbers at risk under them, horizons and the median."""
    render_privacy_facts(release, key)
    frames = survival_frames(release)
    groups = frames.groups
    labels, titles = _labels_and_titles(groups)
    curve = frames.curve
    unit = frames.unit or "years"
    time_title = t("surv_time", unit=t(f"unit_{unit}"))
    group = (
        pd.Series(
            [
                analysis_tables.group_label(row, groups, labels, t("total"))
                for row in curve.to_dict("records")
            ],
            index=curve.index,
        )
        if groups
        else None
    )
    chart = charts.survival_chart(
        curve,
        group=group,
        time_title=time_title,
        survival_title=t("surv_survival"),
        group_title=", ".join(titles[g] for g in groups) or t("total"),
        band_title=t("ci_column", level=_level(release)),
    )
    with st.container(key=f"{key}_chart"):
        st.altair_chart(chart, width="stretch")
    st.caption(t("surv_at_risk"))
    _table(
        analysis_tables.at_risk_table(
            curve, groups, _at_risk_times(curve, unit), t, labels=labels, time_title=time_title
        ),
        f"{key}_at_risk",
    )
    st.markdown(f"**{t('surv_horizons_title')}**")
    _table(analysis_tables.horizons_table(frames.horizons, groups, labels, titles, t), f"{key}_horizons")
    st.markdown(f"**{t('surv_median_title')}**")
    _table(analysis_tables.median_table(frames.median, groups, labels, titles, t), f"{key}_median")


def render_analysis_release(release: Mapping[str, Any], query: Mapping[str, Any] | None, *, key: str) -> None:
    """Any analysis release, by its measure, and the query as code."""
    frames = frames_for(release)
    if isinstance(frames, RateFrames):
        render_rate_release(release, key=key)
    elif isinstance(frames, SurvivalFrames):
        render_survival_release(release, key=key)
    else:
        render_privacy_facts(release, key)
        _table(frames.table, f"{key}_table")
    if query:
        with st.expander(t("same_query_as_code")):
            render_query_code(query, key=f"{key}_code")
