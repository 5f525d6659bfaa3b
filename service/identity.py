"""Institutions and their applicants: who may receive budget without an administrator's decision.

An administrator registers each institution with what identifies its members at sign-in: the OpenID
Connect issuer (unset: the configured provider), e-mail domains (matched only when the provider says the
address is verified) and values of the organisation claim (``SUNDSTAT_OIDC_ORG_CLAIM``, e.g. ``org``).
An applicant account belongs to one institution; it is created at the first sign-in through OpenID
Connect (keyed by issuer and subject) or by an administrator for installations without a provider.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import Conflict, InstitutionNotFound, InvalidRequest, SignInRefused
from .state import StateStore
from .tokens import utcnow

__all__ = ["Applicant", "Institution", "IdentityRegistry", "normalise_domain"]

_INSTITUTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_DOMAIN = re.compile(r"^(?=.{3,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


def normalise_domain(domain: str) -> str:
    """An e-mail domain in lower case without a leading ``@``; ``InvalidRequest`` if it is not one."""
    text = domain.strip().lower().removeprefix("@")
    if not _DOMAIN.match(text):
        raise InvalidRequest(f"'{domain}' is not an e-mail domain; give it like 'ku.dk'.")
    return text


@dataclass(frozen=True)
class Institution:
    """A research institution whose members may apply with automatic approval."""

    id: str
    name: str
    oidc_issuer: str | None
    email_domains: tuple[str, ...]
    org_values: tuple[str, ...]
    created_at: dt.datetime

    def recognises(self, issuer: str, claims: Mapping[str, Any], org_claim: str) -> bool:
        """True when a verified ID token from ``issuer`` with ``claims`` names a member."""
        if self.oidc_issuer is not None and self.oidc_issuer.rstrip("/") != issuer.rstrip("/"):
            return False
        org = claims.get(org_claim)
        orgs = org if isinstance(org, list) else [org]
        if any(isinstance(o, str) and o in self.org_values for o in orgs):
            return True
        email = claims.get("email")
        if claims.get("email_verified") is True and isinstance(email, str) and "@" in email:
            return email.rsplit("@", 1)[1].lower() in self.email_domains
        return False

    def to_json(self) -> dict[str, Any]:
        """The public form (``GET /v1/institutions``)."""
        return {
            "id": self.id,
            "name": self.name,
            "oidc_issuer": self.oidc_issuer,
            "email_domains": list(self.email_domains),
            "org_values": list(self.org_values),
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }


@dataclass(frozen=True)
class Applicant:
    """A person who applies for projects on behalf of an institution."""

    id: str
    institution: str
    name: str
    email: str
    issuer: str | None
    subject: str | None
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        """The form shown to administrators and to the applicant."""
        return {
            "id": self.id,
            "institution": self.institution,
            "name": self.name,
            "email": self.email,
            "signed_in_with": self.issuer,
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }


def _institution(row: Any) -> Institution:
    return Institution(
        id=row["id"],
        name=row["name"],
        oidc_issuer=row["oidc_issuer"],
        email_domains=tuple(json.loads(row["email_domains"])),
        org_values=tuple(json.loads(row["org_values"])),
        created_at=dt.datetime.fromisoformat(row["created_at"]),
    )


def _applicant(row: Any) -> Applicant:
    return Applicant(
        id=row["id"],
        institution=row["institution"],
        name=row["name"],
        email=row["email"],
        issuer=row["issuer"],
        subject=row["subject"],
        created_at=dt.datetime.fromisoformat(row["created_at"]),
    )


class IdentityRegistry:
    """Register institutions, and create or find their applicants."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    # --- institutions ---------------------------------------------------------------------------

    def create_institution(
        self,
        institution_id: str,
        name: str,
        *,
        oidc_issuer: str | None = None,
        email_domains: Sequence[str] = (),
        org_values: Sequence[str] = (),
        actor: str,
    ) -> Institution:
        """Register an institution; its id is permanent (applicants and quotas refer to it)."""
        if not _INSTITUTION_ID.match(institution_id):
            raise InvalidRequest(
                f"Institution id '{institution_id}' must be 1-40 lower-case letters, digits or '-', e.g. 'ku'."
            )
        if not name.strip():
            raise InvalidRequest("Give the institution's name, e.g. 'University of Copenhagen'.")
        domains = sorted({normalise_domain(d) for d in email_domains})
        orgs = sorted({o.strip() for o in org_values if o.strip()})
        now = utcnow()
        with self._store.write() as conn:
            inserted = conn.execute(
                "INSERT INTO institutions (id, name, oidc_issuer, email_domains, org_values, created_at, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    institution_id,
                    name.strip(),
                    oidc_issuer.rstrip("/") if oidc_issuer else None,
                    json.dumps(domains),
                    json.dumps(orgs),
                    now.isoformat(timespec="seconds"),
                    actor,
                ),
            ).rowcount
        if inserted != 1:
            raise Conflict(
                f"An institution '{institution_id}' exists already; list them with GET /v1/institutions."
            ) from None
        return self.institution(institution_id)

    def institution(self, institution_id: str) -> Institution:
        """One institution by id."""
        row = (
            self._store.read()
            .execute("SELECT * FROM institutions WHERE id = ?", (institution_id,))
            .fetchone()
        )
        if row is None:
            raise InstitutionNotFound(
                f"No institution '{institution_id}'. List them with GET /v1/institutions; an administrator "
                "registers new ones (sundstat admin create-institution)."
            )
        return _institution(row)

    def institutions(self) -> list[Institution]:
        """Every institution, by id."""
        rows = self._store.read().execute("SELECT * FROM institutions ORDER BY id").fetchall()
        return [_institution(r) for r in rows]

    def institution_for(
        self, issuer: str, claims: Mapping[str, Any], org_claim: str, *, wanted: str | None = None
    ) -> Institution:
        """The institution a verified ID token names (``wanted``: it must be that one)."""
        candidates = [self.institution(wanted)] if wanted else self.institutions()
        for institution in candidates:
            if institution.recognises(issuer, claims, org_claim):
                return institution
        where = f"institution '{wanted}'" if wanted else "any registered institution"
        raise SignInRefused(
            f"Your sign-in worked, but your account does not belong to {where} (neither a verified e-mail "
            f"domain nor the '{org_claim}' claim matches). Ask an administrator to register your institution, "
            "or apply without signing in (an administrator then decides)."
        )

    # --- applicants -----------------------------------------------------------------------------

    def create_applicant(
        self,
        institution_id: str,
        *,
        name: str,
        email: str,
        issuer: str | None = None,
        subject: str | None = None,
        actor: str,
    ) -> Applicant:
        """A new applicant account of an existing institution (for an OpenID Connect subject that has
        one already: that account)."""
        self.institution(institution_id)
        if not name.strip() or "@" not in email:
            raise InvalidRequest("An applicant needs a name and an e-mail address.")
        applicant_id = "apl_" + secrets.token_hex(6)
        with self._store.write() as conn:
            # ON CONFLICT: the same subject signing in twice at once gets the one account.
            conn.execute(
                "INSERT INTO applicants (id, institution, name, email, issuer, subject, created_at, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    applicant_id,
                    institution_id,
                    name.strip(),
                    email.strip(),
                    issuer,
                    subject,
                    utcnow().isoformat(timespec="seconds"),
                    actor,
                ),
            )
        if issuer is not None and subject is not None:
            row = (
                self._store.read()
                .execute("SELECT * FROM applicants WHERE issuer = ? AND subject = ?", (issuer, subject))
                .fetchone()
            )
            return _applicant(row)
        return self.applicant(applicant_id)

    def signed_in(
        self, institution: Institution, *, issuer: str, subject: str, name: str, email: str
    ) -> Applicant:
        """The applicant of an OpenID Connect subject, created at the first sign-in.

        A subject keeps its first institution: a person who moves asks an administrator.
        """
        row = (
            self._store.read()
            .execute("SELECT * FROM applicants WHERE issuer = ? AND subject = ?", (issuer, subject))
            .fetchone()
        )
        if row is not None:
            return _applicant(row)
        return self.create_applicant(
            institution.id, name=name, email=email, issuer=issuer, subject=subject, actor="oidc"
        )

    def applicant(self, applicant_id: str) -> Applicant:
        """One applicant by id."""
        row = self._store.read().execute("SELECT * FROM applicants WHERE id = ?", (applicant_id,)).fetchone()
        if row is None:
            raise InvalidRequest(f"No applicant account '{applicant_id}'.")
        return _applicant(row)

    def applicants(self, institution_id: str | None = None) -> list[Applicant]:
        """Every applicant, or those of one institution, oldest first."""
        conn = self._store.read()
        if institution_id is None:
            rows = conn.execute("SELECT * FROM applicants ORDER BY created_at, id").fetchall()
        else:
            rows = conn.execute(
                "SELECT * FROM applicants WHERE institution = ? ORDER BY created_at, id", (institution_id,)
            ).fetchall()
        return [_applicant(r) for r in rows]
