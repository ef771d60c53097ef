"""The one pipeline: a hashed item through match → remote → policy → audit → evidence → case →
actions.

``/v1/scan``, ``hashguard scan`` and server-side scan runs all call it: ``match``
(with a fast PDQ hash near an entry confirmed by the reference, ``scan.confirm``),
``judge`` (remote matchers and the policy), ``prepare`` and ``commit``. Each item's
consequences (its scan result row if a run records it, its evidence row, its case
opened or seen again, its outbox actions and their audit events) are written in ONE
transaction (``Store.transaction``): all of them or none. Scan runs commit several
items per transaction for speed (``commit`` takes a batch); an item is still all or
nothing, and a result is never recorded without its case, evidence and actions.

Evidence bytes are sealed and written to the vault's files *before* the transaction
(``prepare``): a crash between the file and the commit leaves an orphan blob file
with no row, which the vault's orphan sweep removes; never a row, case or result
without its evidence. A failed transaction removes its items' files at once.

A remote matcher that answers after the time budget is not lost: the item is
classified again with the late answer and its consequences committed through the
same ``prepare`` / ``commit`` (a scan result is replaced, a case opened, evidence
kept, actions queued), with ``late_remote_answer`` in its ``scan.decision`` event.

``checkpoint(step)`` is called after each step inside the transaction (``evidence``,
``case``, ``outbox``, ``audit``) and after the commit (``commit``): the seam the
fault-injection tests use to stop the process between steps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from hashguard.actions.flood import flood_alerts
from hashguard.actions.outbox import endpoints_of, plan_for_decision
from hashguard.domain.actions import NewAction, WebhookEndpoint
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import Case
from hashguard.domain.kept import KeptPdq, NewKept
from hashguard.domain.matches import Match
from hashguard.domain.policy import BankPolicy
from hashguard.domain.remote import RemoteResult
from hashguard.domain.scans import FileResult, Outcome, printable_path
from hashguard.domain.signals import PdqMode
from hashguard.domain.statements import NotifierOf, StatementKind
from hashguard.domain.stats import Timing, Way
from hashguard.evidence.capture import NotTheMatchedFile, evidence_context
from hashguard.evidence.vault import SealedItem, Vault, kept_details
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOutput
from hashguard.hashing.reference import result_with_reference
from hashguard.remote.service import RemoteMatching
from hashguard.review.cases import open_in
from hashguard.review.intake import audits_decision, decision_details, decision_subject
from hashguard.scan.classify import classify
from hashguard.scan.confirm import Screens, screened
from hashguard.scan.sources import Source
from hashguard.settings import Settings
from hashguard.statements.service import issue_in, notifier_from_store
from hashguard.store import Store
from hashguard.store.unit import Writes

log = logging.getLogger(__name__)

#: the steps ``checkpoint`` names, in the order they run
STEPS = ("evidence", "case", "outbox", "audit", "commit")


def _no_checkpoint(_step: str) -> None:
    return None


class OnceVault:
    """The vault, opened at first use (it needs the master key) and then kept."""

    def __init__(self, open_vault: Callable[[], Vault]) -> None:
        self._open = open_vault
        self._vault: Vault | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Vault:
        with self._lock:
            if self._vault is None:
                self._vault = self._open()
            return self._vault


@dataclass(frozen=True, kw_only=True, slots=True)
class Prepared:
    """An item ready to commit: its result, where it came from, its evidence (sealed,
    file written) and its planned actions."""

    result: FileResult
    source: Source
    evidence: SealedItem | None = None
    actions: tuple[NewAction, ...] = ()
    #: why the evidence could not be kept (the file changed or vanished since hashing)
    not_kept: str | None = None
    #: a late remote answer: the item's scan result replaces the one recorded
    late: bool = False
    #: when the item came in (an upload: its time to decision is measured from here)
    received_at: datetime | None = None
    #: a retro-match hit: the kept signal matched again and what its audit event says
    retro: RetroHit | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RetroHit:
    """A kept signal that matched bank entries added after it was checked."""

    kept_id: int
    seq: int
    details: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class Committed:
    result: FileResult
    case: Case | None = None
    evidence_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """What follows an item's hashes. ``matcher`` matches them (``match``);
    ``policies()`` gives the enabled banks' policies (read only when something
    matched); ``vault`` (``None``: no evidence is kept) opens the evidence vault;
    ``actor`` is who the audit log names."""

    store: Store
    actor: str
    policies: Callable[[], Mapping[str, BankPolicy]]
    matcher: Screens | None = None
    remote: RemoteMatching | None = None
    vault: Callable[[], Vault] | None = None
    jurisdiction: str = "US"
    endpoints: tuple[WebhookEndpoint, ...] = ()
    quarantine_local: bool = False
    #: quarantine objects in object storage the policy acts on (``quarantine_objects``)
    quarantine_objects: bool = False
    #: the isolated workers that compute reference PDQ hashes for what leaves (``None``:
    #: the exits carry only the reference hashes the item already has)
    hashing: HashingPool | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    checkpoint: Callable[[str], None] = field(default=_no_checkpoint)
    #: who sent the notice behind a case (default: the store's notices, if any)
    notifier: NotifierOf | None = None
    #: count the files checked (``domain.stats``); off only in the benchmark that
    #: measures what counting costs
    counting: bool = True
    #: keep every checked item's hashes (never its content) for retro-matching
    keep_signals: bool = False

    @classmethod
    def configured(
        cls,
        settings: Settings,
        store: Store,
        *,
        actor: str,
        matcher: Screens,
        policies: Callable[[], Mapping[str, BankPolicy]],
        remote: RemoteMatching | None = None,
        vault: Callable[[], Vault] | None = None,
        hashing: HashingPool | None = None,
    ) -> Pipeline:
        """The pipeline as the settings configure it: webhook endpoints, quarantine of
        local files, the evidence jurisdiction."""
        return cls(
            store=store,
            actor=actor,
            matcher=matcher,
            policies=policies,
            remote=remote,
            vault=vault,
            jurisdiction=settings.evidence_jurisdiction,
            endpoints=endpoints_of(settings),
            quarantine_local=settings.quarantine_local,
            quarantine_objects=settings.quarantine_objects,
            hashing=hashing,
            keep_signals=settings.keep_signals,
        )

    def acting_as(self, actor: str) -> Pipeline:
        return replace(self, actor=actor)

    def with_hashing(self, pool: HashingPool) -> Pipeline:
        """This pipeline with ``pool`` computing the reference hashes of what leaves."""
        return replace(self, hashing=pool)

    # -- match, remote and policy --------------------------------------------------------

    def match(self, output: HashOutput, source: Source) -> tuple[HashOutput, tuple[Match, ...]]:
        """The item's matches in the local banks; a ``fast`` PDQ hash near an entry is
        confirmed with the reference hash of ``source``'s content (``scan.confirm``), in
        the pipeline's hashing pool. Raises ``PoolStopped`` as the pool does."""
        assert self.matcher is not None, "a pipeline that matches is given a matcher"
        assert self.hashing is not None, "a pipeline that matches is given a hashing pool"
        again = source.rehash()
        return screened(self.matcher, output, pool=self.hashing, data=again.data, path=again.path)

    # -- remote and policy ---------------------------------------------------------------

    def judge(
        self,
        path: str,
        output: HashOutput,
        matches: tuple[Match, ...],
        source: Source,
        *,
        on_late: Callable[[FileResult], None] | None = None,
    ) -> FileResult:
        """The item's outcome and decision: the remote matchers asked (within their
        budget) and the policy applied. A remote answer that comes after the budget
        gives the item's new result to ``on_late`` (default: ``commit_late``)."""
        remote: tuple[RemoteResult, ...] = ()
        if self.remote is not None and output.signals is not None:
            late = _LateAnswers(
                self, path, output, matches, source, on_late or self._late_committer(source)
            )
            remote = self.remote.match(
                source.media(output.signals) if self.remote.wants_media else b"",
                output.signals,
                on_late=late.answered,
            )
            late.start(remote)
        return self.classify(path, output, matches, remote)

    def classify(
        self,
        path: str,
        output: HashOutput,
        matches: tuple[Match, ...],
        remote: tuple[RemoteResult, ...],
    ) -> FileResult:
        thresholds = self.remote.review_thresholds if self.remote is not None else None
        if not matches or output.signals is None:
            return classify(path, output, matches, remote, review_thresholds=thresholds)
        # something matched locally: the policies, and the flood guard's count of the list
        # entries that matched (its own transaction: counting distinct content, a retry
        # of the same item does not count twice)
        seen = self.store.flood.observe(
            matches, output.signals.sha256, now=self.clock(), alerts=flood_alerts(self.endpoints)
        )
        return classify(
            path,
            output,
            matches,
            remote,
            policies=self.policies(),
            paused=seen.paused,
            review_thresholds=thresholds,
        )

    def _late_committer(self, source: Source) -> Callable[[FileResult], None]:
        def commit(result: FileResult) -> None:
            self.commit([self.prepare(result, source, late=True)])

        return commit

    # -- evidence files and planned actions (before the transaction) ---------------------

    def prepare(self, result: FileResult, source: Source, *, late: bool = False) -> Prepared:
        """Seal and write the item's evidence (when the decision keeps it) and plan its
        actions; nothing is recorded yet."""
        if source.object is not None and result.object is None:
            result = replace(result, object=source.object)
        sealed, not_kept = None, None
        if (
            result.outcome is Outcome.MATCHED
            and result.signals is not None
            and (result.decision.keeps_evidence)
        ):
            try:
                data: bytes | None = source.evidence(result.signals.sha256)
            except NotTheMatchedFile as exc:
                data, not_kept = None, str(exc)
                log.warning("evidence of %s not kept: %s", printable_path(result.path), exc)
            # the hashes that leave (evidence, webhooks, allow banks) are reference hashes
            if self.hashing is not None:
                result = result_with_reference(
                    result, limits=self.hashing.options, pool=self.hashing, data=data
                )
            if data is not None and self.vault is not None:
                context = evidence_context(result, **source.context())
                sealed = self.vault().seal(data, context, jurisdiction=self.jurisdiction)
        actions = plan_for_decision(
            result,
            endpoints=self.endpoints,
            quarantine_local=self.quarantine_local and source.quarantine_local,
            key=source.action_key(result),
            scan_run=source.run_id,
            quarantine_object=source.object if self.quarantine_objects else None,
        )
        return Prepared(
            result=result,
            source=source,
            evidence=sealed,
            not_kept=not_kept,
            actions=tuple(actions),
            late=late,
        )

    # -- the transaction -------------------------------------------------------------------

    def commit(self, items: Sequence[Prepared]) -> list[Committed]:
        """Record ``items`` and all their consequences in one transaction."""
        if not items:
            return []
        # with counting on, every item is written: a file checked is counted even when
        # nothing else about it is kept
        if not (self.counting or self.keep_signals) and not any(_writes_anything(p) for p in items):
            return [Committed(result=p.result) for p in items]
        done: list[Committed] = []
        at = self.clock()
        with self.store.transaction(counting=self.counting) as writes:
            try:
                results = [p for p in items if p.source.run_id is not None and not p.late]
                for run_id in {p.source.run_id for p in results}:
                    assert run_id is not None
                    writes.add_results(
                        run_id, [p.result for p in results if p.source.run_id == run_id], at=at
                    )
                for prepared in items:
                    done.append(self._consequences(writes, prepared, at))
                writes.append_audit()
                self.checkpoint("audit")
            except BaseException:
                for prepared in items:
                    if prepared.evidence is not None:
                        prepared.evidence.discard()
                raise
        self.checkpoint("commit")
        return done

    def _consequences(self, writes: Writes, prepared: Prepared, at: datetime) -> Committed:
        result, source = prepared.result, prepared.source
        case_source = source.case_source(result)
        if prepared.late and source.run_id is not None:
            writes.replace_result(source.run_id, result, at=at)
        elif source.run_id is None and not prepared.late:
            # a run's results are counted as they are recorded; others only counted
            writes.count_file(str(case_source.kind), result, at=at)
            if prepared.received_at is not None and str(case_source.kind) == Way.UPLOAD:
                writes.time_taken(
                    Timing.UPLOAD_TO_DECISION,
                    at=at,
                    seconds=(at - prepared.received_at).total_seconds(),
                )
        if prepared.retro is not None:
            writes.mark_checked([prepared.retro.kept_id], prepared.retro.seq)
            writes.audit(
                self.actor,
                AuditAction.RETRO_MATCHED,
                decision_subject(result),
                prepared.retro.details,
            )
        elif self.keep_signals and not prepared.late and result.signals is not None:
            writes.keep_signals([kept_of(result, source)], at=at, seq=bank_seq(self.matcher))
        if audits_decision(result):
            writes.audit(
                self.actor,
                AuditAction.SCAN_DECISION,
                decision_subject(result),
                decision_details(result, case_source, late=prepared.late),
            )
        evidence_id = None
        if prepared.evidence is not None:
            item = prepared.evidence.item
            writes.keep_evidence(
                item, data_key=prepared.evidence.data_key, context=prepared.evidence.context
            )
            writes.audit(self.actor, AuditAction.EVIDENCE_KEPT, item.id, kept_details(item))
            evidence_id = item.id
            self.checkpoint("evidence")
        elif prepared.not_kept is not None and result.signals is not None:
            writes.audit(
                self.actor,
                AuditAction.EVIDENCE_NOT_KEPT,
                f"content:{result.signals.sha256}",
                {"path": printable_path(result.path), "reason": prepared.not_kept},
            )
        opened = open_in(
            writes,
            result,
            case_source,
            actor=self.actor,
            content=source.content(),
            evidence_id=evidence_id,
        )
        if opened is not None:
            if opened[1] is not None and result.decision.acts:
                # a new sighting acted on: its statement of reasons (DSA Art. 17)
                issue_in(
                    writes,
                    opened[0],
                    kind=StatementKind.AUTOMATED,
                    at=self.clock(),
                    actor=self.actor,
                    endpoints=self.endpoints,
                    notifier=self.notifier or notifier_from_store(self.store),
                    source=case_source,
                    key=source.action_key(result),
                )
            self.checkpoint("case")
        for action in prepared.actions:
            writes.enqueue(action, at=self.clock())
        if prepared.actions:
            self.checkpoint("outbox")
        return Committed(result=result, case=opened[0] if opened else None, evidence_id=evidence_id)

    def process(
        self,
        path: str,
        output: HashOutput,
        matches: tuple[Match, ...],
        source: Source,
        *,
        decided: Callable[[FileResult], FileResult] | None = None,
        received_at: datetime | None = None,
    ) -> Committed:
        """One item, start to end: judged, prepared and committed. ``decided`` may
        change the judged result before it is prepared (a notice's content goes to a
        person whether or not it matched: ``notices.resolve``). ``received_at``: when
        the item came in (default: now), for the time from upload to decision."""
        received = received_at or self.clock()
        result = self.judge(path, output, matches, source)
        if decided is not None:
            result = decided(result)
        prepared = replace(self.prepare(result, source), received_at=received)
        (done,) = self.commit([prepared])
        return done


def bank_seq(matcher: object) -> int:
    """The banks' change sequence ``matcher`` matches at (a ``Matcher`` or the server's
    ``MatcherService``); 0 when unknown, so a retro-match checks the item against every
    entry rather than miss one."""
    seq = getattr(matcher, "seq", None)
    if isinstance(seq, int):
        return seq
    state = getattr(matcher, "state", None)
    if callable(state):
        value = getattr(state(), "seq", None)
        if isinstance(value, int):
            return value
    return 0


def kept_of(result: FileResult, source: Source) -> NewKept:
    """The hashes of a checked item to keep, with its identity: only reference-mode PDQ
    hashes (the ones lists carry; a ``fast`` hash without its reference is not kept)
    and a video's vPDQ frames (vPDQ has one mode, the reference's)."""
    signals = result.signals
    assert signals is not None
    pdq = [p for p in signals.pdq if p.mode is PdqMode.REFERENCE] or list(signals.pdq_reference)
    content = source.content()
    case_source = source.case_source(result)
    return NewKept(
        way=str(case_source.kind),
        md5=signals.md5,
        sha1=signals.sha1,
        sha256=signals.sha256,
        size=signals.size,
        pdq=tuple(KeptPdq(value=p.value, quality=p.quality) for p in pdq),
        vpdq=signals.vpdq,
        run_id=source.run_id,
        path=result.path if source.run_id is not None else None,
        object=source.object,
        content_id=content.content_id,
        request_id=source.context().get("request_id"),
    )


def _writes_anything(prepared: Prepared) -> bool:
    result = prepared.result
    return (
        prepared.retro is not None
        or prepared.source.run_id is not None
        or audits_decision(result)
        or prepared.evidence is not None
        or bool(prepared.actions)
        or (result.decision.opens_case and result.signals is not None)
    )


class _LateAnswers:
    """The late answers of one item's remote matchers, merged into its result as they
    come (two late services both count), each merged result handed on."""

    def __init__(
        self,
        pipeline: Pipeline,
        path: str,
        output: HashOutput,
        matches: tuple[Match, ...],
        source: Source,
        on_late: Callable[[FileResult], None],
    ) -> None:
        self._pipeline = pipeline
        self._args: tuple[Any, ...] = (path, output, matches)
        self._on_late = on_late
        self._lock = threading.Lock()
        self._remote: tuple[RemoteResult, ...] | None = None
        self._early: list[RemoteResult] = []

    def start(self, remote: tuple[RemoteResult, ...]) -> None:
        """The answers ``match`` returned (late ones that came meanwhile are merged)."""
        with self._lock:
            self._remote = remote
            early, self._early = self._early, []
        for answer in early:
            self.answered(answer)

    def answered(self, answer: RemoteResult) -> None:
        with self._lock:
            if self._remote is None:  # the late callback beat ``match``'s return
                self._early.append(answer)
                return
            self._remote = tuple(answer if r.service == answer.service else r for r in self._remote)
            path, output, matches = self._args
            result = self._pipeline.classify(path, output, matches, self._remote)
            self._on_late(result)
