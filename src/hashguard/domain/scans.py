"""Scan runs and the one typed outcome each scanned file gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from hashguard.domain.matches import Match
from hashguard.domain.objects import ObjectRef
from hashguard.domain.policy import NO_MATCH, Action, Decision
from hashguard.domain.remote import RemoteResult
from hashguard.domain.signals import FileSignals, PdqMode


def printable_path(path: str) -> str:
    """A path as text: bytes of file names that are not UTF-8 are shown escaped (``\\xff``)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Outcome(StrEnum):
    """Typed outcome of one file. Only ``no_match`` means "checked and clean"."""

    MATCHED = "matched"
    NO_MATCH = "no_match"
    UNDECODABLE = "undecodable"
    UNSUPPORTED = "unsupported"
    ERROR = "error"
    #: a remote matcher that should have been asked did not answer (timeout, refusal)
    NOT_ANSWERED = "not_answered"

    @property
    def incomplete(self) -> bool:
        """True when the file could not be checked as fully as it should be."""
        return self in (Outcome.UNDECODABLE, Outcome.ERROR, Outcome.NOT_ANSWERED)


class RunStatus(StrEnum):
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    COMPLETED = "completed"


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanOptions:
    """Options that change what a scan computes; a resumed run keeps its own."""

    max_pixels: int
    max_frames: int = 1
    dihedral: bool = False
    pdq_mode: PdqMode = PdqMode.FAST
    #: an animated GIF/WebP of more frames is hashed like a video (``hashing.animation``)
    animation_frames: int = 10

    def as_json(self) -> dict[str, Any]:
        return {
            "max_pixels": self.max_pixels,
            "max_frames": self.max_frames,
            "dihedral": self.dihedral,
            "pdq_mode": str(self.pdq_mode),
            "animation_frames": self.animation_frames,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanOptions:
        return cls(
            max_pixels=int(data["max_pixels"]),
            max_frames=int(data["max_frames"]),
            dihedral=bool(data["dihedral"]),
            pdq_mode=PdqMode(data["pdq_mode"]),
            # runs recorded before animations were hashed like videos: the default
            animation_frames=int(data.get("animation_frames", 10)),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class FileResult:
    """The outcome of one file. ``reason`` explains every outcome except a clean match/no-match.

    ``signals`` is absent only when the file's bytes could not be read at all.
    """

    path: str
    outcome: Outcome
    reason: str | None = None
    signals: FileSignals | None = None
    matches: tuple[Match, ...] = ()
    #: what the remote matchers (PhotoDNA, Arachnid Shield...) answered, if any were asked
    remote: tuple[RemoteResult, ...] = ()
    #: what the policy decided (act, review, ignore) and the rule that decided it
    decision: Decision = NO_MATCH
    #: the object-storage object scanned (``None``: a local file or an upload)
    object: ObjectRef | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanRun:
    id: int
    roots: tuple[str, ...]
    options: ScanOptions
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    counts: Mapping[Outcome, int]
    pid: int | None = None
    host: str | None = None
    #: files per decided action, and files per strongest action a shadow bank would
    #: have taken (recorded, never acted on)
    actions: Mapping[Action, int] = field(default_factory=dict)
    shadow_actions: Mapping[Action, int] = field(default_factory=dict)
    #: objects left out of an incremental rescan: already checked against the same
    #: bank versions (not an outcome: nothing was read, nothing is recorded per object)
    skipped: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())
