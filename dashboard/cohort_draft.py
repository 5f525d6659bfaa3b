"""The cohort and the analysis being drafted on the Rates and Survival pages (pure; no Streamlit).

``CohortDraft`` is what the cohort builder holds (index event in an entry window, an optional
exclusion, the outcome, the follow-up maximum, a name); ``to_json()`` is the query JSON's ``cohort``.
``RateDraft`` and ``SurvivalDraft`` add the groups, the analysis options and the privacy loss and
become the request body of preview and run. The service checks everything again; these checks only
say early, in the page's language, what is missing.

>>> index = EventDraft("lpr", "admission_date", (Condition("lpr.icd10", "prefix", "I21"),))
>>> cohort = CohortDraft(index, (dt.date(2012, 1, 1), dt.date(2020, 12, 31)), follow_up_years=5)
>>> cohort.to_json()["index"]["entry"]
['2012-01-01', '2020-12-31']
>>> StoredCohort("first-mi").to_json()
'first-mi'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from dashboard.catalog_lookup import Json
from dashboard.query_draft import Condition, DraftError, LossKind, check_loss

__all__ = [
    "AGE_BAND_COLUMNS",
    "COHORT_GROUPS",
    "HORIZONS",
    "MAX_FOLLOW_UP_YEARS",
    "STANDARD_POPULATIONS",
    "TIME_UNITS",
    "check_groups",
    "CohortDraft",
    "EventDraft",
    "ExposureDraft",
    "RateDraft",
    "StoredCohort",
    "SurvivalDraft",
]

MAX_FOLLOW_UP_YEARS = 30
COHORT_GROUPS = ("cpr.sex", "cohort.age_band", "cohort.age_band_5", "cohort.period", "cpr.region")
"""The public group columns the pages offer for a cohort (the contract's ``cohort.*`` and ``cpr.*``)."""
AGE_BAND_COLUMNS = ("cohort.age_band", "cohort.age_band_5")
STANDARD_POPULATIONS = ("esp2013",)  # the engine ships ESP 2013 only (docs/analyses.md)
TimeUnit = Literal["days", "months", "years"]
TIME_UNITS: tuple[TimeUnit, ...] = ("days", "months", "years")
HORIZONS = (1, 2, 3, 5, 10, 15, 20)
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,59}$")  # as the query JSON allows
_EXPOSURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # a column name: cohort.<name>
_RESERVED = {"age_band", "age_band_5", "period", "event", "age"}  # the cohort's own columns
_MAX_BINS = 400
_DAYS = {"days": 1.0, "months": 365.25 / 12, "years": 365.25}


@dataclass(frozen=True)
class EventDraft:
    """Rows of one register matching filters, dated by one of its date columns."""

    register: str
    date: str
    where: tuple[Condition, ...] = ()

    def to_json(self) -> Json:
        """``{"register", "date", "where"}`` as the cohort JSON has it."""
        return {"register": self.register, "date": self.date, "where": [c.to_json() for c in self.where]}


@dataclass(frozen=True)
class ExposureDraft:
    """A 0/1 column ``cohort.<name>``: a matching row on or before the index date (within
    ``lookback_days`` if given, else at any time)."""

    name: str
    event: EventDraft
    lookback_days: int | None = None

    def __post_init__(self) -> None:
        if not _EXPOSURE_NAME.match(self.name) or self.name in _RESERVED:
            raise DraftError("error_exposure_name", name=self.name)
        if self.lookback_days is not None and self.lookback_days < 0:
            raise DraftError("error_cohort_lookback")

    def to_json(self) -> Json:
        """The exposure as the cohort JSON's ``exposures`` has it."""
        return {"name": self.name, **self.event.to_json(), "lookback_days": self.lookback_days}


@dataclass(frozen=True)
class StoredCohort:
    """A cohort stored earlier under a name in the project, reused by that name."""

    name: str

    def to_json(self) -> str:
        """The name alone: the service puts in the stored definition."""
        return self.name


@dataclass(frozen=True)
class CohortDraft:
    """A cohort defined on the page; ``exclude`` and ``outcome`` are optional (no outcome: death)."""

    index: EventDraft
    entry: tuple[dt.date, dt.date]
    follow_up_years: int = 5
    exclude: EventDraft | None = None
    lookback_days: int | None = None
    outcome: EventDraft | None = None
    period_years: int = 5
    name: str | None = None
    exposures: tuple[ExposureDraft, ...] = ()

    def __post_init__(self) -> None:
        if self.entry[0] > self.entry[1]:
            raise DraftError("error_cohort_entry", start=self.entry[0], end=self.entry[1])
        if not 1 <= self.follow_up_years <= MAX_FOLLOW_UP_YEARS:
            raise DraftError("error_cohort_follow_up", maximum=MAX_FOLLOW_UP_YEARS)
        if self.lookback_days is not None and self.lookback_days < 1:
            raise DraftError("error_cohort_lookback")
        if self.name is not None and not _NAME.match(self.name):
            raise DraftError("error_cohort_name", name=self.name)

    def to_json(self) -> Json:
        """The query JSON's ``cohort`` object."""
        index = self.index.to_json()
        index["entry"] = [self.entry[0].isoformat(), self.entry[1].isoformat()]
        cohort: Json = {
            "index": index,
            "follow_up_years": self.follow_up_years,
            "period_years": self.period_years,
        }
        if self.name:
            cohort = {"name": self.name, **cohort}
        if self.exclude is not None:
            cohort["exclude"] = [{**self.exclude.to_json(), "lookback_days": self.lookback_days}]
        if self.outcome is not None:
            cohort["outcome"] = self.outcome.to_json()
        if self.exposures:
            cohort["exposures"] = [e.to_json() for e in self.exposures]
        return cohort


Cohort = CohortDraft | StoredCohort


def check_groups(group_by: Sequence[str], most: int) -> None:
    """At most ``most`` group columns, none twice."""
    if len(group_by) > most:
        raise DraftError("error_group_by", most=most, count=len(group_by))
    if len(set(group_by)) != len(group_by):
        raise DraftError("error_group_by_repeat")


def _loss(kind: LossKind, loss: float, confidence: float) -> Json:
    return {kind: loss, "confidence": confidence}


@dataclass(frozen=True)
class RateDraft:
    """An incidence-rate query: events per ``per_person_years`` by groups, optionally standardised."""

    project: str
    cohort: Cohort
    group_by: tuple[str, ...] = ()
    per_person_years: int = 1000
    standard_population: str | None = None
    loss_kind: LossKind = "epsilon"
    loss: float = 0.5
    confidence: float = 0.95

    def __post_init__(self) -> None:
        check_groups(self.group_by, 3)
        check_loss(self.loss, self.loss_kind)
        if self.standard_population is not None and self.standard_population not in STANDARD_POPULATIONS:
            raise DraftError("error_standard_population", population=self.standard_population)

    @property
    def groups(self) -> tuple[str, ...]:
        """The group columns sent: with a standard population, an age band is added when none is chosen
        (standardisation weighs age-specific rates)."""
        if self.standard_population and not set(self.group_by) & set(AGE_BAND_COLUMNS):
            return (*self.group_by, "cohort.age_band")
        return self.group_by

    def to_query(self) -> Json:
        """The request body of preview and run."""
        query: Json = {
            "project": self.project,
            "measure": "rate",
            "cohort": self.cohort.to_json(),
            "group_by": list(self.groups),
            "per_person_years": self.per_person_years,
        }
        if self.standard_population:
            query["standard_population"] = self.standard_population
        return {**query, **_loss(self.loss_kind, self.loss, self.confidence)}


@dataclass(frozen=True)
class SurvivalDraft:
    """A Kaplan-Meier query: exit bins of ``width`` ``unit``, up to two groups, survival at horizons."""

    project: str
    cohort: Cohort
    follow_up_years: int
    group_by: tuple[str, ...] = ()
    unit: TimeUnit = "months"
    width: int = 1
    horizons_years: tuple[int, ...] = (1, 5)
    loss_kind: LossKind = "epsilon"
    loss: float = 0.5
    confidence: float = 0.95

    def __post_init__(self) -> None:
        check_groups(self.group_by, 2)
        check_loss(self.loss, self.loss_kind)
        if self.unit not in TIME_UNITS or self.width < 1:
            raise DraftError("error_time_bins")
        bins = self.follow_up_years * 365.25 / (_DAYS[self.unit] * self.width)
        if bins > _MAX_BINS:
            raise DraftError("error_too_many_bins", bins=int(bins), maximum=_MAX_BINS)
        if any(h > self.follow_up_years for h in self.horizons_years):
            raise DraftError("error_horizon_beyond", years=self.follow_up_years)

    def to_query(self) -> Json:
        """The request body of preview and run."""
        query: Json = {
            "project": self.project,
            "measure": "survival",
            "cohort": self.cohort.to_json(),
            "group_by": list(self.group_by),
            "time_bins": {"unit": self.unit, "width": self.width},
        }
        if self.horizons_years:  # none chosen: the service's default horizons within the follow-up
            query["horizons_years"] = sorted(self.horizons_years)
        return {**query, **_loss(self.loss_kind, self.loss, self.confidence)}
