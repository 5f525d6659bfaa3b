"""Survival time: the public exit bins over the declared follow-up, and the horizons reported.

Both follow from the query and the cohort's declared follow-up only (never from data): ``T`` days
are cut into bins of ``width`` days, months (365.25 / 12 days) or years (365.25 days).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, NoReturn

from .errors import ValueOutsideDomain
from .spec import Query, TimeBins

__all__ = ["MAX_SURVIVAL_BINS", "Bins", "survival_bins", "survival_horizons"]

MAX_SURVIVAL_BINS = 400
_DAYS_PER_YEAR = Fraction(1461, 4)  # 365.25
_UNIT_DAYS = {"days": Fraction(1), "months": _DAYS_PER_YEAR / 12, "years": _DAYS_PER_YEAR}
_DEFAULT_HORIZONS = (1.0, 5.0, 10.0)


def _refuse(message: str) -> NoReturn:
    raise ValueOutsideDomain(message, stage="validate")


@dataclass(frozen=True)
class Bins:
    """Survival exit bins of ``length_days = num/den`` days: bin ``min(t * den // num, count - 1)``.

    The last bin ends at the follow-up ``T`` days (a remainder under one day joins it).
    """

    unit: Literal["days", "months", "years"]
    width: int
    num: int
    den: int
    count: int
    follow_up_days: int

    @property
    def length_days(self) -> Fraction:
        return Fraction(self.num, self.den)

    def end_days(self, b: int) -> Fraction:
        """The end of bin ``b`` in days (the last bin ends at the follow-up maximum)."""
        return min(self.length_days * (b + 1), Fraction(self.follow_up_days))

    @property
    def unit_days(self) -> Fraction:
        """Days in one unit (a month is 365.25 / 12 days)."""
        return _UNIT_DAYS[self.unit]

    def in_units(self, days: Fraction) -> float:
        return float(days / self.unit_days)


def survival_bins(bins: TimeBins, follow_up_days: int, follow_up_years: float) -> Bins:
    """The exit bins of ``bins`` over a follow-up of ``follow_up_days`` (refused: too many, too wide)."""
    length = _UNIT_DAYS[bins.unit] * bins.width
    total = follow_up_days
    whole, rest = divmod(Fraction(total), length)
    # T is the follow-up rounded to a day: a last bin shorter than one day would only hold that rounding.
    count = max(1, int(whole) + (1 if rest >= 1 else 0))
    if count > MAX_SURVIVAL_BINS:
        _refuse(
            f"Bins of {bins.width} {bins.unit} over {follow_up_years:g} years of follow-up make {count} "
            f"bins; at most {MAX_SURVIVAL_BINS} are allowed. Use wider bins (e.g. months instead of days).",
        )
    if length > total:
        _refuse(
            f"A bin of {bins.width} {bins.unit} is longer than the follow-up of {follow_up_years:g} "
            "years; use narrower bins.",
        )
    return Bins(bins.unit, bins.width, length.numerator, length.denominator, count, total)


def survival_horizons(query: Query, follow_up_years: float) -> tuple[float, ...]:
    """The horizons asked for (default 1, 5 and 10 years within the follow-up), sorted."""
    maximum = follow_up_years
    if query.horizons_years is None:
        return tuple(h for h in _DEFAULT_HORIZONS if h <= maximum)
    beyond = [h for h in query.horizons_years if h > maximum]
    if beyond:
        _refuse(
            f"The horizon {beyond[0]:g} years is beyond the follow-up of {maximum:g} years; give horizons "
            "within the follow-up.",
        )
    return tuple(sorted(set(query.horizons_years)))
