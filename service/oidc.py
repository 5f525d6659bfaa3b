"""Sign-in of applicants through their institution's OpenID Connect provider (Authlib).

The authorization-code flow with PKCE (S256), as a research institution's login works::

    GET /v1/auth/login?institution=ku
        -> a fresh state, nonce and code verifier are stored (10 minutes, used once); the state is also
           set as a cookie, so only the browser that started the sign-in can finish it
        -> 303 to the provider's authorization endpoint
    the person signs in at the provider, which sends the browser back to
    GET /v1/auth/callback?code=...&state=...
        -> the state must match the cookie and is taken (once); the code is exchanged with the code verifier and the client secret
        -> the ID token's signature (the provider's published keys), issuer, audience, expiry and nonce
           are verified
        -> the verified claims name an institution (see ``service.identity``); the applicant is found or
           created, and an applicant token is issued

The flow state lives in the service database, so a callback may reach any worker. Only the verified ID
token's claims are used: the institution-identifying claims (``email`` with ``email_verified``, or the
organisation claim) must be in the ID token.
"""

from __future__ import annotations

import datetime as dt
import hmac
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from .errors import SignInFailed, SignInNotConfigured, SignInUnavailable
from .identity import Applicant, IdentityRegistry, Institution
from .settings import Settings
from .state import StateStore
from .tokens import utcnow

with warnings.catch_warnings():
    # Authlib would prefer the httpx2 package; its httpx client works the same on httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

__all__ = ["LOGIN_COOKIE", "LOGIN_LIFETIME", "OidcSignIn", "SignedIn"]

LOGIN_LIFETIME = dt.timedelta(minutes=10)
LOGIN_COOKIE = "sundstat_sign_in"
_LEEWAY_SECONDS = 60
_TIMEOUT_SECONDS = 10.0
_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


@dataclass(frozen=True)
class SignedIn:
    """A verified sign-in: the applicant (found or created) and their institution."""

    applicant: Applicant
    institution: Institution


class OidcSignIn:
    """Start and finish sign-ins at the configured provider; one per worker (it caches the metadata)."""

    def __init__(self, settings: Settings, store: StateStore, registry: IdentityRegistry) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None

    @property
    def issuer(self) -> str:
        """The configured issuer (without a trailing slash)."""
        if not self._settings.oidc_enabled:
            raise SignInNotConfigured(
                "Sign-in is not set up on this installation (SUNDSTAT_OIDC_ISSUER is unset). Ask an "
                "administrator for an applicant token (sundstat admin create-applicant), or apply without "
                "one (an administrator then decides)."
            )
        assert self._settings.oidc_issuer is not None
        return self._settings.oidc_issuer.rstrip("/")

    # --- the provider ---------------------------------------------------------------------------

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=_TIMEOUT_SECONDS, follow_redirects=False)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInUnavailable(
                f"The identity provider at {self.issuer} does not answer ({type(exc).__name__}); try again "
                "later."
            ) from None
        if not isinstance(data, dict):
            raise SignInUnavailable(f"The identity provider's document at {url} is not a JSON object.")
        return data

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once per worker; its issuer must match)."""
        with self._lock:
            if self._metadata is None:
                data = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
                if str(data.get("issuer", "")).rstrip("/") != self.issuer:
                    raise SignInUnavailable(
                        f"The discovery document names issuer {data.get('issuer')!r}, not {self.issuer!r}: "
                        "check SUNDSTAT_OIDC_ISSUER."
                    )
                missing = [k for k in _ENDPOINTS if not isinstance(data.get(k), str)]
                if missing:
                    raise SignInUnavailable(
                        f"The identity provider's discovery document lacks {', '.join(missing)}; is "
                        f"{self.issuer} an OpenID Connect provider?"
                    )
                self._metadata = data
            return self._metadata

    def _key_set(self, *, refresh: bool) -> KeySet:
        """The provider's published signing keys (cached; ``refresh`` fetches them again)."""
        with self._lock:
            jwks = None if refresh else self._jwks
        if jwks is None:
            jwks = self._get_json(str(self.metadata()["jwks_uri"]))
            with self._lock:
                self._jwks = jwks
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]

    def _client(self) -> OAuth2Client:
        secret = self._settings.oidc_client_secret
        return OAuth2Client(
            client_id=self._settings.oidc_client_id,
            client_secret=None if secret is None else secret.get_secret_value(),
            scope=self._settings.oidc_scopes,
            redirect_uri=self._settings.oidc_callback_url,
            code_challenge_method="S256",
            timeout=_TIMEOUT_SECONDS,
        )

    # --- the flow -------------------------------------------------------------------------------

    def start(self, institution: str | None) -> tuple[str, str]:
        """Remember a new sign-in; the provider URL to send the browser to, and the state that the
        browser keeps in a cookie (so only the browser that started a sign-in can finish it)."""
        if institution is not None:
            self._registry.institution(institution)
        endpoint = str(self.metadata()["authorization_endpoint"])
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        now = utcnow()
        with self._store.write() as conn:
            conn.execute(
                "DELETE FROM oidc_logins WHERE created_at < ?", ((now - LOGIN_LIFETIME).isoformat(),)
            )
            conn.execute(
                "INSERT INTO oidc_logins (state, nonce, code_verifier, institution, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (state, nonce, verifier, institution, now.isoformat()),
            )
        with self._client() as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, nonce=nonce, code_verifier=verifier
            )
        return str(url), state

    def _take_login(self, state: str) -> tuple[str, str, str | None]:
        """The nonce, code verifier and wanted institution of a pending sign-in, removed (used once)."""
        with self._store.write() as conn:
            # One statement: of two finishes of one sign-in (on any hosts), only one gets the row.
            row = conn.execute("DELETE FROM oidc_logins WHERE state = ? RETURNING *", (state,)).fetchone()
        if row is None or utcnow() - dt.datetime.fromisoformat(row["created_at"]) > LOGIN_LIFETIME:
            raise SignInFailed(
                "This sign-in has expired or was completed already. Start again at /v1/auth/login."
            )
        return row["nonce"], row["code_verifier"], row["institution"]

    def finish(
        self, *, code: str | None, state: str | None, browser_state: str | None, error: str | None = None
    ) -> SignedIn:
        """Verify the provider's answer (in the browser that started the sign-in: ``browser_state`` is
        its cookie) and return the signed-in applicant."""
        issuer = self.issuer
        if not state:
            raise SignInFailed("The callback has no 'state'. Start again at /v1/auth/login.")
        if browser_state is None or not hmac.compare_digest(browser_state, state):
            # Left unused: the browser that started this sign-in may still finish it.
            raise SignInFailed(
                "This sign-in was started in another browser (or cookies are blocked). Start again at "
                "/v1/auth/login in this browser."
            )
        nonce, verifier, wanted = self._take_login(state)
        if error or not code:
            shown = "".join(c for c in (error or "no code")[:60] if c.isalnum() or c in "_- ")
            raise SignInFailed(f"The identity provider did not sign you in ({shown}). Start again.")
        metadata = self.metadata()
        try:
            with self._client() as client:
                token = client.fetch_token(str(metadata["token_endpoint"]), code=code, code_verifier=verifier)
        except OAuthError as exc:
            raise SignInFailed(
                f"The identity provider refused the sign-in code ({exc.error}). Start again."
            ) from None
        except httpx.HTTPError as exc:
            raise SignInUnavailable(
                f"The identity provider's token endpoint does not answer ({type(exc).__name__})."
            ) from None
        claims = self._verified_claims(token, nonce=nonce, metadata=metadata)
        institution = self._registry.institution_for(
            issuer, claims, self._settings.oidc_org_claim, wanted=wanted
        )
        email = str(claims.get("email") or "")
        applicant = self._registry.signed_in(
            institution,
            issuer=issuer,
            subject=str(claims["sub"]),
            name=str(claims.get("name") or email or claims["sub"]),
            email=email or f"{claims['sub']}@{institution.id}.invalid",
        )
        return SignedIn(applicant, institution)

    def _verified_claims(
        self, token: dict[str, Any], *, nonce: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """The ID token's claims after checking signature, issuer, audience, expiry, nonce and at_hash."""
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("The identity provider sent no ID token; is the 'openid' scope allowed?")
        algorithms = [
            a for a in metadata.get("id_token_signing_alg_values_supported") or ["RS256"] if a != "none"
        ]
        registry = JWSRegistry(algorithms=algorithms)
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(refresh=False), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys
                decoded = jwt.decode(id_token, self._key_set(refresh=True), registry=registry)
            client_id = self._settings.oidc_client_id
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "value": str(metadata["issuer"])},
                    "aud": {"essential": True, "value": client_id},
                },
                {"nonce": nonce, "client_id": client_id, "access_token": token.get("access_token")},
            )
            claims.validate(leeway=_LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise SignInFailed(
                f"The identity provider's ID token did not verify ({type(exc).__name__}). Start again."
            ) from None
        if not claims.get("sub"):
            raise SignInFailed("The ID token names no subject ('sub').")
        return dict(claims)
