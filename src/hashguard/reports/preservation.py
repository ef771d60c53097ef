"""What a finished report sets off: the reported evidence preserved for a year from the
receipt, and the signed ``report.filed`` webhook that asks the platform to preserve the
account data it holds (18 U.S.C. 2258A(h), one year since the REPORT Act of 2024).

Planning is pure; the store applies it in the transaction that records the finish
(``ReportStore.advance(preserve=...)``), so a finished report is never left without its
hold or its webhook. The webhook's idempotency key names the report: recording the finish
again queues nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from hashguard.actions.outbox import webhook_actions
from hashguard.domain.actions import EventType, NewAction, WebhookEndpoint
from hashguard.domain.reports import Report
from hashguard.store.reports import Preserve

#: the US preservation period after a CyberTipline report (REPORT Act): a minimum
PRESERVE_FOR = timedelta(days=365)


def hold_reason(report: Report, remote_id: str) -> str:
    """The legal hold's reason: the law and the report it follows."""
    return (
        f"REPORT Act (18 U.S.C. 2258A(h)): {report.sink} report {remote_id} "
        f"({report.environment}), hashguard report #{report.id}"
    )


def content_sha256(report: Report) -> str | None:
    """The reported content's SHA-256 (what the case's other webhooks carry)."""
    for file in report.files:
        for found in file.file.hashes:
            if found.kind == "SHA256":
                return found.value
    return None


def filed_webhooks(
    report: Report, remote_id: str, finished_at: datetime, endpoints: Sequence[WebhookEndpoint]
) -> list[NewAction]:
    """``report.filed`` for every endpoint that wants it: the case, the report, NCMEC's
    report id, the environment and when it finished; never content, never a hash but
    the content's SHA-256."""
    data = {
        "case": report.case_id,
        "report": report.id,
        "sink": report.sink,
        "ncmec_report_id": remote_id,
        "environment": report.environment,
        "finished_at": finished_at.isoformat(),
        "preserve_until": (finished_at + PRESERVE_FOR).isoformat(),
        "content_sha256": content_sha256(report),
    }
    return webhook_actions(
        EventType.REPORT_FILED,
        data,
        endpoints,
        key=f"report:{report.id}",
        subject=f"case:{report.case_id}",
        at=finished_at,
    )


def preservation(
    report: Report, remote_id: str, finished_at: datetime, endpoints: Sequence[WebhookEndpoint]
) -> Preserve:
    """The hold and the webhooks of ``report``, finished at ``finished_at``."""
    return Preserve(
        until=finished_at + PRESERVE_FOR,
        reason=hold_reason(report, remote_id),
        actions=filed_webhooks(report, remote_id, finished_at, endpoints),
        details={"report": report.id, "case": report.case_id, "remote_id": remote_id},
    )
