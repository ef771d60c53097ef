"""Scan runs and their per-file results, written in batches as files finish."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, insert, select, update

from hashguard.domain.actions import NewAction
from hashguard.domain.matches import match_from_json, match_to_json
from hashguard.domain.objects import ObjectRef
from hashguard.domain.policy import (
    NO_MATCH,
    Action,
    Decision,
    decision_from_json,
    decision_to_json,
)
from hashguard.domain.remote import RemoteResult, RemoteStatus, remote_from_json, remote_to_json
from hashguard.domain.scans import (
    FileResult,
    Outcome,
    RunStatus,
    ScanOptions,
    ScanRun,
    printable_path,
)
from hashguard.domain.signals import (
    FileSignals,
    pdq_list_from_json,
    pdq_list_to_json,
    signals_from_json,
    signals_to_json,
)
from hashguard.domain.stats import Way
from hashguard.store._util import aware, now, stamp
from hashguard.store.actions import enqueue
from hashguard.store.schema import scan_results, scan_runs
from hashguard.store.stats import Tally, bank_sources, day_of
from hashguard.store.stats_files import tally_file


class UnknownRun(LookupError):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"no scan run #{run_id}")
        self.run_id = run_id


def path_key(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()


#: The columns that hold ``signals_to_json``'s values (``pdq`` holds both PDQ lists).
_SIGNAL_COLUMNS = ("size", "md5", "sha1", "sha256", "image_format", "width", "height")


def _signal_columns(signals: FileSignals | None) -> dict[str, Any]:
    if signals is None:
        return dict.fromkeys(_SIGNAL_COLUMNS) | {"pdq": []}
    shaped = signals_to_json(signals)
    return {name: shaped[name] for name in _SIGNAL_COLUMNS} | {"pdq": pdq_list_to_json(signals)}


def _signals(row: Row[Any]) -> FileSignals | None:
    if row.md5 is None:
        return None
    pdq, pdq_reference = pdq_list_from_json(row.pdq or ())
    return replace(
        signals_from_json({name: getattr(row, name) for name in _SIGNAL_COLUMNS}),
        pdq=pdq,
        pdq_reference=pdq_reference,
    )


def _result_row(run_id: int, result: FileResult, at: datetime | None = None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "path_key": path_key(result.path),
        "path": printable_path(result.path),
        "outcome": str(result.outcome),
        "reason": result.reason,
        **_signal_columns(result.signals),
        "matches": [match_to_json(match) for match in result.matches],
        "remote": [remote_to_json(r) for r in result.remote] or None,
        "scanned_at": at or now(),
        "decision": decision_to_json(result.decision),
        "action": str(result.decision.action),
        **_object_columns(result.object),
    }


def _object_columns(ref: ObjectRef | None) -> dict[str, Any]:
    if ref is None:
        return dict.fromkeys(("object_bucket", "object_key", "object_version", "object_etag"))
    return {
        "object_bucket": ref.bucket,
        "object_key": ref.key,
        "object_version": ref.version_id,
        "object_etag": ref.etag,
    }


def _object(row: Row[Any]) -> ObjectRef | None:
    if row.object_bucket is None:
        return None
    return ObjectRef(
        bucket=row.object_bucket,
        key=row.object_key,
        version_id=row.object_version,
        etag=row.object_etag,
    )


#: Results recorded before policies existed: a match goes to a person.
LEGACY_MATCH = Decision(
    action=Action.REVIEW, rule="review: matched before per-bank policies were recorded"
)


def _decision(row: Row[Any]) -> Decision:
    if row.decision is not None:
        return decision_from_json(row.decision)
    return LEGACY_MATCH if row.outcome == str(Outcome.MATCHED) else NO_MATCH


def _result(row: Row[Any]) -> FileResult:
    return FileResult(
        path=row.path,
        outcome=Outcome(row.outcome),
        reason=row.reason,
        signals=_signals(row),
        matches=tuple(match_from_json(item) for item in row.matches or ()),
        remote=tuple(remote_from_json(item) for item in row.remote or ()),
        decision=_decision(row),
        object=_object(row),
    )


def insert_results(
    conn: Connection,
    run_id: int,
    results: Sequence[FileResult],
    *,
    at: datetime | None = None,
    counting: bool = True,
    tally: Tally | None = None,
) -> None:
    """Record ``results`` of run ``run_id`` (checked ``at``, default now) and count them
    (``store.stats_files``) inside the caller's transaction: into ``tally`` when given
    (the caller writes it just before its commit), else written here. ``counting``
    False only for the benchmark that measures what counting costs."""
    if not results:
        return
    at = at or now()
    conn.execute(insert(scan_results), [_result_row(run_id, r, at) for r in results])
    if counting:
        own = tally is None
        tally = Tally() if tally is None else tally
        sources = bank_sources(conn)
        for result in results:
            tally_file(tally, day_of(at), str(Way.SCAN), result, sources)
        if own:
            tally.flush(conn)


def replace_result(
    conn: Connection, run_id: int, result: FileResult, *, at: datetime | None = None
) -> tuple[FileResult, datetime] | None:
    """Record ``result`` in place of the file's earlier result in run ``run_id`` (a late
    remote answer changed it), or as its first result, inside the caller's transaction.
    The earlier result and when it was checked, if there was one."""
    row = _result_row(run_id, result, at)
    before = conn.execute(
        select(scan_results).where(
            scan_results.c.run_id == run_id, scan_results.c.path_key == row["path_key"]
        )
    ).first()
    previous = (_result(before), stamp(before.scanned_at)) if before is not None else None
    changed = conn.execute(
        update(scan_results)
        .where(scan_results.c.run_id == run_id, scan_results.c.path_key == row["path_key"])
        .values(**{k: v for k, v in row.items() if k not in ("run_id", "path_key")})
    ).rowcount
    if not changed:
        conn.execute(insert(scan_results).values(**row))
    # the file's counts move from its earlier result to this one
    tally, sources = Tally(), bank_sources(conn)
    if previous is not None:
        tally_file(tally, day_of(previous[1]), str(Way.SCAN), previous[0], sources, sign=-1)
    tally_file(tally, day_of(row["scanned_at"]), str(Way.SCAN), result, sources)
    tally.flush(conn)
    return previous


class ScanStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_run(
        self, *, roots: Sequence[str], resume_key: str, options: ScanOptions, pid: int, host: str
    ) -> ScanRun:
        with self._engine.begin() as conn:
            run_id = conn.execute(
                insert(scan_runs)
                .values(
                    roots=list(roots),
                    resume_key=resume_key,
                    options=options.as_json(),
                    status=str(RunStatus.RUNNING),
                    started_at=now(),
                    pid=pid,
                    host=host,
                )
                .returning(scan_runs.c.id)
            ).scalar_one()
        return self.get(run_id)

    def latest_unfinished(self, resume_key: str) -> ScanRun | None:
        with self._engine.connect() as conn:
            run_id = conn.execute(
                select(scan_runs.c.id)
                .where(
                    scan_runs.c.resume_key == resume_key,
                    scan_runs.c.status != str(RunStatus.COMPLETED),
                )
                .order_by(scan_runs.c.id.desc())
                .limit(1)
            ).scalar()
        return None if run_id is None else self.get(run_id)

    def claim(self, run_id: int, *, pid: int, host: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(scan_runs)
                .where(scan_runs.c.id == run_id)
                .values(status=str(RunStatus.RUNNING), pid=pid, host=host, finished_at=None)
            )

    def finish(self, run_id: int, status: RunStatus) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(scan_runs)
                .where(scan_runs.c.id == run_id)
                .values(
                    status=str(status), finished_at=now() if status is RunStatus.COMPLETED else None
                )
            )

    def set_skipped(self, run_id: int, count: int) -> None:
        """The objects this run leaves out as already checked (its planning counts
        them all again on resume, so this sets the figure, never adds to it)."""
        with self._engine.begin() as conn:
            conn.execute(update(scan_runs).where(scan_runs.c.id == run_id).values(skipped=count))

    def done_paths(self, run_id: int) -> set[str]:
        """Digests (``path_key``) of the files that already have their outcome in this run."""
        with self._engine.connect() as conn:
            return set(
                conn.execute(select(scan_results.c.path_key).where(scan_results.c.run_id == run_id))
                .scalars()
                .all()
            )

    def add_results(
        self, run_id: int, results: Sequence[FileResult], actions: Sequence[NewAction] = ()
    ) -> None:
        """Record ``results`` and put ``actions`` (what their decisions lead to) in the
        outbox, in one transaction: a decision is never stored without its actions."""
        if results:
            with self._engine.begin() as conn:
                insert_results(conn, run_id, results)
                for action in actions:
                    enqueue(conn, action)

    def get(self, run_id: int) -> ScanRun:
        with self._engine.connect() as conn:
            row = conn.execute(select(scan_runs).where(scan_runs.c.id == run_id)).first()
            if row is None:
                raise UnknownRun(run_id)
            counts = {
                Outcome(outcome): count
                for outcome, count in conn.execute(
                    select(scan_results.c.outcome, func.count())
                    .where(scan_results.c.run_id == run_id)
                    .group_by(scan_results.c.outcome)
                )
            }
            actions = dict.fromkeys(Action, 0)
            shadow_actions = dict.fromkeys(Action, 0)
            # Only matched files can have a decision other than ignore (or a shadow one).
            for decision in conn.execute(
                select(scan_results.c.decision).where(
                    scan_results.c.run_id == run_id,
                    scan_results.c.outcome == str(Outcome.MATCHED),
                )
            ).scalars():
                decided = decision_from_json(decision) if decision is not None else LEGACY_MATCH
                actions[decided.action] += 1
                shadow_actions[decided.shadow_action] += 1
        unmatched = sum(n for o, n in counts.items() if o != Outcome.MATCHED)
        actions[Action.IGNORE] += unmatched
        shadow_actions[Action.IGNORE] += unmatched
        started = aware(row.started_at)
        assert started is not None
        return ScanRun(
            id=row.id,
            roots=tuple(row.roots),
            options=ScanOptions.from_json(row.options),
            status=RunStatus(row.status),
            started_at=started,
            finished_at=aware(row.finished_at),
            counts={outcome: counts.get(outcome, 0) for outcome in Outcome},
            pid=row.pid,
            host=row.host,
            actions=actions,
            shadow_actions=shadow_actions,
            skipped=int(row.skipped or 0),
        )

    def list_runs(self, limit: int = 50) -> list[ScanRun]:
        with self._engine.connect() as conn:
            ids = (
                conn.execute(select(scan_runs.c.id).order_by(scan_runs.c.id.desc()).limit(limit))
                .scalars()
                .all()
            )
        return [self.get(run_id) for run_id in ids]

    def recent_remote(self, newest: int = 5000) -> list[tuple[datetime, tuple[RemoteResult, ...]]]:
        """The remote answers of the ``newest`` recorded results that have any (by
        record, newest first), each with when it was recorded: what ``hashguard doctor``
        and ``plugins list`` read a service's last answer and recent silence from."""
        query = (
            select(scan_results.c.scanned_at, scan_results.c.remote)
            .where(scan_results.c.remote.is_not(None))
            .order_by(scan_results.c.id.desc())
            .limit(newest)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        found = []
        for row in rows:
            at = aware(row.scanned_at)
            assert at is not None  # the column is NOT NULL
            found.append((at, tuple(remote_from_json(r) for r in row.remote or ())))
        return found

    def awaiting(self, sha256: str, service: str, task: str) -> list[tuple[int, FileResult]]:
        """The recorded results (with their run) of the content ``sha256`` whose answer
        from ``service`` is still the one Hive's task ``task`` will give by callback
        (``not_answered`` with that ``tracking_id``)."""
        query = select(scan_results).where(
            scan_results.c.sha256 == sha256, scan_results.c.remote.is_not(None)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(scan_results.c.id)).all()
        found = []
        for row in rows:
            result = _result(row)
            if any(
                r.service == service
                and r.status is RemoteStatus.NOT_ANSWERED
                and r.tracking_id == task
                for r in result.remote
            ):
                found.append((int(row.run_id), result))
        return found

    def results(self, run_id: int, *, outcome: Outcome | None = None) -> Iterator[FileResult]:
        query = select(scan_results).where(scan_results.c.run_id == run_id)
        if outcome is not None:
            query = query.where(scan_results.c.outcome == str(outcome))
        query = query.order_by(scan_results.c.id).execution_options(yield_per=5000)
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                yield _result(row)
