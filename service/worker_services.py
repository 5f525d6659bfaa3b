"""Everything one worker process serves with: engine, ledger, tokens, identities, application desk, limits.

``open_services`` builds it from the settings; the FastAPI app opens one per worker at startup and
hands it to routes through a dependency. Nothing here is a module-level singleton.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from budget_ledger import (
    DEFAULT_PENDING_TIMEOUT,
    Ledger,
    LedgerStore,
    SqliteStore,
    load_or_create_audit_key,
    parse_audit_key,
)
from budget_ledger.startup import StartupReport, start_ledger
from budget_ledger.store import open_store
from query_engine.catalog import Catalog
from query_engine.errors import EngineError
from query_engine.spec import ProjectContext, Query

from .access_log import AccessLog
from .admission import QuerySlots, RateLimiter
from .applications import ApplicationDesk, ApprovalPolicy, ApprovalQuota
from .auth import Principal, is_loopback_client
from .catalog_public import catalog_json
from .denied_access import DeniedAccessLog
from .engine_adapter import EngineLike, open_engine
from .identity import IdentityRegistry
from .oidc import OidcSignIn
from .orchestration import Orchestrator
from .permits import PermitRegistry
from .response_time import ResponseTimeModel
from .settings import Settings
from .state import StateStore, open_state_store
from .state.rate_limits import StoreRateLimiter, StoreWindowLimiter
from .tokens import TokenStore

__all__ = [
    "Services",
    "audit_key_for",
    "check_ledger_at_start",
    "open_ledger",
    "open_services",
    "response_time_model",
]

log = logging.getLogger("sundstat.service")


def audit_key_for(settings: Settings) -> bytes:
    """The audit-chain key: ``SUNDSTAT_AUDIT_KEY`` (hex), else the 0600 key file in the state dir."""
    if settings.audit_key is not None:
        return parse_audit_key(settings.audit_key.get_secret_value())
    return load_or_create_audit_key(settings.audit_key_path)


def _open_ledger_store(settings: Settings) -> LedgerStore:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if settings.ledger_url is not None:
        return open_store(settings.ledger_url.get_secret_value())
    return SqliteStore(settings.ledger_path)


def open_ledger(settings: Settings) -> Ledger:
    """The budget ledger: SQLite in the state directory, or PostgreSQL at ``SUNDSTAT_LEDGER_URL``."""
    return Ledger(_open_ledger_store(settings), audit_key_for(settings))


def check_ledger_at_start(settings: Settings) -> tuple[Ledger, StartupReport]:
    """``serve``'s start-up check of the ledger (``budget_ledger.startup``), before any worker runs.

    Raises ``UnsafeStore`` / ``ChainBroken`` when the ledger is damaged. Spends left pending by a
    crash are marked failed: all of them for SQLite (only this serve uses the state directory), those
    older than the pending timeout for PostgreSQL (other hosts may still be running theirs).
    """
    return start_ledger(
        lambda: _open_ledger_store(settings),
        audit_key_for(settings),
        settings.state_dir / "ledger.checkpoint",
        where=settings.ledger_description,
        reconcile_older_than=0.0 if settings.ledger_url is None else DEFAULT_PENDING_TIMEOUT,
    )


@dataclass
class Services:
    """The worker's collaborators; routes reach them through ``service.deps``."""

    settings: Settings
    engine: EngineLike
    ledger: Ledger
    store: StateStore
    tokens: TokenStore
    desk: ApplicationDesk
    identity: IdentityRegistry
    sign_in: OidcSignIn
    orchestrator: Orchestrator
    limiter: StoreRateLimiter | RateLimiter
    public_limiter: StoreRateLimiter | RateLimiter
    application_limiter: StoreWindowLimiter
    slots: QuerySlots
    access: AccessLog
    auth_failures: StoreRateLimiter
    denied: DeniedAccessLog
    permits: PermitRegistry
    _catalog_bytes: bytes | None = field(default=None, repr=False)

    @property
    def catalog(self) -> Catalog:
        """The catalog of the served database."""
        return self.engine.catalog

    def catalog_bytes(self) -> bytes:
        """The public catalog as JSON bytes, rendered once."""
        if self._catalog_bytes is None:
            self._catalog_bytes = json.dumps(catalog_json(self.catalog), ensure_ascii=False).encode("utf-8")
        return self._catalog_bytes

    def rate_check(self, principal: Principal) -> None:
        """Count one request against the caller's bucket (per token, or per address without one).

        Without a token, a loopback client is exempt when ``trust_loopback_anonymous`` is on: that is
        the dashboard on this host, whose visitors would otherwise all share one address's bucket.
        """
        if principal.token_id:
            self.limiter.check(principal.rate_key)
            return
        if self.settings.trust_loopback_anonymous and is_loopback_client(principal.client):
            return
        self.public_limiter.check(principal.rate_key)

    def application_rate_check(self, principal: Principal) -> None:
        """Count one application from the caller's address; no address is exempt, loopback included."""
        self.application_limiter.check(f"addr:{principal.client}")

    def audit(self, kind: str, project: str, principal: Principal, **details: Any) -> None:
        """Record a request that touched a project in the audit chain (when ``audit_reads`` is on)."""
        if self.settings.audit_reads:
            self.access.record(kind, project, principal.actor, **details)

    def close(self) -> None:
        """Write the last access records, then release files and connections."""
        self.denied.close()
        self.access.close()
        self.engine.close()
        self.ledger.close()
        self.store.close()


def response_time_model(settings: Settings) -> ResponseTimeModel | None:
    """The fixed-response-time model of the settings, or None when the ladder is off."""
    ladder = settings.response_ladder_steps
    if ladder is None:
        return None
    return ResponseTimeModel(ladder, settings.declared_persons, settings.response_rows_per_second)


def warm_up(engine: EngineLike) -> None:
    """Run one query per register through the whole engine once and discard the results.

    A cold engine (first SQL compilation, first pages read from the database file, first noise draw)
    takes up to a second longer on its first queries, enough to make the first queries after a start
    miss their fixed response time. The releases are thrown away: no one sees them, so nothing is
    spent.
    """
    context = ProjectContext("pure")
    for register in engine.catalog.register_names:
        query = Query(project="warm-up", measure="count_persons", register=register, epsilon=1.0)
        try:
            engine.run(query, context, cost=engine.cost(query, context))
        except EngineError as exc:  # a register the query cannot use: the others still warm up
            log.debug("warm-up query on %s skipped (%s)", register, exc.code)


def open_services(settings: Settings) -> Services:
    """Open the engine on the database and the ledger and service store in the state directory."""
    engine = open_engine(settings)
    if settings.backend == "duckdb" and settings.response_ladder_steps is not None:
        warm_up(engine)
    ledger = open_ledger(settings)
    store = open_state_store(settings.state_store_url, settings.service_db_path)
    env_admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    tokens = TokenStore(store, env_admin_token=env_admin)
    ttl = dt.timedelta(days=settings.token_ttl_days)
    access = AccessLog(ledger)
    access.start()
    denied = DeniedAccessLog(access, window=settings.denied_audit_window_seconds)
    denied.start()
    identity = IdentityRegistry(store)
    desk = ApplicationDesk(
        store,
        ledger,
        tokens,
        ApprovalPolicy.from_settings(settings),
        engine.catalog.register_names,
        token_ttl=ttl,
        quota=ApprovalQuota.from_settings(settings),
        identity=identity,
        absent_registers=engine.catalog.absent_registers,
    )
    return Services(
        settings=settings,
        engine=engine,
        ledger=ledger,
        store=store,
        tokens=tokens,
        desk=desk,
        identity=identity,
        sign_in=OidcSignIn(settings, store, identity),
        orchestrator=Orchestrator(
            engine,
            ledger,
            access if settings.audit_reads else None,
            timing=response_time_model(settings),
            max_releases_per_day=settings.max_releases_per_day,
            declared_persons=settings.declared_persons,
        ),
        limiter=StoreRateLimiter(store, settings.rate_limit_per_second, settings.rate_limit_burst),
        public_limiter=StoreRateLimiter(
            store, settings.public_rate_limit_per_second, settings.public_rate_limit_burst
        ),
        application_limiter=StoreWindowLimiter(
            store,
            settings.application_rate_limit_per_minute,
            60.0,
            prefix="applications:",
            what="applications from your address",
        ),
        slots=QuerySlots(settings.max_concurrent_queries, settings.queue_timeout_seconds),
        access=access,
        auth_failures=StoreRateLimiter(
            store,
            settings.auth_failure_rate_per_second,
            settings.auth_failure_burst,
            prefix="authfail:",
            what="failed authentications from this address",
        ),
        denied=denied,
        permits=PermitRegistry(store),
    )
