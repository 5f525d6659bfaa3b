"""The application desk with a real SQLite ledger and service store: a claim whose project the ledger
does not record goes back to the administrator, saying why."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from budget_ledger import Ledger, ProjectSpec
from service import applications
from service.applications import ApplicationDesk, ApprovalPolicy, Submission
from service.identity import Applicant, IdentityRegistry
from service.settings import ALL_REGISTERS, Settings
from service.state.sqlite import SqliteStateStore
from service.tokens import TokenStore
from service.worker_services import open_ledger
from tests.service.svc_helpers import ADMIN_TOKEN

SUBMISSION = Submission(
    title="Dup",
    purpose="research",
    institution="typed",
    summary="s",
    registers=("cpr",),
    epsilon=0.5,
    delta=0.0,
    duration_days=30,
    applicant_name="typed",
    applicant_email="typed@example.dk",
)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[ApplicationDesk, Ledger, Applicant]]:
    settings = Settings(state_dir=tmp_path, admin_token=SecretStr(ADMIN_TOKEN))
    ledger = open_ledger(settings)
    store = SqliteStateStore(settings.service_db_path)
    identity = IdentityRegistry(store)
    identity.create_institution("ku", "University of Copenhagen", email_domains=["ku.dk"], actor="test")
    applicant = identity.create_applicant("ku", name="Alice", email="alice@ku.dk", actor="test")
    desk = ApplicationDesk(
        store,
        ledger,
        TokenStore(store),
        ApprovalPolicy.from_settings(settings),
        ALL_REGISTERS,
        token_ttl=dt.timedelta(days=1),
        identity=identity,
    )
    yield desk, ledger, applicant
    store.close()


def test_a_project_the_ledger_refuses_leaves_the_application_pending_with_the_reason(
    desk: tuple[ApplicationDesk, Ledger, Applicant], monkeypatch: pytest.MonkeyPatch
) -> None:
    app_desk, ledger, applicant = desk
    ledger.create_project(ProjectSpec("dup-1", "t", "research", ("cpr",), "pure", 1.0), actor="test")
    monkeypatch.setattr(applications, "_project_id", lambda title: "dup-1")  # the id is taken already
    with pytest.raises(Exception, match="dup-1"):
        app_desk.submit(SUBMISSION, actor="test", applicant=applicant)
    (application,) = app_desk.list()
    assert application.status == "pending" and application.project is None
    assert "ledger could not record the approval" in application.waiting_reasons[-1]
    # Nothing counts against the quota, and the next application is approved normally.
    monkeypatch.undo()
    assert app_desk.submit(SUBMISSION, actor="test", applicant=applicant).application.status == "approved"
