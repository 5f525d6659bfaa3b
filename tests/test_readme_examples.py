"""The README's examples run as written, against a real server on a small synthetic dataset.

Every fenced code block of README.md is either marked runnable with an HTML comment on the line
before it (``<!-- readme-test: NAME -->``) or listed in ``SKIPPED`` with the reason; a new block that
is neither fails ``test_every_block_is_run_or_skipped_with_a_reason``.

The runnable blocks run against ``sundstat serve`` (tests/helpers/server_fixtures.py) on 3,000
synthetic persons, with these substitutions of the README's placeholders, and nothing else:

- ``http://127.0.0.1:8000`` -> the test server's URL (``SUNDSTAT_API_URL`` is set to it as well, for
  ``sundstat admin``);
- ``sst_analyst_...`` -> the demo analyst token the first start wrote to ``first-start-tokens.txt``;
- ``sst_admin_...`` -> the administrator token;
- ``data/sundstat-100000-20261128.duckdb`` -> the test database.

``sh`` blocks run in ``bash -euo pipefail`` with ``.venv/bin`` first on ``PATH`` (as after
``source .venv/bin/activate``), ``python`` blocks with this interpreter, each in an empty directory;
``sql`` blocks run statement by statement through ``POST /v1/sql`` in the demo project at epsilon 0.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.server_fixtures import ROOT, Server, build_dataset, start_server

README = ROOT / "README.md"
README_URL = "http://127.0.0.1:8000"
README_DB = "data/sundstat-100000-20261128.duckdb"
ADMIN_TOKEN = "sst_admin_readme_examples_token_0123456789abcdef"

# First line of each block that does not run here, and why.
SKIPPED = {
    "make run    # installs what serving needs": "installs packages and system software and starts servers",
    "sundstat is starting": "the output of make run, not a command",
    "sundstat generate --persons 100000": "a reference list of commands; serve runs until stopped, "
    "generate and build are tested in tests/datasets and the admin commands in tests/service",
    "export SUNDSTAT_PSEUDONYM_KEY=$(cat /secure/pseudonym.key)": "needs real register files and a "
    "secret key; the same build on generated files is tested in tests/datasets",
    ".venv/bin/python -m benchmarks.generate --persons 1000000": "benchmarks at national scale take "
    "minutes each; they are not tests",
    "query_engine/   catalog, query spec": "the repository layout, not a command",
}


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    language: str
    text: str
    name: str | None  # from <!-- readme-test: NAME -->
    line: int

    @property
    def first_line(self) -> str:
        return self.text.strip().splitlines()[0]


def readme_blocks() -> list[Block]:
    """Every fenced block of README.md, with its marker if it has one."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[index])
        if fence is None:
            index += 1
            continue
        start = index
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        before = lines[start - 1] if start > 0 else ""
        marker = re.match(r"^<!-- readme-test: ([\w-]+) -->$", before)
        text = "\n".join(lines[start + 1 : end]) + "\n"
        blocks.append(Block(fence.group(1), text, marker.group(1) if marker else None, start + 1))
        index = end + 1
    return blocks


def test_every_block_is_run_or_skipped_with_a_reason() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 8
    unaccounted = [
        f"README.md:{b.line} ({b.first_line!r})"
        for b in blocks
        if b.name is None and not any(b.first_line.startswith(key) for key in SKIPPED)
    ]
    assert not unaccounted, (
        "mark these blocks <!-- readme-test: NAME --> or add them to SKIPPED:\n" + "\n".join(unaccounted)
    )
    stale = [key for key in SKIPPED if not any(b.first_line.startswith(key) for b in blocks)]
    assert not stale, f"SKIPPED names blocks that are no longer in the README: {stale}"
    assert {b.name for b in blocks if b.name} == set(CHECKS), "every marked block needs a check below"


@dataclass
class Live:
    """The test server and what the examples are substituted with."""

    server: Server
    demo_token: str
    work: Path

    def substitute(self, text: str) -> str:
        return (
            text.replace(README_URL, self.server.url)
            .replace("sst_analyst_...", self.demo_token)
            .replace("sst_admin_...", ADMIN_TOKEN)
            .replace(README_DB, str(self.server.db))
        )

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "SUNDSTAT_API_URL": self.server.url,
        }

    def run(self, block: Block) -> str:
        text = self.substitute(block.text)
        if block.language == "sh":
            command = ["bash", "-euo", "pipefail", "-c", text]
        else:
            command = [sys.executable, "-c", text]
        done = subprocess.run(
            command, cwd=self.work, env=self.env(), capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"README.md:{block.line} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    directory = tmp_path_factory.mktemp("readme")
    db = build_dataset(directory, persons=3000)
    with start_server(db, directory / "state", admin_token=ADMIN_TOKEN) as server:
        tokens = (directory / "state" / "first-start-tokens.txt").read_text(encoding="utf-8")
        demo = re.search(r"sst_analyst_\S+", tokens)
        assert demo is not None, tokens
        work = directory / "work"
        work.mkdir()
        yield Live(server, demo.group(0), work)


def _check_http(live: Live, block: Block) -> None:
    release = json.loads(live.run(block))
    assert release["project"] == "demo" and release["privacy"]["epsilon"] == pytest.approx(0.5, rel=1e-9)
    assert len(release["rows"]) == release["cells"] > 1


def _check_python_client(live: Live, block: Block) -> None:
    half_width, rows = live.run(block).splitlines()
    assert float(half_width) > 0  # a mean's preview states a half-width, not None
    assert "ci_low" in rows and "'cpr.sex'" in rows


def _check_sql(live: Live, block: Block) -> None:
    statements = [s.strip() for s in re.split(r"\n(?=SELECT )", block.text) if s.strip()]
    assert len(statements) >= 4
    with httpx.Client(base_url=live.server.url, timeout=60) as http:
        for sql in statements:
            answer = http.post(
                "/v1/sql",
                json={"project": "demo", "sql": sql, "epsilon": 0.1},
                headers={"Authorization": f"Bearer {live.demo_token}"},
            )
            assert answer.status_code == 200, f"{sql}\n-> {answer.text}"
            assert answer.json()["rows"], sql


def _check_apply(live: Live, block: Block) -> None:
    answer = json.loads(live.run(block).strip().splitlines()[-1])
    assert answer["status"] == "approved" and answer["route"] == "auto", answer
    assert answer["token"].startswith("sst_analyst_")


def _check_engine(live: Live, block: Block) -> None:
    printed = live.run(block)
    assert "loss=" in printed and "expected_half_width=" in printed


def _demo_budget_for(live: Live, epsilon: float) -> None:
    """Raise the demo project's budget by ``epsilon`` (the examples before used most of its 2.0)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=live.server.url, timeout=60, headers=admin) as http:
        total = http.get("/v1/projects/demo/budget").json()["epsilon_total"]
        raised = http.put(
            "/v1/projects/demo/budget",
            json={"epsilon": total + epsilon, "delta": 0.0, "reason": "README examples"},
        )
        assert raised.status_code == 200, raised.text


def _check_cohort_json(live: Live, block: Block) -> None:
    _demo_budget_for(live, 0.3)
    release = json.loads(live.run(block))
    assert release["query"]["cohort"]["name"] == "first-mi" and release["query"]["measure"] == "rate"
    assert {row["cpr.sex"] for row in release["rows"]} == {"F", "M"}
    for row in release["rows"]:
        assert {"events", "person_years", "rate", "noise_ci_low", "sampling_ci_high"} <= set(row)


def _check_cohort_client(live: Live, block: Block) -> None:
    _demo_budget_for(live, 0.6)
    printed = live.run(block)
    for column in ("crude_rate", "survival", "median_years", "index_register"):
        assert column in printed, printed
    assert "first-mi" in printed and "lpr" in printed


def _check_models_client(live: Live, block: Block) -> None:
    _demo_budget_for(live, 1.0)
    printed = live.run(block)
    assert "cpr.sex=M" in printed and "naive_ci_low" in printed
    assert "cohort.age" in printed and "cpr.sex = F" in printed


CHECKS: dict[str, Callable[[Live, Block], None]] = {
    "http": _check_http,
    "python-client": _check_python_client,
    "sql": _check_sql,
    "apply": _check_apply,
    "engine": _check_engine,
    "cohort-json": _check_cohort_json,
    "cohort-client": _check_cohort_client,
    "models-client": _check_models_client,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_readme_example_runs(live: Live, name: str) -> None:
    (block,) = [b for b in readme_blocks() if b.name == name]
    CHECKS[name](live, block)
