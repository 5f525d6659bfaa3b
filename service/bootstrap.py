"""Start-up: the administrator token and a demo project with an analyst token, issued once; the
population budget (a default cap) on every register; and the check that automatic approval only
approves registers that have a cap.

Runs in the ``serve`` process before any worker starts. Which start is the first is decided by one
row in the service database's ``meta`` table, claimed atomically, so two processes racing on a fresh
state directory issue the tokens once. Tokens are stored only as hashes: later starts cannot show them
again and say how to issue new ones.

The first start's tokens are written to ``first-start-tokens.txt`` (mode 0600) in the state directory
and shown on the terminal only when standard output is one: a server's output usually ends up in a
log file or the journal, where a token must never be (``token_report``).

Default caps are written on every start to each register that
has no cap yet (checked and written in one ledger transaction), so a register added to the catalog
later is covered too; a register that already has a cap keeps it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from budget_ledger import Ledger, ProjectExists, ProjectSpec

from .settings import Settings, SettingsError
from .state import StateStore
from .tokens import TokenStore, issue_audited, utcnow

__all__ = [
    "DEFAULT_CAP_REASON",
    "DEMO_PROJECT",
    "TOKEN_FILE",
    "FirstStart",
    "apply_default_caps",
    "bootstrap",
    "cap_warnings",
    "check_auto_approval_caps",
    "save_tokens",
    "token_report",
    "uncapped_registers",
]

DEMO_PROJECT = "demo"
TOKEN_FILE = "first-start-tokens.txt"
DEFAULT_CAP_REASON = "default population budget"
_META_KEY = "bootstrapped_at"


@dataclass(frozen=True)
class FirstStart:
    """What the first start issued (secrets are None on later starts)."""

    first: bool
    bootstrapped_at: str
    admin_token: str | None
    admin_from_env: bool
    demo_project: str | None
    demo_token: str | None


def bootstrap(
    store: StateStore,
    tokens: TokenStore,
    ledger: Ledger,
    registers: tuple[str, ...],
    *,
    demo: bool = True,
    demo_epsilon: float = 2.0,
    token_ttl: dt.timedelta = dt.timedelta(days=365),
) -> FirstStart:
    """Issue the administrator and demo tokens if this is the first start of the state directory."""
    now = utcnow().replace(microsecond=0)
    with store.write() as conn:
        claimed = conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (_META_KEY, now.isoformat()),
        ).rowcount
    if claimed != 1:
        return FirstStart(False, store.get_meta(_META_KEY) or "", None, tokens.has_env_admin, None, None)

    admin_token: str | None = None
    if not tokens.has_env_admin:
        admin_token = issue_audited(
            tokens, ledger, "admin", name="first-start administrator", ttl=token_ttl, actor="system"
        ).token
    demo_token: str | None = None
    if demo:
        _ensure_demo_project(ledger, registers, demo_epsilon, now)
        demo_token = issue_audited(
            tokens,
            ledger,
            "analyst",
            name="demo analyst",
            project=DEMO_PROJECT,
            ttl=token_ttl,
            actor="system",
        ).token
    return FirstStart(
        True, now.isoformat(), admin_token, tokens.has_env_admin, DEMO_PROJECT if demo else None, demo_token
    )


def _ensure_demo_project(
    ledger: Ledger, registers: tuple[str, ...], epsilon: float, now: dt.datetime
) -> None:
    """Create the demo project unless the ledger has it (another host sharing a PostgreSQL ledger
    may have created it first, even at the same moment)."""
    with contextlib.suppress(ProjectExists):
        ledger.create_project(
            ProjectSpec(
                id=DEMO_PROJECT,
                title="Demo project",
                purpose="education",
                registers=registers,
                mode="pure",
                epsilon=epsilon,
                delta=0,
                institution="sundstat",
                summary="A project for trying the service: a modest pure-DP budget on every register.",
                expires=(now + dt.timedelta(days=365)).date(),
            ),
            actor="system",
        )


def save_tokens(start: FirstStart, state_dir: Path) -> Path | None:
    """Write the tokens this first start issued to a 0600 file in ``state_dir`` (None if it issued none)."""
    lines = []
    if start.admin_token:
        lines.append(f"administrator token: {start.admin_token}")
    if start.demo_token:
        lines.append(f"demo analyst token (project '{start.demo_project}'): {start.demo_token}")
    if not start.first or not lines:
        return None
    path = state_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, 0o600)  # also when the file already existed with wider permissions
        out.write(
            f"# sundstat first start {start.bootstrapped_at}: keep these safe, then delete this file.\n"
        )
        out.write("\n".join(lines) + "\n")
    return path


def token_report(start: FirstStart, token_file: Path, *, show_tokens: bool) -> list[str]:
    """The banner's lines about tokens; the tokens themselves only with ``show_tokens`` (a terminal)."""
    if not start.first:
        return [
            f"Tokens were already issued at the first start ({start.bootstrapped_at}); they are stored only "
            f"as hashes and cannot be shown again (unless {token_file} is still there).",
            "  New analyst token:   sundstat admin create-token PROJECT --name NAME --token <admin token>",
            "  Lost the admin token? Set SUNDSTAT_ADMIN_TOKEN to a new secret of 32+ characters and restart.",
        ]
    lines = ["First start: the tokens are stored only as hashes; keep them safe."]
    if start.admin_token or start.demo_token:
        lines.append(
            f"  Tokens file: {token_file} (readable by this user only; delete it once they are safe)"
        )
    if start.admin_from_env:
        lines.append("  Administrator token: the one in SUNDSTAT_ADMIN_TOKEN")
    elif show_tokens:
        lines.append(f"  Administrator token: {start.admin_token}")
    if start.demo_token and show_tokens:
        lines.append(f"  Demo analyst token (project '{start.demo_project}'): {start.demo_token}")
    if not show_tokens:
        lines.append("  (the tokens are not printed because the output is not a terminal)")
    return lines


def apply_default_caps(ledger: Ledger, registers: Iterable[str], settings: Settings) -> list[str]:
    """Give every register without a cap the default population budget; return those capped now.

    Each default is recorded in the audit chain like an administrator's cap, by ``system``, with the
    reason ``default population budget`` and the settings it came from. Nothing happens when the
    operator turned defaults off (``SUNDSTAT_DEFAULT_REGISTER_CAP_EPSILON=0``).
    """
    cap = settings.default_register_cap
    if cap is None:
        return []
    epsilon, delta = cap
    reason = (
        f"{DEFAULT_CAP_REASON} (SUNDSTAT_DEFAULT_REGISTER_CAP_EPSILON={epsilon:g}, "
        f"SUNDSTAT_DEFAULT_REGISTER_CAP_DELTA={delta:g})"
    )
    capped: list[str] = []
    for register in registers:
        status = ledger.set_default_register_cap(
            register, epsilon=epsilon, delta=delta, reason=reason, actor="system"
        )
        if status is not None:
            capped.append(register)
    return capped


def uncapped_registers(ledger: Ledger, registers: Iterable[str]) -> list[str]:
    """The ``registers`` that have no global cap in the ledger, sorted."""
    capped = {status.register for status in ledger.register_caps() if status.cap is not None}
    return sorted(set(registers) - capped)


def check_auto_approval_caps(ledger: Ledger, settings: Settings, catalog_registers: Iterable[str]) -> None:
    """Refuse automatic approval while a register it may approve has no cap.

    Automatic approval is on when the policy names at least one purpose and one register and allows an
    epsilon above 0. Without a cap, a crowd of automatically approved projects could average away the
    noise on that register.
    """
    if not (settings.policy_allowed_purposes and settings.policy_max_epsilon > 0):
        return
    approvable = set(settings.policy_allowed_registers) & set(catalog_registers)
    missing = uncapped_registers(ledger, approvable)
    if missing:
        raise SettingsError(
            f"Refusing to start: automatic approval may approve projects on {', '.join(missing)}, which "
            "have no register cap, so many projects together could average away the noise. Set "
            "SUNDSTAT_DEFAULT_REGISTER_CAP_EPSILON above 0 (default 20), give each register a cap with "
            "'sundstat admin set-cap', or turn automatic approval off for them "
            "(SUNDSTAT_POLICY_ALLOWED_REGISTERS)."
        )


def cap_warnings(ledger: Ledger) -> list[str]:
    """Warnings for the start-up banner: pure caps (epsilon, 0) that an older ledger let Gaussian
    queries through."""
    return [
        f"Register '{name}' has a cap set as (epsilon, delta 0), but discrete-Gaussian (rho) queries were "
        "charged to it before caps were enforced in their own unit, so its published epsilon does not "
        f"cover them. Give it a cap with a delta: sundstat admin set-cap {name} --epsilon E --delta D "
        '--reason "..."'
        for name in ledger.pure_caps_with_rho()
    ]
