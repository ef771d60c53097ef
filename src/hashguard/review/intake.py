"""What follows a file's decision in a scan: its evidence kept, its case opened."""

from __future__ import annotations

from collections.abc import Callable

from hashguard.domain.cases import CaseSource, SourceKind
from hashguard.domain.scans import FileResult
from hashguard.review.cases import open_from_result
from hashguard.store import Store


def after_scan_decision(
    store: Store,
    run_id: int,
    keep: Callable[[FileResult], str | None] | None,
    *,
    actor: str,
) -> Callable[[FileResult], None]:
    """For each result of run ``run_id``: keep the evidence (``keep``, if any), then open
    or update the content's case with it. Both skip what the policy ignores."""

    def follow(result: FileResult) -> None:
        evidence_id = keep(result) if keep is not None else None
        source = CaseSource(kind=SourceKind.SCAN, ref=str(run_id), path=result.path)
        open_from_result(store, result, source, actor=actor, evidence_id=evidence_id)

    return follow
