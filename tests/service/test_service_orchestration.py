"""Orchestration with a fake engine and a real SQLite ledger: failures after the charge, duplicates.

These paths depend on timing or on failures the real engine cannot be made to produce on demand, so
the engine is replaced by a fake (the engine is a Protocol at this boundary); the ledger, the app and
its error handling are the real ones.
"""

from __future__ import annotations

import datetime as dt
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.service.svc_helpers import ADMIN_TOKEN, ERROR_KEYS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # starlette prefers httpx2 for its TestClient
    from fastapi.testclient import TestClient

from budget_ledger import ProjectSpec
from datasets.packaged_catalog import load_packaged_catalog
from query_engine.catalog import Catalog
from query_engine.engine import Cost
from query_engine.errors import ExecutionFailed, QueryTimeout
from query_engine.mechanisms import PrivacyLoss
from query_engine.release_models import Preview, PrivacyPublic, Release
from query_engine.spec import ProjectContext, Query
from service.app import create_app
from service.auth import Principal
from service.errors import InProgress, QueryFailed
from service.orchestration import EXECUTION_FAILED_MESSAGE, Orchestrator
from service.settings import Settings
from service.worker_services import Services, open_ledger

SECRET = "person 0101801234 has 7 rows"


class FakeEngine:
    """Costs every query at its epsilon; ``run`` fails or blocks on demand."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.failure: BaseException | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def cost(self, query: Query, context: ProjectContext) -> Cost:
        assert query.epsilon is not None
        loss = PrivacyLoss(epsilon=query.epsilon)
        return Cost(loss, "discrete_laplace", ("cpr",), query.canonical(), query.query_hash())

    def preview(self, query: Query, context: ProjectContext) -> Preview:
        raise RuntimeError(SECRET)

    def preview_and_cost(self, query: Query, context: ProjectContext) -> tuple[Preview, Cost]:
        return self.preview(query, context), self.cost(query, context)

    def run(
        self,
        query: Query,
        context: ProjectContext | None = None,
        *,
        cost: Cost | None = None,
        timeout_s: float | None = None,
    ) -> Release:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.failure is not None:
            raise self.failure
        privacy = PrivacyPublic(epsilon=query.epsilon, mechanism="discrete_laplace", scale=1.0)
        return Release(
            release_id="r_fake",
            project=query.project,
            privacy=privacy,
            confidence=0.95,
            columns=["value"],
            rows=[],
        )

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_packaged_catalog()


@pytest.fixture
def setup(tmp_path: Path, catalog: Catalog) -> Iterator[tuple[Services, FakeEngine]]:
    from service.access_log import AccessLog
    from service.admission import QuerySlots, RateLimiter
    from service.applications import ApplicationDesk, ApprovalPolicy
    from service.denied_access import DeniedAccessLog
    from service.identity import IdentityRegistry
    from service.oidc import OidcSignIn
    from service.permits import PermitRegistry
    from service.state.rate_limits import StoreRateLimiter, StoreWindowLimiter
    from service.state.sqlite import SqliteStateStore
    from service.tokens import TokenStore

    settings = Settings(
        db=tmp_path / "unused.duckdb",
        state_dir=tmp_path / "state",
        admin_token=SecretStr(ADMIN_TOKEN),
        min_response_seconds=0,
    )
    engine = FakeEngine(catalog)
    ledger = open_ledger(settings)
    ledger.create_project(ProjectSpec("p", "t", "research", ("cpr",), "pure", 1.0), actor="test")
    store = SqliteStateStore(settings.service_db_path)
    tokens = TokenStore(store, env_admin_token=ADMIN_TOKEN)
    desk = ApplicationDesk(
        store,
        ledger,
        tokens,
        ApprovalPolicy.from_settings(settings),
        catalog.register_names,
        token_ttl=dt.timedelta(days=1),
    )
    access = AccessLog(ledger)
    services = Services(
        settings=settings,
        engine=engine,
        ledger=ledger,
        store=store,
        tokens=tokens,
        desk=desk,
        identity=IdentityRegistry(store),
        sign_in=OidcSignIn(settings, store, IdentityRegistry(store)),
        orchestrator=Orchestrator(engine, ledger),
        limiter=RateLimiter(1000, 1000),
        public_limiter=RateLimiter(1000, 1000),
        application_limiter=StoreWindowLimiter(store, 1000, 60),
        slots=QuerySlots(4, 10),
        access=access,
        auth_failures=StoreRateLimiter(store, 1000, 1000, prefix="authfail:"),
        denied=DeniedAccessLog(access),
        permits=PermitRegistry(store),
    )
    yield services, engine
    ledger.store.close()


ADMIN = Principal("admin", "tok_test", None, "test")
QUERY = Query(project="p", measure="count_persons", epsilon=0.25)


def _post_query(services: Services, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST the test's query to ``path`` as the administrator, through the app in-process; a server
    error comes back as the response the client would see."""
    with TestClient(
        create_app(services.settings, services=services), raise_server_exceptions=False
    ) as client:
        return client.post(
            path,
            json=QUERY.model_dump(),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", **(headers or {})},
        )


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(ExecutionFailed(SECRET), id="execution_failed"),
        pytest.param(QueryTimeout(SECRET), id="timeout"),
        pytest.param(RuntimeError(SECRET), id="unexpected"),
        pytest.param(MemoryError(), id="memory"),
    ],
)
def test_failure_after_the_charge_stays_charged_and_says_nothing(
    setup: tuple[Services, FakeEngine], failure: BaseException
) -> None:
    services, engine = setup
    engine.failure = failure
    response = _post_query(services, "/v1/queries")
    assert response.status_code == 503
    assert response.json() == {
        "ok": False,
        "code": "execution_failed",
        "error": EXECUTION_FAILED_MESSAGE,
        "status": 503,
    }
    assert SECRET not in response.text
    budget = services.ledger.budget("p")
    assert budget.spends == 1 and float(budget.epsilon_spent) == pytest.approx(0.25)
    assert services.ledger.list_releases("p") == []
    assert services.ledger.verify().ok


def test_a_retry_of_a_failed_idempotent_request_is_not_fresh_noise(
    setup: tuple[Services, FakeEngine],
) -> None:
    services, engine = setup
    engine.failure = ExecutionFailed("x")
    with pytest.raises(QueryFailed):
        services.orchestrator.run(QUERY, ADMIN, "key-1")
    engine.failure = None
    with pytest.raises(QueryFailed):
        services.orchestrator.run(QUERY, ADMIN, "key-1")
    assert services.ledger.budget("p").spends == 1


def test_concurrent_duplicate_gets_in_progress(setup: tuple[Services, FakeEngine]) -> None:
    services, engine = setup
    engine.gate = threading.Event()
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(services.orchestrator.run(QUERY, ADMIN, "dup")))
    first.start()
    assert engine.entered.wait(10)
    with pytest.raises(InProgress):
        services.orchestrator.run(QUERY, ADMIN, "dup")
    with pytest.raises(InProgress):
        services.orchestrator.run(QUERY, ADMIN)  # same canonical query, no key
    engine.gate.set()
    first.join(10)
    assert results and results[0]["cached"] is False
    replay = services.orchestrator.run(QUERY, ADMIN, "dup")
    assert replay["cached"] is True and replay["release_id"] == results[0]["release_id"]
    assert services.ledger.budget("p").spends == 1


def test_in_progress_over_http_has_the_one_body(setup: tuple[Services, FakeEngine]) -> None:
    services, engine = setup
    engine.gate = threading.Event()
    holder = threading.Thread(target=lambda: services.orchestrator.run(QUERY, ADMIN, "http-dup"))
    holder.start()
    assert engine.entered.wait(10)
    response = _post_query(services, "/v1/queries", {"Idempotency-Key": "http-dup"})
    engine.gate.set()
    holder.join(10)
    assert response.status_code == 409 and response.json()["code"] == "in_progress"
    assert set(response.json()) == ERROR_KEYS


def test_unexpected_exception_is_a_500_with_the_one_body(setup: tuple[Services, FakeEngine]) -> None:
    services, _ = setup
    response = _post_query(services, "/v1/queries/preview")
    assert response.status_code == 500
    body = response.json()
    assert set(body) == ERROR_KEYS and body["code"] == "internal_error" and SECRET not in response.text


def test_a_cached_release_is_served_free_without_the_write_lock(setup: tuple[Services, FakeEngine]) -> None:
    services, _ = setup
    first = services.orchestrator.run_outcome(QUERY, ADMIN)
    assert first.kind == "committed" and first.release["cached"] is False
    served: list[Any] = []
    with services.ledger.store.transaction():  # another request holds the ledger's write lock
        reader = threading.Thread(
            target=lambda: served.append(services.orchestrator.run_outcome(QUERY, ADMIN))
        )
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "a cached query waited for the ledger's write lock"
    again = served[0]
    assert again.kind == "cached" and again.release["cached"] is True
    assert again.release["release_id"] == first.release["release_id"]
    assert again.release["rows"] == first.release["rows"]
    assert again.release["budget"]["spends"] == 1 and again.release["budget"]["epsilon_spent"] == 0.25
    assert services.ledger.budget("p").spends == 1
