"""The documents cite only files that are in the repository.

Every repository path written in README.md and docs/*.md (``service/orchestration.py``,
``datasets/catalog/``, ``.ci/run``) must exist, and every bare file name (``mechanisms.py``,
``lpr.yaml``) must name a file somewhere in the repository. Paths with placeholders (``*``, ``<...>``,
``{...}``) and what the tools create at run time (``data/``, ``state/``, ``test-output/``) are not
checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_TOP = r"(?:\.ci|query_engine|budget_ledger|service|dashboard|datasets|benchmarks|tests|docs)"
_PATH = re.compile(rf"(?<![\w./:-])({_TOP}/[\w./*{{}}<>-]*)")
_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.(?:py|md|yaml|toml|sh))\b")
_SKIPPED_PARTS = {".git", ".venv", "node_modules", "__pycache__"}


def _repository_names() -> set[str]:
    return {p.name for p in ROOT.rglob("*") if not _SKIPPED_PARTS & set(p.relative_to(ROOT).parts)}


def _cited(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            for match in pattern.finditer(line):
                cited = match.group(1).rstrip(".,)")
                if not any(mark in cited for mark in "*{}<>"):
                    found.append((f"{document.relative_to(ROOT)}:{number}", cited))
    return found


def test_the_scan_finds_the_documents_and_their_paths() -> None:
    assert len(DOCUMENTS) >= 10
    assert ("README.md", "docs/api.md") in {(where.split(":")[0], path) for where, path in _cited(_PATH)}


def test_every_cited_path_exists() -> None:
    missing = [f"{where}: {path}" for where, path in _cited(_PATH) if not (ROOT / path).exists()]
    assert not missing, "documents cite paths that are not in the repository:\n" + "\n".join(missing)


def test_every_cited_file_name_exists_somewhere() -> None:
    names = _repository_names()
    missing = [f"{where}: {name}" for where, name in _cited(_NAME) if name not in names]
    assert not missing, "documents cite files that are not in the repository:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    ("line", "cited"),
    [
        pytest.param("see service/nowhere.py for it", "service/nowhere.py", id="path"),
        pytest.param("the `nowhere.yaml` file", "nowhere.yaml", id="bare_name"),
    ],
)
def test_the_patterns_would_catch_a_missing_file(line: str, cited: str) -> None:
    pattern = _PATH if "/" in cited else _NAME
    assert [m.group(1) for m in pattern.finditer(line)] == [cited]
    assert not (ROOT / cited).exists() and cited.rsplit("/", 1)[-1] not in _repository_names()
