"""Property tests of the accounting algebra: exact composition, rounding, OpenDP conversions."""

from __future__ import annotations

import math
import tempfile
from fractions import Fraction
from pathlib import Path

import opendp.prelude as dp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budget_ledger import (
    BudgetExceeded,
    Charge,
    Ledger,
    MemoryStore,
    SqliteStore,
    Totals,
    epsilon_at,
    rho_budget,
)
from budget_ledger.loss import float_down, float_up, floor_sqrt, to_budget_amount, to_charge_amount
from tests.budget_ledger.ledger_helpers import Clock, pure_spec, zcdp_spec

KEY = b"k" * 32

small_fractions = st.fractions(min_value=0, max_value=2, max_denominator=10**6)
charges = st.builds(
    Charge, small_fractions, small_fractions, st.fractions(min_value=0, max_value=Fraction(1, 10**5))
)
finite_floats = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


def _independent_epsilon(rho: float, delta: float) -> float:
    """OpenDP's conversion, written out here without the ledger's code."""
    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=float)
    converted = dp.c.make_zCDP_to_approxDP(dp.m.make_gaussian(*space, scale=1.0))
    return float(converted.map(math.sqrt(2 * rho)).epsilon(delta=delta))


# --- exact values and rounding --------------------------------------------------------------------


@given(st.lists(charges, max_size=20))
def test_composition_is_exact_and_monotone(items: list[Charge]) -> None:
    totals, total_charge = Totals(), Charge()
    for charge in items:
        after = totals.add(charge)
        assert after.epsilon >= totals.epsilon and after.rho >= totals.rho and after.delta >= totals.delta
        totals, total_charge = after, total_charge + charge
    assert totals.epsilon == sum((c.epsilon for c in items), Fraction(0)) == total_charge.epsilon
    assert totals.rho == sum((c.rho + c.epsilon**2 / 2 for c in items), Fraction(0))
    assert totals.delta == total_charge.delta and totals.spends == len(items)


@given(finite_floats)
def test_floats_round_up_in_charges_and_down_in_budgets(x: float) -> None:
    charged, budgeted = to_charge_amount(x), to_budget_amount(x)
    assert charged >= Fraction(x) and charged >= Fraction(repr(x))
    assert budgeted <= Fraction(x) and budgeted <= Fraction(repr(x))
    assert Charge.of(epsilon=x).epsilon == charged


@given(st.fractions(min_value=0, max_value=10**6))
def test_float_rounding_helpers_bracket_the_value(value: Fraction) -> None:
    assert Fraction(float_down(value)) <= value <= Fraction(float_up(value))
    root = floor_sqrt(value)
    assert root * root <= value
    assert Fraction(math.nextafter(float(root), math.inf)) ** 2 > value or value == 0


# --- OpenDP conversions ---------------------------------------------------------------------------


def test_known_conversion_value() -> None:
    # OPENDP-NOTES: rho 0.9 at delta 1e-6 gives epsilon about 7.31 (the textbook bound gives 7.95).
    assert float(epsilon_at(Fraction(9, 10), Fraction(1, 10**6))) == pytest.approx(7.3064, abs=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    st.floats(min_value=1e-6, max_value=50, allow_nan=False),
    st.sampled_from([1e-9, 1e-7, 5e-7, 1e-5, 1e-3]),
)
def test_reported_epsilon_matches_opendp(rho: float, delta: float) -> None:
    ours = float(epsilon_at(Fraction(rho), Fraction(delta)))
    theirs = _independent_epsilon(rho, delta)
    assert theirs <= ours <= theirs * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=2, max_size=2))
def test_epsilon_is_monotone_in_rho(rhos: list[float]) -> None:
    low, high = sorted(Fraction(r) for r in rhos)
    delta = Fraction(1, 2 * 10**6)
    assert epsilon_at(low, delta) <= epsilon_at(high, delta)


@settings(max_examples=8, deadline=None)
@given(
    st.fractions(min_value=Fraction(1, 100), max_value=10, max_denominator=1000),
    st.fractions(min_value=Fraction(1, 100), max_value=10, max_denominator=1000),
    st.sampled_from([Fraction(1, 10**8), Fraction(1, 10**6)]),
)
def test_rho_budget_is_admissible_maximal_and_monotone(e1: Fraction, e2: Fraction, delta: Fraction) -> None:
    low, high = sorted((e1, e2))
    rho_low, rho_high = rho_budget(low, delta), rho_budget(high, delta)
    assert rho_low <= rho_high
    for epsilon, rho in ((low, rho_low), (high, rho_high)):
        assert epsilon_at(rho, delta) <= epsilon
        next_rho = Fraction(math.nextafter(float(rho), math.inf))
        assert epsilon_at(next_rho, delta) > epsilon


def test_rho_budget_grows_with_delta() -> None:
    assert rho_budget(Fraction(1), Fraction(1, 10**9)) < rho_budget(Fraction(1), Fraction(1, 10**5))


# --- the budget is never exceeded -----------------------------------------------------------------

spend_sequences = st.lists(
    st.tuples(
        st.sampled_from(["epsilon", "rho", "both"]),
        st.fractions(min_value=Fraction(1, 1000), max_value=Fraction(3, 4), max_denominator=1000),
        st.sampled_from([Fraction(0), Fraction(0), Fraction(1, 10**7)]),
        st.sampled_from([("cpr",), ("cpr", "lpr")]),
    ),
    max_size=25,
)


def _charge(kind: str, amount: Fraction, delta: Fraction) -> Charge:
    if kind == "epsilon":
        return Charge(epsilon=amount, delta=delta)
    if kind == "rho":
        return Charge(rho=amount * amount / 2, delta=delta)
    return Charge(epsilon=amount / 2, rho=amount * amount / 8, delta=delta)


def _run_sequence(
    ledger: Ledger, mode: str, sequence: list[tuple[str, Fraction, Fraction, tuple[str, ...]]]
) -> None:
    spec = (
        pure_spec("p", epsilon=2, delta="3e-7") if mode == "pure" else zcdp_spec("p", epsilon=3, delta="6e-7")
    )
    ledger.create_project(spec, "admin")
    ledger.set_register_cap("lpr", rho=Fraction(1, 2), delta=Fraction(1, 10**6), reason="cap", actor="admin")
    limits = ledger.get_project("p").limits
    model, model_lpr = Totals(), Totals()
    for i, (kind, amount, delta, registers) in enumerate(sequence):
        if mode == "pure" and kind != "epsilon":
            kind = "epsilon"
        charge = _charge(kind, amount, delta)
        after = model.add(charge)
        fits_project = (
            after.epsilon <= limits.epsilon
            if mode == "pure"
            else limits.rho is not None and after.rho <= limits.rho
        ) and after.delta <= limits.delta_thresholding
        fits_cap = "lpr" not in registers or (
            model_lpr.add(charge).rho <= Fraction(1, 2) and model_lpr.add(charge).delta <= Fraction(1, 10**6)
        )
        try:
            result = ledger.reserve_and_commit("p", registers, charge, f"h{i}", f"q{i}", actor="a")
        except BudgetExceeded:
            assert not (fits_project and fits_cap)
        else:
            assert result.charged and fits_project and fits_cap
            model = after
            if "lpr" in registers:
                model_lpr = model_lpr.add(charge)
        totals = ledger.get_project("p").totals
        assert totals == model
        if mode == "pure":
            assert totals.epsilon <= limits.epsilon
        else:
            assert limits.rho is not None and totals.rho <= limits.rho
        assert totals.delta <= limits.delta_thresholding
    caps = {c.register: c for c in ledger.register_caps()}
    if "lpr" in caps:
        assert caps["lpr"].rho_spent == model_lpr.rho <= Fraction(1, 2)
    assert ledger.verify().ok


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["pure", "zcdp"]), spend_sequences)
def test_random_spends_never_exceed_the_budget(mode: str, sequence: list) -> None:
    _run_sequence(Ledger(MemoryStore(), KEY, clock=Clock()), mode, sequence)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["pure", "zcdp"]), spend_sequences)
def test_random_spends_never_exceed_the_budget_in_sqlite(mode: str, sequence: list) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "ledger.sqlite")
        try:
            _run_sequence(Ledger(store, KEY, clock=Clock()), mode, sequence)
        finally:
            store.close()
