"""`sundstat build` loses nothing silently: above the reject limit it fails, says why, keeps the old database."""

# ruff: noqa: F811  (the fixtures imported from test_build are redefined as test parameters)
from __future__ import annotations

from pathlib import Path

import pytest

from datasets.build import RejectsAboveLimit, build
from datasets.reject_policy import RejectPolicy
from service.cli import main
from tests.datasets.test_build import (  # noqa: F401  (fixtures)
    LPR_GOOD,
    LPR_HEADER,
    _person_tables,
    catalog,
    catalog_dir,
    out,
    raw,
    rejects,
    write_csv_text,
    write_registers,
    yaml_catalog_dir,
)


def _foreign_codes(raw: Path) -> None:
    """Another system's files: three quarters of the persons with municipality codes outside the key
    set (so their contacts and prescriptions go too), and one ICD-10 code outside it."""
    tables = _person_tables()
    cpr = tables["cpr"]
    cpr["municipality"] = ["0" + code if i % 4 else code for i, code in enumerate(cpr["municipality"])]
    tables["lpr"]["icd10"][1] = "E1"
    write_registers(raw, {"cpr": cpr, "lpr": tables["lpr"]})


def test_losing_persons_fails_with_the_reasons_and_keeps_the_old_database(
    raw: Path, out: Path, catalog_dir: Path
) -> None:
    db = out / "db.duckdb"
    build(raw, db, catalog_dir=catalog_dir)
    before = db.read_bytes()
    _foreign_codes(raw)
    with pytest.raises(RejectsAboveLimit) as stopped:
        build(raw, db, catalog_dir=catalog_dir)
    message = str(stopped.value)
    assert message.startswith("Rejected rows (allowed: no rejected person (cpr row)")
    assert "cpr: 22 of 30 rows rejected (73.33%)  ABOVE THE LIMIT" in message
    assert "municipality: 22 rows: not in the public key set municipalities" in message
    assert "icd10: 1 row: not in the public key set icd10" in message
    assert "person_id" in message and "not in the loaded cpr register" in message  # the cascade
    assert str(out / "cpr.rejects.csv") in message and str(out / "lpr.rejects.csv") in message
    assert "previous database" in message and "--allow-rejects" in message
    assert db.read_bytes() == before
    assert len(rejects(out / "cpr.rejects.csv")) == 22
    assert sorted(p.name for p in out.iterdir() if ".tmp-" in p.name) == []


def test_allow_rejects_loads_the_rest_and_prints_the_summary_first(
    raw: Path, out: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _foreign_codes(raw)
    args = ["build", str(raw), "--db", str(out / "db.duckdb"), "--catalog", str(catalog_dir)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: Rejected rows")
    assert f"{out / 'db.duckdb'} was not written" in captured.err
    assert not (out / "db.duckdb").exists()
    assert main([*args, "--allow-rejects"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Rejected rows (allowed: rejects accepted (--allow-rejects)):")
    assert "municipality: 22 rows" in printed and "Built " in printed
    assert (out / "db.duckdb").stat().st_mode & 0o777 == 0o600


def test_the_limit_is_per_register_and_can_be_raised(raw: Path, out: Path, catalog_dir: Path) -> None:
    lpr_rows = len(_person_tables()["lpr"]["person_id"])
    bad = LPR_GOOD.replace("E11", "X99")
    write_csv_text(raw, "lpr", LPR_HEADER, [LPR_GOOD] * (lpr_rows - 1) + [bad])
    db = out / "db.duckdb"
    with pytest.raises(RejectsAboveLimit, match=r"lpr: 1 of \d+ rows rejected .*ABOVE THE LIMIT"):
        build(raw, db, catalog_dir=catalog_dir)  # 1 of ~60 rows: above 0.1%
    report = build(raw, db, catalog_dir=catalog_dir, policy=RejectPolicy(max_reject_rate=0.05))
    assert report.register("lpr").rows_rejected == 1
    assert report.describe().startswith("Rejected rows (allowed: at most 5% of each register's rows")
    with pytest.raises(RejectsAboveLimit):
        build(raw, db, catalog_dir=catalog_dir, policy=RejectPolicy(max_reject_rate=0.01))


def test_the_cli_refuses_a_rate_outside_zero_to_one(raw: Path, out: Path) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["build", str(raw), "--db", str(out / "db.duckdb"), "--max-reject-rate", "5"])
    assert refused.value.code == 2
