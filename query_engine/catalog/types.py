"""The catalog's types: the trust boundary for privacy.

Every privacy-relevant fact the engine uses (which registers exist, their columns, the public key
set of each categorical column, the clamping bounds and fixed-point resolution of each numeric
column, how many rows and groups one person may contribute) is declared here and never read from
data. The catalog is defined as YAML under ``datasets/catalog/`` with public classifications as
CSV files, resolved into these frozen types (``query_engine.catalog.load``), and stored as JSON
inside every built database so a database describes itself. The types check their declarations as
they are built, from YAML or from that JSON (``register_from_dict``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar

__all__ = [
    "Bounds",
    "Catalog",
    "CatalogError",
    "Column",
    "ColumnType",
    "Derivation",
    "KeySet",
    "Register",
    "Text",
    "CATALOG_TABLE",
    "ROW_RANK_COLUMN",
    "SQL_TYPES",
    "atc_prefix_length",
    "register_from_dict",
]

# Physical layout of a built database: one table per register, named after it, holding exactly the
# register's physical (non-derived) columns with these types (event registers also ROW_RANK_COLUMN),
# plus this one-row table with the
# resolved catalog as JSON (column ``catalog``), so that a database describes itself.
CATALOG_TABLE = "sundstat_catalog"
# The build adds this column to every event-grain register: the row's rank among its person's rows by
# the stored random row_key (1 = smallest), so bounding an unfiltered register need not sort it.
ROW_RANK_COLUMN = "__row_rank"
SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "float": "DOUBLE", "date": "DATE"}

ColumnType = Literal["string", "integer", "float", "date"]
Grain = Literal["person", "event", "person_year"]
Role = Literal["person_key", "row_key", "identifier"]
DerivationKind = Literal[
    "age",
    "age_band_10",
    "age_band_5",
    "year",
    "vital_status",
    "icd10_chapter",
    "atc_level_1",
    "atc_level_2",
    "atc_level_3",
    "atc_level_4",
]

_COLUMN_TYPES = ("string", "integer", "float", "date")
_GRAINS = ("person", "event", "person_year")
_ROLES = ("person_key", "row_key", "identifier")
_DERIVATIONS = DerivationKind.__args__  # type: ignore[attr-defined]
_ATC_LEVEL_LENGTH = {"atc_level_1": 1, "atc_level_2": 3, "atc_level_3": 4, "atc_level_4": 5}


class CatalogError(ValueError):
    """The catalog definition is inconsistent; raised at load time, never at query time."""


@dataclass(frozen=True)
class Text:
    """A text in English and Danish."""

    en: str
    da: str

    def to_json(self) -> dict[str, str]:
        return {"en": self.en, "da": self.da}


@dataclass(frozen=True)
class Bounds:
    """Declared clamping bounds of a numeric or date column.

    ``resolution`` is the fixed-point unit for sums (values are summed as integers of this unit).
    For dates, ``lo`` and ``hi`` are ISO dates and ``resolution`` is 1 (day).
    """

    lo: float | int | str
    hi: float | int | str
    resolution: float = 1

    def __post_init__(self) -> None:
        if isinstance(self.lo, str) != isinstance(self.hi, str):
            raise CatalogError(
                f"The bounds {self.lo!r}..{self.hi!r} mix a date and a number; "
                "give two ISO dates or two numbers."
            )
        if isinstance(self.lo, str):
            if dt.date.fromisoformat(self.lo) > dt.date.fromisoformat(str(self.hi)):
                raise CatalogError(
                    f"The bounds {self.lo}..{self.hi} are reversed; give the lower bound first."
                )
        elif not float(self.lo) <= float(self.hi):
            raise CatalogError(f"The bounds {self.lo}..{self.hi} are reversed; give the lower bound first.")
        if not self.resolution > 0:
            raise CatalogError(
                f"The resolution must be positive, got {self.resolution}; give e.g. 1 or 0.01."
            )

    @property
    def magnitude(self) -> float:
        """max(|lo|, |hi|): the largest absolute value one row can add to a sum."""
        return max(abs(float(self.lo)), abs(float(self.hi)))

    def to_json(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "resolution": self.resolution}


@dataclass(frozen=True)
class KeySet:
    """A public set of group keys, with optional human labels (code -> title) in English and Danish.

    ``labels`` are the English (or only) labels; ``labels_da`` the Danish ones, or None when the
    catalog declares none (catalogs stored in databases built before Danish labels have none).
    """

    name: str
    values: tuple[str | int, ...]
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    hierarchical: bool = False
    description: str = ""
    labels_da: dict[str, str] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(set(self.values)) != len(self.values):
            raise CatalogError(f"The key set {self.name!r} has duplicate values; list each value once.")
        if not self.values:
            raise CatalogError(f"The key set {self.name!r} is empty; give it at least one value.")
        if self.labels_da:
            unknown = sorted(set(self.labels_da) - {str(v) for v in self.values})
            if unknown:
                raise CatalogError(
                    f"The key set {self.name!r} has Danish labels for {', '.join(map(repr, unknown[:5]))}, "
                    "which are not among its values; label only its values."
                )

    def __contains__(self, value: object) -> bool:
        return value in self._lookup

    @property
    def _lookup(self) -> frozenset[str | int]:
        cached = self.__dict__.get("_lookup_cache")
        if cached is None:
            cached = frozenset(self.values)
            object.__setattr__(self, "_lookup_cache", cached)
        return cached

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "values": list(self.values),
            "labels": self.labels,
            "hierarchical": self.hierarchical,
            "description": self.description,
        }
        # Only when declared, so a catalog without Danish labels dumps exactly as before.
        if self.labels_da is not None:
            out["labels_da"] = self.labels_da
        return out


@dataclass(frozen=True)
class Derivation:
    """How a derived column is computed from a physical column of the same register."""

    kind: DerivationKind
    source: str
    source_secondary: str | None = None  # e.g. death_date for age (age at death if earlier)


@dataclass(frozen=True)
class Column:
    """One column of a register: physical or derived, categorical (key set) or numeric (bounds)."""

    name: str
    type: ColumnType
    description: Text
    keyset: str | None = None
    bounds: Bounds | None = None
    null_value: float | int | str | None = None
    nullable: bool = False
    role: Role | None = None
    derivation: Derivation | None = None
    open_domain: bool = False  # a string column whose keys are not public: grouping needs delta

    @property
    def queryable(self) -> bool:
        """Keys and identifiers are never filtered, grouped or aggregated by analysts."""
        return self.role is None

    @property
    def is_derived(self) -> bool:
        return self.derivation is not None

    @property
    def is_numeric(self) -> bool:
        return self.type in ("integer", "float")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "description": self.description.to_json(),
            "keyset": self.keyset,
            "bounds": self.bounds.to_json() if self.bounds else None,
            "null_value": self.null_value,
            "nullable": self.nullable,
            "role": self.role,
            "open_domain": self.open_domain,
        }
        if self.derivation:
            out["derived"] = {
                "kind": self.derivation.kind,
                "from": self.derivation.source,
                "also_from": self.derivation.source_secondary,
            }
        return out


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_NamedT = TypeVar("_NamedT", bound=_Named)


def _named(items: Iterable[_NamedT], name: str) -> _NamedT:
    """The item called ``name`` (a column of a register, a register of the catalog); KeyError if none."""
    for item in items:
        if item.name == name:
            return item
    raise KeyError(name)


@dataclass(frozen=True)
class Register:
    """One register: its description, grain, contribution limits and columns."""

    name: str
    title: Text
    description: Text
    controller: str
    coverage: tuple[int, int]
    grain: Grain
    rows_per_person: tuple[int, int]  # (default, max): c in the privacy semantics
    groups_per_person: tuple[int, int]  # (default, max): G in the privacy semantics
    columns: tuple[Column, ...]
    # Public average rows per person at the installation's scale; sizes the response-time model only.
    declared_rows_per_person: float | None = None

    def column(self, name: str) -> Column:
        return _named(self.columns, name)

    def has_column(self, name: str) -> bool:
        return any(col.name == name for col in self.columns)

    @property
    def physical_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if not c.is_derived)

    @property
    def person_key(self) -> str:
        return next(c.name for c in self.columns if c.role == "person_key")

    @property
    def row_key(self) -> str:
        return next(c.name for c in self.columns if c.role == "row_key")

    def header_json(self) -> dict[str, Any]:
        """The register's own declaration without its columns, as JSON: the catalog file and the
        public catalog both describe a register with it."""
        return {
            "name": self.name,
            "title": self.title.to_json(),
            "description": self.description.to_json(),
            "controller": self.controller,
            "coverage": {"from": self.coverage[0], "to": self.coverage[1]},
            "grain": self.grain,
            "rows_per_person": {"default": self.rows_per_person[0], "max": self.rows_per_person[1]},
            "groups_per_person": {"default": self.groups_per_person[0], "max": self.groups_per_person[1]},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header_json(),
            "columns": [c.to_json() for c in self.columns],
            **(
                {"declared_rows_per_person": self.declared_rows_per_person}
                if self.declared_rows_per_person is not None
                else {}
            ),
        }


@dataclass(frozen=True)
class Catalog:
    """All registers and key sets, plus the global facts the engine needs."""

    registers: tuple[Register, ...]
    keysets: dict[str, KeySet] = field(hash=False)
    reference_date: str
    max_persons: int
    person_register: str = "cpr"
    icd10_chapter_ranges: tuple[tuple[str, str, str], ...] = ()  # (chapter, first, last)
    # Registers the catalog declares but this installation did not load (a build from a subset).
    absent_registers: tuple[str, ...] = ()
    # Not part of the declaration: set by ``Engine.open`` once ``check_person_grain`` has verified, on
    # the read-only database it serves, that every person-grain register holds at most one row per
    # person. The compiled SQL may then read such a register as it is instead of ranking its rows.
    person_grain_verified: bool = False
    # Likewise set at open: the event registers whose table carries ``ROW_RANK_COLUMN``.
    row_ranked_registers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_catalog(self)

    def only(self, names: Iterable[str]) -> Catalog:
        """This catalog restricted to the registers ``names`` (the person register always stays); the
        others are recorded as ``absent_registers`` so a query naming one is told it is not loaded."""
        keep = set(names) | {self.person_register}
        return replace(
            self,
            registers=tuple(r for r in self.registers if r.name in keep),
            absent_registers=tuple(
                sorted({*self.absent_registers, *(r.name for r in self.registers if r.name not in keep)})
            ),
        )

    def register(self, name: str) -> Register:
        return _named(self.registers, name)

    def has_register(self, name: str) -> bool:
        return any(reg.name == name for reg in self.registers)

    @property
    def register_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.registers)

    def column(self, qualified: str) -> tuple[Register, Column]:
        """Resolve ``"register.column"``; raises KeyError if either part is unknown."""
        register_name, _, column_name = qualified.partition(".")
        reg = self.register(register_name)
        return reg, reg.column(column_name)

    def keyset(self, name: str) -> KeySet:
        return self.keysets[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference_date": self.reference_date,
            "max_persons": self.max_persons,
            "person_register": self.person_register,
            "icd10_chapter_ranges": [list(r) for r in self.icd10_chapter_ranges],
            "registers": [r.to_json() for r in self.registers],
            "keysets": {name: ks.to_json() for name, ks in self.keysets.items()},
            **({"absent_registers": list(self.absent_registers)} if self.absent_registers else {}),
        }

    def dumps(self) -> str:
        """Canonical JSON text of the resolved catalog (stored in every built database)."""
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalog:
        keysets = {
            name: KeySet(
                name=ks["name"],
                values=tuple(ks["values"]),
                labels=dict(ks.get("labels") or {}),
                hierarchical=bool(ks.get("hierarchical", False)),
                description=ks.get("description", ""),
                labels_da=dict(ks["labels_da"]) if ks.get("labels_da") is not None else None,
            )
            for name, ks in data["keysets"].items()
        }
        registers = tuple(register_from_dict(r) for r in data["registers"])
        return cls(
            registers=registers,
            keysets=keysets,
            reference_date=data["reference_date"],
            max_persons=int(data["max_persons"]),
            person_register=data.get("person_register", "cpr"),
            icd10_chapter_ranges=tuple(tuple(r) for r in data.get("icd10_chapter_ranges", [])),
            absent_registers=tuple(data.get("absent_registers", ())),
        )

    @classmethod
    def loads(cls, text: str) -> Catalog:
        return cls.from_json(json.loads(text))


def _text(raw: Any, what: str) -> Text:
    if not isinstance(raw, dict) or not {"en", "da"} <= raw.keys():
        raise CatalogError(f"The {what} needs an English and a Danish text; give both, as en: and da:.")
    return Text(en=str(raw["en"]), da=str(raw["da"]))


def _bounds(raw: Any) -> Bounds | None:
    if raw is None:
        return None
    lo, hi = raw["lo"], raw["hi"]
    if isinstance(lo, dt.date):
        lo, hi = lo.isoformat(), hi.isoformat()
    return Bounds(lo=lo, hi=hi, resolution=raw.get("resolution", 1))


def _column_from_dict(raw: dict[str, Any], register: str) -> Column:
    name = raw["name"]
    derived = raw.get("derived")
    derivation = None
    if derived:
        if derived["kind"] not in _DERIVATIONS:
            raise CatalogError(
                f"Column {register}.{name} has the unknown derivation {derived['kind']!r}; use one of "
                f"{', '.join(_DERIVATIONS)}."
            )
        derivation = Derivation(derived["kind"], derived["from"], derived.get("also_from"))
    return Column(
        name=name,
        type=raw["type"],
        description=_text(raw.get("description"), f"description of column {register}.{name}"),
        keyset=raw.get("keyset"),
        bounds=_bounds(raw.get("bounds")),
        null_value=raw.get("null_value"),
        nullable=bool(raw.get("nullable", False)),
        role=raw.get("role"),
        derivation=derivation,
        open_domain=bool(raw.get("open_domain", False)),
    )


def register_from_dict(raw: dict[str, Any]) -> Register:
    """A register from its YAML or JSON form."""
    name = raw["name"]
    rows = raw["rows_per_person"]
    groups = raw["groups_per_person"]
    coverage = raw["coverage"]
    return Register(
        name=name,
        title=_text(raw.get("title"), f"title of register {name}"),
        description=_text(raw.get("description"), f"description of register {name}"),
        controller=str(raw["controller"]),
        coverage=(int(coverage["from"]), int(coverage["to"])),
        grain=raw["grain"],
        rows_per_person=(int(rows["default"]), int(rows["max"])),
        groups_per_person=(int(groups["default"]), int(groups["max"])),
        columns=tuple(_column_from_dict(c, name) for c in raw["columns"]),
        declared_rows_per_person=_declared_rows(raw.get("declared_rows_per_person"), name),
    )


def _declared_rows(value: Any, register: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e6:
        raise CatalogError(
            f"Register {register} declares declared_rows_per_person {value!r}; give a positive number "
            "(the average rows per person, a public figure) or leave it out."
        )
    return float(value)


def _check_catalog(catalog: Catalog) -> None:
    """Refuse a catalog whose privacy declarations are incomplete or inconsistent."""
    names = [r.name for r in catalog.registers]
    if len(set(names)) != len(names):
        raise CatalogError("Register names must be unique; rename or remove the duplicate register.")
    if catalog.person_register not in names:
        raise CatalogError(
            f"The person register {catalog.person_register!r} is not defined; add it or set person_register."
        )
    if catalog.max_persons <= 0:
        raise CatalogError(
            f"The catalog's max_persons must be positive, got {catalog.max_persons}; "
            "give the population size."
        )
    for reg in catalog.registers:
        _check_register(reg, catalog)


def _check_register(reg: Register, catalog: Catalog) -> None:
    if reg.grain not in _GRAINS:
        raise CatalogError(
            f"Register {reg.name} has the grain {reg.grain!r}; use one of {', '.join(_GRAINS)}."
        )
    for default, maximum, what in (
        (*reg.rows_per_person, "rows_per_person"),
        (*reg.groups_per_person, "groups_per_person"),
    ):
        if not 1 <= default <= maximum:
            raise CatalogError(
                f"Register {reg.name} declares {what} default {default} and max {maximum}; "
                "they need 1 <= default <= max."
            )
    if reg.grain == "person" and reg.rows_per_person != (1, 1):
        raise CatalogError(
            f"Register {reg.name} has the grain person, so it has exactly one row per person; set "
            "rows_per_person default and max to 1."
        )
    roles = [c.role for c in reg.columns]
    if roles.count("person_key") != 1 or roles.count("row_key") != 1:
        raise CatalogError(f"Register {reg.name} needs exactly one person_key column and one row_key column.")
    seen: set[str] = set()
    for col in reg.columns:
        if col.name in seen:
            raise CatalogError(f"Column {reg.name}.{col.name} is defined twice; keep one definition.")
        seen.add(col.name)
        if col.type not in _COLUMN_TYPES:
            raise CatalogError(
                f"Column {reg.name}.{col.name} has the type {col.type!r}; use one of "
                f"{', '.join(_COLUMN_TYPES)}."
            )
        if col.role is not None:
            if col.role not in _ROLES:
                raise CatalogError(
                    f"Column {reg.name}.{col.name} has the role {col.role!r}; use one of {', '.join(_ROLES)}."
                )
            continue
        if col.open_domain:
            if col.type != "string" or col.keyset is not None:
                raise CatalogError(
                    f"Column {reg.name}.{col.name} is open_domain, which only string columns without a key "
                    "set can be; remove open_domain or the key set."
                )
        elif col.keyset is None and col.bounds is None:
            raise CatalogError(
                f"Column {reg.name}.{col.name} needs a public key set, declared bounds or open_domain: true."
            )
        if col.keyset is not None and col.keyset not in catalog.keysets:
            raise CatalogError(
                f"Column {reg.name}.{col.name} uses the unknown key set {col.keyset!r}; "
                "declare it under keysets."
            )
        if col.is_numeric and col.keyset is None:
            if col.bounds is None:
                raise CatalogError(
                    f"Column {reg.name}.{col.name} is numeric and needs bounds; declare bounds: {{lo, hi}}."
                )
            if col.nullable and col.null_value is None:
                raise CatalogError(
                    f"Column {reg.name}.{col.name} is a nullable numeric column and needs a null_value; "
                    "declare one."
                )
        if col.derivation is not None:
            if not reg.has_column(col.derivation.source):
                raise CatalogError(
                    f"Column {reg.name}.{col.name} is derived from the unknown column "
                    f"{col.derivation.source!r}; "
                    f"name a column of {reg.name}."
                )
            if col.derivation.kind == "icd10_chapter" and not catalog.icd10_chapter_ranges:
                raise CatalogError(
                    f"Column {reg.name}.{col.name} needs the ICD-10 chapter ranges; add icd10_chapters.csv."
                )


def atc_prefix_length(kind: str) -> int:
    """Number of leading characters of a level-5 ATC code that form the given ATC level."""
    return _ATC_LEVEL_LENGTH[kind]
