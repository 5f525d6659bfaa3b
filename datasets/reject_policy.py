"""How many rejected rows a build accepts, and the summary of what was rejected and why.

A build that loses persons silently is worse than one that stops: every row of another register that
belongs to a rejected person is rejected too, so a wrong municipality code list can take three
quarters of the data with it. The default (:data:`DEFAULT_MAX_REJECT_RATE`) therefore accepts no
rejected person (row of the person register) and at most 0.1% of the rows of any other register.
``--max-reject-rate R`` sets one rate for every register, the person register included;
``--allow-rejects`` loads the good rows whatever was rejected. The summary names, per register, the
most frequent (column, reason) pairs and the reject file; reasons never contain cell values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "DEFAULT_MAX_REJECT_RATE",
    "RejectCounts",
    "RejectPolicy",
    "RejectReason",
    "reject_summary",
]

DEFAULT_MAX_REJECT_RATE = 0.001
"""Share of a (non-person) register's rows that may be rejected by default: 0.1%."""
_TOP_REASONS = 3


@dataclass(frozen=True)
class RejectReason:
    """How many rejected rows of a register have one problem in one column."""

    column: str
    reason: str
    rows: int


class RejectCounts(Protocol):
    """What the summary needs of one register's outcome (``datasets.build.RegisterReport``)."""

    @property
    def register(self) -> str: ...

    @property
    def rows_read(self) -> int: ...

    @property
    def rows_rejected(self) -> int: ...

    @property
    def reasons(self) -> tuple[RejectReason, ...]: ...

    @property
    def reject_file(self) -> Path | None: ...


@dataclass(frozen=True)
class RejectPolicy:
    """The largest share of rejected rows per register; None means the default described above."""

    max_reject_rate: float | None = None
    allow_rejects: bool = False

    def __post_init__(self) -> None:
        rate = self.max_reject_rate
        if rate is not None and not 0 <= rate <= 1:
            raise ValueError(f"The reject rate must be between 0 and 1 (0.01 is 1%); got {rate}.")

    def limit(self, register: str, person_register: str) -> float:
        """The share of ``register``'s rows that may be rejected."""
        if self.max_reject_rate is not None:
            return self.max_reject_rate
        return 0.0 if register == person_register else DEFAULT_MAX_REJECT_RATE

    def describe(self, person_register: str) -> str:
        """The policy in words, for the summary."""
        if self.allow_rejects:
            return "rejects accepted (--allow-rejects)"
        if self.max_reject_rate is not None:
            return f"at most {_percent(self.max_reject_rate)} of each register's rows (--max-reject-rate)"
        return (
            f"no rejected person ({person_register} row) and at most "
            f"{_percent(DEFAULT_MAX_REJECT_RATE)} of any other register's rows"
        )

    def exceeded(self, registers: Sequence[RejectCounts], person_register: str) -> list[str]:
        """The registers whose share of rejected rows is above their limit (empty: the build may go on)."""
        if self.allow_rejects:
            return []
        return [
            r.register
            for r in registers
            if r.rows_rejected and r.rows_rejected > self.limit(r.register, person_register) * r.rows_read
        ]


def _rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count:,} rows"


def _percent(share: float) -> str:
    return f"{share * 100:.4g}%"


def reject_summary(registers: Sequence[RejectCounts], policy: RejectPolicy, person_register: str) -> str:
    """Rejected rows per register with their top reasons per column and the reject files ('' if none)."""
    rejected = [r for r in registers if r.rows_rejected]
    if not rejected:
        return ""
    over = set(policy.exceeded(registers, person_register))
    lines = [f"Rejected rows (allowed: {policy.describe(person_register)}):"]
    for r in rejected:
        share = r.rows_rejected / r.rows_read if r.rows_read else 0.0
        flag = "  ABOVE THE LIMIT" if r.register in over else ""
        lines.append(
            f"  {r.register}: {r.rows_rejected:,} of {r.rows_read:,} rows rejected ({_percent(share)}){flag}"
        )
        by_column: dict[str, list[RejectReason]] = {}
        for reason in r.reasons:
            by_column.setdefault(reason.column, []).append(reason)
        ordered = sorted(by_column.items(), key=lambda item: -sum(x.rows for x in item[1]))
        for column, reasons in ordered:
            for reason in sorted(reasons, key=lambda x: -x.rows)[:_TOP_REASONS]:
                lines.append(f"    {column}: {_rows(reason.rows)}: {reason.reason}")
        if r.reject_file is not None:
            lines.append(f"    every rejected row and reason: {r.reject_file}")
    return "\n".join(lines)
