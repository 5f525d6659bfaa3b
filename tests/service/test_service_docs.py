"""Every setting, CLI command and error code is documented (after datasette's test_docs.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

from service.cli import build_parser
from service.settings import Settings
from tests.service.svc_helpers import cli_commands

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
API = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
ALL_DOCS = "\n".join(
    p.read_text(encoding="utf-8") for p in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
)


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"`SUNDSTAT_{field.upper()}`" in OPERATIONS


@pytest.mark.parametrize("command", [" ".join(c) for c in cli_commands(build_parser())])
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"sundstat {command}" in ALL_DOCS


def _error_codes() -> set[str]:
    codes: set[str] = set()
    for package_name in ("query_engine", "budget_ledger", "service"):
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            try:
                module = importlib.import_module(info.name)
            except ModuleNotFoundError:  # an optional backend whose dependency is not installed
                continue
            for _, cls in inspect.getmembers(module, inspect.isclass):
                code = cls.__dict__.get("code")
                if issubclass(cls, Exception) and isinstance(code, str):
                    codes.add(code)
    return codes


def test_error_codes_are_found() -> None:
    assert {"budget_exceeded", "unknown_column", "rate_limited", "permit_expired"} <= _error_codes()


@pytest.mark.parametrize("code", sorted(_error_codes()))
def test_every_error_code_is_documented(code: str) -> None:
    assert re.search(rf"^\| `{re.escape(code)}` \| ", API, re.MULTILINE), (
        f"add `{code}` to the table in docs/api.md"
    )
