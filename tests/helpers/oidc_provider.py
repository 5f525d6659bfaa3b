"""A real OpenID Connect provider for the sign-in tests, and a person's walk through its forms.

``tests/oidc/provider.mjs`` runs node-oidc-provider (pinned in ``tests/oidc/package.json``) on a free
loopback port with one client and three accounts (see the script). ``start_provider`` installs its npm
dependencies when they are missing (``npm ci``), starts it, and waits for its discovery document.
Without node or npm the tests skip, unless ``SUNDSTAT_REQUIRE_OIDC`` is set (``make test`` sets it).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers.required import missing
from tests.helpers.server_fixtures import Process, free_port, spawn, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = ROOT / "tests" / "oidc"
REQUIRE_ENV = "SUNDSTAT_REQUIRE_OIDC"
CLIENT_ID = "sundstat-test"
CLIENT_SECRET = "sundstat-test-secret"


def _require_node() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    message = "node and npm are needed for the OpenID Connect tests; install the Debian packages nodejs, npm."
    missing(message, REQUIRE_ENV)


def install_provider(npm: str) -> None:
    """``npm ci`` in tests/oidc when its node_modules are missing or older than the lock file."""
    marker = PROVIDER_DIR / "node_modules" / ".package-lock.json"
    lock = PROVIDER_DIR / "package-lock.json"
    if marker.is_file() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PROVIDER_DIR,
        check=True,
        timeout=600,
    )


@dataclass
class Provider(Process):
    """A running provider; ``issuer`` is its URL."""

    issuer: str

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_provider(redirect_uri: str, log_dir: Path, timeout: float = 60.0) -> Provider:
    """Start the provider for a client that returns to ``redirect_uri``; wait for its discovery document."""
    node, npm = _require_node()
    install_provider(npm)
    port = free_port()
    started = spawn(
        [node, str(PROVIDER_DIR / "provider.mjs"), str(port), redirect_uri],
        log_dir / f"oidc-provider-{port}.log",
        {},
    )
    provider = Provider(started.process, started.log, f"http://127.0.0.1:{port}")
    wait_for(f"{provider.issuer}/.well-known/openid-configuration", provider, timeout)
    return provider


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S | re.I)
_INPUT = re.compile(r"<input([^>]*)>", re.I)
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def _form(page: str) -> tuple[str, dict[str, str]]:
    """The first form of ``page``: its action and the values of its named inputs."""
    match = _FORM.search(page)
    assert match, f"no form on the provider's page:\n{page[:2000]}"
    fields: dict[str, str] = {}
    for attrs in _INPUT.findall(match.group(2)):
        values = dict(_ATTR.findall(attrs))
        if "name" in values:
            fields[values["name"]] = html.unescape(values.get("value", ""))
    return html.unescape(match.group(1)), fields


def sign_in_at_provider(browser: httpx.Client, login_url: str, account: str, callback_prefix: str) -> str:
    """Follow ``login_url`` like a browser, sign in as ``account`` at the provider's login form, grant
    consent, and return the URL the provider sends the browser back to (starting ``callback_prefix``)."""
    url = login_url
    for _ in range(20):
        if url.startswith(callback_prefix):
            return url
        response = browser.get(url)
        if response.is_redirect:
            url = str(response.url.join(response.headers["location"]))
            continue
        assert response.status_code == 200, response.text
        action, fields = _form(response.text)
        if "login" in fields:
            fields.update(login=account, password="any password")
        posted = browser.post(str(response.url.join(action)), data=fields)
        assert posted.is_redirect, posted.text
        url = str(posted.url.join(posted.headers["location"]))
    raise AssertionError(f"the sign-in did not come back to {callback_prefix}; last URL {url}")
