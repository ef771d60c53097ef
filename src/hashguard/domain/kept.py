"""Kept signals: the hashes (never the content) of a checked item, kept for retro-matching."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hashguard.domain.objects import ObjectRef
from hashguard.domain.video import VpdqFrame


@dataclass(frozen=True, kw_only=True, slots=True)
class KeptPdq:
    """One reference-mode PDQ hash of the item (only reference hashes are kept: they
    are the ones lists carry) and PDQ's quality score."""

    value: str
    quality: int


@dataclass(frozen=True, kw_only=True, slots=True)
class KeptSignal:
    """What was checked, where, and against which bank versions.

    ``way`` is how it came in (``scan``, ``upload``, ``notice``); ``path`` the local
    file or ``s3://`` path; ``object`` the object-storage identity; ``content_id`` and
    ``request_id`` an upload's content key. ``checked_seq`` is the banks' change
    sequence the item was matched at: an entry with a higher sequence was never
    compared with it.
    """

    id: int
    way: str
    checked_at: datetime
    checked_seq: int
    md5: str
    sha1: str
    sha256: str
    size: int
    pdq: tuple[KeptPdq, ...] = ()
    #: a video's vPDQ frames as the pipeline computed them (reference vPDQ; empty for
    #: anything else): a listed video's vPDQ finds the item by them
    vpdq: tuple[VpdqFrame, ...] = ()
    run_id: int | None = None
    path: str | None = None
    object: ObjectRef | None = None
    content_id: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NewKept:
    """A kept signal before it is written (``KeptSignal`` without id and times)."""

    way: str
    md5: str
    sha1: str
    sha256: str
    size: int
    pdq: tuple[KeptPdq, ...] = ()
    #: a video's vPDQ frames as the pipeline computed them (reference vPDQ; empty for
    #: anything else): a listed video's vPDQ finds the item by them
    vpdq: tuple[VpdqFrame, ...] = ()
    run_id: int | None = None
    path: str | None = None
    object: ObjectRef | None = None
    content_id: str | None = None
    request_id: str | None = None
