"""Administration (administrators): applications queue, projects and budgets, tokens, register caps,
and ledger verification. Every action is one call of the API; its answer or error is shown."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboard import tables
from dashboard.session import API_ERRORS, api, call_api, labeller, public_catalog, require_role, show_error, t
from service.client import Client

__all__ = ["render"]

ISSUED = "admin_issued_token"
VERIFIED = "admin_verify_result"
NOTICE = "admin_notice"


def _call(action: Callable[[Client], Any], done: str | None = None, **values: Any) -> Any:
    """Run one API call; on success remember the ``done`` notice for the next run, on failure show
    the error and return None."""
    result = call_api(action)
    if result is not None and done is not None:
        st.session_state[NOTICE] = t(done, **values)
    return result


def _saved_reason(prefix: str, chosen: Any) -> str | None:
    """A form's reason field and save button: the reason when saved with one and with ``chosen`` set,
    else None (with a warning when saved without a reason)."""
    reason = st.text_input(t("reason"), key=f"{prefix}_reason")
    if not (st.form_submit_button(t("save"), key=f"{prefix}_submit") and chosen):
        return None
    if not reason.strip():
        st.warning(t("reason_needed"))
        return None
    return reason


def _pending(app: dict[str, Any]) -> None:
    """One pending application with its approve/reject form."""
    app_id = str(app["id"])
    # Applicant-supplied text (anyone may apply) is shown as plain text, never as Markdown: no links or
    # images of an applicant's choosing on the administrator's screen. The label is the server's id.
    with st.expander(app_id, expanded=True):
        st.text(f"{app.get('title')} — {app.get('institution')}")
        st.text(app.get("summary", ""))
        applicant = app.get("applicant") or {}
        st.text(
            t(
                "app_details",
                purpose=t(f"purpose_{app.get('purpose')}"),
                registers=", ".join(app.get("registers") or []),
                epsilon=app.get("epsilon"),
                delta=app.get("delta"),
                days=app.get("duration_days"),
                applicant=f"{applicant.get('name', '')} <{applicant.get('email', '')}>",
            )
        )
        reasons = list(app.get("waiting_reasons") or [])  # why it was not approved automatically
        st.markdown(f"**{t('app_waiting_why')}**")
        for reason in reasons or [t("app_waiting_unknown")]:
            st.text(f"- {reason}")
        with st.form(f"admin_decide_{app_id}"):
            c1, c2, c3 = st.columns(3)
            epsilon = c1.number_input(
                t("grant_epsilon"),
                min_value=0.001,
                value=float(app.get("epsilon") or 1.0),
                key=f"admin_eps_{app_id}",
            )
            delta = c2.number_input(
                t("grant_delta"),
                min_value=0.0,
                value=float(app.get("delta") or 0.0),
                format="%.1e",
                key=f"admin_delta_{app_id}",
            )
            default_expiry = dt.date.today() + dt.timedelta(days=int(app.get("duration_days") or 365))
            expires = c3.date_input(t("grant_expires"), value=default_expiry, key=f"admin_expires_{app_id}")
            reason = st.text_input(t("decision_reason"), key=f"admin_reason_{app_id}")
            b1, b2 = st.columns(2)
            approve = b1.form_submit_button(t("approve"), type="primary", key=f"admin_approve_{app_id}")
            reject = b2.form_submit_button(t("reject"), key=f"admin_reject_{app_id}")
        if approve and _call(
            lambda c: c.decide(
                app_id, "approve", epsilon=epsilon, delta=delta, expires=expires, reason=reason or None
            ),
            "done_approved",
            id=app_id,
        ):
            st.rerun()
        if reject:
            if not reason.strip():
                st.warning(t("reason_needed"))
            elif _call(lambda c: c.decide(app_id, "reject", reason=reason), "done_rejected", id=app_id):
                st.rerun()


def _applications() -> None:
    try:
        with api() as client:
            pending = client.list_applications("pending")
            decided = [a for a in client.list_applications() if a.get("status") != "pending"]
    except API_ERRORS as exc:
        show_error(exc)
        return
    if not pending:
        st.info(t("no_pending"))
    for app in pending:
        _pending(app)
    if decided:
        st.markdown(f"**{t('decided_applications')}**")
        columns = ["id", "status", "title", "route", "project", "granted_epsilon", "decided_at", "reason"]
        st.dataframe(tables.admin_table(decided, columns, t), hide_index=True, width="stretch")


def _projects(projects: list[dict[str, Any]], registers: list[str], purposes: list[str]) -> None:
    rows = [
        {
            "id": p["id"],
            "title": p.get("title"),
            "purpose": t(f"purpose_{p.get('purpose')}"),
            "mode": t(f"mode_{p.get('mode')}"),
            "registers": ", ".join(p.get("registers") or []),
            "epsilon_total": (p.get("budget") or {}).get("epsilon_total"),
            "epsilon_spent": (p.get("budget") or {}).get("epsilon_spent"),
            "epsilon_remaining": (p.get("budget") or {}).get("epsilon_remaining"),
            "delta_total": (p.get("budget") or {}).get("delta_total"),
            "expires": p.get("expires"),
        }
        for p in projects
    ]
    with st.container(key="admin_projects_table"):
        columns = list(rows[0]) if rows else []
        st.dataframe(tables.admin_table(rows, columns, t), hide_index=True, width="stretch")
    ids = [p["id"] for p in projects]
    left, right = st.columns(2)
    with left, st.form("admin_budget_form"):
        st.markdown(f"**{t('set_budget')}**")
        project = st.selectbox(t("project"), ids, key="admin_budget_project")
        epsilon = st.number_input(t("budget_epsilon"), min_value=0.0, value=1.0, key="admin_budget_epsilon")
        delta = st.number_input(
            t("budget_delta"), min_value=0.0, value=0.0, format="%.1e", key="admin_budget_delta"
        )
        reason = _saved_reason("admin_budget", project)
        if reason is not None and _call(
            lambda c: c.set_budget(project, epsilon=epsilon, delta=delta, reason=reason),
            "done_budget",
            project=project,
        ):
            st.rerun()
    with right, st.form("admin_create_form"):
        st.markdown(f"**{t('create_project')}**")
        new_id = st.text_input(t("project_id"), key="admin_new_id")
        title = st.text_input(t("app_title"), key="admin_new_title")
        purpose = st.selectbox(
            t("app_purpose"), purposes, key="admin_new_purpose", format_func=labeller("purpose_")
        )
        chosen = st.multiselect(
            t("app_registers"), registers, key="admin_new_registers", default=["cpr"], select_all=False
        )
        c1, c2, c3 = st.columns(3)
        mode = c1.selectbox(t("mode"), ["pure", "zcdp"], key="admin_new_mode", format_func=labeller("mode_"))
        epsilon_new = c2.number_input(t("budget_epsilon"), min_value=0.0, value=1.0, key="admin_new_epsilon")
        delta_new = c3.number_input(
            t("budget_delta"), min_value=0.0, value=0.0, format="%.1e", key="admin_new_delta"
        )
        expires_new = st.date_input(
            t("grant_expires"), value=dt.date.today() + dt.timedelta(days=365), key="admin_new_expires"
        )
        if st.form_submit_button(t("create"), key="admin_new_submit"):
            if not new_id.strip() or not title.strip() or not chosen:
                st.warning(
                    t("app_missing", fields=f"{t('project_id')}, {t('app_title')}, {t('app_registers')}")
                )
            elif _call(
                lambda c: c.create_project(
                    new_id.strip(),
                    title=title.strip(),
                    purpose=str(purpose),
                    registers=list(chosen),
                    epsilon=epsilon_new,
                    delta=delta_new,
                    mode=str(mode),
                    expires=expires_new,
                ),
                "done_created",
                project=new_id.strip(),
            ):
                st.rerun()


def _tokens(projects: list[dict[str, Any]]) -> None:
    issued = st.session_state.get(ISSUED)
    if issued:
        st.success(t("token_issued", name=issued.get("name"), project=issued.get("project") or "-"))
        with st.container(key="admin_issued"):
            st.code(issued.get("token"), language=None)
        st.caption(t("token_once"))
    tokens = call_api(lambda client: client.list_tokens())
    if tokens is None:
        return
    columns = ["id", "prefix", "role", "project", "name", "created_at", "expires_at", "revoked_at", "active"]
    with st.container(key="admin_tokens_table"):
        st.dataframe(tables.admin_table(tokens, columns, t), hide_index=True, width="stretch")
    left, right = st.columns(2)
    with left, st.form("admin_token_form"):
        st.markdown(f"**{t('issue_token')}**")
        project = st.selectbox(t("project"), [p["id"] for p in projects], key="admin_token_project")
        name = st.text_input(t("token_name"), key="admin_token_name")
        ttl = st.number_input(t("token_ttl"), min_value=1, max_value=3650, value=365, key="admin_token_ttl")
        if st.form_submit_button(t("issue"), key="admin_token_submit") and project:
            if not name.strip():
                st.warning(t("app_missing", fields=t("token_name")))
            else:
                result = _call(
                    lambda c: c.create_token(project, name.strip(), ttl_days=int(ttl)),
                    "done_token",
                    project=project,
                )
                if result:
                    st.session_state[ISSUED] = result
                    st.rerun()
    with right, st.form("admin_revoke_form"):
        st.markdown(f"**{t('revoke_token')}**")
        active = [k for k in tokens if k.get("active")]
        token_id = st.selectbox(
            t("token"),
            [k["id"] for k in active],
            key="admin_revoke_id",
            index=None,  # nothing is revoked by accident: the administrator picks the token
            placeholder=t("revoke_pick"),
            format_func=lambda i: next(
                f"{i} ({k.get('name')}, {k.get('role')})" for k in active if k["id"] == i
            ),
        )
        submitted = st.form_submit_button(t("revoke"), key="admin_revoke_submit")
        if (
            submitted
            and token_id
            and _call(lambda c: c.revoke_token(str(token_id)), "done_revoked", id=token_id)
        ):
            st.rerun()


def _caps(registers: list[str]) -> None:
    report = call_api(lambda client: client.transparency(), anonymous=True)
    if report is None:
        return
    with st.container(key="admin_caps_table"):
        st.dataframe(tables.register_loss_table(report, t), hide_index=True, width="stretch")
    with st.form("admin_cap_form"):
        st.markdown(f"**{t('set_cap')}**")
        c1, c2, c3, c4 = st.columns(4)
        register = c1.selectbox(t("register"), registers, key="admin_cap_register")
        kind = c2.radio(t("cap_kind"), ["epsilon", "rho"], key="admin_cap_kind", horizontal=True)
        value = c3.number_input(t("cap_value"), min_value=0.0, value=50.0, key="admin_cap_value")
        delta = c4.number_input(
            t("budget_delta"), min_value=0.0, value=0.0, format="%.1e", key="admin_cap_delta"
        )
        reason = _saved_reason("admin_cap", register)
        amount = {"epsilon": value} if kind == "epsilon" else {"rho": value}
        if reason is not None and _call(
            lambda c: c.set_register_cap(str(register), reason=reason, delta=delta, **amount),
            "done_cap",
            register=register,
        ):
            st.rerun()


def _ledger() -> None:
    if st.button(t("verify_ledger"), key="admin_verify", icon=":material/verified:"):
        result = _call(lambda c: c.ledger_verify())
        if result is not None:
            st.session_state[VERIFIED] = result
    result = st.session_state.get(VERIFIED)
    if not result:
        st.caption(t("verify_help"))
        return
    with st.container(key="admin_verify_result"):
        if result.get("ok"):
            st.success(t("ledger_ok", entries=result.get("entries")), icon=":material/verified:")
        else:
            st.error(
                t("ledger_broken", index=result.get("first_bad_index"), reason=result.get("reason") or "-"),
                icon=":material/gpp_bad:",
            )
            for problem in result.get("problems") or []:
                st.caption(f"- {problem}")
        st.code(result.get("head_hash") or "-", language=None)


def render() -> None:
    """The Administration page."""
    st.title(t("page_admin"))
    if require_role("admin") is None:
        return
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        st.success(notice)
    try:
        registers = [r["name"] for r in public_catalog().get("registers", [])]
        with api() as client:
            projects = client.list_projects()
            purposes = list(client.policy().get("purposes") or [])
    except API_ERRORS as exc:
        show_error(exc)
        return
    tabs = st.tabs(
        [t("tab_applications"), t("tab_projects"), t("tab_tokens"), t("tab_caps"), t("tab_ledger")]
    )
    with tabs[0]:
        _applications()
    with tabs[1]:
        _projects(projects, registers, purposes)
    with tabs[2]:
        _tokens(projects)
    with tabs[3]:
        _caps(registers)
    with tabs[4]:
        _ledger()


if __name__ == "__main__":
    render()
