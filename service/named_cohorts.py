"""Named cohorts: a cohort given a ``name`` in a query is stored for its project and reused by name.

A query's ``cohort`` is either a definition (``{"name": "first-mi", "index": {...}, ...}``) or the name
of one stored earlier in the same project (``"cohort": "first-mi"``). Before the engine sees a query,
:meth:`CohortRegistry.resolve` replaces a name by the stored definition, so the engine, the cache and
the release's ``query`` only ever see definitions (the same question by name or spelled out is the
same canonical query, released and charged once).

A name stands for one cohort for good: a definition under a stored name must be the same cohort (the
same canonical form, i.e. the same query cache key), else ``cohort_conflict`` (409). A new name is
stored when a query defining it is released: it is claimed before the release runs (so two analysts
cannot store different cohorts under one name at the same moment) and forgotten again when the query
is refused or fails, so a refused query stores nothing. Previews resolve and check names but store
nothing. Names are per project: another project's cohorts are never visible, not even as a conflict.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from dataclasses import dataclass
from typing import Any

from query_engine.spec import Query, parse_query

from .errors import CohortConflict, UnknownCohort
from .state import StateStore

__all__ = ["COHORT_NAMED", "CohortRegistry", "NamedCohort", "Resolved"]

COHORT_NAMED = "cohort_named"
"""The audit-chain event of a newly stored cohort name."""


@dataclass(frozen=True)
class NamedCohort:
    """A stored cohort: its project, name, definition (as given) and when and by whom it was stored."""

    project: str
    name: str
    definition: dict[str, Any]
    canonical: str
    created_at: str
    created_by: str

    def to_public(self) -> dict[str, Any]:
        """The cohort as ``GET /v1/projects/{id}/cohorts`` lists it."""
        return {
            "name": self.name,
            "definition": self.definition,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class Resolved:
    """A query whose cohort name (if any) is replaced by its definition, and the name it would store."""

    query: Query
    new_name: NamedCohort | None = None


def _cohort(query: Query) -> Any:
    return getattr(query, "cohort", None)


def _canonical_text(query: Query, cohort: Any) -> str:
    """The cohort's canonical JSON: its part of the query's canonical form (the cache key)."""
    canonical = query.canonical().get("cohort")
    if canonical is None:  # an engine that does not canonicalise cohorts: the model's own dump
        canonical = cohort.model_dump(mode="json")
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _with_definition(query: Query, definition: dict[str, Any]) -> Query:
    """``query`` with its cohort name replaced by ``definition`` (validated like any query)."""
    body = query.model_dump(mode="json", exclude_unset=True)
    body["cohort"] = definition
    return parse_query(body)


class CohortRegistry:
    """The named cohorts of every project, in the service's state store."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def list(self, project: str) -> list[NamedCohort]:
        """The project's named cohorts, oldest first."""
        rows = (
            self._store.read()
            .execute(
                "SELECT project, name, definition, canonical, created_at, created_by FROM cohorts "
                "WHERE project = ? ORDER BY created_at, name",
                (project,),
            )
            .fetchall()
        )
        return [_named(row) for row in rows]

    def get(self, project: str, name: str) -> NamedCohort | None:
        """The project's cohort called ``name``, or None."""
        row = (
            self._store.read()
            .execute(
                "SELECT project, name, definition, canonical, created_at, created_by FROM cohorts "
                "WHERE project = ? AND name = ?",
                (project, name),
            )
            .fetchone()
        )
        return None if row is None else _named(row)

    def resolve(self, query: Query, actor: str, *, now: dt.datetime | None = None) -> Resolved:
        """Replace a cohort name by its stored definition; check a named definition against the store.

        Raises ``UnknownCohort`` for a name the project has not stored and ``CohortConflict`` for a
        definition other than the one stored under its name. The caller must have checked that the
        caller may see ``query.project``.
        """
        cohort = _cohort(query)
        if cohort is None:
            return Resolved(query)
        if isinstance(cohort, str):
            stored = self.get(query.project, cohort)
            if stored is None:
                raise UnknownCohort(self._unknown_message(query.project, cohort))
            return Resolved(_with_definition(query, stored.definition))
        name = getattr(cohort, "name", None)
        if not name:
            return Resolved(query)
        canonical = _canonical_text(query, cohort)
        stored = self.get(query.project, name)
        if stored is not None:
            if stored.canonical != canonical:
                raise CohortConflict(
                    f"Project '{query.project}' already has a cohort named '{name}' with another definition "
                    f'(stored {stored.created_at[:10]}). Use "cohort": "{name}" to reuse it, or give '
                    "this definition a new name."
                )
            return Resolved(query)
        when = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        definition = cohort.model_dump(mode="json", exclude_none=True)
        return Resolved(query, NamedCohort(query.project, name, definition, canonical, when, actor))

    def _unknown_message(self, project: str, name: str) -> str:
        known = [c.name for c in self.list(project)]
        if not known:
            return (
                f"Project '{project}' has no cohort named '{name}' (it has no named cohorts yet). Define the "
                'cohort in the query, with a "name" to store it for reuse.'
            )
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return (
            f"Project '{project}' has no cohort named '{name}'.{hint} Its named cohorts are: "
            f"{', '.join(known)} (GET /v1/projects/{project}/cohorts shows their definitions)."
        )

    def claim(self, cohort: NamedCohort) -> bool:
        """Store ``cohort`` under its name; False if the same cohort is stored already.

        Raises ``CohortConflict`` when another definition took the name in the meantime.
        """
        with self._store.write() as conn:
            inserted = conn.execute(
                "INSERT INTO cohorts (project, name, definition, canonical, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    cohort.project,
                    cohort.name,
                    json.dumps(cohort.definition, ensure_ascii=False, sort_keys=True),
                    cohort.canonical,
                    cohort.created_at,
                    cohort.created_by,
                ),
            ).rowcount
        if inserted == 1:
            return True
        stored = self.get(cohort.project, cohort.name)
        if stored is not None and stored.canonical != cohort.canonical:
            raise CohortConflict(
                f"The cohort name '{cohort.name}' was just given to another definition in project "
                f'\'{cohort.project}\'; nothing was spent. Reuse it with "cohort": "{cohort.name}" or '
                "choose another name."
            )
        return False

    def forget(self, cohort: NamedCohort) -> None:
        """Remove a claim whose query was refused or failed (only that very definition)."""
        with self._store.write() as conn:
            conn.execute(
                "DELETE FROM cohorts WHERE project = ? AND name = ? AND canonical = ?",
                (cohort.project, cohort.name, cohort.canonical),
            )


def _named(row: Any) -> NamedCohort:
    return NamedCohort(
        project=str(row["project"]),
        name=str(row["name"]),
        definition=json.loads(row["definition"]),
        canonical=str(row["canonical"]),
        created_at=str(row["created_at"]),
        created_by=str(row["created_by"]),
    )
