"""The audit chain: an append-only, HMAC-chained log of every ledger event.

Entry ``n`` carries ``hash_n = HMAC-SHA256(key, hash_{n-1} || canonical_json(seq, kind, payload,
actor, ts))`` with ``hash_0`` = 32 zero bytes. Without the key nobody can rewrite an entry and fix up
the hashes after it; deleting or reordering entries breaks the chain at the first affected ``seq``.
Truncating the tail leaves a valid but shorter chain, so the head hash and entry count are meant to be
published and later checked with ``expected_head`` / ``expected_count``.

The key never lives in the ledger database: the service passes it in (``SUNDSTAT_AUDIT_KEY`` as hex,
or a 0600 key file created by :func:`load_or_create_audit_key`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidRequest, UnsafeStore

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "ChainReport",
    "canonical_json",
    "entry_hash",
    "load_or_create_audit_key",
    "make_entry",
    "parse_audit_key",
    "verify_chain",
]

GENESIS_HASH = "00" * 32
KEY_BYTES = 32
MIN_KEY_BYTES = 16


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8, NaN and infinities refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True)
class AuditEntry:
    """One chained event. ``payload`` is JSON data; hashes are lowercase hex."""

    seq: int
    kind: str
    payload: dict[str, Any]
    actor: str
    ts: str
    prev_hash: str
    hash: str


def entry_hash(
    key: bytes, prev_hash: str, seq: int, kind: str, payload: dict[str, Any], actor: str, ts: str
) -> str:
    """HMAC-SHA256 of the previous hash and the entry's canonical JSON, as hex."""
    body = canonical_json({"seq": seq, "kind": kind, "payload": payload, "actor": actor, "ts": ts})
    return hmac.new(key, bytes.fromhex(prev_hash) + body, hashlib.sha256).hexdigest()


def make_entry(
    key: bytes, head: AuditEntry | None, kind: str, payload: dict[str, Any], actor: str, ts: str
) -> AuditEntry:
    """The entry that follows ``head`` (or starts the chain)."""
    seq = 1 if head is None else head.seq + 1
    prev = GENESIS_HASH if head is None else head.hash
    try:
        digest = entry_hash(key, prev, seq, kind, payload, actor, ts)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"An audit payload must be plain JSON data: {exc}.") from None
    return AuditEntry(seq, kind, payload, actor, ts, prev, digest)


def entry_is_authentic(key: bytes, entry: AuditEntry) -> bool:
    """True when ``entry.hash`` is the HMAC of its own stored ``prev_hash`` and content."""
    try:
        expected = entry_hash(
            key, entry.prev_hash, entry.seq, entry.kind, entry.payload, entry.actor, entry.ts
        )
    except (TypeError, ValueError):
        return False
    return hmac.compare_digest(expected, entry.hash)


@dataclass(frozen=True)
class ChainReport:
    """Result of recomputing the chain."""

    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None
    reason: str | None


def verify_chain(
    entries: Iterable[AuditEntry],
    key: bytes,
    *,
    expected_head: str | None = None,
    expected_count: int | None = None,
    after_seq: int = 0,
    after_hash: str = GENESIS_HASH,
) -> ChainReport:
    """Recompute the chain and name the first altered, deleted or reordered entry.

    With ``expected_count`` the entry with that seq must have hash ``expected_head`` (a published
    head may be followed by newer entries); with only ``expected_head`` some entry must have it.
    ``after_seq`` / ``after_hash`` continue from an entry already verified (``entries`` then start
    at ``after_seq + 1``): the start-up check's checkpoint.
    """
    prev = after_hash
    count = after_seq
    seen_expected_head = False
    for entry in entries:
        want_seq = count + 1
        if entry.seq != want_seq:
            return ChainReport(
                False,
                count,
                prev,
                want_seq,
                f"Entry {want_seq} is missing: the next stored entry is {entry.seq} (deleted or reordered).",
            )
        if entry.prev_hash != prev:
            return ChainReport(
                False,
                count,
                prev,
                entry.seq,
                f"Entry {entry.seq} does not link to entry {entry.seq - 1} (an entry was deleted, "
                "reordered or altered).",
            )
        if not entry_is_authentic(key, entry):
            return ChainReport(
                False,
                count,
                prev,
                entry.seq,
                f"Entry {entry.seq} ({entry.kind}) was altered, or the audit key is not the ledger's key.",
            )
        prev = entry.hash
        count += 1
        if expected_head is not None and entry.hash == expected_head:
            if expected_count is not None and entry.seq != expected_count:
                return ChainReport(
                    False,
                    count,
                    prev,
                    entry.seq,
                    f"The published head hash belongs to entry {entry.seq}, not entry {expected_count}.",
                )
            seen_expected_head = True
    if expected_count is not None and count < expected_count:
        return ChainReport(
            False,
            count,
            prev,
            count + 1,
            f"The chain has {count} entries but {expected_count} were published: the last "
            f"{expected_count - count} were removed (truncation).",
        )
    if expected_head is not None and not seen_expected_head:
        where = f"entry {expected_count}" if expected_count is not None else "any entry"
        return ChainReport(
            False,
            count,
            prev,
            expected_count,
            f"The published head hash does not match {where}: the chain was truncated or rewritten.",
        )
    return ChainReport(True, count, prev, None, None)


# --- Keys ---------------------------------------------------------------------------------------


def parse_audit_key(text: str) -> bytes:
    """Parse a hex audit key (as in ``SUNDSTAT_AUDIT_KEY``); at least 16 bytes."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise InvalidRequest("The audit key must be hexadecimal (64 hex digits for 32 bytes).") from None
    if len(key) < MIN_KEY_BYTES:
        raise InvalidRequest(f"The audit key must be at least {MIN_KEY_BYTES} bytes; use 32 random bytes.")
    return key


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UnsafeStore(
            f"The audit key file {path} is accessible to other users (mode {stat.filemode(mode)}); "
            f"run 'chmod 600 {path}'."
        )
    for _ in range(50):
        data = path.read_bytes()
        if len(data) >= KEY_BYTES:
            return data
        time.sleep(0.01)  # another process is between creating and filling it
    raise UnsafeStore(f"The audit key file {path} holds {len(data)} bytes; expected {KEY_BYTES}.")


def load_or_create_audit_key(path: str | os.PathLike[str]) -> bytes:
    """Read the audit key file, or create it (mode 0600, 32 random bytes) if it does not exist.

    Creation is atomic (write a temporary file, fsync, hard-link into place), so processes racing
    on first start all end up with the same key.
    """
    target = Path(path)
    if target.exists():
        return _read_key_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(temporary, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key_file(target)
