"""Exact privacy-loss values.

All amounts are :class:`fractions.Fraction`. Inexact inputs (floats) are converted with a rounding
direction that can only make the ledger stricter: UP for what a query is charged, DOWN for what a
budget allows. ``Fraction(x)`` is the exact value of a float; ``Fraction(repr(x))`` is the decimal the
user typed (``0.1`` rather than ``0.1000000000000000055...``); the conversion takes the larger of the
two for a charge and the smaller for a budget, so either reading is respected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Literal

from .errors import InvalidRequest

__all__ = [
    "Amount",
    "Charge",
    "fraction_from_text",
    "fraction_to_text",
    "to_budget_amount",
    "to_charge_amount",
    "float_down",
    "float_up",
    "float_down_or_none",
    "float_up_or_none",
    "format_amount",
    "floor_sqrt",
]

Amount = Fraction | int | float | str | Decimal
"""Anything the ledger accepts as an amount of privacy loss."""

ZERO = Fraction(0)


def _convert(value: Amount, *, round_up: bool, name: str) -> Fraction:
    if isinstance(value, bool):
        raise InvalidRequest(f"{name} must be a number, not a boolean.")
    if isinstance(value, Fraction):
        result = value
    elif isinstance(value, int):
        result = Fraction(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"{name} must be a finite number, got {value!r}.")
        exact = Fraction(value)
        typed = Fraction(repr(value))
        result = max(exact, typed) if round_up else min(exact, typed)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidRequest(f"{name} must be a finite number, got {value!r}.")
        result = Fraction(value)
    elif isinstance(value, str):
        try:
            result = Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise InvalidRequest(f"{name} must be a number such as 0.5 or 1/2, got {value!r}.") from None
    else:
        raise InvalidRequest(f"{name} must be a number, got {type(value).__name__}.")
    if result < 0:
        raise InvalidRequest(f"{name} must not be negative, got {format_amount(result)}.")
    return result


def to_charge_amount(value: Amount, name: str = "amount") -> Fraction:
    """Convert a charged amount exactly, rounding an inexact float UP."""
    return _convert(value, round_up=True, name=name)


def to_budget_amount(value: Amount, name: str = "amount") -> Fraction:
    """Convert a budget amount exactly, rounding an inexact float DOWN."""
    return _convert(value, round_up=False, name=name)


def float_down(value: Fraction) -> float:
    """Return the largest float that is <= ``value``."""
    result = float(value)
    if Fraction(result) > value:
        result = math.nextafter(result, -math.inf)
    return result


def float_up(value: Fraction) -> float:
    """Return the smallest float that is >= ``value``."""
    result = float(value)
    if Fraction(result) < value:
        result = math.nextafter(result, math.inf)
    return result


def float_down_or_none(value: Fraction | None) -> float | None:
    """``float_down`` of an amount that may be absent (``None`` stays ``None``)."""
    return None if value is None else float_down(value)


def float_up_or_none(value: Fraction | None) -> float | None:
    """``float_up`` of an amount that may be absent (``None`` stays ``None``)."""
    return None if value is None else float_up(value)


def floor_sqrt(value: Fraction) -> Fraction:
    """The largest float ``r`` with ``r * r <= value`` (a square root rounded down), as a Fraction."""
    if value <= 0:
        return ZERO
    root = math.sqrt(float_down(value))
    while root > 0 and Fraction(root) ** 2 > value:
        root = math.nextafter(root, 0.0)
    while Fraction(math.nextafter(root, math.inf)) ** 2 <= value:
        root = math.nextafter(root, math.inf)
    return Fraction(root)


def fraction_to_text(value: Fraction) -> str:
    """Serialise a Fraction exactly, e.g. ``"1/8"`` or ``"3"``."""
    return str(value)


def fraction_from_text(text: str) -> Fraction:
    """Parse a Fraction written by :func:`fraction_to_text`."""
    return Fraction(text)


_ROUNDING = {"nearest": ROUND_HALF_EVEN, "up": ROUND_CEILING, "down": ROUND_FLOOR}
_SAME = Fraction(1, 10**6)  # a decimal within a millionth (relative) of the amount stands for it
_FLOAT_NOISE = Fraction(1, 10**15)  # below a double's precision
_MAX_DIGITS = 15


def format_amount(
    value: Fraction | float | int,
    *,
    rounding: Literal["nearest", "up", "down"] = "nearest",
    grouping: bool = False,
) -> str:
    """An amount as a person writes it: the shortest decimal within a millionth of it (at most 7 digits).

    ``0.4999999999995`` reads ``0.5``, ``1/10**6`` reads ``1e-6``, ``0`` reads ``0``. ``rounding``
    ``"up"`` or ``"down"`` never shows a number below (above) the amount, for what a query needs
    (what is left) where a refusal must not look as if it fitted. ``grouping`` writes ``1,498``.
    """
    exact = (
        value if isinstance(value, Fraction) else Fraction(repr(value) if isinstance(value, float) else value)
    )
    if exact == 0:
        return "0"
    shown = Decimal(0)
    for digits in range(1, _MAX_DIGITS + 1):
        # A budget of 0.3 typed as a float is kept as 0.29999999999999998...: below float precision the
        # nearest decimal is what was meant, in either direction.
        shown = _significant(exact, digits, ROUND_HALF_EVEN)
        if abs(Fraction(shown) - exact) <= abs(exact) * _FLOAT_NOISE:
            break
        shown = _significant(exact, digits, _ROUNDING[rounding])
        if abs(Fraction(shown) - exact) <= abs(exact) * _SAME:
            break
    return _decimal_text(shown, grouping=grouping)


def _significant(value: Fraction, digits: int, mode: str) -> Decimal:
    """``value`` rounded to ``digits`` significant digits in the direction ``mode``."""
    exponent = math.floor(math.log10(abs(value))) if value else 0
    quantum = Fraction(10) ** (exponent - digits + 1)
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.rounding = mode
        scaled = (
            Decimal(value.numerator)
            / Decimal(value.denominator)
            / Decimal(quantum.numerator)
            * Decimal(quantum.denominator)
        )
        whole = scaled.to_integral_value()
        return (whole * Decimal(quantum.numerator) / Decimal(quantum.denominator)).normalize()


def _decimal_text(shown: Decimal, *, grouping: bool) -> str:
    if shown != 0 and abs(shown) < Decimal("0.0001"):
        sign, digits, exponent = shown.as_tuple()
        mantissa = "".join(map(str, digits))
        head = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
        power = int(exponent) + len(mantissa) - 1
        return f"{'-' if sign else ''}{head}e{power}"
    return format(shown, ",f" if grouping else "f")


@dataclass(frozen=True)
class Charge:
    """The privacy loss of one release, exact.

    ``epsilon`` is the pure-DP part (discrete Laplace, noisy max), ``rho`` the zCDP part (discrete
    Gaussian), ``delta`` the additive part from thresholding (partition selection). Floats passed to
    the constructor are rounded UP, so a charge is never smaller than what OpenDP reported.
    """

    epsilon: Fraction = ZERO
    rho: Fraction = ZERO
    delta: Fraction = ZERO

    def __post_init__(self) -> None:
        for name in ("epsilon", "rho", "delta"):
            object.__setattr__(self, name, to_charge_amount(getattr(self, name), name))
        if self.delta >= 1:
            raise InvalidRequest(f"delta must be below 1, got {format_amount(self.delta)}.")

    @classmethod
    def of(cls, epsilon: Amount = 0, rho: Amount = 0, delta: Amount = 0) -> Charge:
        """Build a charge from any amounts (floats rounded UP)."""
        return cls(
            to_charge_amount(epsilon, "epsilon"),
            to_charge_amount(rho, "rho"),
            to_charge_amount(delta, "delta"),
        )

    @property
    def zcdp_rho(self) -> Fraction:
        """The charge as zCDP: rho plus epsilon^2/2 for the pure-DP part."""
        return self.rho + self.epsilon * self.epsilon / 2

    @property
    def is_zero(self) -> bool:
        """True when the charge costs nothing."""
        return self.epsilon == 0 and self.rho == 0 and self.delta == 0

    def __add__(self, other: Charge) -> Charge:
        """Basic (sequential) composition of two charges, component by component."""
        if not isinstance(other, Charge):
            return NotImplemented
        return Charge(self.epsilon + other.epsilon, self.rho + other.rho, self.delta + other.delta)

    def to_json(self) -> dict[str, str]:
        """Exact JSON form: amounts as fraction strings."""
        return {
            "epsilon": fraction_to_text(self.epsilon),
            "rho": fraction_to_text(self.rho),
            "delta": fraction_to_text(self.delta),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Charge:
        """Inverse of :meth:`to_json`."""
        return cls(
            fraction_from_text(data["epsilon"]),
            fraction_from_text(data["rho"]),
            fraction_from_text(data["delta"]),
        )

    def to_public(self) -> dict[str, float]:
        """Floats for JSON display, rounded UP (a charge is never shown smaller than it is)."""
        return {"epsilon": float_up(self.epsilon), "rho": float_up(self.rho), "delta": float_up(self.delta)}
