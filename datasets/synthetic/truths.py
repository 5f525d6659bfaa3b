"""The known truths of the synthetic registers: effects the generator builds in, stated once.

The generator samples these parts of the population from the models below, so an analysis of the
generated registers (exact or private) can be checked against a number fixed in advance rather than
against another estimate. ``tests/datasets/test_generator_truths.py`` recovers each of them from
generated data; docs/synthetic-data.md states them for analysts.

1. Survival after a first myocardial infarction. The index is a person's first lpr contact with ICD-10
   I21 (no contact for I21 comes before it in the registers). The time T from the index to death has
   a piecewise-constant hazard in days since the index (``TRUTHS.infarction.baseline``), multiplied by the
   hazard ratios per 10 years of exact age at the index (centred at ``reference_age``), for men, and
   for persons who redeemed metformin (lmdb ATC A10BA02) in the year before the index. The death
   date is ``index + floor(T)`` (so ``death_date - index`` is 0 for a death on the index day) when
   that falls on or before the reference date, else the person is alive at the reference date; it is
   written to cpr.death_date and dar (cause I21 for most deaths within 30 days). Everything else about
   the person happens before the death.
2. Metformin in the year before the index: exactly the persons marked exposed have an A10BA02
   redemption in the 300 days before the index day, and the others none in the 400 days up to and
   including it, so any "year before" window gives the same exposure.
3. Type 2 diabetes: a person aged 18 or more without an earlier E11 contact gets a first lpr contact
   for E11 at the rate ``TRUTHS.diabetes`` by attained 10-year age band and sex,
   from 2010-01-01 (the start of coverage) until death or the reference date.
4. Disposable income (ind, DKK): its mean given age at the end of the income year, sex, attained
   ISCED level (udda, same year) and income year is ``TRUTHS.income.mean``; for ages 25-64 that is linear:
   ``intercept + per_year_of_age * age + male + education[level] + per_income_year * (year - 2015)``.
   The noise has mean zero given these (a multiplicative person and year factor, a few business
   losses compensated in the mean) and never reaches the catalog bounds, so no clamp biases it; the
   only departures are rounding to whole DKK and 0.2% of values missing completely at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float64]

DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class InfarctionSurvival:
    """Death after a first I21 contact: a piecewise-constant baseline hazard and hazard ratios."""

    # (first day, rate per person-year) of each phase since the index; the last phase is open-ended.
    baseline: tuple[tuple[int, float], ...]
    reference_age: float  # the baseline is a woman of this exact age at the index, unexposed
    hr_per_10_years: float
    hr_male: float
    hr_metformin: float
    early_cause_i21: float  # share of deaths within 30 days given the underlying cause I21

    def log_hazard_ratio(self, age: Float, male: npt.ArrayLike, metformin: npt.ArrayLike) -> Float:
        """Linear predictor: log of the hazard ratio against the baseline person."""
        return (
            np.log(self.hr_per_10_years) * (np.asarray(age, dtype=np.float64) - self.reference_age) / 10
            + np.log(self.hr_male) * np.asarray(male, dtype=np.float64)
            + np.log(self.hr_metformin) * np.asarray(metformin, dtype=np.float64)
        )

    def cumulative_baseline(self, days: npt.ArrayLike) -> Float:
        """Baseline cumulative hazard from the index to ``days`` (continuous) after it."""
        t = np.asarray(days, dtype=np.float64)
        total = np.zeros_like(t)
        edges = [start for start, _ in self.baseline[1:]] + [np.inf]
        for (start, rate), end in zip(self.baseline, edges, strict=True):
            total += rate * np.clip(np.minimum(t, end) - start, 0, None) / DAYS_PER_YEAR
        return total

    def death_probability(
        self, days: float, age: npt.ArrayLike, male: npt.ArrayLike, metformin: npt.ArrayLike
    ) -> Float:
        """P(death_date - index < days): e.g. ``days=30`` is the 30-day mortality."""
        lp = self.log_hazard_ratio(np.asarray(age, dtype=np.float64), male, metformin)
        return 1.0 - np.exp(-self.cumulative_baseline(days) * np.exp(lp))


@dataclass(frozen=True)
class MetforminExposure:
    """Who redeemed metformin in the year before the index (decided with the survival, honoured by
    lmdb): a share of the persons with an E11 contact at least ``diabetes_lead_days`` before the index,
    a smaller share of the others, nobody whose index is less than that after the start of coverage."""

    atc: str
    with_diabetes: float
    without_diabetes: float
    diabetes_lead_days: int
    exposed_within_days: int  # the exposed redeem at least once in these days before the index day
    unexposed_days: int  # the unexposed redeem nothing in these days up to and including the index day


@dataclass(frozen=True)
class DiabetesIncidence:
    """First E11 contacts per 1,000 person-years by 10-year attained age band (0-9, ..., 90+)."""

    min_age: int
    female: tuple[float, ...]
    male: tuple[float, ...]

    def per_year(self, band: npt.NDArray[np.int64], male: npt.NDArray[np.bool_]) -> Float:
        """Rate per person-year for each 10-year band index (0 for ages 0-9) and sex."""
        table = np.array([self.female, self.male]) / 1000.0
        return table[male.astype(np.int64), np.minimum(band, table.shape[1] - 1)]


@dataclass(frozen=True)
class IncomeModel:
    """Mean disposable income (DKK) by age, sex, ISCED level and year; linear for ages 25-64."""

    # Age curve of a woman with ISCED 3 in the base year: (age, DKK) anchors, linear in between; no
    # anchor lies strictly between 25 and 64, so the curve is one straight line there.
    age_anchors: tuple[tuple[int, float], ...]
    male: float  # added for men aged 25 or more
    male_young: float  # added for men under 25
    education: tuple[float, ...]  # added by ISCED level 0-8 (level 3 is the reference)
    per_income_year: float
    base_year: int
    linear_ages: tuple[int, int]
    business_loss_share: float  # share of negative incomes, uniform on [-business_loss_max, 0]
    business_loss_max: float
    # Mean-one noise factors lo + width * Beta(a, b), as (lo, width, a, b): one lasting per person,
    # one per person-year; bounded, so that incomes stay far inside the catalog bounds.
    person_factor: tuple[float, float, float, float]
    year_factor: tuple[float, float, float, float]

    @property
    def per_year_of_age(self) -> float:
        """The slope of the age curve over ``linear_ages``."""
        ages = dict(self.age_anchors)
        lo, hi = self.linear_ages
        return (ages[hi] - ages[lo]) / (hi - lo)

    @property
    def intercept(self) -> float:
        """The linear part's value at age 0 (a woman with ISCED 3 in the base year)."""
        lo = self.linear_ages[0]
        return dict(self.age_anchors)[lo] - self.per_year_of_age * lo

    def mean(
        self, age: npt.ArrayLike, male: npt.ArrayLike, level: npt.ArrayLike, year: npt.ArrayLike
    ) -> Float:
        """Expected disposable income given age at the end of the year, sex, ISCED level and year."""
        age = np.asarray(age, dtype=np.float64)
        anchors = np.array(self.age_anchors, dtype=np.float64)
        sex = np.where(age >= self.linear_ages[0], self.male, self.male_young)
        return (
            np.interp(age, anchors[:, 0], anchors[:, 1])
            + np.where(np.asarray(male, dtype=bool), sex, 0.0)
            + np.asarray(self.education)[np.asarray(level, dtype=np.int64)]
            + self.per_income_year * (np.asarray(year, dtype=np.float64) - self.base_year)
        )


INFARCTION = InfarctionSurvival(
    baseline=((0, 0.75), (30, 0.08), (365, 0.045)),
    reference_age=70.0,
    hr_per_10_years=1.6,
    hr_male=1.3,
    hr_metformin=0.7,
    early_cause_i21=0.8,
)

METFORMIN = MetforminExposure(
    atc="A10BA02",
    with_diabetes=0.9,
    without_diabetes=0.03,
    diabetes_lead_days=400,
    exposed_within_days=300,
    unexposed_days=400,
)

DIABETES = DiabetesIncidence(
    min_age=18,
    # 0-9, 10-19 (from 18), 20-29, ..., 80-89, 90+
    female=(0.0, 0.3, 0.9, 2.0, 4.0, 7.5, 11.0, 14.0, 15.0, 12.0),
    male=(0.0, 0.3, 0.9, 2.5, 5.5, 11.0, 15.5, 18.5, 19.0, 15.0),
)

INCOME = IncomeModel(
    age_anchors=((18, 80_000), (22, 115_000), (25, 170_000), (64, 267_500), (67, 200_000), (75, 180_000),
                 (85, 170_000), (100, 165_000)),
    male=30_000,
    male_young=5_000,
    education=(-60_000, -55_000, -35_000, 0, 5_000, 20_000, 50_000, 100_000, 140_000),
    per_income_year=6_000,
    base_year=2015,
    linear_ages=(25, 64),
    business_loss_share=0.003,
    business_loss_max=100_000,
    person_factor=(0.4, 1.8, 2.0, 4.0),  # 0.4..2.2, mean 1
    year_factor=(0.85, 0.3, 2.0, 2.0),  # 0.85..1.15, mean 1
)  # fmt: skip


@dataclass(frozen=True)
class Truths:
    """Every stated truth of the synthetic registers, in one frozen table."""

    infarction: InfarctionSurvival
    metformin: MetforminExposure
    diabetes: DiabetesIncidence
    income: IncomeModel


TRUTHS = Truths(infarction=INFARCTION, metformin=METFORMIN, diabetes=DIABETES, income=INCOME)
