"""The service's CLI: --help everywhere, admin commands through the API, offline ledger verify."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from pydantic import SecretStr

from service.cli import build_parser, main
from tests.service.svc_helpers import ADMIN_TOKEN, Server, cli_commands

COMMANDS = list(cli_commands(build_parser()))


def test_the_service_commands_exist() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {
        "serve",
        "ledger verify",
        "admin create-project",
        "admin set-budget",
        "admin create-token",
    } <= names
    assert {"admin revoke-token", "admin list-projects", "admin applications", "admin approve"} <= names
    assert {"admin reject", "admin set-cap"} <= names


@pytest.mark.parametrize("command", [pytest.param(c, id=" ".join(c)) for c in COMMANDS])
def test_every_command_answers_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: sundstat" in capsys.readouterr().out


def _admin(server: Server, capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code = main(["admin", *args, "--json", "--api", server.url, "--token", ADMIN_TOKEN])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_admin_commands_against_the_server(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    project = f"cli-{uuid.uuid4().hex[:6]}"
    created = _admin(
        server,
        capsys,
        "create-project",
        project,
        "--title",
        "CLI",
        "--purpose",
        "research",
        "--registers",
        "cpr,lpr",
        "--epsilon",
        "1.5",
        "--expires",
        "2099-01-01",
        "--permit-id",
        f"SDS-{project}",
    )
    assert isinstance(created, dict) and created["budget"]["epsilon_total"] == 1.5
    assert created["permit_id"] == f"SDS-{project}"
    budget = _admin(server, capsys, "set-budget", project, "--epsilon", "2", "--reason", "more")
    assert isinstance(budget, dict) and budget["epsilon_total"] == 2.0
    token = _admin(server, capsys, "create-token", project, "--name", "cli analyst")
    assert isinstance(token, dict) and token["token"].startswith("sst_analyst_")
    listed = _admin(server, capsys, "list-tokens", project)
    assert isinstance(listed, list) and token["id"] in {t["id"] for t in listed}
    revoked = _admin(server, capsys, "revoke-token", token["id"])
    assert isinstance(revoked, dict) and revoked["active"] is False
    projects = _admin(server, capsys, "list-projects")
    assert isinstance(projects, list) and project in {p["id"] for p in projects}
    cap = _admin(server, capsys, "set-cap", "ind", "--epsilon", "1000", "--reason", "cli")
    assert isinstance(cap, dict) and cap["register"] == "ind"
    verified = _admin(server, capsys, "verify")
    assert isinstance(verified, dict) and verified["ok"] is True


def test_admin_approve_and_reject(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    application = {
        "title": "CLI application",
        "purpose": "policy",
        "institution": "DST",
        "summary": "s",
        "registers": ["cpr"],
        "epsilon": 0.5,
        "delta": 0.0,
        "duration_days": 30,
        "applicant": {"name": "A", "email": "a@example.dk"},
    }
    ids = [httpx.post(f"{server.url}/v1/applications", json=application).json()["id"] for _ in range(2)]
    pending = _admin(server, capsys, "applications", "--status", "pending")
    assert isinstance(pending, list) and set(ids) <= {a["id"] for a in pending}
    approved = _admin(server, capsys, "approve", ids[0], "--epsilon", "0.4")
    assert (
        isinstance(approved, dict) and approved["status"] == "approved" and approved["granted_epsilon"] == 0.4
    )
    rejected = _admin(server, capsys, "reject", ids[1], "--reason", "Not a policy question.")
    assert isinstance(rejected, dict) and rejected["status"] == "rejected"


def test_admin_errors_are_reported(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["admin", "list-projects", "--api", server.url, "--token", "sst_admin_wrong"])
    assert code == 1 and "401 unauthorized" in capsys.readouterr().err


def test_ledger_verify_offline(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    head = httpx.get(f"{server.url}/v1/transparency").json()["ledger"]
    assert main(["ledger", "verify", "--state-dir", str(server.state_dir)]) == 0
    assert "OK" in capsys.readouterr().out
    published = ["--expected-head", head["head_hash"], "--expected-count", str(head["entries"])]
    assert main(["ledger", "verify", "--state-dir", str(server.state_dir), *published]) == 0
    capsys.readouterr()
    wrong = ["--expected-head", "ab" * 32]
    assert main(["ledger", "verify", "--state-dir", str(server.state_dir), *wrong]) == 1


def test_ledger_verify_needs_the_state_dir(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "verify", "--state-dir", "/nonexistent/state"]) == 2


def test_ledger_verify_target_is_the_flag_then_the_environment_then_the_state_dir(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(server.state_dir)]
    monkeypatch.delenv("SUNDSTAT_LEDGER_URL", raising=False)
    assert main(["ledger", "verify", *state]) == 0
    assert f"Ledger {server.state_dir / 'ledger.sqlite'}: OK" in capsys.readouterr().out

    # Unknown schemes are refused by name; which one is refused shows which target was chosen.
    monkeypatch.setenv("SUNDSTAT_LEDGER_URL", "mysql://auditor:env-secret@db/ledger")
    assert main(["ledger", "verify", *state]) == 2
    out = capsys.readouterr().out
    assert "Unknown ledger URL scheme 'mysql://'" in out and "env-secret" not in out
    assert main(["ledger", "verify", *state, "--ledger-url", "redis://auditor:flag-secret@db/0"]) == 2
    out = capsys.readouterr().out
    assert "Unknown ledger URL scheme 'redis://'" in out and "flag-secret" not in out


def test_first_start_banner_and_later_starts(server: Server) -> None:
    from service.cli_commands import _first_start
    from service.settings import Settings

    output = server.output()
    assert "First start" in output and "SUNDSTAT_ADMIN_TOKEN" in output
    assert f"{server.url}/docs" in output
    # Not a terminal: the demo token is in the state directory's token file, not in the output.
    assert "sst_analyst_" not in output and "first-start-tokens.txt" in output
    tokens = (server.state_dir / "first-start-tokens.txt").read_text()
    demo = tokens.split("demo analyst token (project 'demo'): ")[1].split()[0]
    assert (
        httpx.get(
            f"{server.url}/v1/projects/demo/budget", headers={"Authorization": f"Bearer {demo}"}
        ).status_code
        == 200
    )
    later = _first_start(
        Settings(db=server.db, state_dir=server.state_dir, admin_token=SecretStr(ADMIN_TOKEN))
    )
    assert later.first is False and later.demo_token is None


def test_later_start_says_tokens_were_issued(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli_commands import _first_start, _print_banner
    from service.settings import Settings

    settings = Settings(db=server.db, state_dir=server.state_dir, admin_token=SecretStr(ADMIN_TOKEN))
    _print_banner(settings, _first_start(settings), dashboard=False)
    out = capsys.readouterr().out
    assert "already issued" in out and "cannot be shown again" in out and "create-token" in out
    assert "sst_" not in out
