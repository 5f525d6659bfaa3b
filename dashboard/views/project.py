"""My project (analysts): the budget gauge and the past releases, each reopened at no cost."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import budgets, charts, tables
from dashboard import formatting as fmt
from dashboard.analysis_view import ANALYSIS_MEASURES, render_analysis_release
from dashboard.release_view import render_release
from dashboard.session import (
    API_ERRORS,
    api,
    call_api,
    forget_session_data,
    lang,
    public_catalog,
    require_role,
    session_cached,
    show_error,
    t,
)

__all__ = ["render"]

OPENED = "project_opened_release"


def _render_budget(summary: budgets.BudgetSummary) -> None:
    left, right = st.columns([1, 2])
    with left, st.container(key="project_gauge"):
        st.altair_chart(charts.budget_chart(summary, spent=t("spent"), remaining=t("remaining")))
    with right:
        c1, c2, c3 = st.columns(3)
        c1.metric(t("epsilon_total"), fmt.remaining(summary.epsilon_total))
        c2.metric(t("epsilon_spent"), fmt.number(summary.epsilon_spent))
        with c3, st.container(key="project_remaining"):
            st.metric(t("epsilon_remaining"), fmt.remaining(summary.epsilon_remaining))
        st.caption(t("budget_mode", mode=t(f"mode_{summary.mode}"), delta=fmt.delta(summary.delta_total)))
        if summary.mode == "zcdp" and summary.rho_total is not None:
            r1, r2, r3 = st.columns(3)
            r1.metric(t("rho_total"), fmt.remaining(summary.rho_total))
            r2.metric(t("rho_spent"), fmt.number(summary.rho_spent or 0))
            r3.metric(t("rho_remaining"), fmt.remaining(summary.rho_remaining or 0))
            st.caption(t("zcdp_note", delta=fmt.delta(summary.delta_total)))
        st.caption(t("spends_one") if summary.spends == 1 else t("spends", count=summary.spends))


def _open(project_id: str, release_id: str) -> None:
    release = call_api(lambda client: client.release(project_id, release_id))
    if release is not None:
        st.session_state[OPENED] = release


def render() -> None:
    """The My project page."""
    st.title(t("page_project"))
    who = require_role("analyst")
    if who is None:
        return
    project_id = str(who.get("project"))
    if st.button(t("refresh"), key="project_refresh", icon=":material/refresh:"):
        forget_session_data("budget", "releases", "project")
    try:
        with api() as client:
            project: dict[str, Any] = session_cached("project", lambda: client.project(project_id))
            budget: dict[str, Any] = session_cached("budget", lambda: client.budget(project_id))
            listing: dict[str, Any] = session_cached("releases", lambda: client.releases(project_id))
    except API_ERRORS as exc:
        show_error(exc)
        return
    st.subheader(f"{project.get('title', project_id)} ({project_id})")
    st.caption(
        t(
            "project_permit",
            purpose=t(f"purpose_{project.get('purpose')}"),
            registers=", ".join(project.get("registers") or []),
            expires=project.get("expires") or "-",
        )
    )
    _render_budget(budgets.budget_summary(budget))

    st.subheader(t("past_releases"))
    releases = listing.get("releases") or []
    if not releases:
        st.info(t("no_releases"))
        return
    catalog = public_catalog()
    language = lang()
    with st.container(key="project_releases"):
        st.dataframe(
            tables.releases_table(releases, catalog, language, t),
            hide_index=True,
            width="stretch",
            height="content",
        )
    by_id = {str(r.get("release_id")): r for r in reversed(releases)}
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    picked = c1.selectbox(
        t("reopen_release"),
        list(by_id),
        key="project_release_pick",
        format_func=lambda rid: tables.describe_query(by_id[rid], catalog, language, t),
    )
    if c2.button(t("open"), key="project_release_open", icon=":material/open_in_new:") and picked:
        _open(project_id, str(picked))
    opened = st.session_state.get(OPENED)
    if opened and opened.get("project") in (None, project_id):
        st.caption(t("reopened_free"))
        if (opened.get("query") or {}).get("measure") in ANALYSIS_MEASURES:
            render_analysis_release(opened, opened.get("query"), key="project_result")
        else:
            render_release(opened, opened.get("query"), key="project_result")


if __name__ == "__main__":
    render()
