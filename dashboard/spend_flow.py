"""The flow every analysis page shares: loss inputs, a free preview asked once per distinct query, the
preview shown (cost, expected accuracy, why the service would refuse), Run, and spending exactly once.

A preview is asked once per distinct request in the session (previews touch no data and spend
nothing). Budget is spent only by a Run button, with an idempotency key made once per distinct request
and kept in the session, so a rerun, a double click or a retry never spends twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
import streamlit as st

from dashboard import formatting as fmt
from dashboard import query_draft, results
from dashboard.session import API_ERRORS, api, forget_session_data, labeller, show_error, t
from service.client import ApiError, Client

__all__ = [
    "PREVIEWS",
    "kept_release",
    "loss_inputs",
    "preview",
    "render_preview",
    "run_button",
    "show_api_error",
    "spend",
]

PREVIEWS = "explore_previews"
_MAX_PREVIEWS = 32
_DEFAULT_LOSS = {"epsilon": 0.1, "rho": 0.005, "target_ci": 10.0}


def loss_inputs(project: Mapping[str, Any], prefix: str) -> tuple[float, query_draft.LossKind, float]:
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


def preview(
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


def show_api_error(exc: ApiError | httpx.TransportError, sql: str | None = None) -> None:
    """The service's sentence; for an SQL error with a position, also the line with a caret under it."""
    show_error(exc)
    position = query_draft.error_position(exc.body) if sql is not None and isinstance(exc, ApiError) else None
    if position is not None and sql is not None:
        excerpt = query_draft.sql_excerpt(sql, *position)
        if excerpt:
            with st.container(key="explore_sql_error"):
                st.caption(t("sql_error_at", line=position[0], column=position[1]))
                st.code(excerpt, language=None)


def render_preview(
    query: Mapping[str, Any], answer: tuple[str, Any], *, key: str = "explore_preview", sql: str | None = None
) -> str | None:
    """Show the cost and expected accuracy, or why the service refuses the query; return that reason
    (None when Run may spend: the preview accepted it, or the service could not be asked just now)."""
    status, body = answer
    with st.container(border=True, key=key):
        st.markdown(f"**{t('preview_title')}**")
        if status == "error":
            show_api_error(body, sql)
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


def run_button(key: str, refused: str | None) -> bool:
    """Run, disabled (and saying why) while the preview says the service would refuse the query."""
    if refused:
        st.caption(t("run_refused", reason=refused))
    return st.button(
        t("run"), key=key, type="primary", icon=":material/play_arrow:", disabled=bool(refused), help=refused
    )


def spend(
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
        show_api_error(exc, sql)
        return
    finally:
        forget_session_data("budget", "releases")
        st.session_state[PREVIEWS] = {}  # the remaining budget they show has changed
    st.session_state[kept_at[0]] = release
    st.session_state[kept_at[1]] = request


def kept_release(release_at: str, request_at: str, drafted: Any) -> tuple[Any, Any] | None:
    """The release ``spend`` kept in the session with the request that made it, under a result heading
    (noting when the request ``drafted`` now differs from it); None when there is none."""
    release = st.session_state.get(release_at)
    if not release:
        return None
    st.divider()
    st.subheader(t("result"))
    request = st.session_state.get(request_at)
    if drafted is not None and request != drafted:
        st.caption(t("result_of_earlier_query"))
    return release, request
