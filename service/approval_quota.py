"""How much budget automatic approval may hand out: quotas per applicant and institution, and a pool.

Within the quota window (``SUNDSTAT_QUOTA_WINDOW_DAYS``, a rolling year by default) the automatically
approved projects of one applicant, of one institution, and of everyone together are limited in number
(applicant, institution) and in total epsilon (applicant, institution, pool). Epsilons are added as exact
fractions of the granted floats, as the budget ledger does, so a sum never rounds below a limit. The
check and the approval it allows happen in one write transaction of the service state
(:meth:`ApprovalQuota.reasons` is called inside it, after :func:`lock_quotas`), so concurrent
submissions in several workers or on several hosts cannot both take the last unit of a quota.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction

from .settings import Settings
from .state import Dialect, StateConnection

__all__ = ["ApprovalQuota", "QuotaUsage", "lock_quotas"]

_QUOTA_LOCK = "sundstat automatic approval quotas"


def lock_quotas(conn: StateConnection, dialect: Dialect) -> None:
    """Serialise quota checks with the approvals they allow, until ``conn``'s transaction ends.

    SQLite's write transaction (``BEGIN IMMEDIATE``) already excludes every other writer; PostgreSQL's
    ``READ COMMITTED`` does not, so there every quota check takes one transaction-scoped advisory lock.
    """
    if dialect == "postgresql":
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (_QUOTA_LOCK,))


@dataclass(frozen=True)
class QuotaUsage:
    """Automatically approved projects and their total epsilon in the window."""

    projects: int
    epsilon: Fraction


def _usage(conn: StateConnection, where: str, params: tuple[object, ...]) -> QuotaUsage:
    rows = conn.execute(
        "SELECT granted_epsilon FROM applications WHERE status = 'approved' AND route = 'auto' "
        f"AND submitted_at >= ?{where}",
        params,
    ).fetchall()
    return QuotaUsage(len(rows), sum((Fraction(float(r[0])) for r in rows), Fraction(0)))


@dataclass(frozen=True)
class ApprovalQuota:
    """The limits on automatic approval configured by the ``SUNDSTAT_QUOTA_*`` settings."""

    window: dt.timedelta
    applicant_projects: int
    applicant_epsilon: float
    institution_projects: int
    institution_epsilon: float
    pool_epsilon: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ApprovalQuota:
        """The quotas and pool of ``settings``."""
        return cls(
            window=dt.timedelta(days=settings.quota_window_days),
            applicant_projects=settings.quota_applicant_projects,
            applicant_epsilon=settings.quota_applicant_epsilon,
            institution_projects=settings.quota_institution_projects,
            institution_epsilon=settings.quota_institution_epsilon,
            pool_epsilon=settings.auto_approval_pool_epsilon,
        )

    @classmethod
    def defaults(cls) -> ApprovalQuota:
        """The documented default quotas and pool (the settings' defaults, without reading the environment)."""
        return cls.from_settings(Settings.model_construct())

    def _since(self, now: dt.datetime) -> str:
        return (now - self.window).isoformat()

    def usage(
        self, conn: StateConnection, now: dt.datetime, *, applicant: str | None, institution: str | None
    ) -> dict[str, QuotaUsage]:
        """Current use of the applicant's and institution's quota and of the pool."""
        since = self._since(now)
        out = {"pool": _usage(conn, "", (since,))}
        if applicant is not None:
            out["applicant"] = _usage(conn, " AND applicant = ?", (since, applicant))
        if institution is not None:
            out["institution"] = _usage(conn, " AND institution_id = ?", (since, institution))
        return out

    def reasons(
        self,
        conn: StateConnection,
        now: dt.datetime,
        *,
        applicant: str,
        institution: str,
        epsilon: float,
    ) -> list[str]:
        """Every quota or pool limit that approving ``epsilon`` more now would exceed (empty: approve)."""
        used = self.usage(conn, now, applicant=applicant, institution=institution)
        asked = Fraction(epsilon)
        days = self.window.days
        reasons: list[str] = []
        for scope, max_projects, max_epsilon in (
            ("applicant", self.applicant_projects, self.applicant_epsilon),
            ("institution", self.institution_projects, self.institution_epsilon),
        ):
            mine = used[scope]
            who = "You have" if scope == "applicant" else "Your institution has"
            if mine.projects + 1 > max_projects:
                reasons.append(
                    f"{who} {mine.projects} automatically approved project(s) in the last {days} days; the "
                    f"{scope} quota is {max_projects}, so an administrator decides."
                )
            if mine.epsilon + asked > Fraction(max_epsilon):
                reasons.append(
                    f"{who} been granted epsilon {float(mine.epsilon):g} automatically in the last {days} "
                    f"days; {epsilon:g} more would pass the {scope} quota of {max_epsilon:g}, so an "
                    "administrator decides."
                )
        pool = used["pool"]
        if pool.epsilon + asked > Fraction(self.pool_epsilon):
            reasons.append(
                f"Automatic approvals have granted epsilon {float(pool.epsilon):g} in the last {days} days; "
                f"{epsilon:g} more would pass the pool of {self.pool_epsilon:g}, so an administrator decides."
            )
        return reasons
