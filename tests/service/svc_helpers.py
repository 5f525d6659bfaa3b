"""Helpers of the service tests: a real server in a subprocess, tokens, and request shortcuts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "sst_admin_test_" + "x" * 40
ERROR_KEYS = {"ok", "code", "error", "status"}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_dataset(directory: Path, persons: int = 5000, seed: int = 20261128) -> Path:
    """Generate and build a small synthetic database with the real generator and build."""
    from datasets.build import build
    from datasets.generate import generate

    generate(persons, seed, directory / "raw", progress=False)
    db = directory / "sundstat.duckdb"
    build(directory / "raw", db)
    return db


@dataclass
class Server:
    """A running ``sundstat serve`` process."""

    url: str
    state_dir: Path
    db: Path
    process: subprocess.Popen[bytes]
    log: Path
    admin_token: str = ADMIN_TOKEN
    env: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """Stop the server's process group (its workers included)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_server(
    db: Path,
    state_dir: Path,
    *,
    workers: int = 2,
    settings: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float = 90.0,
) -> Server:
    """Run ``sundstat serve --no-dashboard [args]`` on a free loopback port and wait until it answers."""
    port = free_port()
    log = state_dir.parent / f"server-{port}.log"
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SUNDSTAT_ADMIN_TOKEN": ADMIN_TOKEN,
        "SUNDSTAT_MIN_RESPONSE_SECONDS": "0",
        "SUNDSTAT_RATE_LIMIT_PER_SECOND": "5000",
        "SUNDSTAT_RATE_LIMIT_BURST": "5000",
        "SUNDSTAT_PUBLIC_RATE_LIMIT_PER_SECOND": "5000",
        "SUNDSTAT_PUBLIC_RATE_LIMIT_BURST": "5000",
        "SUNDSTAT_ENGINE_THREADS": "1",
        **(settings or {}),
    }
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--no-dashboard",
        "--no-access-log",
        "--log-level",
        "warning",
        "--db",
        str(db),
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
        "--workers",
        str(workers),
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", state_dir, db, process, log, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/v1/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the server did not answer within {timeout} s:\n{server.output()}")


@dataclass(frozen=True)
class ProjectAccess:
    """A project created through the API and an analyst token for it."""

    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The analyst's Authorization header."""
        return bearer(self.token)


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header for ``token`` (none for None)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the one error body with this status (and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["ok"] is False and body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    if code is not None:
        assert body["code"] == code, body
    return dict(body)


def fire_queries(url: str, token: str, queries: list[dict[str, Any]], threads: int) -> list[tuple[int, str]]:
    """POST every query at once from ``threads`` threads; returns (status, code or release id) each.

    Top-level so that a process pool can run it in several client processes.
    """
    from concurrent.futures import ThreadPoolExecutor

    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with httpx.Client(base_url=url, headers=bearer(token), timeout=120, limits=limits) as client:

        def one(query: dict[str, Any]) -> tuple[int, str]:
            response = client.post("/v1/queries", json=query)
            body = response.json()
            return response.status_code, str(body.get("release_id") or body.get("code"))

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, queries))
