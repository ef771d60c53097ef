"""Keeping a bank in sync with its exchange: batches stored, then their checkpoint.

A sync takes the exchange's lease (one sync at a time across every process sharing
the store), reads batches from the adapter from the stored checkpoint, stores each
batch's upserts and tombstones, and only then records the batch's checkpoint. A crash
at any point resumes from the last recorded checkpoint; the batches read again are
applied again, which changes nothing (upserts and tombstones are idempotent).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace

from pydantic import SecretStr

from hashguard.audit import record
from hashguard.banks.exchanges.base import ExchangeError, ListSource
from hashguard.banks.formats import InvalidRow, check_storable
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry
from hashguard.domain.exchanges import Exchange, Feedback, SyncReport
from hashguard.domain.text import unstorable
from hashguard.keys import MasterKey, MasterKeyError
from hashguard.plugins import AdapterKind, Registry
from hashguard.store import Store

log = logging.getLogger("hashguard.exchanges")

#: a sync renews its lease with every batch; a crashed syncer's lease runs out after this
LEASE_SECONDS = 600.0
#: skipped records named in a report (all are counted)
REASONS_KEPT = 20


def credentials_context(exchange: str) -> str:
    """What sealed credentials are bound to: copied onto another exchange, they fail."""
    return f"hashguard exchange credentials: {exchange}"


def seal_credentials(key: MasterKey, exchange: str, values: Mapping[str, str]) -> bytes:
    return key.seal(json.dumps(dict(values)).encode(), context=credentials_context(exchange))


def open_credentials(
    key: MasterKey | None, exchange: str, sealed: bytes | None
) -> dict[str, SecretStr]:
    if sealed is None:
        return {}
    if key is None:
        raise MasterKeyError(f"exchange {exchange} has sealed credentials: a master key is needed")
    values = json.loads(key.open(sealed, context=credentials_context(exchange)))
    return {name: SecretStr(value) for name, value in values.items()}


def build_source(
    registry: Registry, store: Store, key: MasterKey | None, exchange: Exchange
) -> ListSource:
    """The configured adapter of ``exchange``, with its credentials opened."""
    adapter = registry.get(exchange.adapter, AdapterKind.LIST_SOURCE)
    secrets = open_credentials(
        key, exchange.name, store.exchanges.sealed_credentials(exchange.name)
    )
    source = adapter.configure(exchange.settings, secrets)
    assert isinstance(source, ListSource)
    return source


def send_feedback(
    registry: Registry, store: Store, key: MasterKey | None, exchange: Exchange, feedback: Feedback
) -> None:
    """Tell ``exchange`` what a reviewer concluded about one of its entries (NCMEC:
    affirmative/negative; StopNCII: Blocked/NotBlocked). Raises ``FeedbackUnsupported``
    or ``ExchangeError``. Called by the outbox's feedback deliverer
    (``hashguard.actions.feedback``), for decisions and by-hand feedback alike."""
    source = build_source(registry, store, key, exchange)
    try:
        source.send_feedback(feedback)
    finally:
        source.close()


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(owner: str | None) -> bool:
    """A lease held by a process of this host that no longer exists (killed mid-sync)."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def storable_entries(
    entries: Sequence[BankEntry], batch: int
) -> tuple[list[BankEntry], tuple[str, ...]]:
    """The entries a store can keep, and a reason for each it cannot (by position, never
    by hash). Adapters skip such records themselves; this keeps one that does not (a
    plugin) from failing every sync of its exchange at the same record."""
    kept: list[BankEntry] = []
    refused: list[str] = []
    for number, entry in enumerate(entries, start=1):
        try:
            check_storable(entry.entry_id, "entry id")
            check_storable(entry.category, "category")
            check_storable(dict(entry.metadata))
        except InvalidRow as exc:
            refused.append(f"batch {batch}, upsert {number}: {exc}")
        else:
            kept.append(entry)
    return kept, tuple(refused)


def sync_exchange(
    store: Store, exchange: Exchange, source: ListSource, *, actor: str = "system:sync"
) -> SyncReport:
    """Sync ``exchange``'s bank from ``source``; never raises for what the exchange does
    (the report carries the error, and the checkpoint stays where it was)."""
    owner = lease_owner()
    report = SyncReport(exchange=exchange.name)
    holder = store.exchanges.lease_owner(exchange.name)
    if _dead_here(holder):
        assert holder is not None
        store.exchanges.release_lease(exchange.name, holder)
    if not store.exchanges.acquire_lease(exchange.name, owner, LEASE_SECONDS):
        return replace(report, error="another process is syncing this exchange")
    store.exchanges.record_started(exchange.name)
    reasons: list[str] = []
    try:
        for batch in source.fetch(store.exchanges.state(exchange.name).checkpoint):
            upserted = removed = 0
            upserts, refused = storable_entries(batch.upserts, report.batches + 1)
            if refused:
                batch = replace(batch, skipped=batch.skipped + refused)  # noqa: PLW2901
            if upserts:
                counts = store.banks.add_entries(exchange.bank, upserts)
                upserted = counts.added + counts.updated + counts.restored
            if batch.removals:
                removed = store.banks.remove_entries(exchange.bank, batch.removals)
            removed_ids = [i for i in batch.removed_entry_ids if unstorable(i) is None]
            if removed_ids:
                removed += store.banks.remove_entries_by_id(exchange.bank, removed_ids)
            store.exchanges.record_batch(
                exchange.name,
                checkpoint=batch.checkpoint,
                upserted=upserted,
                removed=removed,
                skipped=len(batch.skipped),
            )
            store.exchanges.acquire_lease(exchange.name, owner, LEASE_SECONDS)
            reasons += batch.skipped[: max(0, REASONS_KEPT - len(reasons))]
            report = replace(
                report,
                batches=report.batches + 1,
                upserted=report.upserted + upserted,
                removed=report.removed + removed,
                skipped=report.skipped + len(batch.skipped),
            )
    except ExchangeError as exc:
        report = replace(report, error=str(exc))
    except Exception as exc:  # a broken adapter costs this sync, not the caller
        log.exception("exchange %s: sync failed", exchange.name)
        report = replace(report, error=f"{type(exc).__name__} in adapter {exchange.adapter}")
    finally:
        source.close()
        store.exchanges.record_finished(exchange.name, error=report.error)
        store.exchanges.release_lease(exchange.name, owner)
    record(
        store,
        actor,
        AuditAction.EXCHANGE_SYNCED,
        f"exchange:{exchange.name}",
        bank=exchange.bank,
        ok=report.ok,
        batches=report.batches,
        upserted=report.upserted,
        removed=report.removed,
        skipped=report.skipped,
        error=report.error,
    )
    return replace(report, skipped_reasons=tuple(reasons))
