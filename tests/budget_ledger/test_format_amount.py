"""Amounts in sentences are written as people write them, rounded to the safe side where asked."""

from __future__ import annotations

from fractions import Fraction

import pytest

from budget_ledger.loss import format_amount


@pytest.mark.parametrize(
    ("value", "rounding", "expected"),
    [
        pytest.param(Fraction("0.4999999999995"), "nearest", "0.5", id="float_noise_reads_as_typed"),
        pytest.param(Fraction("0.4999999999995"), "down", "0.4999999", id="left_never_shown_larger"),
        pytest.param(Fraction("0.5000000000005"), "up", "0.5000001", id="needed_never_shown_smaller"),
        pytest.param(Fraction(1, 10**6), "nearest", "1e-6", id="small_delta_scientific"),
        pytest.param(Fraction(5, 2 * 10**7), "nearest", "2.5e-7", id="small_delta_two_digits"),
        pytest.param(Fraction(0.3), "down", "0.3", id="float_budget_kept_below_what_was_typed"),
        pytest.param(Fraction(0), "down", "0", id="zero"),
        pytest.param(Fraction(50), "nearest", "50", id="integer"),
        pytest.param(0.1, "up", "0.1", id="float_as_typed"),
        pytest.param(Fraction(1, 200), "up", "0.005", id="rho_of_epsilon_0_1"),
        pytest.param(Fraction(1, 3), "down", "0.333333", id="repeating_decimal_six_digits"),
    ],
)
def test_amounts_read_as_people_write_them(value: Fraction | float, rounding: str, expected: str) -> None:
    shown = format_amount(value, rounding=rounding)  # type: ignore[arg-type]
    assert shown == expected
    if rounding == "up":
        assert (
            Fraction(shown) >= Fraction(repr(value)) if isinstance(value, float) else Fraction(shown) >= value
        )
    if rounding == "down" and value != Fraction(0.3):
        assert Fraction(shown) <= value


def test_grouping_writes_thousands_separators() -> None:
    assert format_amount(1498.0, grouping=True) == "1,498"
    assert format_amount(Fraction(1234567, 10), grouping=True) == "123,456.7"
