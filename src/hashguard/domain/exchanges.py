"""Hash-sharing exchanges: their configuration, sync batches, state and feedback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from hashguard.domain.banks import BankEntry
from hashguard.domain.signals import Algorithm


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncBatch:
    """What one page of an exchange brings: entries to upsert, entries to tombstone (by
    signal, or by the exchange's entry id when its deletions name only that), records
    skipped as malformed (counted, with a reason each), and the checkpoint to resume
    from once this batch is stored (``None``: keep the previous one).

    An adapter emits a checkpoint only where resuming from it can neither lose nor
    double an entry (NCMEC's entries are not in time order, so its time checkpoint
    moves only when a whole window has been read).
    """

    upserts: tuple[BankEntry, ...] = ()
    removals: tuple[tuple[Algorithm, str], ...] = ()
    removed_entry_ids: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    checkpoint: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Exchange:
    """A configured exchange: adapter ``adapter`` syncs into bank ``bank``.

    ``settings`` are the adapter's non-secret settings; credentials live encrypted in
    the store and are never part of this record. ``feedback``: final review decisions
    on cases its entries matched are told back to it (off unless switched on);
    ``feedback_reason`` is the reason a false positive is sent with (NCMEC wants one of
    its own reason names), else the reviewer's.
    """

    id: int
    name: str
    adapter: str
    bank: str
    settings: Mapping[str, Any]
    enabled: bool
    created_at: datetime
    credential_names: tuple[str, ...] = ()
    feedback: bool = False
    feedback_reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ExchangeState:
    checkpoint: str | None = None
    last_started_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    upserted: int = 0
    removed: int = 0
    skipped: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncReport:
    exchange: str
    batches: int = 0
    upserted: int = 0
    removed: int = 0
    skipped: int = 0
    skipped_reasons: tuple[str, ...] = field(default=())
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class FeedbackVerdict(StrEnum):
    """What a reviewer concluded about content that matched an exchange entry."""

    CONFIRMED = "confirmed"
    FALSE_POSITIVE = "false_positive"


@dataclass(frozen=True, kw_only=True, slots=True)
class Feedback:
    """Our conclusion about one of an exchange's entries, to be sent back to it."""

    entry_id: str
    algorithm: Algorithm
    value: str
    verdict: FeedbackVerdict
    reason: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
