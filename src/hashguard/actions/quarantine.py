"""Quarantine of local files the scanner matched: move them away, record where, restore.

A file is moved, never copied and left: ``os.rename`` within a filesystem; across
filesystems a copy into the quarantine directory (created 0600, fsynced, its SHA-256
checked against the original's) is renamed into place before the original is unlinked,
and the original is checked to be gone. The quarantine directory is 0700 and each file
in it 0600, named after its action id. The store records the original path (its exact
bytes), SHA-256, size, mode and owner *before* the move, so a dispatcher killed in
between finishes the job on its next attempt instead of losing track of the file.
``restore`` moves a file back after a false positive and never overwrites a file that
has since appeared at its original path.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hashguard.actions.delivery import Delivered, Outcome, Permanent, Retry
from hashguard.actions.outbox import webhook_actions
from hashguard.domain.actions import (
    EventType,
    OutboxAction,
    QuarantineRecord,
    QuarantineState,
    WebhookEndpoint,
)
from hashguard.domain.scans import printable_path
from hashguard.store.actions import ActionStore

DIR_MODE = 0o700
FILE_MODE = 0o600
_CHUNK = 1 << 20


class QuarantineError(Exception):
    """The file cannot be quarantined or restored (the message says why)."""


class RestoreRefused(QuarantineError):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class FileFacts:
    sha256: str
    size: int
    mode: int
    uid: int
    gid: int


def quarantine_name(action_id: int) -> str:
    return f"action-{action_id:012d}.quarantined"


def ensure_dir(quarantine_dir: Path) -> Path:
    """The quarantine directory, created 0700 (and tightened to 0700 if it exists)."""
    quarantine_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if quarantine_dir.is_symlink() or not quarantine_dir.is_dir():
        raise QuarantineError(f"{quarantine_dir} is not a directory")
    os.chmod(quarantine_dir, DIR_MODE)
    return quarantine_dir


def _sha256_of(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def file_facts(path: bytes | str | Path) -> FileFacts:
    """Facts of a regular file (symlinks and special files are refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise QuarantineError(f"cannot open the file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise QuarantineError("not a regular file")
        return FileFacts(
            sha256=_sha256_of(fd),
            size=info.st_size,
            mode=stat.S_IMODE(info.st_mode),
            uid=info.st_uid,
            gid=info.st_gid,
        )
    finally:
        os.close(fd)


def _fsync_dir(path: Path | bytes) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_to_new(src: bytes | str | Path, dest: Path | bytes, expect_sha256: str) -> None:
    """Copy ``src`` to the new file ``dest`` (0600, fsynced), checking its SHA-256."""
    digest = hashlib.sha256()
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        try:
            while chunk := os.read(fd_in, _CHUNK):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
            os.fsync(fd_out)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    if digest.hexdigest() != expect_sha256:
        os.unlink(dest)
        raise QuarantineError("the file changed while it was being copied")


def move_across(src: bytes | str | Path, dest: Path, expect_sha256: str) -> None:
    """The cross-filesystem move: temp copy in ``dest``'s directory, rename, then unlink
    ``src`` and check it is gone."""
    part = dest.with_name(dest.name + ".part")
    if os.path.lexists(part):
        os.unlink(part)  # a copy left by a crash mid-copy; the original is still there
    _copy_to_new(src, part, expect_sha256)
    os.rename(part, dest)
    _fsync_dir(dest.parent)
    os.unlink(src)
    if os.path.lexists(src):
        raise QuarantineError("the original is still there after the move")


def quarantine(
    path: bytes | str | Path, quarantine_dir: Path, action_id: int, facts: FileFacts
) -> Path:
    """Move ``path`` into ``quarantine_dir`` as ``quarantine_name(action_id)``, 0600."""
    directory = ensure_dir(quarantine_dir)
    dest = directory / quarantine_name(action_id)
    if os.path.lexists(dest):
        raise QuarantineError(f"{dest.name} already exists in quarantine")
    try:
        os.rename(path, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise QuarantineError(f"cannot move the file: {exc.strerror}") from None
        move_across(path, dest, facts.sha256)
    else:
        _fsync_dir(directory)
    os.chmod(dest, FILE_MODE, follow_symlinks=False)
    if os.path.lexists(path):
        raise QuarantineError("the original is still there after the move")
    return dest


def restore(
    store: ActionStore, action_id: int, *, actor: str, at: datetime | None = None
) -> QuarantineRecord:
    """Move a quarantined file back to its original path with its mode (and owner, when
    running as root), and record it. Refuses (``RestoreRefused``) when a file now
    exists at the original path: nothing is ever overwritten."""
    record = store.quarantine_record(action_id)
    if record is None or record.state is not QuarantineState.QUARANTINED:
        raise RestoreRefused(f"action {action_id} has no file in quarantine")
    src = Path(record.quarantine_path)
    dest = record.original_path_raw
    if os.path.lexists(dest):
        raise RestoreRefused(f"a file now exists at {record.original_path}; not overwriting it")
    try:
        # link + unlink: atomic, and fails rather than replace a file created meanwhile
        os.link(src, dest)
    except FileExistsError:
        raise RestoreRefused(
            f"a file now exists at {record.original_path}; not overwriting it"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise QuarantineError(f"cannot restore the file: {exc.strerror}") from None
        try:
            _copy_to_new(src, dest, record.sha256)
        except FileExistsError:
            raise RestoreRefused(
                f"a file now exists at {record.original_path}; not overwriting it"
            ) from None
    os.chmod(dest, record.mode, follow_symlinks=False)
    if os.geteuid() == 0:
        os.chown(dest, record.uid, record.gid, follow_symlinks=False)
    os.unlink(src)
    return store.mark_restored(action_id, actor=actor, at=at)


class QuarantineDeliverer:
    """Carries out quarantine actions; on success, ``content.quarantined`` webhooks follow
    (enqueued by the dispatcher in the transaction that marks the action done)."""

    def __init__(
        self,
        store: ActionStore,
        quarantine_dir: Path,
        endpoints: Mapping[str, WebhookEndpoint],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._dir = quarantine_dir
        self._endpoints = endpoints
        self._clock = clock

    def deliver(self, action: OutboxAction) -> Outcome:
        try:
            source = base64.b64decode(str(action.payload["path_b64"]), validate=True)
        except (KeyError, ValueError):
            return Permanent("the quarantine action names no path")
        dest = self._dir / quarantine_name(action.id)
        record = self._store.quarantine_record(action.id)
        try:
            if record is not None and os.path.lexists(dest):
                pass  # moved by an attempt that did not get to record it: finish
            elif os.path.lexists(source):
                facts = file_facts(source)
                record = self._store.begin_quarantine(
                    QuarantineRecord(
                        action_id=action.id,
                        state=QuarantineState.MOVING,
                        original_path=printable_path(os.fsdecode(source)),
                        original_path_raw=source,
                        quarantine_path=str(dest),
                        sha256=facts.sha256,
                        size=facts.size,
                        mode=facts.mode,
                        uid=facts.uid,
                        gid=facts.gid,
                        created_at=self._clock(),
                    )
                )
                quarantine(source, self._dir, action.id, facts)
            else:
                return Permanent("the file is no longer at its path")
        except QuarantineError as exc:
            return Permanent(str(exc))
        except OSError as exc:
            return Retry(f"{type(exc).__name__}: {exc.strerror}")
        assert record is not None
        data = {
            "action_id": action.id,
            "path": record.original_path,
            "sha256": record.sha256,
            "size": record.size,
            "quarantine_path": str(dest),
        }
        followups = webhook_actions(
            EventType.CONTENT_QUARANTINED,
            data,
            self._endpoints.values(),
            key=f"quarantine:{action.idempotency_key}",
            subject=action.subject,
            at=self._clock(),
        )
        return Delivered(tuple(followups))
