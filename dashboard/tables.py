"""Tables and short descriptions for people: titles instead of ``cpr.region`` and ``ci_low``, labels
instead of codes, numbers as people write them, no ``None`` and no snake_case.

Plain functions, no Streamlit: ``tr`` is the page's translate function (``t(key, **values)``). The
machine-readable forms (CSV, Parquet, JSON) stay in :mod:`dashboard.results`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from . import catalog_lookup, results
from . import formatting as fmt

__all__ = [
    "admin_table",
    "describe_query",
    "is_ordered_column",
    "projects_tables",
    "register_loss_table",
    "release_table",
    "releases_table",
    "value_labels",
]

Translate = Callable[..., str]


def value_labels(catalog: Mapping[str, Any], column: str, lang: str) -> dict[str, str]:
    """``code -> what people read`` for a group column: the label ("Female"), a code with its title
    ("E11 Type 2 diabetes") where the code itself carries meaning, or the code (age bands, years)."""
    keyset = catalog_lookup.keyset_of(catalog, column) or {}
    out: dict[str, str] = {}
    for value in keyset.get("values", []):
        code = str(value)
        label = catalog_lookup.code_label(keyset, value, lang)
        if not label or label == code:
            out[code] = code
        elif any(ch.isdigit() for ch in code):
            out[code] = f"{code} {label}"
        else:
            out[code] = label
    return out


def is_ordered_column(catalog: Mapping[str, Any], column: str) -> bool:
    """True for columns whose categories have an order (age bands, years): drawn in a sequential scheme."""
    col = catalog_lookup.column_index(catalog).get(column, {})
    keyset = str(col.get("keyset") or "")
    return keyset.startswith("age_band") or catalog_lookup.is_time_column(catalog, column)


def _cell(value: Any, labels: Mapping[str, str]) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return labels.get(str(value), str(value))


def release_table(
    release: Mapping[str, Any], catalog: Mapping[str, Any], lang: str, tr: Translate
) -> pd.DataFrame:
    """The release for reading: one titled column per group (labels, not codes), the value (``<5``
    for a suppressed cell) and the confidence interval as one "95% CI" column."""
    text = results.table_frame(release)
    groups = results.group_columns_of(release)
    columns = catalog_lookup.column_index(catalog)
    confidence = release.get("confidence")
    level = fmt.number(float(confidence) * 100, 3) if isinstance(confidence, int | float) else "95"
    out = pd.DataFrame(index=text.index)
    for group in groups:
        labels = value_labels(catalog, group, lang)
        out[fmt.column_title(columns, group, lang)] = [_cell(v, labels) for v in text[group]]
    measure = str(release.get("measure") or (release.get("query") or {}).get("measure") or "")
    out[tr(f"measure_{measure}") if measure else tr("value")] = list(text["value"])
    out[tr("ci_column", level=level)] = [
        f"{low} – {high}" if low and high else ""
        for low, high in zip(text["ci_low"], text["ci_high"], strict=True)
    ]
    return out


def _conditions_short(where: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for cond in where:
        value = cond.get("value", cond.get("values"))
        if isinstance(value, list):
            shown = ", ".join(str(v) for v in value[:3]) + (", …" if len(value) > 3 else "")
        else:
            shown = "" if value is None else str(value)
        parts.append(f"{cond.get('column', '')} {cond.get('op', '')} {shown}".strip())
    return "; ".join(parts)


def describe_query(
    release: Mapping[str, Any],
    catalog: Mapping[str, Any],
    lang: str,
    tr: Translate,
    *,
    when: bool = True,
    loss: bool = True,
) -> str:
    """The question a release answers, in one line: measure of what, where, by what, at what loss, when."""
    query = release.get("query") or {}
    columns = catalog_lookup.column_index(catalog)
    summary = results.release_summary(release)
    measure = str(summary["measure"] or "")
    what = tr(f"measure_{measure}") if measure else tr("value")
    target = query.get("column") or query.get("register")
    if target:
        what += f" ({fmt.column_title(columns, str(target), lang) if '.' in str(target) else target})"
    parts = [what]
    where = query.get("where") or query.get("cohort") or []
    if isinstance(where, list) and where:
        parts.append(tr("describe_where", conditions=_conditions_short(where)))
    groups = list(query.get("group_by") or results.group_columns_of(release))
    if groups:
        parts.append(tr("describe_by", groups=", ".join(fmt.column_title(columns, g, lang) for g in groups)))
    if loss and summary["epsilon"] is not None:
        parts.append(f"ε {fmt.number(summary['epsilon'])}")
    elif loss and summary["rho"] is not None:
        parts.append(f"ρ {fmt.number(summary['rho'])}")
    created = str(summary["created_at"] or "")[:16].replace("T", " ")
    if created and when:
        parts.append(created)
    return " · ".join(parts)


def releases_table(
    releases: Sequence[Mapping[str, Any]], catalog: Mapping[str, Any], lang: str, tr: Translate
) -> pd.DataFrame:
    """Past releases, newest first: when, the question, the loss, cells."""
    rows = []
    for release in reversed(list(releases)):
        summary = results.release_summary(release)
        cells = int(summary["cells"])
        rows.append(
            {
                tr("rel_created_at"): str(summary["created_at"] or "")[:16].replace("T", " "),
                tr("rel_question"): describe_query(release, catalog, lang, tr, when=False, loss=False),
                tr("rel_loss"): f"ε {fmt.number(summary['epsilon'])}"
                if summary["epsilon"] is not None
                else (f"ρ {fmt.number(summary['rho'])}" if summary["rho"] is not None else "-"),
                tr("rel_delta"): fmt.delta(summary["delta"]),
                tr("rel_cells"): tr("cells_one") if cells == 1 else tr("cells_many", count=cells),
                tr("rel_release_id"): str(summary["release_id"] or ""),
            }
        )
    return pd.DataFrame(rows)


def register_loss_table(report: Mapping[str, Any], tr: Translate) -> pd.DataFrame:
    """Per register, the loss all projects together put on it, in the unit its cap was set in (ε at
    the published δ for an (ε, δ) cap, never ε and ρ added), with the cap and what is left."""
    rows = []
    for row in report.get("registers", []):
        unit = row.get("cap_unit")
        if unit == "epsilon":
            cap = f"ε {fmt.number(row.get('cap_epsilon_requested'))}"
            spent = f"ε {fmt.number(row.get('epsilon_spent'))}"
            left = f"ε {fmt.remaining(row.get('epsilon_remaining'))}"
        elif unit == "epsilon_delta":
            at = fmt.delta(row.get("cap_delta_requested"))
            cap = tr("eps_at_delta", epsilon=fmt.number(row.get("cap_epsilon_requested")), delta=at)
            spent = tr("eps_at_delta", epsilon=fmt.number(row.get("epsilon_equivalent_spent")), delta=at)
            left = tr("eps_at_delta", epsilon=fmt.remaining(row.get("epsilon_remaining")), delta=at)
        elif unit == "rho":
            cap = f"ρ {fmt.number(row.get('cap_rho'))}"
            spent = f"ρ {fmt.number(row.get('rho_spent'))}"
            left = f"ρ {fmt.remaining(row.get('rho_remaining'))}"
        else:
            cap = tr("no_cap")
            spent = f"ρ {fmt.number(row.get('rho_spent'))}"
            left = "-"
        rows.append(
            {
                tr("reg_register"): str(row.get("register", "")),
                tr("reg_cap"): cap,
                tr("reg_spent"): spent,
                tr("reg_left"): left,
                tr("reg_spends"): int(row.get("spends") or 0),
            }
        )
    return pd.DataFrame(rows)


def projects_tables(report: Mapping[str, Any], tr: Translate) -> dict[str, pd.DataFrame]:
    """The public projects, one table per accounting mode (``pure``, ``zcdp``): the ε of a zCDP
    project is its ρ converted at its own δ, so it is never added to pure ε."""
    out: dict[str, list[dict[str, Any]]] = {"pure": [], "zcdp": []}
    for project in report.get("projects", []):
        mode = "zcdp" if project.get("mode") == "zcdp" else "pure"
        out[mode].append(
            {
                tr("tp_id"): str(project.get("id", "")),
                tr("tp_title"): str(project.get("title", "")),
                tr("tp_purpose"): tr(f"purpose_{project.get('purpose')}"),
                tr("tp_institution"): str(project.get("institution", "")),
                tr("tp_registers"): ", ".join(project.get("registers") or []),
                tr("tp_epsilon_total"): fmt.number(project.get("epsilon_total")),
                tr("tp_epsilon_spent"): fmt.number(project.get("epsilon_spent")),
                tr("tp_delta_total"): fmt.delta(project.get("delta_total")),
                tr("tp_releases"): int(project.get("releases") or 0),
                tr("tp_approval_route"): tr(f"route_{project.get('approval_route')}"),
                tr("tp_expires"): str(project.get("expires") or "-"),
                tr("tp_permit_id"): str(project.get("permit_id") or "-"),
                tr("tp_analysts"): ", ".join(project.get("analysts") or []),
            }
        )
    return {mode: pd.DataFrame(rows) for mode, rows in out.items()}


def _readable(value: Any, column: str, tr: Translate) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return tr("yes") if value else tr("no")
    if isinstance(value, int | float):
        return fmt.delta(value) if "delta" in column else fmt.number(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    text = str(value)
    if column.endswith("_at") and "T" in text:  # an ISO time: to the minute, as people read it
        return text[:16].replace("T", " ")
    return text


def admin_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str], tr: Translate) -> pd.DataFrame:
    """Administration rows with titled headers (``adm_<column>``) and readable values (no ``None``,
    ``True``, ISO seconds or 0.0e+0)."""
    rows = [{tr(f"adm_{c}"): _readable(r.get(c), c, tr) for c in columns} for r in records]
    return pd.DataFrame(rows, columns=[tr(f"adm_{c}") for c in columns])
