"""Permits: every project has a permit id (its application's id, or one an administrator gives) and
an expiry, and no token of the project lives longer than the permit.

The permit id of a project is kept in the state store (``project_permits``) and chained in the audit
chain when the project is created. A project without a recorded permit (created before permits
existed, or by an application) gets one on first read: its application's id, else a generated id.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping

from budget_ledger import PermitExpired

from .errors import Conflict
from .state import StateStore

__all__ = ["PERMIT_RECORDED", "PermitRegistry", "new_permit_id", "ttl_within_permit"]

PERMIT_RECORDED = "permit_recorded"


def new_permit_id() -> str:
    """A generated permit id, for projects whose administrator gave none."""
    return "pmt_" + secrets.token_hex(6)


def ttl_within_permit(expires: dt.date | None, ttl: dt.timedelta, now: dt.datetime) -> dt.timedelta:
    """``ttl`` shortened so that a token ends with its project's permit (the end of the expiry day, UTC).

    Raises ``PermitExpired`` when the permit has already ended: no token is issued for it.
    """
    if expires is None:
        return ttl
    end = dt.datetime.combine(expires + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    left = end - now
    if left <= dt.timedelta(0):
        raise PermitExpired(
            f"The project's permit expired on {expires.isoformat()}; no token can be issued for it. An "
            "administrator can create a new project with a new permit."
        )
    return min(ttl, left)


class PermitRegistry:
    """The permit id of each project, in the state store."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def claim(self, project: str, permit_id: str, actor: str, *, now: dt.datetime | None = None) -> bool:
        """Record ``permit_id`` for a new ``project``; False if the project already has a permit.

        Raises ``Conflict`` when another project holds this permit id.
        """
        when = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        with self._store.write() as conn:
            inserted = conn.execute(
                "INSERT INTO project_permits (project, permit_id, created_at, created_by) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (project, permit_id, when, actor),
            ).rowcount
            if inserted == 1:
                return True
            holder = conn.execute(
                "SELECT project FROM project_permits WHERE permit_id = ?", (permit_id,)
            ).fetchone()
        if holder is not None and holder["project"] != project:
            raise Conflict(
                f"The permit id '{permit_id}' is already the permit of another project; give each project "
                "its own permit id (or leave permit_id out to have one generated)."
            )
        return False

    def release(self, project: str, permit_id: str) -> None:
        """Forget a claim whose project could not be created."""
        with self._store.write() as conn:
            conn.execute(
                "DELETE FROM project_permits WHERE project = ? AND permit_id = ?", (project, permit_id)
            )

    def for_projects(self, projects: Mapping[str, str | None]) -> dict[str, str]:
        """The permit id of every project in ``projects`` (project -> its application id or None);
        a project without a recorded permit gets its application id, else a generated one."""
        rows = self._store.read().execute("SELECT project, permit_id FROM project_permits").fetchall()
        known = {str(r["project"]): str(r["permit_id"]) for r in rows}
        for project, application in projects.items():
            if project not in known:
                self.claim(project, application or new_permit_id(), "system")
                row = (
                    self._store.read()
                    .execute("SELECT permit_id FROM project_permits WHERE project = ?", (project,))
                    .fetchone()
                )
                known[project] = str(row["permit_id"])
        return {project: known[project] for project in projects}
