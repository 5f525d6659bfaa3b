"""The cohort builder's drafts: every draft the pages can make is a query the engine's own model
accepts, and the early checks name what is missing."""

from __future__ import annotations

import datetime as dt

import pytest

from dashboard.cohort_draft import CohortDraft, EventDraft, RateDraft, StoredCohort, SurvivalDraft
from dashboard.query_draft import Condition, DraftError
from query_engine.spec import parse_query

INDEX = EventDraft("lpr", "admission_date", (Condition("lpr.icd10", "prefix", "I21"),))
ENTRY = (dt.date(2012, 1, 1), dt.date(2020, 12, 31))
FULL = CohortDraft(
    INDEX,
    ENTRY,
    follow_up_years=10,
    exclude=EventDraft("lpr", "admission_date", (Condition("lpr.icd10", "in", ["I21", "I22"]),)),
    lookback_days=1825,
    outcome=EventDraft("dar", "death_date", (Condition("dar.cause_icd10", "prefix", "I"),)),
    period_years=3,
    name="first-mi",
)


@pytest.mark.parametrize(
    "draft",
    [
        pytest.param(RateDraft("p", CohortDraft(INDEX, ENTRY)), id="rate_minimal"),
        pytest.param(
            RateDraft("p", FULL, ("cpr.sex",), per_person_years=100_000, standard_population="esp2013"),
            id="rate_standardised",
        ),
        pytest.param(
            RateDraft("p", StoredCohort("first-mi"), loss_kind="target_ci", loss=5.0), id="rate_by_name"
        ),
        pytest.param(
            SurvivalDraft(
                "p", FULL, 10, ("cpr.sex", "cohort.period"), unit="days", width=30, horizons_years=(1, 5, 10)
            ),
            id="survival_full",
        ),
        pytest.param(
            SurvivalDraft("p", StoredCohort("first-mi"), 5, horizons_years=()), id="survival_by_name"
        ),
    ],
)
def test_every_draft_is_a_query_the_engine_accepts(draft: RateDraft | SurvivalDraft) -> None:
    query = parse_query(draft.to_query())
    assert query.measure == draft.to_query()["measure"]
    if isinstance(draft.cohort, CohortDraft):
        assert query.cohort is not None and not isinstance(query.cohort, str)
        assert query.cohort.name == draft.cohort.name
        assert query.cohort.follow_up_years == draft.cohort.follow_up_years
    else:
        assert query.cohort == "first-mi"


def test_standardising_adds_an_age_band_only_when_none_is_chosen() -> None:
    cohort = CohortDraft(INDEX, ENTRY)
    assert RateDraft("p", cohort, ("cpr.sex",), standard_population="esp2013").groups == (
        "cpr.sex",
        "cohort.age_band",
    )
    chosen = RateDraft("p", cohort, ("cohort.age_band_5",), standard_population="esp2013")
    assert chosen.to_query()["group_by"] == ["cohort.age_band_5"]
    assert RateDraft("p", cohort, ("cpr.sex",)).to_query()["group_by"] == ["cpr.sex"]


@pytest.mark.parametrize(
    ("make", "key"),
    [
        pytest.param(
            lambda: CohortDraft(INDEX, (ENTRY[1], ENTRY[0])), "error_cohort_entry", id="entry_reversed"
        ),
        pytest.param(
            lambda: CohortDraft(INDEX, ENTRY, follow_up_years=31), "error_cohort_follow_up", id="follow_up"
        ),
        pytest.param(lambda: CohortDraft(INDEX, ENTRY, name="First MI"), "error_cohort_name", id="name"),
        pytest.param(
            lambda: CohortDraft(INDEX, ENTRY, lookback_days=0), "error_cohort_lookback", id="lookback"
        ),
        pytest.param(
            lambda: SurvivalDraft("p", StoredCohort("x"), 30, unit="days", width=1),
            "error_too_many_bins",
            id="bins",
        ),
        pytest.param(
            lambda: SurvivalDraft("p", StoredCohort("x"), 5, horizons_years=(10,)),
            "error_horizon_beyond",
            id="horizon",
        ),
        pytest.param(
            lambda: SurvivalDraft(
                "p", StoredCohort("x"), 5, group_by=("cpr.sex", "cpr.region", "cohort.period")
            ),
            "error_group_by",
            id="three_groups",
        ),
        pytest.param(lambda: RateDraft("p", StoredCohort("x"), loss=0.0), "error_loss", id="loss"),
    ],
)
def test_incomplete_drafts_say_what_is_missing(make: object, key: str) -> None:
    with pytest.raises(DraftError) as raised:
        make()  # type: ignore[operator]
    assert raised.value.key == key


def test_the_bin_limit_is_the_engines() -> None:
    """At most 400 exit bins over the follow-up: 30 years in months (360) fit, in 27-day bins (406) not."""
    fits = SurvivalDraft("p", StoredCohort("x"), 30, unit="months", width=1)
    assert parse_query(fits.to_query()).time_bins is not None
    with pytest.raises(DraftError):
        SurvivalDraft("p", StoredCohort("x"), 30, unit="days", width=27)
