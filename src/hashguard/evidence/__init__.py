"""The evidence vault: matched content kept encrypted, with retention and legal holds."""

from __future__ import annotations

from pathlib import Path

from hashguard.audit import record
from hashguard.domain.evidence import EvidenceEvent, RetentionPolicy
from hashguard.evidence.retention import OrphanCount, count_orphans, run_retention
from hashguard.evidence.vault import (
    EventHook,
    EvidenceCorrupt,
    EvidenceDestroyed,
    EvidenceError,
    EvidenceNotFound,
    NotMatched,
    UnderLegalHold,
    Vault,
    WithinRetention,
)
from hashguard.keys import MasterKey
from hashguard.settings import Settings
from hashguard.store import Store

__all__ = [
    "EvidenceCorrupt",
    "EvidenceDestroyed",
    "EvidenceError",
    "EvidenceNotFound",
    "NotMatched",
    "OrphanCount",
    "UnderLegalHold",
    "Vault",
    "WithinRetention",
    "audited",
    "blob_dir_of",
    "count_orphans",
    "open_vault",
    "retention_policy",
    "run_retention",
]


def audited(store: Store) -> EventHook:
    """An ``on_event`` hook that appends every vault event to ``store``'s audit log."""

    def hook(event: EvidenceEvent) -> None:
        record(store, event.actor, event.action, event.subject, **event.details)

    return hook


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        default_days=settings.evidence_retention_days,
        by_jurisdiction=dict(settings.evidence_retention_by_jurisdiction),
    )


def blob_dir_of(settings: Settings) -> Path:
    """Where this installation's encrypted evidence files are."""
    return settings.evidence_dir or settings.home / "evidence"


def open_vault(settings: Settings, store: Store, master_key: MasterKey) -> Vault:
    """The vault of this installation, every event recorded in the audit log."""
    return Vault(
        store.evidence,
        master_key,
        blob_dir_of(settings),
        retention=retention_policy(settings),
        on_event=audited(store),
    )
