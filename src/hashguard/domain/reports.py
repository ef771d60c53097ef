"""Reports to national channels (NCMEC CyberTipline first): what is sent, and where a
report stands in its persisted state machine. Records of steps never change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ReportState(StrEnum):
    """Where a report stands. Persisted names; never rename a value.

    ``draft`` (built, validated, nothing sent) → ``submitted`` (the channel gave a
    report id) → ``uploaded`` (every file uploaded, each checked against our MD5) →
    ``described`` (every file's details sent) → ``finished`` (the receipt). A report
    not yet finished may be ``retracted``; one that cannot go on is ``failed`` (the
    dead letter: a permanent refusal, or retries spent).
    """

    DRAFT = "draft"
    SUBMITTED = "submitted"
    UPLOADED = "uploaded"
    DESCRIBED = "described"
    FINISHED = "finished"
    RETRACTED = "retracted"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (ReportState.FINISHED, ReportState.RETRACTED, ReportState.FAILED)


class FileState(StrEnum):
    """One file of a report. Persisted names."""

    PENDING = "pending"
    UPLOADED = "uploaded"
    DESCRIBED = "described"


class Outcome(StrEnum):
    """What a channel's answer means for the state machine. Persisted names."""

    OK = "ok"
    #: try the same step again later (server trouble, no answer)
    RETRYABLE = "retryable"
    #: the channel refuses: the report goes to the dead letter
    PERMANENT = "permanent"
    #: the channel no longer knows the report (an unfinished report timed out):
    #: open a new one and send everything again
    EXPIRED = "expired"
    #: the step had already been done (a resend after a crash): go on
    ALREADY_DONE = "already_done"


@dataclass(frozen=True, kw_only=True, slots=True)
class FileHash:
    """One hash of a file as a report carries it: ``kind`` is the channel's hash type
    name (``MD5``, ``SHA1``, ``SHA256``, ``PDQ``). PDQ values are reference-mode
    hashes only (``domain.signals.leaving``)."""

    kind: str
    value: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportFile:
    """One file of a report: the evidence item that holds it and what is said of it."""

    evidence_id: str
    name: str
    md5: str
    hashes: tuple[FileHash, ...]
    #: a person at the host viewed the file (the audit trail holds a reveal)
    viewed: bool
    location: str | None = None
    uploaded_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Reporter:
    """Who reports, from ``hashguard reports settings``."""

    first_name: str
    last_name: str
    email: str
    company_template: str | None = None
    legal_url: str | None = None
    platform: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportDraft:
    """Everything a report says, from one confirmed case."""

    case_id: int
    incident_at: datetime
    reporter: Reporter
    files: tuple[ReportFile, ...]
    url: str | None = None
    uploader_id: str | None = None
    additional_info: str | None = None
    #: the host's own words for when the incident happened
    incident_description: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SinkAnswer:
    """A channel's answer to one call, mapped. ``code`` is the channel's response code
    (None when no parseable answer came); ``raw`` the response body as received."""

    outcome: Outcome
    code: int | None
    description: str
    raw: bytes = b""
    remote_id: str | None = None
    file_id: str | None = None
    md5: str | None = None
    file_ids: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportFileRecord:
    seq: int
    evidence_id: str
    name: str
    md5: str
    state: FileState
    file_id: str | None
    #: what the report says of the file (its hashes, whether it was viewed)
    file: ReportFile


@dataclass(frozen=True, kw_only=True, slots=True)
class Report:
    """A report as the store holds it."""

    id: int
    case_id: int
    sink: str
    environment: str
    state: ReportState
    remote_id: str | None
    files: tuple[ReportFileRecord, ...]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    #: a remote call was started and its answer not recorded (a crash in between)
    intent: str | None
    receipt: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    version: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportStep:
    """One entry of a report's history: a call made or a state reached. ``document``
    names the sealed request/response kept with it (``report_documents``)."""

    report_id: int
    at: datetime
    actor: str
    step: str
    outcome: str
    code: int | None
    detail: str
    state: ReportState
