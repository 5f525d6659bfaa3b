"""Survival (analysts): Kaplan-Meier curves of a cohort with interval bands per group, the numbers at
risk under the chart, survival and cumulative incidence at horizons, and the median survival."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard.analysis_page import Loss, analysis_page, group_picker
from dashboard.analysis_view import render_survival_release
from dashboard.cohort_builder import BuiltCohort
from dashboard.cohort_draft import HORIZONS, TIME_UNITS, SurvivalDraft
from dashboard.session import labeller, t

__all__ = ["render"]


def _draft(project: Mapping[str, Any], built: BuiltCohort, loss: Loss) -> Mapping[str, Any]:
    group_by = group_picker("survival", 2)
    c1, c2, c3 = st.columns(3)
    unit = c1.selectbox(
        t("surv_unit"), TIME_UNITS, index=1, key="survival_unit", format_func=labeller("unit_")
    )
    width = c2.number_input(
        t("surv_width"), min_value=1, max_value=366, value=1, step=1, key="survival_width"
    )
    offered = [h for h in HORIZONS if h <= built.follow_up_years]
    horizons = c3.multiselect(
        t("surv_horizons"),
        offered,
        default=[h for h in (1, 5) if h in offered],
        key=f"survival_horizons_{built.follow_up_years}",
        format_func=lambda h: t("surv_years_one") if h == 1 else t("surv_years_n", years=h),
    )
    confidence, kind, value = loss
    draft = SurvivalDraft(
        project=str(project["id"]),
        cohort=built.cohort,
        follow_up_years=built.follow_up_years,
        group_by=tuple(group_by),
        unit=unit,
        width=int(width),
        horizons_years=tuple(int(h) for h in horizons),
        loss_kind=kind,
        loss=value,
        confidence=confidence,
    )
    return draft.to_query()


def render() -> None:
    """The Survival page."""
    analysis_page("survival", "page_survival", _draft, render_survival_release)


if __name__ == "__main__":
    render()
