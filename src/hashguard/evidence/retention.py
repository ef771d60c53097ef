"""The retention job: destroys evidence whose retention ended, unless under a legal hold."""

from __future__ import annotations

from datetime import datetime, timedelta

from hashguard.domain.evidence import RetentionReport
from hashguard.evidence.vault import EvidenceError, UnderLegalHold, Vault

RETENTION_ACTOR = "system:retention"
#: blob files younger than this may belong to a put in progress
ORPHAN_GRACE = timedelta(hours=1)


def run_retention(
    vault: Vault, now: datetime, *, dry_run: bool = False, actor: str = RETENTION_ACTOR
) -> RetentionReport:
    """Destroy every live item whose retention ended by ``now`` and that is not held;
    remove orphaned blob files. Each destruction is an ``evidence.destroyed`` event and
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
    orphans = 0 if dry_run else vault.remove_orphans(now - ORPHAN_GRACE)
    report = RetentionReport(
        now=now,
        dry_run=dry_run,
        destroyed=tuple(destroyed),
        held=tuple(held),
        failed=tuple(failed),
        orphans_removed=orphans,
    )
    if not dry_run:
        vault.emit(
            "evidence.retention_run",
            "retention",
            actor,
            destroyed=len(destroyed),
            held=len(held),
            failed=len(failed),
            orphans_removed=orphans,
        )
    return report
