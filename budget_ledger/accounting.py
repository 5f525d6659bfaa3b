"""Accounting: budgets, register caps, admission of a charge, and budget status.

Two project modes, fixed at creation:

``pure``
    Budget (epsilon, delta). Charges add up by basic composition: the sum of the epsilons and the sum
    of the deltas must each stay within the budget. A rho (zCDP) charge is refused (``mode_mismatch``).

``zcdp``
    Budget given as (epsilon, delta) with delta > 0. Half of delta, ``delta_conversion``, turns the
    epsilon into a rho budget: the largest rho whose zCDP -> (epsilon, delta) conversion (OpenDP's
    ``make_zCDP_to_approxDP``) at ``delta_conversion`` is at most the budget epsilon. The other half,
    ``delta_thresholding``, pays for the deltas of partition selection. A pure-DP charge epsilon
    counts as rho = epsilon^2/2.

Register caps (what everyone in one register bears across all projects) are in ``caps``. Both
compositions are valid under fully adaptive composition with a filter: a charge that would exceed
what is left is refused and costs nothing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Literal

from .errors import BudgetExceeded, InvalidBudget, ModeMismatch
from .loss import (
    ZERO,
    Charge,
    float_down,
    float_down_or_none,
    float_up,
    float_up_or_none,
    floor_sqrt,
    format_amount,
)

__all__ = [
    "MODES",
    "BudgetLimits",
    "BudgetStatus",
    "Mode",
    "Totals",
    "admit_project",
    "budget_limits",
    "budget_status",
    "check_mode",
    "counted_as_rho",
    "epsilon_at",
    "rho_budget",
]

Mode = Literal["pure", "zcdp"]
MODES: tuple[Mode, ...] = ("pure", "zcdp")

# Largest rho the binary search for a budget will consider; beyond it a guarantee is meaningless.
_RHO_SEARCH_LIMIT = 1e9


# --- OpenDP conversions -------------------------------------------------------------------------


@functools.cache
def _unit_gaussian() -> tuple[Any, Any]:
    """A unit-scale discrete Gaussian (zCDP) and its approx-DP conversion, built once."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=float)
    gaussian = dp.m.make_gaussian(*space, scale=1.0)
    return gaussian, dp.c.make_zCDP_to_approxDP(gaussian)


def _l2_distance_for(rho: Fraction) -> float:
    """An L2 distance at which the unit Gaussian's OpenDP rho is at least ``rho``."""
    gaussian, _ = _unit_gaussian()
    distance = math.sqrt(2 * float_up(rho))
    while Fraction(gaussian.map(distance)) < rho:
        distance = math.nextafter(distance, math.inf)
    return distance


# OpenDP's conversion overflows for rho below ~1e-308 or above ~7e4 (epsilon ~7e4).
_RHO_FLOOR = Fraction(1, 10**300)


def _textbook_epsilon(rho: Fraction, delta: Fraction) -> Fraction:
    """rho + 2 sqrt(rho ln(1/delta)), rounded up: a valid (looser) bound where OpenDP overflows."""
    value = float(rho) + 2 * math.sqrt(float(rho) * math.log(1 / float_down(delta)))
    return Fraction(math.nextafter(value * (1 + 1e-9), math.inf))


def _epsilon_at(rho: Fraction, delta: Fraction) -> Fraction:
    import opendp.prelude as dp

    if rho == 0:
        return ZERO
    if delta <= 0:
        raise InvalidBudget("Converting rho to epsilon needs a delta above 0.")
    # Epsilon grows with rho, so evaluating at a larger rho is conservative.
    rho = max(rho, _RHO_FLOOR)
    _, converted = _unit_gaussian()
    try:
        profile = converted.map(_l2_distance_for(rho))
        # A smaller delta gives a larger epsilon, so rounding delta down is conservative.
        return Fraction(profile.epsilon(delta=float_down(delta)))
    except dp.OpenDPException:
        if rho < 1:
            raise
        return _textbook_epsilon(rho, delta)


@functools.lru_cache(maxsize=4096)
def epsilon_at(rho: Fraction, delta: Fraction) -> Fraction:
    """Epsilon of a rho-zCDP guarantee at ``delta``, by OpenDP's zCDP -> approx-DP conversion.

    OpenDP rounds the conversion up, so the result never understates the loss.
    """
    return _epsilon_at(rho, delta)


@functools.lru_cache(maxsize=1024)
def rho_budget(epsilon: Fraction, delta_conversion: Fraction) -> Fraction:
    """The largest float rho whose OpenDP conversion at ``delta_conversion`` gives at most ``epsilon``.

    A binary search down to adjacent floats (about 60 conversions, ~0.2 s); every candidate is
    checked against OpenDP, so the result is admissible even if the search were off.
    """
    if epsilon == 0:
        return ZERO

    def fits(rho: float) -> bool:
        return _epsilon_at(Fraction(rho), delta_conversion) <= epsilon

    low, high = 0.0, float_up(epsilon)
    while fits(high):
        low, high = high, high * 2
        if high > _RHO_SEARCH_LIMIT:
            raise InvalidBudget(
                f"Epsilon {format_amount(epsilon)} at delta {format_amount(delta_conversion)} does not "
                "bound rho; use a smaller delta."
            )
    while True:
        middle = (low + high) / 2
        if not low < middle < high:
            return Fraction(low)
        if fits(middle):
            low = middle
        else:
            high = middle


# --- Budgets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetLimits:
    """A project's budget: as set (epsilon, delta) and, for zcdp, the derived rho."""

    mode: Mode
    epsilon: Fraction
    delta: Fraction
    rho: Fraction | None

    @property
    def delta_conversion(self) -> Fraction | None:
        """The part of delta that converts rho to epsilon (zcdp only)."""
        return self.delta / 2 if self.mode == "zcdp" else None

    @property
    def delta_thresholding(self) -> Fraction:
        """The part of delta available for thresholding charges."""
        return self.delta / 2 if self.mode == "zcdp" else self.delta


def budget_limits(mode: Mode, epsilon: Fraction, delta: Fraction) -> BudgetLimits:
    """Validate a budget and derive its rho (zcdp: an OpenDP binary search, cached)."""
    if mode not in MODES:
        raise InvalidBudget(f"Accounting mode must be 'pure' or 'zcdp', got {mode!r}.")
    if epsilon < 0 or delta < 0:
        raise InvalidBudget("Epsilon and delta must not be negative.")
    if delta >= 1:
        raise InvalidBudget(f"Delta must be below 1, got {format_amount(delta)}.")
    if mode == "pure":
        return BudgetLimits(mode, epsilon, delta, None)
    if delta == 0:
        raise InvalidBudget(
            "A zcdp project needs delta above 0: half of it converts the rho budget to epsilon and "
            "half pays for thresholding. Give a delta such as 1e-6, or use mode 'pure'."
        )
    return BudgetLimits(mode, epsilon, delta, rho_budget(epsilon, delta / 2))


@dataclass(frozen=True)
class Totals:
    """Running totals of what was spent: exact sums over spend rows."""

    epsilon: Fraction = ZERO
    """Sum of the pure-DP parts."""
    rho: Fraction = ZERO
    """Sum of the zCDP equivalents (rho + epsilon^2/2) of every charge."""
    delta: Fraction = ZERO
    spends: int = 0

    def add(self, charge: Charge) -> Totals:
        """Totals after one more spend of ``charge``."""
        return replace(
            self,
            epsilon=self.epsilon + charge.epsilon,
            rho=self.rho + charge.zcdp_rho,
            delta=self.delta + charge.delta,
            spends=self.spends + 1,
        )


# --- Admission ----------------------------------------------------------------------------------


def check_mode(project_id: str, mode: Mode, charge: Charge) -> None:
    """Refuse a rho charge in a pure-DP project."""
    if mode == "pure" and charge.rho > 0:
        raise ModeMismatch(
            f"Project '{project_id}' uses pure-DP accounting and cannot be charged rho "
            f"{format_amount(charge.rho)} (a discrete Gaussian query). State the query's loss as "
            "epsilon (discrete Laplace) instead."
        )


def _refuse(
    project_id: str,
    measure: str,
    requested: Fraction,
    remaining: Fraction,
    advice: str,
    *,
    asked: str = "",
    left_also: str = "",
) -> None:
    """Raise ``BudgetExceeded``; ``asked`` states the query's loss as given when it is counted in another
    unit (``epsilon 0.1 (counted as rho 0.005)``), ``left_also`` what is left in the unit of the budget."""
    remaining = max(remaining, ZERO)
    need = asked or f"{measure} {format_amount(requested, rounding='up')}"
    short = format_amount(requested - remaining, rounding="up")
    left = format_amount(remaining, rounding="down")
    raise BudgetExceeded(
        f"This query needs {need} but project '{project_id}' has {f'{measure} ' if asked else ''}{left} left "
        f"({short} short){left_also}. {advice}",
        project_id=project_id,
        measure=measure,
        requested=requested,
        remaining=remaining,
    )


def _refuse_beyond(
    project_id: str, measure: str, requested: Fraction, spent: Fraction, limit: Fraction, advice: str
) -> None:
    """``_refuse`` unless ``requested`` fits in what ``spent`` leaves of ``limit``."""
    if spent + requested > limit:
        _refuse(project_id, measure, requested, limit - spent, advice)


def counted_as_rho(charge: Charge) -> str:
    """A zCDP charge as the query stated it: ``epsilon 0.1 (counted as rho 0.005)`` or ``rho 0.01``."""
    rho = format_amount(charge.zcdp_rho, rounding="up")
    if charge.epsilon == 0:
        return f"rho {rho}"
    if charge.rho == 0:
        return f"epsilon {format_amount(charge.epsilon, rounding='up')} (counted as rho {rho} = epsilon^2/2)"
    return (
        f"epsilon {format_amount(charge.epsilon, rounding='up')} and rho "
        f"{format_amount(charge.rho, rounding='up')} (counted together as rho {rho})"
    )


def admit_project(project_id: str, limits: BudgetLimits, totals: Totals, charge: Charge) -> None:
    """Raise ``BudgetExceeded`` unless ``charge`` fits in what the project has left."""
    check_mode(project_id, limits.mode, charge)
    more = "or ask an administrator to raise the project's budget."
    if limits.mode == "pure":
        _refuse_beyond(
            project_id,
            "epsilon",
            charge.epsilon,
            totals.epsilon,
            limits.epsilon,
            f"Lower the query's epsilon {more}",
        )
    else:
        assert limits.rho is not None and limits.delta_conversion is not None
        cost = charge.zcdp_rho
        if totals.rho + cost > limits.rho:
            left = max(limits.rho - totals.rho, ZERO)
            _refuse(
                project_id,
                "rho",
                cost,
                left,
                f"A discrete-Laplace query could still use epsilon up to "
                f"{format_amount(floor_sqrt(2 * left), rounding='down')}; lower the query's loss {more}",
                asked=counted_as_rho(charge),
                left_also=(
                    f"; that is epsilon {format_amount(epsilon_at(left, limits.delta_conversion), rounding='down')}"
                    f" left of its budget epsilon {format_amount(limits.epsilon)} at delta {format_amount(limits.delta)}"
                ),
            )
    _refuse_beyond(
        project_id,
        "delta",
        charge.delta,
        totals.delta,
        limits.delta_thresholding,
        f"Thresholding (group keys without a public key set) costs delta; group by columns with public key sets {more}",
    )


# --- Status -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetStatus:
    """A project's budget, spent and remaining, exact (``to_public`` gives the contract's floats).

    For zcdp projects ``epsilon_spent`` and ``epsilon_remaining`` are OpenDP's conversions of
    ``rho_spent`` and ``rho_remaining`` at ``delta_conversion``; they do not add up to
    ``epsilon_total`` because the conversion is not linear.
    """

    project_id: str
    mode: Mode
    epsilon_total: Fraction
    epsilon_spent: Fraction
    epsilon_remaining: Fraction
    delta_total: Fraction
    delta_spent: Fraction
    delta_remaining: Fraction
    delta_thresholding: Fraction
    delta_conversion: Fraction | None
    rho_total: Fraction | None
    rho_spent: Fraction | None
    rho_remaining: Fraction | None
    largest_laplace_epsilon: Fraction
    """The largest epsilon one discrete-Laplace query could still be charged."""
    spends: int

    def to_public(self) -> dict[str, object]:
        """JSON-ready floats: totals and remaining rounded down, spent rounded up."""

        return {
            "project": self.project_id,
            "mode": self.mode,
            "epsilon_total": float_down(self.epsilon_total),
            "epsilon_spent": float_up(self.epsilon_spent),
            "epsilon_remaining": float_down(self.epsilon_remaining),
            "delta_total": float_down(self.delta_total),
            "delta_spent": float_up(self.delta_spent),
            "delta_remaining": float_down(self.delta_remaining),
            "delta_thresholding": float_down(self.delta_thresholding),
            "delta_conversion": float_down_or_none(self.delta_conversion),
            "rho_total": float_down_or_none(self.rho_total),
            "rho_spent": float_up_or_none(self.rho_spent),
            "rho_remaining": float_down_or_none(self.rho_remaining),
            "largest_laplace_epsilon": float_down(self.largest_laplace_epsilon),
            "spends": self.spends,
        }


def budget_status(project_id: str, limits: BudgetLimits, totals: Totals) -> BudgetStatus:
    """Compute a project's status; zcdp epsilons come from OpenDP's conversion (cached)."""
    delta_remaining = max(limits.delta_thresholding - totals.delta, ZERO)
    if limits.mode == "pure":
        remaining = max(limits.epsilon - totals.epsilon, ZERO)
        return BudgetStatus(
            project_id=project_id,
            mode="pure",
            epsilon_total=limits.epsilon,
            epsilon_spent=totals.epsilon,
            epsilon_remaining=remaining,
            delta_total=limits.delta,
            delta_spent=totals.delta,
            delta_remaining=delta_remaining,
            delta_thresholding=limits.delta_thresholding,
            delta_conversion=None,
            rho_total=None,
            rho_spent=None,
            rho_remaining=None,
            largest_laplace_epsilon=remaining,
            spends=totals.spends,
        )
    assert limits.rho is not None and limits.delta_conversion is not None
    rho_remaining = max(limits.rho - totals.rho, ZERO)
    return BudgetStatus(
        project_id=project_id,
        mode="zcdp",
        epsilon_total=limits.epsilon,
        epsilon_spent=epsilon_at(totals.rho, limits.delta_conversion),
        epsilon_remaining=epsilon_at(rho_remaining, limits.delta_conversion),
        delta_total=limits.delta,
        delta_spent=totals.delta,
        delta_remaining=delta_remaining,
        delta_thresholding=limits.delta_thresholding,
        delta_conversion=limits.delta_conversion,
        rho_total=limits.rho,
        rho_spent=totals.rho,
        rho_remaining=rho_remaining,
        largest_laplace_epsilon=floor_sqrt(2 * rho_remaining),
        spends=totals.spends,
    )
