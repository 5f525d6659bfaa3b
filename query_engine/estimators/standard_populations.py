"""Public standard populations for direct age standardisation, shipped as package data.

``standard_populations.csv`` holds one row per (population, 5-year age band). Sources:

- ``esp2013``: the European Standard Population 2013, Eurostat (2013), "Revision of the European
  Standard Population — Report of Eurostat's task force", KS-RA-13-028, Annex F (100,000 persons;
  bands 0-4, ..., 90-94, 95+).

Weights for coarser labels (the catalog's 10-year bands "0-9", ..., "80-89", "90+") are sums of the
5-year bands they contain, normalised over the labels asked for.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources

import numpy as np

_BAND = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)|\+)\s*$")


@cache
def _table() -> dict[str, dict[tuple[int, float], float]]:
    text = resources.files(__package__).joinpath("standard_populations.csv").read_text(encoding="utf-8")
    table: dict[str, dict[tuple[int, float], float]] = {}
    for row in csv.DictReader(text.splitlines()):
        table.setdefault(row["population"], {})[_parse_band(row["age_band"])] = float(row["persons"])
    return table


def known_populations() -> tuple[str, ...]:
    """Names of the shipped standard populations."""
    return tuple(sorted(_table()))


def standard_weights(
    population: str,
    age_labels: Sequence[str],
    *,
    persons: Iterable[tuple[str, float]] | Mapping[str, float] | None = None,
) -> np.ndarray:
    """Weights of ``population`` aligned to ``age_labels`` ("0-9", ..., "90+" or "0-4", ..., "95+").

    The weights sum to 1 over the labels given. A label must be a union of the population's
    bands, and every label's bands must be present. ``persons`` (persons per age band, public figures
    the analyst supplies) replaces the shipped table; ``population`` then only names it.
    """
    if persons is not None:
        bands = _supplied_bands(population, persons)
    else:
        table = _table()
        if population not in table:
            raise ValueError(
                f"Unknown standard population {population!r}; the known populations are: "
                f"{', '.join(known_populations())} (or give its figures per age band)."
            )
        bands = table[population]
    weights = []
    for label in age_labels:
        low, high = _parse_band(label)
        inside = [persons for (b_low, b_high), persons in bands.items() if b_low >= low and b_high <= high]
        straddling = [b for b in bands if b[0] < high and b[1] > low and not (b[0] >= low and b[1] <= high)]
        if straddling or not inside:
            raise ValueError(
                f"The age band {label!r} does not line up with the 5-year bands of {population!r}; "
                "use 5- or 10-year bands such as '0-4', '0-9', '90+'."
            )
        weights.append(sum(inside))
    if not weights:
        raise ValueError("Give at least one age band to standardise over.")
    array = np.asarray(weights, dtype=float)
    return array / array.sum()


def _supplied_bands(
    population: str, persons: Iterable[tuple[str, float]] | Mapping[str, float]
) -> dict[tuple[int, float], float]:
    """Supplied figures by half-open age interval; the bands must not overlap."""
    items = persons.items() if isinstance(persons, Mapping) else persons
    bands: dict[tuple[int, float], float] = {}
    for label, count in items:
        band = _parse_band(label)
        if not (count > 0 and np.isfinite(count)):
            raise ValueError(
                f"The figure for age band {label!r} of {population!r} must be a positive number."
            )
        if any(b[0] < band[1] and band[0] < b[1] for b in bands):
            raise ValueError(
                f"The age band {label!r} of {population!r} overlaps another band; give each age once."
            )
        bands[band] = float(count)
    return bands


def _parse_band(label: str) -> tuple[int, float]:
    """'0-4' -> (0, 5); '95+' -> (95, inf): the half-open age interval of a band label."""
    match = _BAND.match(str(label))
    if match is None:
        raise ValueError(
            f"Cannot read the age band {label!r}; write it as 'a-b' (e.g. '40-49') or 'a+' (e.g. '90+')."
        )
    low = int(match.group(1))
    high = float(int(match.group(2)) + 1) if match.group(2) is not None else float("inf")
    if high <= low:
        raise ValueError(f"The age band {label!r} is empty; write it as 'a-b' with a <= b.")
    return low, high
