"""pandas frames of model and Table 1 releases (issue 16): the fitted terms and the familiar Table 1.

Pure reshaping of a release's JSON: nothing is recomputed, so a frame shows exactly what the service
released, and the raw release stays at hand (``.release``), e.g. to rerun the estimators on it.

>>> frames = model_frames({"columns": ["cpr.sex", "value"], "rows": [],
...     "model": {"estimate": "rate_ratio", "terms": [{"term": "cpr.sex=M", "estimate": 1.5,
...     "ci_low": 1.2, "ci_high": 1.9, "naive_ci_low": 1.3, "naive_ci_high": 1.7}]}})
>>> frames.terms[["term", "estimate"]].to_dict("records")
[{'term': 'cpr.sex=M', 'estimate': 1.5}]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["ModelFrames", "Table1Frames", "model_frames", "table1_frames"]

JSON = dict[str, Any]
_TERM_COLUMNS = [
    "term",
    "covariate",
    "level",
    "estimate",
    "ci_low",
    "ci_high",
    "naive_ci_low",
    "naive_ci_high",
]


@dataclass(frozen=True)
class ModelFrames:
    """A model's terms (ratio or coefficient, noise-aware and naive intervals) and its released table."""

    terms: pd.DataFrame
    table: pd.DataFrame
    release: JSON = field(repr=False)


def model_frames(release: Mapping[str, Any]) -> ModelFrames:
    """Frames of a poisson_regression, logistic_regression or linear_regression release."""
    model = release.get("model") or {}
    terms = pd.DataFrame.from_records([dict(t) for t in model.get("terms") or ()], columns=_TERM_COLUMNS)
    terms.attrs["error"] = model.get("error")  # why a model has no terms (a level lost to noise)
    table = pd.DataFrame.from_records(
        [dict(r) for r in release.get("rows") or ()], columns=release.get("columns")
    )
    return ModelFrames(terms, table, dict(release))


def _cell(value: Any, low: Any, high: Any, statistic: str, count: Any, hidden: str | None) -> str:
    if hidden is not None:
        return hidden
    if value is None:
        return "-"
    if statistic == "n":
        return f"{value:,.0f}"
    if statistic == "percent":
        shown = f"{count:,.0f} ({value:.1f}%)" if count is not None else f"{value:.1f}%"
        return f"{shown} [{low:.1f}-{high:.1f}]" if low is not None and high is not None else shown
    return f"{value:.1f} [{low:.1f}-{high:.1f}]" if low is not None and high is not None else f"{value:.1f}"


@dataclass(frozen=True)
class Table1Frames:
    """Table 1 as released (``long``: one row per variable, level, statistic and group) and as the
    familiar table (``wide``: one row per variable and level, one column per group)."""

    long: pd.DataFrame
    wide: pd.DataFrame
    release: JSON = field(repr=False)

    def to_csv(self, path: str | Path) -> Path:
        """Write the long table (numbers, with intervals) as CSV."""
        target = Path(path)
        self.long.to_csv(target, index=False)
        return target

    def to_html(self, path: str | Path) -> Path:
        """Write the familiar table as an HTML table (opens in Word or a browser)."""
        target = Path(path)
        target.write_text(self.wide.to_html(index=False, border=0, na_rep=""), encoding="utf-8")
        return target


def table1_frames(release: Mapping[str, Any]) -> Table1Frames:
    """Frames of a table1 release."""
    long = pd.DataFrame.from_records(
        [dict(r) for r in release.get("rows") or ()], columns=release.get("columns")
    )
    layout = release.get("table1") or {}
    group_by = layout.get("group_by") or "group"
    threshold = release.get("small_cell_threshold")
    records: dict[tuple[str, str, str], dict[str, str]] = {}
    for row in release.get("rows") or ():
        statistic = str(row["statistic"])
        key = (str(row["variable"]), "" if row["level"] is None else str(row["level"]), statistic)
        label = f"{group_by} = {row['group']}"
        hidden = f"<{threshold}" if row.get("suppressed") else None
        records.setdefault(key, {})[label] = _cell(
            row["value"], row["ci_low"], row["ci_high"], statistic, row.get("count"), hidden
        )
    wide = pd.DataFrame.from_records(
        [{"variable": v, "level": lv, "statistic": s, **cells} for (v, lv, s), cells in records.items()]
    )
    return Table1Frames(long, wide, dict(release))
