"""Where a hashed item came from: a local file of a scan run, an upload's bytes, or the
content a DSA notice resolved to.

A source says what the pipeline needs to know of an item's origin: the bytes to keep
as evidence or to send to a remote matcher, where the case says it was seen, the
caller's ids kept with the evidence, the key its actions are named by, whether its
result is recorded in a scan run, and (for an object-storage object) the identity its
result is recorded with. A new way in is a new class here, not a new wiring.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hashguard.domain.cases import CaseSource, ContentRef, SourceKind
from hashguard.domain.kept import KeptSignal
from hashguard.domain.objects import ObjectRef
from hashguard.domain.scans import FileResult, ScanOptions
from hashguard.domain.signals import FileSignals, PdqMode
from hashguard.evidence.capture import NotTheMatchedFile, read_matched
from hashguard.hashing.kernel import open_input
from hashguard.safefs import OutsideRoots
from hashguard.settings import Settings

#: files larger than this are not sent to remote matchers (PhotoDNA takes 4 MB at most)
REMOTE_MEDIA_LIMIT = 32 * 1024 * 1024


class Source(Protocol):
    @property
    def run_id(self) -> int | None:
        """The scan run that records the item's result (``None``: no result is kept)."""
        ...

    @property
    def quarantine_local(self) -> bool:
        """Whether the item is a local file that quarantine may move."""
        ...

    @property
    def object(self) -> ObjectRef | None:
        """The object-storage object the item is (recorded with its result), if any."""
        ...

    def case_source(self, result: FileResult) -> CaseSource: ...

    def content(self) -> ContentRef: ...

    def context(self) -> dict[str, str | None]:
        """The caller's ids kept (encrypted) with the evidence."""
        ...

    def action_key(self, result: FileResult) -> str:
        """What names the item's decision in its actions' idempotency keys."""
        ...

    def evidence(self, sha256: str) -> bytes:
        """The bytes to keep, only if they are the ones hashed (``sha256``); raises
        ``evidence.capture.NotTheMatchedFile`` (saying why) otherwise."""
        ...

    def media(self, signals: FileSignals) -> bytes:
        """The bytes a remote matcher may be sent: only those hashed (``b""``: none past
        the limit, or the content changed)."""
        ...

    def rehash(self) -> Rehash:
        """Where the content is read again to confirm a fast hash in reference mode."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Rehash:
    """The content to hash again: its bytes, or a path (opened as the kernel opens it)."""

    data: bytes | None = None
    path: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LocalFile:
    """A file of scan run ``run_id`` (``hashguard scan`` or a server's scan run); with
    ``confine`` (the run's real folders) it is opened as the kernel opens it, without
    following a symlink swapped in since."""

    path: str
    run_id: int
    confine: Sequence[str] | None = None

    @property
    def quarantine_local(self) -> bool:
        return True  # when the settings ask for it

    @property
    def object(self) -> ObjectRef | None:
        return None

    def case_source(self, result: FileResult) -> CaseSource:
        return CaseSource(kind=SourceKind.SCAN, ref=str(self.run_id), path=result.path)

    def content(self) -> ContentRef:
        return ContentRef()

    def context(self) -> dict[str, str | None]:
        return {}

    def action_key(self, result: FileResult) -> str:
        return f"scan:{self.run_id}:{result.path}"

    def evidence(self, sha256: str) -> bytes:
        return read_matched(self.path, sha256)

    def media(self, signals: FileSignals) -> bytes:
        if signals.size > REMOTE_MEDIA_LIMIT:
            return b""
        try:
            with os.fdopen(open_input(self.path, self.confine), "rb") as handle:
                data = handle.read(REMOTE_MEDIA_LIMIT + 1)
        except (OSError, OutsideRoots):
            return b""
        return data if hashlib.sha256(data).hexdigest() == signals.sha256 else b""

    def rehash(self) -> Rehash:
        return Rehash(path=self.path)


@dataclass(frozen=True, kw_only=True, slots=True)
class Upload:
    """An upload to ``/v1/scan``: its bytes and what the caller said of it."""

    data: bytes
    request_id: str | None
    content_ref: ContentRef
    uploader_ip: str | None = None

    @property
    def run_id(self) -> int | None:
        return None

    @property
    def quarantine_local(self) -> bool:
        return False  # an upload is the platform's to hold back, not a file here

    @property
    def object(self) -> ObjectRef | None:
        return None

    def case_source(self, result: FileResult) -> CaseSource:
        return CaseSource(kind=SourceKind.UPLOAD, ref=self.request_id or "-")

    def content(self) -> ContentRef:
        return self.content_ref

    def context(self) -> dict[str, str | None]:
        return {
            "request_id": self.request_id,
            "content_id": self.content_ref.content_id,
            "uploader_id": self.content_ref.uploader_id,
            "url": self.content_ref.url,
            "uploader_ip": self.uploader_ip,
        }

    def action_key(self, result: FileResult) -> str:
        sha256 = result.signals.sha256 if result.signals else ""
        return f"upload:{sha256}:{self.request_id}"

    def evidence(self, sha256: str) -> bytes:
        return self.data

    def media(self, signals: FileSignals) -> bytes:
        return self.data

    def rehash(self) -> Rehash:
        return Rehash(data=self.data)


@dataclass(frozen=True, kw_only=True, slots=True)
class NoticeContent:
    """The content a DSA notice's item resolved to: the bytes the platform's callback
    handed back (``notices.callback``), item ``item`` of notice ``notice_id``. Its case
    names the notice (``SourceKind.NOTICE``, the notice id)."""

    data: bytes
    notice_id: int
    item: int
    content_ref: ContentRef

    @property
    def run_id(self) -> int | None:
        return None

    @property
    def quarantine_local(self) -> bool:
        return False  # the platform's to hold back, not a file here

    @property
    def object(self) -> ObjectRef | None:
        return None

    def case_source(self, result: FileResult) -> CaseSource:
        return CaseSource(kind=SourceKind.NOTICE, ref=str(self.notice_id))

    def content(self) -> ContentRef:
        return self.content_ref

    def context(self) -> dict[str, str | None]:
        return {
            "notice_id": str(self.notice_id),
            "content_id": self.content_ref.content_id,
            "url": self.content_ref.url,
        }

    def action_key(self, result: FileResult) -> str:
        sha256 = result.signals.sha256 if result.signals else ""
        return f"notice:{self.notice_id}:{self.item}:{sha256}"

    def evidence(self, sha256: str) -> bytes:
        return self.data

    def media(self, signals: FileSignals) -> bytes:
        return self.data if len(self.data) <= REMOTE_MEDIA_LIMIT else b""

    def rehash(self) -> Rehash:
        return Rehash(data=self.data)


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredObject:
    """An object of an object-storage scan run (``hashguard scan s3://…``).

    ``data`` holds the bytes hashed while the item is in flight (a fast PDQ hash is
    confirmed and evidence kept from them, with no second download); once it is
    recorded, ``fetch(ref)`` reads the object again, pinned to its version and ETag
    (``If-Match``), and the bytes are used only if they are the ones hashed."""

    ref: ObjectRef
    run_id: int
    fetch: Callable[[ObjectRef], bytes]
    data: bytes | None = None

    @property
    def object(self) -> ObjectRef | None:
        return self.ref

    @property
    def quarantine_local(self) -> bool:
        return False  # quarantine in object storage is its own action (issue 18, part 3)

    def case_source(self, result: FileResult) -> CaseSource:
        return CaseSource(kind=SourceKind.SCAN, ref=str(self.run_id), path=result.path)

    def content(self) -> ContentRef:
        return ContentRef(url=self.ref.uri)

    def context(self) -> dict[str, str | None]:
        return {
            "bucket": self.ref.bucket,
            "key": self.ref.key,
            "version_id": self.ref.version_id,
            "etag": self.ref.etag,
        }

    def action_key(self, result: FileResult) -> str:
        return f"scan:{self.run_id}:{self.ref.uri}"

    def _bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        return self.fetch(self.ref)

    def evidence(self, sha256: str) -> bytes:
        try:
            data = self._bytes()
        except OSError as exc:
            raise NotTheMatchedFile(f"the object cannot be read again: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise NotTheMatchedFile("the object changed since it was hashed")
        return data

    def media(self, signals: FileSignals) -> bytes:
        if signals.size > REMOTE_MEDIA_LIMIT:
            return b""
        try:
            data = self._bytes()
        except OSError:
            return b""
        return data if hashlib.sha256(data).hexdigest() == signals.sha256 else b""

    def rehash(self) -> Rehash:
        # only the bytes in hand: reading the object again for a rare confirmation is
        # left to the caller (the scanner keeps them until the item is recorded)
        return Rehash(data=self.data if self.data is not None else b"")


@dataclass(frozen=True, kw_only=True, slots=True)
class KeptItem:
    """An item checked earlier whose kept signal matched a newer bank entry
    (retro-matching). Its result is recorded in no scan run; its case names where it
    was seen. Its content is read again only for evidence of a match: a local file at
    its path, an object through ``fetch`` (pinned to its version and ETag), each used
    only if it is still the content hashed; an upload's bytes were never kept."""

    kept: KeptSignal
    fetch: Callable[[ObjectRef], bytes] | None = None

    @property
    def run_id(self) -> int | None:
        return None

    @property
    def quarantine_local(self) -> bool:
        return self.kept.way == SourceKind.SCAN and self.kept.object is None

    @property
    def object(self) -> ObjectRef | None:
        return self.kept.object

    def case_source(self, result: FileResult) -> CaseSource:
        kept = self.kept
        if kept.way == SourceKind.UPLOAD:
            return CaseSource(kind=SourceKind.UPLOAD, ref=kept.request_id or "-")
        if kept.way == SourceKind.NOTICE:
            return CaseSource(kind=SourceKind.NOTICE, ref=kept.request_id or "-")
        return CaseSource(kind=SourceKind.SCAN, ref=str(kept.run_id or "-"), path=kept.path)

    def content(self) -> ContentRef:
        url = self.kept.object.uri if self.kept.object is not None else None
        return ContentRef(content_id=self.kept.content_id, url=url)

    def context(self) -> dict[str, str | None]:
        return {"kept_signal": str(self.kept.id), "content_id": self.kept.content_id}

    def action_key(self, result: FileResult) -> str:
        return f"retro:{self.kept.id}:{self.kept.sha256}"

    def evidence(self, sha256: str) -> bytes:
        kept = self.kept
        if kept.object is not None:
            if self.fetch is None:
                raise NotTheMatchedFile("no object store is configured to read the object")
            try:
                data = self.fetch(kept.object)
            except OSError as exc:
                raise NotTheMatchedFile(f"the object cannot be read again: {exc}") from exc
            if hashlib.sha256(data).hexdigest() != sha256:
                raise NotTheMatchedFile("the object changed since it was hashed")
            return data
        if kept.path is not None and kept.way == SourceKind.SCAN:
            return read_matched(kept.path, sha256)
        raise NotTheMatchedFile("the item's bytes were not kept (only its hashes)")

    def media(self, signals: FileSignals) -> bytes:
        return b""  # remote matchers are not asked again

    def rehash(self) -> Rehash:
        return Rehash(data=b"")


def scan_options(
    settings: Settings,
    *,
    dihedral: bool = False,
    max_pixels: int | None = None,
    max_frames: int | None = None,
    pdq_mode: PdqMode | None = None,
) -> ScanOptions:
    """The options of a scan (or of the upload pool) as the settings give them, with
    what the caller overrides: the one place ``ScanOptions`` are made from settings."""
    return ScanOptions(
        max_pixels=max_pixels or settings.max_pixels,
        max_frames=max_frames or settings.max_frames,
        dihedral=dihedral,
        pdq_mode=pdq_mode or settings.pdq_mode,
        animation_frames=settings.animation_frames,
    )
