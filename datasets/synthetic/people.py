"""Persons (cpr) and their years: education (udda) and income (ind)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datasets.synthetic import model
from datasets.synthetic.dates import DAYS_PER_YEAR, Days, age_at, day, year_of, year_start
from datasets.synthetic.output import Coded, ColumnData, Masked
from datasets.synthetic.world import World

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Persons:
    """One chunk of persons with the latent traits that drive their register histories."""

    male: Bool
    birth: Days
    dead: Bool
    end: Days  # last day of follow-up: the death date, or the reference date for the living
    municipality: Int
    region: Int
    age_end: Int  # exact age at the end of follow-up
    risk: Float  # multiplies the chance of every chronic disease given by a prevalence (mean 1)
    frailty: Float  # multiplies the rate of hospital contacts (mean 1, heavy right tail)
    isced_final: Int
    isced_delay: Float  # years behind the usual age of completing each education
    income_factor: Float  # the person's lasting income factor (mean 1)

    @property
    def size(self) -> int:
        return int(self.male.size)


@dataclass(frozen=True)
class PersonYears:
    """Each calendar year of the coverage period a person lived in, with its exposure interval."""

    person: Int
    year: Int
    lo: Days
    hi: Days
    age: Int  # age at the end of the year
    alive_at_year_end: Bool

    @property
    def exposure(self) -> Float:
        """Years at risk within the year."""
        return (self.hi - self.lo + 1) / DAYS_PER_YEAR


def sample_persons(rng: np.random.Generator, world: World, n: int) -> Persons:
    """Draw ``n`` persons: the living at the reference date and those who died during coverage."""
    tables = world.persons
    dead = rng.random(n) < tables.death_share
    one_stratum = np.zeros(n, dtype=np.int64)
    cell = np.where(dead, tables.dying.sample(rng, one_stratum), tables.living.sample(rng, one_stratum))
    age = tables.ages[cell]
    male = cell >= tables.ages.size // 2

    birth_bounds = world.bounds("cpr", "birth_date")
    death_bounds = world.bounds("cpr", "death_date")
    earliest_birth, latest_death = day(str(birth_bounds.lo)), day(str(death_bounds.hi))
    death = rng.integers(day(str(death_bounds.lo)), latest_death + 1, size=n)
    # The dead: exact age at death as drawn. The living: born uniformly within the year of birth.
    birth_if_dead = death - np.floor((age + rng.random(n)) * DAYS_PER_YEAR).astype(np.int64)
    birth_year = year_of(np.array([world.reference_day])) - age
    first_day = year_start(birth_year)
    year_days = year_start(birth_year + 1) - first_day
    birth_if_alive = first_day + np.floor(rng.random(n) * year_days).astype(np.int64)
    birth = np.where(dead, np.minimum(birth_if_dead, death), np.minimum(birth_if_alive, world.reference_day))
    birth = np.maximum(birth, earliest_birth)
    end = np.where(dead, np.minimum(death, latest_death), world.reference_day)

    municipality = tables.municipality.sample(rng, one_stratum)
    z = rng.standard_normal(n)
    risk = np.exp(0.5 * z - 0.125)
    frailty = rng.gamma(0.45, 1 / 0.45, size=n) * np.exp(0.3 * z - 0.045)
    return Persons(
        male=male,
        birth=birth,
        dead=dead,
        end=end,
        municipality=municipality,
        region=tables.municipality_region[municipality],
        age_end=age_at(birth, end),
        risk=risk,
        frailty=frailty,
        isced_final=_final_education(rng, year_of(birth), male),
        isced_delay=rng.gamma(2.0, 0.75, size=n),
        income_factor=_mean_one_factor(rng, model.TRUTHS.income.person_factor, n),
    )


def _final_education(rng: np.random.Generator, birth_year: Int, male: Bool) -> Int:
    """Highest education a person will reach, drawn from their birth cohort's distribution."""
    cohorts = np.asarray(model.EDUCATION_COHORTS, dtype=np.float64)
    table = np.asarray(model.EDUCATION_FINAL)
    probs = np.stack([np.interp(birth_year, cohorts, table[:, k]) for k in range(table.shape[1])], axis=1)
    ramp = np.clip((birth_year - 1950) / 30, 0, 1)[:, None]
    shift = np.asarray(model.EDUCATION_FEMALE_SHIFT)[None, :] * ramp
    probs = np.clip(probs + np.where(male[:, None], -shift, shift), 0, None)
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return (cdf[:, :-1] < rng.random(birth_year.size)[:, None]).sum(axis=1).astype(np.int64)


def person_years(world: World, persons: Persons) -> PersonYears:
    """Expand persons into their calendar years within the coverage period."""
    first = year_of(np.maximum(persons.birth, world.coverage_start))
    last = year_of(persons.end)
    counts = np.maximum(last - first + 1, 0)
    person = np.repeat(np.arange(persons.size), counts)
    offsets = np.cumsum(counts) - counts
    year = first[person] + np.arange(person.size) - offsets[person]
    year_first = year_start(year)
    year_last = year_start(year + 1) - 1
    birth_year = year_of(persons.birth)
    return PersonYears(
        person=person,
        year=year,
        lo=np.maximum(year_first, persons.birth[person]),
        hi=np.minimum(year_last, persons.end[person]),
        age=year - birth_year[person],
        alive_at_year_end=~persons.dead[person] | (persons.end[person] > year_last),
    )


def attained_education(persons: Persons, person: Int, age: Int) -> Int:
    """ISCED level completed by the end of a year, non-decreasing with age for each person."""
    final = persons.isced_final[person]
    late = age - persons.isced_delay[person]
    ages = model.COMPLETION_AGE
    level = np.where(final == 0, 0, 1)
    level = np.where((final >= 2) & (age >= ages[2]), 2, level)
    level = np.where((final >= 3) & (late >= ages[3]), 3, level)
    for step in (4, 5, 6):
        level = np.where((final == step) & (late >= ages[step]), step, level)
    level = np.where((final >= 7) & (late >= ages[6]), 6, level)
    level = np.where((final >= 7) & (late >= ages[7]), 7, level)
    level = np.where((final == 8) & (late >= ages[8]), 8, level)
    return level.astype(np.int64)


def _register_years(world: World, years: PersonYears, register: str, min_age: int) -> Int:
    first, last = world.catalog.register(register).coverage
    keep = (years.year >= first) & (years.year <= last) & years.alive_at_year_end & (years.age >= min_age)
    return np.flatnonzero(keep)


def cpr_columns(world: World, persons: Persons) -> tuple[Int, dict[str, ColumnData]]:
    """The cpr rows of a chunk (person index, columns without the keys)."""
    sex = np.where(persons.male, world.sexes["M"], world.sexes["F"])
    return np.arange(persons.size), {
        "sex": Coded(sex, world.sexes.values),
        "birth_date": persons.birth,
        "region": Coded(persons.region, world.regions.values),
        "municipality": Coded(persons.municipality, world.municipalities.values),
        "death_date": Masked(persons.end, persons.dead),
    }


def udda_columns(world: World, persons: Persons, years: PersonYears) -> tuple[Int, dict[str, ColumnData]]:
    """Highest completed education for each year a person is 15+ and alive at the end of it."""
    rows = _register_years(world, years, "udda", min_age=15)
    person = years.person[rows]
    level = attained_education(persons, person, years.age[rows])
    return person, {"year": years.year[rows], "isced_level": level}


def ind_columns(
    rng: np.random.Generator, world: World, persons: Persons, years: PersonYears
) -> tuple[Int, dict[str, ColumnData]]:
    """Disposable income for each year a person is 18+ and alive at the end of it.

    The mean given age, sex, education and year is the stated truth ``TRUTHS.income.mean``; the noise
    (person and year factors of mean one, business losses offset in the mean) keeps it so.
    """
    truth = model.TRUTHS.income
    rows = _register_years(world, years, "ind", min_age=18)
    person = years.person[rows]
    age = years.age[rows]
    year = years.year[rows]
    level = attained_education(persons, person, age)
    mean = truth.mean(age, persons.male[person], level, year)
    loss = truth.business_loss_share
    # Positive incomes are scaled up by as much as the losses (mean -max/2) take away on average.
    positive = (mean + loss * truth.business_loss_max / 2) / (1 - loss)
    factor = persons.income_factor[person] * _mean_one_factor(rng, truth.year_factor, rows.size)
    negative = rng.random(rows.size) < loss
    income = np.where(negative, -truth.business_loss_max * rng.random(rows.size), positive * factor)
    bounds = world.bounds("ind", "disposable_income")
    income = np.clip(np.round(income), bounds.lo, bounds.hi).astype(np.int64)
    valid = rng.random(rows.size) >= 0.002
    return person, {"year": year, "disposable_income": Masked(income, valid)}


def _mean_one_factor(rng: np.random.Generator, shape: tuple[float, float, float, float], n: int) -> Float:
    """``lo + width * Beta(a, b)`` with ``lo + width * a / (a + b) == 1``: bounded, mean exactly one."""
    lo, width, a, b = shape
    return lo + width * rng.beta(a, b, size=n)
