"""Evidence items kept in the vault, their retention rule, and the events they raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from hashguard.domain.audit import AuditAction


class EvidenceState(StrEnum):
    KEPT = "kept"
    HELD = "held"
    DESTROYED = "destroyed"


@dataclass(frozen=True, kw_only=True, slots=True)
class EvidenceItem:
    """What the store knows of one kept item, in clear: never its bytes, never its full
    context (uploader, request IP...), which are encrypted with the item's data key.

    ``summary`` holds only non-personal fields (the content id, the source, the banks
    that matched, how many matches, and the names of the context's fields) so an
    operator can find an item without decrypting it. ``sha256`` is the digest of the
    plaintext: the content matched a list, so the digest is already known there.
    """

    id: str
    created_at: datetime
    retain_until: datetime
    jurisdiction: str
    legal_hold: bool
    hold_reason: str | None
    held_at: datetime | None
    size: int
    sha256: str
    summary: Mapping[str, Any]
    destroyed_at: datetime | None = None
    destroyed_by: str | None = None
    destroy_reason: str | None = None

    @property
    def state(self) -> EvidenceState:
        if self.destroyed_at is not None:
            return EvidenceState.DESTROYED
        return EvidenceState.HELD if self.legal_hold else EvidenceState.KEPT

    def expired(self, now: datetime) -> bool:
        return now >= self.retain_until


@dataclass(frozen=True, kw_only=True, slots=True)
class RetentionPolicy:
    """How long evidence is kept, in days, chosen by jurisdiction when the item is kept.

    One year is the default: the US preservation period after a CyberTipline report
    (18 U.S.C. 2258A(h), one year since the REPORT Act of 2024). EU providers acting
    under the interim Regulation (EU) 2021/1232 may keep data no longer than strictly
    necessary and, in general, no longer than 12 months; operators set the rule of each
    jurisdiction they serve (``evidence_retention_by_jurisdiction``). A legal hold
    outlasts any rule.
    """

    default_days: int = 365
    by_jurisdiction: Mapping[str, int] = field(default_factory=dict)

    def days_for(self, jurisdiction: str) -> int:
        rules = {code.upper(): days for code, days in self.by_jurisdiction.items()}
        return rules.get(jurisdiction.upper(), self.default_days)

    def retain_until(self, created_at: datetime, jurisdiction: str) -> datetime:
        return created_at + timedelta(days=self.days_for(jurisdiction))


@dataclass(frozen=True, kw_only=True, slots=True)
class EvidenceEvent:
    """Something done to the vault, for the audit log. ``details`` never carry the
    item's bytes, its context or any key."""

    action: AuditAction
    subject: str
    actor: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetentionReport:
    """One retention run: items destroyed (or, in a dry run, that would be), expired
    items kept under a legal hold, items that failed (id and reason), and blob files
    left without a live item that were removed (in a dry run: that would be);
    ``orphan_items``: items no case holds, older than the grace period, destroyed (in a
    dry run: that would be), and ``orphan_items_held`` such items under a legal hold."""

    now: datetime
    dry_run: bool
    destroyed: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    orphans_removed: int = 0
    orphan_items: tuple[str, ...] = ()
    orphan_items_held: tuple[str, ...] = ()
