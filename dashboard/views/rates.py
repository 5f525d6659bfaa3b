"""Rates (analysts): incidence rates per person-years in a cohort, by public groups, crude and directly
age-standardised side by side; events, person-years and both parts of each interval shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard.analysis_page import Loss, analysis_page, group_picker
from dashboard.analysis_view import render_rate_release
from dashboard.cohort_builder import BuiltCohort
from dashboard.cohort_draft import STANDARD_POPULATIONS, RateDraft
from dashboard.session import labeller, t

__all__ = ["render"]

_PER = (1000, 10_000, 100_000)


def _draft(project: Mapping[str, Any], built: BuiltCohort, loss: Loss) -> Mapping[str, Any]:
    group_by = group_picker("rates", 3)
    c1, c2 = st.columns(2)
    per = c1.selectbox(t("rate_per_label"), _PER, key="rates_per", format_func=lambda n: f"{n:,}")
    population = c2.selectbox(
        t("rate_standard"),
        ["none", *STANDARD_POPULATIONS],
        key="rates_standard",
        format_func=labeller("population_"),
        help=t("rate_standard_help"),
    )
    confidence, kind, value = loss
    draft = RateDraft(
        project=str(project["id"]),
        cohort=built.cohort,
        group_by=tuple(group_by),
        per_person_years=int(per),
        standard_population=None if population == "none" else str(population),
        loss_kind=kind,
        loss=value,
        confidence=confidence,
    )
    if draft.groups != draft.group_by:
        st.caption(t("rate_age_band_added"))
    return draft.to_query()


def render() -> None:
    """The Rates page."""
    analysis_page("rates", "page_rates", _draft, render_rate_release)


if __name__ == "__main__":
    render()
