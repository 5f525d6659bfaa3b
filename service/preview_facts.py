"""What a preview adds to the engine's: is the query stored, what would it cost, does it fit, and is its
expected interval useful. Public facts only: the plan, the catalog's declared sizes, the ledger's totals.

Reference size of a cell
    ``declared_persons`` (the installation's public population size, ``SUNDSTAT_DECLARED_PERSONS``)
    times the grain register's ``declared_rows_per_person`` (persons for ``count_persons``), divided
    by the number of cells: the count a cell would hold if everyone's rows were spread evenly over
    the cells, before any filter. Filtered cells hold fewer, so this is an optimistic yardstick; it
    is never read from the data.

Mean
    The interval of a mean depends on its noisy count (private), so the preview states it as a
    function of the count (``mean_half_width_by_count``), and ``expected_half_width`` at the
    reference size (``reference_count``); see ``query_engine.accuracy.expected_mean_half_width``.

Warnings
    A count's or a sum's expected half-width above a tenth of the reference size (for sums: times the
    largest bound), and a mean's above a quarter of the declared range at the reference size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from budget_ledger import BudgetExceeded, Charge, LedgerError, Project
from budget_ledger.accounting import Totals, admit_project
from budget_ledger.caps import RegisterStatus, admit_register
from budget_ledger.loss import format_amount
from query_engine.accuracy import alpha_for, expected_mean_half_width
from query_engine.catalog import Catalog
from query_engine.mechanisms import NoiseKind
from query_engine.plan import Plan

from .response_time import declared_rows

__all__ = ["MEAN_REFERENCE_COUNTS", "fit_problem", "preview_facts", "reference_count"]

MEAN_REFERENCE_COUNTS = (10, 100, 1_000, 10_000, 100_000)
_COUNT_WARN_SHARE = 0.1
_MEAN_WARN_SHARE = 0.25
_NOISE_BY_MECHANISM: dict[str, NoiseKind] = {"discrete_laplace": "laplace", "discrete_gaussian": "gaussian"}


def fit_problem(
    project: Project, statuses: Iterable[RegisterStatus], registers: Iterable[str], charge: Charge
) -> str | None:
    """Why a fresh run of a query with ``charge`` would be refused by the budget or a cap; None if it fits.

    The same checks, in the same order, as ``Ledger.reserve_and_commit`` on the state read now.
    """
    by_name = {status.register: status for status in statuses}
    try:
        admit_project(project.id, project.limits, project.totals, charge)
        for register in sorted(set(registers)):
            status = by_name.get(register)
            if status is None:
                continue  # no cap and nothing borne yet: nothing to check against
            totals = Totals(status.epsilon_spent, status.rho_spent, status.delta_spent, status.spends)
            admit_register(project.id, register, status.cap, totals, charge)
    except (BudgetExceeded, LedgerError) as exc:
        return exc.message
    return None


def reference_count(plan: Plan, catalog: Catalog, declared_persons: int) -> float:
    """The count a cell holds if the declared population's rows spread evenly over the cells."""
    register = plan.person_register if plan.measure == "count_persons" else plan.grain
    rows = declared_rows(catalog, register, declared_persons)
    if plan.measure == "count_persons":
        rows = float(declared_persons)
    return rows / max(plan.cells, 1)


def _noise(part: dict[str, Any]) -> tuple[NoiseKind, float]:
    return _NOISE_BY_MECHANISM[str(part["mechanism"])], float(part["scale"])


def _mean_facts(body: dict[str, Any], plan: Plan, reference: float) -> dict[str, Any]:
    """``expected_half_width`` at the reference size and the half-width at typical counts."""
    parts = {part["part"]: part for part in body["loss"].get("loss_split") or []}
    value = plan.value
    if value is None or "sum" not in parts or "count" not in parts:
        return {}
    alpha = alpha_for(body["confidence"])

    def at(count: float) -> float:
        return expected_mean_half_width(
            _noise(parts["sum"]),
            _noise(parts["count"]),
            alpha,
            count,
            (value.lo, value.hi),
            value.resolution,
        )

    return {
        "expected_half_width": at(reference),
        "mean_half_width_by_count": [{"count": n, "half_width": at(n)} for n in MEAN_REFERENCE_COUNTS],
    }


def format_number(value: float) -> str:
    """A value for a sentence: ``1,498``, ``0.5``."""
    return format_amount(value, grouping=True)


def _warning(body: dict[str, Any], plan: Plan, reference: float) -> str | None:
    half = body.get("expected_half_width")
    if half is None or plan.partition_selection:
        return None
    shown = f"±{format_number(half)}"
    cell = f"{format_number(round(reference))} " + ("persons" if plan.measure == "count_persons" else "rows")
    if plan.measure in ("count_persons", "count_rows") and half > _COUNT_WARN_SHARE * reference:
        return (
            f"The expected interval ({shown}) is more than a tenth of {cell}, the count a cell would hold "
            "if the declared population spread evenly over the cells before any filter; filtered cells "
            "are smaller, so many may be lost in the noise. Use fewer groups or a larger loss."
        )
    value = plan.value
    if value is None:
        return None
    if plan.measure == "sum":
        scale = reference * max(abs(value.lo), abs(value.hi))
        if half > _COUNT_WARN_SHARE * scale:
            return (
                f"The expected interval ({shown}) is more than a tenth of {format_number(scale)}, the largest "
                f"sum of {cell} at the column's bounds. Use fewer groups, tighter bounds or a larger loss."
            )
    if plan.measure == "mean" and half > _MEAN_WARN_SHARE * (value.hi - value.lo):
        return (
            f"At {cell} per cell the expected interval of the mean ({shown}) spans more than a quarter "
            f"of the column's bounds [{format_number(value.lo)}, {format_number(value.hi)}]. Use fewer "
            "groups, tighter bounds or a larger loss."
        )
    return None


def preview_facts(
    body: dict[str, Any],
    plan: Plan | None,
    catalog: Catalog,
    *,
    declared_persons: int,
    charge: Charge,
    cached: bool,
    problem: str | None,
) -> dict[str, Any]:
    """The fields a preview adds to the engine's ``body`` (a dict of ``PreviewPublic``); ``charge`` is what
    a fresh run would be charged, ``problem`` why it would be refused (None: it fits; a cached query
    is refused only by its permit)."""
    # The charge as a person writes it, never below what is charged (0.4999999999995 reads 0.5).
    fresh = {
        name: float(format_amount(getattr(charge, name), rounding="up"))
        for name in ("epsilon", "rho", "delta")
    }
    facts: dict[str, Any] = {
        "cached": cached,
        "cost_if_run": {name: 0.0 for name in fresh} if cached else fresh,
        "fits": problem is None,
        "fit_problem": problem,
        "warnings": [],
    }
    notes = list(body.get("notes", []))
    if cached:
        notes.append(
            "Free: this exact query is stored; running it returns the stored release and spends nothing."
        )
    facts["notes"] = notes
    if plan is None:
        return facts
    reference = reference_count(plan, catalog, declared_persons)
    facts["reference_count"] = reference
    half = body.get("expected_half_width")
    if plan.measure in ("count_persons", "count_rows") and half is not None and not plan.partition_selection:
        unit = "persons" if plan.measure == "count_persons" else "rows"
        notes.append(
            f"Each cell's count is known to within ±{format_number(half)} {unit}: a cell with fewer cannot be "
            "told from an empty one."
        )
    if plan.measure == "mean":
        facts.update(_mean_facts(body, plan, reference))
        notes.append(
            f"expected_half_width assumes {format_number(round(reference))} rows per cell (the declared register "
            "size spread evenly over the cells, before any filter); filtered cells hold fewer rows and get wider "
            "intervals: see mean_half_width_by_count for the count you expect."
        )
    warning = _warning({**body, **facts}, plan, reference)
    if warning is not None:
        facts["warnings"].append(warning)
    return facts
