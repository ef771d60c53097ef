"""The evidence vault: matched content and its context, encrypted at rest with per-item keys.

Each item gets a fresh 256-bit data key. Its bytes are sealed with AES-256-GCM under
that key with the associated data ``"<item id>:blob"`` and written to a file under
``blob_dir`` (never to the database: items can be large); its context (hashes,
matches, uploader and content ids, timestamps, request IP) is sealed the same way with
``"<item id>:context"`` and kept in the store. The data key itself is sealed by the
master key with the context ``"evidence item <id>"``. Everything is thus bound to the
item id: a blob, a sealed context or a wrapped key copied onto another item fails to
open, and so does a tampered one.

Destruction is crypto-erasure: the wrapped data key and the sealed context are erased
from the store (SQLite zeroes the freed cells), then the blob file is unlinked. The
unlink alone guarantees nothing (file systems, SSDs and backups keep old blocks): what
makes a destroyed item unreadable is that no copy of its data key remains. Database
backups taken while it was live still hold the wrapped key until they expire; rotate
the master key if that window matters.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hashguard.domain.audit import AuditAction
from hashguard.domain.evidence import EvidenceEvent, EvidenceItem, RetentionPolicy
from hashguard.keys import MasterKey, MasterKeyError
from hashguard.permissions import private_dir
from hashguard.store.evidence import EvidenceStore, UnknownEvidence

#: version byte of a sealed part (blob file or context)
FORMAT = b"\x01"
MAGIC = b"HGEV"
NONCE_BYTES = 12
KEY_BYTES = 32
#: the context fields copied, in clear, into an item's summary (nothing personal)
SUMMARY_FIELDS = ("content_id", "source")
SYSTEM_ACTOR = "system:evidence"

Clock = Callable[[], datetime]
EventHook = Callable[[EvidenceEvent], None]


class EvidenceError(Exception):
    """Something the vault refuses or cannot do; the message says what and why."""


class EvidenceNotFound(EvidenceError, LookupError):
    pass


class NotMatched(EvidenceError):
    """Only matched content is kept (rule 12): a context without matches is refused."""


class EvidenceCorrupt(EvidenceError):
    """An item does not decrypt or verify: tampered, swapped, or the wrong master key."""


class EvidenceDestroyed(EvidenceError):
    pass


class UnderLegalHold(EvidenceError):
    pass


class WithinRetention(EvidenceError):
    pass


def _utcnow() -> datetime:
    return datetime.now(UTC)


def key_context(item_id: str) -> str:
    """What the master key binds an item's data key to."""
    return f"evidence item {item_id}"


def _aad(item_id: str, part: str) -> bytes:
    return f"{item_id}:{part}".encode()


def seal_part(data_key: bytes, item_id: str, part: str, plaintext: bytes) -> bytes:
    """``MAGIC, FORMAT, nonce, AES-256-GCM(plaintext) + tag``, bound to item and part."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return MAGIC + FORMAT + nonce + AESGCM(data_key).encrypt(nonce, plaintext, _aad(item_id, part))


def open_part(data_key: bytes, item_id: str, part: str, sealed: bytes) -> bytes:
    head = len(MAGIC) + len(FORMAT)
    if sealed[:head] != MAGIC + FORMAT or len(sealed) < head + NONCE_BYTES + 16:
        raise EvidenceCorrupt(f"the {part} of evidence item {item_id} is not a sealed value")
    nonce, body = sealed[head : head + NONCE_BYTES], sealed[head + NONCE_BYTES :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, _aad(item_id, part))
    except InvalidTag:
        raise EvidenceCorrupt(
            f"the {part} of evidence item {item_id} does not decrypt: it was altered, "
            "or it belongs to another item"
        ) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _context_json(context: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(dict(context), default=_json_default, sort_keys=True).encode()
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"the evidence context must be plain JSON: {exc}") from None


def _matches(context: Mapping[str, Any]) -> Sequence[Any]:
    found = context.get("matches")
    if isinstance(found, str | bytes) or not isinstance(found, Sequence) or not found:
        raise NotMatched(
            "only matched content is kept as evidence: the context needs a non-empty 'matches' list"
        )
    return found


def summarise(context: Mapping[str, Any]) -> dict[str, Any]:
    """The clear part of an item's record: no uploader, no IP, no hash values."""
    matches = _matches(context)
    banks = sorted(
        {str(m["bank"]) for m in matches if isinstance(m, Mapping) and m.get("bank") is not None}
    )
    summary: dict[str, Any] = {
        k: str(context[k]) for k in SUMMARY_FIELDS if context.get(k) is not None
    }
    summary.update(banks=banks, matches=len(matches), fields=sorted(map(str, context)))
    return summary


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file (0600) in the same folder, fsync, rename, fsync the folder."""
    private_dir(path.parent)  # every folder it creates 0700, the vault's own included
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_vault_file(name: str) -> bool:
    """A blob (named by its item's UUID) or a temp file left by ``_write_atomically``."""
    if name.startswith(".") and name.endswith(".tmp"):
        return True
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True, slots=True)
class SealedItem:
    """An evidence item whose blob file is written and whose row is not yet recorded."""

    item: EvidenceItem
    #: the data key wrapped by the master key
    data_key: bytes
    #: the context sealed with the data key
    context: bytes
    path: Path

    def discard(self) -> None:
        """Remove the blob file (its row was never recorded)."""
        self.path.unlink(missing_ok=True)


def kept_details(item: EvidenceItem) -> dict[str, Any]:
    """What ``evidence.kept`` says of an item (never its content or context)."""
    return {
        "size": item.size,
        "jurisdiction": item.jurisdiction,
        "retain_until": item.retain_until.isoformat(),
        "banks": item.summary["banks"],
    }


class Vault:
    """Keeps, reveals, holds and destroys evidence items.

    ``on_event`` receives every state change and every reveal, after it happened (a
    reveal before the bytes are handed out, so a failing audit log withholds them);
    ``hashguard.evidence.audited`` connects it to the audit log.
    """

    def __init__(
        self,
        store: EvidenceStore,
        master_key: MasterKey,
        blob_dir: Path,
        clock: Clock = _utcnow,
        *,
        retention: RetentionPolicy | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        self._store = store
        self._master = master_key
        self.blob_dir = blob_dir
        self._clock = clock
        self.retention = retention or RetentionPolicy()
        self._on_event = on_event

    # -- paths and events --

    def blob_path(self, item_id: str) -> Path:
        # ids are UUIDs we minted; refuse anything else before it reaches a path
        try:
            canonical = str(uuid.UUID(item_id))
        except ValueError:
            raise EvidenceNotFound(f"no evidence item {item_id!r}") from None
        if canonical != item_id:
            raise EvidenceNotFound(f"no evidence item {item_id!r}")
        return self.blob_dir / item_id[:2] / item_id

    def emit(self, action: AuditAction, subject: str, actor: str, **details: Any) -> None:
        if self._on_event is not None:
            event = EvidenceEvent(
                action=action, subject=subject, actor=actor, at=self._clock(), details=details
            )
            self._on_event(event)

    # -- reading metadata --

    def item(self, item_id: str) -> EvidenceItem:
        self.blob_path(item_id)
        try:
            return self._store.get(item_id)
        except UnknownEvidence:
            raise EvidenceNotFound(f"no evidence item {item_id!r}") from None

    def list(self, *, include_destroyed: bool = False) -> list[EvidenceItem]:
        return self._store.list(include_destroyed=include_destroyed)

    def expired(self, now: datetime) -> builtins.list[EvidenceItem]:
        return self._store.expired(now)

    # -- keeping and revealing --

    def put(
        self,
        data: bytes,
        context: Mapping[str, Any],
        *,
        jurisdiction: str,
        actor: str = SYSTEM_ACTOR,
    ) -> EvidenceItem:
        """Keep matched content. ``context`` must carry a non-empty ``matches`` list
        (non-matching content is never stored); it is encrypted whole, and only
        ``summarise(context)`` is kept in clear."""
        sealed = self.seal(data, context, jurisdiction=jurisdiction)
        try:
            self._store.insert(sealed.item, data_key=sealed.data_key, context=sealed.context)
        except BaseException:
            sealed.discard()
            raise
        self.emit(AuditAction.EVIDENCE_KEPT, sealed.item.id, actor, **kept_details(sealed.item))
        return sealed.item

    def seal(self, data: bytes, context: Mapping[str, Any], *, jurisdiction: str) -> SealedItem:
        """``put``'s first half: the item sealed and its blob file written, but not
        recorded. The caller records it (``Writes.keep_evidence``) and its
        ``evidence.kept`` event in the transaction that stores what it is evidence of,
        and ``discard``s it if that transaction fails. A crash in between leaves a blob
        file with no row: an orphan that a sweep removes, never a row without its file."""
        summary = summarise(context)
        code = jurisdiction.strip().upper()
        if not code or len(code) > 16:
            raise EvidenceError("a jurisdiction is a code of 1 to 16 characters, e.g. US")
        item_id = str(uuid.uuid4())
        created = self._clock().astimezone(UTC)
        data_key = secrets.token_bytes(KEY_BYTES)
        item = EvidenceItem(
            id=item_id,
            created_at=created,
            retain_until=self.retention.retain_until(created, code),
            jurisdiction=code,
            legal_hold=False,
            hold_reason=None,
            held_at=None,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            summary=summary,
        )
        sealed_context = seal_part(data_key, item_id, "context", _context_json(context))
        path = self.blob_path(item_id)
        _write_atomically(path, seal_part(data_key, item_id, "blob", data))
        return SealedItem(
            item=item,
            data_key=self._master.seal(data_key, context=key_context(item_id)),
            context=sealed_context,
            path=path,
        )

    def _data_key(self, item: EvidenceItem) -> tuple[bytes, bytes]:
        """The item's data key, opened, and its sealed context."""
        if item.destroyed_at is not None:
            raise EvidenceDestroyed(f"evidence item {item.id} was destroyed")
        wrapped, sealed_context = self._store.sealed(item.id)
        if wrapped is None or sealed_context is None:
            raise EvidenceDestroyed(f"evidence item {item.id} was destroyed")
        try:
            return self._master.open(wrapped, context=key_context(item.id)), sealed_context
        except MasterKeyError:
            raise EvidenceCorrupt(
                f"the data key of evidence item {item.id} does not open: wrong master key, "
                "or the key was copied from another item"
            ) from None

    def get(
        self, item_id: str, *, actor: str = SYSTEM_ACTOR, reason: str | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        """The item's bytes and context, verified against its recorded size and SHA-256.
        Recorded as ``evidence.revealed`` before they are returned."""
        item = self.item(item_id)
        data_key, sealed_context = self._data_key(item)
        try:
            blob = self.blob_path(item_id).read_bytes()
        except FileNotFoundError:
            raise EvidenceCorrupt(f"the file of evidence item {item_id} is missing") from None
        data = open_part(data_key, item_id, "blob", blob)
        context = json.loads(open_part(data_key, item_id, "context", sealed_context))
        if len(data) != item.size or hashlib.sha256(data).hexdigest() != item.sha256:
            raise EvidenceCorrupt(f"evidence item {item_id} does not match its recorded digest")
        self.emit(AuditAction.EVIDENCE_REVEALED, item_id, actor, reason=reason)
        assert isinstance(context, dict)
        return data, context

    # -- holds and destruction --

    def hold(self, item_id: str, reason: str, *, actor: str = SYSTEM_ACTOR) -> EvidenceItem:
        """Place a legal hold: the item is not destroyed, whatever its retention."""
        if not reason.strip():
            raise EvidenceError("a legal hold needs a reason (e.g. the request's reference)")
        return self._set_hold(item_id, reason.strip(), actor)

    def release(self, item_id: str, *, actor: str = SYSTEM_ACTOR) -> EvidenceItem:
        """Lift a legal hold; the item is then kept until its retention ends."""
        return self._set_hold(item_id, None, actor)

    def _set_hold(self, item_id: str, reason: str | None, actor: str) -> EvidenceItem:
        self.item(item_id)
        if not self._store.set_hold(item_id, reason=reason, at=self._clock()):
            raise EvidenceDestroyed(f"evidence item {item_id} was destroyed")
        if reason is None:
            self.emit(AuditAction.EVIDENCE_RELEASED, item_id, actor)
        else:
            self.emit(AuditAction.EVIDENCE_HELD, item_id, actor, reason=reason)
        return self.item(item_id)

    def delete(
        self, item_id: str, *, actor: str, reason: str, now: datetime | None = None
    ) -> EvidenceItem:
        """Destroy an item: refused under a legal hold (``UnderLegalHold``) and before
        its retention ends (``WithinRetention``)."""
        at = (now or self._clock()).astimezone(UTC)
        self._check_deletable(self.item(item_id), at)
        if not self._store.destroy(item_id, at=at, actor=actor, reason=reason):
            # changed since we looked (a hold placed, a concurrent destruction)
            self._check_deletable(self.item(item_id), at)
            raise EvidenceError(f"evidence item {item_id} changed while it was being destroyed")
        self._remove_blob(item_id)
        self.emit(AuditAction.EVIDENCE_DESTROYED, item_id, actor, reason=reason)
        return self.item(item_id)

    @staticmethod
    def _check_deletable(item: EvidenceItem, at: datetime) -> None:
        if item.destroyed_at is not None:
            raise EvidenceDestroyed(f"evidence item {item.id} was already destroyed")
        if item.legal_hold:
            raise UnderLegalHold(
                f"evidence item {item.id} is under a legal hold ({item.hold_reason}): "
                "release it first"
            )
        if not item.expired(at):
            raise WithinRetention(
                f"evidence item {item.id} must be kept until "
                f"{item.retain_until:%Y-%m-%d %H:%M} UTC ({item.jurisdiction} retention)"
            )

    def _remove_blob(self, item_id: str) -> None:
        path = self.blob_path(item_id)
        path.unlink(missing_ok=True)
        if path.parent.exists():
            _fsync_dir(path.parent)

    def remove_orphans(self, older_than: datetime) -> int:
        """Remove blob files (and leftover temp files) older than ``older_than`` that no
        live item owns (``orphan_files``). Younger files may belong to a ``put`` in
        progress and are left alone."""
        removed = 0
        for path in orphan_files(self._store, self.blob_dir, older_than):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def orphan_files(store: EvidenceStore, blob_dir: Path, older_than: datetime) -> list[Path]:
    """Blob files (and leftover temp files) older than ``older_than`` that no live item
    owns: a crash between writing a file and recording its item, or between erasing a
    key and unlinking its file."""
    if not blob_dir.is_dir():
        return []
    limit = older_than.timestamp()
    candidates = [
        p
        for p in blob_dir.glob("*/*")
        if _is_vault_file(p.name) and p.is_file() and p.stat().st_mtime < limit
    ]
    live = store.live(p.name for p in candidates if not p.name.startswith("."))
    return [path for path in candidates if path.name not in live]
