"""Rate limits of requests without a token: per client address, and loopback (the dashboard) trusted.

The app runs in-process on the real dataset, with a tiny anonymous limit (2 at once, then ~none), and
Starlette's test client presents each request from a chosen client address.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.service.svc_helpers import ADMIN_TOKEN, assert_error, bearer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # starlette prefers httpx2 for its TestClient
    from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import is_loopback_client
from service.runtime import open_services
from service.settings import Settings

BURST = 2
REMOTE = "203.0.113.7"  # TEST-NET-3: a visitor from elsewhere
OTHER_REMOTE = "198.51.100.20"

Get = Callable[..., Any]


@pytest.fixture
def app_with(dataset: Path, tmp_path: Path) -> Iterator[Callable[..., Callable[[str], Get]]]:
    """Build the app with setting overrides; returns ``client_from(address)`` -> a GET function."""
    opened: list[Any] = []
    clients = contextlib.ExitStack()

    def build(**overrides: Any) -> Callable[[str], Get]:
        settings = Settings(
            db=dataset,
            state_dir=tmp_path / f"state-{len(opened)}",
            admin_token=SecretStr(ADMIN_TOKEN),
            min_response_seconds=0,
            public_rate_limit_per_second=0.001,
            public_rate_limit_burst=BURST,
            rate_limit_per_second=0.001,
            rate_limit_burst=BURST,
            **overrides,
        )
        services = open_services(settings)
        opened.append(services)
        app = create_app(settings, services=services)

        def client_from(address: str) -> Get:
            client = TestClient(app, client=(address, 50000), raise_server_exceptions=False)
            return clients.enter_context(client).get  # entered: the app's lifespan runs

        return client_from

    with clients:
        yield build
    for services in opened:
        services.close()


def _statuses(get: Get, count: int, **kwargs: Any) -> list[int]:
    return [get("/v1/me", **kwargs).status_code for _ in range(count)]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_anonymous_loopback_clients_are_not_limited_by_default(
    app_with: Callable[..., Callable[[str], Get]], address: str
) -> None:
    client_from = app_with()
    assert _statuses(client_from(address), 3 * BURST) == [200] * (3 * BURST)


def test_anonymous_limit_is_per_client_address(app_with: Callable[..., Callable[[str], Get]]) -> None:
    client_from = app_with()
    remote = client_from(REMOTE)
    assert _statuses(remote, BURST) == [200] * BURST
    limited = remote("/v1/catalog")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert _statuses(client_from(OTHER_REMOTE), BURST) == [200] * BURST  # its own bucket
    assert client_from("127.0.0.1")("/v1/me").status_code == 200  # the dashboard is unaffected


def test_loopback_is_limited_when_not_trusted(app_with: Callable[..., Callable[[str], Get]]) -> None:
    local = app_with(trust_loopback_anonymous=False)("127.0.0.1")
    assert _statuses(local, BURST + 1) == [200] * BURST + [429]


def test_token_holders_on_loopback_keep_their_per_token_limit(
    app_with: Callable[..., Callable[[str], Get]],
) -> None:
    local = app_with()("127.0.0.1")
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
