"""Helpers of the dashboard tests: a real API server, fresh projects, a fake API, and AppTest shortcuts."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from streamlit.testing.v1 import AppTest

from tests.helpers.server_fixtures import (
    ROOT,
    Process,
    Server,
    build_dataset,
    create_project,
    free_port,
    spawn,
    start_server,
    wait_for,
)

__all__ = [
    "ADMIN_TOKEN",
    "APP",
    "SCREENSHOTS",
    "Api",
    "FakeApi",
    "Process",
    "app_test",
    "build_dataset",
    "catalog_body",
    "charts",
    "error",
    "free_port",
    "open_page",
    "sign_in",
    "spawn",
    "start_api",
    "texts",
    "wait_for",
]

APP = ROOT / "dashboard" / "app.py"
ADMIN_TOKEN = "sst_admin_dashboard_tests_" + "y" * 32
SCREENSHOTS = ROOT / "test-output" / "screenshots"
REGISTERS = {"cpr", "lpr", "lmdb", "dar", "ind", "udda"}
"""The registers of the catalog."""


def catalog_body(db: Path) -> dict[str, Any]:
    """The public catalog JSON of ``db``, exactly as ``GET /v1/catalog`` serves it."""
    from datasets.build import open_catalog_from_db
    from service.catalog_public import catalog_json

    body: dict[str, Any] = json.loads(json.dumps(catalog_json(open_catalog_from_db(db))))
    return body


def query_options_answer(request: httpx.Request) -> Any:
    """``GET /v1/query-options`` as the service answers it (default settings, the packaged catalog)."""
    from datasets.packaged_catalog import load_packaged_catalog
    from query_engine.errors import QueryError
    from query_engine.settings import EngineSettings
    from service.query_options import query_options

    params = request.url.params
    try:
        options = query_options(
            load_packaged_catalog(),
            EngineSettings(),
            params.get("measure", "count_persons"),  # type: ignore[arg-type]
            params.get("register", "cpr"),
            params.get_list("group_by"),
        )
    except QueryError as exc:
        return error(exc.status, exc.code, exc.message)
    return options.model_dump(mode="json")


@dataclass
class Api:
    """A running ``sundstat serve --no-dashboard``, its first-start demo token, and admin shortcuts."""

    server: Server
    demo_token: str
    _projects: int = field(default=0)

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self.server.url

    @property
    def admin_token(self) -> str:
        """The administrator token (``SUNDSTAT_ADMIN_TOKEN`` of the server)."""
        return self.server.admin_token

    def admin(self) -> httpx.Client:
        """An httpx client with the administrator's token."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=60
        )

    def new_project(self, epsilon: float = 2.0, mode: str = "pure", delta: float = 0.0) -> tuple[str, str]:
        """A fresh project (all registers) and an analyst token for it: (project id, token)."""
        self._projects += 1
        project = f"dash-{os.getpid()}-{self._projects}-{time.monotonic_ns() % 100000}"
        body = {
            "id": project,
            "title": f"Dashboard test {self._projects}",
            "purpose": "research",
            "registers": ["cpr", "lpr", "lmdb", "dar", "ind", "udda"],
            "mode": mode,
            "epsilon": epsilon,
            "delta": delta,
        }
        with self.admin() as http:
            return project, create_project(http, body, token_name="dashboard-test")


def start_api(db: Path, state_dir: Path, settings: Mapping[str, str] | None = None) -> Api:
    """Start the API on ``db`` with a fresh state directory (one worker, no rate limits to speak of)."""
    server = start_server(db, state_dir, admin_token=ADMIN_TOKEN, workers=1, settings=settings)
    tokens = state_dir / "first-start-tokens.txt"
    found = re.search(r"demo analyst token \(project '[^']+'\): (\S+)", tokens.read_text())
    if not found:
        server.stop()
        raise RuntimeError(f"no demo token in {tokens}:\n{server.output()}")
    return Api(server, found.group(1))


# --- a fake API for tests that need exact control -------------------------------------------------


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeApi:
    """An in-memory stand-in for the HTTP API (``httpx.MockTransport``); records every request.

    ``routes`` maps ``"METHOD /path"`` to a JSON body, a ``(status, body)`` pair, or a function of
    the request returning either.
    """

    routes: dict[str, Any] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        """The transport to hand to the dashboard (session state ``_api_transport``)."""
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get(f"{request.method} {request.url.path}")
        if answer is None:
            return httpx.Response(
                404,
                json={
                    "ok": False,
                    "code": "not_found",
                    "error": f"No route {request.url.path}.",
                    "status": 404,
                },
            )
        if callable(answer):
            answer = answer(request)
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        return httpx.Response(status, json=body)

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        """The recorded requests to one route."""
        return [r for r in self.requests if r.method == method and r.url.path == path]


def error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    """An error answer with the contract's body."""
    return status, {"ok": False, "code": code, "error": message, "status": status}


ANALYST = {"role": "analyst", "token_id": "tok_a", "project": "p1", "name": "ana"}
"""The answer to ``GET /v1/me`` for the fake API's analyst of project ``p1``."""


def project_answer(title: str, registers: list[str]) -> dict[str, Any]:
    """The answer to ``GET /v1/projects/p1``: a pure research project without expiry."""
    return {
        "id": "p1",
        "title": title,
        "purpose": "research",
        "registers": registers,
        "mode": "pure",
        "expires": None,
        "budget": {},
    }


def pure_privacy(epsilon: float) -> dict[str, Any]:
    """A release's ``privacy`` in a pure project: ``epsilon`` spent by the discrete Laplace mechanism."""
    return {"epsilon": epsilon, "delta": 0.0, "rho": None, "mechanism": "discrete_laplace"}


def preview_answer(epsilon: float, cells: int) -> dict[str, Any]:
    """The answer to ``POST /v1/queries/preview`` in a pure project (95 % intervals)."""
    return {
        "loss": {"epsilon": epsilon, "delta": 0.0, "mechanism": "discrete_laplace"},
        "cells": cells,
        "confidence": 0.95,
    }


# --- AppTest --------------------------------------------------------------------------------------


def app_test(transport: httpx.BaseTransport | None = None, *, timeout: float = 30) -> AppTest:
    """The dashboard under AppTest (not yet run); ``transport`` replaces the network."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if transport is not None:
        at.session_state["_api_transport"] = transport
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    """Run the app, switch to ``views/<page>.py`` and run it; fail on any exception."""
    if not getattr(at, "_tree", None):
        at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sign_in(at: AppTest, token: str) -> AppTest:
    """Sign in through the sidebar."""
    at.run()
    at.text_input(key="signin_token").set_value(token)
    at.button(key="signin_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def clean(at: AppTest) -> AppTest:
    """Fail on any exception or error message on the page; return the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def table_with(at: AppTest, column: str) -> Any:
    """The first ``st.table`` on the page with ``column``, as a DataFrame."""
    return next(t.value for t in at.table if column in t.value.columns)


def texts(at: AppTest) -> str:
    """Every markdown, caption, title, alert and metric text on the page, in one string."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "success",
        "info",
        "warning",
        "error",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    parts += [str(c.value) for c in at.code]
    return "\n".join(parts)


def charts(at: AppTest) -> list[dict[str, Any]]:
    """The Vega-Lite specs of the Altair charts on the page."""
    found = []
    for element in at.get("vega_lite_chart"):
        proto = getattr(element, "proto", None)
        spec = getattr(proto, "spec", None)
        if spec:
            found.append(json.loads(spec))
    return found
