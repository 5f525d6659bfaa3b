"""The check that a person-grain register holds at most one row per person, run when data is opened.

The compiled SQL already keeps one row per person of such a register (so a duplicate cannot raise
the sensitivity); this check is the second line: data that breaks its declared grain is refused
before any query runs, with the register and the number of duplicated persons (never a person).
One ``GROUP BY person HAVING COUNT(*) > 1`` per person-grain register, in the backend's dialect.
"""

from __future__ import annotations

from sqlglot import exp

from .backends.base import Backend
from .catalog import Catalog, Register
from .compile import CompiledQuery
from .errors import PersonGrainViolated

__all__ = ["check_person_grain", "duplicated_persons_sql"]


def duplicated_persons_sql(register: Register, dialect: str) -> CompiledQuery:
    """``SELECT COUNT(*) AS persons`` over the persons with more than one row in ``register``."""
    person = exp.column(exp.to_identifier(register.person_key, quoted=True))
    table = exp.Table(this=exp.to_identifier(register.name, quoted=True))
    duplicated = (
        exp.select(person)
        .from_(table)
        .group_by(person.copy())
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
    )
    query = exp.select(exp.alias_(exp.Count(this=exp.Star()), "persons")).from_(
        duplicated.subquery("duplicated")
    )
    return CompiledQuery(sql=query.sql(dialect=dialect), params=(), dialect=dialect)


def check_person_grain(backend: Backend, catalog: Catalog) -> None:
    """Raise ``PersonGrainViolated`` if a register of grain ``person`` has several rows for a person."""
    problems = []
    for register in catalog.registers:
        if register.grain != "person":
            continue
        table = backend.execute(duplicated_persons_sql(register, backend.dialect))
        duplicated = int(table.column(0)[0].as_py() or 0)
        if duplicated:
            problems.append(f"{register.name} has {duplicated} person(s) with more than one row")
    if problems:
        raise PersonGrainViolated(
            f"Refusing to serve: {'; '.join(problems)}, but its catalog grain is 'person' (one row per "
            "person). Rebuild the data so that each person has one row there, or declare the register's "
            "grain as 'event' with its rows_per_person.",
            stage="execute",
        )
