"""Table 1 (analysts): a cohort described by an exposure group, the counts and percentages of
categorical variables and the quartiles of age at index, with intervals, in one request with one
stated loss; downloadable as CSV and as an HTML table for a paper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard.analysis_page import page_frame
from dashboard.analysis_view import group_titles
from dashboard.cohort_builder import cohort_builder
from dashboard.cohort_draft import COHORT_GROUPS
from dashboard.model_draft import TABLE1_NUMERIC, Table1Draft, table1_variables
from dashboard.model_view import render_expected_intervals, render_table1_release
from dashboard.session import t
from dashboard.spend_flow import loss_inputs

__all__ = ["render"]

_PREFIX = "table1"
_DEFAULT_VARIABLES = ("cpr.sex", "cohort.age_band", "cohort.age")


def _titles(columns: tuple[str, ...]) -> dict[str, str]:
    titles = group_titles([c for c in columns if c not in TABLE1_NUMERIC])
    return {**titles, **{c: t("cohort_col_age") for c in TABLE1_NUMERIC}}


def _build(catalog: Mapping[str, Any], project: Mapping[str, Any]) -> Mapping[str, Any]:
    built = cohort_builder(catalog, project, _PREFIX, with_exposure=True)
    st.subheader(t("analysis_options"))
    exposures = tuple(f"cohort.{e}" for e in built.exposures)
    groups = ("none", *exposures, *COHORT_GROUPS, "cohort.event")
    variables = table1_variables(built.exposures)
    titles = _titles((*groups[1:], *variables))
    group = st.selectbox(
        t("table1_group_by"),
        groups,
        key=f"{_PREFIX}_group_by",
        format_func=lambda g: t("table1_no_group") if g == "none" else f"{g} — {titles[g]}",
        help=t("table1_group_by_help"),
    )
    chosen = st.multiselect(
        t("table1_variables"),
        [v for v in variables if v != group],
        default=[v for v in _DEFAULT_VARIABLES if v != group],
        key=f"{_PREFIX}_variables",
        select_all=False,
        format_func=lambda v: f"{v} — {titles[v]}",
        help=t("table1_variables_help"),
    )
    confidence, kind, loss = loss_inputs(project, _PREFIX)
    draft = Table1Draft(
        project=str(project["id"]),
        cohort=built.cohort,
        group_by=None if group == "none" else str(group),
        variables=tuple(chosen),
        loss_kind=kind,
        loss=loss,
        confidence=confidence,
    )
    return draft.to_query()


def render() -> None:
    """The Table 1 page."""
    page_frame(
        _PREFIX, "page_table1", _build, render_table1_release, render_expected=render_expected_intervals
    )


if __name__ == "__main__":
    render()
