"""A throwaway PostgreSQL server on loopback for the ledger's PostgreSQL tests and benchmark.

``TemporaryPostgres`` runs ``initdb`` into a fresh temporary directory and starts the server with
``pg_ctl`` on a free port of 127.0.0.1 (its Unix socket stays in that directory), with the durable
defaults (``fsync=on``, ``synchronous_commit=on``). ``initdb`` refuses to run as root, so as root the
server runs as the ``postgres`` system user (created as ``sundstat-pg`` if there is none). The ledger
connects over TCP as ``sundstat``, an ordinary role with a password; the superuser ``sundstat_admin``
is only reachable through the socket and is what tests use to tamper or change server settings.

A watchdog process stops the server and removes the directory if the Python process that started it
dies without doing so (for instance a test run killed by a CI timeout).

The pytest fixtures: ``postgres_server`` (one server for the whole session, skipped only when the
binaries are missing and ``SUNDSTAT_REQUIRE_POSTGRES`` is unset) and ``pg_url`` (a fresh schema per
test). Test modules import ``postgres_server_fixture`` and ``pg_url_fixture`` to register them.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.helpers.required import missing

REQUIRE_ENV = "SUNDSTAT_REQUIRE_POSTGRES"
SUPERUSER = "sundstat_admin"
APP_USER = "sundstat"
_FALLBACK_OS_USER = "sundstat-pg"

_WATCHDOG = """
import os, shutil, subprocess, sys, time
owner, pg_ctl, data, base, run_as = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
while os.path.isdir(data):
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        subprocess.run(run_as + [pg_ctl, "-D", data, "stop", "-m", "immediate"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        break
    time.sleep(1)
"""


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: PATH first, then Debian's layout."""
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(d) for d in debian), key=lambda d: _version_key(d.parent.name), reverse=True)
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)) or (0,)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_os_user() -> str | None:
    """Who runs the server: None for the current user, a system user when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", _FALLBACK_OS_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            _FALLBACK_OS_USER,
        ],
        check=True,
        capture_output=True,
    )
    return _FALLBACK_OS_USER


class TemporaryPostgres:
    """A PostgreSQL server in a temporary directory, listening on 127.0.0.1 only."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.os_user = _server_os_user()
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        # The server's user must be able to reach the directory: /tmp rather than a private TMPDIR.
        self.base = Path(tempfile.mkdtemp(prefix="sundstat-pg-", dir="/tmp" if self.os_user else None))
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log = self.base / "server.log"
        self._counter = itertools.count(1)
        self._counter_lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._shared_db: str | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def _as_server_user(self) -> list[str]:
        return [] if self.os_user is None else ["runuser", "-u", self.os_user, "--"]

    def _run(self, args: Sequence[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_server_user(), *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self) -> TemporaryPostgres:
        """initdb, then start the server (retrying on another port if one was taken meanwhile)."""
        self.socket_dir.mkdir()
        password_file = self.base / "password"
        password_file.write_text(self.password + "\n")
        if self.os_user is not None:
            entry = pwd.getpwnam(self.os_user)
            for path in (self.base, self.socket_dir, password_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.base.chmod(0o700)
        initdb = self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={password_file}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # only initdb's own files; the running server keeps fsync=on
            ]
        )
        password_file.unlink()
        if initdb.returncode != 0:
            self.cleanup()
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        self._start_watchdog()
        for _ in range(5):
            self.port = _free_port()
            started = self._pg_ctl_start()
            if started.returncode == 0:
                break
            if "could not bind" not in self.log_text():
                self.stop()
                raise RuntimeError(
                    f"pg_ctl start failed:\n{started.stdout}\n{started.stderr}\n{self.log_text()}"
                )
        else:
            self.stop()
            raise RuntimeError("PostgreSQL found no free port in 5 attempts.")
        self.sql(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{self.password}'")
        return self

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        options = [
            f"-p {self.port}",
            f"-k {self.socket_dir}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=300",
            "-c shared_buffers=64MB",
        ]
        return self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
            ]
        )

    def crash_and_restart(self) -> None:
        """Crash the server (immediate shutdown: no checkpoint, WAL not yet flushed is lost), then
        start it again on the same port; it recovers from the WAL."""
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate", "-w"])
        started = self._pg_ctl_start()
        if started.returncode != 0:
            raise RuntimeError(f"restart after the crash failed:\n{started.stderr}\n{self.log_text()}")

    def _start_watchdog(self) -> None:
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHDOG,
                str(self._owner_pid),
                str(self.bindir / "pg_ctl"),
                str(self.data),
                str(self.base),
                *self._as_server_user(),
            ],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def log_text(self) -> str:
        """The server log so far ('' if none)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if os.getpid() != self._owner_pid:
            return  # a forked child must never stop its parent's server
        if (self.data / "postmaster.pid").exists():
            # immediate: no shutdown checkpoint (seconds of fsync on a busy disk); the data is thrown away.
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate", "-w"],
                timeout=60,
            )
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the directory and end the watchdog."""
        shutil.rmtree(self.base, ignore_errors=True)
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- use -------------------------------------------------------------------------------------

    def url(self, dbname: str, *, user: str = APP_USER, password: str | None = None, **params: str) -> str:
        """A TCP URL for the ledger (the ordinary role by default); ``params`` go in the query string."""
        secret = self.password if password is None else password
        query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
        return f"postgresql://{user}:{quote(secret, safe='')}@127.0.0.1:{self.port}/{dbname}" + (
            f"?{query}" if query else ""
        )

    def admin_connect(self, target: str = "postgres") -> psycopg.Connection[Any]:
        """A superuser connection over the Unix socket (autocommit).

        ``target`` is a database name, or a ledger URL: then its database and search path.
        """
        options = ""
        dbname = target
        if "://" in target:
            parts = conninfo_to_dict(target)
            dbname, options = str(parts["dbname"]), str(parts.get("options", ""))
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            options=options,
            autocommit=True,
        )

    def sql(self, statement: str, target: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser in ``target`` (see ``admin_connect``); return its rows."""
        with self.admin_connect(target) as con:
            cursor = con.execute(statement.encode())
            return cursor.fetchall() if cursor.description is not None else []

    def _name(self, prefix: str) -> str:
        with self._counter_lock:
            return f"{prefix}_{os.getpid()}_{next(self._counter)}"

    def create_database(self, prefix: str = "ledger") -> str:
        """A new empty database owned by the ordinary role; returns its name."""
        name = self._name(prefix)
        self.sql(f"CREATE DATABASE {name} OWNER {APP_USER} TEMPLATE template0")
        return name

    def schema_url(self) -> str:
        """The URL of a new empty schema (in one shared database), first on the search path.

        Much cheaper than a database per test; its name is also the URL's ``application_name``, so a
        test can find (and terminate) exactly its own sessions.
        """
        with self._counter_lock:
            if self._shared_db is None:
                self._shared_db = f"ledger_tests_{os.getpid()}"
                self.sql(f"CREATE DATABASE {self._shared_db} OWNER {APP_USER} TEMPLATE template0")
        name = self._name("t")
        self.sql(f"CREATE SCHEMA {name} AUTHORIZATION {APP_USER}", self._shared_db)
        return self.url(self._shared_db, options=f"-c search_path={name}", application_name=name)

    def terminate_sessions(self, url: str) -> int:
        """Terminate the server sessions opened with this URL's application_name; return how many."""
        name = conninfo_to_dict(url)["application_name"]
        rows = self.sql(
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{name}'"
        )
        return int(rows[0][0])

    def wait_for_setting(self, name: str, value: str, timeout: float = 10.0) -> None:
        """Poll new sessions until ``SHOW name`` gives ``value`` (after a reload)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.sql(f"SHOW {name}")[0][0] == value:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not become {value!r} after a reload")
            time.sleep(0.05)


def hang_up(con: psycopg.Connection[Any]) -> None:
    """Shut a client connection's socket down under psycopg, as a server that went away leaves it."""
    with socket.socket(fileno=os.dup(con.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)


def hang_up_new_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``psycopg.connect`` hang up each new connection right after the server accepted it, as a
    server that crashes between the connection and its first statement does."""
    connect = psycopg.connect

    def connect_then_hang_up(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
        con = connect(*args, **kwargs)
        hang_up(con)
        return con

    monkeypatch.setattr(psycopg, "connect", connect_then_hang_up)


# --- pytest fixtures: one server per session, shared by every module that imports them --------

_shared: dict[str, Any] = {"server": None, "users": 0}
_shared_lock = threading.Lock()


def require_bindir() -> Path:
    """The server binaries' directory; skip if missing, or fail when SUNDSTAT_REQUIRE_POSTGRES is set."""
    bindir = find_bindir()
    if bindir is None:
        message = (
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install the Debian package 'postgresql'."
        )
        missing(message, REQUIRE_ENV)
    return bindir


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[TemporaryPostgres]:
    """The session's PostgreSQL server (started by the first module that needs it)."""
    bindir = require_bindir()
    with _shared_lock:
        if _shared["server"] is None:
            _shared["server"] = TemporaryPostgres(bindir).start()
        _shared["users"] += 1
        server: TemporaryPostgres = _shared["server"]
    try:
        yield server
    finally:
        with _shared_lock:
            _shared["users"] -= 1
            if _shared["users"] == 0:
                server.stop()
                _shared["server"] = None


@pytest.fixture(name="pg_url")
def pg_url_fixture(postgres_server: TemporaryPostgres) -> str:
    """The URL of a fresh, empty schema for one test."""
    return postgres_server.schema_url()
