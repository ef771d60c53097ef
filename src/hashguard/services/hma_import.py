"""``import-hma``: an HMA database's banks and content into hashguard banks, with
provenance, each bank's change audited (``bank.created``, ``bank.entries_added``,
``bank.imported``). Exchange configurations are reported, never their credentials."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hashguard.audit import record
from hashguard.banks.formats import InvalidRow, parse_signal
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry
from hashguard.domain.signals import Algorithm
from hashguard.services import banks as service
from hashguard.store import Store
from hashguard.store.banks import HMA_CONTENT
from hashguard.store.hma import HmaContent, HmaDatabase, HmaExchange

#: HMA signal types hashguard stores (video_md5: the MD5 of the file's bytes; vpdq: a
#: video's frames, python-threatexchange's signal string)
ALGORITHMS = {
    "pdq": Algorithm.PDQ,
    "md5": Algorithm.MD5,
    "video_md5": Algorithm.MD5,
    "vpdq": Algorithm.VPDQ,
}
BATCH = 5_000


@dataclass(frozen=True, kw_only=True, slots=True)
class HmaImportReport:
    banks_created: tuple[str, ...]
    banks_existing: tuple[str, ...]
    content: int
    signals: int
    disabled_skipped: int
    #: signal type -> how many signals of it were not imported (no such algorithm here)
    unsupported: Mapping[str, int] = field(default_factory=dict)
    invalid: int = 0
    exchanges: tuple[HmaExchange, ...] = ()


def import_hma(store: Store, actor: str, source: HmaDatabase) -> HmaImportReport:
    """Copy ``source``'s banks and enabled content into ``store``. Content keeps its
    HMA id as the entry id ``hma:<id>`` (HMA clients of /hma see the same ids); each
    entry's metadata names the HMA bank, content id and signal type, and the exchange
    and fetch id it came from. A bank that exists already is added to."""
    created, existing, exchanges = [], [], []
    for bank in source.banks():
        if store.banks.find(bank.name) is None:
            made_from = (
                f"hma-exchange:{bank.exchange.api}:{bank.exchange.name}" if bank.exchange else "hma"
            )
            service.create_bank(
                store, actor, bank.name, enabled=bank.enabled_ratio > 0, source=made_from
            )
            created.append(bank.name)
        else:
            existing.append(bank.name)
        if bank.exchange is not None:
            exchanges.append(bank.exchange)
    counts: Counter[str] = Counter()
    unsupported: Counter[str] = Counter()
    pending: dict[str, list[BankEntry]] = {}
    per_bank: Counter[str] = Counter()
    for item in source.content():
        if item.disabled:
            counts["disabled"] += 1
            continue
        entries = _entries(item, unsupported, counts)
        if not entries:
            continue
        counts["content"] += 1
        per_bank[item.bank] += 1
        queue = pending.setdefault(item.bank, [])
        queue.extend(entries)
        if len(queue) >= BATCH:
            _flush(store, actor, item.bank, queue)
    for name, queue in pending.items():
        _flush(store, actor, name, queue)
    for name, content in per_bank.items():
        record(
            store,
            actor,
            AuditAction.BANK_IMPORTED,
            service.subject(name),
            source="hma",
            content=content,
        )
    return HmaImportReport(
        banks_created=tuple(created),
        banks_existing=tuple(existing),
        content=counts["content"],
        signals=counts["signals"],
        disabled_skipped=counts["disabled"],
        unsupported=dict(unsupported),
        invalid=counts["invalid"],
        exchanges=tuple(exchanges),
    )


def _entries(item: HmaContent, unsupported: Counter[str], counts: Counter[str]) -> list[BankEntry]:
    entries = []
    for signal_type, value in item.signals.items():
        algorithm = ALGORITHMS.get(signal_type)
        if algorithm is None:
            unsupported[signal_type] += 1
            continue
        try:
            normal, frames = parse_signal(algorithm, value)
        except InvalidRow:
            counts["invalid"] += 1
            continue
        meta: dict[str, Any] = {
            "hma_bank": item.bank,
            "hma_content_id": item.id,
            "hma_signal_type": signal_type,
        }
        if item.fetched_from is not None:
            meta["hma_exchange"], meta["hma_fetch_id"] = item.fetched_from
        entries.append(
            BankEntry(
                algorithm=algorithm,
                value=normal,
                entry_id=f"{HMA_CONTENT}{item.id}",
                metadata=meta,
                frames=frames,
            )
        )
        counts["signals"] += 1
    return entries


def _flush(store: Store, actor: str, name: str, queue: list[BankEntry]) -> None:
    if queue:
        service.add_entries(store, actor, name, _unique(queue))
        queue.clear()


def _unique(entries: Sequence[BankEntry]) -> list[BankEntry]:
    """One entry per (algorithm, value) in a batch: the first content that has it."""
    seen: dict[tuple[Algorithm, str], BankEntry] = {}
    for entry in entries:
        seen.setdefault((entry.algorithm, entry.value), entry)
    return list(seen.values())
