"""Hash banks: named, versioned lists with provenance, their entries and import reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from hashguard.domain.policy import BankPolicy
from hashguard.domain.signals import Algorithm
from hashguard.domain.video import VpdqFrame

DEFAULT_PDQ_THRESHOLD = 31
#: the reference's vPDQ thresholds (threatexchange ``VPDQ_QUERY_MATCH_THRESHOLD_PERCENT``
#: and ``VPDQ_INDEX_MATCH_THRESHOLD_PERCENT``): a video matches a listed one when 80 % of
#: its usable frames match some frame of it, whatever share of the listed frames that is
DEFAULT_VPDQ_QUERY_PERCENT = 80.0
DEFAULT_VPDQ_COMPARED_PERCENT = 0.0
MAX_PDQ_THRESHOLD = 128


class BankKind(StrEnum):
    """``known``: content to find. ``allow``: vetted false positives that suppress matches."""

    KNOWN = "known"
    ALLOW = "allow"


@dataclass(frozen=True, kw_only=True, slots=True)
class Bank:
    id: int
    name: str
    kind: BankKind
    enabled: bool
    pdq_threshold: int
    source: str | None
    licence: str | None
    version: str | None
    created_at: datetime
    imported_at: datetime | None
    #: what the bank's matches lead to (bands, shadow mode); see ``domain.policy``
    policy: BankPolicy = field(default_factory=BankPolicy)
    #: vPDQ: the share of the query video's frames (and of the listed video's) that must
    #: match, in percent; frames match within ``pdq_threshold`` bits
    vpdq_query_percent: float = DEFAULT_VPDQ_QUERY_PERCENT
    vpdq_compared_percent: float = DEFAULT_VPDQ_COMPARED_PERCENT


#: Bank names: safe in URLs, file names and metric labels.
BANK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


@dataclass(frozen=True, kw_only=True, slots=True)
class BankEntry:
    """One hash of a list. ``entry_id`` is the list's own identifier for it, if any.

    A ``vpdq`` entry is one video: ``frames`` holds its vPDQ features and ``value`` is
    their ``domain.video.vpdq_digest`` (the entry's identity in the bank)."""

    algorithm: Algorithm
    value: str
    entry_id: str | None = None
    category: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    frames: tuple[VpdqFrame, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexRows:
    """Live bank entries in bulk, for building match indexes: parallel sequences.

    ``ids`` are the store's row ids (the indexes' payloads), never shown to anyone.
    """

    ids: Sequence[int]
    bank_ids: Sequence[int]
    algorithms: Sequence[Algorithm]
    values: Sequence[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryChanges:
    """Entries added, changed or removed after a change sequence number."""

    seq: int
    live: IndexRows
    removed: Sequence[int]


@dataclass(frozen=True, kw_only=True, slots=True)
class BankStats:
    """What ``banks show`` may reveal: counts only, never hashes."""

    bank: Bank
    active: Mapping[Algorithm, int]
    removed: int
    imports: int

    @property
    def total_active(self) -> int:
        return sum(self.active.values())


@dataclass(frozen=True, kw_only=True, slots=True)
class SignalState:
    """One algorithm's live entries across every bank, against a match index that has
    applied the store's changes up to ``applied_seq``: counts and times only."""

    #: live entries of the algorithm in the store
    live: int
    #: when the newest of them was added (None: there is none)
    newest: datetime | None
    #: when the newest live entry the index has applied was added (None: none)
    newest_applied: datetime | None
    #: the store holds changes to the algorithm's entries the index has not applied
    pending: bool


def bank_to_json(bank: Bank) -> dict[str, Any]:
    """A bank's settings and policy as JSON: the one shape of the CLI's ``--json``, the
    API and the audit log (never its entries)."""
    return {
        "name": bank.name,
        "kind": str(bank.kind),
        "enabled": bank.enabled,
        "pdq_threshold": bank.pdq_threshold,
        "source": bank.source,
        "licence": bank.licence,
        "version": bank.version,
        "created_at": bank.created_at.isoformat(),
        "imported_at": bank.imported_at.isoformat() if bank.imported_at else None,
        "auto_max_distance": bank.policy.auto_max_distance,
        "review_max_distance": bank.policy.review_max_distance,
        "exact_action": str(bank.policy.exact_action),
        "shadow": bank.policy.shadow,
        "vpdq_query_percent": bank.vpdq_query_percent,
        "vpdq_compared_percent": bank.vpdq_compared_percent,
    }


def bank_stats_to_json(stats: BankStats) -> dict[str, Any]:
    """``bank_to_json`` with the live entries per algorithm, the removed ones and the
    number of imports: counts only, never hashes."""
    return {
        **bank_to_json(stats.bank),
        "entries": {str(a): n for a, n in sorted(stats.active.items())},
        "removed_entries": stats.removed,
        "imports": stats.imports,
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class RowError:
    """A rejected list row, named by file and 1-based line number."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportReport:
    bank: str
    version: str | None
    rows: int
    added: int
    updated: int
    unchanged: int
    removed: int
    restored: int
    errors: tuple[RowError, ...]
    applied: bool
    duplicates: int = 0
