"""An independent pure-Python reading of the cohort rules of ANALYSES-CONTRACT.md §1, for the tests.

It shares no code with ``query_engine.compile_cohort``: it walks the rows of each person and applies
the rules as written (first index by date then row_key, exclusions, death before the index, exit,
event, person-time clamped to [0, T]), then counts the public cells.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

REFERENCE_DATE = dt.date(2024, 12, 31)
Tables = Mapping[str, Sequence[Mapping[str, Any]]]


@dataclass(frozen=True)
class Member:
    pid: int
    index: dt.date
    sex: str
    age_band: str
    period: str
    event: int
    days: int
    exposed: int
    birth: dt.date | None = None


def _rows(tables: Tables, register: str, pid: int) -> list[Mapping[str, Any]]:
    return [r for r in tables.get(register, ()) if r["person_id"] == pid]


def _person(tables: Tables, pid: int) -> Mapping[str, Any] | None:
    rows = _rows(tables, "cpr", pid)
    return min(rows, key=lambda r: r["row_key"]) if rows else None


def _age(birth: dt.date, at: dt.date) -> int:
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def age_band_10(age: int) -> str:
    return "90+" if age >= 90 else f"{age // 10 * 10}-{age // 10 * 10 + 9}"


def follow_up_days(years: float) -> int:
    return math.floor(365.25 * years + 0.5)


def members(
    tables: Tables,
    *,
    index_code: str,
    entry: tuple[dt.date, dt.date],
    lookback: int | None,
    outcome: str,  # "dar" (a dar row on or after the index) or "death" (cpr.death_date)
    exposure_atc: str,
    exposure_lookback: int,
    years: float,
    period_years: int,
) -> list[Member]:
    """The cohort members, by the contract's rules, with their exposure to ``exposure_atc``."""
    t_max = follow_up_days(years)
    pids = sorted({r["person_id"] for r in tables["cpr"]})
    result = []
    for pid in pids:
        person = _person(tables, pid)
        assert person is not None
        candidates = [
            r
            for r in _rows(tables, "lpr", pid)
            if r["icd10"] is not None
            and r["icd10"].startswith(index_code)
            and r["admission_date"] is not None
            and entry[0] <= r["admission_date"] <= entry[1]
        ]
        if not candidates:
            continue
        index = min(candidates, key=lambda r: (r["admission_date"], r["row_key"]))["admission_date"]
        excluded = any(
            r["icd10"] is not None
            and r["icd10"].startswith(index_code)
            and r["admission_date"] is not None
            and r["admission_date"] < index
            and (lookback is None or (index - r["admission_date"]).days <= lookback)
            for r in _rows(tables, "lpr", pid)
        )
        death = person["death_date"]
        if excluded or (death is not None and death < index):
            continue
        ends = [(REFERENCE_DATE - index).days, t_max]
        decisive = None
        if death is not None:
            ends.append((death - index).days)
            decisive = (death - index).days if outcome == "death" else None
        if outcome == "dar":
            dates = [
                r["death_date"]
                for r in _rows(tables, "dar", pid)
                if r["death_date"] and r["death_date"] >= index
            ]
            if dates:
                decisive = (min(dates) - index).days
                ends.append(decisive)
        stop = min(ends)
        event = int(decisive is not None and decisive <= stop)
        exposed = int(
            any(
                r["atc"] is not None
                and r["atc"].startswith(exposure_atc)
                and r["date"] is not None
                and r["date"] <= index
                and (index - r["date"]).days <= exposure_lookback
                for r in _rows(tables, "lmdb", pid)
            )
        )
        start = entry[0].year + (index.year - entry[0].year) // period_years * period_years
        end = min(start + period_years - 1, entry[1].year)
        period = str(start) if start == end else f"{start}-{end}"
        result.append(
            Member(
                pid,
                index,
                person["sex"],
                age_band_10(_age(person["birth_date"], index)),
                period,
                event,
                max(stop, 0),
                exposed,
                person["birth_date"],
            )
        )
    return result


def cells(
    rows: Sequence[Member], columns: Sequence[str], keys: Sequence[Sequence[Any]], value: str | None
) -> list[int]:
    """Per public cell (key order), the count of members (``value`` None) or the sum of ``value``."""
    totals = {key: 0 for key in product(*keys)}
    for member in rows:
        key = tuple(getattr(member, c) for c in columns)
        totals[key] += 1 if value is None else getattr(member, value)
    return list(totals.values())


def prevalence_cells(tables: Tables, code: str, sexes: Sequence[str]) -> list[int]:
    """Persons per (sex, has a lpr row with ``code``), in key order (has: 0, 1)."""
    totals = {key: 0 for key in product(sexes, (0, 1))}
    for pid in sorted({r["person_id"] for r in tables["cpr"]}):
        person = _person(tables, pid)
        assert person is not None
        has = any(r["icd10"] is not None and r["icd10"].startswith(code) for r in _rows(tables, "lpr", pid))
        totals[(person["sex"], int(has))] += 1
    return list(totals.values())


# --- population cohorts and Lexis splitting (cohort_lexis) ---------------------------------------------


def add_years(day: dt.date, years: int) -> dt.date:
    """The same month and day ``years`` later; 29 February becomes 28 February in other years."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def population_members(
    tables: Tables, *, entry: tuple[dt.date, dt.date], min_age: int, code: str, years: float
) -> list[Member]:
    """Everyone alive on max(entry start, birthday at ``min_age``) inside the window, without an lpr
    ``code`` row before that day; the outcome is the first ``code`` row strictly after it."""
    t_max = follow_up_days(years)
    result = []
    for pid in sorted({r["person_id"] for r in tables["cpr"]}):
        person = _person(tables, pid)
        assert person is not None
        birth, death = person["birth_date"], person["death_date"]
        index = max(entry[0], add_years(birth, min_age))
        if index > entry[1] or (death is not None and death < index):
            continue
        codes = [
            r["admission_date"]
            for r in _rows(tables, "lpr", pid)
            if r["icd10"] is not None and r["icd10"].startswith(code) and r["admission_date"] is not None
        ]
        if any(d < index for d in codes):
            continue
        ends = [(REFERENCE_DATE - index).days, t_max]
        if death is not None:
            ends.append((death - index).days)
        later = [(d - index).days for d in codes if d > index]
        decisive = min(later) if later else None
        if decisive is not None:
            ends.append(decisive)
        stop = min(ends)
        event = int(decisive is not None and decisive <= stop)
        band = age_band_10(_age(birth, index))
        result.append(Member(pid, index, person["sex"], band, "", event, max(stop, 0), 0, birth))
    return result


def attained_band(birth: dt.date, day: dt.date, labels: Sequence[str]) -> str | None:
    """The age band holding ``day``: ``a-b`` spans [birthday at a, birthday at b + 1), ``N+`` from N."""
    for label in labels:
        low, _, high = label.replace("+", "-").partition("-")
        if add_years(birth, int(low)) <= day and (not high or day < add_years(birth, int(high) + 1)):
            return label
    return None


def lexis_cells(
    rows: Sequence[Member],
    sexes: Sequence[str],
    bands: Sequence[str],
    periods: Sequence[tuple[str, int, int]],
) -> tuple[list[int], list[int]]:
    """Events and days at risk per (sex, attained band, attained period), walking each day at risk."""
    events = {key: 0 for key in product(sexes, bands, [p[0] for p in periods])}
    days = dict(events)

    def cell(member: Member, day: dt.date) -> tuple[str, str, str] | None:
        assert member.birth is not None
        band = attained_band(member.birth, day, bands)
        period = next((label for label, first, last in periods if first <= day.year <= last), None)
        return None if band is None or period is None else (member.sex, band, period)

    for member in rows:
        for k in range(member.days):
            key = cell(member, member.index + dt.timedelta(days=k))
            if key is not None:
                days[key] += 1
        if member.event:
            key = cell(member, member.index + dt.timedelta(days=member.days))
            if key is not None:
                events[key] += 1
    return list(events.values()), list(days.values())
