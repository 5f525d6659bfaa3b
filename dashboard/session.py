"""What every page shares: the API client, the signed-in token, the language and error display.

The token lives only in this browser session's ``st.session_state``. The only thing cached across
sessions is the public catalog, keyed by the API URL; everything that depends on a token is fetched
per session (``session_cached``) and never put in ``st.cache_data``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import streamlit as st

from service.client import ApiError, Client

from .i18n import DEFAULT_LANGUAGE, LANGUAGES, translate

__all__ = [
    "API_ERRORS",
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "analyst_project",
    "api",
    "api_url",
    "call_api",
    "forget_session_data",
    "labeller",
    "lang",
    "mark_run_finished",
    "me",
    "public_catalog",
    "render_sidebar",
    "query_options",
    "require_role",
    "session_cached",
    "show_error",
    "sign_in",
    "t",
    "token",
]

API_URL_ENV = "SUNDSTAT_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000"
# Session-state keys. ``_api_transport`` lets tests hand the client an ``httpx.MockTransport``.
TOKEN = "auth_token"
ME = "auth_me"
LANG = "lang"
TRANSPORT = "_api_transport"
_CACHE = "_session_cache"
_SIGNIN_ERROR = "signin_error"
RUNS = "_app_runs"

T = TypeVar("T")
# What a call of the API can raise: an error answer, or no answer at all (refused, timed out, ...).
API_ERRORS = (ApiError, httpx.TransportError)


def api_url() -> str:
    """The API base URL, from ``SUNDSTAT_API_URL``."""
    return os.environ.get(API_URL_ENV, DEFAULT_API_URL).rstrip("/")


def lang() -> str:
    """The chosen UI language (``en`` or ``da``)."""
    value = st.session_state.get(LANG, DEFAULT_LANGUAGE)
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def t(key: str, **values: Any) -> str:
    """A UI string in the chosen language."""
    return translate(lang(), key, **values)


def labeller(prefix: str) -> Callable[[Any], str]:
    """A ``format_func`` showing ``prefix + value`` translated, in the language chosen now."""
    language = lang()
    return lambda value: translate(language, f"{prefix}{value}")


def token() -> str | None:
    """The signed-in token, if any."""
    value = st.session_state.get(TOKEN)
    return value if isinstance(value, str) and value else None


def me() -> dict[str, Any]:
    """``GET /v1/me`` of the signed-in token (kept from sign-in), or the anonymous caller."""
    value = st.session_state.get(ME)
    return value if isinstance(value, dict) else {"role": "anonymous", "project": None, "name": "anonymous"}


def _transport() -> httpx.BaseTransport | None:
    value = st.session_state.get(TRANSPORT)
    return value if isinstance(value, httpx.BaseTransport) else None


@contextmanager
def api(*, anonymous: bool = False) -> Iterator[Client]:
    """A client of the API with this session's token (or none for ``anonymous``)."""
    client = Client(api_url(), token=None if anonymous else token(), transport=_transport())
    try:
        yield client
    finally:
        client.close()


@st.cache_data(ttl=300, show_spinner=False)
def _cached_catalog(url: str, _transport: httpx.BaseTransport | None) -> dict[str, Any]:
    with Client(url, transport=_transport) as client:
        return client.catalog()


def public_catalog() -> dict[str, Any]:
    """The public catalog (no token involved), cached for five minutes per API URL."""
    return _cached_catalog(api_url(), _transport())


@st.cache_data(ttl=300, show_spinner=False)
def _cached_query_options(
    url: str, _transport: httpx.BaseTransport | None, measure: str, register: str, group_by: tuple[str, ...]
) -> dict[str, Any]:
    with Client(url, transport=_transport) as client:
        return client.query_options(measure, register, group_by)


def query_options(measure: str, register: str, group_by: Sequence[str]) -> dict[str, Any]:
    """The engine's limits and the bounds this query may set (public, ``GET /v1/query-options``),
    cached for five minutes per API URL and query shape."""
    return _cached_query_options(api_url(), _transport(), measure, register, tuple(group_by))


def session_cached(name: str, load: Callable[[], T]) -> T:
    """``load()`` once per session (token-dependent data stays in this session only)."""
    cache: dict[str, Any] = st.session_state.setdefault(_CACHE, {})
    if name not in cache:
        cache[name] = load()
    value: T = cache[name]
    return value


def forget_session_data(*names: str) -> None:
    """Drop session-cached data (all of it without names), e.g. after a release changed the budget."""
    cache: dict[str, Any] = st.session_state.setdefault(_CACHE, {})
    for name in names or list(cache):
        cache.pop(name, None)


def call_api(action: Callable[[Client], T], *, anonymous: bool = False) -> T | None:
    """``action(client)`` on a client of this session (or an anonymous one); None after showing the
    error when the API refuses or cannot be reached."""
    try:
        with api(anonymous=anonymous) as client:
            return action(client)
    except API_ERRORS as exc:
        show_error(exc)
        return None


def show_error(exc: ApiError | httpx.TransportError) -> None:
    """Show an API error (its sentence) or an unreachable API."""
    if isinstance(exc, ApiError):
        st.error(t("api_error", status=exc.status, code=exc.code, error=exc.error), icon=":material/error:")
        if exc.status == 401 and token():  # expired or revoked: sign out rather than fail on every page
            _sign_out()
            st.warning(t("session_expired"), icon=":material/logout:")
    else:
        st.error(t("api_unreachable", url=api_url(), error=str(exc)), icon=":material/cloud_off:")


def sign_in(new_token: str) -> bool:
    """Check ``new_token`` with ``GET /v1/me`` and keep it in the session; False (and a message) if refused."""
    new_token = new_token.strip()
    st.session_state.pop(_SIGNIN_ERROR, None)
    if not new_token:
        st.session_state[_SIGNIN_ERROR] = translate(lang(), "signin_empty")
        return False
    try:
        with Client(api_url(), token=new_token, transport=_transport()) as client:
            who = client.me()
    except ApiError as exc:
        st.session_state[_SIGNIN_ERROR] = translate(
            lang(), "api_error", status=exc.status, code=exc.code, error=exc.error
        )
        return False
    except httpx.TransportError as exc:
        st.session_state[_SIGNIN_ERROR] = translate(lang(), "api_unreachable", url=api_url(), error=str(exc))
        return False
    if who.get("role") not in ("admin", "analyst"):
        st.session_state[_SIGNIN_ERROR] = translate(lang(), "signin_refused")
        return False
    _sign_out()  # nothing of an earlier session (or an anonymous applicant) carries over
    st.session_state[TOKEN] = new_token
    st.session_state[ME] = who
    return True


def _sign_in_from_widget() -> None:
    if sign_in(str(st.session_state.get("signin_token", ""))):
        st.session_state["signin_token"] = ""


# What survives a sign-out: the language, the test transport (a way to reach the API) and the count
# of finished runs (``mark_run_finished``); none of them is data.
_KEPT_ON_SIGN_OUT = (LANG, TRANSPORT, RUNS)


def _sign_out() -> None:
    """Forget everything of this session except the language: the token, what was fetched with it
    (projects, budgets, releases, previews, a reopened release), issued tokens and applications,
    and every widget's value (a typed token, a filter)."""
    for key in list(st.session_state.keys()):
        if key not in _KEPT_ON_SIGN_OUT:
            del st.session_state[key]


def render_sidebar() -> None:
    """The language switch and the sign-in box, on every page."""
    with st.sidebar:
        st.radio(
            translate(DEFAULT_LANGUAGE, "language"),
            options=list(LANGUAGES),
            format_func=lambda code: {"en": "English", "da": "Dansk"}[code],
            key=LANG,
            horizontal=True,
        )
        who = me()
        if token():
            st.success(
                t("signed_in_as", name=who.get("name", ""), role=t(f"role_{who.get('role')}")),
                icon=":material/key:",
            )
            if who.get("project"):
                st.caption(t("signed_in_project", project=who["project"]))
            st.button(t("sign_out"), key="signout_button", on_click=_sign_out)
        else:
            st.text_input(t("token"), type="password", key="signin_token", help=t("token_help"))
            st.button(t("sign_in"), key="signin_button", on_click=_sign_in_from_widget, type="primary")
            if st.session_state.get(_SIGNIN_ERROR):
                st.error(st.session_state[_SIGNIN_ERROR])
        st.caption(t("api_at", url=api_url()))


def mark_run_finished() -> None:
    """The last element of every run: an empty sidebar block whose CSS class ``st-key-app_run_<n>``
    counts this session's finished runs, so a browser (or a test) can tell that the app is idle and
    the page is the one of the latest interaction, rather than guessing with a sleep."""
    runs = int(st.session_state.get(RUNS, 0)) + 1
    st.session_state[RUNS] = runs
    st.sidebar.container(key=f"app_run_{runs}", border=False).empty()


def require_role(*roles: str) -> dict[str, Any] | None:
    """The caller if signed in with one of ``roles``; otherwise a hint to sign in, and None."""
    who = me()
    if not token():
        st.info(t("signin_needed"), icon=":material/login:")
        return None
    if who.get("role") not in roles:
        st.warning(t("role_needed", roles=", ".join(t(f"role_{r}") for r in roles)))
        return None
    return who


def analyst_project() -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """An analyst's page: the project id, the public catalog and the project (cached for the session);
    None after saying why there is none (not signed in as an analyst, or the service unreachable)."""
    who = require_role("analyst")
    if who is None:
        return None
    project_id = str(who.get("project"))
    try:
        catalog = public_catalog()
        with api() as client:
            project: dict[str, Any] = session_cached("project", lambda: client.project(project_id))
    except API_ERRORS as exc:
        show_error(exc)
        return None
    return project_id, catalog, project
