"""The import contracts of pyproject.toml (``lint-imports``, run by ``make lint``) can fail.

Each case plants one forbidden import into a tiny copy of the five top-level packages and runs
``lint-imports`` with the repository's own contracts on it: the planted import must break the
contract that forbids it (and ``lint-imports`` exit non-zero). The clean copy (which holds the allowed cross-package imports: the
dashboard's ``service.client``, ``service.client_frames`` and ``service.model_frames``, and datasets' ``query_engine.catalog``; and estimators that import
each other, numpy, scipy and statsmodels) must pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

LAYERS = "Layers: dashboard over service"
DASHBOARD = "The dashboard talks to the API only"
DATASETS = "datasets uses only the catalog types"
LEDGER = "budget_ledger needs only the standard library"
ESTIMATORS = "The estimators are pure post-processing"
CONTRACTS = (LAYERS, DASHBOARD, DATASETS, LEDGER, ESTIMATORS)
VERDICT = re.compile("(" + "|".join(map(re.escape, CONTRACTS)) + r").*? (KEPT|BROKEN)")
"""A contract's name and, after it in ``lint-imports``' output (white space folded), its verdict."""
ESTIMATOR = "query_engine/estimators/x.py"

CLEAN = {
    "query_engine/catalog/__init__.py": "from query_engine.catalog.types import Catalog\n",
    "query_engine/catalog/types.py": "",
    "query_engine/engine.py": "from query_engine import catalog\nfrom query_engine.estimators import rates\n",
    "query_engine/estimators/__init__.py": "from query_engine.estimators.rates import incidence_rates\n",
    "query_engine/estimators/rates.py": (
        "import numpy\nimport scipy.stats\nimport statsmodels.api\nfrom query_engine.estimators import noise\n"
    ),
    "query_engine/estimators/noise.py": "import math\n",
    "budget_ledger/ledger.py": "import opendp\n",
    "datasets/build.py": "from query_engine.catalog import Catalog\n",
    "datasets/build_preaggregate.py": "from query_engine.preaggregate import COMMON_GROUPS\n",
    "query_engine/preaggregate.py": "",
    "service/client.py": "import httpx\n",
    "service/client_frames.py": "import pandas\n",
    "service/model_frames.py": "import pandas\n",
    "service/app.py": "import budget_ledger.ledger\nimport datasets.build\nimport query_engine.engine\n",
    "dashboard/app.py": "from service.client import Client\n",
    "dashboard/analysis_view.py": "from service.client_frames import rate_frames\n",
    "dashboard/model_view.py": "from service.model_frames import model_frames\n",
}

VIOLATIONS = {
    "engine imports the ledger": ("query_engine/x.py", "import budget_ledger.ledger\n", LAYERS),
    "ledger imports the engine": ("budget_ledger/x.py", "from query_engine import engine\n", LAYERS),
    "engine imports the service": ("query_engine/x.py", "import service.app\n", LAYERS),
    "datasets imports the service": ("datasets/x.py", "import service.app\n", LAYERS),
    "dashboard imports the service's app": ("dashboard/x.py", "from service import app\n", DASHBOARD),
    "dashboard imports the engine": ("dashboard/x.py", "import query_engine.engine\n", DASHBOARD),
    "dashboard opens a database": ("dashboard/x.py", "import sqlite3\n", DASHBOARD),
    "dashboard imports duckdb": ("dashboard/x.py", "import duckdb\n", DASHBOARD),
    "datasets imports the engine beyond the catalog": (
        "datasets/x.py",
        "import query_engine.engine\n",
        DATASETS,
    ),
    "datasets imports the ledger": ("datasets/x.py", "import budget_ledger.ledger\n", DATASETS),
    "ledger imports numpy": ("budget_ledger/x.py", "import numpy\n", LEDGER),
    "estimators import the engine": (ESTIMATOR, "import query_engine.engine\n", ESTIMATORS),
    "estimators import the catalog": (ESTIMATOR, "from query_engine.catalog import types\n", ESTIMATORS),
    "estimators import duckdb": (ESTIMATOR, "import duckdb\n", ESTIMATORS),
    "estimators import opendp": (ESTIMATOR, "import opendp\n", ESTIMATORS),
    "estimators import the ledger": (ESTIMATOR, "import budget_ledger.ledger\n", ESTIMATORS),
    "estimators import datasets": (ESTIMATOR, "import datasets.build\n", ESTIMATORS),
}


def _lint(tmp_path: Path, files: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Write ``files`` as packages under ``tmp_path`` and run the repository's contracts on them."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the planted packages shadow the real ones
    result = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = " ".join(result.stdout.split())  # contract names are wrapped over lines
    verdicts = dict(VERDICT.findall(output))
    assert len(verdicts) == len(CONTRACTS), result.stdout + result.stderr
    return result.returncode, verdicts


def test_the_clean_packages_keep_every_contract(tmp_path: Path) -> None:
    code, verdicts = _lint(tmp_path, CLEAN)
    assert code == 0
    assert set(verdicts.values()) == {"KEPT"}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_planted_import_breaks_its_contract(tmp_path: Path, case: str) -> None:
    path, text, contract = VIOLATIONS[case]
    code, verdicts = _lint(tmp_path, {**CLEAN, path: text})
    assert code != 0
    assert verdicts[contract] == "BROKEN"
