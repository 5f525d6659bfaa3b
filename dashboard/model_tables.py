"""Tables of the Models and Table 1 pages, for reading and for a paper (pure functions of the client's
frames, ``service.model_frames``).

Terms and levels become labels and titles in the page's language ("Sex: Male (vs Female)"); numbers
are rounded for reading, never recomputed: every figure is the service's. Table 1 is the familiar
table: one row per variable and level, one column per exposure group, "n (%) [interval]" or the
quartiles of a numeric variable; it downloads as CSV and as an HTML document that Word opens.

>>> terms = pd.DataFrame({"term": ["cpr.sex=M"], "estimate": [1.5], "ci_low": [1.2], "ci_high": [1.9],
...     "naive_ci_low": [1.3], "naive_ci_high": [1.7]})
>>> list(term_labels(terms, {"cpr.sex": "F"}, {"cpr.sex": {"M": "Male", "F": "Female"}},
...     {"cpr.sex": "Sex"}, lambda key, **v: {"model_vs": "vs"}.get(key, key)))
['Sex: Male (vs Female)']
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from dashboard.analysis_tables import interval
from dashboard.formatting import number
from service.model_frames import Table1Frames

__all__ = ["table1_csv", "table1_html", "table1_table", "term_labels", "terms_table"]

Translate = Callable[..., str]
Labels = Mapping[str, Mapping[str, str]]


def _covariate_and_level(term: str) -> tuple[str, str | None]:
    covariate, eq, level = term.partition("=")
    return (covariate, level) if eq else (term, None)


def term_labels(
    terms: pd.DataFrame,
    reference: Mapping[str, Any],
    labels: Labels,
    titles: Mapping[str, str],
    tr: Translate,
) -> list[str]:
    """Each term as people read it: a level against its reference level, or a numeric covariate's
    title (per unit), or the intercept."""
    out = []
    for term in terms["term"].astype(str):
        covariate, level = _covariate_and_level(term)
        title = titles.get(covariate, covariate)
        if level is None:
            out.append(tr("model_intercept") if covariate == "intercept" else title)
            continue
        shown = labels.get(covariate, {})
        ref = reference.get(covariate)
        text = f"{title}: {shown.get(level, level)}"
        out.append(text if ref is None else f"{text} ({tr('model_vs')} {shown.get(str(ref), str(ref))})")
    return out


def terms_table(
    terms: pd.DataFrame, names: Sequence[str], estimate_title: str, tr: Translate
) -> pd.DataFrame:
    """One row per term: the estimate, the noise-aware interval and the naive one beside it."""
    return pd.DataFrame(
        {
            tr("model_term"): list(names),
            estimate_title: [number(v) if pd.notna(v) else "" for v in terms["estimate"]],
            tr("model_ci"): [
                interval(a, b) or tr("interval_not_estimable")
                for a, b in zip(terms["ci_low"], terms["ci_high"], strict=True)
            ],
            tr("model_naive_ci"): [
                interval(a, b) for a, b in zip(terms["naive_ci_low"], terms["naive_ci_high"], strict=True)
            ],
        }
    )


def table1_table(
    frames: Table1Frames, labels: Labels, titles: Mapping[str, str], tr: Translate
) -> pd.DataFrame:
    """The familiar Table 1: variable, level (or statistic), one column per exposure group."""
    layout = frames.release.get("table1") or {}
    group_by = layout.get("group_by")
    groups = [str(g) for g in layout.get("groups") or ()]
    wide = frames.wide
    if wide.empty:
        return pd.DataFrame(columns=[tr("table1_variable"), tr("table1_level")])
    group_labels = labels.get(str(group_by), {})
    columns = {
        f"{group_by or 'group'} = {g}": (
            f"{titles.get(group_by, group_by)}: {group_labels.get(g, g)}" if group_by else tr("table1_all")
        )
        for g in groups
    }
    variables, levels = [], []
    last = None
    for variable, level, statistic in zip(wide["variable"], wide["level"], wide["statistic"], strict=True):
        name = tr("table1_persons") if variable == "persons" else titles.get(variable, variable)
        variables.append("" if name == last else name)
        last = name
        if level:
            levels.append(labels.get(variable, {}).get(str(level), str(level)))
        else:
            levels.append("" if statistic in ("n", "percent") else tr(f"table1_stat_{statistic}"))
    out = pd.DataFrame({tr("table1_variable"): variables, tr("table1_level"): levels})
    for source, title in columns.items():
        out[title] = wide[source].fillna("").astype(str).to_list() if source in wide.columns else ""
    return out


def table1_csv(table: pd.DataFrame) -> bytes:
    """The familiar table as CSV (UTF-8 with a byte-order mark, so spreadsheets read æ, ø and å)."""
    return table.to_csv(index=False).encode("utf-8-sig")


def table1_html(table: pd.DataFrame, title: str, note: str) -> bytes:
    """The familiar table as an HTML document ready for a paper (Word opens it as a table)."""
    body = table.to_html(index=False, border=1, na_rep="", justify="left", escape=True)
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>table{border-collapse:collapse;font-family:serif}"
        "td,th{border:1px solid #444;padding:2px 6px;text-align:left}</style></head><body>\n"
        f"<h3>{html.escape(title)}</h3>\n{body}\n<p>{html.escape(note)}</p>\n</body></html>\n"
    )
    return page.encode("utf-8")
