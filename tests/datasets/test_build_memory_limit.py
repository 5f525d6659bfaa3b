"""``sundstat build --memory-limit``: DuckDB's memory for the build is capped, a build under a limit
far below its working set spills and loads the same rows, and a limit that is not a size is refused."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from datasets.generate import generate
from service.cli import main


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "synthetic"
    generate(3000, 11, out, progress=False)
    return out


def _tables(db: Path) -> dict[str, tuple[int, int]]:
    """Per register table: row count and a checksum of its row keys."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()]
        return {
            n: con.sql(f'SELECT count(*), coalesce(sum(hash(row_key)), 0) FROM "{n}"').fetchall()[0]
            for n in names
            if n in {"cpr", "lpr", "lmdb", "dar", "ind", "udda"}
        }
    finally:
        con.close()


def test_a_build_far_below_its_working_set_loads_the_same_rows(raw: Path, tmp_path: Path) -> None:
    roomy, tight = tmp_path / "roomy.duckdb", tmp_path / "tight.duckdb"
    assert main(["build", str(raw), "--db", str(roomy)]) == 0
    assert main(["build", str(raw), "--db", str(tight), "--memory-limit", "24MB"]) == 0
    loaded = _tables(roomy)
    assert set(loaded) >= {"cpr", "lpr", "lmdb"} and loaded["lpr"][0] > 10_000
    assert _tables(tight) == loaded
    assert not list(tmp_path.glob("*.spill")), "the spill directory is removed after the build"


def test_a_memory_limit_that_is_not_a_size_is_refused(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.duckdb"
    assert main(["build", str(raw), "--db", str(db), "--memory-limit", "lots"]) == 2
    err = capsys.readouterr().err
    assert "The memory limit 'lots' is not a size" in err and "such as 4GB" in err
    assert not db.exists() and not list(tmp_path.iterdir())


def test_a_limit_below_what_the_build_needs_fails_cleanly_and_says_what_to_do(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1 MB is below DuckDB's smallest working set: the limit is really applied, and the failure
    tells the user to raise it; no database, temporary or spill file is left."""
    db = tmp_path / "x.duckdb"
    assert main(["build", str(raw), "--db", str(db), "--memory-limit", "1MB"]) == 2
    err = capsys.readouterr().err
    assert "out of memory" in err and "--memory-limit" in err
    assert not list(tmp_path.iterdir())
