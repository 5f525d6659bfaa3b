"""Storage trouble is named: a real full disk under the state directory, and the bounded access-record queue.

The server runs in its own mount namespace (``unshare -Urm``, no root needed where user namespaces
are enabled) with its state directory on a small tmpfs; the test fills that file system through
``/proc/<pid>/root`` until the kernel answers ENOSPC, so SQLite fails exactly as on a full disk.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.access_log import AccessLog
from service.errors import StorageUnavailable
from service.storage_errors import storage_failure
from tests.service.svc_helpers import ADMIN_TOKEN, Server, assert_error, bearer, start_server

TMPFS_SIZE = "24m"
APPLICATION: dict[str, Any] = {
    "title": "Hip fractures by region",
    "purpose": "research",
    "institution": "Aarhus Universitet",
    "summary": "Counts of hip fractures by region and year.",
    "registers": ["cpr", "lpr"],
    "epsilon": 5.0,
    "delta": 0.0,
    "duration_days": 90,
    "applicant": {"name": "Ole Holm", "email": "oh@example.dk"},
}


def _namespace_prefix(mount_point: Path) -> list[str]:
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-Urm", "true"], capture_output=True)
    if unshare is None or probe.returncode != 0:
        pytest.fail(
            "this test needs 'unshare -Urm' (util-linux, user namespaces enabled) to give the server a small "
            f"tmpfs: {probe.stderr.decode(errors='replace').strip()}"
        )
    script = f'mount -t tmpfs -o size={TMPFS_SIZE},mode=0700 tmpfs "$0" && exec "$@"'
    return [unshare, "-Urm", "sh", "-c", script, str(mount_point)]


@pytest.fixture(scope="module")
def small_disk_server(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose state directory lives on a 24 MB tmpfs that only its mount namespace sees."""
    disk = tmp_path_factory.mktemp("small-disk") / "disk"
    disk.mkdir()
    with start_server(dataset, disk / "state", workers=1, prefix=_namespace_prefix(disk)) as running:
        yield running


def _fill(path: Path) -> int:
    """Write ``path`` until the file system is full (ENOSPC); returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    written += out.write(block) or 0
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return written


def test_full_disk_answers_storage_unavailable_and_health_says_so(small_disk_server: Server) -> None:
    server = small_disk_server
    # The state directory as the server sees it, reached through its mount namespace.
    inside = Path(f"/proc/{server.process.pid}/root") / str(server.state_dir).lstrip("/")
    assert (inside / "ledger.sqlite").is_file()
    filler = inside / "filler"
    with httpx.Client(base_url=server.url, timeout=60) as http:
        admin = bearer(ADMIN_TOKEN)
        assert http.get("/v1/health").json()["storage"] == "ok"
        before = len(server.output())
        assert _fill(filler) > 0
        try:
            health = http.get("/v1/health")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded" and health.json()["storage"] == "unavailable"
            assert health.json()["storage_problem"] == "the disk is full"

            project = {
                "id": "full-disk",
                "title": "t" * 200,
                "purpose": "research",
                "registers": ["cpr"],
                "epsilon": 1,
            }
            refused = {
                "ledger write (create project)": http.post("/v1/projects", json=project, headers=admin),
                "service store write (application)": http.post("/v1/applications", json=APPLICATION),
            }
            for what, response in refused.items():
                body = assert_error(response, 503, "storage_unavailable")
                assert "the disk is full" in body["error"] and "operator" in body["error"], what
                assert response.headers["retry-after"] == "30"
                assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            log = server.output()[before:]
            assert "Traceback" not in log, log
            assert log.count("storage unavailable") == len(refused), log
        finally:
            filler.unlink()

        health = http.get("/v1/health").json()
        assert health["status"] == "ok" and health["storage"] == "ok"
        created = http.post("/v1/projects", json=project, headers=admin)
        assert created.status_code == 201, created.text
        assert http.post("/v1/applications", json=APPLICATION).status_code == 201
        verified = http.get("/v1/admin/ledger/verify", headers=admin)
        assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text


class _SqliteSink:
    """A real SQLite table as the access log's sink; ``max_page_count`` makes it a full disk (SQLITE_FULL)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("CREATE TABLE events (kind TEXT, payload TEXT)")
        self.conn.execute("INSERT INTO events VALUES ('start', ?)", ("x" * 3000,))

    def make_full(self) -> None:
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        self.conn.execute(f"PRAGMA max_page_count = {pages}")

    def make_room(self) -> None:
        self.conn.execute("PRAGMA max_page_count = 1000000")

    def append_event(self, kind: str, payload: dict[str, Any], actor: str) -> None:
        self.conn.execute("INSERT INTO events VALUES (?, ?)", (kind, repr(payload) + "y" * 5000))

    def records(self) -> int:
        rows = self.conn.execute("SELECT payload FROM events WHERE kind = 'access_batch'").fetchall()
        return sum(row[0].count("'kind':") for row in rows)


def test_access_queue_is_bounded_and_refuses_when_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = _SqliteSink(tmp_path / "sink.sqlite")
    access = AccessLog(sink, max_records=5)  # not started: every record flushes at once
    sink.make_full()
    with caplog.at_level(logging.INFO, logger="sundstat.service"):
        for i in range(5):
            access.record("project_read", "p", "analyst", n=i)  # kept: the flush fails
        with pytest.raises(StorageUnavailable, match=r"5 access records are waiting .*the disk is full"):
            access.record("project_read", "p", "analyst", n=5)
        assert sink.records() == 0
        sink.make_room()
        assert access.flush() == 5  # nothing was dropped while the storage was full
        access.record("project_read", "p", "analyst", n=6)
    assert sink.records() == 6
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # one line when it started failing, one when it recovered
    assert "the disk is full" in lines[0] and "OperationalError" in lines[0] and "\n" not in lines[0]
    assert "chained again" in lines[1]


def _sqlite_full(tmp_path: Path) -> BaseException:
    sink = _SqliteSink(tmp_path / "full.sqlite")
    sink.make_full()
    with pytest.raises(sqlite3.OperationalError) as caught:
        sink.append_event("x", {}, "a")
    return caught.value


def _sqlite_busy(tmp_path: Path) -> BaseException:
    first = sqlite3.connect(tmp_path / "busy.sqlite", isolation_level=None)
    first.execute("CREATE TABLE t (x)")
    first.execute("BEGIN IMMEDIATE")
    second = sqlite3.connect(tmp_path / "busy.sqlite", isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as caught:
        second.execute("BEGIN IMMEDIATE")
    return caught.value


def _device_full(tmp_path: Path) -> BaseException:
    with pytest.raises(OSError) as caught, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")  # the kernel's always-full device: a real ENOSPC
    return caught.value


def _postgres_disk_full(tmp_path: Path) -> BaseException:
    import psycopg.errors

    from budget_ledger import LedgerUnavailable

    # As budget_ledger.postgres_store wraps it: ``from None`` hides the cause but keeps the context.
    try:
        try:
            raise psycopg.errors.DiskFull("could not extend file: No space left on device")
        except psycopg.Error:
            raise LedgerUnavailable("The PostgreSQL ledger failed at commit.") from None
    except LedgerUnavailable as exc:
        return exc


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(_sqlite_full, "the disk is full", id="sqlite_full"),
        pytest.param(_device_full, "the disk is full", id="enospc"),
        pytest.param(
            _postgres_disk_full, "the database server is out of disk space or memory", id="pg_53100"
        ),
        pytest.param(_sqlite_busy, None, id="sqlite_busy_is_not_storage_trouble"),
        pytest.param(lambda _: ValueError("a bug"), None, id="other_errors_are_not"),
    ],
)
def test_storage_failures_are_recognised(tmp_path: Path, make: Any, reason: str | None) -> None:
    assert storage_failure(make(tmp_path)) == reason
