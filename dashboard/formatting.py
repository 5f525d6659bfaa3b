"""Numbers and names as people write them: ε as 0.5 (not 0.4999999999995), δ as 1e-6, column titles.

Plain functions, no Streamlit. Display only: the numbers sent to the API are never rounded.

>>> number(0.4999999999995)
'0.5'
>>> number(0.123456)
'0.1235'
>>> remaining(0.123456)
'0.1234'
>>> delta(1e-6), delta(0), delta(2.5e-7)
('1e-6', '0', '2.5e-7')
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

__all__ = ["column_title", "delta", "number", "remaining"]

_DIGITS = 4
# Below this relative distance a value is the API's own rounding of an exact fraction (a budget kept
# as a rational is sent as 0.4999999999995 for 1/2 rounded down), not a difference anyone could spend.
_FLOAT_NOISE = 1e-9


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def number(value: Any, digits: int = _DIGITS, *, down: bool = False) -> str:
    """``value`` to ``digits`` significant digits, without trailing zeros; ``-`` for no value.

    ``down`` rounds towards minus infinity (a remaining budget is never shown larger than it is).
    Very small or large values are written like 1e-6 and 2.5e+7.
    """
    if value is None or value == "":
        return "-"
    x = float(value)
    if x == 0:
        return "0"
    if down:
        x = x * (1 + _FLOAT_NOISE) if x > 0 else x * (1 - _FLOAT_NOISE)
    exact = Decimal(repr(x))
    step = Decimal(1).scaleb(exact.adjusted() - digits + 1)
    rounded = exact.quantize(step, rounding=ROUND_FLOOR if down else ROUND_HALF_EVEN)
    if rounded != 0 and (abs(rounded) < Decimal("0.001") or abs(rounded) >= Decimal("1e7")):
        mantissa, exponent = f"{rounded:e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}" if int(exponent) < 0 else f"{mantissa}e+{int(exponent)}"
    return _plain(rounded)


def remaining(value: Any, digits: int = _DIGITS) -> str:
    """A remaining budget: rounded down, never up."""
    return number(value, digits, down=True)


def delta(value: Any) -> str:
    """δ as people write it: 1e-6, 2.5e-7, and 0 as 0."""
    if value is None or value == "":
        return "-"
    x = float(value)
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def column_title(columns: Mapping[str, Any], qualified: str, lang: str) -> str:
    """A column's title for tables and axes: the catalog's title, else its description up to the first
    bracket ("10-year age band (0-9, ..., 90+)" -> "10-year age band"), else the qualified name."""
    column = columns.get(qualified) or {}
    for field in ("title", "description"):
        text = column.get(field)
        if isinstance(text, Mapping):
            text = text.get(lang) or text.get("en")
        if text:
            return str(text).split(" (")[0].strip()
    return qualified
