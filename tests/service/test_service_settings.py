"""Settings: one validated object from SUNDSTAT_* variables; unsafe settings refuse to start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from service.cli import main
from service.serve_checks import check_serving
from service.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SUNDSTAT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db.duckdb"
    path.write_bytes(b"")
    return path


def test_defaults_are_safe_for_a_laptop() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1" and settings.port == 8000 and settings.min_response_seconds == 0.3
    assert settings.db is None and settings.db_path.name == "sundstat-100000-20261128.duckdb"


def test_read_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUNDSTAT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SUNDSTAT_POLICY_ALLOWED_PURPOSES", "research, education")
    monkeypatch.setenv("SUNDSTAT_POLICY_ALLOWED_REGISTERS", '["cpr", "lpr"]')
    monkeypatch.setenv("SUNDSTAT_ALLOW_PUBLIC_BIND", "1")
    settings = Settings()
    assert settings.state_dir == tmp_path and settings.allow_public_bind is True
    assert settings.policy_allowed_purposes == ["research", "education"]
    assert settings.policy_allowed_registers == ["cpr", "lpr"]


def test_to_env_rebuilds_the_same_settings(monkeypatch: pytest.MonkeyPatch, db: Path, tmp_path: Path) -> None:
    original = Settings(
        db=db,
        state_dir=tmp_path,
        admin_token=SecretStr("a" * 40),
        workers=3,
        policy_allowed_purposes=["policy"],
    )
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def test_unknown_purpose_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown purposes"):
        Settings(policy_allowed_purposes=["marketing"])


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        pytest.param({"admin_token": "short"}, "SUNDSTAT_ADMIN_TOKEN", id="short_admin_token"),
        pytest.param({"host": "0.0.0.0"}, "SUNDSTAT_ALLOW_PUBLIC_BIND=1", id="public_bind"),
        pytest.param({"audit_key": "zz"}, "SUNDSTAT_AUDIT_KEY", id="audit_key_not_hex"),
        pytest.param({"audit_key": "00" * 8}, "SUNDSTAT_AUDIT_KEY", id="audit_key_short"),
        pytest.param({"db": "missing.duckdb"}, "SUNDSTAT_DB", id="missing_db"),
        pytest.param(
            {"ledger_url": "mysql://u:pw@h/db"}, "SUNDSTAT_LEDGER_URL", id="ledger_url_not_postgres"
        ),
    ],
)
def test_unsafe_settings_refuse_to_start(
    db: Path, tmp_path: Path, overrides: dict[str, object], says: str
) -> None:
    settings = Settings(**{"db": db, "state_dir": tmp_path / "state", **overrides})  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=says.replace(".", r"\.")):
        check_serving(settings)


def test_unwritable_state_dir(db: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SettingsError, match="SUNDSTAT_STATE_DIR"):
        check_serving(Settings(db=db, state_dir=blocker / "state"))


def test_public_bind_with_opt_in(db: Path, tmp_path: Path) -> None:
    check_serving(Settings(db=db, state_dir=tmp_path / "s", host="0.0.0.0", allow_public_bind=True))


def test_serve_refuses_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUNDSTAT_ADMIN_TOKEN", "too-short")
    code = main(["serve", "--db", str(db), "--state-dir", str(tmp_path / "state"), "--no-dashboard"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Refusing to start" in err and "SUNDSTAT_ADMIN_TOKEN" in err and "at least 32" in err


def test_serve_ledger_url_flag_overrides_the_environment(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    from service.cli import build_parser
    from service.cli_commands import _serve_settings

    monkeypatch.setenv("SUNDSTAT_LEDGER_URL", "postgresql://env:pw-from-env@db-a/ledger")
    flag = "postgresql://flag:pw-from-flag@db-b:5433/ledger"
    settings = _serve_settings(build_parser().parse_args(["serve", "--db", str(db), "--ledger-url", flag]))
    assert settings.ledger_url is not None and settings.ledger_url.get_secret_value() == flag
    assert settings.to_env()["SUNDSTAT_LEDGER_URL"] == flag  # what the uvicorn workers read
    assert settings.ledger_description == "flag@db-b:5433/ledger (PostgreSQL)"
    without_flag = _serve_settings(build_parser().parse_args(["serve", "--db", str(db)]))
    assert without_flag.ledger_url == SecretStr("postgresql://env:pw-from-env@db-a/ledger")
    assert "pw-from" not in repr(settings) + str(settings)


def test_blank_ledger_url_means_sqlite_in_the_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUNDSTAT_LEDGER_URL", "  ")
    settings = Settings(state_dir=tmp_path)
    assert settings.ledger_url is None and settings.ledger_description == str(tmp_path / "ledger.sqlite")


def test_serve_refuses_a_ledger_url_that_is_not_postgres_without_echoing_it(
    capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path
) -> None:
    args = ["--db", str(db), "--state-dir", str(tmp_path / "state"), "--no-dashboard"]
    code = main(["serve", *args, "--ledger-url", "mysql://u:s3cret@h/db"])
    assert code == 2
    err = capsys.readouterr().err
    assert "SUNDSTAT_LEDGER_URL (--ledger-url) must be a postgresql://" in err and "s3cret" not in err
