"""Actions: outbox entries (webhooks, quarantine, exchange feedback), webhook endpoints
and quarantine records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ActionKind(StrEnum):
    """What an outbox entry does. Persisted names."""

    WEBHOOK = "webhook"
    QUARANTINE = "quarantine"
    #: a review decision told back to the exchange whose entry matched
    FEEDBACK = "feedback"
    #: copy a matched object to the quarantine bucket (verified), then delete or tag it
    OBJECT_QUARANTINE = "object_quarantine"
    #: put a quarantined object back (a false positive)
    OBJECT_RESTORE = "object_restore"


class EventType(StrEnum):
    """The webhook events hashguard sends. Persisted names, never renamed."""

    MATCH_DETECTED = "match.detected"
    CASE_CONFIRMED = "case.confirmed"
    CASE_FALSE_POSITIVE = "case.false_positive"
    CONTENT_QUARANTINED = "content.quarantined"
    #: the flood guard paused a list entry (for leads: release or tombstone it)
    BANK_ENTRY_FLOODED = "bank.entry_flooded"
    #: a report to NCMEC finished (its receipt): the platform preserves the account
    #: data it holds for a year (REPORT Act)
    REPORT_FILED = "report.filed"
    #: a DSA Art. 16 notice was received: the platform acknowledges it to the notifier
    #: (by e-mail, if it wants to; hashguard sends none)
    NOTICE_RECEIVED = "notice.received"
    #: a statement of reasons (DSA Art. 17) for the platform to show the uploader
    STATEMENT_ISSUED = "statement.issued"
    #: the decision on a notice, for the platform to tell the notifier (Art. 16(5))
    NOTICE_DECIDED = "notice.decided"
    #: an appeal (DSA Art. 20) was decided: upheld, or reversed (the platform restores
    #: the content it holds); with the outcome's statement text for the uploader
    APPEAL_DECIDED = "appeal.decided"
    #: the signed aggregate statistics feed of a period, pushed to a hotline or NGO that
    #: subscribed to it by name (an endpoint with no events listed does not get it)
    STATS_FEED = "stats.feed"


class ActionState(StrEnum):
    """``pending`` until delivered; ``dead`` once it failed for longer than the horizon
    (or failed in a way retrying cannot fix). A dead entry can be put back to pending."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxAction:
    """One action to carry out at least once.

    ``idempotency_key`` is stable across retries (it is a webhook's ``webhook-id``), so a
    receiver applies each action once however often it arrives. ``target`` is the webhook
    endpoint's name (``None`` for quarantine). ``payload`` is JSON that never holds file
    bytes or hash-list contents beyond the matched content's own hashes.
    """

    id: int
    kind: ActionKind
    event: EventType | None
    target: str | None
    idempotency_key: str
    subject: str | None
    payload: Mapping[str, Any]
    state: ActionState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None
    dead_at: datetime | None = None
    #: when a dead entry was last put back to pending (the retry horizon restarts there)
    retried_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookEndpoint:
    """Where webhooks go. ``secret`` is a Standard Webhooks secret (``whsec_`` + base64);
    it is never shown (not in ``repr``). ``events`` empty: every event."""

    name: str
    url: str
    secret: str = field(repr=False)
    events: frozenset[EventType] = frozenset()

    def wants(self, event: EventType) -> bool:
        return not self.events or event in self.events


class QuarantineState(StrEnum):
    #: recorded, the move may not have happened yet (a crash in between is resumed)
    MOVING = "moving"
    QUARANTINED = "quarantined"
    RESTORED = "restored"


@dataclass(frozen=True, kw_only=True, slots=True)
class QuarantineRecord:
    """Where a quarantined file came from and went. ``original_path`` is printable;
    ``original_path_raw`` holds the exact bytes of the name (file names need not be
    UTF-8)."""

    action_id: int
    state: QuarantineState
    original_path: str
    original_path_raw: bytes
    quarantine_path: str
    sha256: str
    size: int
    mode: int
    uid: int
    gid: int
    created_at: datetime
    quarantined_at: datetime | None = None
    restored_at: datetime | None = None
    restored_by: str | None = None


class HoldKind(StrEnum):
    """How a quarantined object's copy is held. Persisted names."""

    #: an Object Lock legal hold is on the copy (the bucket has Object Lock enabled)
    LEGAL_HOLD = "legal_hold"
    #: no lock: the store or the bucket does not support Object Lock (the record says why)
    NONE = "none"


class OriginalFate(StrEnum):
    """What is done to a quarantined object's original once its copy is verified."""

    DELETE = "delete"
    TAG = "tag"


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectQuarantineRecord:
    """Where a quarantined object was (``bucket``, ``key``, ``version_id``, ``etag``),
    the SHA-256 of the matched bytes, and where the verified copy is held."""

    action_id: int
    state: QuarantineState
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    sha256: str
    size: int
    quarantine_bucket: str
    quarantine_key: str
    quarantine_version_id: str | None
    lock: HoldKind
    lock_note: str | None
    original: OriginalFate
    created_at: datetime
    quarantined_at: datetime | None = None
    restored_at: datetime | None = None
    restored_by: str | None = None

    @property
    def uri(self) -> str:
        base = f"s3://{self.bucket}/{self.key}"
        return f"{base}?versionId={self.version_id}" if self.version_id else base

    @property
    def quarantine_uri(self) -> str:
        return f"s3://{self.quarantine_bucket}/{self.quarantine_key}"


@dataclass(frozen=True, kw_only=True, slots=True)
class NewAction:
    """An action to put in the outbox. Enqueueing one whose ``idempotency_key`` is already
    there does nothing, so a retried transaction never doubles an action."""

    kind: ActionKind
    idempotency_key: str
    payload: Mapping[str, Any]
    event: EventType | None = None
    target: str | None = None
    subject: str | None = None
