"""Survival after a first myocardial infarction, and metformin before it: the stated truths 1 and 2.

A person's first I21 contact comes from the chronic-condition model like any other diagnosis. Here
each such person is marked as a metformin user in the year before (or not), and their death is drawn
anew from the stated hazard model (``TRUTHS.infarction``); everything generated later (contacts,
prescriptions, income) follows the new last day. The lmdb generator then makes the metformin
redemptions agree with the mark (``metformin_window``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from datasets.synthetic import model
from datasets.synthetic.dates import DAYS_PER_YEAR, Days, age_at, day
from datasets.synthetic.people import Persons
from datasets.synthetic.world import World

if TYPE_CHECKING:  # health imports this module for the lmdb rows
    from datasets.synthetic.health import Diagnoses

Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

_I21 = next(k for k, c in enumerate(model.CONDITIONS) if c.icd10 == "I21")
_E11 = next(k for k, c in enumerate(model.CONDITIONS) if c.icd10 == "E11")


@dataclass(frozen=True)
class Infarctions:
    """The persons of a chunk with a first I21 contact: index day, metformin mark, days to death."""

    person: Int
    index: Days
    metformin: Bool
    days_to_death: Int  # death_date - index, or -1 for those alive at the reference date

    def early_deaths(self, size: int, days: int = 30) -> Bool:
        """For every person of the chunk: died within ``days`` of a first I21 contact."""
        early = np.zeros(size, dtype=bool)
        early[self.person] = (self.days_to_death >= 0) & (self.days_to_death < days)
        return early


def survive_infarctions(
    rng: np.random.Generator, world: World, persons: Persons, diagnoses: Diagnoses
) -> tuple[Persons, Diagnoses, Infarctions]:
    """Mark metformin users and draw each first-I21 person's death from the stated hazards.

    Returns the persons with their new deaths and the diagnoses censored at every person's last day.
    """
    truth = model.TRUTHS.infarction
    person = np.flatnonzero(diagnoses.has[:, _I21])
    index = diagnoses.onset[person, _I21]
    male = persons.male[person]

    lead = model.TRUTHS.metformin
    observable = index - lead.diabetes_lead_days >= world.coverage_start
    diabetic = diagnoses.has[person, _E11] & (
        diagnoses.onset[person, _E11] <= index - lead.diabetes_lead_days
    )
    chance = np.where(diabetic, lead.with_diabetes, lead.without_diabetes)
    metformin = observable & (rng.random(person.size) < chance)

    age = (index - persons.birth[person]) / DAYS_PER_YEAR
    hazard_ratio = np.exp(truth.log_hazard_ratio(age, male, metformin))
    days = _survival_days(rng.exponential(size=person.size) / hazard_ratio)
    last_day = min(world.reference_day, day(str(world.bounds("cpr", "death_date").hi)))
    death = index + np.floor(np.minimum(days, 1e6)).astype(np.int64)
    dies = death <= last_day

    dead = persons.dead.copy()
    end = persons.end.copy()
    dead[person] = dies
    end[person] = np.where(dies, death, world.reference_day)
    new_persons = dataclasses.replace(persons, dead=dead, end=end, age_end=age_at(persons.birth, end))
    infarctions = Infarctions(
        person=person, index=index, metformin=metformin, days_to_death=np.where(dies, death - index, -1)
    )
    return new_persons, diagnoses.until(end), infarctions


def _survival_days(cumulative_hazard: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Days since the index at which the baseline cumulative hazard reaches each value."""
    baseline = model.TRUTHS.infarction.baseline
    days = np.full(cumulative_hazard.size, np.inf)
    before = 0.0
    for k, (start, rate) in enumerate(baseline):
        end = baseline[k + 1][0] if k + 1 < len(baseline) else np.inf
        inside = np.isinf(days) & (cumulative_hazard < before + rate * (end - start) / DAYS_PER_YEAR)
        days = np.where(inside, start + (cumulative_hazard - before) / rate * DAYS_PER_YEAR, days)
        before += rate * (end - start) / DAYS_PER_YEAR
    return days


def metformin_window(
    rng: np.random.Generator,
    world: World,
    persons: Persons,
    infarctions: Infarctions,
    person: Int,
    date: Days,
    atc: Int,
) -> tuple[Bool, Int, Days, Int]:
    """Make redemptions of metformin before each first I21 agree with the metformin mark.

    Returns which of the given rows to keep (no metformin in the unexposed window of the unmarked)
    and the rows of the marked: a redemption about every 90 days through the 400 days before the
    index, the last one at most 120 days before it (so within the stated 300 days).
    """
    truth = model.TRUTHS.metformin
    code = world.atc_code_index(truth.atc)
    index_of = np.full(persons.size, np.iinfo(np.int64).min // 2, dtype=np.int64)
    index_of[infarctions.person] = infarctions.index
    before = index_of[person] - date
    keep = ~((atc == code) & (before >= 0) & (before < truth.unexposed_days))

    marked = infarctions.person[infarctions.metformin]
    index = infarctions.index[infarctions.metformin]
    interval = np.clip(np.round(90 * np.exp(rng.normal(0.0, 0.15, size=marked.size))), 60, 120).astype(
        np.int64
    )
    first = index - truth.diabetes_lead_days + rng.integers(0, 60, size=marked.size)
    count = (index - 1 - first) // interval + 1
    item = np.repeat(np.arange(marked.size), count)
    k = np.arange(item.size) - np.repeat(np.cumsum(count) - count, count)
    new_date = first[item] + k * interval[item]
    return keep, marked[item], new_date, np.full(item.size, code, dtype=np.int64)
