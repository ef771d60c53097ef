"""The unit of work: several stores' writes in one transaction, committed together or not at all.

``Store.transaction()`` hands out a ``Writes`` bound to one connection. Audit events
are queued and appended when the writer asks (``append_audit``) or, at the latest,
just before the commit: the audit log's lock is then always the last one a
transaction takes, so a long transaction (a scan batch) never holds it while it waits
for a case row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from hashguard.domain.actions import NewAction
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import Case, CaseEventKind, CaseSource, ContentRef
from hashguard.domain.evidence import EvidenceItem
from hashguard.domain.kept import NewKept
from hashguard.domain.matches import Match
from hashguard.domain.policy import Decision
from hashguard.domain.remote import RemoteResult
from hashguard.domain.scans import FileResult
from hashguard.domain.signals import FileSignals
from hashguard.domain.statements import Statement, StatementOfReasons
from hashguard.domain.stats import Metric, Timing
from hashguard.store import actions, audit, cases, evidence, kept, scans, statements, stats
from hashguard.store.stats import Tally
from hashguard.store.stats_files import tally_file


class Writes:
    """Writes of scan results, evidence rows, cases, outbox entries and audit events,
    all inside one open transaction."""

    def __init__(self, conn: Connection, *, counting: bool = True) -> None:
        self._conn = conn
        self._audit: list[tuple[str, AuditAction, str | None, dict[str, Any]]] = []
        self._counting = counting
        self._tally = Tally()
        self._sources: dict[str, str | None] | None = None

    def add_results(
        self, run_id: int, results: Sequence[FileResult], *, at: datetime | None = None
    ) -> None:
        """Record a run's results, counted with them (``store.stats_files``)."""
        scans.insert_results(
            self._conn, run_id, results, at=at, counting=self._counting, tally=self._tally
        )

    def replace_result(
        self, run_id: int, result: FileResult, *, at: datetime | None = None
    ) -> None:
        scans.replace_result(self._conn, run_id, result, at=at)

    def count_file(self, way: str, result: FileResult, *, at: datetime) -> None:
        """Count a file checked that no scan run records (an upload, a notice's
        content): counted, never kept. Written with the transaction's audit events."""
        if not self._counting:
            return
        if self._sources is None:
            self._sources = stats.bank_sources(self._conn)
        tally_file(self._tally, stats.day_of(at), way, result, self._sources)

    def time_taken(self, timing: Timing, *, at: datetime, seconds: float) -> None:
        if self._counting:
            self._tally.time(stats.day_of(at), timing, seconds)

    def count(self, metric: Metric, *, at: datetime, n: int = 1, **labels: str) -> None:
        """Count an event recorded in this transaction that no audit event counts."""
        self._tally.count(stats.day_of(at), metric, n, **labels)

    def keep_signals(self, items: Sequence[NewKept], *, at: datetime, seq: int) -> None:
        """Keep the hashes of checked items (``keep_signals``), checked at bank change
        ``seq``."""
        kept.insert_kept(self._conn, items, at=at, seq=seq)

    def mark_checked(self, kept_ids: Sequence[int], seq: int) -> None:
        """Kept signals matched again by the retro-matcher, against the banks at ``seq``."""
        kept.mark_checked(self._conn, kept_ids, seq)

    def keep_evidence(self, item: EvidenceItem, *, data_key: bytes, context: bytes) -> None:
        evidence.insert_item(self._conn, item, data_key=data_key, context=context)

    def open_case(
        self,
        *,
        content_key: str,
        source: CaseSource,
        signals: FileSignals | None,
        matches: Sequence[Match],
        remote: Sequence[RemoteResult],
        decision: Decision,
        actor: str,
        content: ContentRef | None = None,
        evidence_id: str | None = None,
    ) -> tuple[Case, CaseEventKind | None]:
        return cases.open_or_update(
            self._conn,
            content_key=content_key,
            source=source,
            signals=signals,
            matches=matches,
            remote=remote,
            decision=decision,
            actor=actor,
            content=content,
            evidence_id=evidence_id,
        )

    def enqueue(self, action: NewAction, *, at: datetime | None = None) -> int:
        """Queue ``action`` in this transaction, due ``at`` (the caller's clock; default
        now)."""
        return actions.enqueue(self._conn, action, at=at)

    def add_statement(
        self, reasons: StatementOfReasons, text: str, *, at: datetime
    ) -> tuple[Statement, bool]:
        """A statement of reasons (a second with the same puid returns the first)."""
        return statements.insert_statement(self._conn, reasons, text, at=at)

    def statement_settings(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        return statements.read_settings(self._conn, name)

    def audit(
        self, actor: str, action: AuditAction, subject: str | None, details: Mapping[str, Any]
    ) -> None:
        """Queue an audit event; it is appended (in queue order) by ``append_audit`` or
        before the commit. Malformed events raise at append time, rolling back all."""
        self._audit.append((actor, action, subject, dict(details)))

    def append_audit(self) -> None:
        # the counts as late as possible (on PostgreSQL a busy cell's row lock is held
        # from here to the commit) and before the audit log's lock, which stays the
        # last one taken (the cells written here are never written under that lock)
        if self._tally:
            self._tally.flush(self._conn)
        queued, self._audit = self._audit, []
        for actor, action, subject, details in queued:
            audit.append_event(self._conn, actor, action, subject, details)


class OneConnection:
    """Stands in for the engine of stores that must all write through one open
    connection (``Store.atomic``): ``begin`` and ``connect`` hand out that connection
    without beginning or ending anything, so every write joins the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        yield self._conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        yield self._conn


@contextmanager
def transaction(engine: Engine, *, counting: bool = True) -> Iterator[Writes]:
    """One transaction; everything written through the ``Writes`` commits when the
    block ends without an exception, else nothing does. ``counting`` False leaves the
    files checked uncounted (only the benchmark that measures counting's cost)."""
    with engine.begin() as conn:
        writes = Writes(conn, counting=counting)
        yield writes
        writes.append_audit()
