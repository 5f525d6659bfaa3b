"""The sundstat dashboard: ``streamlit run dashboard/app.py`` (``SUNDSTAT_API_URL`` names the API).

The entry point draws the sidebar (language, sign-in) and the navigation; each page is one module in
``dashboard/views`` (not ``pages/``, which Streamlit would also run as old-style pages). Public pages
(Catalog, Apply, Transparency) work without a token; Explore, Rates, Survival and My project need an
analyst token (as do Models and Table 1), Administration an administrator token.
"""

from __future__ import annotations

import streamlit as st

# Streamlit runs this file as a script; ``dashboard`` is imported as the installed package
# (``pip install -e .``, which `make install` does; or PYTHONPATH naming the repository root).
from dashboard.session import mark_run_finished, me, render_sidebar, t, token


def _pages() -> dict[str, list[st.Page]]:
    """The navigation, in the chosen language; Administration only for administrators."""
    public = [
        st.Page(
            "views/catalog.py",
            title=t("page_catalog"),
            icon=":material/menu_book:",
            url_path="catalog",
            default=True,
        ),
        st.Page("views/apply.py", title=t("page_apply"), icon=":material/assignment:", url_path="apply"),
        st.Page(
            "views/transparency.py",
            title=t("page_transparency"),
            icon=":material/visibility:",
            url_path="transparency",
        ),
    ]
    analysis = [
        st.Page(
            "views/explore.py", title=t("page_explore"), icon=":material/query_stats:", url_path="explore"
        ),
        st.Page("views/rates.py", title=t("page_rates"), icon=":material/speed:", url_path="rates"),
        st.Page(
            "views/survival.py", title=t("page_survival"), icon=":material/monitoring:", url_path="survival"
        ),
        st.Page("views/models.py", title=t("page_models"), icon=":material/forest:", url_path="models"),
        st.Page("views/table1.py", title=t("page_table1"), icon=":material/table_chart:", url_path="table1"),
        st.Page(
            "views/project.py", title=t("page_project"), icon=":material/donut_large:", url_path="project"
        ),
    ]
    pages = {t("nav_public"): public, t("nav_analysis"): analysis}
    if token() and me().get("role") == "admin":
        admin = st.Page(
            "views/admin.py", title=t("page_admin"), icon=":material/admin_panel_settings:", url_path="admin"
        )
        pages[t("nav_admin")] = [admin]
    return pages


def main() -> None:
    """Draw the sidebar and run the selected page."""
    st.set_page_config(page_title="sundstat", page_icon=":material/health_metrics:", layout="wide")
    page = st.navigation(_pages())
    render_sidebar()
    page.run()
    mark_run_finished()


main()
