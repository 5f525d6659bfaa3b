"""Register caps: the population budget of one register across all projects.

A register cap bounds what everyone in one register bears across all projects, in the unit it was set
in (``CapLimits.unit``):

``epsilon``  (epsilon, delta=0)
    The sum of the pure epsilons of every charge on the register stays within epsilon (basic
    composition). A rho charge (discrete Gaussian) or a delta charge (thresholding) cannot be admitted.
``epsilon_delta``  (epsilon, delta>0)
    Converted like a zcdp budget: rho from OpenDP at delta/2, delta/2 for thresholding. Every charge is
    admitted as zCDP (pure epsilon counts as epsilon^2/2, which pure epsilon-DP implies).
``rho``  (rho, delta)
    Taken as given: rho for the zCDP total, delta for thresholding.

Why the published (epsilon, delta) holds for ``epsilon_delta``: every admitted charge i is
delta_i-approximate rho_i-zCDP, and the filter keeps sum(rho_i) <= rho_cap and sum(delta_i) <= delta/2
under fully adaptive composition. The composition is then (sum delta_i)-approximate rho_cap-zCDP, and
the zCDP -> approx-DP conversion at delta/2 gives (epsilon(rho_cap, delta/2), delta/2 + sum delta_i)-DP,
with epsilon(rho_cap, delta/2) <= epsilon by the construction of ``rho_budget`` and delta/2 + sum
delta_i <= delta. All comparisons are exact (Fractions); a charge that would exceed what is left is
refused and costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from .accounting import Totals, counted_as_rho, epsilon_at, rho_budget
from .errors import InvalidBudget, InvalidRequest, RegisterCapExceeded, RegisterCapPureOnly
from .loss import (
    ZERO,
    Amount,
    Charge,
    float_down,
    float_down_or_none,
    float_up,
    float_up_or_none,
    format_amount,
    to_budget_amount,
)

__all__ = [
    "CAP_UNITS",
    "CapLimits",
    "CapUnit",
    "RegisterStatus",
    "admit_register",
    "cap_from_amounts",
    "cap_limits",
    "check_cap_covers_spent",
    "register_status",
]

CapUnit = Literal["epsilon", "epsilon_delta", "rho"]
CAP_UNITS: tuple[CapUnit, ...] = ("epsilon", "epsilon_delta", "rho")


@dataclass(frozen=True)
class CapLimits:
    """A register's global cap: what the administrator set and the currency it is enforced in.

    ``epsilon_requested`` / ``delta_requested`` are what was set (the published guarantee); ``rho``
    is the zCDP currency (for an ``epsilon`` cap the rho that epsilon-DP implies, epsilon^2/2, kept
    for information only); ``delta`` is what thresholding charges may use in total.
    """

    rho: Fraction
    delta: Fraction
    epsilon_requested: Fraction | None
    delta_requested: Fraction

    @property
    def unit(self) -> CapUnit:
        """``epsilon`` (sum of pure epsilon), ``epsilon_delta`` (via rho) or ``rho`` (as given)."""
        if self.epsilon_requested is None:
            return "rho"
        return "epsilon" if self.delta_requested == 0 else "epsilon_delta"

    @property
    def delta_conversion(self) -> Fraction | None:
        """The part of the published delta that converts rho to epsilon (``epsilon_delta`` caps)."""
        return self.delta_requested - self.delta if self.unit == "epsilon_delta" else None


def cap_limits(*, epsilon: Fraction | None, rho: Fraction | None, delta: Fraction) -> CapLimits:
    """Derive a register cap from (epsilon, delta) or (rho, delta).

    (epsilon, 0) bounds the sum of pure epsilon. (epsilon, delta > 0) is converted like a zcdp budget:
    rho from OpenDP at delta/2, delta/2 for thresholding. (rho, delta) is taken as given.
    """
    if (epsilon is None) == (rho is None):
        raise InvalidBudget("Give a register cap as exactly one of epsilon or rho, with delta.")
    if delta < 0 or delta >= 1:
        raise InvalidBudget(f"Delta must be in [0, 1), got {format_amount(delta)}.")
    if rho is not None:
        if rho < 0:
            raise InvalidBudget("Rho must not be negative.")
        return CapLimits(rho, delta, None, delta)
    assert epsilon is not None
    if epsilon < 0:
        raise InvalidBudget("Epsilon must not be negative.")
    if delta == 0:
        return CapLimits(epsilon * epsilon / 2, ZERO, epsilon, delta)
    return CapLimits(rho_budget(epsilon, delta / 2), delta / 2, epsilon, delta)


def cap_from_amounts(epsilon: Amount | None, rho: Amount | None, delta: Amount) -> CapLimits:
    """``cap_limits`` from what a caller typed (floats rounded down, as for any budget)."""
    try:
        return cap_limits(
            epsilon=None if epsilon is None else to_budget_amount(epsilon, "epsilon"),
            rho=None if rho is None else to_budget_amount(rho, "rho"),
            delta=to_budget_amount(delta, "delta"),
        )
    except InvalidRequest as exc:
        raise InvalidBudget(exc.message) from None


def check_cap_covers_spent(register: str, cap: CapLimits, spent: Totals, *, borne_rho: bool) -> None:
    """Refuse a cap that what ``register`` has already borne would break, in the cap's own unit.

    ``borne_rho`` says whether any rho (discrete Gaussian) charge touched the register: the totals
    alone cannot tell it apart from the epsilon^2/2 of pure charges.
    """
    if cap.unit == "epsilon":
        if borne_rho or spent.delta > 0:
            raise InvalidBudget(
                f"Register '{register}' has already borne rho (discrete Gaussian) or delta "
                "(thresholding) charges, which a pure cap (epsilon, delta 0) cannot account for. Give "
                "the cap with a delta above 0, or as rho and delta."
            )
        if spent.epsilon > (cap.epsilon_requested or ZERO):
            raise InvalidBudget(
                f"Register '{register}' has already borne epsilon {format_amount(spent.epsilon)}; the "
                f"cap epsilon {format_amount(cap.epsilon_requested or ZERO)} would be below that. To "
                "stop all further use, set the cap to the spent epsilon."
            )
        return
    if spent.rho > cap.rho or spent.delta > cap.delta:
        raise InvalidBudget(
            f"Register '{register}' has already borne rho {format_amount(spent.rho)} and delta "
            f"{format_amount(spent.delta)}; the cap (rho {format_amount(cap.rho)}, delta "
            f"{format_amount(cap.delta)}) would be below that. To stop all further use, set the cap "
            "to the spent amounts as rho and delta."
        )


def admit_register(
    project_id: str, register: str, cap: CapLimits | None, totals: Totals, charge: Charge
) -> None:
    """Raise ``RegisterCapExceeded`` unless ``charge`` fits under the register's global cap.

    An ``epsilon`` cap admits only pure epsilon (sum of epsilon <= cap); a rho charge against it
    raises ``RegisterCapPureOnly``. Other caps admit every charge as zCDP rho (pure epsilon as
    epsilon^2/2). Deltas add up against the cap's thresholding delta in every unit.
    """
    if cap is None:
        return
    if cap.unit == "epsilon" and charge.rho > 0:
        raise RegisterCapPureOnly(
            f"This query is charged rho {format_amount(charge.rho)} (a discrete Gaussian), but register "
            f"'{register}' has a pure-DP cap (epsilon {format_amount(cap.epsilon_requested or ZERO)}, "
            "delta 0) that only sums pure epsilon, so no rho can be admitted against it. State the "
            "query's loss as epsilon (discrete Laplace), or ask an administrator for a cap with a delta "
            "above 0.",
            project_id=project_id,
            register=register,
            measure="rho",
            requested=charge.rho,
            remaining=ZERO,
        )
    if cap.unit == "epsilon":
        assert cap.epsilon_requested is not None
        checks = [("epsilon", charge.epsilon, cap.epsilon_requested, totals.epsilon)]
    else:
        checks = [("rho", charge.zcdp_rho, cap.rho, totals.rho)]
    checks.append(("delta", charge.delta, cap.delta, totals.delta))
    for measure, requested, cap_value, spent in checks:
        if spent + requested > cap_value:
            remaining = max(cap_value - spent, ZERO)
            need = f"{measure} {_show(requested, up=True)}"
            left = _show(remaining)
            also = ""
            if measure == "rho":
                need = counted_as_rho(charge)
                left = f"rho {left}"
                if cap.delta_conversion is not None and cap.epsilon_requested is not None:
                    also = (
                        f"; that is epsilon {_show(epsilon_at(remaining, cap.delta_conversion))} left of the cap "
                        f"epsilon {_show(cap.epsilon_requested, up=True)} at delta {_show(cap.delta_requested, up=True)}"
                    )
            raise RegisterCapExceeded(
                f"This query needs {need} on register '{register}', whose global cap across all projects "
                f"has {left} left ({_show(requested - remaining, up=True)} short){also}. The cap protects everyone "
                f"in '{register}'; a query with a smaller loss may still fit, otherwise an administrator "
                "decides on the cap.",
                project_id=project_id,
                register=register,
                measure=measure,
                requested=requested,
                remaining=remaining,
            )


@dataclass(frozen=True)
class RegisterStatus:
    """Total privacy loss borne by one register across all projects, and its cap if set.

    ``rho_spent`` is the zCDP total (every charge's ``rho + epsilon^2/2``; what ``epsilon_delta`` and
    ``rho`` caps are checked against), ``epsilon_spent`` the pure-DP part alone: the exact sum of the
    epsilon of every charge (discrete Laplace, noisy max) in any project, by basic composition (what
    ``epsilon`` caps are checked against). Discrete-Gaussian charges appear only in ``rho_spent``.
    """

    register: str
    rho_spent: Fraction
    delta_spent: Fraction
    spends: int
    cap: CapLimits | None
    epsilon_spent: Fraction

    @property
    def rho_remaining(self) -> Fraction | None:
        """Rho left under the cap (None without a cap; 0 for an ``epsilon`` cap with no pure room)."""
        if self.cap is None:
            return None
        if self.cap.unit == "epsilon":
            return ZERO  # no rho charge can be admitted against a pure cap
        return max(self.cap.rho - self.rho_spent, ZERO)

    @property
    def delta_remaining(self) -> Fraction | None:
        """Delta left under the cap (None without a cap)."""
        return None if self.cap is None else max(self.cap.delta - self.delta_spent, ZERO)

    @property
    def epsilon_remaining(self) -> Fraction | None:
        """Epsilon left in the cap's own terms: pure epsilon for ``epsilon`` caps, the OpenDP epsilon
        of the remaining rho at the conversion delta for ``epsilon_delta`` caps, else None."""
        cap = self.cap
        if cap is None or cap.epsilon_requested is None:
            return None
        if cap.unit == "epsilon":
            return max(cap.epsilon_requested - self.epsilon_spent, ZERO)
        assert cap.delta_conversion is not None and self.rho_remaining is not None
        return epsilon_at(self.rho_remaining, cap.delta_conversion)

    @property
    def epsilon_equivalent_spent(self) -> Fraction | None:
        """For ``epsilon_delta`` caps: the OpenDP epsilon of the rho spent, at the conversion delta."""
        cap = self.cap
        if cap is None or cap.delta_conversion is None:
            return None
        return epsilon_at(self.rho_spent, cap.delta_conversion)

    def promise(self) -> str:
        """In plain words: what everyone in the register is promised across all projects together."""
        cap, name = self.cap, self.register
        if cap is None:
            return (
                f"No cap: the total privacy loss of the people in '{name}' across all projects is bounded "
                "only by each project's own budget."
            )
        if cap.unit == "epsilon":
            assert cap.epsilon_requested is not None
            return (
                f"Everyone in '{name}' is promised that all projects together release no more than "
                f"epsilon = {_show(cap.epsilon_requested, up=True)} about them (pure differential privacy, the sum "
                f"over every query). Spent so far: epsilon {_show(self.epsilon_spent, up=True)}; left: "
                f"{_show(self.epsilon_remaining or ZERO)}."
            )
        if cap.unit == "epsilon_delta":
            assert cap.epsilon_requested is not None
            return (
                f"Everyone in '{name}' is promised that all projects together stay within "
                f"(epsilon = {_show(cap.epsilon_requested, up=True)}, delta = {_show(cap.delta_requested, up=True)}) "
                f"differential privacy for them. Spent so far: rho {_show(self.rho_spent, up=True)} of "
                f"{_show(cap.rho, up=True)} (about epsilon {_show(self.epsilon_equivalent_spent or ZERO, up=True)}); "
                f"left: rho {_show(self.rho_remaining or ZERO)}."
            )
        return (
            f"Everyone in '{name}' is promised that all projects together stay within rho = "
            f"{_show(cap.rho, up=True)} zero-concentrated differential privacy (delta {_show(cap.delta, up=True)} for "
            f"thresholding). Spent so far: rho {_show(self.rho_spent, up=True)}; left: "
            f"{_show(self.rho_remaining or ZERO)}."
        )

    def to_public(self) -> dict[str, object]:
        """JSON-ready floats (caps and remaining rounded down, spent rounded up)."""
        cap = self.cap

        return {
            "register": self.register,
            "epsilon_spent": float_up(self.epsilon_spent),
            "rho_spent": float_up(self.rho_spent),
            "delta_spent": float_up(self.delta_spent),
            "spends": self.spends,
            "cap_rho": None if cap is None else float_down(cap.rho),
            "cap_delta": None if cap is None else float_down(cap.delta),
            "cap_epsilon_requested": None if cap is None else float_down_or_none(cap.epsilon_requested),
            "rho_remaining": float_down_or_none(self.rho_remaining),
            "delta_remaining": float_down_or_none(self.delta_remaining),
            "cap_unit": None if cap is None else cap.unit,
            "cap_delta_requested": None if cap is None else float_down(cap.delta_requested),
            "epsilon_remaining": float_down_or_none(self.epsilon_remaining),
            "epsilon_equivalent_spent": float_up_or_none(self.epsilon_equivalent_spent),
            "promise": self.promise(),
        }


def _show(value: Fraction, *, up: bool = False) -> str:
    """An amount for a sentence, rounded to the safe side: a promised cap and what is spent up (a promise
    of a larger loss stays true), what is left down."""
    return format_amount(value, rounding="up" if up else "down")


def register_status(register: str, cap: CapLimits | None, totals: Totals) -> RegisterStatus:
    """Build a register's status from its cap and running totals."""
    return RegisterStatus(register, totals.rho, totals.delta, totals.spends, cap, totals.epsilon)
