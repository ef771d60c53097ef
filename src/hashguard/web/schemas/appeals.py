"""Shapes of /v1/cases/{id}/appeals: an uploader's appeal (DSA Art. 20), as the platform
sends it, and where it stands."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from hashguard.domain.appeals import (
    MAX_EXPLANATION,
    REFERENCE_PATTERN,
    Appeal,
    AppealState,
    Restoration,
    appeal_json,
)
from hashguard.domain.statements import PUID_PATTERN
from hashguard.web.schemas.cases import REASON_PATTERN


class AppealIn(BaseModel):
    """The uploader's appeal against the restriction a statement of reasons explained.
    ``statement``: that statement's ``puid`` (from ``statement.issued`` or
    ``GET /v1/cases/{id}/statements``); ``reference``: the platform's own id of the
    appeal, its idempotency key; ``explanation``: the uploader's reasons, as given."""

    model_config = ConfigDict(extra="forbid")

    statement: str = Field(max_length=500, pattern=PUID_PATTERN)
    reference: str = Field(max_length=200, pattern=REFERENCE_PATTERN)
    explanation: str = Field(max_length=MAX_EXPLANATION, pattern=REASON_PATTERN)


class AppealOut(BaseModel):
    """An appeal: ``open`` until a person who did not take the first decision upholds
    or reverses it; ``decision_statement`` the outcome's statement of reasons;
    ``restoration`` what a reversal did to the files hashguard quarantined."""

    id: int
    case: int
    statement: int
    statement_puid: str
    reference: str
    explanation: str
    state: AppealState
    received_at: datetime
    received_by: str
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None
    decision_statement: int | None
    restoration: Restoration | None
    restoration_notes: list[str]

    @classmethod
    def of(cls, appeal: Appeal) -> AppealOut:
        return cls.model_validate(appeal_json(appeal))


class AppealList(BaseModel):
    appeals: list[AppealOut]
