"""Sign-in through a real OpenID Connect provider (node-oidc-provider) against a real ``sundstat serve``.

The provider (tests/oidc/provider.mjs) and the server run on free loopback ports; the browser is an
httpx client that follows redirects and posts the provider's login and consent forms as a person would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    sign_in_at_provider,
    start_provider,
)
from tests.helpers.server_fixtures import free_port
from tests.service.svc_helpers import Server, assert_error, bearer, start_server

APPLICATION: dict[str, Any] = {
    "title": "Statin use by region",
    "purpose": "research",
    "institution": "typed by the applicant",
    "summary": "How many persons use statins in each region.",
    "registers": ["cpr", "lmdb"],
    "epsilon": 0.5,
    "delta": 0.0,
    "duration_days": 60,
    "applicant": {"name": "typed", "email": "typed@example.dk"},
}


@pytest.fixture(scope="module")
def oidc(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Provider, Server]]:
    """The provider, and a server (two workers) that signs applicants in through it (ku is registered)."""
    directory = tmp_path_factory.mktemp("oidc")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v1/auth/callback"
    with start_provider(callback, directory) as provider:
        settings = {
            "SUNDSTAT_OIDC_ISSUER": provider.issuer,
            "SUNDSTAT_OIDC_CLIENT_ID": CLIENT_ID,
            "SUNDSTAT_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "SUNDSTAT_OIDC_SCOPES": "openid email profile org",
        }
        # Two workers: a sign-in started in one may come back to the other.
        with start_server(dataset, directory / "state", settings=settings, port=port, workers=2) as server:
            created = httpx.post(
                f"{server.url}/v1/institutions",
                json={"id": "ku", "name": "University of Copenhagen", "email_domains": ["ku.dk"]},
                headers=bearer(server.admin_token),
            )
            assert created.status_code == 201, created.text
            yield provider, server


def _browser() -> httpx.Client:
    """A client that, like a browser, keeps cookies; it shows each redirect instead of following it."""
    return httpx.Client(timeout=30, follow_redirects=False)


def _callback_url(browser: httpx.Client, server: Server, account: str, institution: str | None = "ku") -> str:
    """Start the sign-in at sundstat and sign in as ``account`` at the provider; returns the URL of
    sundstat's callback that the provider sends the browser back to."""
    params = {"institution": institution} if institution else {}
    login = browser.get(f"{server.url}/v1/auth/login", params=params)
    assert login.status_code == 303, login.text
    assert login.headers["location"].startswith("http://127.0.0.1:")
    assert "code_challenge_method=S256" in login.headers["location"]
    return sign_in_at_provider(browser, login.headers["location"], account, f"{server.url}/v1/auth/callback")


def _sign_in(server: Server, account: str, institution: str | None = "ku") -> httpx.Response:
    """The whole browser flow; returns the response of sundstat's callback."""
    with _browser() as browser:
        return browser.get(_callback_url(browser, server, account, institution))


def test_sign_in_gives_an_applicant_token_that_gets_automatic_approval(oidc: tuple[Provider, Server]) -> None:
    _, server = oidc
    response = _sign_in(server, "alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"].startswith("sst_applicant_")
    assert body["institution"]["id"] == "ku" and body["applicant"]["email"] == "alice@ku.dk"
    assert body["applicant"]["signed_in_with"] == oidc[0].issuer
    with httpx.Client(base_url=server.url, timeout=30, headers=bearer(body["token"])) as applicant:
        me = applicant.get("/v1/me").json()
        assert me["role"] == "applicant" and me["applicant"] == body["applicant"]["id"]
        submitted = applicant.post("/v1/applications", json=APPLICATION).json()
        assert submitted["status"] == "approved" and submitted["route"] == "auto", submitted
        assert submitted["token"].startswith("sst_analyst_")
        assert submitted["institution"] == "University of Copenhagen"
        assert submitted["institution_id"] == "ku" and submitted["applicant_id"] == body["applicant"]["id"]
        # An applicant token reads its own applications, and nothing of the analysts'.
        assert applicant.get(f"/v1/applications/{submitted['id']}").json()["status"] == "approved"
        assert [a["id"] for a in applicant.get("/v1/applications").json()] == [submitted["id"]]
        assert_error(applicant.get(f"/v1/projects/{submitted['project']}/budget"), 404, "project_not_found")
    # Signing in again finds the same account.
    again = _sign_in(server, "alice").json()
    assert again["applicant"]["id"] == body["applicant"]["id"] and again["token"] != body["token"]


def test_sign_in_without_an_institution_parameter_finds_it_by_claims(oidc: tuple[Provider, Server]) -> None:
    response = _sign_in(oidc[1], "alice", institution=None)
    assert response.status_code == 200, response.text
    assert response.json()["institution"]["id"] == "ku"


@pytest.mark.parametrize(
    "account",
    [
        pytest.param("bob", id="email_domain_and_org_unknown"),
        pytest.param("carol", id="ku_address_not_verified"),
    ],
)
def test_a_person_outside_registered_institutions_is_refused(
    oidc: tuple[Provider, Server], account: str
) -> None:
    body = assert_error(_sign_in(oidc[1], account), 403, "sign_in_refused")
    assert "institution 'ku'" in body["error"]


def test_a_callback_is_used_once(oidc: tuple[Provider, Server]) -> None:
    _, server = oidc
    with _browser() as browser:
        back = _callback_url(browser, server, "alice")
        assert browser.get(back).status_code == 200
        assert_error(browser.get(back), 401, "sign_in_failed")


def test_only_the_browser_that_started_the_sign_in_can_finish_it(oidc: tuple[Provider, Server]) -> None:
    _, server = oidc
    with _browser() as browser:
        back = _callback_url(browser, server, "alice")
        # Someone who obtained the callback URL (say, sent it to a victim) cannot use it elsewhere ...
        elsewhere = httpx.get(back)
        assert "another browser" in assert_error(elsewhere, 401, "sign_in_failed")["error"]
        # ... and the browser that started the sign-in still finishes it.
        assert browser.get(back).status_code == 200


def test_a_forged_state_or_a_stolen_code_is_refused(oidc: tuple[Provider, Server]) -> None:
    _, server = oidc
    forged = httpx.get(f"{server.url}/v1/auth/callback", params={"code": "x", "state": "made-up"})
    assert_error(forged, 401, "sign_in_failed")
    # A real state with a code that is not the provider's: the code exchange fails.
    with _browser() as browser:
        login = browser.get(f"{server.url}/v1/auth/login")
        state = httpx.URL(login.headers["location"]).params["state"]
        wrong = browser.get(f"{server.url}/v1/auth/callback", params={"code": "not-a-code", "state": state})
        assert_error(wrong, 401, "sign_in_failed")


def test_login_for_an_unknown_institution_is_404(oidc: tuple[Provider, Server]) -> None:
    response = httpx.get(f"{oidc[1].url}/v1/auth/login", params={"institution": "nope"})
    assert_error(response, 404, "institution_not_found")


def test_cancelling_at_the_provider_is_a_clear_refusal(oidc: tuple[Provider, Server]) -> None:
    _, server = oidc
    with _browser() as browser:
        url = browser.get(f"{server.url}/v1/auth/login", params={"institution": "ku"}).headers["location"]
        while (page := browser.get(url)).status_code != 200:
            url = str(page.url.join(page.headers["location"]))
        abort = re.search(r'href="([^"]+/abort)"', page.text)
        assert abort, page.text
        back = browser.get(abort.group(1))
        while not str(back.url).startswith(f"{server.url}/v1/auth/callback"):
            back = browser.get(back.url.join(back.headers["location"]))
    assert "access_denied" in assert_error(back, 401, "sign_in_failed")["error"]
