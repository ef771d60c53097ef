"""Machine-readable shapes of signals, matches and results, shared by every command."""

from __future__ import annotations

import csv
import io
from typing import Any

from hashguard.domain.matches import match_to_json
from hashguard.domain.objects import object_to_json
from hashguard.domain.policy import Action, decision_to_json
from hashguard.domain.remote import RemoteStatus, remote_to_json
from hashguard.domain.scans import FileResult, Outcome, ScanRun, printable_path
from hashguard.domain.signals import signals_shown


def result_json(result: FileResult) -> dict[str, Any]:
    return {
        "type": "file",
        "path": printable_path(result.path),
        "outcome": str(result.outcome),
        "reason": result.reason,
        **(signals_shown(result.signals) if result.signals else {}),
        "matches": [match_to_json(match) for match in result.matches],
        "remote": [remote_to_json(r) for r in result.remote],
        "decision": decision_to_json(result.decision),
        **({"object": object_to_json(result.object)} if result.object else {}),
    }


def summary_json(run: ScanRun, *, resumed: bool, exit_code: int) -> dict[str, Any]:
    return {
        "type": "summary",
        "run": run.id,
        "status": str(run.status),
        "resumed": resumed,
        "roots": list(run.roots),
        "total": run.total,
        "counts": {str(outcome): run.counts.get(outcome, 0) for outcome in Outcome},
        # objects an incremental rescan left out (checked against these bank versions)
        "skipped": run.skipped,
        # files per decided action; files per strongest action a shadow bank would take
        "actions": {str(action): run.actions.get(action, 0) for action in Action},
        "shadow_actions": {str(action): run.shadow_actions.get(action, 0) for action in Action},
        "exit_code": exit_code,
    }


CSV_COLUMNS = (
    "path",
    "outcome",
    "reason",
    "size",
    "md5",
    "sha1",
    "sha256",
    "pdq",
    "pdq_quality",
    "pdq_mode",
    "pdq_reference",
    "matches",
    "action",
    "rule",
    "shadow_action",
)


def csv_row(result: FileResult) -> str:
    signals = result.signals
    first = signals.pdq[0] if signals and signals.pdq else None
    reference = signals.pdq_reference if signals else ()
    matches = ";".join(
        f"{m.bank}:{m.algorithm}:{m.distance}:{m.entry_id or ''}"
        + (f":suppressed_by={m.suppressed_by}" if m.suppressed_by else "")
        for m in result.matches
    )
    matches += "".join(
        f";remote:{r.service}:{r.classification or ''}:{r.tracking_id or ''}"
        for r in result.remote
        if r.status is RemoteStatus.MATCHED
    )
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        [
            printable_path(result.path),
            str(result.outcome),
            result.reason or "",
            signals.size if signals else "",
            signals.md5 if signals else "",
            signals.sha1 if signals else "",
            signals.sha256 if signals else "",
            first.value if first else "",
            first.quality if first else "",
            str(first.mode) if first else "",
            reference[0].value if reference else "",
            matches,
            str(result.decision.action),
            result.decision.rule,
            str(result.decision.shadow_action) if result.decision.shadow_decisions else "",
        ]
    )
    return buffer.getvalue()


def csv_header() -> str:
    return ",".join(CSV_COLUMNS) + "\n"
