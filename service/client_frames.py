"""pandas frames of analysis releases: rates, standardised rates, survival, prevalence, named cohorts.

Pure reshaping of a release's JSON (the Release additions of issue 15): nothing is recomputed, so a
frame shows exactly what the service released, and the raw release stays at hand (``.release``) for
rerunning the estimators on it. Works on a release just returned by :class:`service.client.Client`
and on one downloaded earlier (``Client.release(project, release_id)``).

>>> frames = rate_frames({"columns": ["cpr.sex", "events", "person_years", "rate"],
...                       "rows": [{"cpr.sex": "F", "events": 12, "person_years": 400.0, "rate": 30.0}],
...                       "query": {"per_person_years": 1000}})
>>> frames.table[["cpr.sex", "rate"]].to_dict("records")
[{'cpr.sex': 'F', 'rate': 30.0}]
>>> frames.standardised is None
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "PrevalenceFrames",
    "RateFrames",
    "SurvivalFrames",
    "cohort_frame",
    "frames_for",
    "prevalence_frames",
    "rate_frames",
    "survival_frames",
]

JSON = dict[str, Any]


def _frame(rows: Sequence[Mapping[str, Any]] | None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows (dicts) as a frame; with ``columns``, in that order (and with them even when empty)."""
    records = [dict(row) for row in rows or ()]
    if columns is None:
        return pd.DataFrame.from_records(records)
    return pd.DataFrame.from_records(records, columns=list(columns))


def _main_table(release: Mapping[str, Any]) -> pd.DataFrame:
    return _frame(release.get("rows"), release.get("columns"))


def _groups(release: Mapping[str, Any]) -> list[str]:
    """The release's group columns (the query's ``group_by``)."""
    query = release.get("query") or {}
    return [str(g) for g in query.get("group_by") or ()]


def _measure(release: Mapping[str, Any]) -> str | None:
    query = release.get("query") or {}
    measure = query.get("measure")
    return None if measure is None else str(measure)


@dataclass(frozen=True)
class RateFrames:
    """An incidence-rate release: ``table`` (per group: events, person_years, rate and its interval,
    the noise and sampling parts apart) and ``standardised`` (directly age-standardised beside crude
    rates, None unless asked for with ``standard_population``)."""

    release: JSON = field(repr=False)
    table: pd.DataFrame
    standardised: pd.DataFrame | None
    groups: list[str]


def rate_frames(release: Mapping[str, Any]) -> RateFrames:
    """The frames of a ``rate`` release."""
    table = _main_table(release)
    standardised = None
    block = release.get("standardised")
    if block:
        standardised = _frame(block.get("rows"))
        standardised.attrs["population"] = block.get("population")
        standardised.attrs["per_person_years"] = block.get("per_person_years")
    per = (release.get("query") or {}).get("per_person_years")
    table.attrs["per_person_years"] = per
    return RateFrames(dict(release), table, standardised, _groups(release))


@dataclass(frozen=True)
class SurvivalFrames:
    """A survival release: ``table`` (the noisy private table: events and censored per exit bin),
    ``curve`` (Kaplan-Meier per group: time, at_risk, events, survival, ci_low, ci_high), ``horizons``
    (survival and cumulative incidence at the named years) and ``median`` (median survival in years,
    NaN where the curve does not reach one half). ``unit`` is the unit of ``curve.time``."""

    release: JSON = field(repr=False)
    table: pd.DataFrame
    curve: pd.DataFrame
    horizons: pd.DataFrame
    median: pd.DataFrame
    unit: str | None
    groups: list[str]


def survival_frames(release: Mapping[str, Any]) -> SurvivalFrames:
    """The frames of a ``survival`` release."""
    groups = _groups(release)
    block = release.get("survival") or {}
    curve_columns = [*groups, "time", "at_risk", "events", "survival", "ci_low", "ci_high"]
    horizon_columns = [
        *groups,
        "years",
        "survival",
        "ci_low",
        "ci_high",
        "cumulative_incidence",
        "ci_ci_low",
        "ci_ci_high",
    ]
    curve = _frame(block.get("rows"), _with_extra(block.get("rows"), curve_columns))
    horizons = _frame(release.get("horizons"), _with_extra(release.get("horizons"), horizon_columns))
    median = _frame(
        release.get("median"),
        _with_extra(release.get("median"), [*groups, "median_years", "ci_low", "ci_high"]),
    )
    if "median_years" in median:  # null (not reached) as NaN, so the column stays numeric
        median["median_years"] = pd.to_numeric(median["median_years"], errors="coerce")
    unit = block.get("unit")
    curve.attrs["unit"] = unit
    return SurvivalFrames(dict(release), _main_table(release), curve, horizons, median, unit, groups)


def _with_extra(rows: Sequence[Mapping[str, Any]] | None, columns: list[str]) -> list[str]:
    """``columns`` first, then any further fields the rows carry (fields are only ever added)."""
    extra = [key for row in rows or () for key in row if key not in columns]
    return columns + list(dict.fromkeys(extra))


@dataclass(frozen=True)
class PrevalenceFrames:
    """A prevalence release: ``table`` (per group: cases, persons, proportion and its interval, the
    noise and sampling parts apart)."""

    release: JSON = field(repr=False)
    table: pd.DataFrame
    groups: list[str]


def prevalence_frames(release: Mapping[str, Any]) -> PrevalenceFrames:
    """The frames of a ``prevalence`` release."""
    return PrevalenceFrames(dict(release), _main_table(release), _groups(release))


def cohort_frame(listing: Mapping[str, Any]) -> pd.DataFrame:
    """``GET /v1/projects/{id}/cohorts`` as a frame: one row per named cohort, its definition whole in
    ``definition`` and its main parts in columns of their own."""
    rows = []
    for cohort in listing.get("cohorts") or ():
        definition = cohort.get("definition") or {}
        index = definition.get("index") or {}
        outcome = definition.get("outcome") or {}
        rows.append(
            {
                "name": cohort.get("name"),
                "index_register": index.get("register"),
                "entry": index.get("entry"),
                "outcome_register": outcome.get("register") or "death",
                "follow_up_years": definition.get("follow_up_years"),
                "follow_up_days": definition.get("follow_up_days"),
                "created_at": cohort.get("created_at"),
                "created_by": cohort.get("created_by"),
                "definition": definition,
            }
        )
    columns = [
        "name",
        "index_register",
        "entry",
        "outcome_register",
        "follow_up_years",
        "follow_up_days",
        "created_at",
        "created_by",
        "definition",
    ]
    return _frame(rows, columns)


def frames_for(release: Mapping[str, Any]) -> RateFrames | SurvivalFrames | PrevalenceFrames:
    """The frames of any analysis release, chosen by its query's measure."""
    measure = _measure(release)
    if measure == "rate":
        return rate_frames(release)
    if measure == "survival":
        return survival_frames(release)
    if measure == "prevalence":
        return prevalence_frames(release)
    raise ValueError(
        f"A release of measure {measure!r} has no analysis frames; use rate_frames, survival_frames or "
        "prevalence_frames on a rate, survival or prevalence release."
    )
