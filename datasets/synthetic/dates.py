"""Vectorised calendar arithmetic on dates stored as int64 days since 1970-01-01 (Arrow date32).

Lookup tables over 1890-2040 replace datetime64 conversions, which dominated the generator's time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Days = npt.NDArray[np.int64]

DAYS_PER_YEAR = 365.25
_EPOCH = np.datetime64("1970-01-01", "D")
_FIRST_YEAR, _LAST_YEAR = 1890, 2040


def day(iso: str) -> int:
    """Days since 1970-01-01 of an ISO date."""
    return int((np.datetime64(iso, "D") - _EPOCH).astype(np.int64))


def _tables() -> tuple[int, npt.NDArray[np.int64], Days, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    first = day(f"{_FIRST_YEAR}-01-01")
    dates = np.arange(first, day(f"{_LAST_YEAR + 1}-01-01"), dtype=np.int64).astype("datetime64[D]")
    years = dates.astype("datetime64[Y]")
    months = dates.astype("datetime64[M]")
    year = years.astype(np.int64) + 1970
    month = (months - years.astype("datetime64[M]")).astype(np.int64)
    day_of_month = (dates - months.astype("datetime64[D]")).astype(np.int64)
    all_months = np.arange(
        np.datetime64(f"{_FIRST_YEAR}-01", "M"), np.datetime64(f"{_LAST_YEAR + 1}-01", "M")
    )
    month_start = (all_months.astype("datetime64[D]") - _EPOCH).astype(np.int64).reshape(-1, 12)
    return first, year, month_start, month, day_of_month


_FIRST_DAY, _YEAR, _MONTH_START, _MONTH, _DAY_OF_MONTH = _tables()
_MONTH_DAY = _MONTH * 32 + _DAY_OF_MONTH
_YEAR_START = np.ascontiguousarray(_MONTH_START[:, 0])


def _offset(days: Days) -> Days:
    offset = days - _FIRST_DAY
    if offset.size and (offset.min() < 0 or offset.max() >= _YEAR.size):
        raise ValueError(f"dates outside {_FIRST_YEAR}-{_LAST_YEAR} are not supported")
    return offset


def year_of(days: Days) -> npt.NDArray[np.int64]:
    """Calendar year of each date."""
    return _YEAR[_offset(days)]


def year_start(years: npt.NDArray[np.int64]) -> Days:
    """1 January of each year, in days."""
    return _YEAR_START[years - _FIRST_YEAR]


def age_at(birth: Days, date: Days) -> npt.NDArray[np.int64]:
    """Exact age in whole years on ``date`` (a birthday counts from the day itself)."""
    b, d = _offset(birth), _offset(date)
    return _YEAR[d] - _YEAR[b] - (_MONTH_DAY[d] < _MONTH_DAY[b])


def add_years(days: Days, years: int | npt.NDArray[np.int64]) -> Days:
    """The same month and day ``years`` later (29 February becomes 1 March), i.e. that birthday.

    Years past the table's end give a date in its last year: later than any date of interest.
    """
    offset = _offset(days)
    year = np.minimum(_YEAR[offset] + years, _LAST_YEAR) - _FIRST_YEAR
    return _MONTH_START[year, _MONTH[offset]] + _DAY_OF_MONTH[offset]
