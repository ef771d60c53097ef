"""The built-in background jobs: exchange sync, evidence retention, housekeeping, reports.

Each is a ``Job`` whose name is its lease's name (persisted: never renamed). They are
idempotent, so a job taken over from a killed process and run again changes nothing
twice: a sync resumes from its checkpoint, retention destroys only what is still due,
housekeeping deletes what is already past, and reports go through the report state
machine, whose per-report lease and persisted steps make a second run change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from hashguard.actions.outbox import endpoints_of
from hashguard.audit import record
from hashguard.banks.exchanges.sync import build_source, sync_exchange
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import CaseState
from hashguard.domain.reports import Report
from hashguard.evidence import open_vault, run_retention
from hashguard.evidence.retention import ORPHAN_GRACE
from hashguard.jobs.runner import Job, JobContext
from hashguard.keys import MasterKey
from hashguard.notices.callback import PlatformCallback
from hashguard.notices.service import configured_resolver
from hashguard.people.oidc import PENDING_SECONDS
from hashguard.plugins import AdapterKind, PluginError, Registry
from hashguard.reports.machine import ReportBusy
from hashguard.reports.service import SINK, Reporting
from hashguard.review.appeals import restore_due
from hashguard.settings import Settings
from hashguard.statements import service as statements
from hashguard.statements.filing import Filer
from hashguard.store import Store
from hashguard.store.people import PeopleStore

log = logging.getLogger("hashguard.jobs")

EXCHANGE_SYNC = "exchange-sync"
RETENTION = "retention"
HOUSEKEEPING = "housekeeping"
REPORTS = "reports"
NOTICES = "notices"
STATEMENTS = "statements"
RETRO_MATCH = "retro-match"
#: who the retro-match job acts as
RETRO_ACTOR = "system:retro"
APPEAL_RESTORES = "appeal-restores"
#: who the restores job acts as
RESTORES_ACTOR = "system:appeals"
#: how often reversed appeals' restorations that are due are tried again (the backoff,
#: ``review.appeals.RESTORE_BACKOFF``, says which are due)
APPEAL_RESTORES_EVERY = timedelta(minutes=5)
#: who the reports job acts as (in the audit log and the reports' steps)
REPORTS_ACTOR = "system:reports"
#: confirmed cases auto_report drafts and submits in one run at most (the rest next run)
AUTO_REPORT_BATCH = 100
#: a case auto_report could not report, or a report whose run raised, is tried again
#: after this long (by this process)
AUTO_REPORT_RETRY = timedelta(hours=1)
#: how often ended sessions, stale OpenID Connect sign-ins and old failures are forgotten
HOUSEKEEPING_EVERY = timedelta(hours=1)

#: told of every exchange sync's outcome: (exchange, ok) (the server counts them)
SyncObserver = Callable[[str, bool], None]


def existing_master_key(settings: Settings) -> MasterKey | None:
    """The master key if this installation has one here; never creates one (a worker on
    another machine must not make up a key of its own: nothing it sealed would open
    elsewhere)."""
    configured = settings.master_key is not None or settings.master_key_file is not None
    if not configured and not settings.default_master_key_file.exists():
        return None
    key, _ = MasterKey.load(
        value=settings.master_key.get_secret_value() if settings.master_key else None,
        file=settings.master_key_file or settings.default_master_key_file,
        default_file=settings.default_master_key_file,
    )
    return key


def sync_enabled_exchanges(
    store: Store,
    registry: Registry,
    settings: Settings,
    context: JobContext,
    *,
    on_sync: SyncObserver | None = None,
) -> None:
    """Sync every enabled exchange once; one exchange's failure is logged and counted,
    not the job's."""
    key: MasterKey | None = None
    for exchange in store.exchanges.list():
        if not exchange.enabled:
            continue
        context.check()
        try:
            if exchange.credential_names and key is None:
                key = existing_master_key(settings)
            source = build_source(registry, store, key, exchange)
        except Exception as exc:  # noqa: BLE001 - one exchange's configuration, not the job
            log.error("exchange %s cannot sync: %s", exchange.name, exc)  # noqa: TRY400
            if on_sync is not None:
                on_sync(exchange.name, False)
            continue
        report = sync_exchange(store, exchange, source)
        if report.ok:
            log.info(
                "exchange %s: +%d -%d (%d skipped)",
                exchange.name,
                report.upserted,
                report.removed,
                report.skipped,
            )
        else:
            log.warning("exchange %s: %s", exchange.name, report.error)
        if on_sync is not None:
            on_sync(exchange.name, report.ok)


def evidence_retention(settings: Settings, store: Store, now: datetime) -> None:
    """The retention job (``hashguard evidence retention run``): destroy evidence whose
    retention ended (never under a legal hold) and sweep orphans."""
    key = existing_master_key(settings)
    if key is None:
        if store.evidence.expired(now) or store.evidence.orphaned(now - ORPHAN_GRACE):
            # not done here: another process with the key takes the job over
            raise RuntimeError("evidence is due for destruction but there is no master key here")
        return  # no key, so nothing was ever sealed here: nothing to destroy
    report = run_retention(open_vault(settings, store, key), now, store=store.evidence)
    log.info(
        "retention: %d destroyed, %d held, %d failed, %d orphan files removed",
        len(report.destroyed),
        len(report.held),
        len(report.failed),
        report.orphans_removed,
    )


def forget_ended_sign_ins(
    people: PeopleStore, settings: Settings, now: datetime
) -> tuple[int, int, int]:
    """Delete sessions past their absolute timeout, sign-ins never completed, and failed
    sign-ins older than the lockout window; the counts of each."""
    return (
        people.delete_sessions_before(now - timedelta(hours=settings.ui_session_absolute_hours)),
        people.delete_oidc_pending_before(now - timedelta(seconds=PENDING_SECONDS)),
        people.delete_login_failures_before(
            now - timedelta(minutes=settings.login_lockout_minutes)
        ),
    )


# -- reports ------------------------------------------------------------------------------


def reports_configured(store: Store, registry: Registry, sink: str = SINK) -> bool:
    """Whether ``sink`` has settings and every credential it needs stored (sealed): read
    without the master key, so an installation that does not report never needs one."""
    stored, sealed = store.reports.settings(sink)
    if not stored.get("sink") and not sealed:
        return False
    try:
        adapter = registry.get(sink, AdapterKind.REPORT_SINK)
    except PluginError:
        return False
    return set(adapter.secrets) <= set(sealed)


class ReportsJob:
    """The reports job: resume every report that is due (a retry after its backoff, a
    report a crash interrupted) and, with ``auto_report``, draft and submit the report of
    every confirmed case with evidence that has none. Nothing at all (not even the
    master key) when no report sink is configured. One report's or one case's failure
    is logged (and, for a case, audited once per distinct error) and the others go on;
    a case or report that failed is tried again after ``AUTO_REPORT_RETRY``."""

    def __init__(self, settings: Settings, store: Store, registry: Registry) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        #: case id -> when this process tries it again
        self._retry_at: dict[int, datetime] = {}
        #: report id -> when this process resumes it again (its run raised)
        self._resume_at: dict[int, datetime] = {}

    def __call__(self, context: JobContext) -> None:
        if not reports_configured(self._store, self._registry):
            log.debug("reports: no report sink configured")
            return
        key = existing_master_key(self._settings)
        if key is None:
            # not done here: a process with the key takes the job over
            raise RuntimeError("reports are configured but there is no master key here")
        with Reporting.open(
            self._settings, self._store, self._registry, lambda: key, clock=context.now
        ) as reporting:
            self.resume(reporting, context)
            if self._settings.auto_report:
                self.auto_report(reporting, context)

    def resume(self, reporting: Reporting, context: JobContext) -> list[Report]:
        """Run every report of the sink that is due and was sent at least once (a draft
        that nothing was sent for waits for a person, or for auto_report)."""
        runner = reporting.runner(REPORTS_ACTOR)
        now = context.now()
        self._resume_at = {r: at for r, at in self._resume_at.items() if at > now}
        done = []
        for report_id in self._store.reports.resumable(now, sink=reporting.sink.name):
            if report_id in self._resume_at:
                continue
            context.check()
            try:
                if self._lifted(report_id):
                    # the decision was reversed (on appeal) before the report finished:
                    # CyberTipline takes a retraction only now (never once finished)
                    report = runner.retract(report_id, actor=REPORTS_ACTOR)
                else:
                    report = runner.run(report_id)
            except ReportBusy:
                continue  # another process is on it
            except Exception:  # one report's trouble is not the job's (doctor shows it late)
                log.exception("reports: report #%d could not be resumed", report_id)
                self._resume_at[report_id] = now + AUTO_REPORT_RETRY
                continue
            log.info("reports: report #%d is %s", report.id, report.state)
            done.append(report)
        return done

    def _lifted(self, report_id: int) -> bool:
        """Whether the report's case is no longer confirmed content (a false positive:
        marked so, or its decision reversed on appeal)."""
        case_id = self._store.reports.get(report_id).case_id
        return self._store.cases.get(case_id).state is CaseState.FALSE_POSITIVE

    def auto_report(self, reporting: Reporting, context: JobContext) -> list[Report]:
        """Draft and submit the report of each confirmed case that has none yet."""
        now = context.now()
        self._retry_at = {c: at for c, at in self._retry_at.items() if at > now}
        found = self._store.reports.unreported(
            reporting.sink.name, limit=AUTO_REPORT_BATCH + len(self._retry_at)
        )
        done = []
        for case_id in [c for c in found if c not in self._retry_at][:AUTO_REPORT_BATCH]:
            context.check()
            try:
                report = reporting.submit(case_id, actor=REPORTS_ACTOR)
            except ReportBusy:
                continue
            except Exception as exc:  # noqa: BLE001 - one case's failure, not the job's
                self._refused(case_id, exc, now)
                continue
            log.info("reports: case #%d reported: report #%d %s", case_id, report.id, report.state)
            done.append(report)
        return done

    def _refused(self, case_id: int, exc: Exception, now: datetime) -> None:
        self._retry_at[case_id] = now + AUTO_REPORT_RETRY
        error = f"{type(exc).__name__}: {exc}"[:500]
        subject = f"case:{case_id}"
        last = self._store.reports.last_event(AuditAction.REPORT_AUTO_REFUSED, subject)
        if last is not None and last.get("error") == error:
            log.debug("reports: case #%d still not reported: %s", case_id, error)
            return
        log.warning("reports: case #%d could not be reported: %s", case_id, error)
        record(self._store, REPORTS_ACTOR, AuditAction.REPORT_AUTO_REFUSED, subject, error=error)


# -- notices ------------------------------------------------------------------------------


def resolve_notices(settings: Settings, store: Store, registry: Registry, ctx: JobContext) -> None:
    """The notices job: resolve every due DSA notice through the platform's callback and
    the one pipeline. Nothing at all (no hashing pool) while no callback is configured
    or no notice is due."""
    if PlatformCallback.configured(settings) is None:
        log.debug("notices: no platform callback configured")
        return
    if not store.notices.due(ctx.now(), limit=1):
        return

    def master_key() -> MasterKey:
        key = existing_master_key(settings)
        if key is None:
            raise RuntimeError("a notice's content is to be kept but there is no master key")
        return key

    with configured_resolver(settings, store, registry, master_key, clock=ctx.now) as resolver:
        for notice in resolver.resolve_due(check=ctx.check):
            log.info("notices: notice #%d is %s", notice.id, notice.state)


def file_statements(
    settings: Settings, store: Store, registry: Registry, context: JobContext
) -> None:
    """The statements job: issue the statements a crash kept from being written, then
    file the pending ones in the Transparency Database (nothing of that, not even the
    master key, while the sink is off)."""
    issued = statements.issue_missing(
        store, actor="system:statements", endpoints=endpoints_of(settings)
    )
    if issued:
        log.warning("statements: issued %d a crash had kept from being written", issued)
    if not statements.sink_configured(store):
        log.debug("statements: the Transparency Database sink is off")
        return
    key = existing_master_key(settings)
    if key is None:
        raise RuntimeError("statements are to be filed but there is no master key here")
    sink = statements.open_sink(store, registry, lambda: key)
    try:
        report = Filer(statements=store.statements, sink=sink, clock=context.now).run()
    finally:
        sink.close()
    if report.batches:
        log.info(
            "statements: %d filed (%d already there), %d refused%s",
            report.filed,
            report.existing,
            report.failed,
            f"; retry later: {report.error}" if report.error else "",
        )


def retro_match_job(settings: Settings, store: Store, ctx: JobContext) -> None:
    """New bank entries against every kept signal (``scan.retro``); evidence of a hit is
    kept when this installation has a master key, read again from local files or from
    object storage (at ``s3_endpoint_url``)."""
    from hashguard.matching.matcher import load_or_build  # noqa: PLC0415
    from hashguard.scan.classify import policies_of  # noqa: PLC0415
    from hashguard.scan.objects import object_fetcher  # noqa: PLC0415
    from hashguard.scan.pipeline import OnceVault, Pipeline  # noqa: PLC0415
    from hashguard.scan.retro import retro_match  # noqa: PLC0415

    key = existing_master_key(settings)
    matcher = load_or_build(store.banks, settings.index_path)
    matcher.refresh()
    pipeline = Pipeline.configured(
        settings,
        store,
        actor=RETRO_ACTOR,
        matcher=matcher,
        policies=lambda: policies_of(matcher.banks),
        vault=OnceVault(lambda: open_vault(settings, store, key)) if key is not None else None,
    )
    summary = retro_match(
        store,
        pipeline,
        fetch_object=object_fetcher(settings.s3_endpoint_url),
        keep_days=settings.keep_signals_days,
        now=ctx.now,
    )
    log.info(
        "retro-match: %d new entries, %d matched, %d cases",
        summary.new_entries,
        summary.matched,
        summary.cases,
    )


def retry_restores(store: Store, context: JobContext) -> None:
    """The restores job: put back the files (and look again at the queued object
    restores) of reversed appeals whose restoration is pending or failed, when the
    shared backoff says (each try audited)."""
    for appeal in restore_due(store, actor=RESTORES_ACTOR, at=context.now()):
        log.info("appeals: appeal #%d restoration %s", appeal.id, appeal.restoration)


def intervals(settings: Settings) -> dict[str, timedelta]:
    """The jobs ``settings`` switch on (an interval of 0 switches one off), by name, and
    how often each runs."""
    every = {HOUSEKEEPING: HOUSEKEEPING_EVERY, APPEAL_RESTORES: APPEAL_RESTORES_EVERY}
    if settings.exchange_sync_minutes > 0:
        every[EXCHANGE_SYNC] = timedelta(minutes=settings.exchange_sync_minutes)
    if settings.retention_run_hours > 0:
        every[RETENTION] = timedelta(hours=settings.retention_run_hours)
    if settings.reports_run_minutes > 0:
        # on whenever its interval is: it does nothing while no report sink is configured
        every[REPORTS] = timedelta(minutes=settings.reports_run_minutes)
    if settings.notices_run_minutes > 0:
        every[NOTICES] = timedelta(minutes=settings.notices_run_minutes)
    if settings.statements_run_minutes > 0:
        # on whenever its interval is: a no-op while the Transparency Database sink is off
        every[STATEMENTS] = timedelta(minutes=settings.statements_run_minutes)
    if settings.keep_signals and settings.retro_match_minutes > 0:
        every[RETRO_MATCH] = timedelta(minutes=settings.retro_match_minutes)
    return every


def builtin_jobs(
    settings: Settings, store: Store, registry: Registry, *, on_sync: SyncObserver | None = None
) -> list[Job]:
    """The jobs ``settings`` switch on."""
    runs: dict[str, Callable[[JobContext], None]] = {
        HOUSEKEEPING: lambda ctx: log.debug(
            "forgot %d sessions, %d sign-ins, %d failures",
            *forget_ended_sign_ins(store.people, settings, ctx.now()),
        ),
        EXCHANGE_SYNC: lambda ctx: sync_enabled_exchanges(
            store, registry, settings, ctx, on_sync=on_sync
        ),
        RETENTION: lambda ctx: evidence_retention(settings, store, ctx.now()),
        REPORTS: ReportsJob(settings, store, registry),
        NOTICES: lambda ctx: resolve_notices(settings, store, registry, ctx),
        STATEMENTS: lambda ctx: file_statements(settings, store, registry, ctx),
        RETRO_MATCH: lambda ctx: retro_match_job(settings, store, ctx),
        APPEAL_RESTORES: lambda ctx: retry_restores(store, ctx),
    }
    return [
        Job(name=name, every=every, run=runs[name]) for name, every in intervals(settings).items()
    ]
