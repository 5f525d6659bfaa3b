"""The checks before serving: :func:`check_serving` refuses settings that would be unsafe to serve with
(a missing database, an unwritable state directory, a short administrator token, a malformed key or
URL, a public bind address without an explicit opt-in) and says what to set instead.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from budget_ledger.store import is_postgres_url

from .settings import MIN_ADMIN_TOKEN_LENGTH, Settings, SettingsError

__all__ = ["check_serving"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_serving(settings: Settings, *, need_db: bool = True) -> None:
    """Raise ``SettingsError`` listing every missing or unsafe setting, each with what to set."""
    problems: list[str] = []
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    if token is not None and len(token) < MIN_ADMIN_TOKEN_LENGTH:
        problems.append(
            f"SUNDSTAT_ADMIN_TOKEN is {len(token)} characters long; it must be at least "
            f"{MIN_ADMIN_TOKEN_LENGTH}. Generate one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'"
        )
    if settings.audit_key is not None:
        try:
            key = bytes.fromhex(settings.audit_key.get_secret_value().strip())
        except ValueError:
            key = b""
            problems.append("SUNDSTAT_AUDIT_KEY must be hexadecimal (64 hex digits for 32 bytes).")
        if key and len(key) < 16:
            problems.append("SUNDSTAT_AUDIT_KEY must hold at least 16 bytes (use 32 random bytes).")
    if settings.pseudonym_key is not None:
        from datasets.pseudonymise import PseudonymKeyError, parse_key

        try:
            parse_key(settings.pseudonym_key.get_secret_value())
        except PseudonymKeyError as exc:
            problems.append(
                f"SUNDSTAT_PSEUDONYM_KEY: {exc} (Serving never uses it; only 'sundstat build' does.)"
            )
    if settings.ledger_url is not None and not is_postgres_url(settings.ledger_url.get_secret_value()):
        problems.append(
            "SUNDSTAT_LEDGER_URL (--ledger-url) must be a postgresql://user:password@host/db URL; unset it to "
            "keep the ledger in ledger.sqlite in the state directory."
        )
    if settings.state_url is not None and not is_postgres_url(settings.state_url.get_secret_value()):
        problems.append(
            "SUNDSTAT_STATE_URL must be a postgresql://user:password@host/db URL; unset it to keep the "
            "service state with the ledger (PostgreSQL) or in service.sqlite in the state directory."
        )
    if not _is_loopback(settings.host) and not settings.allow_public_bind:
        problems.append(
            f"Binding to {settings.host} exposes the API beyond this machine. Put it behind TLS and set "
            "SUNDSTAT_ALLOW_PUBLIC_BIND=1, or use --host 127.0.0.1."
        )
    if settings.backend == "spark":
        if settings.parquet_dir is None:
            problems.append(
                "The spark backend reads Parquet files: set SUNDSTAT_PARQUET_DIR (or --parquet-dir) to a "
                "directory with <register>.parquet and catalog.json."
            )
        elif (
            "://" not in settings.parquet_dir and not (Path(settings.parquet_dir) / "catalog.json").is_file()
        ):
            problems.append(
                f"{settings.parquet_dir} has no catalog.json; point --parquet-dir at the output of "
                "'sundstat generate' or at Parquet files exported from a built database."
            )
        if settings.workers > 1:
            problems.append("The spark backend runs one Spark driver: use --workers 1 with --backend spark.")
    if need_db and not settings.db_path.is_file():
        problems.append(
            f"The database {settings.db_path} does not exist. Set SUNDSTAT_DB (or --db) to a file "
            "written by 'sundstat build'."
        )
    problems.extend(settings.missing_extras())
    problems.extend(settings.oidc_problems())
    problems.extend(_state_dir_problems(settings.state_dir))
    if problems:
        raise SettingsError("Refusing to start:\n  - " + "\n  - ".join(problems))


def _state_dir_problems(state_dir: Path) -> list[str]:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [
            f"The state directory {state_dir} cannot be created ({exc.strerror}); set SUNDSTAT_STATE_DIR."
        ]
    if not state_dir.is_dir():
        return [f"The state directory {state_dir} is not a directory; set SUNDSTAT_STATE_DIR."]
    if not os.access(state_dir, os.W_OK | os.X_OK):
        return [
            f"The state directory {state_dir} is not writable; set SUNDSTAT_STATE_DIR to a writable directory."
        ]
    return []
