"""Apply (public): the application form; a signed-in applicant inside the policy gets the token at once.

An applicant token (from "Sign in with your institution", i.e. ``/v1/auth/login``, or from an
administrator) pasted into the form is sent with the application; without one the application is
anonymous and waits for an administrator, like any application outside the policy or the quotas. The
page keeps the application id and its status key in the session and polls ``GET /v1/applications/{id}``
with the key.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import streamlit as st

from dashboard import budgets, catalog_lookup
from dashboard.session import (
    API_ERRORS,
    api,
    api_url,
    call_api,
    labeller,
    lang,
    public_catalog,
    show_error,
    sign_in,
    t,
)

__all__ = ["render"]

LAST = "apply_last"
CHECKED = "checked_at"
_POLL_SECONDS = 10


def _merge(update: dict[str, Any]) -> None:
    """Keep the latest status, and the token and status key once seen (the token is shown once)."""
    previous: dict[str, Any] = st.session_state.get(LAST) or {}
    merged = {**previous, **{k: v for k, v in update.items() if v is not None}, CHECKED: time.monotonic()}
    st.session_state[LAST] = merged


def _render_policy(policy: dict[str, Any]) -> None:
    with st.expander(t("policy_title"), expanded=False):
        st.write(
            t(
                "policy_text",
                epsilon=policy.get("max_epsilon"),
                delta=policy.get("max_delta"),
                days=policy.get("max_duration_days"),
                registers=", ".join(policy.get("allowed_registers") or []),
                purposes=", ".join(t(f"purpose_{p}") for p in policy.get("allowed_purposes") or []),
            )
        )


def _form(policy: dict[str, Any], registers: dict[str, str]) -> dict[str, Any] | None:
    purposes = list(policy.get("purposes") or policy.get("allowed_purposes") or ["research"])
    with st.form("apply_form"):
        title = st.text_input(t("app_title"), key="apply_title")
        c1, c2 = st.columns(2)
        purpose = c1.selectbox(
            t("app_purpose"), purposes, key="apply_purpose", format_func=labeller("purpose_")
        )
        institution = c2.text_input(t("app_institution"), key="apply_institution")
        summary = st.text_area(t("app_summary"), key="apply_summary", help=t("app_summary_help"))
        chosen = st.multiselect(
            t("app_registers"),
            list(registers),
            key="apply_registers",
            default=["cpr"] if "cpr" in registers else None,
            format_func=lambda r: f"{r} — {registers[r]}",
            select_all=False,
        )
        c3, c4, c5 = st.columns(3)
        epsilon = c3.number_input(
            t("app_epsilon"), min_value=0.01, max_value=100.0, value=1.0, step=0.1, key="apply_epsilon"
        )
        delta = c4.number_input(
            t("app_delta"),
            min_value=0.0,
            max_value=0.0009,
            value=0.0,
            step=1e-7,
            format="%.1e",
            key="apply_delta",
        )
        days = c5.number_input(
            t("app_duration"), min_value=1, max_value=3650, value=365, step=30, key="apply_duration"
        )
        c6, c7 = st.columns(2)
        name = c6.text_input(t("app_name"), key="apply_name")
        email = c7.text_input(t("app_email"), key="apply_email")
        st.text_input(
            t("app_applicant_token"),
            key="apply_applicant_token",
            type="password",
            help=t("app_applicant_token_help"),
        )
        submitted = st.form_submit_button(t("app_submit"), type="primary", key="apply_submit")
    if not submitted:
        return None
    missing = [
        t(label)
        for label, value in (
            ("app_title", title),
            ("app_institution", institution),
            ("app_summary", summary),
            ("app_name", name),
            ("app_email", email),
        )
        if not str(value).strip()
    ]
    if not chosen:
        missing.append(t("app_registers"))
    if missing:
        st.warning(t("app_missing", fields=", ".join(missing)))
        return None
    return budgets.application_body(
        title=title,
        purpose=str(purpose),
        institution=institution,
        summary=summary,
        registers=chosen,
        epsilon=float(epsilon),
        delta=float(delta),
        duration_days=int(days),
        name=name,
        email=email,
    )


def _poll() -> None:
    last = st.session_state.get(LAST) or {}
    if not last.get("id"):
        return
    status = call_api(
        lambda client: client.application_status(last["id"], last.get("status_key")), anonymous=True
    )
    if status is not None:
        _merge(status)


def _sign_in_with(new_token: str) -> None:
    sign_in(new_token)


def _render_status() -> None:
    last = st.session_state.get(LAST)
    if not last or not last.get("status"):
        return
    status = last.get("status")
    with st.container(border=True, key="apply_status"):
        st.markdown(f"**{t('app_status_title', id=last.get('id'))}**: {t('status_' + str(status))}")
        if status == "approved":
            st.success(
                t("app_approved", project=last.get("project"), epsilon=last.get("granted_epsilon")),
                icon=":material/check_circle:",
            )
            if last.get("token"):
                st.write(t("app_token_once"))
                with st.container(key="apply_token"):
                    st.code(last["token"], language=None)
                st.button(
                    t("app_use_token"), key="apply_signin", on_click=_sign_in_with, args=(last["token"],)
                )
        elif status == "rejected":
            st.error(t("app_rejected", reason=last.get("reason") or "-"))
        else:
            st.info(t("app_pending"), icon=":material/hourglass_top:")
            for reason in last.get("policy_reasons") or []:
                st.caption(f"- {reason}")
            st.write(t("app_keep_key"))
            st.code(
                f"{t('app_id')}: {last.get('id')}\n{t('app_status_key')}: {last.get('status_key')}",
                language=None,
            )
            st.button(t("app_check_status"), key="apply_check", on_click=_poll, icon=":material/refresh:")


@st.fragment(run_every=dt.timedelta(seconds=_POLL_SECONDS))
def _auto_poll() -> None:
    """While an application is pending, ask for its status every few seconds."""
    last = st.session_state.get(LAST) or {}
    if last.get("status") == "pending" and time.monotonic() - last.get(CHECKED, 0.0) >= _POLL_SECONDS:
        before = last.get("status")
        _poll()
        if (st.session_state.get(LAST) or {}).get("status") != before:
            st.rerun()


def _render_lookup() -> None:
    with st.expander(t("app_lookup")), st.form("apply_lookup_form"):
        app_id = st.text_input(t("app_id"), key="apply_lookup_id")
        key = st.text_input(t("app_status_key"), key="apply_lookup_key", type="password")
        if st.form_submit_button(t("app_check_status"), key="apply_lookup_submit") and app_id.strip():
            st.session_state[LAST] = {"id": app_id.strip(), "status_key": key.strip()}
            _poll()
            if (st.session_state.get(LAST) or {}).get("status"):
                st.rerun()  # show the status above


def render() -> None:
    """The Apply page."""
    st.title(t("page_apply"))
    st.write(t("apply_intro"))
    try:
        catalog = public_catalog()
        with api(anonymous=True) as client:
            policy = client.policy()
    except API_ERRORS as exc:
        show_error(exc)
        return
    _render_policy(policy)
    st.link_button(t("app_sign_in_link"), f"{api_url()}/v1/auth/login", icon=":material/login:")
    registers = {
        r["name"]: catalog_lookup.localized(r.get("title"), lang()) for r in catalog.get("registers", [])
    }
    body = _form(policy, registers)
    if body is not None:
        try:
            applicant_token = str(st.session_state.get("apply_applicant_token") or "").strip() or None
            with api(anonymous=True) as client:
                submitted = client.apply(body, applicant_token=applicant_token)
                st.session_state[LAST] = {**submitted, CHECKED: time.monotonic()}
        except API_ERRORS as exc:
            show_error(exc)
    _render_status()
    _auto_poll()
    _render_lookup()


if __name__ == "__main__":
    render()
