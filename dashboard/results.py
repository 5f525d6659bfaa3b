"""Previews and releases as the dashboard shows them: the preview's summary, a release as a
DataFrame (table, CSV and Parquet bytes), its summary, and the list of a project's releases.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dashboard.catalog_lookup import Json

__all__ = [
    "PreviewSummary",
    "csv_bytes",
    "group_columns_of",
    "parquet_bytes",
    "preview_summary",
    "release_frame",
    "release_summary",
    "releases_frame",
    "suppression_threshold",
    "table_frame",
]


_DEFAULT_THRESHOLD = 5


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _first(mappings: Sequence[Mapping[str, Any]], *names: str) -> Any:
    """The first non-null value of any of ``names`` in any of ``mappings`` (in that order)."""
    for mapping in mappings:
        for name in names:
            if mapping.get(name) is not None:
                return mapping[name]
    return None


@dataclass(frozen=True)
class PreviewSummary:
    """What a preview says: the loss it would charge and the expected per-cell CI half-width."""

    epsilon: float | None
    rho: float | None
    delta: float | None
    half_width: float | None
    confidence: float | None
    cells: int | None
    mechanism: str | None
    epsilon_remaining: float | None
    fits: bool | None
    rank_error: float | None = None
    notes: tuple[str, ...] = field(default=())


def _fits(
    budget: Mapping[str, Any], epsilon: float | None, rho: float | None, delta: float | None
) -> bool | None:
    """Whether a loss fits in what the budget has left (pure: epsilon; zCDP: rho, epsilon as eps^2/2)."""
    slack = 1e-12
    if delta and (_number(budget.get("delta_remaining")) or 0.0) + slack < delta:
        return False
    if budget.get("mode") == "zcdp":
        rho_left = _number(budget.get("rho_remaining"))
        cost = rho if rho is not None else (None if epsilon is None else epsilon * epsilon / 2)
        return None if rho_left is None or cost is None else cost <= rho_left + slack
    eps_left = _number(budget.get("epsilon_remaining"))
    return None if eps_left is None or epsilon is None else epsilon <= eps_left + slack


def preview_summary(preview: Mapping[str, Any]) -> PreviewSummary:
    """Read a preview body: the loss under ``loss`` (or ``privacy``), accuracy at the top or under ``accuracy``."""
    privacy: Mapping[str, Any] = next(
        (preview[n] for n in ("loss", "privacy", "cost") if isinstance(preview.get(n), Mapping)), {}
    )
    accuracy = preview.get("accuracy") if isinstance(preview.get("accuracy"), Mapping) else {}
    budget = preview.get("budget") if isinstance(preview.get("budget"), Mapping) else {}
    assert isinstance(accuracy, Mapping) and isinstance(budget, Mapping)
    loss_first = (privacy, preview)
    accuracy_first = (preview, accuracy)
    epsilon = _number(_first(loss_first, "epsilon"))
    rho = _number(_first(loss_first, "rho"))
    delta = _number(_first(loss_first, "delta"))
    remaining = _number(budget.get("epsilon_remaining"))
    fits = preview.get("fits")
    if fits is None and budget:
        fits = _fits(budget, epsilon, rho, delta)
    cells = _first(accuracy_first, "cells", "n_cells")
    half = _first(
        accuracy_first, "expected_half_width", "ci_half_width", "expected_ci_half_width", "half_width"
    )
    return PreviewSummary(
        epsilon=epsilon,
        rho=rho,
        delta=delta,
        half_width=_number(half),
        confidence=_number(_first(accuracy_first, "confidence")),
        cells=int(cells) if isinstance(cells, int | float) and not isinstance(cells, bool) else None,
        mechanism=_first(loss_first, "mechanism"),
        epsilon_remaining=remaining,
        fits=None if fits is None else bool(fits),
        rank_error=_number(_first(accuracy_first, "rank_error")),
        notes=tuple(str(n) for n in preview.get("notes", []) or []),
    )


def group_columns_of(release: Mapping[str, Any]) -> list[str]:
    """The release's group columns: those before ``value`` in ``columns``."""
    columns = list(release.get("columns") or [])
    if "value" in columns:
        return columns[: columns.index("value")]
    rows = release.get("rows") or []
    return [c for c in (rows[0] if rows else {}) if c not in ("value", "ci_low", "ci_high", "suppressed")]


def suppression_threshold(release: Mapping[str, Any]) -> int:
    """The small-cell threshold of a release (the service's default is 5)."""
    for name in ("small_cell_threshold", "threshold", "suppression_threshold"):
        value = release.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return _DEFAULT_THRESHOLD


def release_frame(release: Mapping[str, Any]) -> pd.DataFrame:
    """The release as typed columns: groups, ``value``, ``ci_low``, ``ci_high``, ``suppressed``.

    A suppressed cell keeps no number: its value and interval are empty (shown as ``<5``).
    """
    groups = group_columns_of(release)
    records = []
    for row in release.get("rows") or []:
        suppressed = bool(row.get("suppressed", False))
        record = {g: row.get(g) for g in groups}
        record["value"] = None if suppressed else _number(row.get("value"))
        record["ci_low"] = None if suppressed else _number(row.get("ci_low"))
        record["ci_high"] = None if suppressed else _number(row.get("ci_high"))
        record["suppressed"] = suppressed
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[*groups, "value", "ci_low", "ci_high", "suppressed"])
    for name in ("value", "ci_low", "ci_high"):
        frame[name] = frame[name].astype("Float64")
    frame["suppressed"] = frame["suppressed"].astype(bool)
    return frame


def _shown(value: Any, integer: bool) -> str:
    if value is None or pd.isna(value):
        return ""
    number = float(value)
    if integer and number.is_integer():
        return str(int(number))
    return f"{number:.6g}"


def table_frame(release: Mapping[str, Any]) -> pd.DataFrame:
    """The release as text for people: ``<5`` for suppressed cells, empty intervals where there are none."""
    frame = release_frame(release)
    threshold = suppression_threshold(release)
    integer = str(release.get("measure", "count")).startswith("count") or all(
        float(v).is_integer() for v in frame["value"].dropna()
    )
    out = frame[group_columns_of(release)].astype(object).copy()
    for name in ("value", "ci_low", "ci_high"):
        out[name] = [_shown(v, integer) for v in frame[name]]
    out.loc[frame["suppressed"].to_numpy(), "value"] = f"<{threshold}"
    return out


def csv_bytes(release: Mapping[str, Any]) -> bytes:
    """The release table as UTF-8 CSV (suppressed cells as ``<5``)."""
    return table_frame(release).to_csv(index=False).encode("utf-8")


def parquet_bytes(release: Mapping[str, Any]) -> bytes:
    """The release as Parquet (pyarrow): typed values, nulls for suppressed cells, and a ``suppressed`` flag."""
    buffer = io.BytesIO()
    frame = release_frame(release)
    frame.columns = [str(c) for c in frame.columns]
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


def release_summary(release: Mapping[str, Any]) -> Json:
    """The privacy facts of a release in one flat mapping (for metrics and the release list)."""
    privacy = release.get("privacy") or {}
    budget = release.get("budget") or {}
    query = release.get("query") or {}
    return {
        "release_id": release.get("release_id"),
        "created_at": release.get("created_at"),
        "measure": release.get("measure") or query.get("measure"),
        "group_by": ", ".join(query.get("group_by") or group_columns_of(release)),
        "epsilon": _number(privacy.get("epsilon")),
        "rho": _number(privacy.get("rho")),
        "delta": _number(privacy.get("delta")),
        "mechanism": privacy.get("mechanism"),
        "confidence": _number(release.get("confidence")),
        "cells": len(release.get("rows") or []),
        "cached": bool(release.get("cached", False)),
        "epsilon_remaining": _number(budget.get("epsilon_remaining")),
    }


def releases_frame(releases: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per past release, newest first."""
    columns = [
        "release_id",
        "created_at",
        "measure",
        "group_by",
        "epsilon",
        "rho",
        "delta",
        "mechanism",
        "cells",
    ]
    records = [{k: release_summary(r)[k] for k in columns} for r in releases]
    frame = pd.DataFrame.from_records(records, columns=columns)
    return frame.iloc[::-1].reset_index(drop=True)
