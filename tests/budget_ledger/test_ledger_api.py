"""The Ledger's public API on a real SQLite file: projects, budgets, caps, spends, releases."""

from __future__ import annotations

import json
import re
import threading
from datetime import date
from fractions import Fraction

import pytest

from budget_ledger import (
    BudgetExceeded,
    Charge,
    IdempotencyConflict,
    InvalidBudget,
    InvalidRequest,
    Ledger,
    MemoryStore,
    ModeMismatch,
    PermitExpired,
    ProjectExists,
    RegisterCapExceeded,
    RegisterNotPermitted,
    SpendNotPending,
    UnknownProject,
    UnknownRelease,
    UnknownSpend,
    epsilon_at,
)
from budget_ledger.loss import float_up
from tests.budget_ledger.ledger_helpers import Clock, pure_spec, zcdp_spec

HALF = Charge(epsilon=Fraction(1, 2))


def spend(ledger: Ledger, query: str, charge: Charge = HALF, project: str = "diabetes-2026", **kw: object):
    registers = kw.pop("registers", ("cpr",))
    return ledger.reserve_and_commit(
        project,
        registers,  # type: ignore[arg-type]
        charge,
        f"h-{query}",
        json.dumps({"q": query}),
        kw.pop("idempotency_key", None),  # type: ignore[arg-type]
        actor=str(kw.pop("actor", "analyst-1")),
    )


# --- projects -------------------------------------------------------------------------------------


def test_create_get_list_projects(ledger: Ledger) -> None:
    created = ledger.create_project(pure_spec(expires="2027-12-31"), "admin")
    ledger.create_project(zcdp_spec(), "admin")
    assert ledger.get_project("diabetes-2026") == created
    assert created.registers == ("cpr", "lmdb", "lpr")
    assert created.expires == date(2027, 12, 31)
    assert [p.id for p in ledger.list_projects()] == ["diabetes-2026", "heart-2026"]
    with pytest.raises(ProjectExists) as info:
        ledger.create_project(pure_spec(), "admin")
    assert info.value.status == 409 and info.value.code == "conflict"
    with pytest.raises(UnknownProject) as missing:
        ledger.get_project("nope")
    assert missing.value.to_body() == {
        "ok": False,
        "code": "project_not_found",
        "error": "There is no project 'nope'. Check the id (it is case-sensitive).",
        "status": 404,
    }


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"project_id": "Bad Id"}, InvalidRequest, id="bad_id"),
        pytest.param({"registers": ()}, InvalidRequest, id="no_registers"),
        pytest.param({"registers": ("CPR",)}, InvalidRequest, id="bad_register"),
        pytest.param({"epsilon": -1}, InvalidBudget, id="negative_epsilon"),
        pytest.param({"epsilon": float("nan")}, InvalidBudget, id="nan_epsilon"),
        pytest.param({"mode": "renyi"}, InvalidBudget, id="unknown_mode"),
        pytest.param({"expires": "31-12-2027"}, InvalidRequest, id="bad_expiry"),
    ],
)
def test_invalid_project_specs_are_refused(changes: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        pure_spec(**changes)  # type: ignore[arg-type]


def test_zcdp_project_needs_delta(ledger: Ledger) -> None:
    with pytest.raises(InvalidBudget, match="needs delta above 0"):
        ledger.create_project(zcdp_spec(delta=0), "admin")


# --- spending and the cache -----------------------------------------------------------------------


def test_release_flow_then_identical_query_is_cached_free(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    first = spend(ledger, "a")
    assert first.status == "committed" and first.charged
    assert ledger.budget("diabetes-2026").epsilon_spent == Fraction(1, 2)
    stored = ledger.store_release(first.spend_id, "r_1", '{"value": 1}')
    assert stored.project_id == "diabetes-2026"

    again = spend(ledger, "a")
    assert again.status == "cached" and not again.charged
    assert again.release_json == '{"value": 1}' and again.spend_id == first.spend_id
    assert ledger.budget("diabetes-2026").epsilon_spent == Fraction(1, 2)
    assert ledger.get_release("diabetes-2026", "r_1") == stored
    assert ledger.list_releases("diabetes-2026") == [stored]
    with pytest.raises(UnknownRelease):
        ledger.get_release("diabetes-2026", "r_2")


def test_cached_release_is_the_release_reserve_and_commit_would_return(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    ledger.create_project(pure_spec("other"), "admin")
    assert ledger.cached_release("diabetes-2026", "h-a") is None
    first = spend(ledger, "a")
    assert ledger.cached_release("diabetes-2026", "h-a") is None  # charged, not yet released
    stored = ledger.store_release(first.spend_id, "r_1", '{"value": 1}')
    head = ledger.audit_head()

    assert ledger.cached_release("diabetes-2026", "h-a") == stored
    assert ledger.cached_release("other", "h-a") is None  # per project
    assert ledger.cached_release("nope", "h-a") is None  # an unknown project has no releases
    assert ledger.audit_head() == head  # a read: nothing chained, nothing charged
    assert ledger.budget("diabetes-2026").spends == 1
    assert spend(ledger, "a").release == stored


def test_cached_release_does_not_wait_for_the_write_lock(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    first = spend(ledger, "a")
    stored = ledger.store_release(first.spend_id, "r_1", "{}")
    found: list[object] = []
    with ledger.store.transaction():  # another request holds the ledger's write lock
        reader = threading.Thread(target=lambda: found.append(ledger.cached_release("diabetes-2026", "h-a")))
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive(), "cached_release waited for the write lock"
    assert found == [stored]


def test_cache_is_per_project(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    ledger.create_project(pure_spec("other"), "admin")
    first = spend(ledger, "a")
    ledger.store_release(first.spend_id, "r_1", "{}")
    assert spend(ledger, "a", project="other").status == "committed"
    with pytest.raises(UnknownRelease):
        ledger.get_release("other", "r_1")


def test_idempotency_key_replays_the_stored_release(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    first = spend(ledger, "a", idempotency_key="k1")
    assert spend(ledger, "a", idempotency_key="k1").status == "pending"
    ledger.store_release(first.spend_id, "r_1", '{"v": 7}')
    replay = spend(ledger, "a", idempotency_key="k1")
    assert replay.status == "replayed" and replay.release_json == '{"v": 7}' and not replay.charged
    assert ledger.budget("diabetes-2026").spends == 1
    with pytest.raises(IdempotencyConflict):
        spend(ledger, "b", idempotency_key="k1")


def test_failed_spend_with_key_returns_the_failure_never_fresh_noise(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    first = spend(ledger, "a", idempotency_key="k1")
    ledger.mark_failed(first.spend_id, "execution_timeout")
    retry = spend(ledger, "a", idempotency_key="k1")
    assert retry.status == "failed" and retry.failure_code == "execution_timeout"
    assert ledger.budget("diabetes-2026").epsilon_spent == Fraction(1, 2)  # no refund
    with pytest.raises(SpendNotPending):
        ledger.store_release(first.spend_id, "r_1", "{}")
    # Without the key the same query is a new request: charged again, fresh noise is paid for.
    assert spend(ledger, "a").status == "committed"
    assert ledger.budget("diabetes-2026").epsilon_spent == 1


def test_identical_query_in_progress_is_pending_until_abandoned(ledger: Ledger, clock: Clock) -> None:
    ledger.create_project(pure_spec(epsilon=2), "admin")
    first = spend(ledger, "a")
    other = spend(ledger, "a")
    assert other.status == "pending" and other.spend_id == first.spend_id and not other.charged
    clock.advance(ledger.pending_timeout + 1)
    fresh = spend(ledger, "a")
    assert fresh.status == "committed" and fresh.spend_id != first.spend_id
    assert ledger.get_spend(first.spend_id).failure_code == "abandoned"
    assert ledger.budget("diabetes-2026").epsilon_spent == 1


def test_abandoned_spend_with_key_is_reported_failed(ledger: Ledger, clock: Clock) -> None:
    ledger.create_project(pure_spec(), "admin")
    first = spend(ledger, "a", idempotency_key="k1")
    clock.advance(ledger.pending_timeout + 1)
    retry = spend(ledger, "a", idempotency_key="k1")
    assert retry.status == "failed" and retry.failure_code == "abandoned"
    assert ledger.verify().ok
    with pytest.raises(SpendNotPending, match="do not return this answer"):
        ledger.store_release(first.spend_id, "r_1", "{}")


def test_store_release_is_idempotent_and_checks_its_input(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    first = spend(ledger, "a")
    stored = ledger.store_release(first.spend_id, "r_1", "{}")
    assert ledger.store_release(first.spend_id, "r_1", "{}") == stored
    with pytest.raises(SpendNotPending):
        ledger.store_release(first.spend_id, "r_2", "{}")
    second = spend(ledger, "b")
    with pytest.raises(InvalidRequest, match="already used"):
        ledger.store_release(second.spend_id, "r_1", "{}")
    with pytest.raises(InvalidRequest, match="JSON"):
        ledger.store_release(second.spend_id, "r_2", "not json")
    with pytest.raises(UnknownSpend):
        ledger.store_release("sp_missing", "r_3", "{}")
    with pytest.raises(SpendNotPending):
        ledger.mark_failed(first.spend_id, "boom")


@pytest.mark.parametrize(
    "charge",
    [
        pytest.param(Charge(), id="zero"),
        pytest.param("0.5", id="not_a_charge"),
    ],
)
def test_bad_charges_are_refused(ledger: Ledger, charge: object) -> None:
    ledger.create_project(pure_spec(), "admin")
    with pytest.raises(InvalidRequest):
        spend(ledger, "a", charge)  # type: ignore[arg-type]
    assert ledger.budget("diabetes-2026").spends == 0


def test_negative_charge_cannot_be_built() -> None:
    with pytest.raises(InvalidRequest):
        Charge(epsilon=Fraction(-1, 2))


def test_register_outside_the_project_is_refused(ledger: Ledger) -> None:
    ledger.create_project(zcdp_spec(), "admin")
    with pytest.raises(RegisterNotPermitted, match="lmdb") as info:
        spend(ledger, "a", Charge(rho=Fraction(1, 100)), project="heart-2026", registers=("cpr", "lmdb"))
    assert (info.value.code, info.value.status) == ("register_not_permitted", 403)
    assert ledger.budget("heart-2026").spends == 0


def test_expired_permit_spends_and_serves_nothing_but_keeps_its_releases(
    ledger: Ledger, clock: Clock
) -> None:
    ledger.create_project(pure_spec(expires="2026-03-01"), "admin")
    first = spend(ledger, "a")
    ledger.store_release(first.spend_id, "r_1", "{}")
    assert spend(ledger, "a").status == "cached"  # on the expiry day itself the permit still holds
    clock.advance(86400)
    with pytest.raises(PermitExpired) as info:
        spend(ledger, "b")
    assert (info.value.code, info.value.status) == ("permit_expired", 403)
    assert "2026-03-01" in info.value.message
    with pytest.raises(PermitExpired):  # the permit is checked before the cache, as the service does
        spend(ledger, "a")
    assert ledger.budget("diabetes-2026").spends == 1
    assert [r.release_id for r in ledger.list_releases("diabetes-2026")] == ["r_1"]


# --- budgets and refusals -------------------------------------------------------------------------


def test_pure_refusal_sentence_has_requested_remaining_and_difference(ledger: Ledger) -> None:
    ledger.create_project(pure_spec("x", epsilon="0.7"), "admin")
    spend(ledger, "a", project="x")
    with pytest.raises(BudgetExceeded) as info:
        spend(ledger, "b", Charge(epsilon=Fraction(1, 2)), project="x")
    error = info.value
    assert error.code == "budget_exceeded" and error.status == 403
    assert error.message.startswith("This query needs epsilon 0.5 but project 'x' has 0.2 left (0.3 short).")
    assert (error.requested, error.remaining, error.shortfall) == (
        Fraction(1, 2),
        Fraction(1, 5),
        Fraction(3, 10),
    )
    assert ledger.budget("x").spends == 1


def test_budget_allows_exactly_its_total(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(epsilon=1), "admin")
    for i in range(10):
        spend(ledger, f"q{i}", Charge(epsilon=Fraction(1, 10)))
    assert ledger.budget("diabetes-2026").epsilon_remaining == 0
    with pytest.raises(BudgetExceeded):
        spend(ledger, "q10", Charge(epsilon=Fraction(1, 10**9)))


def test_float_charges_round_up(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(epsilon="0.3"), "admin")
    # 0.1 as a float is 0.1000000000000000055...; three of them exceed exactly 0.3.
    spend(ledger, "a", Charge.of(epsilon=0.1))
    spend(ledger, "b", Charge.of(epsilon=0.1))
    with pytest.raises(BudgetExceeded):
        spend(ledger, "c", Charge.of(epsilon=0.1))


def test_pure_delta_is_composed_and_refused_when_absent(ledger: Ledger) -> None:
    ledger.create_project(pure_spec("nodelta"), "admin")
    with pytest.raises(BudgetExceeded, match="needs delta 1e-7 "):
        spend(ledger, "a", Charge(epsilon=Fraction(1, 10), delta=Fraction(1, 10**7)), project="nodelta")
    ledger.create_project(pure_spec("withdelta", delta="2e-7"), "admin")
    spend(ledger, "a", Charge(epsilon=Fraction(1, 10), delta=Fraction(1, 10**7)), project="withdelta")
    spend(ledger, "b", Charge(epsilon=Fraction(1, 10), delta=Fraction(1, 10**7)), project="withdelta")
    assert ledger.budget("withdelta").delta_spent == Fraction(2, 10**7)
    with pytest.raises(BudgetExceeded, match="delta"):
        spend(ledger, "c", Charge(epsilon=Fraction(1, 10), delta=Fraction(1, 10**9)), project="withdelta")


def test_rho_charge_in_pure_project_is_a_mode_mismatch(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    with pytest.raises(ModeMismatch) as info:
        spend(ledger, "a", Charge(rho=Fraction(1, 100)))
    assert info.value.code == "mode_mismatch" and info.value.status == 422
    assert ledger.budget("diabetes-2026").spends == 0


def test_zcdp_project_counts_epsilon_as_rho(ledger: Ledger) -> None:
    ledger.create_project(zcdp_spec(), "admin")
    spend(ledger, "lap", Charge(epsilon=Fraction(1, 10)), project="heart-2026")
    spend(ledger, "gauss", Charge(rho=Fraction(1, 1000)), project="heart-2026")
    status = ledger.budget("heart-2026")
    assert status.rho_spent == Fraction(1, 200) + Fraction(1, 1000)
    assert status.rho_total is not None and status.rho_remaining == status.rho_total - status.rho_spent
    assert status.delta_conversion == status.delta_thresholding == status.delta_total / 2
    assert status.epsilon_remaining == epsilon_at(status.rho_remaining, status.delta_conversion)
    assert status.epsilon_spent == epsilon_at(status.rho_spent, status.delta_conversion)
    assert 0 < status.epsilon_remaining < status.epsilon_total
    public = status.to_public()
    assert public["mode"] == "zcdp" and isinstance(public["rho_remaining"], float)
    assert set(public) >= {"epsilon_total", "epsilon_spent", "epsilon_remaining", "delta_total", "rho_total"}


def test_zcdp_refusal_names_rho_and_the_epsilon_still_possible(ledger: Ledger) -> None:
    ledger.create_project(zcdp_spec(), "admin")
    rho_total = ledger.budget("heart-2026").rho_total
    assert rho_total is not None
    with pytest.raises(BudgetExceeded) as info:
        spend(ledger, "a", Charge(epsilon=Fraction(1)), project="heart-2026")
    message = info.value.message
    assert "needs epsilon 1 (counted as rho 0.5 = epsilon^2/2)" in message
    # What is left is said in the unit the budget was set in too.
    assert re.search(
        r"has rho [0-9.e-]+ left \([0-9.e-]+ short\); that is epsilon [0-9.e-]+ left of its budget "
        r"epsilon 1 at delta 1e-6\.",
        message,
    ), message
    assert info.value.remaining == rho_total and info.value.shortfall == Fraction(1, 2) - rho_total
    largest = float(re.search(r"epsilon up to ([0-9.e-]+)", message).group(1))  # type: ignore[union-attr]
    assert largest == pytest.approx((2 * float(rho_total)) ** 0.5, rel=1e-5)


def test_set_budget_requires_reason_and_may_not_go_below_spent(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    spend(ledger, "a")
    with pytest.raises(InvalidRequest):
        ledger.set_budget("diabetes-2026", 3, 0, reason=" ", actor="admin")
    with pytest.raises(InvalidBudget, match="already spent epsilon 0.5"):
        ledger.set_budget("diabetes-2026", "0.4", 0, reason="cut", actor="admin")
    status = ledger.set_budget("diabetes-2026", 3, 0, reason="second study phase", actor="admin")
    assert (status.epsilon_total, status.epsilon_remaining) == (3, Fraction(5, 2))
    entry = ledger.audit_entries()[-1]
    assert entry.kind == "budget_set" and entry.payload["reason"] == "second study phase"
    assert entry.payload["previous"]["epsilon"] == "1"


def test_zcdp_set_budget_recomputes_rho(ledger: Ledger) -> None:
    ledger.create_project(zcdp_spec(), "admin")
    before = ledger.budget("heart-2026").rho_total
    after = ledger.set_budget("heart-2026", 2, "1e-6", reason="more", actor="admin").rho_total
    assert before is not None and after is not None and after > before
    spend(ledger, "a", Charge(rho=after * Fraction(9, 10)), project="heart-2026")
    with pytest.raises(InvalidBudget, match="already spent rho"):
        ledger.set_budget("heart-2026", 1, "1e-6", reason="less", actor="admin")


# --- register caps --------------------------------------------------------------------------------


def test_register_cap_is_shared_by_all_projects(ledger: Ledger) -> None:
    ledger.create_project(pure_spec("p1", epsilon=10), "admin")
    ledger.create_project(zcdp_spec("p2", epsilon=10), "admin")
    assert ledger.register_caps() == []  # no cap until one is set
    ledger.set_register_cap("lpr", rho=Fraction(1, 2), delta=0, reason="policy", actor="admin")
    spend(ledger, "a", Charge(epsilon=Fraction(1, 2)), project="p1", registers=("cpr", "lpr"))  # rho 1/8
    spend(ledger, "b", Charge(rho=Fraction(1, 4)), project="p2", registers=("lpr",))
    with pytest.raises(RegisterCapExceeded) as info:
        spend(ledger, "c", Charge(rho=Fraction(1, 4)), project="p2", registers=("cpr", "lpr"))
    error = info.value
    assert error.register == "lpr" and error.code == "budget_exceeded" and error.status == 403
    assert "register 'lpr'" in error.message and "(0.125 short)" in error.message
    assert (error.requested, error.remaining) == (Fraction(1, 4), Fraction(1, 8))
    # cpr has no cap: the same query on cpr only is fine.
    spend(ledger, "c", Charge(rho=Fraction(1, 4)), project="p2", registers=("cpr",))
    caps = {c.register: c for c in ledger.register_caps()}
    assert caps["lpr"].rho_spent == Fraction(3, 8) and caps["lpr"].rho_remaining == Fraction(1, 8)
    assert caps["cpr"].cap is None and caps["cpr"].rho_spent == Fraction(1, 8) + Fraction(1, 4)
    assert caps["cpr"].spends == 2 and caps["lpr"].to_public()["cap_rho"] == 0.5


def test_register_status_reports_the_pure_epsilon_borne(ledger: Ledger) -> None:
    ledger.create_project(pure_spec("p1", epsilon=10), "admin")
    ledger.create_project(zcdp_spec("p2", epsilon=10), "admin")
    spend(ledger, "a", Charge(epsilon=Fraction(1, 3)), project="p1", registers=("cpr", "lpr"))
    spend(ledger, "b", Charge(epsilon=Fraction(1, 10)), project="p2", registers=("lpr",))  # Laplace in zcdp
    spend(ledger, "c", Charge(rho=Fraction(1, 4)), project="p2", registers=("lpr",))  # Gaussian: rho only
    caps = {c.register: c for c in ledger.register_caps()}
    assert caps["lpr"].epsilon_spent == Fraction(1, 3) + Fraction(1, 10)  # exact: 13/30
    assert caps["lpr"].rho_spent == Fraction(1, 18) + Fraction(1, 200) + Fraction(1, 4)
    assert caps["cpr"].epsilon_spent == Fraction(1, 3) and caps["cpr"].rho_spent == Fraction(1, 18)
    public = caps["lpr"].to_public()
    assert public["epsilon_spent"] == float_up(Fraction(13, 30)) >= 13 / 30  # spent rounds up
    assert public["rho_spent"] == float_up(caps["lpr"].rho_spent) and public["spends"] == 3
    capped = ledger.set_register_cap("cpr", epsilon=5, delta=0, reason="r", actor="admin")
    assert capped.epsilon_spent == Fraction(1, 3)


def test_register_cap_from_epsilon(ledger: Ledger) -> None:
    pure_cap = ledger.set_register_cap("cpr", epsilon=2, delta=0, reason="r", actor="admin")
    assert pure_cap.cap is not None and pure_cap.cap.rho == 2 and pure_cap.cap.delta == 0
    zcdp_cap = ledger.set_register_cap("lpr", epsilon=2, delta="1e-6", reason="r", actor="admin")
    assert zcdp_cap.cap is not None and zcdp_cap.cap.delta == Fraction(1, 2 * 10**6)
    assert epsilon_at(zcdp_cap.cap.rho, Fraction(1, 2 * 10**6)) <= 2
    with pytest.raises(InvalidBudget):
        ledger.set_register_cap("lpr", epsilon=1, rho=1, delta=0, reason="r", actor="admin")


def test_register_cap_below_spent_is_refused(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    spend(ledger, "a")  # rho 1/8 on cpr
    with pytest.raises(InvalidBudget, match="already borne rho 0.125"):
        ledger.set_register_cap("cpr", rho=Fraction(1, 10), delta=0, reason="r", actor="admin")
    frozen = ledger.set_register_cap("cpr", rho=Fraction(1, 8), delta=0, reason="freeze", actor="admin")
    assert frozen.rho_remaining == 0
    with pytest.raises(RegisterCapExceeded):
        spend(ledger, "b", Charge(epsilon=Fraction(1, 1000)))


# --- events and the memory fake -------------------------------------------------------------------


def test_append_event_is_chained_and_reserved_kinds_are_refused(ledger: Ledger) -> None:
    entry = ledger.append_event("token_issued", {"project": "x", "name": "analyst-1"}, "admin")
    assert entry.seq == 1 and ledger.audit_head() == (1, entry.hash)
    with pytest.raises(InvalidRequest, match="reserved"):
        ledger.append_event("spend_committed", {}, "admin")
    with pytest.raises(InvalidRequest, match="plain JSON"):
        ledger.append_event("request_audit", {"when": date(2026, 1, 1)}, "admin")
    assert ledger.verify().ok


def test_memory_store_behaves_like_sqlite(audit_key: bytes) -> None:
    ledger = Ledger(MemoryStore(), audit_key, clock=Clock())
    ledger.create_project(pure_spec(), "admin")
    first = spend(ledger, "a")
    with pytest.raises(BudgetExceeded):
        spend(ledger, "b", Charge(epsilon=Fraction(3, 4)))
    ledger.store_release(first.spend_id, "r_1", "{}")
    assert spend(ledger, "a").status == "cached"
    report = ledger.verify()
    assert report.ok and report.entries == 3
