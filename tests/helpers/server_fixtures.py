"""What the service and dashboard tests share: a small real dataset and real servers in subprocesses.

Imported as ``tests.helpers.server_fixtures`` (``tests`` is a package; pytest runs with
``--import-mode=importlib`` from the repository root).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_dataset(directory: Path, persons: int, seed: int = 20261128) -> Path:
    """A small synthetic database, generated and built by the real tools, in ``directory``."""
    from datasets.build import build
    from datasets.generate import generate

    generate(persons, seed, directory / "raw", progress=False)
    db = directory / "sundstat.duckdb"
    build(directory / "raw", db)
    return db


@dataclass
class Process:
    """A subprocess in its own process group, with its output in a log file."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """Stop the process group (a server's workers included)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def spawn(command: list[str], log: Path, env: Mapping[str, str]) -> Process:
    """Start ``command`` from the repository root with ``env`` added to the environment."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(process, log)


def wait_for(url: str, process: Process, timeout: float = 90.0) -> None:
    """Wait until ``url`` answers 200, or fail with the process's output (stopping it on a timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise RuntimeError(f"exited with {process.process.returncode}:\n{process.output()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.stop()
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{process.output()}")


@dataclass
class Server(Process):
    """A running ``sundstat serve --no-dashboard``; ``with`` stops it on leaving."""

    url: str
    state_dir: Path
    db: Path
    admin_token: str

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    db: Path,
    state_dir: Path,
    *,
    admin_token: str,
    workers: int = 1,
    settings: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float = 90.0,
    prefix: Sequence[str] = (),
    port: int | None = None,
) -> Server:
    """Run ``sundstat serve --no-dashboard [args]`` on ``db`` with a fresh state directory, on a free
    loopback port (or ``port``), and wait until it answers: generous rate limits (applications and
    failed authentications too: the tests send many bad tokens from 127.0.0.1), no response padding and
    no fixed response times, one engine thread, ``admin_token`` as ``SUNDSTAT_ADMIN_TOKEN``;
    ``settings`` add or override variables; ``prefix`` is a command that runs the server (e.g. in its
    own mount namespace)."""
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "SUNDSTAT_ADMIN_TOKEN": admin_token,
        "SUNDSTAT_MIN_RESPONSE_SECONDS": "0",
        "SUNDSTAT_RESPONSE_LADDER": "off",
        "SUNDSTAT_RATE_LIMIT_PER_SECOND": "5000",
        "SUNDSTAT_RATE_LIMIT_BURST": "5000",
        "SUNDSTAT_PUBLIC_RATE_LIMIT_PER_SECOND": "5000",
        "SUNDSTAT_PUBLIC_RATE_LIMIT_BURST": "5000",
        "SUNDSTAT_APPLICATION_RATE_LIMIT_PER_MINUTE": "5000",
        "SUNDSTAT_AUTH_FAILURE_RATE_PER_SECOND": "5000",
        "SUNDSTAT_AUTH_FAILURE_BURST": "5000",
        "SUNDSTAT_ENGINE_THREADS": "1",
        **(settings or {}),
    }
    command = [
        *prefix,
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
    started = spawn(command, state_dir.parent / f"server-{port}.log", env)
    server = Server(started.process, started.log, f"http://127.0.0.1:{port}", state_dir, db, admin_token)
    wait_for(f"{server.url}/v1/health", server, timeout)
    return server


def create_project(
    http: httpx.Client, body: dict[str, Any], *, token_name: str, headers: Mapping[str, str] | None = None
) -> str:
    """Create a project through the API as an administrator (``http`` or ``headers`` carry the token)
    and issue an analyst token for it; returns the token."""
    created = http.post("/v1/projects", json=body, headers=headers)
    assert created.status_code == 201, created.text
    issued = http.post(f"/v1/projects/{body['id']}/tokens", json={"name": token_name}, headers=headers)
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


REGIONS = ["Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland"]
"""The keys of ``cpr.region``, in the catalog's order."""


def e11_by_region_project(
    http: httpx.Client, project_id: str, *, headers: Mapping[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """A pure project on cpr and lpr (epsilon 1) with an analyst token, and a query for it: persons with
    an E11 contact by region, epsilon 0.25. Returns the token and the query."""
    project = {
        "id": project_id,
        "title": f"Project {project_id}",
        "purpose": "research",
        "registers": ["cpr", "lpr"],
        "mode": "pure",
        "epsilon": 1.0,
        "delta": 0.0,
    }
    token = create_project(http, project, token_name=f"{project_id}-analyst", headers=headers)
    query = {
        "project": project_id,
        "measure": "count_persons",
        "where": [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}],
        "group_by": ["cpr.region"],
        "epsilon": 0.25,
    }
    return token, query
