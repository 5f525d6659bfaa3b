"""What ``sundstat serve`` checks and closes up at start: a damaged ledger is refused, spends a crash
left pending are settled, the state is private, and the dashboard and workers get no secrets they do
not need (read from /proc/<pid>/environ of the real processes)."""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from budget_ledger import Charge, Ledger, ProjectSpec, SqliteStore, load_or_create_audit_key
from service.cli import main
from tests.helpers.server_fixtures import ROOT, Server, free_port, spawn, wait_for
from tests.service.svc_helpers import ADMIN_TOKEN

AUDIT_KEY_HEX = secrets.token_hex(32)
PSEUDONYM_KEY_HEX = secrets.token_hex(32)
SECRETS = {
    "SUNDSTAT_ADMIN_TOKEN": ADMIN_TOKEN,
    "SUNDSTAT_AUDIT_KEY": AUDIT_KEY_HEX,
    "SUNDSTAT_PSEUDONYM_KEY": PSEUDONYM_KEY_HEX,
    "UNRELATED_CLOUD_SECRET": "do-not-pass-me-on",
}


def _ledger_with_spends(state_dir: Path, key: bytes, released: int, pending: int) -> list[str]:
    """A ledger in ``state_dir`` as a crashed server leaves it; returns the pending spends' ids."""
    ledger = Ledger(SqliteStore(state_dir / "ledger.sqlite"), key)
    spec = ProjectSpec(
        id="crashed",
        title="Left by a crash",
        purpose="research",
        registers=("cpr",),
        mode="pure",
        epsilon=100,
    )
    ledger.create_project(spec, "admin")
    pending_ids = []
    for i in range(released + pending):
        spent = ledger.reserve_and_commit(
            "crashed", ["cpr"], Charge(epsilon=Fraction(1, 10)), f"h{i}", f"q{i}", actor="a"
        )
        if i < released:
            ledger.store_release(spent.spend_id, f"r_{i}", json.dumps({"value": i, "pad": "x" * 400}))
        else:
            pending_ids.append(spent.spend_id)
    ledger.close()
    return pending_ids


def _serve_command(db: Path, state_dir: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "service.cli", "serve", "--db", str(db), "--state-dir", str(state_dir),
        "--port", str(port), "--log-level", "warning", "--no-access-log", *extra,
    ]  # fmt: skip


def test_serve_refuses_a_damaged_ledger_and_verify_says_broken(dataset: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    _ledger_with_spends(state_dir, load_or_create_audit_key(state_dir / "audit.key"), released=120, pending=0)
    ledger_file = state_dir / "ledger.sqlite"
    with ledger_file.open("r+b") as handle:  # 4,000 bytes overwritten mid-file
        handle.seek(ledger_file.stat().st_size // 2)
        handle.write(random.Random(3).randbytes(4000))
    command = _serve_command(dataset, state_dir, free_port(), "--no-dashboard")
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "damaged" in refused.stderr and "Backup and restore" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    verify = [sys.executable, "-m", "service.cli", "ledger", "verify", "--state-dir", str(state_dir)]
    checked = subprocess.run(verify, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1
    assert "BROKEN" in checked.stdout and "reason:" in checked.stdout
    assert "Traceback" not in checked.stdout + checked.stderr


@dataclass(frozen=True)
class Started:
    server: Server
    pending: list[str]
    dashboard_url: str


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


@pytest.fixture(scope="module")
def started(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    """``sundstat serve`` with the dashboard and 2 workers, on a state directory that a crash and an
    older version left behind: a spend without its release, files readable by everyone."""
    base = tmp_path_factory.mktemp("hardened")
    state_dir = base / "state"
    state_dir.mkdir()
    pending = _ledger_with_spends(state_dir, bytes.fromhex(AUDIT_KEY_HEX), released=2, pending=1)
    state_dir.chmod(0o755)
    for path in state_dir.iterdir():
        path.chmod(0o644)
    port, dashboard_port = free_port(), free_port()
    command = _serve_command(
        dataset, state_dir, port, "--workers", "2", "--dashboard-port", str(dashboard_port)
    )
    process = spawn(command, base / "serve.log", {**SECRETS, "SUNDSTAT_MIN_RESPONSE_SECONDS": "0"})
    server = Server(process.process, process.log, f"http://127.0.0.1:{port}", state_dir, dataset, ADMIN_TOKEN)
    try:
        wait_for(f"{server.url}/v1/health", server)
        dashboard_url = f"http://127.0.0.1:{dashboard_port}"
        wait_for(f"{dashboard_url}/_stcore/health", server)  # Streamlit's own ready state
        yield Started(server, pending, dashboard_url)
    finally:
        server.stop()


def test_the_dashboard_gets_only_allow_listed_variables(started: Started) -> None:
    dashboards = [p for p in _descendants(started.server.process.pid) if "streamlit" in _cmdline(p)]
    assert dashboards, "no streamlit process under serve"
    env = _environ(dashboards[0])
    assert not set(SECRETS) & set(env), sorted(set(SECRETS) & set(env))
    assert not [name for name in env if name.startswith("SUNDSTAT_") and name != "SUNDSTAT_API_URL"]
    assert env["SUNDSTAT_API_URL"] == started.server.url
    assert env["PATH"] == os.environ["PATH"]
    assert httpx.get(started.dashboard_url, timeout=30).status_code == 200


def test_workers_never_get_the_pseudonym_key(started: Started) -> None:
    workers = [p for p in _descendants(started.server.process.pid) if "streamlit" not in _cmdline(p)]
    assert workers, "no uvicorn worker processes under serve"
    for pid in workers:
        env = _environ(pid)
        assert "SUNDSTAT_PSEUDONYM_KEY" not in env, _cmdline(pid)
    assert any(_environ(pid).get("SUNDSTAT_AUDIT_KEY") == AUDIT_KEY_HEX for pid in workers)  # still needed


def test_the_state_directory_and_its_files_are_private(started: Started) -> None:
    state_dir = started.server.state_dir
    assert state_dir.stat().st_mode & 0o777 == 0o700
    files = {p.name: p.stat().st_mode & 0o777 for p in state_dir.iterdir() if p.is_file()}
    assert {"ledger.sqlite", "service.sqlite", "ledger.checkpoint"} <= set(files)
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}


def test_a_spend_left_pending_is_failed_at_start_still_charged(
    started: Started, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNDSTAT_AUDIT_KEY", AUDIT_KEY_HEX)
    assert main(["ledger", "verify", "--state-dir", str(started.server.state_dir)]) == 0
    printed = capsys.readouterr().out
    assert "pending:     0" in printed and "interrupted: 1" in printed
    assert started.pending[0] in printed
    assert f"marked failed, still charged: {started.pending[0]}" in started.server.output()
    budget = httpx.get(
        f"{started.server.url}/v1/projects/crashed/budget",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert budget.status_code == 200, budget.text
    assert budget.json()["epsilon_spent"] == pytest.approx(0.3)  # 3 spends of 0.1: no refund


def test_serve_refuses_a_passphrase_as_pseudonym_key(tmp_path: Path) -> None:
    from service.serve_checks import check_serving
    from service.settings import Settings, SettingsError

    weak = Settings(state_dir=tmp_path / "state", pseudonym_key="passwordpassword")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="SUNDSTAT_PSEUDONYM_KEY.*secrets.token_hex") as refused:
        check_serving(weak, need_db=False)
    assert "passwordpassword" not in str(refused.value)
    check_serving(Settings(state_dir=tmp_path / "state", pseudonym_key=PSEUDONYM_KEY_HEX), need_db=False)  # type: ignore[arg-type]
