"""What one checked file counts: its outcome, its matches and the remote services asked.

The store counts a file with this in the transaction that records it; verification
counts a scan run's recorded results with the same function, so a difference between
them is a file recorded without its count or counted without its record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from hashguard.domain.policy import Decision
from hashguard.domain.remote import RemoteStatus
from hashguard.domain.scans import FileResult
from hashguard.domain.stats import Metric, band_of
from hashguard.store.stats import Tally


def kind_of(result: FileResult) -> str:
    """The ``kind`` label: ``image`` (decoded as an image), ``file`` (read, not an
    image), or empty (not even read)."""
    if result.signals is None:
        return ""
    return "image" if result.signals.image_format else "file"


def _band(decision: Decision, bank: str) -> str:
    if decision.bank == bank:
        return band_of(decision.action)
    for shadow in decision.shadow_decisions:
        if shadow.bank == bank:
            return band_of(shadow.action)
    return ""


def tally_file(
    tally: Tally,
    day: date,
    way: str,
    result: FileResult,
    sources: Mapping[str, str | None],
    *,
    sign: int = 1,
) -> None:
    """Add (``sign`` 1) or take back (-1) what ``result`` counts on ``day``.

    ``sources`` names each bank's list source. The policy's decision about a matched
    file is counted with its audit event (``store.stats_events``), not here.
    """
    tally.count(
        day, Metric.FILES_CHECKED, sign, way=way, kind=kind_of(result), outcome=str(result.outcome)
    )
    for match in result.matches:
        tally.count(
            day,
            Metric.MATCHES,
            sign,
            way=way,
            bank=match.bank,
            source=sources.get(match.bank) or "",
            algorithm=str(match.algorithm),
            band=_band(result.decision, match.bank),
        )
    for answer in result.remote:
        tally.count(
            day,
            Metric.REMOTE_CALLS,
            sign,
            service=answer.service,
            answer="not_answered" if answer.status is RemoteStatus.NOT_ANSWERED else "answered",
            way=way,
        )
