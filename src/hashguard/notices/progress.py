"""A notice's way to a decision: when each of its cases was decided and how, and the
notice's time to decision (received → decided, or its age while undecided).

A case is decided for a notice when its notifier is told (``notice.decided``): when
the notice's own sighting was acted on automatically (the case's decision acts; the
sighting's ``opened``/``seen_again`` event), or when people made the case final
(``confirmed`` or ``false_positive``: the first such event, so an appeal reopening it
later does not move the notice's decision). A notice is decided once every item that
reached a case has its case decided; a notice none of whose items is on the platform
(``not_found``) is decided when it was resolved. Pure: the cases and their histories
are given, and the time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from hashguard.domain.cases import Case, CaseEvent, CaseEventKind, CaseState
from hashguard.domain.notices import Notice, NoticeState


class Outcome(StrEnum):
    """What became of a notice (or one of its cases), for people reading the queue."""

    #: waiting to be resolved to the platform's content (or retried after a failure)
    OPEN = "open"
    #: resolved; a case still waits for people
    IN_REVIEW = "in_review"
    #: the content was restricted (an automated act, or people confirmed it)
    RESTRICTED = "restricted"
    #: people found it is not what the notice says: nothing restricted
    NOT_RESTRICTED = "not_restricted"
    #: no item is on the platform
    NOT_FOUND = "not_found"


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseDecision:
    case_id: int
    state: CaseState | None
    outcome: Outcome
    decided_at: datetime | None
    #: decided by automated means (the policy acted on a match), not by people
    automated: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class NoticeProgress:
    notice: Notice
    cases: tuple[CaseDecision, ...]
    outcome: Outcome
    decided_at: datetime | None
    #: received → decided, or received → now while undecided
    elapsed: timedelta

    @property
    def decided(self) -> bool:
        return self.decided_at is not None


def _from_notice(event: CaseEvent, notice_id: int) -> bool:
    source = event.details.get("source")
    return (
        isinstance(source, Mapping)
        and source.get("kind") == "notice"
        and str(source.get("ref")) == str(notice_id)
    )


def case_decision(notice_id: int, case: Case, history: Sequence[CaseEvent]) -> CaseDecision:
    """When and how ``case`` was decided for notice ``notice_id`` (``None``: not yet)."""
    automated_at = None
    if case.decision.acts:
        automated_at = next(
            (
                e.at
                for e in history
                if e.kind in (CaseEventKind.OPENED, CaseEventKind.SEEN_AGAIN)
                and _from_notice(e, notice_id)
            ),
            None,
        )
    final = next((e for e in history if e.to_state is not None and e.to_state.final), None)
    if automated_at is not None and (final is None or automated_at <= final.at):
        return CaseDecision(
            case_id=case.id,
            state=case.state,
            outcome=Outcome.RESTRICTED,
            decided_at=automated_at,
            automated=True,
        )
    if final is not None:
        return CaseDecision(
            case_id=case.id,
            state=case.state,
            outcome=Outcome.RESTRICTED
            if final.to_state is CaseState.CONFIRMED
            else Outcome.NOT_RESTRICTED,
            decided_at=final.at,
        )
    return CaseDecision(
        case_id=case.id, state=case.state, outcome=Outcome.IN_REVIEW, decided_at=None
    )


def progress(
    notice: Notice,
    cases: Mapping[int, tuple[Case, Sequence[CaseEvent]] | None],
    *,
    now: datetime,
) -> NoticeProgress:
    """Where ``notice`` stands. ``cases``: each of its case ids' case and history
    (``None``: the case is gone, which counts as undecided)."""
    decisions = []
    for case_id in dict.fromkeys(notice.case_ids):
        found = cases.get(case_id)
        if found is None:
            decisions.append(
                CaseDecision(
                    case_id=case_id, state=None, outcome=Outcome.IN_REVIEW, decided_at=None
                )
            )
        else:
            decisions.append(case_decision(notice.id, *found))
    decided_at: datetime | None = None
    if notice.state.open:
        outcome = Outcome.OPEN
    elif notice.state is NoticeState.NOT_FOUND or not decisions:
        outcome = Outcome.NOT_FOUND
        decided_at = notice.resolved_at or notice.updated_at
    elif any(d.decided_at is None for d in decisions):
        outcome = Outcome.IN_REVIEW
    else:
        outcome = (
            Outcome.RESTRICTED
            if any(d.outcome is Outcome.RESTRICTED for d in decisions)
            else Outcome.NOT_RESTRICTED
        )
        decided_at = max(d.decided_at for d in decisions if d.decided_at is not None)
    end = decided_at if decided_at is not None else now
    return NoticeProgress(
        notice=notice,
        cases=tuple(decisions),
        outcome=outcome,
        decided_at=decided_at,
        elapsed=max(timedelta(0), end - notice.received_at),
    )
