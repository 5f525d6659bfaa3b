"""The report of a build: what happened to each register file (rows loaded and rejected, the
reject file) and to the whole build, as ``sundstat build`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datasets.reject_policy import RejectPolicy, RejectReason, reject_summary


@dataclass(frozen=True)
class RegisterReport:
    """What happened to one register file."""

    register: str
    file: str
    sha256: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    pseudonymised: bool
    row_key_assigned: bool
    reject_file: Path | None
    reasons: tuple[RejectReason, ...] = ()
    """The (column, reason) pairs of the rejected rows with their counts, most frequent first."""


@dataclass(frozen=True)
class BuildReport:
    """The outcome of a build: where it went and, per register, rows loaded and rejected."""

    db: Path
    source: Path
    catalog_source: str
    registers: tuple[RegisterReport, ...]
    seconds: float
    policy: RejectPolicy = RejectPolicy()
    person_register: str = "cpr"
    not_loaded: tuple[str, ...] = ()  # registers of the catalog without a file in the directory

    def register(self, name: str) -> RegisterReport:
        """The report of register ``name``."""
        return next(r for r in self.registers if r.register == name)

    @property
    def rows_loaded(self) -> int:
        return sum(r.rows_loaded for r in self.registers)

    @property
    def rows_rejected(self) -> int:
        return sum(r.rows_rejected for r in self.registers)

    def reject_summary(self) -> str:
        """Rejected rows per register, their top reasons per column and reject files ('' if none)."""
        return reject_summary(self.registers, self.policy, self.person_register)

    def describe(self) -> str:
        """A short human summary: the rejects first (if any), then one line per register."""
        summary = self.reject_summary()
        lines = [summary, ""] if summary else []
        lines.append(
            f"Built {self.db} from {self.source} in {self.seconds:.1f} s (catalog: {self.catalog_source})."
        )
        width = max(len(r.file) for r in self.registers)
        lines.append(f"  {'register':<9} {'file':<{width}} {'read':>12} {'loaded':>12} {'rejected':>10}")
        for r in self.registers:
            notes = ["CPR pseudonymised"] if r.pseudonymised else []
            notes += ["row_key assigned"] if r.row_key_assigned else []
            lines.append(
                f"  {r.register:<9} {r.file:<{width}} {r.rows_read:>12,} {r.rows_loaded:>12,} {r.rows_rejected:>10,}"
                + (f"  ({', '.join(notes)})" if notes else "")
            )
        if self.not_loaded:
            lines.append(
                f"Not loaded (no file): {', '.join(self.not_loaded)}; queries naming them are refused "
                "with register_not_loaded."
            )
        rejected = [r for r in self.registers if r.reject_file is not None]
        if rejected:
            lines.append(f"{self.rows_rejected:,} rows were rejected; the reasons are in:")
            lines += [f"  {r.reject_file}" for r in rejected]
        else:
            lines.append("No rows were rejected.")
        return "\n".join(lines)
