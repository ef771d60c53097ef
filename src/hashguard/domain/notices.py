"""DSA Art. 16 notices: who sent them, what they point at, and where their resolution stands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class NotifierKind(StrEnum):
    """Who sent a notice. Persisted names; never rename a value. Only a *configured*
    notifier (a token bound to a trusted flagger or hotline in the settings) is believed
    to be one: a notice that merely says ``hotline`` is kept as said, without priority."""

    USER = "user"
    TRUSTED_FLAGGER = "trusted_flagger"
    HOTLINE = "hotline"
    AUTHORITY = "authority"


class NoticeCategory(StrEnum):
    """What the notifier says the content is: the Transparency Database's statement
    categories a hosting service is told of (``STATEMENT_CATEGORY_*``, lowercased).
    ``child_sexual_abuse`` is the one hashguard acts on (Directive 2011/93/EU, Arts.
    3-7: no notifier name or e-mail is required, Art. 16(2)); the others are received,
    resolved and sent to review like any notice. Persisted names."""

    CHILD_SEXUAL_ABUSE = "child_sexual_abuse"
    PROTECTION_OF_MINORS = "protection_of_minors"
    NON_CONSENSUAL_BEHAVIOUR = "non_consensual_behaviour"
    ILLEGAL_OR_HARMFUL_SPEECH = "illegal_or_harmful_speech"
    VIOLENCE = "violence"
    INTELLECTUAL_PROPERTY_INFRINGEMENTS = "intellectual_property_infringements"
    DATA_PROTECTION_AND_PRIVACY_VIOLATIONS = "data_protection_and_privacy_violations"
    SCAMS_AND_FRAUD = "scams_and_fraud"
    OTHER = "other"

    @property
    def csam(self) -> bool:
        return self is NoticeCategory.CHILD_SEXUAL_ABUSE


class NoticeState(StrEnum):
    """Where a notice's resolution stands. Persisted names; never rename a value.

    ``received`` → ``resolving`` → ``resolved`` (every item found and taken through the
    pipeline, a case per item) | ``not_found`` (no item is on the platform) |
    ``undecodable`` (an item could not be hashed; its case is still opened for a
    person) | ``failed`` (the platform's callback failed or timed out: retried with
    backoff, never lost, never "no match")."""

    RECEIVED = "received"
    RESOLVING = "resolving"
    RESOLVED = "resolved"
    NOT_FOUND = "not_found"
    UNDECODABLE = "undecodable"
    FAILED = "failed"

    @property
    def due(self) -> bool:
        """Whether the resolver still has work on it (``resolving``: a run was cut off)."""
        return self in (NoticeState.RECEIVED, NoticeState.RESOLVING, NoticeState.FAILED)

    @property
    def open(self) -> bool:
        return self.due


class ItemState(StrEnum):
    """One URL's or content id's resolution. Persisted names."""

    PENDING = "pending"
    RESOLVED = "resolved"
    NOT_FOUND = "not_found"
    UNDECODABLE = "undecodable"
    FAILED = "failed"


class NoticeChannel(StrEnum):
    """How the notice came: the API (a token) or the public form. Persisted names."""

    API = "api"
    FORM = "form"


#: priority of a notice from a configured trusted flagger, hotline or authority (lower first)
PRIORITY_CONFIGURED = 0
#: everyone else's
PRIORITY_DEFAULT = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Notifier:
    """Who sent the notice, as said (or, for a configured notifier, as configured:
    ``configured`` is its settings key)."""

    kind: NotifierKind
    name: str | None = None
    email: str | None = None
    reference: str | None = None
    configured: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "name": self.name,
            "email": self.email,
            "reference": self.reference,
            "configured": self.configured,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notifier:
        return cls(
            kind=NotifierKind(data["kind"]),
            name=data.get("name"),
            email=data.get("email"),
            reference=data.get("reference"),
            configured=data.get("configured"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class NoticeItem:
    """One thing the notice points at: a URL or the platform's content id, and what
    resolving it found (its case, the pipeline's outcome, or why not)."""

    url: str | None = None
    content_id: str | None = None
    state: ItemState = ItemState.PENDING
    case_id: int | None = None
    outcome: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "content_id": self.content_id,
            "state": str(self.state),
            "case_id": self.case_id,
            "outcome": self.outcome,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NoticeItem:
        return cls(
            url=data.get("url"),
            content_id=data.get("content_id"),
            state=ItemState(data.get("state", "pending")),
            case_id=data.get("case_id"),
            outcome=data.get("outcome"),
            reason=data.get("reason"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class NewNotice:
    """A notice as received, before it has an id."""

    items: tuple[NoticeItem, ...]
    category: NoticeCategory
    explanation: str
    notifier: Notifier
    good_faith: bool
    channel: NoticeChannel
    priority: int = PRIORITY_DEFAULT
    token_id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Notice:
    """A notice and where its resolution stands. ``attempts`` counts resolution runs
    that failed; ``next_attempt_at`` is when a failed one is tried again."""

    id: int
    items: tuple[NoticeItem, ...]
    category: NoticeCategory
    explanation: str
    notifier: Notifier
    good_faith: bool
    channel: NoticeChannel
    priority: int
    state: NoticeState
    received_at: datetime
    updated_at: datetime
    token_id: int | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    resolved_at: datetime | None = None
    #: the resolver working on it now (its lease), and until when
    lease_owner: str | None = None
    leased_until: datetime | None = None

    @property
    def case_ids(self) -> tuple[int, ...]:
        return tuple(i.case_id for i in self.items if i.case_id is not None)


def aggregate_state(items: tuple[NoticeItem, ...]) -> NoticeState:
    """A notice's state from its items': any failed item makes it ``failed`` (to retry);
    else any undecodable ``undecodable``; else any found ``resolved``; else
    ``not_found``; items still pending leave it ``resolving``."""
    states = {i.state for i in items}
    if ItemState.FAILED in states:
        return NoticeState.FAILED
    if ItemState.PENDING in states:
        return NoticeState.RESOLVING
    if ItemState.UNDECODABLE in states:
        return NoticeState.UNDECODABLE
    if ItemState.RESOLVED in states:
        return NoticeState.RESOLVED
    return NoticeState.NOT_FOUND


def notice_json(notice: Notice) -> dict[str, Any]:
    """The JSON shape of a notice (API answers, ``hashguard notices show``)."""
    return {
        "id": notice.id,
        "state": str(notice.state),
        "category": str(notice.category),
        "explanation": notice.explanation,
        "notifier": notice.notifier.as_json(),
        "good_faith": notice.good_faith,
        "channel": str(notice.channel),
        "priority": notice.priority,
        "items": [i.as_json() for i in notice.items],
        "case_ids": list(notice.case_ids),
        "received_at": notice.received_at.isoformat(),
        "updated_at": notice.updated_at.isoformat(),
        "attempts": notice.attempts,
        "next_attempt_at": notice.next_attempt_at.isoformat() if notice.next_attempt_at else None,
        "last_error": notice.last_error,
        "resolved_at": notice.resolved_at.isoformat() if notice.resolved_at else None,
    }
