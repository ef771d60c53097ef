"""What follows a file's decision in a scan: its evidence kept, its case opened."""

from __future__ import annotations

from collections.abc import Callable

from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import CaseSource, SourceKind
from hashguard.domain.scans import FileResult, Outcome
from hashguard.review.cases import open_from_result
from hashguard.store import Store


def audit_decision(store: Store, result: FileResult, source: CaseSource, *, actor: str) -> None:
    """Record the policy's decision about a matched file (whatever it was: act, review,
    or ignore for a suppressed, shadow or out-of-band match) in the audit log. Files
    that matched nothing are counted, not logged one by one."""
    if result.outcome is not Outcome.MATCHED:
        return
    decision = result.decision
    record(
        store,
        actor,
        AuditAction.SCAN_DECISION,
        f"content:{result.signals.sha256}" if result.signals else None,
        source=source.as_json(),
        decided=str(decision.action),
        rule=decision.rule,
        bank=decision.bank,
        shadow=decision.shadow,
        shadow_decisions=[
            {"bank": d.bank, "action": str(d.action)} for d in decision.shadow_decisions
        ],
    )


def after_scan_decision(
    store: Store,
    run_id: int,
    keep: Callable[[FileResult], str | None] | None,
    *,
    actor: str,
) -> Callable[[FileResult], None]:
    """For each result of run ``run_id``: audit a matched file's decision, keep the
    evidence (``keep``, if any), then open or update the content's case with it. The
    last two skip what the policy ignores."""

    def follow(result: FileResult) -> None:
        source = CaseSource(kind=SourceKind.SCAN, ref=str(run_id), path=result.path)
        audit_decision(store, result, source, actor=actor)
        evidence_id = keep(result) if keep is not None else None
        open_from_result(store, result, source, actor=actor, evidence_id=evidence_id)

    return follow
