"""Without the optional extras installed, the commands that need them say which extra to install.

pyspark (``sundstat[spark]``) and psycopg (``sundstat[postgres]``) are optional. Each test runs the
real CLI in a subprocess whose ``sys.modules`` blocks the package (``sys.modules[name] = None`` makes
``import name`` raise ImportError), as on an installation without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli_without(
    package: str, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"sys.modules[{package!r}] = None\n"
        "from service.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_on_spark_without_pyspark_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text("{}", encoding="utf-8")
    args = ["serve", "--no-dashboard", "--backend", "spark", "--parquet-dir", str(tmp_path)]
    done = _cli_without("pyspark", *args, "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 2, done.stderr
    assert "pip install 'sundstat[spark]'" in done.stderr
    # The same command with pyspark importable does not complain about it (the check can fail).
    with_pyspark = _cli_without(
        "no_such_package", *args, "--state-dir", str(tmp_path / "state"), "--workers", "2"
    )
    assert with_pyspark.returncode == 2 and "--workers 1" in with_pyspark.stderr
    assert "sundstat[spark]" not in with_pyspark.stderr


def test_postgres_ledger_without_psycopg_names_the_extra(tmp_path: Path, dataset: Path) -> None:
    url = "postgresql://sundstat@127.0.0.1:1/ledger"
    serve = ["serve", "--no-dashboard", "--db", str(dataset), "--state-dir", str(tmp_path / "state")]
    done = _cli_without("psycopg", *serve, "--ledger-url", url)
    assert done.returncode == 2, done.stderr
    assert "pip install 'sundstat[postgres]'" in done.stderr
    key = {"SUNDSTAT_AUDIT_KEY": "ab" * 32}
    verify = _cli_without("psycopg", "ledger", "verify", "--ledger-url", url, env=key)
    assert verify.returncode == 2, verify.stdout + verify.stderr
    assert "pip install 'sundstat[postgres]'" in verify.stdout + verify.stderr
