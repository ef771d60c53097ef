"""Reports from confirmed cases: the draft, the sink's settings and credentials, and
``Reporting``, the one object the CLI, the review UI and the background job use to
draft, submit, resume, retract or retry (a failed one) a report.

What a report says of the uploader comes from the platform (``reports.uploader``) at
draft time and is kept only inside the sealed draft: the report document (the draft
step's request) and, for what only a file's details carry (its reviewers' annotations
and classification, its upload time and IP address), a JSON document sealed as the
draft step's response. The file's row holds its hashes and name only; ``Reporting``
puts the sealed details back before each file's details are built.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Self

from pydantic import SecretStr, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from hashguard.actions.outbox import endpoints_of
from hashguard.audit import record
from hashguard.domain.actions import WebhookEndpoint
from hashguard.domain.audit import AuditAction
from hashguard.domain.backoff import Backoff
from hashguard.domain.cases import Case, CaseEvent, CaseEventKind, CaseState
from hashguard.domain.reports import (
    FileHash,
    Report,
    ReportDraft,
    Reporter,
    ReportFile,
    ReportState,
    labels_of,
)
from hashguard.domain.signals import Algorithm, leaving
from hashguard.evidence import open_vault
from hashguard.hashing.kernel import HashOptions
from hashguard.hashing.reference import with_reference
from hashguard.keys import MasterKey
from hashguard.plugins import AdapterKind, PluginError, Registry
from hashguard.reports.base import ReportSink
from hashguard.reports.documents import ReportKeys
from hashguard.reports.filedetails import SealedFileDetails, row_of, sealed_file_details
from hashguard.reports.machine import (
    Clock,
    EvidenceReader,
    RetryRefused,
    Runner,
    report_backoff,
)
from hashguard.reports.uploader import Details, LookupFailed, UploaderInfoSettings, UploaderLookup
from hashguard.settings import Settings
from hashguard.store import Store

SINK = "cybertipline"
#: the sealed secret that signs the additional-information request and its answer
UPLOADER_SECRET = "uploader_info_secret"  # noqa: S105 (a name)
REPORTER_FIELDS = ("first_name", "last_name", "email", "company_template", "legal_url", "platform")
_HASH_TYPES = {Algorithm.MD5: "MD5", Algorithm.SHA1: "SHA1", Algorithm.SHA256: "SHA256"}
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}
#: a video's file name extension, by the container its probe read
_VIDEO_EXTENSIONS = {"mp4": ".mp4", "matroska": ".mkv", "avi": ".avi", "mpegts": ".ts"}


class ReportRefused(ValueError):
    """A report that may not be made (the case is not confirmed, has no evidence, the
    reporter is not configured). ``retryable``: the same request may succeed later."""

    retryable: ClassVar[bool] = False


class UploaderUnavailable(ReportRefused):
    """The platform was asked for the uploader's details (configured, and the case
    names an uploader or URL) and they did not come: no answer in time, an HTTP error,
    an unsigned, wrongly signed, stale or malformed answer. Nothing was drafted; try
    again later (a report is never drafted without details that were asked for)."""

    retryable: ClassVar[bool] = True


def secret_context(sink: str, key: str) -> str:
    return f"report:{sink}:{key}"


# -- settings ---------------------------------------------------------------------------


def reporter_of(store: Store, sink: str = SINK) -> Reporter:
    stored, _ = store.reports.settings(sink)
    found = stored.get("reporter", {})
    missing = [k for k in ("first_name", "last_name", "email") if not found.get(k)]
    if missing:
        raise ReportRefused(
            f"the reporter is not configured ({', '.join(missing)}): "
            "`hashguard reports settings --first-name … --last-name … --email …`"
        )
    return Reporter(**{k: found.get(k) for k in REPORTER_FIELDS})


def uploader_settings(store: Store, sink: str = SINK) -> UploaderInfoSettings | None:
    """Where the platform answers the additional-information request, if configured."""
    stored, _ = store.reports.settings(sink)
    found = stored.get("uploader_info") or {}
    if not found.get("url"):
        return None
    return UploaderInfoSettings.model_validate(found)


def _check_uploader_secret(value: str) -> None:
    try:
        Webhook(value)
    except (binascii.Error, ValueError, EmptyWebhookSecretError):
        raise ValueError(
            f"{UPLOADER_SECRET} is not a Standard Webhooks secret (whsec_ + base64)"
        ) from None


def change_settings(
    store: Store,
    master_key: Callable[[], MasterKey],
    *,
    reporter: Mapping[str, str | None],
    sink_settings: Mapping[str, Any],
    secrets: Mapping[str, str],
    actor: str,
    at: datetime,
    sink: str = SINK,
    uploader_info: Mapping[str, Any] | None = None,
) -> list[str]:
    """Merge the given values into ``sink``'s stored settings (``None`` values are left
    alone, an empty string clears), credentials sealed with the master key; returns
    the names changed. ``uploader_info``: the additional-information request's
    settings (``url``: an empty one switches the request off). ``ValueError`` for an
    uploader URL or secret that cannot be used (naming the setting, never a value)."""
    stored, sealed = store.reports.settings(sink)
    merged_reporter = dict(stored.get("reporter", {}))
    merged_sink = dict(stored.get("sink", {}))
    merged_uploader = dict(stored.get("uploader_info", {}))
    changed: list[str] = []
    for key, value in (uploader_info or {}).items():
        if value is not None:
            merged_uploader[key] = value
            changed.append(f"uploader_info_{key}")
    if not merged_uploader.get("url"):
        merged_uploader = {}
    else:
        try:
            UploaderInfoSettings.model_validate(merged_uploader)
        except ValidationError as exc:
            problems = "; ".join(
                f"uploader_info_{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(problems) from None
    if UPLOADER_SECRET in secrets:
        _check_uploader_secret(secrets[UPLOADER_SECRET])
    for key, value in reporter.items():
        if value is not None:
            merged_reporter[key] = value or None
            changed.append(key)
    for key, value in sink_settings.items():
        if value is not None:
            merged_sink[key] = value
            changed.append(key)
    new_sealed = dict(sealed)
    if secrets:
        key_ = master_key()
        for key, value in secrets.items():
            new_sealed[key] = base64.b64encode(
                key_.seal(value.encode(), context=secret_context(sink, key))
            ).decode()
            changed.append(key)
    store.reports.put_settings(
        sink,
        {
            **stored,
            "reporter": merged_reporter,
            "sink": merged_sink,
            "uploader_info": merged_uploader,
        },
        new_sealed,
        changed=changed,
        actor=actor,
        at=at,
    )
    return changed


def open_sink(
    store: Store,
    registry: Registry,
    master_key: Callable[[], MasterKey],
    *,
    sink: str = SINK,
) -> ReportSink:
    """The configured sink with its sealed credentials opened; ``PluginError`` says
    what is missing (never a value)."""
    adapter = registry.get(sink, AdapterKind.REPORT_SINK)
    stored, sealed = store.reports.settings(sink)
    wanted = set(adapter.secrets) | set(adapter.optional_secrets)
    mine = {name: value for name, value in sealed.items() if name in wanted}
    key = master_key() if mine else None
    secrets = {
        name: SecretStr(
            key.open(base64.b64decode(value), context=secret_context(sink, name)).decode()
        )
        for name, value in mine.items()
        if key is not None
    }
    configured = adapter.configure(stored.get("sink", {}), secrets)
    if not isinstance(configured, ReportSink):
        raise PluginError(f"{sink} is not a report sink")
    return configured


# -- drafts -------------------------------------------------------------------------------


def file_of(store: Store, case: Case, data: Callable[[], bytes], limits: HashOptions) -> ReportFile:
    """The case's content as a report file: its exact hashes and its reference-mode PDQ
    hashes (computed from the evidence when the case holds only fast ones; a fast hash
    never leaves), and whether a person viewed it (the audit trail of reveals)."""
    signals = case.signals
    assert signals is not None
    assert case.evidence_id is not None
    if signals.needs_reference:
        signals = with_reference(signals, limits=limits, data=data())
    hashes = [FileHash(kind=_HASH_TYPES[a], value=signals.exact(a)) for a in _HASH_TYPES]
    hashes += [
        FileHash(kind="PDQ", value=p.value)
        for p in leaving(signals.reference_pdq)
        if not p.low_quality
    ]
    # A video goes with its exact hashes only: the XSD's one place for other hashes is
    # ``details type="HASH"`` name/value pairs, where NCMEC names PDQ but no video hash
    # (its hash sharing knows TMK+PDQF, Videntifier and SSVH, not vPDQ), so its vPDQ
    # frames stay in the evidence.
    extension = (
        _VIDEO_EXTENSIONS.get(signals.video.container, "")
        if signals.video is not None
        else _EXTENSIONS.get((signals.image_format or "").upper(), "")
    )
    return ReportFile(
        evidence_id=case.evidence_id,
        name=f"case-{case.id}{extension}",
        md5=signals.md5,
        hashes=tuple(hashes),
        viewed=store.reports.viewed(case.id, case.evidence_id),
        location=case.content.url,
    )


def _check_reportable(case: Case) -> None:
    if case.state is not CaseState.CONFIRMED:
        raise ReportRefused(f"case #{case.id} is {case.state}: only confirmed cases are reported")
    if case.signals is None or case.evidence_id is None:
        raise ReportRefused(f"case #{case.id} has no evidence kept: there is no file to report")


def draft_of(
    store: Store,
    case: Case,
    reporter: Reporter,
    data: Callable[[], bytes],
    limits: HashOptions,
    *,
    test: bool,
    details: Details | None = None,
    history: Sequence[CaseEvent] | None = None,
) -> ReportDraft:
    """The report of a confirmed case; ``ReportRefused`` for any other state. The file
    carries its reviewers' annotations and classification (the case's history) and,
    with ``details`` (the platform's answer), the uploader and the upload's time and IP."""
    _check_reportable(case)
    info = f"hashguard case #{case.id}: matched {', '.join(case.banks) or 'a list'}; "
    info += f"confirmed by {len(case.confirmers)} reviewer(s)."
    annotations, classification = labels_of(
        store.cases.history(case.id) if history is None else history
    )
    file = replace(
        file_of(store, case, data, limits), annotations=annotations, classification=classification
    )
    if details is not None:
        uploaded_at, upload_ip = details.upload_of(case.content_key)
        file = replace(file, uploaded_at=uploaded_at, upload_ip=upload_ip)
    return ReportDraft(
        case_id=case.id,
        incident_at=case.created_at,
        incident_description="when hashguard first matched the content on the service",
        reporter=reporter,
        files=(file,),
        url=case.content.url,
        uploader_id=case.content.uploader_id,
        additional_info=("TEST REPORT - " if test else "") + info,
        uploader=details.uploader if details is not None else None,
    )


def _ask_platform(
    store: Store,
    uploader: UploaderLookup | None,
    case: Case,
    history: Sequence[CaseEvent],
    *,
    sink: str,
    actor: str,
) -> Details | None:
    """The platform's answer about the case's uploader, when the request is configured
    and the case names an uploader or a URL; ``UploaderUnavailable`` when it was asked
    for and did not come (audited either way, by outcome only)."""
    if uploader_settings(store, sink) is None:
        return None
    if not (case.content.uploader_id or case.content.url):
        return None
    subject = f"case:{case.id}"
    if uploader is None:
        raise UploaderUnavailable(
            f"case #{case.id}: the uploader's details are configured to be asked for, "
            "but the request was not opened (its secret is missing)"
        )
    seen = [e.at for e in history if e.kind in (CaseEventKind.OPENED, CaseEventKind.SEEN_AGAIN)]
    try:
        details = uploader.ask(
            case_id=case.id,
            content_sha256=case.content_key,
            uploader_id=case.content.uploader_id,
            url=case.content.url,
            seen_at=seen or [case.created_at],
        )
    except LookupFailed as exc:
        record(store, actor, AuditAction.REPORT_UPLOADER_REQUESTED, subject, outcome=exc.reason)
        raise UploaderUnavailable(
            f"case #{case.id}: the uploader's details did not come from the platform: {exc}. "
            "Nothing was drafted; try again later."
        ) from None
    record(store, actor, AuditAction.REPORT_UPLOADER_REQUESTED, subject, outcome="ok")
    return details


def draft(
    store: Store,
    sink: ReportSink,
    keys: ReportKeys,
    case_id: int,
    *,
    data: Callable[[str], bytes],
    limits: HashOptions,
    actor: str,
    at: datetime,
    uploader: UploaderLookup | None = None,
) -> tuple[Report, bool]:
    """The case's report: the one it has, else a new draft built, validated against the
    sink's schema and sealed (nothing sent). Returns it and whether it is new. When
    the additional-information request is configured, the platform is asked first
    (``uploader``); ``UploaderUnavailable`` if its details do not come."""
    existing = store.reports.find(case_id, sink.name)
    if existing is not None:
        return existing, False
    case = store.cases.get(case_id)
    reporter = reporter_of(store, sink.name)
    _check_reportable(case)
    history = store.cases.history(case_id)
    details = _ask_platform(store, uploader, case, history, sink=sink.name, actor=actor)
    built = draft_of(
        store,
        case,
        reporter,
        lambda: data(case.evidence_id or ""),
        limits,
        test=sink.environment != "production",
        details=details,
        history=history,
    )
    document = sink.report_document(built)
    extras = sealed_file_details(built.files)
    key, wrapped = keys.new_key(case_id, sink.name)
    return store.reports.create(
        case_id=case_id,
        sink=sink.name,
        environment=sink.environment,
        files=tuple(row_of(f) for f in built.files),
        data_key=wrapped,
        key_for=lambda _id: keys.seal_with(
            key, case_id, sink.name, request=document, response=extras
        ),
        actor=actor,
        at=at,
    )


def open_uploader(
    store: Store, master_key: Callable[[], MasterKey], *, sink: str = SINK
) -> UploaderLookup | None:
    """The additional-information request with its sealed secret opened, when
    configured; ``PluginError`` when the URL is set and the secret is not."""
    settings = uploader_settings(store, sink)
    if settings is None:
        return None
    _, sealed = store.reports.settings(sink)
    if UPLOADER_SECRET not in sealed:
        raise PluginError(
            f"{sink}: the uploader-info URL is set but its secret is not "
            "(--uploader-info-secret env:VAR)"
        )
    secret = master_key().open(
        base64.b64decode(sealed[UPLOADER_SECRET]), context=secret_context(sink, UPLOADER_SECRET)
    )
    return UploaderLookup(settings, secret.decode())


# -- the one way in -----------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True)
class Reporting:
    """The configured sink with its credentials opened, the keys that seal its documents
    and hashguard's own reader of the evidence vault: everything a report needs, wired
    once. Close it (or use it as a context manager) to close the sink's connection."""

    store: Store
    sink: ReportSink
    keys: ReportKeys
    evidence: EvidenceReader
    limits: HashOptions
    clock: Clock = _utc_now
    #: the additional-information request, when configured
    uploader: UploaderLookup | None = None
    #: who gets ``report.filed`` when a report finishes, and the retries' backoff
    endpoints: tuple[WebhookEndpoint, ...] = ()
    backoff: Backoff = field(default_factory=report_backoff)

    @classmethod
    def open(
        cls,
        settings: Settings,
        store: Store,
        registry: Registry,
        master_key: Callable[[], MasterKey],
        *,
        clock: Clock = _utc_now,
        sink: str = SINK,
    ) -> Reporting:
        """``PluginError`` when the sink is not configured (missing credentials)."""
        opened = open_sink(store, registry, master_key, sink=sink)
        try:
            uploader = open_uploader(store, master_key, sink=sink)
        except PluginError:
            opened.close()
            raise
        key = master_key()
        vault = open_vault(settings, store, key)

        def read(evidence_id: str) -> bytes:
            return vault.get(evidence_id, actor="system:reports", reason="report to NCMEC")[0]

        return cls(
            store=store,
            sink=opened,
            keys=ReportKeys(store.reports, key),
            evidence=read,
            limits=HashOptions(max_pixels=settings.max_pixels, max_frames=settings.max_frames),
            clock=clock,
            uploader=uploader,
            endpoints=endpoints_of(settings),
            backoff=report_backoff(timedelta(days=settings.reports_give_up_days)),
        )

    def runner(self, actor: str) -> Runner:
        """The state machine over this sink, with each file's sealed details put back
        before its details are sent (``SealedFileDetails``): drive reports through
        this, not a ``Runner`` over the bare sink."""
        return Runner(
            reports=self.store.reports,
            sink=SealedFileDetails(self.sink, self.store, self.keys),
            keys=self.keys,
            evidence=self.evidence,
            clock=self.clock,
            actor=actor,
            backoff=self.backoff,
            endpoints=self.endpoints,
        )

    def draft(self, case_id: int, *, actor: str) -> tuple[Report, bool]:
        """The case's report, drafted if it has none (``draft``)."""
        return draft(
            self.store,
            self.sink,
            self.keys,
            case_id,
            data=self.evidence,
            limits=self.limits,
            actor=actor,
            at=self.clock(),
            uploader=self.uploader,
        )

    def submit(self, case_id: int, *, actor: str) -> Report:
        """Draft the case's report if needed and take it as far as it goes now (finished,
        failed, or waiting for a retry). ``ReportRefused``, ``InvalidReport``,
        ``UnknownCase``, ``ReportBusy`` as the steps raise them."""
        report, _ = self.draft(case_id, actor=actor)
        return self.runner(actor).run(report.id)

    def retract(self, report_id: int, *, actor: str) -> Report:
        return self.runner(actor).retract(report_id, actor=actor)

    def retry(self, report_id: int, *, actor: str) -> Report:
        """Send a ``failed`` report again and take it as far as it goes now
        (``Runner.retry``), as ``actor``. ``UnknownReport``; ``RetryRefused`` for a report
        in any other state; ``ReportRefused`` when its case is no longer confirmed (a
        false positive, a decision reversed on appeal: its content is not reported);
        ``ReportBusy`` when another process holds it."""
        report = self.store.reports.get(report_id)
        if report.state is not ReportState.FAILED:
            raise RetryRefused(report)
        case = self.store.cases.get(report.case_id)
        if case.state is not CaseState.CONFIRMED:
            raise ReportRefused(
                f"case #{case.id} is {case.state}: report #{report_id} of it is not sent again"
            )
        return self.runner(actor).retry(report_id, actor=actor)

    def resume_due(self, *, actor: str) -> list[Report]:
        return self.runner(actor).resume_due()

    def close(self) -> None:
        self.sink.close()
        if self.uploader is not None:
            self.uploader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
