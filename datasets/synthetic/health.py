"""Health histories: chronic diagnoses, hospital contacts (lpr), prescriptions (lmdb), deaths (dar)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datasets.synthetic import model
from datasets.synthetic.dates import DAYS_PER_YEAR, Days, add_years, age_at
from datasets.synthetic.infarction import Infarctions, metformin_window
from datasets.synthetic.output import Coded, ColumnData, Masked
from datasets.synthetic.people import Persons, PersonYears
from datasets.synthetic.truths import DiabetesIncidence
from datasets.synthetic.world import World

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

_INPATIENT, _OUTPATIENT, _EMERGENCY = 0, 1, 2
_CONTACT_TYPE_NAMES = ("inpatient", "outpatient", "emergency")
_LOS_MISSING = 0.005
_DDD_MISSING = 0.003
_OWN_REGION = 0.92


@dataclass(frozen=True)
class Diagnoses:
    """Chronic conditions of a chunk: a matrix of who has which, and the date of the first contact."""

    has: Bool  # (persons, conditions)
    onset: Days  # (persons, conditions); meaningful where ``has``

    def until(self, end: Days) -> Diagnoses:
        """Only the conditions first seen on or before each person's last day."""
        return Diagnoses(self.has & (self.onset <= end[:, None]), self.onset)


def _uniform_days(rng: np.random.Generator, lo: Days, hi: Days) -> Days:
    """A uniform day in [lo, hi] for each pair (hi >= lo)."""
    return lo + np.floor(rng.random(lo.size) * (hi - lo + 1)).astype(np.int64)


def _window_factor(lo: Days, hi: Days, coverage_years: int) -> Float:
    """Shorter follow-up, fewer chances to be seen; floored since prevalent cases show up early."""
    years = np.clip((hi - lo + 1) / DAYS_PER_YEAR, 0, coverage_years)
    return 0.35 + 0.65 * years / coverage_years


def sample_diagnoses(rng: np.random.Generator, world: World, persons: Persons) -> Diagnoses:
    """Who has which chronic condition in the coverage period, and when it is first seen.

    Conditions with an incidence are drawn as if everyone lived to the reference date: the caller
    censors them at death (``Diagnoses.until``) once deaths are final, so death never depends on them.
    """
    n, k = persons.size, len(model.CONDITIONS)
    has = np.zeros((n, k), dtype=bool)
    onset = np.zeros((n, k), dtype=np.int64)
    for c, condition in enumerate(model.CONDITIONS):
        lo = np.maximum(world.coverage_start, add_years(persons.birth, condition.min_age))
        if condition.incidence is not None:
            onset[:, c] = _first_contact_at_rate(rng, world, persons, lo, condition.incidence)
            has[:, c] = onset[:, c] >= 0
            continue
        assert condition.prevalence is not None
        hi = persons.end
        p = (
            condition.prevalence.at(persons.age_end, persons.male)
            * persons.risk
            * np.where(persons.dead, condition.dead_boost, 1.0)
            * _window_factor(lo, hi, world.coverage_years)
        )
        has[:, c] = (lo <= hi) & (rng.random(n) < np.minimum(p, 0.95))
        onset[:, c] = np.where(has[:, c], _uniform_days(rng, lo, np.maximum(hi, lo)), 0)
    return Diagnoses(has, onset)


def _first_contact_at_rate(
    rng: np.random.Generator, world: World, persons: Persons, lo: Days, incidence: DiabetesIncidence
) -> Days:
    """First-contact day from ``lo`` to the reference date at a rate by attained 10-year age band and
    sex (-1 for none): the inverse of the piecewise-linear cumulative hazard at an Exp(1) draw."""
    remaining = rng.exponential(size=persons.size)
    onset = np.full(persons.size, -1, dtype=np.int64)
    for band in range(len(incidence.female)):
        first = np.maximum(lo, add_years(persons.birth, 10 * band))
        last = np.full(persons.size, world.reference_day, dtype=np.int64)
        if band < len(incidence.female) - 1:
            last = np.minimum(last, add_years(persons.birth, 10 * (band + 1)) - 1)
        days = np.clip(last - first + 1, 0, None)
        rate = incidence.per_year(np.full(persons.size, band), persons.male) / DAYS_PER_YEAR
        hazard = rate * days
        hit = (onset < 0) & (remaining < hazard)
        onset = np.where(hit, first + np.floor(remaining / np.where(hit, rate, 1.0)).astype(np.int64), onset)
        remaining = remaining - hazard
    return onset


def sample_death_causes(
    rng: np.random.Generator, world: World, persons: Persons, diagnoses: Diagnoses, infarctions: Infarctions
) -> Int:
    """Underlying cause of each death (icd10 index, in person order): age-typical causes mixed with
    those of the person's diseases; mostly I21 for a death within 30 days of a first I21."""
    dead = np.flatnonzero(persons.dead)
    group = np.searchsorted(np.asarray(model.DEATH_AGE_EDGES), persons.age_end[dead], side="right") - 1
    weights = world.death_cause_weights[group, persons.male[dead].astype(np.int64)]
    weights = weights + diagnoses.has[dead].astype(np.float64) @ world.death_cause_boosts
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    pick = (cdf[:, :-1] < rng.random(dead.size)[:, None]).sum(axis=1)
    early = infarctions.early_deaths(persons.size)[dead]
    infarction = early & (rng.random(dead.size) < model.TRUTHS.infarction.early_cause_i21)
    return np.where(infarction, world.icd10_code("I21"), world.death_causes[pick])


def dar_columns(world: World, persons: Persons, cause: Int) -> tuple[Int, dict[str, ColumnData]]:
    """One row per death, on the cpr death date."""
    dead = np.flatnonzero(persons.dead)
    return dead, {"death_date": persons.end[dead], "cause_icd10": Coded(cause, world.icd10.values)}


class _Contacts:
    """Hospital contacts collected from several sources before they become lpr rows."""

    def __init__(self) -> None:
        self.person: list[Int] = []
        self.admission: list[Days] = []
        self.icd10: list[Int] = []
        self.kind: list[Int] = []
        self.los_median: list[Float] = []

    def add(self, person: Int, admission: Days, icd10: Int, kind: Int, los_median: Float | float) -> None:
        self.person.append(person)
        self.admission.append(admission)
        self.icd10.append(icd10)
        self.kind.append(kind)
        self.los_median.append(np.broadcast_to(np.asarray(los_median, dtype=np.float64), person.shape))

    def sorted(self) -> tuple[Int, Days, Int, Int, Float]:
        """All contacts, ordered by person and admission date."""
        person, admission = np.concatenate(self.person), np.concatenate(self.admission)
        order = _by_person_and_date(person, admission)
        return (
            person[order],
            admission[order],
            np.concatenate(self.icd10)[order],
            np.concatenate(self.kind)[order],
            np.concatenate(self.los_median)[order],
        )


def _kinds(
    rng: np.random.Generator, size: int, inpatient: npt.NDArray[np.floating] | float, emergency: float
) -> Int:
    u = rng.random(size)
    return np.where(u < inpatient, _INPATIENT, np.where(u < inpatient + emergency, _EMERGENCY, _OUTPATIENT))


def _by_person_and_date(person: Int, date: Days) -> Int:
    """Row order by person, then date; stable, so it is the same on every machine."""
    lo = date.min(initial=0)
    span = int(date.max(initial=0) - lo) + 1
    return np.argsort(person * span + (date - lo), kind="stable")


def _expand(counts: Int) -> tuple[Int, Int]:
    """For counts per item: the item of each event, and the event's number within its item."""
    item = np.repeat(np.arange(counts.size), counts)
    offsets = np.cumsum(counts) - counts
    return item, np.arange(item.size) - offsets[item]


def lpr_columns(
    rng: np.random.Generator,
    world: World,
    persons: Persons,
    years: PersonYears,
    diagnoses: Diagnoses,
    death_cause: Int,
    volume: model.Volume = model.VOLUMES["default"],
) -> tuple[Int, dict[str, ColumnData]]:
    """Hospital contacts: chronic conditions, background contacts, births, newborns, last weeks of life."""
    contacts = _Contacts()
    _add_condition_contacts(rng, world, persons, diagnoses, contacts)
    _add_background_contacts(rng, world, persons, years, contacts, volume)
    _add_births(rng, world, persons, years, contacts)
    _add_newborns(rng, world, persons, contacts)
    _add_last_stays(rng, world, persons, diagnoses, death_cause, contacts)
    return _lpr_rows(rng, world, persons, contacts)


def _add_condition_contacts(
    rng: np.random.Generator, world: World, persons: Persons, diagnoses: Diagnoses, contacts: _Contacts
) -> None:
    """The first contact for each condition, a burst soon after, then regular follow-up."""
    multiplier = 0.5 + 0.5 * persons.frailty
    for c, condition in enumerate(model.CONDITIONS):
        person = np.flatnonzero(diagnoses.has[:, c])
        onset = diagnoses.onset[person, c]
        end = persons.end[person]
        code = np.full(person.size, world.icd10_code(condition.icd10))
        kinds = _kinds(rng, person.size, *condition.first_type)
        contacts.add(person, onset, code, kinds, condition.los_median)
        for mean, days in (
            (condition.burst, condition.burst_days),
            (condition.rate * condition.follow_years, condition.follow_years * DAYS_PER_YEAR),
        ):
            if mean <= 0:
                continue
            stop = np.minimum(end, onset + int(days))
            share = (stop - onset + 1) / (days + 1)
            item, _ = _expand(rng.poisson(mean * share * multiplier[person]))
            contacts.add(
                person[item],
                _uniform_days(rng, onset[item], stop[item]),
                code[item],
                _kinds(rng, item.size, *condition.follow_type),
                condition.los_median * 0.7,
            )


def _add_background_contacts(
    rng: np.random.Generator,
    world: World,
    persons: Persons,
    years: PersonYears,
    contacts: _Contacts,
    volume: model.Volume,
) -> None:
    """Contacts for everything else, per person-year, with the long tail of diagnoses."""
    group = model.age_group(years.age)
    male = persons.male[years.person]
    female_factor = np.asarray(model.CONTACT_RATE_FEMALE_FACTOR)[group]
    rate = (
        np.asarray(model.CONTACT_RATE)[group]
        * np.where(male, 1.0, female_factor)
        * volume.background_contacts
    )
    item, _ = _expand(rng.poisson(rate * years.exposure * persons.frailty[years.person]))
    person = years.person[item]
    admission = _uniform_days(rng, years.lo[item], years.hi[item])
    age = age_at(persons.birth[person], admission)
    code = world.tail_codes.sample(rng, model.age_group(age) * 2 + male[item])
    inpatient = (model.BACKGROUND_TYPE[0] + 0.12 * (age >= 65)) * volume.background_inpatient
    kinds = _kinds(rng, item.size, inpatient, model.BACKGROUND_TYPE[1])
    contacts.add(person, admission, code, kinds, 2.0 + age / 25)


def _add_newborns(rng: np.random.Generator, world: World, persons: Persons, contacts: _Contacts) -> None:
    """A Z38 stay at birth for most persons born in the coverage period."""
    person = np.flatnonzero((persons.birth >= world.coverage_start) & (rng.random(persons.size) < 0.9))
    code = np.full(person.size, world.icd10_code("Z38"))
    contacts.add(person, persons.birth[person], code, np.full(person.size, _INPATIENT), 1.5)


def _add_last_stays(
    rng: np.random.Generator,
    world: World,
    persons: Persons,
    diagnoses: Diagnoses,
    death_cause: Int,
    contacts: _Contacts,
) -> None:
    """Hospital stays in the last two months of life, mostly for the cause of death.

    A stay never brings a chronic condition's first contact (that belongs to the condition's model,
    whose onset the stated truths rely on): before the onset, or without the condition, it is
    for a background diagnosis instead.
    """
    dead = np.flatnonzero(persons.dead)
    item, _ = _expand(rng.poisson(1.2, size=dead.size))
    person = dead[item]
    end = persons.end[person]
    lo = np.maximum.reduce([end - 60, persons.birth[person], np.full(item.size, world.coverage_start)])
    terminal = _terminal_codes(world, death_cause[item])
    tail = world.tail_codes.sample(rng, model.age_group(persons.age_end[person]) * 2 + persons.male[person])
    code = np.where(rng.random(item.size) < 0.7, terminal, tail)
    date = _uniform_days(rng, lo, end)
    for c, condition in enumerate(model.CONDITIONS):
        seen = diagnoses.has[person, c] & (diagnoses.onset[person, c] <= date)
        code = np.where((code == world.icd10_code(condition.icd10)) & ~seen, tail, code)
    contacts.add(person, date, code, np.full(item.size, _INPATIENT), 6.0)


def _add_births(
    rng: np.random.Generator, world: World, persons: Persons, years: PersonYears, contacts: _Contacts
) -> None:
    """Deliveries (O80 normal, O82 caesarean) for women aged 20-45."""
    ages, rates = (np.asarray(v) for v in zip(*model.BIRTH_RATE_BY_AGE, strict=True))
    rate = rates[np.clip(np.searchsorted(ages, years.age, side="right") - 1, 0, None)]
    women = np.flatnonzero(~persons.male[years.person] & (years.age >= 20) & (years.age <= 46))
    person = years.person[women]
    lo = np.maximum(years.lo[women], add_years(persons.birth[person], 20))
    hi = np.minimum(years.hi[women], add_years(persons.birth[person], 46) - 1)
    fertile = lo <= hi
    women, person, lo, hi = women[fertile], person[fertile], lo[fertile], hi[fertile]
    item, _ = _expand(rng.poisson(rate[women] * (hi - lo + 1) / DAYS_PER_YEAR))
    caesarean = rng.random(item.size) < model.CAESAREAN_SHARE
    code = np.where(caesarean, world.icd10_code("O82"), world.icd10_code("O80"))
    contacts.add(
        person[item],
        _uniform_days(rng, lo[item], hi[item]),
        code,
        np.full(item.size, _INPATIENT),
        np.where(caesarean, 4.0, 1.5),
    )


def _terminal_codes(world: World, cause: Int) -> Int:
    """Diagnosis of a last hospital stay: the cause of death, or the injury behind an external cause."""
    lookup = np.arange(len(world.icd10))
    for death_cause, diagnosis in model.TERMINAL_DIAGNOSIS.items():
        lookup[world.icd10_code(death_cause)] = world.icd10_code(diagnosis)
    return lookup[cause]


def _lpr_rows(
    rng: np.random.Generator, world: World, persons: Persons, contacts: _Contacts
) -> tuple[Int, dict[str, ColumnData]]:
    person, admission, icd10, kind, los_median = contacts.sorted()
    n = person.size
    los_bounds = world.bounds("lpr", "los_days")
    stay = np.maximum(1, np.round(np.exp(np.log(los_median) + 0.8 * rng.standard_normal(n))))
    los = np.where(kind == _INPATIENT, stay, np.where(kind == _EMERGENCY, rng.random(n) < 0.2, 0))
    # A stay ends by death; the living may still be in hospital after the reference date.
    room = np.where(persons.dead[person], persons.end[person] - admission, int(los_bounds.hi))
    los = np.clip(los, int(los_bounds.lo), np.minimum(int(los_bounds.hi), room)).astype(np.int64)
    own = rng.random(n) < _OWN_REGION
    region = np.where(own, persons.region[person], rng.integers(0, len(world.regions), size=n))
    digit = world.subdivisions.sample(rng, np.zeros(n, dtype=np.int64))
    contact_type = np.array([world.contact_types[name] for name in _CONTACT_TYPE_NAMES])[kind]
    return person, {
        "contact_id": np.zeros(n, dtype=np.int64),  # filled with global keys by the caller
        "admission_date": admission,
        "discharge_date": admission + los,
        "los_days": Masked(los, rng.random(n) >= _LOS_MISSING),
        "icd10": Coded(icd10, world.icd10.values),
        "diagnosis_code": Coded(icd10 * 10 + digit, world.diagnosis_codes),
        "contact_type": Coded(contact_type, world.contact_types.values),
        "hospital_region": Coded(region, world.regions.values),
    }


@dataclass(frozen=True)
class _Courses:
    """Treatment courses: one substance redeemed every ``interval`` days from ``start`` to ``stop``."""

    person: Int
    atc: Int
    start: Days
    stop: Days
    interval: Float
    one_package: float  # chance that a redemption is of one package
    up_to_two_packages: float  # chance of one or two (else three)


def lmdb_columns(
    rng: np.random.Generator,
    world: World,
    persons: Persons,
    years: PersonYears,
    diagnoses: Diagnoses,
    infarctions: Infarctions,
    volume: model.Volume = model.VOLUMES["default"],
) -> tuple[Int, dict[str, ColumnData]]:
    """Redeemed prescriptions: treatment after diagnoses, background treatment and short courses;
    metformin before a first I21 as marked in ``infarctions``."""
    condition_index = {c.icd10: k for k, c in enumerate(model.CONDITIONS)}
    courses = [
        _regimen_courses(rng, world, persons, diagnoses, condition_index, regimen, volume)
        for regimen in model.REGIMENS
    ]
    person, date, atc, packages = _redemptions(rng, courses)

    # Short courses (antibiotics, painkillers, ...) at random times, per person-year.
    shape = volume.short_course_shape
    propensity = rng.gamma(shape, 1 / shape, size=persons.size)
    stratum = model.age_group(years.age) * 2 + persons.male[years.person]
    total = world.acute_rates.reshape(-1, world.acute_atc.size).sum(axis=1)[stratum]
    rate = total * volume.short_courses
    item, _ = _expand(rng.poisson(rate * years.exposure * propensity[years.person]))
    acute_atc = world.acute_atc[world.acute_mix.sample(rng, stratum[item])]
    acute_packages = 1 + (rng.random(item.size) < 0.1) + (rng.random(item.size) < 0.02)
    person = np.concatenate([person, years.person[item]])
    date = np.concatenate([date, _uniform_days(rng, years.lo[item], years.hi[item])])
    atc = np.concatenate([atc, acute_atc])
    packages = np.concatenate([packages, acute_packages])

    keep, met_person, met_date, met_atc = metformin_window(
        rng, world, persons, infarctions, person, date, atc
    )
    one, two, _ = model.Regimen(((model.TRUTHS.metformin.atc, 1),)).packages
    met_packages = _packages(rng, met_person.size, one, one + two)
    person = np.concatenate([person[keep], met_person])
    date = np.concatenate([date[keep], met_date])
    atc = np.concatenate([atc[keep], met_atc])
    packages = np.concatenate([packages[keep], met_packages])

    order = _by_person_and_date(person, date)
    person, date, atc, packages = person[order], date[order], atc[order], packages[order]
    package_bounds = world.bounds("lmdb", "packages")
    packages = np.clip(packages, package_bounds.lo, package_bounds.hi).astype(np.int64)
    ddd_bounds = world.bounds("lmdb", "ddd")
    ddd = np.clip(np.round(world.pack_ddd[atc] * packages, 2), ddd_bounds.lo, ddd_bounds.hi)
    return person, {
        "date": date,
        "atc": Coded(atc, world.atc.values),
        "ddd": Masked(ddd, rng.random(person.size) >= _DDD_MISSING),
        "packages": packages,
    }


def _regimen_courses(
    rng: np.random.Generator,
    world: World,
    persons: Persons,
    diagnoses: Diagnoses,
    condition_index: dict[str, int],
    regimen: model.Regimen,
    volume: model.Volume,
) -> _Courses:
    if regimen.trigger is not None:
        c = condition_index[regimen.trigger]
        person = np.flatnonzero(diagnoses.has[:, c] & (rng.random(persons.size) < regimen.uptake))
        delay = rng.integers(regimen.delay_days[0], regimen.delay_days[1] + 1, size=person.size)
        start = diagnoses.onset[person, c] + delay
    else:
        assert regimen.background is not None
        lo = np.maximum(world.coverage_start, add_years(persons.birth, regimen.min_age))
        hi = np.minimum(persons.end, add_years(persons.birth, regimen.max_age + 1) - 1)
        p = regimen.background.at(persons.age_end, persons.male) * _window_factor(
            lo, hi, world.coverage_years
        )
        if volume.background_regimens != 1.0 and not _carries_truth(regimen):
            p = np.minimum(p * volume.background_regimens, 0.9)
        person = np.flatnonzero((lo <= hi) & (rng.random(persons.size) < p))
        lo, hi = lo[person], hi[person]
        # Long-standing users (old enough well before the coverage period) redeem from its start.
        prevalent = (lo == world.coverage_start) & (rng.random(person.size) < 0.5)
        start = np.where(prevalent, lo + rng.integers(0, 90, size=person.size), _uniform_days(rng, lo, hi))
    weights = np.array([w for _, w in regimen.options])
    choice = np.searchsorted(np.cumsum(weights / weights.sum()), rng.random(person.size), side="right")
    atc = np.array([world.atc_code_index(code) for code, _ in regimen.options])[
        np.minimum(choice, weights.size - 1)
    ]
    start = np.maximum(start, world.marketed_from[atc])
    length = np.full(person.size, np.inf)
    if regimen.stop_rate > 0:
        length = rng.exponential(DAYS_PER_YEAR / regimen.stop_rate, size=person.size)
    if regimen.years is not None:
        length = np.minimum(length, regimen.years * DAYS_PER_YEAR)
    stop = np.minimum(persons.end[person], start + np.minimum(length, 1e6).astype(np.int64))
    interval = regimen.interval_days * np.exp(rng.normal(0.0, 0.15, size=person.size))
    return _Courses(
        person=person,
        atc=atc,
        start=start,
        stop=stop,
        interval=interval,
        one_package=regimen.packages[0],
        up_to_two_packages=regimen.packages[0] + regimen.packages[1],
    )


def _carries_truth(regimen: model.Regimen) -> bool:
    """Whether the regimen's substance is one a stated truth counts (metformin): its volume stays."""
    return any(code == model.TRUTHS.metformin.atc for code, _ in regimen.options)


def _redemptions(rng: np.random.Generator, courses: list[_Courses]) -> tuple[Int, Days, Int, Int]:
    """Expand courses into redemptions every interval (with a few days' jitter) within start..stop."""
    person = np.concatenate([c.person for c in courses])
    atc = np.concatenate([c.atc for c in courses])
    start = np.concatenate([c.start for c in courses])
    stop = np.concatenate([c.stop for c in courses])
    interval = np.concatenate([c.interval for c in courses])
    one = np.concatenate([np.full(c.person.size, c.one_package) for c in courses])
    up_to_two = np.concatenate([np.full(c.person.size, c.up_to_two_packages) for c in courses])
    counts = np.where(stop >= start, np.floor((stop - start) / interval).astype(np.int64) + 1, 0)
    item, k = _expand(counts)
    jitter = np.where(k > 0, rng.integers(-7, 8, size=item.size), 0)
    date = np.clip(
        start[item] + np.round(k * interval[item]).astype(np.int64) + jitter, start[item], stop[item]
    )
    return person[item], date, atc[item], _packages(rng, item.size, one[item], up_to_two[item])


def _packages(rng: np.random.Generator, size: int, one: Float | float, up_to_two: Float | float) -> Int:
    """Packages per redemption: 1 with chance ``one``, 2 up to ``up_to_two``, else 3."""
    u = rng.random(size)
    return 1 + (u >= one).astype(np.int64) + (u >= up_to_two)
