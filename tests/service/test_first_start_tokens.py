"""No tokens in logs: first-start tokens go to a 0600 file in the state directory and to the terminal only
when standard output is one; the access log leaves query strings out."""

from __future__ import annotations

import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.bootstrap import TOKEN_FILE
from tests.helpers.server_fixtures import ROOT, free_port
from tests.service.svc_helpers import Server, bearer

_TOKEN = re.compile(r"sst_(?:admin|analyst)_[A-Za-z0-9_-]{20,}")


def _file_tokens(state_dir: Path) -> list[str]:
    path = state_dir / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    return _TOKEN.findall(path.read_text())


def test_tokens_are_in_the_state_file_not_in_the_server_log(server: Server) -> None:
    tokens = _file_tokens(server.state_dir)
    assert len(tokens) == 1 and tokens[0].startswith("sst_analyst_")  # admin token came from the env
    log = server.output()
    assert str(server.state_dir / TOKEN_FILE) in log
    assert not _TOKEN.findall(log), "a token reached the server log"
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/v1/projects/demo/budget", headers=bearer(tokens[0])).status_code == 200


class _Terminal:
    """``sundstat serve`` with a pseudo-terminal as its standard output."""

    def __init__(self, db: Path, state_dir: Path) -> None:
        self.port = free_port()
        master, slave = os.openpty()
        env = {k: v for k, v in os.environ.items() if k != "SUNDSTAT_ADMIN_TOKEN"}
        env.update(SUNDSTAT_MIN_RESPONSE_SECONDS="0", SUNDSTAT_ENGINE_THREADS="1")
        command = [sys.executable, "-m", "service.cli", "serve", "--no-dashboard", "--db", str(db)]
        command += ["--state-dir", str(state_dir), "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.text = ""

    def read_until(self, pattern: str, timeout: float = 90.0) -> re.Match[str]:
        """Read the terminal until ``pattern`` appears in what the server printed."""
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.text)) is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and self.process.poll() is None, f"no {pattern!r} in:\n{self.text}"
            if select.select([self.master], [], [], min(remaining, 1.0))[0]:
                self.text += os.read(self.master, 65536).decode(errors="replace")
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        os.close(self.master)


@pytest.fixture
def terminal(dataset: Path, tmp_path: Path) -> Iterator[_Terminal]:
    running = _Terminal(dataset, tmp_path / "state")
    yield running
    running.stop()


def test_a_terminal_sees_the_tokens_and_the_access_log_has_no_query_strings(
    terminal: _Terminal, tmp_path: Path
) -> None:
    admin = terminal.read_until(r"Administrator token: (sst_admin_\S+)").group(1)
    demo = terminal.read_until(r"Demo analyst token \(project 'demo'\): (sst_analyst_\S+)").group(1)
    assert _file_tokens(tmp_path / "state") == [admin, demo]
    terminal.read_until(r"Application startup complete")
    url = f"http://127.0.0.1:{terminal.port}"
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/v1/admin/tokens", headers=bearer(admin)).status_code == 200
        assert (
            http.get("/v1/catalog", params={"format": "json", "status_key": "sak_secret42"}).status_code
            == 200
        )
    line = terminal.read_until(r"[^\n]*GET /v1/catalog[^\n]*").group(0)
    assert "HTTP/1.1" in line and "200" in line, line
    assert "sak_secret42" not in terminal.text and "?" not in line, line
