"""The worked examples of docs/analyses.md run and print what the document shows.

Every ```python block runs, in order, in one namespace. A comment line right under a ``print(...)``
line is that print's expected output (spacing aside).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "analyses.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _expected_prints(code: str) -> list[str]:
    lines = code.splitlines()
    return [
        line[2:]
        for previous, line in zip(lines, lines[1:], strict=False)
        if line.startswith("# ") and previous.startswith("print(")
    ]


def test_the_document_has_examples_of_every_estimator() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in (
        "incidence_rates",
        "proportions",
        "direct_standardise",
        "kaplan_meier",
        "survival_horizons",
        "median_survival",
        "poisson_regression",
        "linear_regression",
    ):
        assert any(f"{name}(" in block for block in _BLOCK.findall(text)), name


def test_the_worked_examples_print_what_the_document_shows() -> None:
    namespace: dict[str, object] = {}
    blocks = _BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    for number, code in enumerate(blocks, 1):
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(code, f"{DOC.name} block {number}", "exec"), namespace)
        printed = [" ".join(line.split()) for line in output.getvalue().splitlines()]
        expected = [" ".join(line.split()) for line in _expected_prints(code)]
        if expected != printed:
            pytest.fail(f"Block {number} printed {printed}, the document shows {expected}.")
