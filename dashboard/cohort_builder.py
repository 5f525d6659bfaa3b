"""The cohort builder of the Rates and Survival pages: reuse a cohort the project has named, or define
one (index event in an entry window, an optional exclusion, the outcome, the follow-up maximum, a name).

Widget keys start with the page's prefix, so each page keeps its own cohort. Filters are the Explore
page's condition rows (``dashboard.condition_widgets``) restricted to the event's register. The named
cohorts come from ``GET /v1/projects/{id}/cohorts`` (fetched once per session, again after a run).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import catalog_lookup
from dashboard.cohort_draft import (
    MAX_FOLLOW_UP_YEARS,
    Cohort,
    CohortDraft,
    EventDraft,
    ExposureDraft,
    StoredCohort,
)
from dashboard.condition_widgets import condition_list, date_input
from dashboard.query_draft import DraftError
from dashboard.session import call_api, labeller, lang, session_cached, t

__all__ = ["COHORTS_CACHE", "BuiltCohort", "cohort_builder"]

COHORTS_CACHE = "cohorts"
"""The session-cache name of the project's named cohorts (forgotten after every run)."""


@dataclass(frozen=True)
class BuiltCohort:
    """The cohort as the query sends it, its follow-up maximum in years, and its exposures' names."""

    cohort: Cohort
    follow_up_years: int
    exposures: tuple[str, ...] = ()


def _date_columns(catalog: Mapping[str, Any], register: str) -> list[str]:
    """The register's date columns (unqualified), in catalog order."""
    columns = catalog_lookup.column_index(catalog)
    return [
        name.partition(".")[2]
        for name, column in columns.items()
        if column["register"] == register and catalog_lookup.column_kind(column) == "date"
    ]


def _event(
    catalog: Mapping[str, Any], registers: list[str], prefix: str, *, default: str = "lpr"
) -> EventDraft:
    """Register, date column and filters of one kind of event (index, exclusion or outcome)."""
    dated = [r for r in registers if _date_columns(catalog, r)]
    if not dated:
        raise DraftError("error_no_dated_register")
    titles = {
        r["name"]: catalog_lookup.localized(r.get("title"), lang()) for r in catalog.get("registers", [])
    }
    c1, c2 = st.columns(2)
    register = c1.selectbox(
        t("cohort_register"),
        dated,
        index=dated.index(default) if default in dated else 0,
        key=f"{prefix}_register",
        format_func=lambda r: f"{r} — {titles.get(r, '')}",
    )
    date = c2.selectbox(
        t("cohort_date_column"), _date_columns(catalog, register), key=f"{prefix}_date_{register}"
    )
    all_columns = catalog_lookup.column_index(catalog)
    columns = {
        n: c
        for n, c in all_columns.items()
        if c["register"] == register and catalog_lookup.column_kind(c) != "date"
    }
    where = condition_list(
        catalog,
        columns,
        prefix=f"{prefix}_cond_{register}",
        ids_key=f"{prefix}_condition_ids_{register}",
        add_key=f"{prefix}_add_condition_{register}",
    )
    return EventDraft(register, str(date), tuple(where))


def _stored(project: str) -> list[dict[str, Any]]:
    """The project's named cohorts (empty when they cannot be fetched just now: the error is shown)."""
    listing = call_api(lambda client: session_cached(COHORTS_CACHE, lambda: client.list_cohorts(project)))
    return [] if listing is None else list(listing.get("cohorts") or [])


def _reuse(stored: list[dict[str, Any]], prefix: str) -> BuiltCohort:
    by_name = {c["name"]: c for c in stored}
    name = st.selectbox(t("cohort_stored"), list(by_name), key=f"{prefix}_stored")
    definition = by_name[name]["definition"]
    index = definition.get("index") or {}
    outcome = definition.get("outcome") or {}
    st.caption(
        t(
            "cohort_stored_summary",
            register=index.get("register", ""),
            entry=" – ".join(index.get("entry") or []),
            outcome=outcome.get("register") or t("cohort_outcome_death"),
            years=definition.get("follow_up_years", ""),
        )
    )
    with st.expander(t("cohort_definition")):
        st.json(definition, expanded=True)
    exposures = tuple(str(e.get("name")) for e in definition.get("exposures") or () if e.get("name"))
    return BuiltCohort(StoredCohort(str(name)), int(definition.get("follow_up_years") or 1), exposures)


def _exposure(catalog: Mapping[str, Any], registers: list[str], prefix: str) -> ExposureDraft | None:
    """An optional exposure: a 0/1 column of the cohort (e.g. metformin before the index)."""
    if not st.checkbox(t("cohort_exposure_on"), key=f"{prefix}_exposure_on", help=t("cohort_exposure_help")):
        return None
    with st.container(border=True, key=f"{prefix}_exposure"):
        a, b = st.columns(2)
        name = a.text_input(t("cohort_exposure_name"), value="exposed", key=f"{prefix}_exposure_name")
        with b:
            days = _lookback_days(f"{prefix}_exposure_lookback", least=0)
        event = _event(catalog, registers, f"{prefix}_exposure", default="lmdb")
    return ExposureDraft(name.strip(), event, days)


def _lookback_days(key: str, *, least: int) -> int | None:
    """How many days before the index to look (None: any time before it)."""
    days = st.number_input(
        t("cohort_lookback"),
        min_value=least,
        value=None,
        step=1,
        key=key,
        placeholder=t("cohort_lookback_any"),
    )
    return None if days is None else int(days)


def _define(
    catalog: Mapping[str, Any], registers: list[str], prefix: str, *, with_exposure: bool = False
) -> BuiltCohort:
    with st.container(border=True, key=f"{prefix}_index"):
        st.markdown(f"**{t('cohort_index')}**")
        st.caption(t("cohort_index_help"))
        index = _event(catalog, registers, f"{prefix}_index")
        a, b = st.columns(2)
        with a:
            start = date_input(t("cohort_entry_from"), dt.date(2012, 1, 1), f"{prefix}_entry_from")
        with b:
            end = date_input(t("cohort_entry_to"), dt.date(2020, 12, 31), f"{prefix}_entry_to")
    exclude, lookback = None, None
    if st.checkbox(t("cohort_exclude_on"), key=f"{prefix}_exclude_on", help=t("cohort_exclude_help")):
        with st.container(border=True, key=f"{prefix}_exclude"):
            exclude = _event(catalog, registers, f"{prefix}_exclude")
            lookback = _lookback_days(f"{prefix}_lookback", least=1)
    exposure = _exposure(catalog, registers, prefix) if with_exposure else None
    outcome = None
    kind = st.radio(
        t("cohort_outcome"),
        ["death", "event"],
        key=f"{prefix}_outcome_kind",
        format_func=labeller("cohort_outcome_"),
        horizontal=True,
    )
    if kind == "event":
        with st.container(border=True, key=f"{prefix}_outcome"):
            outcome = _event(catalog, registers, f"{prefix}_outcome", default="dar")
    c1, c2, c3 = st.columns(3)
    years = int(
        c1.number_input(
            t("cohort_follow_up"),
            min_value=1,
            max_value=MAX_FOLLOW_UP_YEARS,
            value=5,
            step=1,
            key=f"{prefix}_follow_up",
        )
    )
    period = int(
        c2.number_input(
            t("cohort_period"), min_value=1, max_value=30, value=5, step=1, key=f"{prefix}_period"
        )
    )
    name = c3.text_input(t("cohort_name"), key=f"{prefix}_name", help=t("cohort_name_help")).strip() or None
    draft = CohortDraft(
        index,
        (start, end),
        follow_up_years=years,
        exclude=exclude,
        lookback_days=lookback,
        outcome=outcome,
        period_years=period,
        name=name,
        exposures=() if exposure is None else (exposure,),
    )
    return BuiltCohort(draft, years, tuple(e.name for e in draft.exposures))


def cohort_builder(
    catalog: Mapping[str, Any], project: Mapping[str, Any], prefix: str, *, with_exposure: bool = False
) -> BuiltCohort:
    """The cohort section of a page (with an optional exposure where the page uses one); raises
    ``DraftError`` while the cohort is incomplete."""
    st.subheader(t("cohort_title"))
    stored = _stored(str(project["id"]))
    modes = ["define", "stored"] if stored else ["define"]
    mode = st.radio(
        t("cohort_mode"),
        modes,
        key=f"{prefix}_cohort_mode",
        format_func=labeller("cohort_mode_"),
        horizontal=True,
    )
    if mode == "stored":
        return _reuse(stored, prefix)
    registers = list(project.get("registers") or [])
    return _define(catalog, registers, prefix, with_exposure=with_exposure)
