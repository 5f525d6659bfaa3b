"""Bearer tokens: 256-bit random secrets with a readable prefix, stored only as SHA-256 hashes.

A token looks like ``sst_analyst_<43 url-safe characters>``; the secret part is
``secrets.token_urlsafe(32)``. It is shown once when issued. The store keeps its hash, a short
display prefix, the role (``admin``, ``analyst`` or ``applicant``), the one project of an analyst token,
the applicant account of an applicant token, an expiry and a revocation time. The administrator token from ``SUNDSTAT_ADMIN_TOKEN`` is never stored: it is
compared against its hash in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from budget_ledger import Ledger

from .errors import TokenNotFound
from .permits import ttl_within_permit
from .state import StateStore

__all__ = [
    "ENV_ADMIN_TOKEN_ID",
    "IssuedToken",
    "Role",
    "TokenRecord",
    "TokenStore",
    "hash_token",
    "issue_audited",
    "new_token",
    "utcnow",
]

Role = Literal["admin", "analyst", "applicant"]
ENV_ADMIN_TOKEN_ID = "tok_env_admin"
_PREFIXES: dict[str, str] = {"admin": "sst_admin_", "analyst": "sst_analyst_", "applicant": "sst_applicant_"}


def utcnow() -> dt.datetime:
    """The current time in UTC (timezone-aware)."""
    return dt.datetime.now(dt.UTC)


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.UTC).isoformat(timespec="seconds")


def _parse(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(role: Role) -> str:
    """A fresh token: readable role prefix plus 256 random bits."""
    return _PREFIXES[role] + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenRecord:
    """What the service knows about a token (never the token itself)."""

    id: str
    prefix: str
    role: Role
    project: str | None
    name: str
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    applicant: str | None = None

    def is_active(self, now: dt.datetime) -> bool:
        """True when neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    @property
    def actor(self) -> str:
        """How this token's holder is named in the audit chain."""
        return f"{self.role}:{self.id}"


@dataclass(frozen=True)
class IssuedToken:
    """A newly issued token: the secret (shown once) and its record."""

    token: str
    record: TokenRecord


def _record(row: Any) -> TokenRecord:
    created_at = _parse(row["created_at"])
    assert created_at is not None
    return TokenRecord(
        id=row["id"],
        prefix=row["prefix"],
        role=row["role"],
        project=row["project"],
        name=row["name"],
        created_at=created_at,
        created_by=row["created_by"],
        expires_at=_parse(row["expires_at"]),
        revoked_at=_parse(row["revoked_at"]),
        applicant=row["applicant"],
    )


class TokenStore:
    """Issue, authenticate, list and revoke tokens."""

    def __init__(self, store: StateStore, *, env_admin_token: str | None = None) -> None:
        self._store = store
        self._env_admin_hash = hash_token(env_admin_token) if env_admin_token else None

    @property
    def has_env_admin(self) -> bool:
        """True when the administrator token comes from ``SUNDSTAT_ADMIN_TOKEN``."""
        return self._env_admin_hash is not None

    def issue(
        self,
        role: Role,
        *,
        name: str,
        project: str | None = None,
        applicant: str | None = None,
        ttl: dt.timedelta | None = None,
        created_by: str = "system",
        now: dt.datetime | None = None,
    ) -> IssuedToken:
        """Create a token; the returned secret is never stored and cannot be shown again."""
        if (role == "analyst") != (project is not None):
            raise ValueError("an analyst token needs a project; other tokens have none")
        if (role == "applicant") != (applicant is not None):
            raise ValueError("an applicant token needs an applicant account; other tokens have none")
        now = now or utcnow()
        token = new_token(role)
        record = TokenRecord(
            id="tok_" + secrets.token_hex(6),
            prefix=token[: len(_PREFIXES[role]) + 4],
            role=role,
            project=project,
            name=name,
            created_at=now.replace(microsecond=0),
            created_by=created_by,
            expires_at=None if ttl is None else (now + ttl).replace(microsecond=0),
            revoked_at=None,
            applicant=applicant,
        )
        with self._store.write() as conn:
            conn.execute(
                "INSERT INTO tokens (id, hash, prefix, role, project, applicant, name, created_at, "
                "created_by, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    record.id,
                    hash_token(token),
                    record.prefix,
                    role,
                    project,
                    applicant,
                    name,
                    _iso(record.created_at),
                    created_by,
                    _iso(record.expires_at),
                ),
            )
        return IssuedToken(token, record)

    def authenticate(self, token: str, *, now: dt.datetime | None = None) -> TokenRecord | None:
        """The active record of ``token``, or None if it is unknown, expired or revoked."""
        digest = hash_token(token)
        if self._env_admin_hash is not None and hmac.compare_digest(digest, self._env_admin_hash):
            return TokenRecord(
                id=ENV_ADMIN_TOKEN_ID,
                prefix=token[:8],
                role="admin",
                project=None,
                name="SUNDSTAT_ADMIN_TOKEN",
                created_at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                created_by="environment",
                expires_at=None,
                revoked_at=None,
            )
        row = self._store.read().execute("SELECT * FROM tokens WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            return None
        record = _record(row)
        return record if record.is_active(now or utcnow()) else None

    def get(self, token_id: str) -> TokenRecord:
        """The record of one token id."""
        row = self._store.read().execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            raise TokenNotFound(f"No token with id '{token_id}'. List tokens with GET /v1/admin/tokens.")
        return _record(row)

    def list(self, *, project: str | None = None) -> list[TokenRecord]:
        """Every token, or the tokens of one project, oldest first."""
        conn = self._store.read()
        if project is None:
            rows = conn.execute("SELECT * FROM tokens ORDER BY created_at, id").fetchall()
        else:
            rows = conn.execute(
                "SELECT * FROM tokens WHERE project = ? ORDER BY created_at, id", (project,)
            ).fetchall()
        return [_record(r) for r in rows]

    def revoke(self, token_id: str, *, now: dt.datetime | None = None) -> TokenRecord:
        """Revoke a token (idempotent); it stops working at once in every worker."""
        with self._store.write() as conn:
            row = conn.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
            if row is None:
                raise TokenNotFound(f"No token with id '{token_id}'. List tokens with GET /v1/admin/tokens.")
            if row["revoked_at"] is None:
                conn.execute(
                    "UPDATE tokens SET revoked_at = ? WHERE id = ?", (_iso(now or utcnow()), token_id)
                )
        return self.get(token_id)

    def count_admins(self) -> int:
        """Number of stored administrator tokens (revoked or not)."""
        row = self._store.read().execute("SELECT count(*) FROM tokens WHERE role = 'admin'").fetchone()
        return int(row[0])


def issue_audited(
    tokens: TokenStore,
    ledger: Ledger,
    role: Role,
    *,
    name: str,
    project: str | None = None,
    applicant: str | None = None,
    ttl: dt.timedelta,
    actor: str,
) -> IssuedToken:
    """Issue a token and chain a ``token_issued`` event (its id, never the token) in the audit chain.

    A project's token ends no later than the project's permit (its expiry day, UTC).
    """
    if project is not None:
        ttl = ttl_within_permit(ledger.get_project(project).expires, ttl, utcnow())
    issued = tokens.issue(role, name=name, project=project, applicant=applicant, ttl=ttl, created_by=actor)
    event = {"project": project, "token_id": issued.record.id, "name": name, "role": role}
    if applicant is not None:
        event["applicant"] = applicant
    ledger.append_event("token_issued", event, actor)
    return issued
