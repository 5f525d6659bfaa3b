"""Tokens and auth: hashed storage, prefixes, expiry, revocation, bearer parsing and rate limits."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from service.admission import RateLimiter
from service.auth import Principal, authenticate, bearer_token
from service.errors import ProjectNotFound, RateLimited, Unauthorized
from service.state.sqlite import SqliteStateStore
from service.tokens import TokenStore, hash_token, new_token

ENV_ADMIN = "e" * 43


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    return TokenStore(SqliteStateStore(tmp_path / "service.sqlite"), env_admin_token=ENV_ADMIN)


def test_tokens_are_256_bit_with_a_readable_prefix() -> None:
    admin, analyst = new_token("admin"), new_token("analyst")
    assert admin.startswith("sst_admin_") and analyst.startswith("sst_analyst_")
    assert len(analyst.removeprefix("sst_analyst_")) == 43  # token_urlsafe(32): 32 random bytes
    assert new_token("analyst") != analyst


def test_only_the_hash_is_stored(tmp_path: Path, tokens: TokenStore) -> None:
    issued = tokens.issue("analyst", name="a", project="p", ttl=dt.timedelta(days=1))
    raw = (tmp_path / "service.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("service.sqlite-*")
    )
    assert issued.token.encode() not in raw
    row = sqlite3.connect(tmp_path / "service.sqlite").execute("SELECT hash, prefix FROM tokens").fetchone()
    assert row[0] == hash_token(issued.token) and issued.token.startswith(row[1]) and len(row[1]) < 20
    assert (tmp_path / "service.sqlite").stat().st_mode & 0o077 == 0


def test_authenticate_expiry_and_revocation(tokens: TokenStore) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    issued = tokens.issue("analyst", name="a", project="p", ttl=dt.timedelta(days=1), now=now)
    assert tokens.authenticate(issued.token, now=now) is not None
    assert tokens.authenticate(issued.token, now=now + dt.timedelta(days=2)) is None
    tokens.revoke(issued.record.id)
    assert tokens.authenticate(issued.token, now=now) is None
    assert tokens.authenticate("sst_analyst_unknown") is None


def test_environment_admin_token(tokens: TokenStore) -> None:
    record = tokens.authenticate(ENV_ADMIN)
    assert record is not None and record.role == "admin" and record.project is None
    assert tokens.count_admins() == 0  # never stored


def test_analyst_tokens_need_a_project(tokens: TokenStore) -> None:
    with pytest.raises(ValueError):
        tokens.issue("analyst", name="a")
    with pytest.raises(ValueError):
        tokens.issue("admin", name="a", project="p")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("Bearer abc", "abc", id="bearer"),
        pytest.param("bearer  abc ", "abc", id="lowercase"),
    ],
)
def test_bearer_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Token abc"])
def test_bad_authorization_headers_are_401(header: str) -> None:
    with pytest.raises(Unauthorized):
        bearer_token(header)


def test_a_bad_token_is_401_never_anonymous(tokens: TokenStore) -> None:
    with pytest.raises(Unauthorized):
        authenticate("Bearer sst_analyst_nope", tokens, client="127.0.0.1")
    assert authenticate(None, tokens, client="127.0.0.1").role == "anonymous"


def test_analyst_sees_only_their_project() -> None:
    analyst = Principal("analyst", "tok_1", "p")
    analyst.require_project("p")
    with pytest.raises(ProjectNotFound):
        analyst.require_project("q")
    Principal("admin", "tok_2").require_project("q")


def test_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("k")
    with pytest.raises(RateLimited) as refused:
        limiter.check("k")
    assert refused.value.retry_after == pytest.approx(0.5)
    assert refused.value.headers["Retry-After"] == "1"
    limiter.check("other")
    now[0] = 0.5
    limiter.check("k")
    with pytest.raises(RateLimited):
        limiter.check("k")
