"""A reviewer's decision and everything it sets off, the same from the CLI, the UI and
the API: the case's state change with its webhooks in the same transaction
(``review.cases``) and, for a false positive, the files a scan quarantined put back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hashguard.domain.actions import WebhookEndpoint
from hashguard.domain.cases import Case
from hashguard.domain.statements import NotifierOf
from hashguard.review import cases as review
from hashguard.review.effects import restore_quarantined
from hashguard.statements.service import decided
from hashguard.store import Store


class Verdict(StrEnum):
    CONFIRM = "confirm"
    FALSE_POSITIVE = "false_positive"
    ESCALATE = "escalate"


@dataclass(frozen=True, kw_only=True, slots=True)
class Decided:
    case: Case
    #: what else happened, one line each (files restored from quarantine)
    notes: tuple[str, ...] = ()


def confirms_finally(case: Case, *, second_confirmation: bool) -> bool:
    """Whether one more confirmation makes ``case`` confirmed (reportable): the step
    that needs the ``case.confirm_final`` permission."""
    return len(case.confirmers) + 1 >= (2 if second_confirmation else 1)


def apply_verdict(
    store: Store,
    case_id: int,
    verdict: Verdict,
    *,
    actor: str,
    reason: str,
    second_confirmation: bool,
    allow_bank: str,
    endpoints: Sequence[WebhookEndpoint],
    version: int | None = None,
    reference: review.ReferencePdq | None = None,
    notifier: NotifierOf | None = None,
    at: datetime | None = None,
) -> Decided:
    """Apply ``verdict`` to the case (raises ``review.ReviewError``, ``StaleCase``,
    ``UnknownCase`` as the workflow does) and set off its effects. ``reference``
    computes the reference PDQ hashes a false positive's allow-bank entries need when
    the case holds only fast ones (``review.reference.from_settings``). A final
    decision issues its statement of reasons and answers the notices behind the case
    (``statements.service.decided``; ``notifier`` says who sent a notice)."""
    if verdict is Verdict.CONFIRM:
        case = review.confirm(
            store,
            case_id,
            actor=actor,
            reason=reason,
            second_confirmation=second_confirmation,
            version=version,
            endpoints=endpoints,
            at=at,
        )
        decided(store, case, actor=actor, endpoints=endpoints, notifier=notifier)
        return Decided(case=case)
    if verdict is Verdict.FALSE_POSITIVE:
        case = review.mark_false_positive(
            store,
            case_id,
            actor=actor,
            reason=reason,
            allow_bank=allow_bank,
            version=version,
            endpoints=endpoints,
            reference=reference,
            at=at,
        )
        decided(store, case, actor=actor, endpoints=endpoints, notifier=notifier)
        return Decided(case=case, notes=tuple(restore_quarantined(store, case, actor=actor)))
    case = review.escalate(store, case_id, actor=actor, reason=reason, version=version, at=at)
    return Decided(case=case)
