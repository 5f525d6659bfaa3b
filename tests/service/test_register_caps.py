"""Population budget per register, against real servers: default caps from the first start, caps that
mean what they publish, the review's two findings, and automatic approval refused without caps.

Each test starts its own ``sundstat serve`` on a fresh state directory (the shared server's registers
carry other tests' spending), with the documented defaults: no cap setting is overridden.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from budget_ledger import Ledger, MemoryStore, SqliteStore, load_or_create_audit_key
from service.bootstrap import apply_default_caps, check_auto_approval_caps, uncapped_registers
from service.cli import build_parser
from service.settings import Settings, SettingsError
from tests.service.svc_helpers import (
    ADMIN_TOKEN,
    Server,
    admin_client,
    assert_error,
    bearer,
    create_project,
    start_server,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EPSILON, DEFAULT_DELTA = 20.0, 1e-7


@pytest.fixture
def fresh(dataset: Path, tmp_path: Path) -> Iterator[Server]:
    """A server on a fresh state directory with the default population budget."""
    with start_server(dataset, tmp_path / "state", workers=1) as running:
        yield running


@pytest.fixture
def admin(fresh: Server) -> Iterator[httpx.Client]:
    with admin_client(fresh) as client:
        yield client


def _project(admin: httpx.Client, project_id: str, registers: list[str], **budget: Any) -> dict[str, str]:
    body = {
        "id": project_id,
        "title": f"Project {project_id}",
        "purpose": "research",
        "registers": registers,
        "mode": "pure",
        "epsilon": 50.0,
        "delta": 0.0,
        **budget,
    }
    return bearer(create_project(admin, body, token_name="analyst"))


def _registers(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {r["register"]: r for r in client.get("/v1/transparency").json()["registers"]}


def _charged(value: float) -> Fraction:
    """What the ledger charges for a float loss: the larger of its exact and its typed value."""
    return max(Fraction(value), Fraction(repr(value)))


def _audit_caps(server: Server) -> list[tuple[str, str, str]]:
    """(register, actor, reason) of every cap entry in the server's audit chain, read from the ledger."""
    store = SqliteStore(server.state_dir / "ledger.sqlite")
    try:
        ledger = Ledger(store, load_or_create_audit_key(server.state_dir / "audit.key"))
        return [
            (e.payload["register"], e.actor, e.payload["reason"])
            for e in ledger.audit_entries()
            if e.kind == "register_cap_set"
        ]
    finally:
        store.close()


def test_a_fresh_state_dir_caps_every_register_and_transparency_shows_it(
    fresh: Server, admin: httpx.Client, dataset: Path, tmp_path: Path
) -> None:
    catalog = {r["name"] for r in admin.get("/v1/catalog").json()["registers"]}
    report = httpx.get(f"{fresh.url}/v1/transparency").json()  # public: no token
    assert "total privacy loss" in report["promise"]
    registers = {r["register"]: r for r in report["registers"]}
    assert set(registers) == catalog and len(catalog) >= 6
    for name, row in registers.items():
        assert row["cap_unit"] == "epsilon_delta"
        assert (row["cap_epsilon_requested"], row["cap_delta_requested"]) == (DEFAULT_EPSILON, DEFAULT_DELTA)
        assert row["cap_delta"] == DEFAULT_DELTA / 2 and 4 < row["cap_rho"] < 4.3
        assert row["rho_spent"] == 0 and row["epsilon_equivalent_spent"] == 0
        assert row["epsilon_remaining"] <= DEFAULT_EPSILON
        assert f"Everyone in '{name}'" in row["promise"] and "epsilon = 20, delta = 1e-7" in row["promise"]
    entries = _audit_caps(fresh)
    assert sorted(r for r, _, _ in entries) == sorted(catalog)
    assert all(
        actor == "system" and reason.startswith("default population budget") for _, actor, reason in entries
    )

    # An administrator's cap is kept over restarts; no register gets a second default.
    assert (
        admin.put(
            "/v1/registers/lpr/cap", json={"epsilon": 5.0, "delta": 1e-6, "reason": "board"}
        ).status_code
        == 200
    )
    fresh.stop()
    with start_server(dataset, fresh.state_dir, workers=1) as again:
        after = _registers(httpx.Client(base_url=again.url))
        assert after["lpr"]["cap_epsilon_requested"] == 5.0 and after["cpr"]["cap_epsilon_requested"] == 20.0
        assert len(_audit_caps(again)) == len(catalog) + 1


def test_review_finding_a_pure_cap_admits_only_its_sum_of_epsilon(fresh: Server, admin: httpx.Client) -> None:
    """Cap (1, 0), then 100 queries at epsilon 0.1: the old ledger admitted all 100 (sum 10)."""
    analyst = _project(admin, "review-1", ["cpr"])
    capped = admin.put("/v1/registers/cpr/cap", json={"epsilon": 1.0, "delta": 0.0, "reason": "review"})
    assert capped.status_code == 200 and capped.json()["cap_unit"] == "epsilon"
    query = {"project": "review-1", "measure": "count_persons", "group_by": ["cpr.sex"], "epsilon": 0.1}
    charge = _charged(
        admin.post("/v1/queries/preview", json=query, headers=analyst).json()["loss"]["epsilon"]
    )
    codes = []
    for i in range(100):
        response = admin.post("/v1/queries", json={**query, "confidence": 0.5 + i / 1000}, headers=analyst)
        codes.append(response.status_code)
        if response.status_code != 200:
            body = assert_error(response, 403, "budget_exceeded")
            assert "register 'cpr'" in body["error"]
    admitted = codes.count(200)
    assert admitted == math.floor(1 / charge) and admitted in (9, 10)  # 10 x 0.1 exactly, or 9 if rounded up
    assert codes == [200] * admitted + [403] * (100 - admitted)
    cpr = _registers(admin)["cpr"]
    assert cpr["epsilon_spent"] <= 1.0 and cpr["epsilon_remaining"] < charge and cpr["spends"] == admitted
    assert "epsilon = 1 about them" in cpr["promise"]

    gaussian = _project(admin, "review-2", ["cpr"], mode="zcdp", epsilon=5.0, delta=1e-6)
    rho_query = {"project": "review-2", "measure": "count_persons", "group_by": ["cpr.sex"], "rho": 0.001}
    body = assert_error(
        admin.post("/v1/queries", json=rho_query, headers=gaussian), 403, "register_cap_pure_only"
    )
    assert "discrete Laplace" in body["error"]


def test_review_finding_averaging_over_many_projects_stops_at_the_default_cap(
    fresh: Server, admin: httpx.Client
) -> None:
    """Many projects, each asking the same count once: the register's default cap ends it."""
    query = {"measure": "count_persons", "group_by": ["lpr.contact_type"], "epsilon": 1.0}
    caps = _registers(admin)
    codes, preview_charge = [], None
    for k in range(12):
        analyst = _project(admin, f"crowd-{k}", ["cpr", "lpr"], epsilon=1.0)
        if preview_charge is None:
            preview = admin.post("/v1/queries/preview", json={**query, "project": "crowd-0"}, headers=analyst)
            preview_charge = _charged(preview.json()["loss"]["epsilon"])
        response = admin.post("/v1/queries", json={**query, "project": f"crowd-{k}"}, headers=analyst)
        codes.append(response.status_code)
        if response.status_code != 200:
            assert "global cap" in assert_error(response, 403, "budget_exceeded")["error"]
    assert preview_charge is not None
    touched = [name for name, row in _registers(admin).items() if row["spends"] > 0]
    assert "lpr" in touched
    cap_rho = min(Fraction(caps[name]["cap_rho"]) for name in touched)
    expected = math.floor(cap_rho / (preview_charge**2 / 2))
    assert expected == 8 and codes == [200] * expected + [403] * (12 - expected)
    for name, row in _registers(admin).items():
        assert row["rho_spent"] <= row["cap_rho"] and row["epsilon_equivalent_spent"] <= DEFAULT_EPSILON, name


def test_a_cap_change_is_an_administrator_action_with_a_reason(fresh: Server, admin: httpx.Client) -> None:
    analyst = _project(admin, "reader", ["cpr"])
    assert_error(
        admin.put("/v1/registers/cpr/cap", json={"epsilon": 30.0, "delta": 1e-7}), 422, "invalid_request"
    )
    refused = httpx.put(
        f"{fresh.url}/v1/registers/cpr/cap", json={"epsilon": 30.0, "reason": "me"}, headers=analyst
    )
    assert_error(refused, 403, "forbidden")
    assert_error(
        httpx.put(f"{fresh.url}/v1/registers/cpr/cap", json={"epsilon": 30.0, "reason": "x"}),
        401,
        "unauthorized",
    )
    raised = admin.put(
        "/v1/registers/cpr/cap", json={"epsilon": 30.0, "delta": 1e-7, "reason": "ethics board 2026-12"}
    )
    assert raised.status_code == 200 and raised.json()["cap_epsilon_requested"] == 30.0
    assert ("cpr", "admin", "ethics board 2026-12") in [
        (r, a.split(":")[0], why) for r, a, why in _audit_caps(fresh)
    ]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["admin", "set-cap", "cpr", "--epsilon", "30"])  # --reason is required


# --- automatic approval needs caps ----------------------------------------------------------------


def test_serve_refuses_automatic_approval_without_caps(dataset: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SUNDSTAT_ADMIN_TOKEN": ADMIN_TOKEN,
        "SUNDSTAT_DEFAULT_REGISTER_CAP_EPSILON": "none",
    }
    command = [sys.executable, "-m", "service.cli", "serve", "--no-dashboard", "--db", str(dataset)]
    command += ["--state-dir", str(tmp_path / "state"), "--port", "0"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "automatic approval" in done.stderr and "SUNDSTAT_DEFAULT_REGISTER_CAP_EPSILON" in done.stderr


def test_auto_approval_check_names_the_uncapped_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("SUNDSTAT_")]:
        monkeypatch.delenv(name)
    ledger = Ledger(MemoryStore(), b"k" * 32)
    catalog = ("cpr", "lpr", "lmdb")
    off = Settings(default_register_cap_epsilon=0)
    assert off.default_register_cap is None and apply_default_caps(ledger, catalog, off) == []
    with pytest.raises(SettingsError, match="cpr, lmdb, lpr, which have no register cap"):
        check_auto_approval_caps(ledger, off, catalog)
    check_auto_approval_caps(ledger, Settings(policy_allowed_purposes=[]), catalog)  # nothing automatic
    check_auto_approval_caps(ledger, Settings(policy_allowed_registers=["dar"]), catalog)  # not served
    ledger.set_register_cap("lpr", epsilon=2, delta=0, reason="board", actor="admin")
    assert apply_default_caps(ledger, catalog, Settings()) == ["cpr", "lmdb"]
    assert uncapped_registers(ledger, catalog) == []
    check_auto_approval_caps(ledger, Settings(), catalog)
    monkeypatch.setenv("SUNDSTAT_DEFAULT_REGISTER_CAP_EPSILON", "none")
    assert Settings().default_register_cap is None
