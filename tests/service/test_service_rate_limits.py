"""Rate limits of requests without a token (per client address, loopback included unless trusted
explicitly), of failed authentications per address, and of the health and public routes.

The app runs in-process on the real dataset, with tiny limits (2 at once, then ~none), and Starlette's
test client presents each request from a chosen client address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.auth import is_loopback_client
from tests.service.svc_helpers import ADMIN_TOKEN, assert_error, bearer

BURST = 2
REMOTE = "203.0.113.7"  # TEST-NET-3: a visitor from elsewhere
OTHER_REMOTE = "198.51.100.20"

Get = Callable[..., Any]


@pytest.fixture(name="app_with")
def tiny_limits(app_with: Callable[..., Any]) -> Callable[..., Callable[[str], Get]]:
    """The in-process app with tiny limits (``BURST`` at once, then ~none); ``client_from(address)``
    returns a GET function presenting requests from that address."""

    def build(**overrides: Any) -> Callable[[str], Get]:
        limits = {
            "public_rate_limit_per_second": 0.001,
            "public_rate_limit_burst": BURST,
            "rate_limit_per_second": 0.001,
            "rate_limit_burst": BURST,
        }
        app = app_with(**{**limits, **overrides})
        return lambda address: app.client_from(address).get

    return build


def _statuses(get: Get, count: int, **kwargs: Any) -> list[int]:
    return [get("/v1/me", **kwargs).status_code for _ in range(count)]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_anonymous_loopback_clients_are_limited_by_default(
    app_with: Callable[..., Callable[[str], Get]], address: str
) -> None:
    client_from = app_with()
    assert _statuses(client_from(address), BURST + 1) == [200] * BURST + [429]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_loopback_exemption_is_an_explicit_opt_in(
    app_with: Callable[..., Callable[[str], Get]], address: str
) -> None:
    client_from = app_with(trust_loopback_anonymous=True)
    assert _statuses(client_from(address), 3 * BURST) == [200] * (3 * BURST)


@pytest.mark.parametrize("route", ["/v1/health", "/v1/catalog", "/v1/transparency", "/v1/catalog/dcat"])
def test_health_and_public_routes_are_limited_per_address(
    app_with: Callable[..., Callable[[str], Get]], route: str
) -> None:
    client_from = app_with()
    remote = client_from(REMOTE)
    assert [remote(route).status_code for _ in range(BURST)] == [200] * BURST
    assert_error(remote(route), 429, "rate_limited")
    assert client_from(OTHER_REMOTE)(route).status_code == 200


def test_failed_authentication_is_limited_per_address(app_with: Callable[..., Callable[[str], Get]]) -> None:
    """100 bad tokens are not 100 x 401: after the burst every token is refused, even a good one."""
    client_from = app_with(auth_failure_burst=5, auth_failure_rate_per_second=0.001)
    guesser = client_from(REMOTE)
    statuses = [guesser("/v1/me", headers=bearer(f"sst_admin_guess{i}")).status_code for i in range(100)]
    assert statuses == [401] * 5 + [429] * 95
    # The guesser learns nothing: the right token is refused too while the address is blocked ...
    blocked = guesser("/v1/me", headers=bearer(ADMIN_TOKEN))
    assert_error(blocked, 429, "rate_limited")
    assert "failed authentications" in blocked.json()["error"]
    # ... while another address, and loopback, are not affected by it.
    assert client_from(OTHER_REMOTE)("/v1/me", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert client_from("127.0.0.1")("/v1/me", headers=bearer("sst_admin_wrong")).status_code == 401


def test_loopback_is_not_exempt_from_the_failed_authentication_limit(
    app_with: Callable[..., Callable[[str], Get]],
) -> None:
    local = app_with(trust_loopback_anonymous=True, auth_failure_burst=3)("127.0.0.1")
    statuses = [local("/v1/me", headers=bearer("sst_admin_wrong")).status_code for _ in range(5)]
    assert statuses == [401] * 3 + [429] * 2


def test_anonymous_limit_is_per_client_address(app_with: Callable[..., Callable[[str], Get]]) -> None:
    client_from = app_with()
    remote = client_from(REMOTE)
    assert _statuses(remote, BURST) == [200] * BURST
    limited = remote("/v1/catalog")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert _statuses(client_from(OTHER_REMOTE), BURST) == [200] * BURST  # its own bucket
    assert client_from("127.0.0.1")("/v1/me").status_code == 200  # the dashboard is unaffected


def test_token_holders_on_loopback_keep_their_per_token_limit(
    app_with: Callable[..., Callable[[str], Get]],
) -> None:
    local = app_with(trust_loopback_anonymous=True)("127.0.0.1")
    assert _statuses(local, BURST + 1, headers=bearer(ADMIN_TOKEN)) == [200] * BURST + [429]
    assert local("/v1/me").status_code == 200  # anonymous from the same address: still exempt
    assert local("/v1/me", headers=bearer("sst_admin_wrong")).status_code == 401  # a bad token is no bypass


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        pytest.param("127.0.0.1", True, id="ipv4"),
        pytest.param("127.1.2.3", True, id="ipv4_net"),
        pytest.param("::1", True, id="ipv6"),
        pytest.param("::ffff:127.0.0.1", True, id="ipv4_mapped"),
        pytest.param("10.0.0.1", False, id="private"),
        pytest.param("::ffff:10.0.0.1", False, id="mapped_private"),
        pytest.param("localhost", False, id="name_not_address"),
        pytest.param("testclient", False, id="test_client"),
        pytest.param("unknown", False, id="unknown"),
    ],
)
def test_is_loopback_client(address: str, loopback: bool) -> None:
    assert is_loopback_client(address) is loopback
