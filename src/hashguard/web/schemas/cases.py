"""Shapes of /v1/cases: review cases, their history, decisions and assignments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from hashguard.domain.banks import BANK_NAME_PATTERN
from hashguard.domain.cases import Case, CaseEvent, CaseEventKind, CaseState, SourceKind
from hashguard.domain.people import NAME_PATTERN
from hashguard.domain.policy import Action
from hashguard.domain.remote import RemoteStatus
from hashguard.domain.statements import (
    AutomatedDecision,
    ContentType,
    FilingState,
    SourceType,
    Statement,
    StatementKind,
    Visibility,
)
from hashguard.review.cases import case_json, event_json
from hashguard.review.decide import Verdict
from hashguard.web.schemas.fields import Text, not_a_boolean
from hashguard.web.schemas.results import MatchOut, ShadowDecisionOut, SignalsOut

#: What ``str.strip()`` removes: a reason made only of these is no reason.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Stored text with at least one character that is not whitespace.
REASON_PATTERN = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"
#: A case's version, as the client read it (a change against an older one is refused).
CaseVersion = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(not_a_boolean)]


class CaseSourceOut(BaseModel):
    """Where the content was found: a scan run (``ref`` its id, ``path`` the file) or an
    upload (``ref`` the request id)."""

    kind: SourceKind
    ref: str
    path: str | None


class CaseRemoteOut(BaseModel):
    service: str
    status: RemoteStatus


class CaseDecisionOut(BaseModel):
    """The strongest decision any sighting of the content got."""

    action: Action
    rule: str
    bank: str | None
    shadow: bool
    shadow_decisions: list[ShadowDecisionOut]


class CaseOut(BaseModel):
    """A review case (as ``hashguard cases show --json``): never the content's bytes.
    ``reportable``: only a confirmed case is. ``version`` goes with a decision or an
    assignment (a change made against an older version is refused with 409)."""

    id: int
    state: CaseState
    reportable: bool
    assignee: str | None
    confirmers: list[str]
    version: int
    content_key: str
    content_id: str | None
    uploader_id: str | None
    url: str | None
    sources: list[CaseSourceOut]
    banks: list[str]
    decision: CaseDecisionOut
    matches: list[MatchOut]
    remote: list[CaseRemoteOut]
    signals: SignalsOut | None
    #: the evidence vault item holding the content (read it with ``hashguard evidence``)
    evidence_id: str | None
    created_at: datetime
    updated_at: datetime
    #: why the case sits where it does (``order=priority`` only; ``review.priority``)
    priority: str | None = None

    @classmethod
    def of(cls, case: Case, priority: str | None = None) -> CaseOut:
        return cls.model_validate({**case_json(case), "priority": priority})


class CaseEventOut(BaseModel):
    """One entry of a case's history (entries never change)."""

    at: datetime
    actor: str
    kind: CaseEventKind
    from_state: CaseState | None
    to_state: CaseState | None
    reason: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, event: CaseEvent) -> CaseEventOut:
        return cls.model_validate(event_json(event))


class CaseDetailOut(CaseOut):
    """A case and its history, oldest entry first."""

    history: list[CaseEventOut]

    @classmethod
    def with_history(cls, case: Case, history: Sequence[CaseEvent]) -> CaseDetailOut:
        return cls.model_validate(case_json(case) | {"history": [event_json(e) for e in history]})


class CasePage(BaseModel):
    """One page of cases; ``next`` is the ``after`` of the next page (null: the last)."""

    cases: list[CaseOut]
    next: int | None


class DecisionIn(BaseModel):
    """A reviewer's decision. ``confirm`` (the confirmation that makes a case confirmed,
    i.e. reportable, needs a lead), ``false_positive`` (the content's hashes go to the
    allow bank: ``allow_bank``, naming another than the server's needs a lead) or
    ``escalate``. ``version``: the case version reviewed (default: the current one)."""

    verdict: Verdict
    reason: str = Field(max_length=2000, pattern=REASON_PATTERN)
    version: CaseVersion | None = None
    allow_bank: str | None = Field(default=None, pattern=BANK_NAME_PATTERN)


class AssigneeIn(BaseModel):
    """Give the case to a person (by name), or ``null`` to unassign it."""

    assignee: str | None = Field(pattern=NAME_PATTERN)
    reason: str | None = Text(2000)
    version: CaseVersion | None = None


class StatementOut(BaseModel):
    """A statement of reasons (DSA Art. 17): ``text`` is what the platform shows the
    uploader; ``state`` where it stands with the Transparency Database. Nothing
    personal, never the content."""

    id: int
    puid: str
    case: int
    kind: StatementKind
    decision_visibility: Visibility
    content_type: ContentType
    source_type: SourceType
    automated_detection: bool
    automated_decision: AutomatedDecision
    legal_ground: str
    territorial_scope: list[str]
    decided_at: datetime
    text: str
    state: FilingState
    filed_at: datetime | None

    @classmethod
    def of(cls, statement: Statement) -> StatementOut:
        sor = statement.reasons
        return cls(
            id=statement.id,
            puid=sor.puid,
            case=sor.case_id,
            kind=sor.kind,
            decision_visibility=sor.visibility,
            content_type=sor.content_type,
            source_type=sor.source_type,
            automated_detection=sor.automated_detection,
            automated_decision=sor.automated_decision,
            legal_ground=sor.legal_ground,
            territorial_scope=list(sor.territorial_scope),
            decided_at=sor.decided_at,
            text=statement.text,
            state=statement.state,
            filed_at=statement.filed_at,
        )


class StatementList(BaseModel):
    statements: list[StatementOut]
