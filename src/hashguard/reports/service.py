"""Reports from confirmed cases: the draft, the sink's settings and credentials, and
``Reporting``, the one object the CLI, the review UI and the background job use to
draft, submit, resume or retract a report."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from pydantic import SecretStr

from hashguard.actions.outbox import endpoints_of
from hashguard.domain.actions import WebhookEndpoint
from hashguard.domain.cases import Case, CaseState
from hashguard.domain.reports import FileHash, Report, ReportDraft, Reporter, ReportFile
from hashguard.domain.signals import Algorithm, leaving
from hashguard.evidence import open_vault
from hashguard.hashing.kernel import HashOptions
from hashguard.hashing.reference import with_reference
from hashguard.keys import MasterKey
from hashguard.plugins import AdapterKind, PluginError, Registry
from hashguard.reports.base import ReportSink
from hashguard.reports.documents import ReportKeys
from hashguard.reports.machine import Backoff, Clock, EvidenceReader, Runner
from hashguard.settings import Settings
from hashguard.store import Store

SINK = "cybertipline"
REPORTER_FIELDS = ("first_name", "last_name", "email", "company_template", "legal_url", "platform")
_HASH_TYPES = {Algorithm.MD5: "MD5", Algorithm.SHA1: "SHA1", Algorithm.SHA256: "SHA256"}
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}


class ReportRefused(ValueError):
    """A report that may not be made (the case is not confirmed, has no evidence, the
    reporter is not configured)."""


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
) -> list[str]:
    """Merge the given values into ``sink``'s stored settings (``None`` values are left
    alone, an empty string clears), credentials sealed with the master key; returns
    the names changed."""
    stored, sealed = store.reports.settings(sink)
    merged_reporter = dict(stored.get("reporter", {}))
    merged_sink = dict(stored.get("sink", {}))
    changed: list[str] = []
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
        {"reporter": merged_reporter, "sink": merged_sink},
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
    key = master_key() if sealed else None
    secrets = {
        name: SecretStr(
            key.open(base64.b64decode(value), context=secret_context(sink, name)).decode()
        )
        for name, value in sealed.items()
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
    extension = _EXTENSIONS.get((signals.image_format or "").upper(), "")
    return ReportFile(
        evidence_id=case.evidence_id,
        name=f"case-{case.id}{extension}",
        md5=signals.md5,
        hashes=tuple(hashes),
        viewed=store.reports.viewed(case.id, case.evidence_id),
        location=case.content.url,
    )


def draft_of(
    store: Store,
    case: Case,
    reporter: Reporter,
    data: Callable[[], bytes],
    limits: HashOptions,
    *,
    test: bool,
) -> ReportDraft:
    """The report of a confirmed case; ``ReportRefused`` for any other state."""
    if case.state is not CaseState.CONFIRMED:
        raise ReportRefused(f"case #{case.id} is {case.state}: only confirmed cases are reported")
    if case.signals is None or case.evidence_id is None:
        raise ReportRefused(f"case #{case.id} has no evidence kept: there is no file to report")
    info = f"hashguard case #{case.id}: matched {', '.join(case.banks) or 'a list'}; "
    info += f"confirmed by {len(case.confirmers)} reviewer(s)."
    return ReportDraft(
        case_id=case.id,
        incident_at=case.created_at,
        incident_description="when hashguard first matched the content on the service",
        reporter=reporter,
        files=(file_of(store, case, data, limits),),
        url=case.content.url,
        uploader_id=case.content.uploader_id,
        additional_info=("TEST REPORT - " if test else "") + info,
    )


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
) -> tuple[Report, bool]:
    """The case's report: the one it has, else a new draft built, validated against the
    sink's schema and sealed (nothing sent). Returns it and whether it is new."""
    existing = store.reports.find(case_id, sink.name)
    if existing is not None:
        return existing, False
    case = store.cases.get(case_id)
    reporter = reporter_of(store, sink.name)
    built = draft_of(
        store,
        case,
        reporter,
        lambda: data(case.evidence_id or ""),
        limits,
        test=sink.environment != "production",
    )
    document = sink.report_document(built)
    key, wrapped = keys.new_key(case_id, sink.name)
    return store.reports.create(
        case_id=case_id,
        sink=sink.name,
        environment=sink.environment,
        files=built.files,
        data_key=wrapped,
        key_for=lambda _id: keys.seal_with(key, case_id, sink.name, request=document),
        actor=actor,
        at=at,
    )


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
    #: who gets ``report.filed`` when a report finishes, and the retries' backoff
    endpoints: tuple[WebhookEndpoint, ...] = ()
    backoff: Backoff = field(default_factory=Backoff)

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
            endpoints=endpoints_of(settings),
            backoff=Backoff(give_up_after=timedelta(days=settings.reports_give_up_days)),
        )

    def runner(self, actor: str) -> Runner:
        return Runner(
            reports=self.store.reports,
            sink=self.sink,
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
        )

    def submit(self, case_id: int, *, actor: str) -> Report:
        """Draft the case's report if needed and take it as far as it goes now (finished,
        failed, or waiting for a retry). ``ReportRefused``, ``InvalidReport``,
        ``UnknownCase``, ``ReportBusy`` as the steps raise them."""
        report, _ = self.draft(case_id, actor=actor)
        return self.runner(actor).run(report.id)

    def retract(self, report_id: int, *, actor: str) -> Report:
        return self.runner(actor).retract(report_id, actor=actor)

    def resume_due(self, *, actor: str) -> list[Report]:
        return self.runner(actor).resume_due()

    def close(self) -> None:
        self.sink.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
