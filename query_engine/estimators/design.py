"""Treatment-coded design matrices of categorical covariates over the cells of a released table."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Design:
    """An intercept plus one 0/1 column per non-reference level, named ``"covariate=level"``."""

    matrix: np.ndarray  # [cells, 1 + terms]
    terms: tuple[str, ...]  # names of the non-intercept columns


def categorical_design(
    covariates: Mapping[str, Sequence[Any] | np.ndarray],
    cells: int,
    reference: Mapping[str, Hashable] | None = None,
) -> Design:
    """The design of ``covariates`` (one label per cell each); reference levels default to the first seen."""
    if not covariates:
        raise ValueError("Give at least one covariate: a mapping from its name to one label per cell.")
    if len(covariates) > 4:
        raise ValueError(f"Use at most four covariates, not {len(covariates)}.")
    reference = dict(reference or {})
    unknown = sorted(set(reference) - set(covariates))
    if unknown:
        raise ValueError(
            f"Reference levels given for unknown covariates {unknown}; use the covariates' names."
        )
    columns = [np.ones(cells)]
    terms: list[str] = []
    for name, labels in covariates.items():
        values = list(labels)
        if len(values) != cells:
            raise ValueError(
                f"Covariate {name!r} has {len(values)} labels for {cells} cells; give one label per cell."
            )
        levels = list(dict.fromkeys(values))
        base = reference.get(name, levels[0])
        if base not in levels:
            raise ValueError(f"The reference level {base!r} of {name!r} is not among its labels {levels}.")
        for level in levels:
            if level != base:
                columns.append(np.array([value == level for value in values], dtype=float))
                terms.append(f"{name}={level}")
    return Design(np.column_stack(columns), tuple(terms))
