"""First start: the administrator token and a demo project with an analyst token, issued once.

Runs in the ``serve`` process before any worker starts. Which start is the first is decided by one
row in the service database's ``meta`` table, claimed atomically, so two processes racing on a fresh
state directory issue the tokens once. Tokens are stored only as hashes: later starts cannot show them
again and say how to issue new ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass

from budget_ledger import Ledger, ProjectExists, ProjectSpec

from .state import StateStore
from .tokens import TokenStore, issue_audited, utcnow

__all__ = ["DEMO_PROJECT", "FirstStart", "bootstrap"]

DEMO_PROJECT = "demo"
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
