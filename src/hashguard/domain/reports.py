"""Reports to national channels (NCMEC CyberTipline first): what is sent, and where a
report stands in its persisted state machine. Records of steps never change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hashguard.domain.cases import CaseEvent, CaseEventKind


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


class SinkOutcome(StrEnum):
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


class FileAnnotation(StrEnum):
    """What a reviewer says of a file: NCMEC's ``fileAnnotations`` tags (XSD element
    names in ``xml_name``). Persisted names (case history); never rename a value."""

    ANIME_DRAWING_VIRTUAL_HENTAI = "anime_drawing_virtual_hentai"
    POTENTIAL_MEME = "potential_meme"
    VIRAL = "viral"
    POSSIBLE_SELF_PRODUCTION = "possible_self_production"
    PHYSICAL_HARM = "physical_harm"
    VIOLENCE_GORE = "violence_gore"
    BESTIALITY = "bestiality"
    LIVE_STREAMING = "live_streaming"
    INFANT = "infant"
    GENERATIVE_AI = "generative_ai"

    @property
    def xml_name(self) -> str:
        head, *rest = self.value.split("_")
        return head + "".join(part.capitalize() for part in rest)


class IndustryClassification(StrEnum):
    """The industry classification scale of NCMEC's hash-sharing programme
    (``industryClassification`` in the XSD: only for a host that signed its MOU).
    A: a prepubescent minor; B: a pubescent minor; 1: a sex act; 2: a lascivious
    exhibition. Persisted names; never rename a value."""

    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"


def labels_of(
    history: Iterable[CaseEvent],
) -> tuple[tuple[FileAnnotation, ...], IndustryClassification | None]:
    """A case's file annotations and classification as its reviewers last set them
    (``annotated`` / ``classified`` events: the latest of each kind wins)."""
    annotations: tuple[FileAnnotation, ...] = ()
    classification: IndustryClassification | None = None
    for event in history:
        if event.kind is CaseEventKind.ANNOTATED:
            annotations = tuple(FileAnnotation(a) for a in event.details.get("annotations", ()))
        elif event.kind is CaseEventKind.CLASSIFIED:
            found = event.details.get("classification")
            classification = IndustryClassification(found) if found else None
    return annotations, classification


class IpEvent(StrEnum):
    """What an IP address was captured at (the XSD's ``ipCaptureType``)."""

    LOGIN = "Login"
    REGISTRATION = "Registration"
    PURCHASE = "Purchase"
    UPLOAD = "Upload"
    OTHER = "Other"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, kw_only=True, slots=True)
class IpCapture:
    """An IP address the platform recorded for the uploader, and when."""

    ip: str
    event: IpEvent = IpEvent.UNKNOWN
    at: datetime | None = None
    possible_proxy: bool | None = None
    port: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Uploader:
    """What the platform says of the person who uploaded the content (its answer to
    the additional-information request). Personal data: kept only inside the sealed
    report documents, never in a table, a log or an audit event."""

    esp_id: str | None = None
    screen_name: str | None = None
    display_names: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    ip_captures: tuple[IpCapture, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportFile:
    """One file of a report: the evidence item that holds it and what is said of it.

    ``annotations``, ``classification``, ``uploaded_at`` and ``upload_ip`` are kept
    sealed with the report, not in the file's row (``reports.service``)."""

    evidence_id: str
    name: str
    md5: str
    hashes: tuple[FileHash, ...]
    #: a person at the host viewed the file (the audit trail holds a reveal)
    viewed: bool
    location: str | None = None
    uploaded_at: datetime | None = None
    annotations: tuple[FileAnnotation, ...] = ()
    #: sent only when the sink's host signed NCMEC's hash-sharing MOU
    classification: IndustryClassification | None = None
    #: the IP address the file was uploaded from (the platform's answer)
    upload_ip: IpCapture | None = None


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
    #: the uploader's details from the platform (the additional-information request)
    uploader: Uploader | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SinkAnswer:
    """A channel's answer to one call, mapped. ``code`` is the channel's response code
    (None when no parseable answer came); ``raw`` the response body as received."""

    outcome: SinkOutcome
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
