"""Out-of-core: with a memory limit far below a query's working set, DuckDB spills and answers exactly.

A 40,000-person database from the real generator at national volume (about a million contacts); the
bounded sum of the bed days of all contacts by region and ICD-10 chapter (two window sorts over every
contact, a join to the persons) needs more than 64 MB. (A bounded row count no longer sorts every row,
see query_engine/compile.py, so its working set is too small to show spilling.)
The test shows that it does (with spilling disabled the same query fails for lack of memory), then
that the backend with the same limit and a temporary directory returns the very table it returns
with 2 GB, spilling into a private directory that is gone afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from query_engine.backends.duckdb_backend import DuckDBBackend, private_spill_dir
from query_engine.compile import CompiledQuery
from query_engine.engine import Engine
from query_engine.errors import ExecutionFailed
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query

LIMIT = "64MB"
QUERY = {
    "project": "p",
    "rho": 0.5,
    "measure": "sum",
    "register": "lpr",
    "column": "los_days",
    "bounds": [0, 60],
    "group_by": ["cpr.region", "lpr.icd10_chapter"],
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datasets.build import build
    from datasets.generate import generate

    base = tmp_path_factory.mktemp("spill")
    generate(40_000, 5, base / "raw", progress=False, volume="national")
    build(base / "raw", base / "sundstat.duckdb")
    return base / "sundstat.duckdb"


@pytest.fixture(scope="module")
def compiled_and_expected(database: Path) -> Iterator[tuple[CompiledQuery, dict[str, list[Any]]]]:
    with Engine.open(database, EngineSettings(memory_limit="2GB")) as engine:
        compiled = engine.compiled(parse_query(QUERY), ProjectContext("zcdp"), "duckdb")
        table = engine.backend.execute(compiled)
    yield compiled, {name: table.column(name).to_pylist() for name in table.column_names}


def test_the_limit_is_below_the_working_set(database: Path, compiled_and_expected: Any) -> None:
    compiled, _ = compiled_and_expected
    config = {"temp_directory": "", "memory_limit": LIMIT, "threads": 2}
    con = duckdb.connect(str(database), read_only=True, config=config)
    try:
        with pytest.raises(duckdb.OutOfMemoryException):
            con.sql(compiled.sql, params=list(compiled.params)).fetchall()
    finally:
        con.close()


def test_spilling_gives_the_exact_answer(database: Path, compiled_and_expected: Any, tmp_path: Path) -> None:
    compiled, expected = compiled_and_expected
    assert sum(expected["s"]) > 100_000
    temp = tmp_path / "duckdb-tmp"
    backend = DuckDBBackend(database, memory_limit=LIMIT, threads=2, temp_dir=temp)
    try:
        assert (temp / f"pid-{os.getpid()}").is_dir()
        table = backend.execute(compiled)
        # Opening with a temporary directory still locks everything down.
        for statement in ("SET temp_directory = '/tmp'", "SELECT * FROM read_csv('/etc/passwd')"):
            with pytest.raises(ExecutionFailed):
                backend.execute(CompiledQuery(statement, (), "duckdb"))
    finally:
        backend.close()
    assert {name: table.column(name).to_pylist() for name in table.column_names} == expected
    assert list(temp.iterdir()) == []  # DuckDB's files and the private directory are gone
    assert not Path(f"{database}.tmp").exists()  # nothing written next to the database


def test_engine_settings_reach_the_backend(
    database: Path, compiled_and_expected: Any, tmp_path: Path
) -> None:
    compiled, expected = compiled_and_expected
    settings = EngineSettings(memory_limit=LIMIT, temp_dir=str(tmp_path / "spill"))
    with Engine.open(database, settings) as engine:
        table = engine.backend.execute(compiled)
    assert {name: table.column(name).to_pylist() for name in table.column_names} == expected


def test_a_dead_process_spill_directory_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / "pid-999999999"  # above Linux's largest pid: no such process
    stale.mkdir()
    (stale / "duckdb_temp_block-1.block").write_bytes(b"x")
    other = tmp_path / "unrelated"
    other.mkdir()
    own = private_spill_dir(tmp_path)
    assert own == tmp_path / f"pid-{os.getpid()}" and own.is_dir()
    assert not stale.exists() and other.is_dir()
    assert own.stat().st_mode & 0o077 == 0
