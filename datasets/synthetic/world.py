"""Everything the generator samples from, resolved once: catalog vocabularies, reference tables and
the model parameters as arrays indexed like the catalog's key sets."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from datasets.synthetic import model
from datasets.synthetic.dates import day
from query_engine.catalog import Bounds, Catalog

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]

_DATASETS = Path(__file__).resolve().parents[1]
CLASSIFICATIONS = _DATASETS / "classifications"
REFERENCE = _DATASETS / "reference"
# Fixed, so that the disease landscape (which rare codes are frequent) is the same for every seed.
_LANDSCAPE_SEED = 20_101_231
N_SUBDIVISIONS = 10
_OPEN_AGE_SPREAD = (0.4, 0.27, 0.17, 0.1, 0.06)


class CategoricalTable:
    """Draws categories with a probability vector per stratum (e.g. per age group and sex).

    Walker's alias method: one uniform number and two lookups per draw, whatever the number of
    categories (the ICD-10 mix has hundreds).
    """

    def __init__(self, weights: npt.ArrayLike) -> None:
        w = np.asarray(weights, dtype=np.float64)
        totals = w.sum(axis=1, keepdims=True)
        if np.any(totals <= 0) or np.any(w < 0):
            raise ValueError("every stratum needs a positive total weight")
        self.n_categories = w.shape[1]
        tables = [_alias_table(row) for row in w / totals]
        self._accept = np.concatenate([accept for accept, _ in tables])
        self._alias = np.concatenate([alias for _, alias in tables])

    def sample(self, rng: np.random.Generator, strata: Int) -> Int:
        scaled = rng.random(strata.size) * self.n_categories
        column = scaled.astype(np.int64)
        cell = strata * self.n_categories + column
        return np.where(scaled - column < self._accept[cell], column, self._alias[cell])


def _alias_table(p: Float) -> tuple[Float, Int]:
    """Vose's construction: category k is kept with chance accept[k], else replaced by alias[k]."""
    n = p.size
    scaled = p * n
    accept = np.ones(n)
    alias = np.arange(n, dtype=np.int64)
    small = [k for k in range(n) if scaled[k] < 1.0]
    large = [k for k in range(n) if scaled[k] >= 1.0]
    while small and large:
        less, more = small.pop(), large.pop()
        accept[less], alias[less] = scaled[less], more
        scaled[more] += scaled[less] - 1.0
        (small if scaled[more] < 1.0 else large).append(more)
    return accept, alias


@dataclass(frozen=True)
class Vocabulary:
    """A key set as an Arrow vocabulary plus the index of each value."""

    values: pa.Array
    index: dict[str, int]

    @classmethod
    def of(cls, values: tuple[str | int, ...]) -> Vocabulary:
        strings = [str(v) for v in values]
        return cls(pa.array(strings, type=pa.string()), {v: i for i, v in enumerate(strings)})

    def __getitem__(self, value: str) -> int:
        return self.index[value]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class PersonTables:
    """Who lives in the population: age/sex mixes of the living and the dead, places of residence."""

    ages: Int  # age for each (age, sex) cell, sex-major: female cells then male cells
    living: CategoricalTable  # cells of the living at the reference date
    dying: CategoricalTable  # cells of those dying in a year
    death_share: float  # share of persons in cpr who died during the coverage years
    municipality: CategoricalTable
    municipality_region: Int  # index into the regions vocabulary


class World:
    """The catalog's vocabularies and bounds with every sampling table the generator needs."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.reference_day = day(catalog.reference_date)
        coverage = catalog.register(catalog.person_register).coverage
        self.coverage_start = day(f"{coverage[0]}-01-01")
        self.coverage_years = coverage[1] - coverage[0] + 1

        self.sexes = Vocabulary.of(catalog.keyset("sex").values)
        self.regions = Vocabulary.of(catalog.keyset("regions").values)
        self.municipalities = Vocabulary.of(catalog.keyset("municipalities").values)
        self.icd10 = Vocabulary.of(catalog.keyset("icd10").values)
        self.atc = Vocabulary.of(catalog.keyset("atc5").values)
        self.contact_types = Vocabulary.of(catalog.keyset("contact_types").values)
        if sorted(int(v) for v in catalog.keyset("isced").values) != list(range(len(model.COMPLETION_AGE))):
            raise ValueError("the education model needs the isced key set to be the ISCED 2011 levels 0-8")
        self.diagnosis_codes = pa.array(
            [f"D{code}{digit}" for code in self.icd10.index for digit in range(N_SUBDIVISIONS)],
            type=pa.string(),
        )
        self.persons = _person_tables(self)
        self.tail_codes = _tail_code_table(self)
        self.subdivisions = _subdivision_table()
        self.acute_atc = np.array([self.atc_code_index(code) for code, _, _ in model.ACUTE_DRUGS])
        self.acute_rates = _acute_rates()
        self.acute_mix = CategoricalTable(self.acute_rates.reshape(-1, len(model.ACUTE_DRUGS)))
        self.pack_ddd = np.array(
            [model.PACK_DDD.get(code, 30.0) for code in self.atc.index], dtype=np.float64
        )
        self.marketed_from = np.full(len(self.atc), self.coverage_start, dtype=np.int64)
        for code, iso in model.MARKETED_FROM.items():
            self.marketed_from[self.atc_code_index(code)] = day(iso)
        for regimen in model.REGIMENS:
            for code, _ in regimen.options:
                self.atc_code_index(code)
        self.death_causes, self.death_cause_weights = _death_causes(self)
        self.death_cause_boosts = _death_cause_boosts(self)

    def bounds(self, register: str, column: str) -> Bounds:
        bounds = self.catalog.register(register).column(column).bounds
        if bounds is None:
            raise AssertionError(f"bug: {register}.{column} has no declared bounds")
        return bounds

    def icd10_code(self, code: str) -> int:
        """Index of an ICD-10 category the model relies on; a clear error if the key set lacks it."""
        try:
            return self.icd10[code]
        except KeyError:
            raise ValueError(
                f"the generator needs ICD-10 code {code}, which is not in the icd10 key set"
            ) from None

    def atc_code_index(self, code: str) -> int:
        """Index of an ATC substance the model relies on; a clear error if the key set lacks it."""
        try:
            return self.atc[code]
        except KeyError:
            raise ValueError(
                f"the generator needs ATC code {code}, which is not in the atc5 key set"
            ) from None


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _person_tables(world: World) -> PersonTables:
    population = _read_csv(REFERENCE / "population_by_age_sex.csv")
    mortality = _read_csv(REFERENCE / "mortality_by_age_sex.csv")
    top = max(int(r["age"]) for r in population)
    # The last age of the table is open-ended (e.g. 100+): spread it over a few years.
    ages = np.arange(top + len(_OPEN_AGE_SPREAD), dtype=np.int64)
    counts = np.zeros((2, ages.size))  # rows: women, men (the order of the cells below)
    for r in population:
        age = int(r["age"])
        spread = np.asarray(_OPEN_AGE_SPREAD) if age == top else np.array([1.0])
        counts[0, age : age + spread.size] += float(r["women"]) * spread
        counts[1, age : age + spread.size] += float(r["men"]) * spread
    rates = np.zeros((2, ages.size))
    for r in mortality:
        lo, hi = int(r["age_from"]), int(r["age_to"])
        hi = ages[-1] if hi == top else hi
        rates[0, lo : hi + 1] = float(r["women"])
        rates[1, lo : hi + 1] = float(r["men"])
    if np.any(rates[counts > 0] <= 0):
        raise ValueError("the mortality table does not cover every age of the population table")
    deaths = counts * rates
    crude_rate = deaths.sum() / counts.sum()

    municipalities = {r["code"]: r for r in _read_csv(CLASSIFICATIONS / "municipalities.csv")}
    codes = [str(v) for v in world.municipalities.values.to_pylist()]
    weights = np.array([float(municipalities[c]["population"]) for c in codes])
    region = np.array([world.regions[municipalities[c]["region"]] for c in codes], dtype=np.int64)
    return PersonTables(
        ages=np.concatenate([ages, ages]),
        living=CategoricalTable(counts.reshape(1, -1)),
        dying=CategoricalTable(deaths.reshape(1, -1)),
        # Deaths per year are the crude rate times the persons in cpr, as in a stable population.
        death_share=min(0.5, crude_rate * world.coverage_years),
        municipality=CategoricalTable(weights.reshape(1, -1)),
        municipality_region=region,
    )


def _code_in(code: str, ranges: tuple[tuple[str, str], ...]) -> bool:
    return any(lo <= code[:3] <= hi for lo, hi in ranges)


def _modelled_codes() -> set[str]:
    """ICD-10 codes with their own model, excluded from the background mix."""
    codes = {c.icd10 for c in model.CONDITIONS}
    return codes | {"O80", "O82", "Z38"}


def _tail_code_table(world: World) -> CategoricalTable:
    """Background diagnosis mix per stratum (age group x sex): a Zipf-like long tail over all codes."""
    codes = list(world.icd10.index)
    n = len(codes)
    rank = np.random.default_rng(_LANDSCAPE_SEED).permutation(n) + 1.0
    # The offset flattens the head, so that no rare code outranks the common reasons for contact.
    base = 1.0 / (rank + 20) ** 1.1
    common = 1.0 / (np.arange(len(model.COMMON_CONTACT_CODES)) + 4.0)
    common *= base.sum() / common.sum()
    for weight, code in zip(common, model.COMMON_CONTACT_CODES, strict=True):
        base[world.icd10_code(code)] = weight
    excluded = _modelled_codes()
    weights = np.zeros((model.N_AGE_GROUPS, 2, n))
    for k, code in enumerate(codes):
        if code in excluded:
            continue
        factors = next((f for lo, hi, f in model.CHAPTER_AGE_FACTORS if lo <= code[:3] <= hi), None)
        if factors is None:
            continue
        female = 0.0 if _code_in(code, model.MALE_ONLY_CODES) else 1.0
        male = 0.0 if _code_in(code, model.FEMALE_ONLY_CODES) else 1.0
        weights[:, 0, k] = base[k] * np.asarray(factors) * female
        weights[:, 1, k] = base[k] * np.asarray(factors) * male
    return CategoricalTable(weights.reshape(-1, n))


def _subdivision_table() -> CategoricalTable:
    """Fourth character of the SKS code: unspecified (9) and 0 are the most common."""
    weights = np.array([0.2, 0.12, 0.08, 0.05, 0.04, 0.03, 0.03, 0.03, 0.07, 0.35])
    return CategoricalTable(weights[None, :])


def _acute_rates() -> Float:
    """Short-course redemptions per person-year, shape (age group, sex, drug)."""
    rates = np.zeros((model.N_AGE_GROUPS, 2, len(model.ACUTE_DRUGS)))
    for k, (_, female, male_factor) in enumerate(model.ACUTE_DRUGS):
        rates[:, 0, k] = female
        rates[:, 1, k] = np.asarray(female) * male_factor
    return rates


def _death_causes(world: World) -> tuple[Int, Float]:
    """Cause-of-death codes (icd10 indices) and their weights, shape (age group, sex, cause)."""
    causes = np.array([world.icd10_code(code) for code, _, _ in model.DEATH_CAUSES])
    weights = np.zeros((len(model.DEATH_AGE_EDGES), 2, len(causes)))
    for k, (code, female, male_factor) in enumerate(model.DEATH_CAUSES):
        weights[:, 0, k] = female
        weights[:, 1, k] = model.DEATH_CAUSES_MALE_ONLY.get(code, tuple(np.asarray(female) * male_factor))
    weights /= weights.sum(axis=2, keepdims=True)
    return causes, weights


def _death_cause_boosts(world: World) -> Float:
    """Extra cause-of-death weight per chronic condition, shape (condition, cause)."""
    position = {int(code): k for k, code in enumerate(world.death_causes)}
    boosts = np.zeros((len(model.CONDITIONS), world.death_causes.size))
    for c, condition in enumerate(model.CONDITIONS):
        for cause, weight in model.DEATH_CAUSE_BOOSTS.get(condition.icd10, {}).items():
            boosts[c, position[world.icd10_code(cause)]] = weight
    return boosts
