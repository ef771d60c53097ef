"""Cases: one per matched content item, its review state, and the history of that state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from hashguard.domain.matches import Match
from hashguard.domain.policy import Decision
from hashguard.domain.remote import RemoteResult
from hashguard.domain.signals import FileSignals


class CaseState(StrEnum):
    """Where a case stands. Persisted names; never rename a value.

    ``confirmed_once``: one reviewer confirmed and a second, different person must
    confirm too before the case counts as confirmed (``review_second_confirmation``).
    Only ``confirmed`` content may be reported; ``confirmed`` and ``false_positive``
    are final.
    """

    OPEN = "open"
    CONFIRMED_ONCE = "confirmed_once"
    CONFIRMED = "confirmed"
    FALSE_POSITIVE = "false_positive"
    ESCALATED = "escalated"

    @property
    def final(self) -> bool:
        return not TRANSITIONS[self]


#: The only state changes allowed; everything else is refused.
TRANSITIONS: Mapping[CaseState, frozenset[CaseState]] = {
    CaseState.OPEN: frozenset(
        {
            CaseState.CONFIRMED_ONCE,
            CaseState.CONFIRMED,
            CaseState.FALSE_POSITIVE,
            CaseState.ESCALATED,
        }
    ),
    CaseState.CONFIRMED_ONCE: frozenset(
        {CaseState.CONFIRMED, CaseState.FALSE_POSITIVE, CaseState.ESCALATED}
    ),
    CaseState.ESCALATED: frozenset(
        {CaseState.CONFIRMED_ONCE, CaseState.CONFIRMED, CaseState.FALSE_POSITIVE}
    ),
    CaseState.CONFIRMED: frozenset(),
    CaseState.FALSE_POSITIVE: frozenset(),
}


def allowed(from_state: CaseState, to_state: CaseState) -> bool:
    return to_state in TRANSITIONS[from_state]


class CaseEventKind(StrEnum):
    """What happened to a case. Persisted names; never rename a value."""

    OPENED = "opened"
    #: the same content was found again (another scan, another upload)
    SEEN_AGAIN = "seen_again"
    ASSIGNED = "assigned"
    CONFIRMED = "confirmed"
    FALSE_POSITIVE = "false_positive"
    ESCALATED = "escalated"
    #: a reviewer set the file's annotations (``details.annotations``; the latest wins)
    ANNOTATED = "annotated"
    #: a reviewer set the file's industry classification (``details.classification``)
    CLASSIFIED = "classified"
    #: the uploader contested the decision (DSA Art. 20): the case is open for a person
    #: who did not take the first decision (``details.appeal``)
    APPEALED = "appealed"
    #: that person upheld the decision (the state stays as it was)
    APPEAL_UPHELD = "appeal_upheld"
    #: that person reversed it: the case becomes ``false_positive`` whatever its state
    #: was, the one way out of ``confirmed`` (``review.appeals``)
    APPEAL_REVERSED = "appeal_reversed"


class SourceKind(StrEnum):
    SCAN = "scan"
    UPLOAD = "upload"
    #: a DSA Art. 16 notice resolved to the platform's content (``ref``: the notice id)
    NOTICE = "notice"


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseSource:
    """Where the content was found: a scan run (``ref`` its id) and the file's path, or
    an upload (``ref`` the request id) and the platform's content id, if given."""

    kind: SourceKind
    ref: str
    path: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "ref": self.ref, "path": self.path}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseSource:
        return cls(kind=SourceKind(data["kind"]), ref=str(data["ref"]), path=data.get("path"))

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.kind}:{self.ref}{where}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ContentRef:
    """What the platform knows of the content, when the caller tells us."""

    content_id: str | None = None
    uploader_id: str | None = None
    url: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Case:
    """One content item (``content_key``: the SHA-256 of its bytes) and all its matches.

    ``decision`` is the strongest decision any sighting got; ``matches`` and ``remote``
    gather every sighting's. ``confirmers`` are the reviewers who confirmed so far (a
    second confirmation must come from someone not in it). ``version`` grows with
    every change: a change made against an older version is refused.
    """

    id: int
    content_key: str
    content: ContentRef
    sources: tuple[CaseSource, ...]
    signals: FileSignals | None
    matches: tuple[Match, ...]
    remote: tuple[RemoteResult, ...]
    decision: Decision
    state: CaseState
    assignee: str | None
    confirmers: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    version: int
    #: the evidence vault item holding the content, once one is kept
    evidence_id: str | None = None

    @property
    def reportable(self) -> bool:
        """Only confirmed content is ever reported."""
        return self.state is CaseState.CONFIRMED

    @property
    def banks(self) -> tuple[str, ...]:
        return tuple(sorted({m.bank for m in self.matches if m.effective}))


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseEvent:
    """One entry of a case's history. Entries never change."""

    case_id: int
    at: datetime
    actor: str
    kind: CaseEventKind
    from_state: CaseState | None
    to_state: CaseState | None
    reason: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
