"""The retention job: destroys evidence whose retention ended, unless under a legal hold,
and sweeps up what a killed process left behind (orphans)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from hashguard.domain.audit import AuditAction
from hashguard.domain.evidence import RetentionReport
from hashguard.evidence.vault import EvidenceError, UnderLegalHold, Vault, orphan_files
from hashguard.store.evidence import EvidenceStore

RETENTION_ACTOR = "system:retention"
#: an item or a blob file younger than this may belong to a put, or a case being
#: opened, in progress: it is never an orphan
ORPHAN_GRACE = timedelta(hours=1)
ORPHAN_REASON = "orphaned: no case was opened for it (a process stopped in between)"


@dataclass(frozen=True, kw_only=True, slots=True)
class OrphanCount:
    """What a killed process left behind, older than the grace period: ``items`` kept
    with no case (removed by the retention job), those of them under a legal hold
    (``held``: never removed), and encrypted ``files`` that no live item owns."""

    items: int
    held: int
    files: int

    @property
    def removable(self) -> int:
        return self.items + self.files


def count_orphans(
    store: EvidenceStore, blob_dir: Path, now: datetime, *, grace: timedelta = ORPHAN_GRACE
) -> OrphanCount:
    """Count orphans without changing anything (for ``hashguard doctor``); needs no
    master key. ``blob_dir`` is the vault's folder (``settings.evidence_dir`` or
    ``$HASHGUARD_HOME/evidence``)."""
    orphaned = store.orphaned(now - grace)
    held = sum(1 for item in orphaned if item.legal_hold)
    return OrphanCount(
        items=len(orphaned) - held, held=held, files=len(orphan_files(store, blob_dir, now - grace))
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class OrphanSweep:
    items: tuple[str, ...]
    held: tuple[str, ...]
    files: int


def sweep_orphans(
    vault: Vault,
    store: EvidenceStore,
    now: datetime,
    *,
    dry_run: bool = False,
    actor: str = RETENTION_ACTOR,
    grace: timedelta = ORPHAN_GRACE,
) -> OrphanSweep:
    """Destroy (crypto-erase, then unlink) every item older than ``grace`` that no case
    holds and that is not under a legal hold, each an ``evidence.destroyed`` event; then
    remove encrypted files older than ``grace`` that no live item owns. The check that
    an item is still orphaned and not held is part of the update that erases it. A dry
    run lists what would go and changes nothing."""
    cutoff = now - grace
    orphaned = store.orphaned(cutoff)
    held = tuple(item.id for item in orphaned if item.legal_hold)
    candidates = [item.id for item in orphaned if not item.legal_hold]
    if dry_run:
        return OrphanSweep(
            items=tuple(candidates),
            held=held,
            files=len(orphan_files(store, vault.blob_dir, cutoff)),
        )
    removed = []
    for item_id in candidates:
        if store.destroy_orphan(
            item_id, created_before=cutoff, at=now, actor=actor, reason=ORPHAN_REASON
        ):
            vault.blob_path(item_id).unlink(missing_ok=True)
            vault.emit(AuditAction.EVIDENCE_DESTROYED, item_id, actor, reason=ORPHAN_REASON)
            removed.append(item_id)
    return OrphanSweep(items=tuple(removed), held=held, files=vault.remove_orphans(cutoff))


def run_retention(
    vault: Vault,
    now: datetime,
    *,
    dry_run: bool = False,
    actor: str = RETENTION_ACTOR,
    store: EvidenceStore | None = None,
) -> RetentionReport:
    """Destroy every live item whose retention ended by ``now`` and that is not held;
    then sweep orphans (``sweep_orphans``): items no case holds, with ``store``, and
    encrypted files no item owns. Each destruction is an ``evidence.destroyed`` event and
    the run an ``evidence.retention_run`` event. A dry run changes and records nothing.

    One failing item does not stop the run: it is reported with its reason.
    """
    destroyed: list[str] = []
    held: list[str] = []
    failed: list[tuple[str, str]] = []
    for item in vault.expired(now):
        if item.legal_hold:
            held.append(item.id)
            continue
        if dry_run:
            destroyed.append(item.id)
            continue
        try:
            vault.delete(item.id, actor=actor, reason="retention period ended", now=now)
        except UnderLegalHold:  # placed since the listing
            held.append(item.id)
        except (EvidenceError, OSError) as exc:
            failed.append((item.id, str(exc)))
        else:
            destroyed.append(item.id)
    if store is not None:
        sweep = sweep_orphans(vault, store, now, dry_run=dry_run, actor=actor)
        orphan_items, orphans_held, orphans = sweep.items, sweep.held, sweep.files
    else:
        orphan_items, orphans_held = (), ()
        orphans = 0 if dry_run else vault.remove_orphans(now - ORPHAN_GRACE)
    report = RetentionReport(
        now=now,
        dry_run=dry_run,
        destroyed=tuple(destroyed),
        held=tuple(held),
        failed=tuple(failed),
        orphans_removed=orphans,
        orphan_items=orphan_items,
        orphan_items_held=orphans_held,
    )
    if not dry_run:
        vault.emit(
            AuditAction.EVIDENCE_RETENTION_RUN,
            "retention",
            actor,
            destroyed=len(destroyed),
            held=len(held),
            failed=len(failed),
            orphans_removed=orphans,
            orphan_items_removed=len(orphan_items),
        )
    return report
