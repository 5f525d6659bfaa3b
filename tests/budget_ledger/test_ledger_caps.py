"""Register caps mean what they publish: (epsilon, 0) bounds the sum of pure epsilon, (epsilon, delta>0)
bounds the zCDP total converted with OpenDP, and the default population budget is recorded once.

Tests that take the ``ledger`` fixture run again on PostgreSQL (``test_postgres_api`` collects them).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction

import opendp.prelude as dp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budget_ledger import (
    Charge,
    InvalidBudget,
    Ledger,
    MemoryStore,
    ProjectSpec,
    RegisterCapExceeded,
    RegisterCapPureOnly,
)
from budget_ledger.loss import float_down, float_up
from tests.budget_ledger.ledger_helpers import Clock, pure_spec, zcdp_spec

KEY = b"k" * 32
REGISTERS = ("cpr", "lpr", "lmdb")


def _spend(ledger: Ledger, query: str, charge: Charge, project: str, registers: tuple[str, ...]) -> object:
    return ledger.reserve_and_commit(
        project, registers, charge, f"h-{query}", json.dumps({"q": query}), actor="analyst-1"
    )


# --- the review's finding, at the ledger ----------------------------------------------------------


def test_pure_cap_admits_exactly_its_sum_of_epsilon(ledger: Ledger) -> None:
    """Cap (1, 0) then 100 queries at epsilon 1/10: ten fit (not 100, as a rho = 1/2 cap admitted)."""
    ledger.create_project(pure_spec("p1", epsilon=100), "admin")
    ledger.set_register_cap("cpr", epsilon=1, delta=0, reason="review", actor="admin")
    admitted = 0
    for i in range(100):
        try:
            _spend(ledger, f"q{i}", Charge(epsilon=Fraction(1, 10)), "p1", ("cpr",))
            admitted += 1
        except RegisterCapExceeded as exc:
            assert exc.code == "budget_exceeded" and exc.measure == "epsilon" and exc.remaining == 0
    assert admitted == 10
    status = {s.register: s for s in ledger.register_caps()}["cpr"]
    assert status.epsilon_spent == 1 and status.epsilon_remaining == 0
    public = status.to_public()
    assert public["cap_unit"] == "epsilon" and public["cap_epsilon_requested"] == 1.0
    assert public["epsilon_spent"] == 1.0 and public["epsilon_remaining"] == 0.0
    assert "epsilon = 1 about them" in str(public["promise"])


def test_pure_cap_refuses_rho_and_delta(ledger: Ledger) -> None:
    ledger.create_project(zcdp_spec("z1", epsilon=50), "admin")
    ledger.set_register_cap("lpr", epsilon=5, delta=0, reason="pure only", actor="admin")
    with pytest.raises(RegisterCapPureOnly) as info:
        _spend(ledger, "g", Charge(rho=Fraction(1, 1000)), "z1", ("cpr", "lpr"))
    error = info.value
    assert error.code == "register_cap_pure_only" and error.status == 403 and error.register == "lpr"
    assert "discrete Laplace" in error.message and "cap with a delta above 0" in error.message
    with pytest.raises(RegisterCapExceeded, match="needs delta"):
        _spend(ledger, "t", Charge(epsilon=Fraction(1, 10), delta=Fraction(1, 10**9)), "z1", ("lpr",))
    _spend(ledger, "l", Charge(epsilon=Fraction(1, 10)), "z1", ("lpr",))  # pure epsilon fits
    assert {s.register: s.spends for s in ledger.register_caps()} == {"lpr": 1}  # nothing on cpr


def test_pure_cap_is_refused_after_gaussian_spends(ledger: Ledger) -> None:
    ledger.create_project(zcdp_spec("z1", epsilon=50), "admin")
    _spend(ledger, "g", Charge(rho=Fraction(1, 100)), "z1", ("lpr",))
    with pytest.raises(InvalidBudget, match="cannot account for"):
        ledger.set_register_cap("lpr", epsilon=5, delta=0, reason="too late", actor="admin")
    capped = ledger.set_register_cap("lpr", epsilon=5, delta="1e-6", reason="with delta", actor="admin")
    assert capped.cap is not None and capped.cap.unit == "epsilon_delta"


def test_a_legacy_pure_cap_over_gaussian_spends_is_named(ledger: Ledger) -> None:
    """An older ledger may hold an (epsilon, 0) cap that Gaussian charges got through; it is reported."""
    ledger.create_project(zcdp_spec("z1", epsilon=50), "admin")
    ledger.set_register_cap("lpr", epsilon=1, delta=0, reason="pure", actor="admin")
    ledger.set_register_cap("cpr", epsilon=1, delta=0, reason="pure", actor="admin")
    _spend(ledger, "l", Charge(epsilon=Fraction(1, 10)), "z1", ("cpr", "lpr"))
    assert ledger.pure_caps_with_rho() == []
    with ledger.store.transaction() as tx:  # what the old admission let through: a Gaussian on lpr
        state = tx.get_register("lpr")
        assert state is not None
        tx.put_register(replace(state, totals=state.totals.add(Charge(rho=Fraction(1, 4)))))
        first = next(iter(tx.list_spends()))
        gaussian = Charge(rho=Fraction(1, 4))
        tx.insert_spend(
            replace(
                first,
                spend_id="sp_legacy",
                query_hash="h-legacy",
                charge=gaussian,
                registers=("lpr",),
                audit_seq=10**6,
            )
        )
    assert ledger.pure_caps_with_rho() == ["lpr"]


def test_pure_cap_below_spent_epsilon_is_refused(ledger: Ledger) -> None:
    ledger.create_project(pure_spec("p1", epsilon=10), "admin")
    _spend(ledger, "a", Charge(epsilon=Fraction(3, 2)), "p1", ("cpr",))
    with pytest.raises(InvalidBudget, match="already borne epsilon 1.5"):
        ledger.set_register_cap("cpr", epsilon=1, delta=0, reason="r", actor="admin")
    frozen = ledger.set_register_cap("cpr", epsilon=Fraction(3, 2), delta=0, reason="freeze", actor="admin")
    assert frozen.epsilon_remaining == 0


def test_approx_cap_reports_rho_and_its_epsilon_equivalent(ledger: Ledger) -> None:
    ledger.create_project(zcdp_spec("z1", epsilon=50), "admin")
    status = ledger.set_register_cap("cpr", epsilon=2, delta="1e-6", reason="r", actor="admin")
    assert status.cap is not None and status.cap.delta_conversion == status.cap.delta == Fraction(
        1, 2 * 10**6
    )
    _spend(ledger, "g", Charge(rho=Fraction(1, 20)), "z1", ("cpr",))
    _spend(ledger, "l", Charge(epsilon=Fraction(1, 10)), "z1", ("cpr",))  # counts as rho 1/200
    public = {s.register: s for s in ledger.register_caps()}["cpr"].to_public()
    assert public["cap_unit"] == "epsilon_delta" and public["cap_delta_requested"] == 1e-6
    assert public["rho_spent"] == float_up(Fraction(1, 20) + Fraction(1, 200))
    assert 0 < public["epsilon_equivalent_spent"] < 2  # type: ignore[operator]
    assert 0 < public["epsilon_remaining"] < 2  # type: ignore[operator]
    assert "(epsilon = 2, delta = 1e-6)" in str(public["promise"])


# --- the default population budget ----------------------------------------------------------------


def test_default_cap_is_recorded_once_and_never_replaces_a_cap(ledger: Ledger) -> None:
    ledger.set_register_cap("lpr", epsilon=50, delta="1e-5", reason="board decision", actor="admin")
    for _ in range(2):  # a second start records nothing new
        for register in REGISTERS:
            ledger.set_default_register_cap(
                register, epsilon=20, delta="1e-7", reason="default population budget", actor="system"
            )
    caps = {s.register: s.cap for s in ledger.register_caps()}
    assert caps["lpr"] is not None and caps["lpr"].epsilon_requested == 50
    for register in ("cpr", "lmdb"):
        cap = caps[register]
        assert cap is not None and cap.unit == "epsilon_delta"
        assert (cap.epsilon_requested, cap.delta_requested) == (20, Fraction(1, 10**7))
    entries = [e for e in ledger.audit_entries() if e.kind == "register_cap_set"]
    assert [e.payload["reason"] for e in entries] == [
        "board decision",
        "default population budget",
        "default population budget",
    ]
    assert ledger.verify().ok


def test_default_cap_closes_a_register_that_already_bore_more(ledger: Ledger) -> None:
    ledger.create_project(pure_spec("p1", epsilon=100), "admin")
    _spend(ledger, "a", Charge(epsilon=3), "p1", ("cpr",))  # rho 9/2 > the default's ~4.19
    status = ledger.set_default_register_cap(
        "cpr", epsilon=20, delta="1e-7", reason="default population budget", actor="system"
    )
    assert status is not None and status.rho_remaining == 0
    with pytest.raises(RegisterCapExceeded):
        _spend(ledger, "b", Charge(epsilon=Fraction(1, 1000)), "p1", ("cpr",))
    assert ledger.verify().ok


def test_cap_round_trips_through_the_store(ledger: Ledger) -> None:
    ledger.set_register_cap("cpr", epsilon=Fraction(7, 3), delta=0, reason="r", actor="admin")
    ledger.set_register_cap("lpr", epsilon=3, delta="1e-6", reason="r", actor="admin")
    ledger.set_register_cap("lmdb", rho=Fraction(1, 3), delta="1e-8", reason="r", actor="admin")
    caps = {s.register: s.cap for s in ledger.register_caps()}
    assert [caps[r].unit for r in REGISTERS] == ["epsilon", "epsilon_delta", "rho"]  # type: ignore[union-attr]
    assert caps["cpr"].epsilon_requested == Fraction(7, 3)  # type: ignore[union-attr]
    assert caps["lpr"].delta_requested == Fraction(1, 10**6)  # type: ignore[union-attr]
    assert caps["lmdb"].rho == Fraction(1, 3)  # type: ignore[union-attr]
    assert ledger.verify().ok


# --- property: everything admitted implies the published guarantee --------------------------------


def _independent_epsilon(rho: Fraction, delta: Fraction) -> Fraction:
    """OpenDP's zCDP -> approx-DP conversion at ``delta``, built here without the ledger's code: a
    discrete Gaussian of scale 1/sqrt(2 rho) at distance 1, its scale nudged down until OpenDP says it
    is at least rho-zCDP."""
    dp.enable_features("contrib")
    if rho == 0:
        return Fraction(0)
    space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=float)
    scale = 1 / math.sqrt(2 * float_up(rho))
    while Fraction(dp.m.make_gaussian(*space, scale=scale).map(1.0)) < rho:
        scale = math.nextafter(scale, 0)
    converted = dp.c.make_zCDP_to_approxDP(dp.m.make_gaussian(*space, scale=scale))
    return Fraction(converted.map(1.0).epsilon(delta=float_down(delta)))


CAPS = st.sampled_from(
    [None, (Fraction(1), Fraction(0)), (Fraction(3), Fraction(0))]
    + [
        (e, d)
        for e in (Fraction(1, 2), Fraction(2), Fraction(6))
        for d in (Fraction(1, 10**6), Fraction(1, 10**4))
    ]
)
CHARGES = st.one_of(
    st.builds(Charge, epsilon=st.fractions(Fraction(1, 100), Fraction(3, 2), max_denominator=100)),
    st.builds(Charge, rho=st.fractions(Fraction(1, 1000), Fraction(1, 2), max_denominator=1000)),
    st.builds(
        Charge,
        epsilon=st.fractions(Fraction(1, 100), 1, max_denominator=100),
        delta=st.sampled_from([Fraction(1, 10**8), Fraction(1, 10**6), Fraction(1, 10**5)]),
    ),
    st.builds(
        Charge,
        rho=st.fractions(Fraction(1, 1000), Fraction(1, 4), max_denominator=1000),
        delta=st.sampled_from([Fraction(1, 10**8), Fraction(1, 10**6)]),
    ),
)
SPENDS = st.lists(
    st.tuples(st.lists(st.sampled_from(REGISTERS), min_size=1, max_size=3, unique=True), CHARGES),
    min_size=1,
    max_size=25,
)


def _fits(cap: tuple[Fraction, Fraction], admitted: list[Charge], charge: Charge) -> bool:
    """Whether ``charge`` on top of ``admitted`` keeps the published (epsilon, delta), by the test's own
    arithmetic (a small relative slack for the conversion's float search)."""
    epsilon, delta = cap
    spent = [*admitted, charge]
    if delta == 0:
        return charge.rho == 0 and charge.delta == 0 and sum(c.epsilon for c in spent) <= epsilon
    thresholding = sum((c.delta for c in spent), Fraction(0))
    if thresholding > delta / 2:
        return False
    rho = sum((c.rho + c.epsilon**2 / 2 for c in spent), Fraction(0))
    return _independent_epsilon(rho, delta / 2) <= epsilon * (1 - Fraction(1, 10**6))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(CAPS, CAPS, CAPS), SPENDS)
def test_everything_admitted_implies_the_published_cap(
    caps: tuple[tuple[Fraction, Fraction] | None, ...], spends: list[tuple[list[str], Charge]]
) -> None:
    ledger = Ledger(MemoryStore(), KEY, clock=Clock())
    # A project budget far above every cap, so that only the caps decide.
    spec = ProjectSpec(
        id="big", title="t", purpose="research", registers=REGISTERS, mode="zcdp", epsilon=10**4, delta="1/2"
    )
    ledger.create_project(spec, "admin")
    published = dict(zip(REGISTERS, caps, strict=True))
    for register, cap in published.items():
        if cap is not None:
            ledger.set_register_cap(register, epsilon=cap[0], delta=cap[1], reason="r", actor="admin")
    admitted: dict[str, list[Charge]] = {r: [] for r in REGISTERS}
    for i, (registers, charge) in enumerate(spends):
        try:
            _spend(ledger, f"q{i}", charge, "big", tuple(registers))
        except RegisterCapExceeded as exc:
            cap = published[exc.register]
            assert cap is not None and not _fits(cap, admitted[exc.register], charge), (
                f"refused a charge that fits under {exc.register}'s cap: {exc.message}"
            )
            continue
        for register in registers:
            admitted[register].append(charge)

    for register, cap in published.items():
        if cap is None:
            continue
        epsilon, delta = cap
        charges = admitted[register]
        if delta == 0:
            assert all(c.rho == 0 and c.delta == 0 for c in charges)
            assert sum((c.epsilon for c in charges), Fraction(0)) <= epsilon
            continue
        thresholding = sum((c.delta for c in charges), Fraction(0))
        rho_total = sum((c.rho + c.epsilon**2 / 2 for c in charges), Fraction(0))
        assert thresholding <= delta / 2
        # (rho_total, thresholding)-approximate zCDP -> (epsilon', delta - thresholding + thresholding).
        assert _independent_epsilon(rho_total, delta - thresholding) <= epsilon
