"""Shapes of /v1/scan: one upload's outcome, signals, matches and decision."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hashguard.domain.scans import Outcome
from hashguard.web.schemas.results import DecisionOut, MatchOut, RemoteOut, SignalsOut


class ContentMeta(BaseModel):
    content_id: str | None = None
    uploader_id: str | None = None
    url: str | None = None
    uploader_ip: str | None = None


class ScanOut(BaseModel):
    request_id: str | None
    #: the encrypted copy kept when the policy acts on or reviews the upload
    evidence_id: str | None = None
    #: the review case of this content, opened or updated when the policy acts or reviews
    case_id: int | None = None
    outcome: Outcome
    reason: str | None
    decision: DecisionOut
    content: ContentMeta
    signals: SignalsOut | None
    matches: list[MatchOut]
    remote: list[RemoteOut] = Field(default_factory=list)
