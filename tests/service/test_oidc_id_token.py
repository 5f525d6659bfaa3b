"""ID-token verification: a token is accepted only with the provider's signature, issuer, audience,
nonce and a live expiry (forged tokens made here with joserfc, not by a provider)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr

from service.errors import SignInFailed
from service.identity import IdentityRegistry
from service.oidc import OidcSignIn
from service.serve_checks import check_serving
from service.settings import Settings, SettingsError
from service.state.sqlite import SqliteStateStore

ISSUER = "https://idp.example.dk"
PROVIDER_KEY = RSAKey.generate_key(2048, parameters={"kid": "provider"}, private=True)
FORGER_KEY = RSAKey.generate_key(2048, parameters={"kid": "provider"}, private=True)


@pytest.fixture
def sign_in(tmp_path: Path) -> OidcSignIn:
    settings = Settings(
        state_dir=tmp_path,
        oidc_issuer=ISSUER,
        oidc_client_id="sundstat",
        oidc_client_secret=SecretStr("secret"),
    )
    store = SqliteStateStore(tmp_path / "service.sqlite")
    flow = OidcSignIn(settings, store, IdentityRegistry(store))
    # The provider's discovery document and published keys, as the worker caches them after fetching.
    flow._metadata = {"issuer": ISSUER, "id_token_signing_alg_values_supported": ["RS256"]}
    flow._jwks = KeySet([PROVIDER_KEY]).as_dict(private=False)
    return flow


def _token(key: RSAKey = PROVIDER_KEY, **change: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "alice", "aud": "sundstat", "iat": now, "exp": now + 300, "nonce": "n-1"}
    claims.update(change)
    claims = {k: v for k, v in claims.items() if v is not None}
    return {"id_token": jwt.encode({"alg": "RS256", "kid": "provider"}, claims, key)}


def _verify(flow: OidcSignIn, token: dict[str, Any]) -> dict[str, Any]:
    assert flow._metadata is not None
    return flow._verified_claims(token, nonce="n-1", metadata=flow._metadata)


def test_a_token_of_the_provider_is_accepted(sign_in: OidcSignIn) -> None:
    assert _verify(sign_in, _token(email="alice@ku.dk"))["email"] == "alice@ku.dk"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: _token(FORGER_KEY), id="signed_by_another_key"),
        pytest.param(lambda: _token(iss="https://evil.example"), id="other_issuer"),
        pytest.param(lambda: _token(aud="another-client"), id="other_audience"),
        pytest.param(lambda: _token(nonce="n-2"), id="other_nonce"),
        pytest.param(lambda: _token(nonce=None), id="no_nonce"),
        pytest.param(lambda: _token(exp=int(time.time()) - 600), id="expired"),
        pytest.param(lambda: {"id_token": _token()["id_token"][:-8] + "AAAAAAAA"}, id="tampered_signature"),
        pytest.param(lambda: {"access_token": "x"}, id="no_id_token"),
    ],
)
def test_a_token_that_does_not_verify_is_refused(sign_in: OidcSignIn, token: Any) -> None:
    with pytest.raises(SignInFailed):
        _verify(sign_in, token())


def test_an_issuer_without_client_credentials_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SUNDSTAT_OIDC_CLIENT_ID and SUNDSTAT_OIDC_CLIENT_SECRET"):
        check_serving(Settings(state_dir=tmp_path, oidc_issuer=ISSUER), need_db=False)
    complete = Settings(
        state_dir=tmp_path, oidc_issuer=ISSUER, oidc_client_id="c", oidc_client_secret=SecretStr("s")
    )
    check_serving(complete, need_db=False)
    assert complete.oidc_callback_url == "http://127.0.0.1:8000/v1/auth/callback"
