"""Quarantine of local files the scanner matched: move them away, record where, restore.

Only the matched bytes are moved. An action carries the matched content's SHA-256;
the file's folder is opened at its real path with ``O_NOFOLLOW`` at every component,
the file relative to it with ``O_NOFOLLOW``, and its SHA-256 is computed from that
descriptor: a file replaced since the scan (or a symlink swapped in) is a dead letter
that says why, and nothing is moved. The move is a ``renameat`` from the folder's
descriptor, after which the file that arrived must be the one that was hashed (device
and inode, not written to meanwhile) or it is put back. Across filesystems a copy from
the descriptor (0600, fsynced, its SHA-256 checked again) is renamed into place, then
the original is unlinked only if its name still refers to the hashed file. The
quarantine directory is 0700 and each file in it 0600, named after its action id. The
store records the original (real) path (its exact bytes), SHA-256, size, mode and owner
*before* the move, so a dispatcher killed in between finishes the job on its next
attempt instead of losing track of the file. ``restore`` moves a file back after a
false positive, never overwrites a file that has since appeared at its original path,
and never goes through a folder that has become a symlink.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hashguard.actions.delivery import Delivered, DeliveryResult, Permanent, Retry
from hashguard.actions.outbox import webhook_actions
from hashguard.domain.actions import (
    EventType,
    OutboxAction,
    QuarantineRecord,
    QuarantineState,
    WebhookEndpoint,
)
from hashguard.domain.scans import printable_path
from hashguard.safefs import SymlinkInPath, open_dir_nofollow, same_file, split_name
from hashguard.store.actions import ActionStore

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
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
        return _facts(fd, os.fstat(fd))
    finally:
        os.close(fd)


def _facts(fd: int, info: os.stat_result) -> FileFacts:
    if not stat.S_ISREG(info.st_mode):
        raise QuarantineError("not a regular file")
    os.lseek(fd, 0, os.SEEK_SET)
    return FileFacts(
        sha256=_sha256_of(fd),
        size=info.st_size,
        mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
    )


def _copy_fd(fd_in: int, fd_out: int) -> str:
    """Copy all of ``fd_in`` (from its start) to ``fd_out``, fsynced; the SHA-256 copied."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd_in, _CHUNK, offset):
        offset += len(chunk)
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd_out, view) :]
    os.fsync(fd_out)
    return digest.hexdigest()


def copy_to_new(
    fd_in: int,
    name: bytes | str,
    dir_fd: int,
    expect_sha256: str,
    mode: int = FILE_MODE,
    owner: tuple[int, int] | None = None,
) -> None:
    """Copy ``fd_in`` to the new file ``name`` in ``dir_fd`` (``mode``, fsynced), checking
    its SHA-256; never over an existing file or through a symlink."""
    fd_out = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        FILE_MODE,
        dir_fd=dir_fd,
    )
    try:
        copied = _copy_fd(fd_in, fd_out)
        os.fchmod(fd_out, mode)
        if owner is not None:
            os.fchown(fd_out, *owner)
    finally:
        os.close(fd_out)
    if copied != expect_sha256:
        os.unlink(name, dir_fd=dir_fd)
        raise QuarantineError("the file changed while it was being copied")


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchedFile:
    """A file opened for quarantine: its folder (``dir_fd``, opened at its real path with
    no symlink followed), its name there, its descriptor (``O_NOFOLLOW``) and facts read
    from that descriptor. ``real_path`` is where it is: the folder's real path and name."""

    dir_fd: int
    name: bytes
    fd: int
    info: os.stat_result
    facts: FileFacts
    real_path: bytes

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.dir_fd)

    def still_at_its_name(self) -> bool:
        try:
            now = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return same_file(now, self.info)

    def unchanged(self) -> bool:
        """Not written to since its facts were read (size and modification time)."""
        now = os.fstat(self.fd)
        return (now.st_size, now.st_mtime_ns) == (self.info.st_size, self.info.st_mtime_ns)


class FileGone(QuarantineError):
    pass


class NothingMoved(QuarantineError):
    """Refused before anything was moved (or after the move was undone)."""


def open_matched(path: bytes, expect_sha256: str) -> MatchedFile:
    """Open the file at ``path`` for quarantine, and check from its descriptor that it
    holds the matched bytes (``expect_sha256``).

    The folder is resolved once and opened at its real path with ``O_NOFOLLOW`` at every
    component, the file relative to it with ``O_NOFOLLOW``: a symlink (to the folder or
    the file) swapped in is never followed. Raises ``FileGone`` when nothing is at the
    path, ``QuarantineError`` when what is there is not the matched file."""
    parent, name = split_name(path)
    real_parent = os.fsencode(os.path.realpath(parent))
    try:
        dir_fd = open_dir_nofollow(real_parent)
    except FileNotFoundError:
        raise FileGone("the file is no longer at its path (its folder is gone)") from None
    except OSError as exc:
        raise QuarantineError(f"cannot open the file's folder: {exc.strerror}") from None
    try:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except FileNotFoundError:
            raise FileGone("the file is no longer at its path") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise QuarantineError(
                    "a symlink is now at the file's path; not followed, nothing moved"
                ) from None
            raise QuarantineError(f"cannot open the file: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            facts = _facts(fd, info)
        except BaseException:
            os.close(fd)
            raise
    except BaseException:
        os.close(dir_fd)
        raise
    opened = MatchedFile(
        dir_fd=dir_fd,
        name=name,
        fd=fd,
        info=info,
        facts=facts,
        real_path=os.path.join(real_parent, name),
    )
    if facts.sha256 != expect_sha256:
        opened.close()
        raise QuarantineError(
            "the file at the path is not the one that matched (its SHA-256 differs): "
            "it was replaced or changed since the scan; nothing moved"
        )
    return opened


def _open_quarantine_dir(quarantine_dir: Path) -> int:
    ensure_dir(quarantine_dir)
    return os.open(quarantine_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _exists(name: bytes | str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _put_back(qdir_fd: int, dest_name: str, src: MatchedFile) -> str:
    """Undo a move that took the wrong file: link it back under its name (never over a
    file that appeared there), or set it aside in quarantine as ``*.unverified``."""
    try:
        os.link(
            dest_name, src.name, src_dir_fd=qdir_fd, dst_dir_fd=src.dir_fd, follow_symlinks=False
        )
    except OSError:
        os.rename(dest_name, dest_name + ".unverified", src_dir_fd=qdir_fd, dst_dir_fd=qdir_fd)
        return f"it could not be put back and was set aside as {dest_name}.unverified"
    os.unlink(dest_name, dir_fd=qdir_fd)
    return "it was put back"


def move_matched(src: MatchedFile, quarantine_dir: Path, dest_name: str) -> Path:
    """Move the opened, checked file into ``quarantine_dir`` as ``dest_name`` (0600).

    Within a filesystem: ``renameat`` from its folder's descriptor, then a check that
    what arrived is the very file that was hashed (device and inode) and that it was not
    written to meanwhile; otherwise it is put back and nothing is quarantined. Across
    filesystems: a copy from the descriptor (its SHA-256 checked again) is renamed into
    place, then the original is unlinked only if its name still refers to that file."""
    qdir_fd = _open_quarantine_dir(quarantine_dir)
    try:
        if _exists(dest_name, qdir_fd):
            raise NothingMoved(f"{dest_name} already exists in quarantine")
        if not src.still_at_its_name():
            raise NothingMoved(
                "the file at the path was replaced after it was checked; nothing moved"
            )
        try:
            os.rename(src.name, dest_name, src_dir_fd=src.dir_fd, dst_dir_fd=qdir_fd)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise NothingMoved(f"cannot move the file: {exc.strerror}") from None
            _move_across(src, qdir_fd, dest_name)
        else:
            arrived = os.stat(dest_name, dir_fd=qdir_fd, follow_symlinks=False)
            if not same_file(arrived, src.info) or not src.unchanged():
                undone = _put_back(qdir_fd, dest_name, src)
                raise NothingMoved(
                    "the file at the path was replaced or written to while it was moved; "
                    f"{undone}: nothing quarantined"
                )
            os.fsync(qdir_fd)
            os.fchmod(src.fd, FILE_MODE)
    finally:
        os.close(qdir_fd)
    return quarantine_dir / dest_name


def _move_across(src: MatchedFile, qdir_fd: int, dest_name: str) -> None:
    part = dest_name + ".part"
    if _exists(part, qdir_fd):
        os.unlink(part, dir_fd=qdir_fd)  # a copy left by a crash mid-copy
    copy_to_new(src.fd, part, qdir_fd, src.facts.sha256)
    os.rename(part, dest_name, src_dir_fd=qdir_fd, dst_dir_fd=qdir_fd)
    os.fsync(qdir_fd)
    _unlink_original(src)


def _unlink_original(src: MatchedFile) -> None:
    """Unlink the original after its copy is in quarantine, if its name still refers to
    it; the link count on its descriptor confirms the right file went."""
    if not src.still_at_its_name():
        raise QuarantineError(
            "the file at the path was replaced while it was copied into quarantine: the "
            "matched bytes are in quarantine; the file now at the path was left alone"
        )
    links = os.fstat(src.fd).st_nlink
    os.unlink(src.name, dir_fd=src.dir_fd)
    os.fsync(src.dir_fd)
    if os.fstat(src.fd).st_nlink != links - 1:
        raise QuarantineError("the file was replaced just as it was unlinked")
    if _exists(src.name, src.dir_fd) and src.still_at_its_name():
        raise QuarantineError("the original is still there after the move")


def _finish_left_original(record: QuarantineRecord) -> None:
    """After a crash between a cross-filesystem copy and the unlink: the matched
    original (same SHA-256) still at its path is unlinked; anything else is left."""
    try:
        src = open_matched(record.original_path_raw, record.sha256)
    except QuarantineError:
        return
    try:
        _unlink_original(src)
    finally:
        src.close()


def restore(
    store: ActionStore, action_id: int, *, actor: str, at: datetime | None = None
) -> QuarantineRecord:
    """Move a quarantined file back to its original path with its mode (and owner, when
    running as root), and record it. Refuses (``RestoreRefused``) when a file now
    exists at the original path (nothing is ever overwritten) and when a folder on the
    way is now a symlink (it is never followed: each component is opened with
    ``O_NOFOLLOW``)."""
    record = store.quarantine_record(action_id)
    if record is None or record.state is not QuarantineState.QUARANTINED:
        raise RestoreRefused(f"action {action_id} has no file in quarantine")
    parent, name = split_name(record.original_path_raw)
    try:
        dir_fd = open_dir_nofollow(parent)
    except SymlinkInPath as exc:
        raise RestoreRefused(
            f"a folder on the way to {record.original_path} is now a symlink "
            f"({exc.strerror}); not restoring through it"
        ) from None
    except OSError as exc:
        raise QuarantineError(
            f"cannot open the folder of {record.original_path}: {exc.strerror}"
        ) from None
    try:
        _restore_into(record, dir_fd, name)
    finally:
        os.close(dir_fd)
    os.unlink(record.quarantine_path)
    return store.mark_restored(action_id, actor=actor, at=at)


def _restore_into(record: QuarantineRecord, dir_fd: int, name: bytes) -> None:
    exists = RestoreRefused(f"a file now exists at {record.original_path}; not overwriting it")
    owner = (record.uid, record.gid) if os.geteuid() == 0 else None
    if _exists(name, dir_fd):
        raise exists
    fd_in = os.open(record.quarantine_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            # link: atomic, and fails rather than replace a file created meanwhile
            os.link(record.quarantine_path, name, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            raise exists from None
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
                raise QuarantineError(f"cannot restore the file: {exc.strerror}") from None
            try:
                copy_to_new(fd_in, name, dir_fd, record.sha256, record.mode, owner)
            except FileExistsError:
                raise exists from None
        else:  # the restored name is this very file: set it through its descriptor
            os.fchmod(fd_in, record.mode)
            if owner is not None:
                os.fchown(fd_in, *owner)
    finally:
        os.close(fd_in)


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

    def deliver(self, action: OutboxAction) -> DeliveryResult:
        try:
            source = base64.b64decode(str(action.payload["path_b64"]), validate=True)
        except (KeyError, ValueError):
            return Permanent("the quarantine action names no path")
        dest = self._dir / quarantine_name(action.id)
        record = self._store.quarantine_record(action.id)
        try:
            if record is not None and os.path.lexists(dest):
                # moved by an attempt that did not get to record it: finish
                _finish_left_original(record)
            else:
                expected = action.payload.get("sha256")
                if not isinstance(expected, str) or not SHA256_HEX.fullmatch(expected):
                    # enqueued before actions carried the matched bytes' SHA-256: without
                    # it, whatever is at the path now would be moved
                    return Permanent(
                        "the quarantine action carries no SHA-256 of the matched content "
                        "(enqueued by an older version): nothing moved; scan the file again "
                        "or quarantine it by hand"
                    )
                record = self._move(action.id, source, expected, dest)
        except FileGone as exc:
            return Permanent(str(exc))
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

    def _move(self, action_id: int, source: bytes, sha256: str, dest: Path) -> QuarantineRecord:
        """Open the file, check its bytes, record it (``moving``), then move it."""
        src = open_matched(source, sha256)
        try:
            facts = src.facts
            record = self._store.begin_quarantine(
                QuarantineRecord(
                    action_id=action_id,
                    state=QuarantineState.MOVING,
                    original_path=printable_path(os.fsdecode(src.real_path)),
                    original_path_raw=src.real_path,
                    quarantine_path=str(dest),
                    sha256=facts.sha256,
                    size=facts.size,
                    mode=facts.mode,
                    uid=facts.uid,
                    gid=facts.gid,
                    created_at=self._clock(),
                )
            )
            try:
                move_matched(src, self._dir, dest.name)
            except NothingMoved:
                self._store.drop_moving(action_id)
                raise
        finally:
            src.close()
        return record
