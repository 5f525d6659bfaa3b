"""The dashboard is a client of the HTTP API and nothing more: no engine, ledger or database code, no
data files, and no cache that could show one user's results to another."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.dashboard.dash_helpers import APP, Api

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboard"
FORBIDDEN = (
    "duckdb",
    "query_engine",
    "budget_ledger",
    "datasets",
    "sqlite3",
    "_sqlite3",
    "opendp",
    "sqlglot",
)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def test_no_file_is_opened_and_no_token_dependent_cache() -> None:
    """Nothing opens files (the translations are read by one named function), and the only
    ``st.cache_data`` functions are public answers (the catalog, the query options), never keyed by a
    token."""
    opened, cached = [], []
    for path in DASHBOARD.rglob("*.py"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("open", "io.open", "duckdb.connect"):
                opened.append(f"{path.name}: {ast.unparse(node)}")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                decorators = [ast.unparse(d) for d in node.decorator_list]
                if any("cache_data" in d or "cache_resource" in d for d in decorators):
                    cached.append((node.name, [a.arg for a in node.args.args]))
    assert not opened
    assert sorted(cached) == [
        ("_cached_catalog", ["url", "_transport"]),
        ("_cached_query_options", ["url", "_transport", "measure", "register", "group_by"]),
    ]


RUNTIME_CHECK = textwrap.dedent(
    """
    import json, os, sys
    from streamlit.testing.v1 import AppTest

    import dashboard.budgets, dashboard.catalog_lookup, dashboard.charts, dashboard.i18n, dashboard.query_draft
    import dashboard.release_view, dashboard.results, dashboard.session
    import dashboard.views.admin, dashboard.views.apply, dashboard.views.catalog
    import dashboard.views.explore, dashboard.views.project, dashboard.views.transparency
    import dashboard.views.rates, dashboard.views.survival, dashboard.analysis_view, dashboard.cohort_builder
    import dashboard.views.models, dashboard.views.table1, dashboard.model_view, dashboard.model_tables

    rendered = []
    for token in (None, os.environ["ANALYST"], os.environ["ADMIN"]):
        at = AppTest.from_file(os.environ["APP"], default_timeout=60).run()
        if token:
            at.text_input(key="signin_token").set_value(token)
            at.button(key="signin_button").click().run()
        pages = ["catalog", "apply", "transparency", "explore", "rates", "survival", "models", "table1"]
        pages += ["project"]
        pages += ["admin"] if token == os.environ["ADMIN"] else []
        for page in pages:
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, [e.value for e in at.exception]
            rendered.append(page)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in json.loads(os.environ["FORBIDDEN"]))
    ours = sorted(m for m in sys.modules if m.split(".")[0] == "service")
    print(json.dumps({"forbidden": loaded, "service": ours, "rendered": rendered}))
    """
)


def test_rendering_every_page_loads_no_engine_ledger_or_database_module(real_api: Api) -> None:
    """In a fresh interpreter: import every dashboard module and render every page (anonymous, as an
    analyst and as an administrator, against the real API), then inspect ``sys.modules``."""
    _, analyst = real_api.new_project()
    env = {
        "APP": str(APP),
        "ANALYST": analyst,
        "ADMIN": real_api.admin_token,
        "FORBIDDEN": json.dumps(FORBIDDEN),
        "SUNDSTAT_API_URL": real_api.url,
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNTIME_CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["forbidden"] == []
    assert result["service"] == ["service", "service.client", "service.client_frames", "service.model_frames"]
    assert len(result["rendered"]) == 9 + 9 + 10
