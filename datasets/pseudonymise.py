"""CPR numbers: validation and keyed pseudonymisation.

A CPR number is ``DDMMYY-SSSS`` (the dash is optional). Its first six digits are the date of birth;
the century follows from the 7th digit and the two-digit year (the CPR office's rule, see
``cpr_birth_date``). The modulus-11 check is deliberately not applied: numbers issued since 2007
need not satisfy it.

A person's pseudonym is the first 8 bytes of HMAC-SHA256(key, normalised 10-digit CPR number) read
as a big-endian integer and masked to 63 bits, so it is a non-negative BIGINT. Without the key the
pseudonym cannot be recomputed from a CPR number, and the same key always gives the same pseudonym,
so registers pseudonymised separately still link.

The validation rules exist twice: as Python (``cpr_problem``, the reference) and as DuckDB SQL
(``cpr_sql``, for set-based validation of millions of rows). A test keeps the two in agreement.
Nothing here ever puts a CPR number or a key into an error message.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "KEY_ENV_VAR",
    "MIN_KEY_BYTES",
    "CprSql",
    "InvalidCprError",
    "PseudonymKeyError",
    "cpr_birth_date",
    "cpr_problem",
    "cpr_sql",
    "load_key",
    "normalise_cpr",
    "parse_key",
    "pseudonym",
    "pseudonymise",
]

KEY_ENV_VAR = "SUNDSTAT_PSEUDONYM_KEY"
MIN_KEY_BYTES = 32
_MIN_DISTINCT_BYTES = 16
_MASK_63 = np.uint64(0x7FFF_FFFF_FFFF_FFFF)
_HEX_KEY = re.compile(r"(?:[0-9a-fA-F]{2})+")
_BASE64_KEY = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_KEY_HINT = (
    'e.g. 64 hex digits from `python -c "import secrets; print(secrets.token_hex(32))"` '
    "(keep it secret, and keep using the same key so pseudonyms stay the same)"
)

# Reasons, worded for a reject file: they describe the problem, never the value.
_MISSING = "CPR number is missing"
_NOT_DIGITS = "CPR number has characters other than digits and one dash (expected DDMMYY-SSSS)"
_DASH = "CPR number has its dash in the wrong place (expected DDMMYY-SSSS)"
_NOT_A_DATE = "CPR number does not start with a real date DDMMYY (century from the 7th digit)"


class PseudonymKeyError(ValueError):
    """The pseudonymisation key is missing, unreadable, too short or not random."""


class InvalidCprError(ValueError):
    """A text is not a valid CPR number; the message gives the reason, never the number."""


def _wrong_length(digits: int) -> str:
    return f"CPR number has {digits} digits, expected 10"


def _century(seventh: int, yy: int) -> int:
    """The century of a CPR birth year from the 7th digit and the two-digit year (CPR rule)."""
    if seventh <= 3:
        return 1900
    if seventh in (4, 9):
        return 2000 if yy <= 36 else 1900
    return 2000 if yy <= 57 else 1800


def cpr_problem(text: str | None) -> str | None:
    """Why ``text`` is not a valid CPR number, or None if it is one.

    >>> cpr_problem("010190-1234") is None, cpr_problem("0101901234") is None
    (True, True)
    >>> cpr_problem("310290-1234")
    'CPR number does not start with a real date DDMMYY (century from the 7th digit)'
    """
    if text is None:
        return _MISSING
    stripped = text.strip(" ")
    if not stripped:
        return _MISSING
    if re.fullmatch(r"[0-9-]+", stripped, flags=re.ASCII) is None:
        return _NOT_DIGITS
    digits = stripped.replace("-", "")
    if len(digits) != 10:
        return _wrong_length(len(digits))
    if len(stripped) == 11 and stripped[6] != "-" or len(stripped) > 11:
        return _DASH
    try:
        _birth_date(digits)
    except ValueError:
        return _NOT_A_DATE
    return None


def normalise_cpr(text: str) -> str:
    """The 10-digit form of a valid CPR number; raises InvalidCprError with the reason otherwise."""
    problem = cpr_problem(text)
    if problem is not None:
        raise InvalidCprError(problem)
    return text.strip(" ").replace("-", "")


def _birth_date(digits: str) -> dt.date:
    yy = int(digits[4:6])
    year = _century(int(digits[6]), yy) + yy
    return dt.date(year, int(digits[2:4]), int(digits[0:2]))


def cpr_birth_date(text: str) -> dt.date:
    """The date of birth encoded in a valid CPR number.

    The 7th digit sets the century: 0-3 -> 1900s; 4 and 9 -> 2000-2036 or 1937-1999;
    5-8 -> 2000-2057 or 1858-1899.

    >>> cpr_birth_date("010190-1234"), cpr_birth_date("0101205234"), cpr_birth_date("0101604234")
    (datetime.date(1990, 1, 1), datetime.date(2020, 1, 1), datetime.date(1960, 1, 1))
    """
    return _birth_date(normalise_cpr(text))


@dataclass(frozen=True)
class CprSql:
    """DuckDB SQL expressions over a VARCHAR column holding CPR numbers.

    ``normalised`` is the 10-digit form (NULL unless the text has the CPR shape); ``problem`` is the
    same reason text as ``cpr_problem`` (NULL for a valid number).
    """

    normalised: str
    problem: str


def cpr_sql(column: str) -> CprSql:
    """SQL expressions validating and normalising the quoted VARCHAR column ``column``.

    Written so that each row evaluates a few cheap string functions: once the text has the CPR
    shape, the 7th digit is the 4th character from the end and the year is characters 5-6.
    """
    t = f"trim({column}, ' ')"
    shape = f"regexp_full_match({t}, '[0-9]{{6}}-?[0-9]{{4}}')"
    digits = f"replace({t}, '-', '')"
    seventh, yy = f"substr({t}, -4, 1)", f"substr({t}, 5, 2)"
    century = (
        f"(CASE WHEN {seventh} <= '3' THEN '19' "
        f"WHEN {seventh} IN ('4', '9') THEN (CASE WHEN {yy} <= '36' THEN '20' ELSE '19' END) "
        f"ELSE (CASE WHEN {yy} <= '57' THEN '20' ELSE '18' END) END)"
    )
    born = f"try_strptime(substr({t}, 1, 4) || {century} || {yy}, '%d%m%Y')"
    problem = (
        f"(CASE WHEN {shape} AND {born} IS NOT NULL THEN NULL "  # the common case, decided cheaply
        f"WHEN {column} IS NULL OR {t} = '' THEN '{_MISSING}' "
        f"WHEN NOT regexp_full_match({t}, '[0-9-]+') THEN '{_NOT_DIGITS}' "
        f"WHEN length({digits}) <> 10 THEN 'CPR number has ' || length({digits}) || ' digits, expected 10' "
        f"WHEN NOT {shape} THEN '{_DASH}' "
        f"WHEN {born} IS NULL THEN '{_NOT_A_DATE}' END)"
    )
    return CprSql(normalised=f"(CASE WHEN {shape} THEN {digits} END)", problem=problem)


def parse_key(secret: str | bytes) -> bytes:
    """The HMAC key from its text form: hex digits, else base64 (standard or URL-safe), stripped.

    A text made only of an even number of hex digits is always read as hex. A key file may also
    hold the raw bytes (anything that is not UTF-8 text). The key must be at least
    ``MIN_KEY_BYTES`` random bytes: a passphrase, or a key made of a few repeated bytes, is refused.
    """
    if isinstance(secret, bytes):
        try:
            text = secret.decode("utf-8").strip()
        except UnicodeDecodeError:
            return _random_enough(secret, f"{len(secret)} raw bytes")
    else:
        text = secret.strip()
    if not text:
        raise PseudonymKeyError(
            f"The pseudonymisation key is empty; set {MIN_KEY_BYTES} random bytes as hex or base64, {_KEY_HINT}."
        )
    if _HEX_KEY.fullmatch(text):
        return _random_enough(bytes.fromhex(text), f"{len(text) // 2} bytes ({len(text)} hex digits)")
    decoded = _base64(text)
    if decoded is None:
        raise PseudonymKeyError(
            "The pseudonymisation key is neither hex nor base64 (a passphrase is not a key); set "
            f"{MIN_KEY_BYTES} random bytes as hex or base64, {_KEY_HINT}."
        )
    return _random_enough(decoded, f"{len(decoded)} bytes (base64)")


def _base64(text: str) -> bytes | None:
    """``text`` decoded as standard or URL-safe base64 (padding optional), or None."""
    if not _BASE64_KEY.fullmatch(text):
        return None
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error:
        return None


def _random_enough(key: bytes, described: str) -> bytes:
    """Refuse a key that is too short, or too regular to have come from a random generator.

    32 random bytes hold about 30 different byte values; fewer than 16 happens with probability
    far below 1e-20, so such a key was typed or patterned (``"00" * 32``), not generated.
    """
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"The pseudonymisation key is {described}, shorter than the {MIN_KEY_BYTES} random bytes "
            f"required; make one {_KEY_HINT}."
        )
    if len(set(key)) < _MIN_DISTINCT_BYTES:
        raise PseudonymKeyError(
            f"The pseudonymisation key is {described} but has only {len(set(key))} different byte values, "
            f"so it is not random; make one {_KEY_HINT}."
        )
    return key


def load_key(key_file: Path | None = None, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The pseudonymisation key from ``key_file`` if given, else from $SUNDSTAT_PSEUDONYM_KEY.

    Returns None when neither is set; raises PseudonymKeyError for an unreadable or short key.
    """
    if key_file is not None:
        try:
            content = key_file.read_bytes()
        except OSError as exc:
            raise PseudonymKeyError(
                f"Cannot read the pseudonym key file {key_file} ({exc.strerror}); check the path and its permissions."
            ) from None
        return parse_key(content)
    value = (os.environ if environ is None else environ).get(KEY_ENV_VAR, "")
    return parse_key(value) if value.strip() else None


def _hmac_prefixes(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """The HMAC-SHA256 inner and outer hash states after absorbing the padded key (RFC 2104)."""
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    return inner, outer


def pseudonymise(cprs: Iterable[str], key: bytes) -> np.ndarray:
    """Pseudonyms (int64, >= 0) of normalised 10-digit CPR numbers, in order.

    Copies precomputed HMAC states instead of calling ``hmac`` per number (about 3x faster);
    the result equals ``hmac.digest(key, cpr, "sha256")``. The caller validates and normalises.
    """
    inner, outer = _hmac_prefixes(key)
    prefixes = []
    for cpr in cprs:
        h = inner.copy()
        h.update(cpr.encode("ascii"))
        o = outer.copy()
        o.update(h.digest())
        prefixes.append(o.digest()[:8])
    words = np.frombuffer(b"".join(prefixes), dtype=">u8")
    return (words & _MASK_63).astype(np.int64)


def pseudonym(cpr: str, key: bytes) -> int:
    """The pseudonym of one CPR number (with or without dash); raises InvalidCprError if invalid."""
    return int(pseudonymise([normalise_cpr(cpr)], key)[0])
