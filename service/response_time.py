"""Response times fixed before a query runs, from public information only.

Why: if the time a release takes depends on the data (a filter that matches few rows answers faster
than one that matches many), the timing of an answer is an unnoised side channel next to the noisy
numbers. So the moment a fresh query answers is decided before it touches any data: a deterministic
cost model maps the query's plan, the catalog's declared sizes and the configured throughput onto a
rung of a configured ladder (``SUNDSTAT_RESPONSE_LADDER``, e.g. 0.5, 1, 2, 4, 8, 16, 30 seconds).
Execution gets the rung as its deadline; success, failure and time-out all answer at that moment.

The model counts row operations at the *declared* scale, never at the served data's::

    rows(r)  = declared_persons * declared_rows_per_person(r)      (catalog; else rows_per_person default)
    units    = rows(grain) * (1 + ROW_WINDOW*[rows bounded] + GROUP_WINDOW*[groups bounded]
                              + PERSON_JOIN*[joined to the person register]
                              + DISTINCT*[distinct persons over an event grain])
             + rows(person)*[joined to the person register] + sum over cohorts of COHORT*rows(cohort)
             + CELL*cells*outputs
    needed   = HEADROOM * units / rows_per_second + finish
    finish   = FINISH_BASE + FINISH_PER_CELL*cells*outputs + STORE_SECONDS   (noise, release, ledger)
    rung     = the smallest step >= needed, else the largest step

The weights were fitted to one DuckDB thread on the 100,000-person default dataset (the slowest
step, a window over an event register, dominates); ``rows_per_second`` scales the whole model to an
installation. A query whose work outgrows its rung fails at the rung (its loss stays charged), which
costs utility, never privacy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from query_engine.catalog import Catalog
from query_engine.plan import Plan

__all__ = ["ResponseTimeModel", "Schedule", "declared_rows", "parse_ladder"]

ROW_WINDOW = 1.0  # row_number() per person (and group): c rows per person per group
GROUP_WINDOW = 10.0  # dense_rank over a person's groups: a sort of the grain rows by person and group
PERSON_JOIN = 5.0  # joining grain rows to the person register's attributes
DISTINCT = 1.0  # distinct persons per cell over an event grain
COHORT = 1.0  # a semi-join: scan the cohort register once
CELL = 50.0  # the public key grid: one row per cell and output, cross-joined and ordered
HEADROOM = 2.0  # the model's estimate may be off by this factor before a query misses its rung
FINISH_BASE = 0.1  # noise, release and response rendering of a one-cell query, seconds
FINISH_PER_CELL = 3e-5  # per cell and output (8,690 cells took 0.17 s to noise and render)
STORE_SECONDS = 0.1  # storing the release (or the failure) in the ledger, durably

_OFF = ("", "off", "none", "0")


def parse_ladder(text: str) -> tuple[float, ...] | None:
    """The rungs of ``SUNDSTAT_RESPONSE_LADDER`` ("0.5,1,2,...", ascending), or None for "off"."""
    if text.strip().lower() in _OFF:
        return None
    try:
        steps = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(
            f"the response ladder {text!r} must be seconds separated by commas, e.g. 0.5,1,2,4,8,16,30, "
            "or 'off'"
        ) from None
    if not steps or any(not math.isfinite(s) or s <= 0 for s in steps):
        raise ValueError(f"the response ladder {text!r} needs positive finite seconds, e.g. 0.5,1,2,4")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ValueError(f"the response ladder {text!r} must be strictly ascending, e.g. 0.5,1,2,4")
    if steps[0] < 2 * STORE_SECONDS + FINISH_BASE:
        raise ValueError(
            f"the response ladder's first step {steps[0]:g} s leaves no time to execute; start at 0.5 s "
            "or more"
        )
    return steps


@dataclass(frozen=True)
class Schedule:
    """When a fresh query's steps must be done, in ``time.monotonic()`` seconds.

    Execution must end by ``execute_by``; the release is stored (or the failure recorded) at
    ``commit_at``, so that neither a repeated query nor an idempotent retry can see the outcome early;
    the answer goes out at ``deadline``.
    """

    rung: float
    deadline: float
    execute_by: float
    commit_at: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def execute_timeout(self) -> float:
        """Seconds left for execution now (at most the backend's own limit applies as well)."""
        return self.execute_by - self.clock()

    def wait_until(self, moment: float) -> None:
        """Block until ``moment`` (no-op when it has passed)."""
        while (remaining := moment - self.clock()) > 0:
            self.sleep(remaining)

    def late(self) -> float:
        """Seconds past the deadline now (0 when on time)."""
        return max(0.0, self.clock() - self.deadline)


@dataclass(frozen=True)
class ResponseTimeModel:
    """The public cost model and ladder; one per service."""

    ladder: tuple[float, ...]
    declared_persons: int
    rows_per_second: float

    def rung(self, plan: Plan | None, catalog: Catalog) -> float:
        """The response time of a fresh query with this plan (the top rung if the plan is unknown)."""
        if plan is None:
            return self.ladder[-1]
        needed = HEADROOM * self.work_units(plan, catalog) / self.rows_per_second + _finish(plan)
        return next((step for step in self.ladder if step >= needed), self.ladder[-1])

    def work_units(self, plan: Plan, catalog: Catalog) -> float:
        """Row operations of the plan at the declared scale (see the module docstring)."""
        grain = self._rows(catalog, plan.grain)
        per_row = 1.0
        per_row += ROW_WINDOW * plan.bounding.bound_rows + GROUP_WINDOW * plan.bounding.bound_groups
        per_row += PERSON_JOIN * plan.needs_person_join
        per_row += DISTINCT * (plan.measure == "count_persons" and plan.grain != plan.person_register)
        units = grain * per_row
        if plan.needs_person_join:
            units += self._rows(catalog, plan.person_register)
        units += sum(COHORT * self._rows(catalog, cohort.register) for cohort in plan.cohorts)
        return units + CELL * _cell_outputs(plan)

    def schedule(self, rung: float, plan: Plan | None, start: float | None = None) -> Schedule:
        """The moments of a fresh query answered at ``rung`` seconds after ``start`` (default: now)."""
        begin = time.monotonic() if start is None else start
        deadline = begin + rung
        commit_at = deadline - STORE_SECONDS
        finish = _finish(plan) if plan is not None else FINISH_BASE + STORE_SECONDS
        return Schedule(rung, deadline, execute_by=deadline - finish, commit_at=commit_at)

    def _rows(self, catalog: Catalog, register: str) -> float:
        return declared_rows(catalog, register, self.declared_persons)


def declared_rows(catalog: Catalog, register: str, persons: int) -> float:
    """Rows of ``register`` at the declared scale: ``persons`` times its declared rows per person."""
    declared = catalog.register(register)
    per_person = declared.declared_rows_per_person
    if per_person is None:  # a database built before the catalog declared sizes
        per_person = float(declared.rows_per_person[0])
    return persons * per_person


def _cell_outputs(plan: Plan) -> int:
    """Numbers the mechanisms draw: cells times outputs (a quantile's three selections: times candidates)."""
    per_cell = len(plan.outputs) * (plan.quantile.candidates if plan.quantile is not None else 1)
    return plan.cells * per_cell


def _finish(plan: Plan) -> float:
    return FINISH_BASE + FINISH_PER_CELL * _cell_outputs(plan) + STORE_SECONDS
