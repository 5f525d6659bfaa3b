"""Budgets, applications and transparency: the budget's summary, the body of an application for a
project, and the public transparency report as tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.catalog_lookup import Json
from dashboard.results import _number

__all__ = [
    "BudgetSummary",
    "application_body",
    "budget_summary",
    "transparency_projects_frame",
    "transparency_registers_frame",
]


@dataclass(frozen=True)
class BudgetSummary:
    """A project's budget as the gauge shows it: epsilon at the project's delta, plus rho for zCDP."""

    project: str
    mode: str
    epsilon_total: float
    epsilon_spent: float
    epsilon_remaining: float
    delta_total: float
    rho_total: float | None
    rho_spent: float | None
    rho_remaining: float | None
    spends: int

    @property
    def fraction_spent(self) -> float:
        """Spent share of the budget, 0..1 (by rho for zCDP projects, where rho is what composes)."""
        if self.mode == "zcdp" and self.rho_total:
            return min(1.0, max(0.0, (self.rho_spent or 0.0) / self.rho_total))
        if self.epsilon_total <= 0:
            return 1.0 if self.epsilon_spent > 0 else 0.0
        return min(1.0, max(0.0, self.epsilon_spent / self.epsilon_total))


def budget_summary(budget: Mapping[str, Any]) -> BudgetSummary:
    """Read a ``GET /v1/projects/{id}/budget`` body."""
    return BudgetSummary(
        project=str(budget.get("project", "")),
        mode=str(budget.get("mode", "pure")),
        epsilon_total=_number(budget.get("epsilon_total")) or 0.0,
        epsilon_spent=_number(budget.get("epsilon_spent")) or 0.0,
        epsilon_remaining=_number(budget.get("epsilon_remaining")) or 0.0,
        delta_total=_number(budget.get("delta_total")) or 0.0,
        rho_total=_number(budget.get("rho_total")),
        rho_spent=_number(budget.get("rho_spent")),
        rho_remaining=_number(budget.get("rho_remaining")),
        spends=int(budget.get("spends") or 0),
    )


def application_body(
    *,
    title: str,
    purpose: str,
    institution: str,
    summary: str,
    registers: Sequence[str],
    epsilon: float,
    delta: float,
    duration_days: int,
    name: str,
    email: str,
) -> Json:
    """The body of ``POST /v1/applications`` (text trimmed)."""
    return {
        "title": title.strip(),
        "purpose": purpose,
        "institution": institution.strip(),
        "summary": summary.strip(),
        "registers": list(registers),
        "epsilon": float(epsilon),
        "delta": float(delta),
        "duration_days": int(duration_days),
        "applicant": {"name": name.strip(), "email": email.strip()},
    }


def transparency_projects_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The public list of projects with their budgets and spend."""
    columns = [
        "id",
        "title",
        "purpose",
        "institution",
        "registers",
        "mode",
        "epsilon_total",
        "epsilon_spent",
        "delta_total",
        "releases",
        "approval_route",
        "expires",
        "permit_id",
        "analysts",
    ]
    records = [
        {c: (", ".join(p.get(c) or []) if c in ("registers", "analysts") else p.get(c)) for c in columns}
        for p in report.get("projects", [])
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def transparency_registers_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The privacy loss each register bears across all projects (rho and delta), with its cap."""
    columns = ["register", "rho_spent", "delta_spent", "spends", "cap_rho", "cap_delta", "rho_remaining"]
    records = [{c: r.get(c) for c in columns} for r in report.get("registers", [])]
    return pd.DataFrame.from_records(records, columns=columns)
