"""Tables of the Rates and Survival pages, for reading (pure functions of the client's frames).

Group codes become labels and titles in the page's language; numbers are rounded for reading, never
recomputed: every figure is the service's. Intervals are shown as one "low – high" column each: the
whole interval, and its two parts (the DP noise alone, the Poisson or binomial sampling error alone).
An interval the service could not bound (null in the release: the noise can make the person-time
zero or negative) says so rather than showing nothing.

>>> frame = pd.DataFrame({"time": [0.5, 1.0, 1.5, 2.0], "at_risk": [100.0, 80.4, 61.0, 40.2]})
>>> at_risk_table(frame, [], [0.0, 1.0], lambda key, **v: key, time_title="t").to_dict("records")
[{'t': 'total', '0': '100', '1': '61'}]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from dashboard import formatting as fmt

__all__ = [
    "at_risk_table",
    "group_label",
    "horizons_table",
    "interval",
    "median_table",
    "rate_table",
    "standardised_table",
]

Translate = Callable[..., str]
Labels = Mapping[str, Mapping[str, str]]


def _value(value: Any, digits: int = 4) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return fmt.number(value, digits)


def interval(low: Any, high: Any, digits: int = 4) -> str:
    """``low – high`` for reading (empty when either end is missing)."""
    a, b = _value(low, digits), _value(high, digits)
    return f"{a} – {b}" if a and b else ""


def group_label(row: Mapping[str, Any], groups: Sequence[str], labels: Labels, total: str) -> str:
    """The row's group values as labels, joined (``total`` without groups)."""
    if not groups:
        return total
    return ", ".join(labels.get(g, {}).get(str(row[g]), str(row[g])) for g in groups)


def _group_columns(
    frame: pd.DataFrame, groups: Sequence[str], labels: Labels, titles: Mapping[str, str]
) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for group in groups:
        mapping = labels.get(group, {})
        out[titles.get(group, group)] = [mapping.get(str(v), str(v)) for v in frame[group]]
    return out


def rate_table(
    frame: pd.DataFrame, groups: Sequence[str], labels: Labels, titles: Mapping[str, str], tr: Translate
) -> pd.DataFrame:
    """Per group: events, person-years, the rate, its interval and the interval's two parts."""
    out = _group_columns(frame, groups, labels, titles)
    suppressed = frame["suppressed"] if "suppressed" in frame else pd.Series(False, index=frame.index)
    out[tr("rate_events")] = [_value(v, 6) for v in frame["events"]]
    out[tr("rate_person_years")] = [_value(v, 6) for v in frame["person_years"]]
    out[tr("rate_rate")] = [
        tr("suppressed_cell") if s else _value(v) for v, s in zip(frame["rate"], suppressed, strict=True)
    ]
    for title, low, high in (
        (tr("rate_ci"), "ci_low", "ci_high"),
        (tr("rate_noise_ci"), "noise_ci_low", "noise_ci_high"),
        (tr("rate_sampling_ci"), "sampling_ci_low", "sampling_ci_high"),
    ):
        out[title] = [
            "" if s else interval(a, b) or tr("interval_not_estimable")
            for a, b, s in zip(frame[low], frame[high], suppressed, strict=True)
        ]
    return out


def standardised_table(
    frame: pd.DataFrame, groups: Sequence[str], labels: Labels, titles: Mapping[str, str], tr: Translate
) -> pd.DataFrame:
    """Per non-age group: the standardised rate and its interval beside the crude rate and its interval."""
    shown = [g for g in groups if g in frame]
    out = _group_columns(frame, shown, labels, titles)
    out[tr("rate_standardised")] = [_value(v) for v in frame["rate"]]
    out[tr("rate_standardised_ci")] = [
        interval(a, b) or tr("interval_not_estimable")
        for a, b in zip(frame["ci_low"], frame["ci_high"], strict=True)
    ]
    out[tr("rate_crude")] = [_value(v) for v in frame["crude_rate"]]
    out[tr("rate_crude_ci")] = [
        interval(a, b) or tr("interval_not_estimable")
        for a, b in zip(frame["crude_ci_low"], frame["crude_ci_high"], strict=True)
    ]
    return out


def at_risk_table(
    curve: pd.DataFrame,
    groups: Sequence[str],
    times: Sequence[float],
    tr: Translate,
    *,
    labels: Labels | None = None,
    time_title: str,
) -> pd.DataFrame:
    """Numbers at risk under the chart: one row per group, one column per time in ``times`` (those
    entering the exit bin that holds that time: the noisy counts, rounded; empty at the curve's end)."""
    rows = []
    keyed = curve.groupby(list(groups), sort=False) if groups else [((), curve)]
    for key, part in keyed:
        values = key if isinstance(key, tuple) else (key,)
        row: dict[str, str] = {
            time_title: group_label(dict(zip(groups, values, strict=True)), groups, labels or {}, tr("total"))
        }
        ordered = part.sort_values("time")
        for time in times:
            # A curve row is an exit bin: ``time`` is its end, ``at_risk`` the number at its start.
            later = ordered[ordered["time"] > time + 1e-9]
            at_risk = later["at_risk"].iloc[0] if len(later) else None
            row[fmt.number(time, 3)] = "" if at_risk is None else f"{max(float(at_risk), 0.0):,.0f}"
        rows.append(row)
    return pd.DataFrame(rows)


def horizons_table(
    frame: pd.DataFrame, groups: Sequence[str], labels: Labels, titles: Mapping[str, str], tr: Translate
) -> pd.DataFrame:
    """Per group and horizon: survival and cumulative incidence, each with its interval (percent)."""
    out = _group_columns(frame, groups, labels, titles)
    out[tr("surv_years")] = [fmt.number(v, 3) for v in frame["years"]]
    out[tr("surv_survival")] = [_percent(v) for v in frame["survival"]]
    out[tr("surv_survival_ci")] = [
        _percent_interval(a, b) for a, b in zip(frame["ci_low"], frame["ci_high"], strict=True)
    ]
    out[tr("surv_cumulative_incidence")] = [_percent(v) for v in frame["cumulative_incidence"]]
    out[tr("surv_cumulative_incidence_ci")] = [
        _percent_interval(a, b) for a, b in zip(frame["ci_ci_low"], frame["ci_ci_high"], strict=True)
    ]
    return out


def median_table(
    frame: pd.DataFrame, groups: Sequence[str], labels: Labels, titles: Mapping[str, str], tr: Translate
) -> pd.DataFrame:
    """Per group: the median survival in years and its interval ("not reached" where it is not)."""
    out = _group_columns(frame, groups, labels, titles)
    out[tr("surv_median")] = [
        tr("surv_not_reached") if pd.isna(v) else fmt.number(v, 3) for v in frame["median_years"]
    ]
    out[tr("surv_median_ci")] = [
        interval(a, b, 3) or "" for a, b in zip(frame["ci_low"], frame["ci_high"], strict=True)
    ]
    return out


def _percent(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{100 * float(value):.1f}%"


def _percent_interval(low: Any, high: Any) -> str:
    a, b = _percent(low), _percent(high)
    return f"{a} – {b}" if a and b else ""
