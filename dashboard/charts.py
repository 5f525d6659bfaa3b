"""Altair charts of releases, budgets and the transparency report (pure functions of DataFrames).

Column names of releases contain dots (``cpr.region``), which Vega-Lite reads as nested fields, so the
charts work on renamed copies (``g0``, ``g1``, ``g2``) and put the real names in the axis titles.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import altair as alt
import pandas as pd

from .budgets import BudgetSummary

__all__ = [
    "budget_chart",
    "forest_chart",
    "purpose_chart",
    "release_chart",
    "survival_chart",
    "transparency_budget_chart",
    "transparency_register_chart",
]

_GROUP_FIELDS = ("g0", "g1", "g2")
_FOREST_ROW = 44  # pixels per term of a forest plot


def release_chart(
    frame: pd.DataFrame,
    groups: Sequence[str],
    *,
    time_axis: bool = False,
    value_title: str = "value",
    total_label: str = "total",
    labels: dict[str, dict[str, str]] | None = None,
    titles: dict[str, str] | None = None,
    ordered_colour: bool = False,
    ci_title: str = "CI",
) -> alt.LayerChart | alt.FacetChart:
    """Bars (categories) or lines (years) of ``value`` with dark CI error bars (visible on every
    colour); suppressed cells are left out.

    The first group column is the x axis, the second the colour (a sequential scheme when its
    categories are ordered, e.g. age bands), the third a facet row. ``labels`` maps a group column to
    ``code -> label`` (what the axis, legend and tooltips show), ``titles`` a group column to its title.
    """
    renamed: dict[str, str] = {}
    if groups:
        renamed = {g: _GROUP_FIELDS[i] for i, g in enumerate(groups[:3])}
        data = frame.rename(columns=renamed)
        for original, name in renamed.items():
            data[name] = data[name].astype(str)
            if labels and original in labels:
                data[name] = data[name].map(lambda code, m=labels[original]: m.get(code, code))
    else:
        data = frame.assign(g0=total_label)
        renamed = {total_label: "g0"}
    # Colours in the release's order of keys, whichever cells are left out as suppressed.
    colour_order = list(dict.fromkeys(data["g1"])) if "g1" in data.columns else []
    data = data[~frame["suppressed"].to_numpy(dtype=bool)]
    data = data[[c for c in data.columns if c in ("value", "ci_low", "ci_high") or c in _GROUP_FIELDS]]
    for name in ("value", "ci_low", "ci_high"):
        data[name] = data[name].astype("float64")
    titles = {v: (titles or {}).get(k, k) for k, v in renamed.items()}
    x_order = list(dict.fromkeys(data["g0"])) if len(data) else None
    angle = 0 if x_order is None or len(x_order) <= 8 else -45
    x = alt.X(
        "g0:O" if time_axis else "g0:N", title=titles["g0"], sort=x_order, axis=alt.Axis(labelAngle=angle)
    )
    y = alt.Y("value:Q", title=value_title)
    tooltip = [alt.Tooltip(f"{n}:N", title=titles[n]) for n in titles if n in data.columns]
    tooltip += [
        alt.Tooltip("value:Q", title=value_title, format=",.4~g"),
        alt.Tooltip("ci_low:Q", title=f"{ci_title} –", format=",.4~g"),
        alt.Tooltip("ci_high:Q", title=f"– {ci_title}", format=",.4~g"),
    ]
    colour = "g1" in data.columns
    faceted = "g2" in data.columns
    base = alt.Chart() if faceted else alt.Chart(data)  # a facet's layers share the facet's data
    encode: dict[str, object] = {"x": x, "y": y, "tooltip": tooltip}
    error_encode: dict[str, object] = {
        "x": x,
        "y": alt.Y("ci_low:Q", title=value_title),
        "y2": alt.Y2("ci_high:Q"),
    }
    if colour:
        order = colour_order
        scale = alt.Scale(scheme="viridis" if ordered_colour else "tableau10", domain=order)
        encode["color"] = alt.Color(
            "g1:O" if ordered_colour else "g1:N", title=titles["g1"], scale=scale, sort=order
        )
        if not time_axis:
            encode["xOffset"] = alt.XOffset("g1:N", sort=order)
            error_encode["xOffset"] = alt.XOffset("g1:N", sort=order)
        else:
            error_encode["detail"] = alt.Detail("g1:N")
    marks = base.mark_line(point=True) if time_axis else base.mark_bar()
    layers: list[alt.Chart] = [marks.encode(**encode)]
    if data["ci_low"].notna().any():
        layers.append(base.mark_errorbar(ticks=True, color="#222222", thickness=1.5).encode(**error_encode))
    if faceted:
        return alt.layer(*layers, data=data).facet(row=alt.Row("g2:N", title=titles["g2"], sort=None))
    return alt.layer(*layers).properties(height=360)


def budget_chart(summary: BudgetSummary, *, spent: str, remaining: str) -> alt.LayerChart | alt.FacetChart:
    """A donut gauge of the budget: spent and remaining share, with the spent percentage in the middle."""
    share = summary.fraction_spent
    data = pd.DataFrame({"part": [spent, remaining], "share": [share, 1.0 - share]})
    base = alt.Chart(data).encode(
        theta=alt.Theta("share:Q", stack=True),
        color=alt.Color(
            "part:N",
            scale=alt.Scale(domain=[spent, remaining], range=["#c0392b", "#2e86c1"]),
            legend=alt.Legend(title=None, orient="bottom"),
        ),
        tooltip=[alt.Tooltip("part:N"), alt.Tooltip("share:Q", format=".1%")],
    )
    ring = base.mark_arc(innerRadius=60, outerRadius=100)
    text = (
        alt.Chart(pd.DataFrame({"label": [f"{share:.0%}"]}))
        .mark_text(fontSize=26, fontWeight="bold")
        .encode(text="label:N")
    )
    return alt.layer(ring, text).properties(width=240, height=240)


def transparency_budget_chart(projects: pd.DataFrame, *, spent: str, total: str) -> alt.Chart:
    """Epsilon spent against the budget, per project."""
    data = projects[["id", "epsilon_spent", "epsilon_total"]].melt(
        id_vars="id", var_name="kind", value_name="epsilon"
    )
    data["kind"] = data["kind"].map({"epsilon_spent": spent, "epsilon_total": total})
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("id:N", title=None),
            x=alt.X("epsilon:Q", title="ε"),
            yOffset=alt.YOffset("kind:N"),
            color=alt.Color(
                "kind:N", title=None, scale=alt.Scale(domain=[spent, total], range=["#c0392b", "#aab7b8"])
            ),
            tooltip=["id:N", "kind:N", alt.Tooltip("epsilon:Q", format=".4g")],
        )
    )


def transparency_register_chart(registers: pd.DataFrame, *, title: str) -> alt.Chart:
    """The privacy loss (zCDP rho) each register bears across all projects."""
    data = registers[["register", "rho_spent", "spends"]].copy()
    data["rho_spent"] = data["rho_spent"].astype("float64")
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("register:N", title=None, sort=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("rho_spent:Q", title=title),
            tooltip=["register:N", alt.Tooltip("rho_spent:Q", format=".4g"), "spends:Q"],
        )
    )


def purpose_chart(purposes: pd.Series) -> alt.Chart:
    """How many projects there are per purpose (``purposes``: one purpose label per project)."""
    data = purposes.value_counts().rename_axis("purpose").reset_index(name="projects")
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("purpose:N", title=None, sort="-x"),
            x=alt.X("projects:Q", title=None, axis=alt.Axis(tickMinStep=1)),
            tooltip=["purpose:N", "projects:Q"],
        )
    )


def survival_chart(
    curve: pd.DataFrame,
    *,
    group: pd.Series | None,
    time_title: str,
    survival_title: str,
    group_title: str,
    band_title: str,
) -> alt.LayerChart | alt.FacetChart:
    """Kaplan-Meier step curves (survival against time, a step at each exit bin's end) with their
    pointwise interval as a band, one colour per group (``group``: a label per curve row, None for
    one curve)."""
    data = pd.DataFrame(
        {
            "time": curve["time"].astype("float64"),
            "survival": curve["survival"].astype("float64"),
            "ci_low": curve["ci_low"].astype("float64"),
            "ci_high": curve["ci_high"].astype("float64"),
            "group": "" if group is None else group.astype(str).to_numpy(),
        }
    )
    order = list(dict.fromkeys(data["group"]))
    # Each curve starts at survival 1 at time 0; its rows are the bins' ends (a step at each).
    start = pd.DataFrame({"time": 0.0, "survival": 1.0, "ci_low": 1.0, "ci_high": 1.0, "group": order})
    data = pd.concat([start, data], ignore_index=True)
    colour = alt.Color(
        "group:N", title=group_title, sort=order, scale=alt.Scale(scheme="tableau10", domain=order)
    )
    x = alt.X("time:Q", title=time_title)
    tooltip = [
        alt.Tooltip("group:N", title=group_title),
        alt.Tooltip("time:Q", title=time_title, format=",.4~g"),
        alt.Tooltip("survival:Q", title=survival_title, format=".1%"),
        alt.Tooltip("ci_low:Q", title=f"{band_title} –", format=".1%"),
        alt.Tooltip("ci_high:Q", title=f"– {band_title}", format=".1%"),
    ]
    base = alt.Chart(data)
    band = base.mark_area(interpolate="step-after", opacity=0.2).encode(
        x=x,
        y=alt.Y("ci_low:Q", title=survival_title, axis=alt.Axis(format="%")),
        y2="ci_high:Q",
        color=colour,
    )
    line = base.mark_line(interpolate="step-after").encode(
        x=x,
        y=alt.Y(
            "survival:Q", title=survival_title, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")
        ),
        color=colour,
        tooltip=tooltip,
    )
    return alt.layer(band, line).properties(height=380)


def forest_chart(
    terms: pd.DataFrame,
    names: Sequence[str],
    *,
    ratio: bool,
    estimate_title: str,
    interval_titles: tuple[str, str],
) -> alt.LayerChart | alt.FacetChart:
    """A forest plot: one row per term (``names``, in order), the point estimate on its noise-aware
    interval (a thin dark line), the naive interval behind it in a lighter, thicker mark, a log scale for
    ratios and a red reference line at 1 (0 for coefficients). ``interval_titles``: (noise-aware,
    naive)."""
    noise_title, naive_title = interval_titles
    parts = []
    for kind, low, high in (
        (noise_title, "ci_low", "ci_high"),
        (naive_title, "naive_ci_low", "naive_ci_high"),
    ):
        parts.append(
            pd.DataFrame(
                {
                    "term": list(names),
                    "kind": kind,
                    "estimate": terms["estimate"].astype("float64").to_numpy(),
                    "low": terms[low].astype("float64").to_numpy(),
                    "high": terms[high].astype("float64").to_numpy(),
                }
            )
        )
    data = pd.concat(parts, ignore_index=True)
    reference = 1.0 if ratio else 0.0
    if ratio:  # a log axis cannot show a non-positive end: such an interval is left out of the plot
        for end in ("low", "high"):
            data.loc[data[end] <= 0, end] = None
    scale = alt.Scale(type="log") if ratio else alt.Scale(zero=False)
    x = alt.X("low:Q", title=estimate_title, scale=scale)
    y = alt.Y("term:N", title=None, sort=list(names), axis=alt.Axis(labelLimit=360))
    colour = alt.Color(
        "kind:N",
        title=None,
        sort=[noise_title, naive_title],
        scale=alt.Scale(domain=[noise_title, naive_title], range=["#1f2937", "#a5b4c8"]),
        legend=alt.Legend(orient="bottom"),
    )
    size = alt.Size(
        "kind:N", scale=alt.Scale(domain=[noise_title, naive_title], range=[2.5, 12]), legend=None
    )
    tooltip = [
        alt.Tooltip("term:N", title=""),
        alt.Tooltip("kind:N", title=""),
        alt.Tooltip("estimate:Q", title=estimate_title, format=",.4~g"),
        alt.Tooltip("low:Q", title="–", format=",.4~g"),
        alt.Tooltip("high:Q", title="–", format=",.4~g"),
    ]
    # The naive interval first, so the noise-aware one is drawn over it.
    intervals = (
        alt.Chart(data.dropna(subset=["low", "high"]))
        .mark_rule()
        .encode(
            x=x,
            x2="high:Q",
            y=y,
            color=colour,
            size=size,
            order=alt.Order("rank:Q"),
            tooltip=tooltip,
        )
        .transform_calculate(rank=f"datum.kind === {json.dumps(naive_title)} ? 0 : 1")
    )
    points = (
        alt.Chart(data[data["kind"] == noise_title].dropna(subset=["estimate"]))
        .mark_point(filled=True, size=80, color="#1f2937", opacity=1)
        .encode(x=alt.X("estimate:Q", scale=scale), y=y, tooltip=tooltip)
    )
    # A tick per row as tall as the row: together a vertical line through the plot. (A rule
    # with x alone is meant to span the plot, but in a layer over a banded y axis it was not drawn.)
    line = (
        alt.Chart(data[data["kind"] == noise_title])
        .mark_tick(color="#b91c1c", thickness=1.5, size=_FOREST_ROW, opacity=1)
        .encode(x=alt.datum(reference), y=y)
    )
    return alt.layer(intervals, points, line).properties(height=alt.Step(_FOREST_ROW))
