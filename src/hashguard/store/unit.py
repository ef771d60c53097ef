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
from hashguard.domain.matches import Match
from hashguard.domain.policy import Decision
from hashguard.domain.remote import RemoteResult
from hashguard.domain.scans import FileResult
from hashguard.domain.signals import FileSignals
from hashguard.domain.statements import Statement, StatementOfReasons
from hashguard.store import actions, audit, cases, evidence, scans, statements


class Writes:
    """Writes of scan results, evidence rows, cases, outbox entries and audit events,
    all inside one open transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._audit: list[tuple[str, AuditAction, str | None, dict[str, Any]]] = []

    def add_results(self, run_id: int, results: Sequence[FileResult]) -> None:
        scans.insert_results(self._conn, run_id, results)

    def replace_result(self, run_id: int, result: FileResult) -> None:
        scans.replace_result(self._conn, run_id, result)

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

    def enqueue(self, action: NewAction) -> int:
        return actions.enqueue(self._conn, action)

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
def transaction(engine: Engine) -> Iterator[Writes]:
    """One transaction; everything written through the ``Writes`` commits when the
    block ends without an exception, else nothing does."""
    with engine.begin() as conn:
        writes = Writes(conn)
        yield writes
        writes.append_audit()
