"""An installation may hold only some registers: ``sundstat build`` on a directory with cpr, lpr and
lmdb only, and a real server on the result. The catalog lists only what is loaded; a JSON or SQL
query, a project or an application naming another register is refused with a clear 422; only
loaded registers get default caps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from datasets.build import BuildError, build, open_catalog_from_db
from datasets.generate import generate
from tests.service.svc_helpers import ADMIN_TOKEN, Server, bearer, create_project, start_server

LOADED = ("cpr", "lmdb", "lpr")
ABSENT = ("dar", "ind", "udda")


@pytest.fixture(scope="module")
def subset_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("subset")
    raw = base / "raw"
    generate(800, 7, raw, progress=False)
    for name in ABSENT:
        (raw / f"{name}.parquet").unlink()
    report = build(raw, base / "subset.duckdb")
    return report.db, report.describe()


@pytest.fixture(scope="module")
def subset_server(subset_db: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(subset_db[0], tmp_path_factory.mktemp("subset-state") / "state") as running:
        yield running


def test_build_loads_a_subset_and_says_what_is_not_loaded(subset_db: tuple[Path, str]) -> None:
    db, described = subset_db
    catalog = open_catalog_from_db(db)
    assert sorted(catalog.register_names) == list(LOADED)
    assert catalog.absent_registers == ABSENT
    assert "Not loaded (no file): dar, ind, udda" in described


def test_the_person_register_stays_required(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate(200, 3, raw, progress=False)
    (raw / "cpr.parquet").unlink()
    with pytest.raises(BuildError, match="the person register cpr has no file"):
        build(raw, tmp_path / "out.duckdb")
    assert not (tmp_path / "out.duckdb").exists()


def test_catalog_and_caps_show_only_loaded_registers(subset_server: Server) -> None:
    with httpx.Client(base_url=subset_server.url, timeout=60) as http:
        catalog = http.get("/v1/catalog").json()
        assert sorted(r["name"] for r in catalog["registers"]) == list(LOADED)
        transparency = http.get("/v1/transparency").json()
    capped = sorted(r["register"] for r in transparency["registers"] if r.get("cap_unit"))
    assert capped == list(LOADED)


def test_queries_naming_a_missing_register_get_register_not_loaded(subset_server: Server) -> None:
    admin = bearer(ADMIN_TOKEN)
    with httpx.Client(base_url=subset_server.url, timeout=60) as http:
        body = {
            "id": "subset-1", "title": "Subset", "purpose": "research", "registers": list(LOADED),
            "mode": "pure", "epsilon": 2.0, "delta": 0.0, "expires": None,
        }  # fmt: skip
        analyst = bearer(create_project(http, body, token_name="a", headers=admin))
        json_query = {"project": "subset-1", "measure": "count_rows", "register": "dar", "epsilon": 0.5}
        sql_query = {"project": "subset-1", "sql": "SELECT COUNT(*) FROM dar", "epsilon": 0.5}
        for path, query in (
            ("/v1/queries", json_query),
            ("/v1/sql", sql_query),
            ("/v1/queries/preview", json_query),
        ):
            answer = http.post(path, json=query, headers=analyst)
            assert answer.status_code == 422, answer.text
            error = answer.json()
            assert error["code"] == "register_not_loaded", error
            assert (
                "Register 'dar' is not loaded in this installation; loaded: cpr, lpr, lmdb" in error["error"]
            )
        fine = http.post("/v1/queries/preview", json={**json_query, "register": "lpr"}, headers=analyst)
        assert fine.status_code == 200, fine.text
        project = http.post(
            "/v1/projects", json={**body, "id": "subset-2", "registers": ["cpr", "dar"]}, headers=admin
        )
        assert project.status_code == 422 and "Register 'dar' is not loaded" in project.json()["error"]
        application = http.post(
            "/v1/applications",
            json={
                "title": "Deaths", "purpose": "research", "institution": "KU", "summary": "Causes of death.",
                "registers": ["cpr", "dar"], "epsilon": 0.5, "delta": 0, "duration_days": 30,
                "applicant": {"name": "A", "email": "a@ku.dk"},
            },
        )  # fmt: skip
        assert (
            application.status_code == 422 and "Register 'dar' is not loaded" in application.json()["error"]
        )
