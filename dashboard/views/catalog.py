"""Catalog (public): registers, controllers, coverage, columns, key sets, and a code search."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import catalog_lookup
from dashboard.session import API_ERRORS, api_url, lang, public_catalog, show_error, t

__all__ = ["columns_frame", "render"]

_CODE_KEYSETS = (
    "icd10",
    "atc5",
    "icd10_chapters",
    "atc1",
    "atc2",
    "atc3",
    "atc4",
    "municipalities",
    "regions",
)


def columns_frame(register: dict[str, Any], names: list[str], language: str) -> pd.DataFrame:
    """The register's columns (those in ``names``) as a table in ``language``."""
    rows = []
    for col in register.get("columns", []):
        if col["name"] not in names:
            continue
        bounds = col.get("bounds") or {}
        rows.append(
            {
                "column": col.get("qualified", col["name"]),
                "type": col.get("type"),
                "description": catalog_lookup.localized(col.get("description"), language),
                "keyset": col.get("keyset") or ("open" if col.get("open_domain") else ""),
                "bounds": f"{bounds['lo']} .. {bounds['hi']}" if bounds else "",
                "derived": bool(col.get("derived")),
            }
        )
    return pd.DataFrame(rows, columns=["column", "type", "description", "keyset", "bounds", "derived"])


def _render_registers(catalog: dict[str, Any]) -> None:
    text = st.text_input(t("catalog_search"), key="catalog_search", placeholder=t("catalog_search_hint"))
    found = catalog_lookup.search_catalog(catalog, text, lang())
    if not found:
        st.info(t("catalog_nothing_found", text=text))
    by_name = {r["name"]: r for r in catalog.get("registers", [])}
    for name, columns in found.items():
        reg = by_name[name]
        title = catalog_lookup.localized(reg.get("title"), lang())
        with st.expander(f"**{name}** — {title}", expanded=bool(text)):
            st.write(catalog_lookup.localized(reg.get("description"), lang()))
            c1, c2, c3 = st.columns(3)
            c1.markdown(f"**{t('controller')}**  \n{reg.get('controller', '')}")
            coverage = reg.get("coverage") or {}
            c2.markdown(f"**{t('coverage')}**  \n{coverage.get('from', '?')}–{coverage.get('to', '?')}")
            c3.markdown(f"**{t('grain')}**  \n{t('grain_' + str(reg.get('grain')))}")
            rows = reg.get("rows_per_person") or {}
            st.caption(t("rows_per_person", default=rows.get("default", "?"), max=rows.get("max", "?")))
            frame = columns_frame(reg, columns, lang())
            frame.columns = [t(f"col_{c}") for c in frame.columns]
            st.dataframe(frame, hide_index=True, width="stretch")


def _render_codes(catalog: dict[str, Any]) -> None:
    st.subheader(t("code_search"))
    keysets = catalog.get("keysets", {})
    names = [n for n in _CODE_KEYSETS if n in keysets] + sorted(set(keysets) - set(_CODE_KEYSETS))
    c1, c2 = st.columns([1, 2])
    name = c1.selectbox(
        t("keyset"),
        names,
        key="catalog_keyset",
        format_func=lambda n: f"{n} — {keysets[n].get('description', '')}",
    )
    text = c2.text_input(t("code_search_text"), key="catalog_code_search", placeholder=t("code_search_hint"))
    if name is None:
        return
    keyset = keysets[name]
    hits = catalog_lookup.search_codes(keyset, text, lang=lang(), limit=5000)
    st.caption(t("code_hits", count=len(hits), size=keyset.get("size", len(keyset.get("values", [])))))
    frame = pd.DataFrame(hits, columns=[t("code"), t("label")]).astype(str)
    with st.container(key="catalog_codes"):
        st.dataframe(frame, hide_index=True, width="stretch")


def render() -> None:
    """The catalog page."""
    st.title(t("page_catalog"))
    st.write(t("catalog_intro"))
    try:
        catalog = public_catalog()
    except API_ERRORS as exc:
        show_error(exc)
        return
    st.caption(t("privacy_unit", reference_date=catalog.get("reference_date", "?")))
    _render_registers(catalog)
    _render_codes(catalog)
    st.link_button(t("catalog_dcat"), f"{api_url()}/v1/catalog/dcat")


if __name__ == "__main__":
    render()
