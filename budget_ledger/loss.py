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
from decimal import Decimal
from fractions import Fraction

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


def format_amount(value: Fraction) -> str:
    """Format an amount for a human-readable sentence (6 significant digits)."""
    return format(float(value), ".6g")


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
