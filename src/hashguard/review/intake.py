"""What the audit log says of a file's decision (``scan.decision``), as the pipeline records it."""

from __future__ import annotations

from typing import Any

from hashguard.domain.cases import CaseSource
from hashguard.domain.scans import FileResult, Outcome


def audits_decision(result: FileResult) -> bool:
    """Only a matched file's decision is logged one by one (whatever it was: act,
    review, or ignore for a suppressed, shadow or out-of-band match); files that matched
    nothing are counted, not logged."""
    return result.outcome is Outcome.MATCHED


def decision_subject(result: FileResult) -> str | None:
    return f"content:{result.signals.sha256}" if result.signals else None


def decision_details(
    result: FileResult, source: CaseSource, *, late: bool = False
) -> dict[str, Any]:
    """The details of ``scan.decision``: where the content was seen, the decision and
    the rule, and what each shadow bank would have done. ``late``: the decision was
    made again when a remote matcher answered after the time budget."""
    decision = result.decision
    details: dict[str, Any] = {
        "source": source.as_json(),
        "decided": str(decision.action),
        "rule": decision.rule,
        "bank": decision.bank,
        "shadow": decision.shadow,
        "shadow_decisions": [
            {"bank": d.bank, "action": str(d.action)} for d in decision.shadow_decisions
        ],
    }
    if late:
        details["late_remote_answer"] = True
    return details
