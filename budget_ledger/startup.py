"""The ledger's start-up check: never serve from a damaged ledger, and settle what a crash left.

    start_ledger(open_store, key, checkpoint, where=..., reconcile_older_than=...)
      ├─ open the store and the Ledger    any database error -> UnsafeStore (with how to restore)
      ├─ store.integrity_problems()        SQLite: PRAGMA quick_check reads every page of the file
      ├─ the audit chain                   from the checkpoint of the last start (whole chain if none)
      ├─ write the checkpoint              the head just verified, signed with the audit key
      └─ ledger.reconcile_pending(...)     spends a crash left pending -> failed ("interrupted")

Why a checkpoint: recomputing the whole chain costs 20-80 microseconds per entry (0.4-1.5 s for a
ledger of 10,000 spends, 40 s or more for a million), and it grows for ever. The checkpoint file in the state
directory holds the seq and hash of the head verified at the last start, with an HMAC under the audit
key; the next start checks that this entry still has that hash and recomputes only the entries after
it. A damaged file is still always caught, because ``quick_check`` reads every page; an entry before the
checkpoint that was rewritten with valid page structure is caught by ``sundstat ledger verify``
(the whole chain and every table), which is the complete check. A chain shorter than the checkpoint
(entries removed, or an older backup put back) is refused until the checkpoint file is deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .audit_chain import GENESIS_HASH, AuditEntry, canonical_json, verify_chain
from .errors import ChainBroken, LedgerError, UnsafeStore
from .ledger import Ledger
from .store import LedgerStore

__all__ = ["RESTORE_HINT", "StartupReport", "start_ledger"]

RESTORE_HINT = (
    "Stop every sundstat process that uses this ledger, keep the damaged copy for inspection, restore "
    "the last backup (docs/operations.md, 'Backup and restore'), check it with 'sundstat ledger verify', "
    "then start again."
)
_CHECKPOINT_CONTEXT = b"sundstat ledger start-up checkpoint\0"


@dataclass(frozen=True)
class StartupReport:
    """What the start-up check did: entries in the chain, how many were recomputed, what was settled."""

    entries: int
    verified_from: int
    """The first seq recomputed at this start (1 = the whole chain; entries + 1 = nothing new)."""
    reconciled: tuple[str, ...]
    """Ids of the spends a crash left pending, now failed with code ``interrupted`` (still charged)."""
    seconds: float

    def describe(self) -> str:
        """One line for the start-up banner."""
        if self.verified_from <= 1:
            checked = "the whole chain"
        elif self.verified_from > self.entries:
            checked = "no new entries since the checkpoint"
        else:
            checked = f"entries {self.verified_from}-{self.entries} after the checkpoint"
        line = f"ledger checked in {self.seconds:.2f} s: {self.entries} audit entries ({checked})"
        if self.reconciled:
            shown = ", ".join(self.reconciled[:10])
            more = f" and {len(self.reconciled) - 10} more" if len(self.reconciled) > 10 else ""
            line += (
                f"; {len(self.reconciled)} spend(s) left pending by a crash marked failed, still charged: "
                f"{shown}{more} (all listed by 'sundstat ledger verify')"
            )
        return line


def _mac(key: bytes, seq: int, head_hash: str) -> str:
    body = _CHECKPOINT_CONTEXT + canonical_json({"seq": seq, "hash": head_hash})
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _read_checkpoint(path: Path, key: bytes) -> tuple[int, str] | None:
    """(seq, hash) of the last verified head, or None if absent or not signed with this key."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seq, head_hash, mac = int(data["seq"]), str(data["hash"]), str(data["mac"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not hmac.compare_digest(mac, _mac(key, seq, head_hash)):
        return None  # not ours (edited, or another key): fall back to the whole chain
    return seq, head_hash


def _write_checkpoint(path: Path, key: bytes, seq: int, head_hash: str) -> None:
    """Atomically replace the checkpoint file (mode 0600)."""
    text = json.dumps({"seq": seq, "hash": head_hash, "mac": _mac(key, seq, head_hash)})
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _check_chain(ledger: Ledger, key: bytes, checkpoint: Path, where: str) -> tuple[int, int, str]:
    """Verify the chain from the checkpoint; return (entries, first seq recomputed, head hash)."""
    store = ledger.store
    start = _read_checkpoint(checkpoint, key)
    after_seq, after_hash = 0, GENESIS_HASH
    with store.snapshot() as tx:
        if start is None:
            tail: Iterable[AuditEntry] = tx.audit_entries()  # streamed: the whole chain can be long
        else:
            head = tx.audit_head()
            count = 0 if head is None else head.seq
            if start[0] > count:
                raise UnsafeStore(
                    f"The ledger {where} has {count} audit entries, but {start[0]} were verified at the "
                    f"last start ({checkpoint}): entries were removed, or an older copy was put back. If "
                    f"you restored a backup on purpose, delete {checkpoint} and start again. Otherwise: "
                    + RESTORE_HINT
                )
            entries = tx.audit_entries_from(start[0])
            if not entries or entries[0].seq != start[0] or entries[0].hash != start[1]:
                raise ChainBroken(
                    f"Audit entry {start[0]} of the ledger {where} no longer has the hash verified at the "
                    f"last start: it was altered or removed. {RESTORE_HINT}"
                )
            after_seq, after_hash = start
            tail = entries[1:]
        report = verify_chain(tail, key, after_seq=after_seq, after_hash=after_hash)
    if not report.ok:
        raise ChainBroken(
            f"The audit chain of the ledger {where} does not verify: {report.reason} {RESTORE_HINT}"
        )
    return report.entries, after_seq + 1, report.head_hash


def start_ledger(
    open_store: Callable[[], LedgerStore],
    key: bytes,
    checkpoint: Path,
    *,
    where: str,
    reconcile_older_than: float,
) -> tuple[Ledger, StartupReport]:
    """Open the ledger for serving, or raise ``UnsafeStore`` / ``ChainBroken`` saying what is wrong.

    ``where`` names the ledger in messages (never a password). ``reconcile_older_than``: see
    :meth:`Ledger.reconcile_pending`. The caller closes the returned ledger.
    """
    started = time.monotonic()
    store: LedgerStore | None = None
    try:
        store = open_store()
        problems = store.integrity_problems()  # before anything else reads it: damage is named as such
        if problems:
            raise UnsafeStore(
                f"The ledger database {where} is damaged; its integrity check reports: "
                f"{'; '.join(problems)}. {RESTORE_HINT}"
            )
        ledger = Ledger(store, key)
        entries, verified_from, head_hash = _check_chain(ledger, key, checkpoint, where)
        if entries:
            try:
                _write_checkpoint(checkpoint, key, entries, head_hash)
            except OSError as exc:
                raise UnsafeStore(
                    f"Cannot write the start-up checkpoint {checkpoint} ({exc.strerror}); make the state "
                    "directory writable by the service's user."
                ) from None
        reconciled = ledger.reconcile_pending(older_than=reconcile_older_than)
    except LedgerError:
        if store is not None:
            store.close()
        raise
    except Exception as exc:  # a damaged file fails in the database driver, anywhere
        if store is not None:
            store.close()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UnsafeStore(
            f"The ledger database {where} cannot be read ({type(exc).__name__}: {first}). {RESTORE_HINT}"
        ) from exc
    report = StartupReport(
        entries=entries,
        verified_from=verified_from,
        reconciled=tuple(spend.spend_id for spend in reconciled),
        seconds=time.monotonic() - started,
    )
    return ledger, report
