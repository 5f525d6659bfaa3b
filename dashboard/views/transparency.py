"""Transparency (public): every project, its purpose, registers and spend; the loss each register bears
and, in plain words, what its cap promises every person in it; the ledger's head hash, which anyone can later check with ``sundstat ledger verify --expected-head``."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import budgets, charts, tables
from dashboard import formatting as fmt
from dashboard.session import call_api, t

__all__ = ["CAP_LINE_FIELDS", "render"]


def render() -> None:
    """The Transparency page."""
    st.title(t("page_transparency"))
    st.write(t("transparency_intro"))
    report = call_api(lambda client: client.transparency(), anonymous=True)
    if report is None:
        return
    projects = budgets.transparency_projects_frame(report)
    registers = budgets.transparency_registers_frame(report)
    by_mode = tables.projects_tables(report, t)
    ledger = report.get("ledger") or {}
    pure = projects[projects["mode"] != "zcdp"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(t("projects"), len(projects))
    c2.metric(t("releases"), int(projects["releases"].fillna(0).sum()) if len(projects) else 0)
    # pure ε adds up; a zCDP project's ε is its ρ at its own δ and is not added to it
    c3.metric(t("epsilon_spent_pure"), fmt.number(pure["epsilon_spent"].fillna(0).sum() if len(pure) else 0))
    c4.metric(t("ledger_entries"), ledger.get("entries", 0))
    st.markdown(f"**{t('ledger_head')}**")
    with st.container(key="transparency_head"):
        st.code(ledger.get("head_hash") or "-", language=None, wrap_lines=True)
    st.caption(t("ledger_head_help", entries=ledger.get("entries", 0)))

    st.subheader(t("projects"))
    if len(projects):
        with st.container(key="transparency_projects"):
            for mode in ("pure", "zcdp"):
                if len(by_mode[mode]):
                    st.markdown(f"**{t(f'projects_{mode}')}**")
                    st.dataframe(by_mode[mode], hide_index=True, width="stretch", height="content")
        st.altair_chart(
            charts.transparency_budget_chart(projects, spent=t("spent"), total=t("budget")), width="stretch"
        )
        st.markdown(f"**{t('projects_by_purpose')}**")
        purposes = projects["purpose"].map(lambda p: t(f"purpose_{p}"))
        st.altair_chart(charts.purpose_chart(purposes), width="stretch")
    else:
        st.info(t("no_projects"))

    st.subheader(t("register_loss"))
    st.caption(t("register_loss_help"))
    if len(registers):
        st.altair_chart(charts.transparency_register_chart(registers, title=t("rho_spent")), width="stretch")
        with st.container(key="transparency_registers"):
            st.table(tables.register_loss_table(report, t), hide_index=True)
    st.subheader(t("population_promise"))
    st.write(t("population_promise_help"))
    with st.container(key="transparency_promise"):
        for row in report.get("registers", []):
            st.markdown(_cap_line(row))
    st.caption(t("generated_at", at=report.get("generated_at", "-")))


# Per cap unit: the placeholders of its ``cap_line_<unit>`` sentence and the report field each shows.
CAP_LINE_FIELDS = {
    "epsilon": {"cap": "cap_epsilon_requested", "spent": "epsilon_spent", "left": "epsilon_remaining"},
    "epsilon_delta": {
        "cap": "cap_epsilon_requested",
        "delta": "cap_delta_requested",
        "spent": "rho_spent",
        "rho": "cap_rho",
        "equivalent": "epsilon_equivalent_spent",
        "left": "rho_remaining",
    },
    "rho": {"rho": "cap_rho", "spent": "rho_spent", "left": "rho_remaining"},
}


def _cap_line(row: dict[str, Any]) -> str:
    """One register's cap in the unit it was set in, what is spent and what is left."""

    def num(key: str) -> str:
        value = row.get(key)
        if key.endswith("delta_requested"):
            return fmt.delta(value)
        return fmt.remaining(value) if key.endswith("remaining") else fmt.number(value)

    unit = str(row.get("cap_unit"))
    fields = CAP_LINE_FIELDS.get(unit)
    if fields is None:
        return t("cap_line_none", register=row["register"])
    return t(f"cap_line_{unit}", register=row["register"], **{name: num(key) for name, key in fields.items()})


if __name__ == "__main__":
    render()
