"""The frame of the Rates and Survival pages: cohort builder, the page's own options, the privacy loss,
the free preview (cost and expected accuracy before anything is spent), Run, and the last release.

Both pages follow Explore's flow (``dashboard.spend_flow``): the preview is asked once per distinct
query, Run spends once per distinct query (an idempotency key kept in the session), and the release
stays on the page until the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import streamlit as st

from dashboard.analysis_view import group_titles
from dashboard.cohort_builder import COHORTS_CACHE, BuiltCohort, cohort_builder
from dashboard.cohort_draft import COHORT_GROUPS
from dashboard.query_draft import DraftError, LossKind
from dashboard.release_view import render_query_code
from dashboard.session import (
    analyst_project,
    forget_session_data,
    t,
)
from dashboard.spend_flow import kept_release, loss_inputs, preview, render_preview, run_button, spend

__all__ = ["Loss", "analysis_page", "group_picker", "page_frame"]

Loss = tuple[float, LossKind, float]
"""Confidence level, how the loss is stated, and its value."""

DraftQuery = Callable[[Mapping[str, Any], BuiltCohort, Loss], Mapping[str, Any]]


class RenderAnswer(Protocol):
    """Draws a release (or an accepted preview) with widget keys starting with ``key``."""

    def __call__(self, answer: Mapping[str, Any], /, *, key: str) -> None: ...


def group_picker(
    prefix: str, most: int, options: Sequence[str] = COHORT_GROUPS, label: str | None = None
) -> list[str]:
    """Up to ``most`` of the public group columns ``options`` (by default the cohort's), under ``label``
    (by default "Group by")."""
    titles = group_titles(options)
    return list(
        st.multiselect(
            label or t("group_by"),
            list(options),
            key=f"{prefix}_group_by",
            max_selections=most,
            select_all=False,
            format_func=lambda name: f"{name} — {titles[name]}",
            placeholder=t("group_by_placeholder"),
        )
    )


def analysis_page(
    prefix: str,
    title_key: str,
    draft_query: DraftQuery,
    render_result: RenderAnswer,
) -> None:
    """Draw a page: ``draft_query`` draws the page's options and returns the query (raising
    ``DraftError`` while incomplete); ``render_result(release, key=...)`` draws a release."""

    def build(catalog: Mapping[str, Any], project: Mapping[str, Any]) -> Mapping[str, Any]:
        built = cohort_builder(catalog, project, prefix)
        st.subheader(t("analysis_options"))
        return draft_query(project, built, loss_inputs(project, prefix))

    page_frame(prefix, title_key, build, render_result)


def page_frame(
    prefix: str,
    title_key: str,
    build: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]],
    render_result: RenderAnswer,
    *,
    render_expected: RenderAnswer | None = None,
) -> None:
    """The frame of an analysis page whose ``build(catalog, project)`` draws all of its options (the
    cohort builder among them, or not) and returns the query, raising ``DraftError`` while incomplete;
    ``render_result(release, key=...)`` draws a release and ``render_expected(preview, key=...)`` what an
    accepted preview expects of the estimates."""
    st.title(t(title_key))
    opened = analyst_project()
    if opened is None:
        return
    project_id, catalog, project = opened
    st.caption(t(f"analysis_intro_{prefix}"))
    query: Mapping[str, Any] | None
    try:
        query = build(catalog, project)
    except DraftError as exc:
        st.warning(t(exc.key, **exc.values))
        query = None
    release_at, query_at = f"{prefix}_release", f"{prefix}_release_query"
    if query is not None:
        request = dict(query)
        answer = preview(request, lambda client: client.preview(request))
        refused = render_preview(request, answer, key=f"{prefix}_preview")
        if render_expected is not None and answer[0] == "ok":
            render_expected(answer[1], key=f"{prefix}_expected")
        with st.expander(t("query_as_code")):
            render_query_code(request, key=f"{prefix}_draft_code")
        if run_button(f"{prefix}_run", refused):
            spend(
                request,
                lambda client, key: client.run(request, idempotency_key=key),
                keys_at=f"{prefix}_idempotency_keys",
                kept_at=(release_at, query_at),
            )
            forget_session_data(COHORTS_CACHE)  # a run may have stored a new name
    kept = kept_release(release_at, query_at, None if query is None else dict(query))
    if kept is not None:
        render_result(kept[0], key=f"{prefix}_result")
