"""The hash-chained audit log: canonical form, entry hashes, the verifier and ``record``.

Each entry holds the SHA-256 of the entry before it (``prev_hash``; 64 zeros for the
first) and its own hash, ``sha256(prev_hash + canonical_json(entry without hash))``.
Canonical JSON has sorted keys, no whitespace, UTF-8 text and timestamps as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so any implementation can recompute it.

What the chain detects, and its limits:

* an edited entry: its contents no longer match its hash;
* a deleted entry: a gap in the sequence numbers, or (if the numbers were closed up) an
  entry whose ``prev_hash`` is not its predecessor's hash;
* reordered entries: an entry whose ``prev_hash`` is not its predecessor's hash;
* a truncated tail: nothing inside the remaining entries shows it, so it is checked
  against an anchor. The store keeps the head (last seq and hash) in its own row,
  updated in the same transaction as every append; ``verify`` compares the log's end
  with it. That catches a tail deleted by a careless hand or a crude tool, not someone
  who can also rewrite that row. Against such a writer (who could equally recompute
  every hash after an edit) only an anchor kept outside the database helps: the
  operator stores ``hashguard audit head`` elsewhere (a ticket, a WORM bucket, a
  signed mail) and runs ``hashguard audit verify --expect-head SEQ:HASH``, which
  proves that nothing up to that entry was removed or rewritten. Entries after the
  newest external anchor are protected only against writers who do not recompute.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from hashguard.domain.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditEvent,
    AuditHead,
    Problem,
    VerifyReport,
)
from hashguard.domain.banks import ImportReport
from hashguard.domain.tokens import Token


class AuditLog(Protocol):
    """Where ``record`` appends (``store.audit``). The store imports this module to hash
    what it appends, so this module names only what it needs of it."""

    def append(
        self,
        actor: str,
        action: AuditAction,
        subject: str | None = None,
        details: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> AuditEvent: ...


class HasAuditLog(Protocol):
    @property
    def audit(self) -> AuditLog: ...


#: Detail keys refused outright: the log is read by auditors, never a secret's home.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {"secret", "secrets", "password", "passphrase", "credential", "credentials", "api_key"}
)

_HEAD = re.compile(r"^(?:(\d+):)?([0-9a-f]{64})$")


def timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps are timezone-aware UTC")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; NaN and infinities are refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def normalise_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` as it will read back from the store (tuples become lists, ...), so
    what is hashed is what is kept. Raises ``ValueError`` for what JSON cannot carry
    and for keys that name secrets."""
    bad = sorted(k for k in details if str(k).lower() in FORBIDDEN_DETAIL_KEYS)
    if bad:
        raise ValueError(f"audit details never hold secrets: refused keys {bad}")
    try:
        normalised = json.loads(canonical_json(dict(details)))
    except TypeError as exc:
        raise ValueError(f"audit details must be plain JSON: {exc}") from None
    assert isinstance(normalised, dict)
    return normalised


def event_body(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    details: Mapping[str, Any],
    prev_hash: str,
) -> dict[str, Any]:
    """Everything an entry's hash covers."""
    return {
        "seq": seq,
        "at": timestamp(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": dict(details),
        "prev_hash": prev_hash,
    }


def compute_hash(body: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical_json(body))`` as lowercase hex."""
    digest = hashlib.sha256(str(body["prev_hash"]).encode())
    digest.update(canonical_json(dict(body)))
    return digest.hexdigest()


def entry_hash(event: AuditEvent) -> str:
    """The hash ``event`` should carry, recomputed from its contents."""
    return compute_hash(_body_of(event))


def _body_of(event: AuditEvent) -> dict[str, Any]:
    return event_body(
        seq=event.seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        details=event.details,
        prev_hash=event.prev_hash,
    )


def event_json(event: AuditEvent) -> dict[str, Any]:
    """An entry as shown by ``audit list --json``: its hashed body plus its hash."""
    return {
        **_body_of(event),
        "hash": event.hash,
    }


def parse_head(text: str) -> tuple[int | None, str]:
    """``SEQ:HASH`` (as ``audit head`` prints it) or a bare ``HASH``."""
    found = _HEAD.match(text.strip().lower())
    if not found:
        raise ValueError(f"{text!r} is not a head: expected SEQ:HASH (64 hex digits)")
    return (int(found.group(1)) if found.group(1) else None), found.group(2)


def _entry_problem(event: AuditEvent, prev: AuditHead) -> tuple[Problem, int, str] | None:
    """What is wrong with ``event`` coming after ``prev``, if anything."""
    expected_seq = prev.seq + 1
    if event.seq < expected_seq:
        return (
            Problem.OUT_OF_ORDER,
            event.seq,
            f"entry {event.seq} comes after entry {prev.seq}: the log is out of order",
        )
    if event.seq > expected_seq:
        return (
            Problem.MISSING,
            expected_seq,
            f"entry {expected_seq} is missing (deleted): entry {prev.seq} "
            f"is followed by entry {event.seq}",
        )
    if event.prev_hash != prev.hash:
        return (
            Problem.BROKEN_LINK,
            event.seq,
            f"entry {event.seq} does not follow entry {prev.seq}: an entry was deleted, "
            "reordered or rewritten before it",
        )
    if entry_hash(event) != event.hash:
        return (
            Problem.EDITED,
            event.seq,
            f"entry {event.seq} does not match its hash: it was edited",
        )
    return None


def _external_anchor_problem(
    last: AuditHead, want_seq: int | None, want_hash: str
) -> tuple[Problem, int | None, str] | None:
    """An external anchor the walk never met: fine only for the empty log's head."""
    if want_hash == GENESIS_HASH and not want_seq:
        return None
    if want_seq == 0:
        return (Problem.ANCHOR_MISMATCH, None, "the head of an empty log is 0:" + GENESIS_HASH)
    if want_seq is not None:
        return (
            Problem.TRUNCATED,
            last.seq + 1,
            f"the log ends at entry {last.seq} but the expected head is entry "
            f"{want_seq}: entries {last.seq + 1}..{want_seq} were removed",
        )
    return (
        Problem.TRUNCATED,
        None,
        "no entry has the expected head's hash: the log was truncated or rewritten",
    )


def _recorded_head_problem(
    last: AuditHead, recorded: AuditHead
) -> tuple[Problem, int | None, str] | None:
    if recorded.seq > last.seq:
        return (
            Problem.TRUNCATED,
            last.seq + 1,
            f"the log ends at entry {last.seq} but the store's head is entry "
            f"{recorded.seq}: entries {last.seq + 1}..{recorded.seq} were removed",
        )
    if recorded.seq < last.seq:
        return (
            Problem.UNANCHORED,
            recorded.seq + 1,
            f"entries {recorded.seq + 1}..{last.seq} follow the store's head "
            f"(entry {recorded.seq}): they were not appended by hashguard",
        )
    if recorded.hash != last.hash:
        return (
            Problem.ANCHOR_MISMATCH,
            last.seq,
            f"entry {last.seq} is not the one the store's head names: it was rewritten",
        )
    return None


def verify(
    events: Iterable[AuditEvent],
    *,
    recorded_head: AuditHead | None = None,
    expected_head: tuple[int | None, str] | None = None,
) -> VerifyReport:
    """Check the chain of ``events`` (in the order given, which should be seq order)
    and stop at the first broken entry.

    ``recorded_head`` is the store's own anchor row; ``expected_head`` an anchor the
    operator kept elsewhere, as ``(seq or None, hash)``. Either one reveals a truncated
    tail; the external one also reveals a log rewritten up to it.
    """
    prev = AuditHead(seq=0, hash=GENESIS_HASH)
    checked = 0
    want_seq, want_hash = expected_head if expected_head else (None, None)
    anchor_seen = False
    found: tuple[Problem, int | None, str] | None = None
    for event in events:
        found = _entry_problem(event, prev)
        if found is None and want_hash is not None and not anchor_seen:
            if event.seq == want_seq and event.hash != want_hash:
                found = (
                    Problem.ANCHOR_MISMATCH,
                    event.seq,
                    f"entry {event.seq} is not the one the expected head names: the log "
                    "was rewritten up to it",
                )
            anchor_seen = event.hash == want_hash and want_seq in (None, event.seq)
        if found is not None:
            break
        prev = AuditHead(seq=event.seq, hash=event.hash)
        checked += 1
    if found is None and want_hash is not None and not anchor_seen:
        found = _external_anchor_problem(prev, want_seq, want_hash)
    if found is None and recorded_head is not None:
        found = _recorded_head_problem(prev, recorded_head)
    if found is None:
        return VerifyReport(checked=checked, head=prev)
    problem, seq, message = found
    return VerifyReport(
        checked=checked, head=prev, problem=problem, broken_seq=seq, message=message
    )


def cli_actor() -> str:
    """``cli:<login name>`` of whoever runs the command."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (containers)
        name = f"uid{os.getuid()}"
    return "cli:" + "_".join(name.split())


def record(
    store: HasAuditLog,
    actor: str,
    action: AuditAction,
    subject: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Append one event to ``store``'s audit log: the one-line call every state change
    makes. ``details`` must be plain JSON and never hold list contents or secrets."""
    return store.audit.append(actor, action, subject, details)


def token_actor(token: Token) -> str:
    """The actor of an API call: the token, by id (its name is in the token list), and
    the tenant of the hash check service it belongs to, if any
    (``token:7/tenant:small-host-42``)."""
    return (
        f"token:{token.id}" if token.tenant is None else f"token:{token.id}/tenant:{token.tenant}"
    )


def import_details(report: ImportReport) -> dict[str, Any]:
    """What an audit event says of a list import (counts, never hashes)."""
    return {
        "version": report.version,
        "rows": report.rows,
        "added": report.added,
        "updated": report.updated,
        "removed": report.removed,
        "restored": report.restored,
        "invalid_skipped": len(report.errors),
    }
