"""The generator's building blocks: calendar arithmetic, unique keys and categorical sampling."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from datasets.synthetic.dates import add_years, age_at, day, year_of, year_start
from datasets.synthetic.output import KeyPermutation
from datasets.synthetic.world import CategoricalTable

EPOCH = dt.date(1970, 1, 1)
dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31))


def _days(*values: dt.date) -> np.ndarray:
    return np.array([(v - EPOCH).days for v in values], dtype=np.int64)


def _python_age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@given(dates, dates)
def test_age_matches_the_birthday_rule(birth: dt.date, on: dt.date) -> None:
    assert age_at(_days(birth), _days(on))[0] == _python_age(birth, on)


@given(dates, st.integers(min_value=0, max_value=10))
def test_add_years_is_the_day_the_age_is_reached(birth: dt.date, years: int) -> None:
    birthday = int(add_years(_days(birth), years)[0])
    assert age_at(_days(birth), np.array([birthday]))[0] == years
    assert age_at(_days(birth), np.array([birthday - 1]))[0] == years - 1


@given(dates)
def test_year_of_and_year_start(date: dt.date) -> None:
    assert year_of(_days(date))[0] == date.year
    assert year_start(np.array([date.year]))[0] == _days(dt.date(date.year, 1, 1))[0]


def test_add_years_saturates_far_in_the_future() -> None:
    assert add_years(_days(dt.date(2020, 5, 1)), 500)[0] > day("2039-12-31")


def test_key_permutation_is_a_collision_free_map_into_the_positive_62_bit_range() -> None:
    keys = KeyPermutation(np.random.default_rng(1))(np.arange(300_000, dtype=np.int64))
    assert np.unique(keys).size == keys.size
    assert keys.min() >= 1 and keys.max() < 2**62
    # Consecutive rows get unrelated keys: about half the neighbours increase.
    assert 0.49 < np.mean(np.diff(keys) > 0) < 0.51


def test_categorical_table_draws_each_stratum_with_its_own_probabilities() -> None:
    table = CategoricalTable([[0.0, 1.0, 3.0], [1.0, 0.0, 0.0]])
    strata = np.repeat([0, 1], 40_000)
    drawn = table.sample(np.random.default_rng(2), strata)
    assert set(drawn[strata == 1]) == {0}
    counts = np.bincount(drawn[strata == 0], minlength=3) / 40_000
    assert counts[0] == 0 and abs(counts[2] - 0.75) < 0.01
