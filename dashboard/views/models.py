"""Models (analysts): a Poisson regression of a cohort's rates (rate ratios), a logistic regression of
its outcome within the follow-up (odds ratios), or a linear regression of a clamped numeric outcome
(coefficients), each fitted to one private table; a forest plot and the terms with the noise-aware
interval beside the naive one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from dashboard import catalog_lookup
from dashboard.analysis_page import group_picker, page_frame
from dashboard.analysis_view import group_titles
from dashboard.cohort_builder import cohort_builder
from dashboard.cohort_draft import COHORT_GROUPS
from dashboard.condition_widgets import number_input
from dashboard.model_draft import MODEL_KINDS, LinearOutcome, ModelDraft, NumericCovariate
from dashboard.model_view import render_expected_intervals, render_model_release
from dashboard.query_draft import DraftError
from dashboard.session import API_ERRORS, labeller, lang, query_options, t
from dashboard.spend_flow import loss_inputs
from dashboard.tables import value_labels

__all__ = ["render"]

_PREFIX = "models"
# Cohort columns whose keys are a catalog column's (age at index in the catalog's bands). A comment,
# not a docstring: Streamlit would draw a bare string of a page script on the page.
_KEYSET_OF = {"cohort.age_band": "cpr.age_band", "cohort.age_band_5": "cpr.age_band_5"}


def _covariate_limit(kind: str) -> int:
    """The most covariates the engine takes in this model (``GET /v1/query-options``)."""
    try:
        limits = query_options(kind, "cpr", [])["limits"]
    except API_ERRORS:
        raise DraftError("error_model_limits") from None
    return int(limits["max_group_columns"])


def _keys(catalog: Mapping[str, Any], covariate: str) -> list[str]:
    """The public keys of a covariate (empty when the page cannot know them: the first is then the
    reference, as the service's default)."""
    if covariate.startswith("cohort.") and covariate not in COHORT_GROUPS:
        return ["0", "1"]  # an exposure
    keyset = catalog_lookup.keyset_of(catalog, _KEYSET_OF.get(covariate, covariate)) or {}
    return [str(v) for v in keyset.get("values", [])]


def _shown(labels: Mapping[str, str]) -> Callable[[Any], str]:
    return lambda key: labels.get(str(key), str(key))


def _references(catalog: Mapping[str, Any], covariates: Sequence[str], language: str) -> dict[str, str]:
    """A reference level per covariate whose keys are known (default: the first key)."""
    chosen: dict[str, str] = {}
    known = [c for c in covariates if _keys(catalog, c)]
    if not known:
        return chosen
    titles = group_titles(known)
    with st.expander(t("model_reference")):
        st.caption(t("model_reference_help"))
        columns = st.columns(len(known))
        for column, covariate in zip(columns, known, strict=True):
            keys = _keys(catalog, covariate)
            labels = value_labels(catalog, _KEYSET_OF.get(covariate, covariate), language)
            chosen[covariate] = str(
                column.selectbox(
                    titles[covariate],
                    keys,
                    key=f"{_PREFIX}_reference_{covariate}",
                    format_func=_shown(labels),
                )
            )
    return chosen


def _linear_outcome(catalog: Mapping[str, Any], project: Mapping[str, Any]) -> LinearOutcome:
    """Register, clamped numeric outcome and clamped numeric covariates of a linear model."""
    columns = catalog_lookup.column_index(catalog)
    registers = [r for r in project.get("registers") or () if catalog_lookup.measure_columns(catalog, r)]
    if not registers:
        raise DraftError("error_model_outcome")
    c1, c2 = st.columns(2)
    register = c1.selectbox(t("grain_register"), registers, key=f"{_PREFIX}_register")
    numeric = catalog_lookup.measure_columns(catalog, register)
    outcome = c2.selectbox(
        t("model_outcome"), numeric, key=f"{_PREFIX}_outcome_{register}", help=t("model_outcome_help")
    )
    declared = columns[outcome].get("bounds") or {}
    a, b = st.columns(2)
    with a:
        lo = number_input(
            t("lower_bound"), f"{_PREFIX}_lo_{outcome}", columns[outcome], declared.get("lo", 0)
        )
    with b:
        hi = number_input(
            t("upper_bound"), f"{_PREFIX}_hi_{outcome}", columns[outcome], declared.get("hi", 1)
        )
    others = [
        c for c in dict.fromkeys([*numeric, *catalog_lookup.measure_columns(catalog, "cpr")]) if c != outcome
    ]
    picked = st.multiselect(
        t("model_numeric_covariates"),
        others,
        key=f"{_PREFIX}_numeric_{register}",
        select_all=False,
        help=t("model_numeric_covariates_help"),
    )
    covariates = []
    for column in picked:
        bounds = columns[column].get("bounds") or {}
        covariates.append(NumericCovariate(column, (float(bounds.get("lo", 0)), float(bounds.get("hi", 1)))))
    return LinearOutcome(str(register), str(outcome), (float(lo), float(hi)), tuple(covariates))


def _build(catalog: Mapping[str, Any], project: Mapping[str, Any]) -> Mapping[str, Any]:
    kind = st.radio(
        t("model_kind"),
        MODEL_KINDS,
        key=f"{_PREFIX}_kind",
        format_func=labeller("model_kind_"),
        horizontal=True,
    )
    st.caption(t(f"model_kind_help_{kind}"))
    cohort, linear = None, None
    if kind == "linear_regression":
        st.subheader(t("model_outcome_title"))
        linear = _linear_outcome(catalog, project)
        options: Sequence[str] = [
            c for c in catalog_lookup.group_columns(catalog, ["cpr"]) if catalog_lookup.keyset_of(catalog, c)
        ]
    else:
        built = cohort_builder(catalog, project, _PREFIX, with_exposure=True)
        cohort = built.cohort
        options = [*COHORT_GROUPS, *(f"cohort.{e}" for e in built.exposures)]
    st.subheader(t("analysis_options"))
    most = _covariate_limit(kind)
    covariates = group_picker(f"{_PREFIX}_{kind}", most, options, label=t("model_covariates"))
    reference = _references(catalog, covariates, lang())
    confidence, loss_kind, loss = loss_inputs(project, _PREFIX)
    draft = ModelDraft(
        project=str(project["id"]),
        kind=kind,
        cohort=cohort,
        covariates=tuple(covariates),
        most=most,
        reference=reference,
        linear=linear,
        loss_kind=loss_kind,
        loss=loss,
        confidence=confidence,
    )
    return draft.to_query()


def render() -> None:
    """The Models page."""
    page_frame(
        _PREFIX, "page_models", _build, render_model_release, render_expected=render_expected_intervals
    )


if __name__ == "__main__":
    render()
