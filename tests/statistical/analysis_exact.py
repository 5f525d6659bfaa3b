"""Exact (non-private) cohort tables for the analysis accuracy tests, by hand-written DuckDB SQL.

The SQL here follows the analyses contract (/work/wt/ANALYSES-CONTRACT.md §1) directly, one cohort at a
time, independently of the engine's compiler: per person the index date (the first matching row in
the entry window), the exclusions, the exit (the first of outcome, death, end of follow-up and the
catalog's reference date), the event flag and the person-time in days clamped to [0, T]. The tables
built from it are what the engine's private table must equal before noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

REFERENCE_DATE = "2024-12-31"  # datasets/catalog/catalog.yaml
DAYS_PER_YEAR = 365.25
AGE_BANDS_10 = tuple(f"{a}-{a + 9}" for a in range(0, 90, 10)) + ("90+",)
SEXES = ("F", "M")


def follow_up_days(years: float) -> int:
    """T: the declared follow-up in whole days (the contract's round(365.25 * years))."""
    return round(DAYS_PER_YEAR * years)


@dataclass(frozen=True)
class CohortMembers:
    """One entry per cohort member: sex, age band at index, exit day (0..T) and event (0/1)."""

    sex: np.ndarray
    region: np.ndarray
    age_band: np.ndarray
    exit_days: np.ndarray
    event: np.ndarray
    follow_up_days: int


_AGE_AT_INDEX = """(year(m.index_date) - year(m.birth_date)
    - CASE WHEN month(m.index_date) * 100 + day(m.index_date)
                < month(m.birth_date) * 100 + day(m.birth_date) THEN 1 ELSE 0 END)"""

_MEMBERS_SQL = """
WITH index_rows AS (
    SELECT person_id, min(admission_date) AS index_date
    FROM lpr
    WHERE admission_date BETWEEN DATE '{entry_first}' AND DATE '{entry_last}' {index_where}
    GROUP BY person_id
), excluded AS (
    SELECT DISTINCT i.person_id
    FROM index_rows AS i JOIN lpr AS l ON l.person_id = i.person_id
    WHERE l.admission_date < i.index_date {lookback} AND l.icd10 LIKE '{exclude_prefix}%'
), members AS (
    SELECT i.person_id, i.index_date, c.sex, c.region, c.birth_date, c.death_date
    FROM index_rows AS i JOIN cpr AS c ON c.person_id = i.person_id
    WHERE i.person_id NOT IN (SELECT person_id FROM excluded)
      AND (c.death_date IS NULL OR c.death_date >= i.index_date)
), outcomes AS ({outcome_sql}), timed AS (
    SELECT m.*, {age} AS age_at_index, o.outcome_date,
           least(m.index_date + INTERVAL ({days}) DAY, DATE '{reference}') AS censor_date
    FROM members AS m LEFT JOIN outcomes AS o ON o.person_id = m.person_id
)
SELECT sex, region,
       CASE WHEN age_at_index >= 90 THEN '90+'
            ELSE CAST(age_at_index // 10 * 10 AS VARCHAR) || '-' || CAST(age_at_index // 10 * 10 + 9 AS VARCHAR)
       END AS age_band,
       greatest(0, least({days}, date_diff('day', index_date,
           least(coalesce(outcome_date, censor_date), coalesce(death_date, censor_date), censor_date))))
           AS exit_days,
       CASE WHEN outcome_date IS NOT NULL AND outcome_date <= censor_date
                 AND (death_date IS NULL OR outcome_date <= death_date) THEN 1 ELSE 0 END AS event
FROM timed
"""
_DEATH_OUTCOME = "SELECT person_id, death_date AS outcome_date FROM members"
_LPR_OUTCOME = """
    SELECT m.person_id, min(l.admission_date) AS outcome_date
    FROM members AS m JOIN lpr AS l ON l.person_id = m.person_id
    WHERE l.admission_date > m.index_date AND l.icd10 LIKE '{prefix}%'
    GROUP BY m.person_id"""


def _prefix(where: list[dict]) -> str | None:
    assert len(where) <= 1 and all(c["column"] == "lpr.icd10" and c["op"] == "prefix" for c in where)
    return where[0]["value"] if where else None


def cohort_members(db: Path, cohort: dict) -> CohortMembers:
    """The members of ``cohort`` (one of this module's lpr-indexed cohorts) by hand-written SQL."""
    index, (exclude,) = cohort["index"], cohort["exclude"]
    assert index["register"] == exclude["register"] == "lpr"
    days = follow_up_days(cohort["follow_up_years"])
    index_prefix, outcome = _prefix(index["where"]), cohort.get("outcome")
    lookback = exclude.get("lookback_days")
    sql = _MEMBERS_SQL.format(
        entry_first=index["entry"][0],
        entry_last=index["entry"][1],
        index_where=f"AND icd10 LIKE '{index_prefix}%'" if index_prefix else "",
        lookback=f"AND l.admission_date >= i.index_date - INTERVAL ({lookback}) DAY" if lookback else "",
        exclude_prefix=_prefix(exclude["where"]),
        outcome_sql=_DEATH_OUTCOME
        if outcome is None
        else _LPR_OUTCOME.format(prefix=_prefix(outcome["where"])),
        age=_AGE_AT_INDEX,
        days=days,
        reference=REFERENCE_DATE,
    )
    with duckdb.connect(str(db), read_only=True) as con:
        table = con.sql(sql).fetchnumpy()
    return CohortMembers(
        sex=np.asarray(table["sex"]).astype(str),
        region=np.asarray(table["region"]).astype(str),
        age_band=np.asarray(table["age_band"]).astype(str),
        exit_days=np.asarray(table["exit_days"], dtype=np.int64),
        event=np.asarray(table["event"], dtype=np.int64),
        follow_up_days=days,
    )


# --- exact tables --------------------------------------------------------------------------------


def month_edges(follow_up_years: int) -> np.ndarray:
    """Day edges of monthly exit bins (365.25 / 12 days) over [0, T]: bin k holds the exit days in
    [edge k, edge k+1), i.e. day t is in bin floor(t / month), and day T in the last bin."""
    months = 12 * follow_up_years
    return np.ceil(np.arange(months + 1) * DAYS_PER_YEAR / 12).astype(np.int64)


def survival_histogram(
    members: CohortMembers, mask: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (events, censored) per exit bin of the members in ``mask``; exit day T is in the last bin."""
    bins = np.clip(np.searchsorted(edges, members.exit_days[mask], side="right") - 1, 0, len(edges) - 2)
    event = members.event[mask]
    events = np.bincount(bins[event == 1], minlength=len(edges) - 1).astype(np.int64)
    censored = np.bincount(bins[event == 0], minlength=len(edges) - 1).astype(np.int64)
    return events, censored


def binned_kaplan_meier(events: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival at each bin's end from exact counts (events before censorings in a bin)."""
    at_risk = events.sum() + censored.sum() - np.concatenate([[0], np.cumsum(events + censored)[:-1]])
    factors = np.where(at_risk > 0, 1 - events / np.maximum(at_risk, 1), 1.0)
    return np.cumprod(factors)


def daily_kaplan_meier(exit_days: np.ndarray, event: np.ndarray, day: int) -> float:
    """Kaplan-Meier survival at ``day`` from individual exit days (the unbinned exact estimate)."""
    days = np.arange(day + 1)
    deaths = np.bincount(exit_days[event == 1], minlength=day + 1)[: day + 1]
    leaving = np.bincount(exit_days, minlength=day + 1)[: day + 1]
    at_risk = len(exit_days) - np.concatenate([[0], np.cumsum(leaving)[:-1]])
    factors = np.where(at_risk > 0, 1 - deaths / np.maximum(at_risk, 1), 1.0)
    return float(np.prod(factors[days]))


def rate_table(members: CohortMembers) -> tuple[np.ndarray, np.ndarray]:
    """Exact events and person-days as [sex, age band] arrays (every key of the public key sets)."""
    events = np.zeros((len(SEXES), len(AGE_BANDS_10)), dtype=np.int64)
    days = np.zeros_like(events)
    for i, sex in enumerate(SEXES):
        for j, band in enumerate(AGE_BANDS_10):
            mask = (members.sex == sex) & (members.age_band == band)
            events[i, j] = members.event[mask].sum()
            days[i, j] = members.exit_days[mask].sum()
    return events, days
