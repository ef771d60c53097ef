"""The report state machine: draft → submitted → files uploaded → file details sent →
finished, or retracted / failed; every step resumable after a crash at any point.

Each step is recorded (with its sealed request and response) in one transaction after
the channel answered. Before a remote call the report's ``intent`` is recorded, so a
process killed between the call and the record is recognised when the report resumes:

- ``submit``: the channel may hold an unfinished report we never heard of. It is never
  finished (only a report whose id we recorded is), and NCMEC cancels unfinished
  reports on a timeout; a new one is opened. So a case never gets two *finished*
  reports.
- ``upload:<n>``: the channel may hold the file twice. The report is retracted and
  opened again from the draft, so the finished report holds every file once.
- ``fileinfo``, ``finish``, ``retract``: sent again (a second ``finish`` answers
  "already finished", a second ``retract`` "already retracted": both count as done).

A retryable answer schedules the same step after a backoff (doubling, capped) until
``give_up_after`` since the draft; then, or on a permanent refusal, the report is
``failed``: the dead letter, listed by ``hashguard reports list --state failed``. An
answer saying the channel no longer knows the report (it timed out) opens a new one.
``checkpoint(step)`` is called after each call's answer and after each recorded step:
the seam fault-injection tests use to stop the process there.

A person sends a ``failed`` report again with ``retry`` (``hashguard reports retry``):
the report is opened again under the same row (its steps and sealed documents kept)
and driven as ``run`` does; see ``Runner.retry`` for what happens at NCMEC first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hashguard.domain.actions import WebhookEndpoint
from hashguard.domain.audit import AuditAction
from hashguard.domain.backoff import Backoff
from hashguard.domain.reports import FileState, Report, ReportState, SinkAnswer, SinkOutcome
from hashguard.reports.base import InvalidReport, ReportSink
from hashguard.reports.documents import ReportKeys
from hashguard.reports.preservation import preservation
from hashguard.store.reports import REOPEN_STEP, ReportStore, StaleReport

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: reads an evidence item's bytes (``Vault.get`` as hashguard itself, not a person)
EvidenceReader = Callable[[str], bytes]


#: a report opened again this many times (expired, interrupted, MD5 mismatch) has failed
MAX_RESTARTS = 10


def _no_checkpoint(_step: str) -> None:
    return None


def report_backoff(give_up_after: timedelta = timedelta(days=3)) -> Backoff:
    """Waits between tries of a report; after ``give_up_after`` since the draft, a
    retryable failure is the dead letter."""
    return Backoff(
        first=timedelta(minutes=1), longest=timedelta(hours=6), give_up_after=give_up_after
    )


class ReportBusy(RuntimeError):
    """Another process is working on the report."""


@dataclass(kw_only=True)
class Runner:
    """Drives reports of one sink. ``owner`` names this runner for the lease (unique by
    default: two runners never share a lease)."""

    reports: ReportStore
    sink: ReportSink
    keys: ReportKeys
    evidence: EvidenceReader
    clock: Clock
    actor: str = "system:reports"
    owner: str = field(default_factory=lambda: f"{os.getpid()}:{uuid.uuid4().hex[:12]}")
    backoff: Backoff = field(default_factory=report_backoff)
    lease: timedelta = timedelta(minutes=10)
    checkpoint: Callable[[str], None] = _no_checkpoint
    #: who gets the ``report.filed`` webhook when a report finishes
    endpoints: Sequence[WebhookEndpoint] = ()

    # -- driving --

    def run(self, report_id: int) -> Report:
        """Take the report as far as it goes now: finished, failed, or waiting for its
        next attempt. ``ReportBusy`` when another process holds it."""
        with self._holding(report_id):
            return self._drive(report_id)

    @contextmanager
    def _holding(self, report_id: int) -> Iterator[None]:
        """The report's lease for this runner while the block runs; ``ReportBusy`` when
        another process holds it."""
        now = self.clock()
        if not self.reports.claim(report_id, self.owner, now=now, until=now + self.lease):
            raise ReportBusy(f"report #{report_id} is being worked on by another process")
        try:
            yield
        finally:
            self.reports.release(report_id, self.owner)

    def _drive(self, report_id: int) -> Report:
        report = self.reports.get(report_id)
        while not report.state.final:
            due = report.next_attempt_at
            if due is not None and due > self.clock():
                break
            moved = self._step(report)
            if moved is None:
                break
            report = moved
        return self.reports.get(report_id)

    def _step(self, report: Report) -> Report | None:
        if report.intent is not None:
            return self._recover(report)
        if report.state is ReportState.DRAFT:
            return self._submit(report)
        if report.state is ReportState.SUBMITTED:
            return self._upload(report)
        if report.state is ReportState.UPLOADED:
            return self._describe(report)
        if report.state is ReportState.DESCRIBED:
            return self._finish(report)
        return None

    def _record(self, report: Report, **kwargs: Any) -> Report:
        done = self.reports.advance(report, actor=self.actor, at=self.clock(), **kwargs)
        self.checkpoint(f"recorded:{kwargs['step']}")
        return done

    def _call(
        self, report: Report, intent: str, call: Callable[[], SinkAnswer]
    ) -> tuple[Report, SinkAnswer]:
        marked = self.reports.mark_intent(report, intent, at=self.clock())
        self.checkpoint(f"intent:{intent}")
        answer = call()
        self.checkpoint(f"answered:{intent}")
        return marked, answer

    def resume_due(self) -> list[Report]:
        """Run every report of this sink whose next attempt is due (cron or a worker
        calls this); one another process holds is left to it."""
        done: list[Report] = []
        for report_id in self.reports.due(self.clock()):
            if self.reports.get(report_id).sink != self.sink.name:
                continue
            try:
                done.append(self.run(report_id))
            except ReportBusy:
                continue
        return done

    # -- the steps --

    def _recover(self, report: Report) -> Report:
        intent = report.intent or ""
        if intent.startswith("upload:") and report.remote_id is not None:
            # the file may be attached twice: start again with a report of our own
            answer = self.sink.retract(report.remote_id)
            return self._record(
                report,
                step="recover",
                outcome=str(answer.outcome),
                code=answer.code,
                detail=f"interrupted during {intent}: report {report.remote_id} retracted, "
                "opened again so that every file is sent once",
                sealed=self.keys.sealed(report, response=answer.raw),
                state=ReportState.DRAFT,
                remote_id=None,
                reset_files=True,
                audit=(AuditAction.REPORT_RESTARTED, {"reason": "interrupted upload"}),
            )
        if intent == "retract":
            # a person asked for the retraction: it is completed, never undone
            return self._retract_call(report, actor=self.actor, marked=True)
        detail = f"interrupted during {intent}: sent again"
        if intent == "submit":
            detail += " (an unfinished report NCMEC may hold is never finished; it expires)"
        return self._record(report, step="recover", outcome="ok", detail=detail)

    def _submit(self, report: Report) -> Report | None:
        document = self.keys.draft_document(report)
        report, answer = self._call(report, "submit", lambda: self.sink.submit(document))
        if answer.outcome is SinkOutcome.OK and answer.remote_id:
            return self._record(
                report,
                step="submit",
                outcome="ok",
                code=answer.code,
                detail=f"report id {answer.remote_id}",
                sealed=self.keys.sealed(report, request=document, response=answer.raw),
                state=ReportState.SUBMITTED,
                remote_id=answer.remote_id,
                next_attempt_at=None,
                audit=(AuditAction.REPORT_SUBMITTED, {"remote_id": answer.remote_id}),
            )
        if answer.outcome is SinkOutcome.OK:
            answer = SinkAnswer(
                outcome=SinkOutcome.PERMANENT,
                code=answer.code,
                description="no report id",
                raw=answer.raw,
            )
        return self._failed_call(report, "submit", answer, request=document)

    def _upload(self, report: Report) -> Report | None:
        pending = [f for f in report.files if f.state is FileState.PENDING]
        if not pending:
            return self._record(
                report,
                step="uploaded",
                outcome="ok",
                detail="every file uploaded",
                state=ReportState.UPLOADED,
            )
        file = pending[0]
        remote_id = report.remote_id
        assert remote_id is not None
        data = self.evidence(file.evidence_id)
        if hashlib.md5(data).hexdigest() != file.md5:
            return self._fail(report, "upload", f"evidence of file {file.seq} changed")
        report, answer = self._call(
            report, f"upload:{file.seq}", lambda: self.sink.upload(remote_id, file.name, data)
        )
        if answer.outcome is SinkOutcome.OK:
            if not answer.file_id or answer.md5 != file.md5:
                # NCMEC holds something other than our file: start again, every file once
                return self._restart(
                    report, answer, f"file {file.seq}: NCMEC's MD5 {answer.md5} is not ours"
                )
            return self._record(
                report,
                step="upload",
                outcome="ok",
                code=answer.code,
                detail=f"file {file.seq} uploaded as {answer.file_id}, MD5 checked",
                sealed=self.keys.sealed(report, response=answer.raw),
                file=(file.seq, FileState.UPLOADED, answer.file_id),
                next_attempt_at=None,
                audit=(
                    AuditAction.REPORT_FILE_UPLOADED,
                    {"file": file.seq, "file_id": answer.file_id, "md5_checked": True},
                ),
            )
        return self._failed_call(report, f"upload:{file.seq}", answer)

    def _describe(self, report: Report) -> Report | None:
        waiting = [f for f in report.files if f.state is FileState.UPLOADED]
        if not waiting:
            return self._record(
                report,
                step="described",
                outcome="ok",
                detail="every file described",
                state=ReportState.DESCRIBED,
            )
        file = waiting[0]
        assert report.remote_id is not None
        assert file.file_id is not None
        try:
            document = self.sink.file_document(report.remote_id, file.file_id, file.file)
        except InvalidReport as exc:
            return self._fail(report, "fileinfo", str(exc))
        report, answer = self._call(
            report, f"fileinfo:{file.seq}", lambda: self.sink.send_file_details(document)
        )
        if answer.outcome is SinkOutcome.OK:
            return self._record(
                report,
                step="fileinfo",
                outcome="ok",
                code=answer.code,
                detail=f"file {file.seq} details sent",
                sealed=self.keys.sealed(report, request=document, response=answer.raw),
                file=(file.seq, FileState.DESCRIBED, file.file_id),
                next_attempt_at=None,
                audit=(AuditAction.REPORT_FILE_DESCRIBED, {"file": file.seq}),
            )
        return self._failed_call(report, f"fileinfo:{file.seq}", answer, request=document)

    def _finish(self, report: Report) -> Report | None:
        remote_id = report.remote_id
        assert remote_id is not None
        report, answer = self._call(report, "finish", lambda: self.sink.finish(remote_id))
        if answer.outcome in (SinkOutcome.OK, SinkOutcome.ALREADY_DONE):
            ours = {f.file_id for f in report.files}
            extra = sorted(set(answer.file_ids) - ours)
            detail = f"finished: report {remote_id}, receipt lists {len(answer.file_ids)} file(s)"
            if answer.outcome is SinkOutcome.ALREADY_DONE:
                detail = f"finished: report {remote_id} (NCMEC: already finished)"
            if extra:
                detail += f"; files we did not record: {', '.join(extra)}"
            finished_at = self.clock()
            return self._record(
                report,
                step="finish",
                outcome=str(answer.outcome),
                code=answer.code,
                detail=detail,
                sealed=self.keys.sealed(report, response=answer.raw),
                state=ReportState.FINISHED,
                receipt=answer.file_ids,
                finished_at=finished_at,
                next_attempt_at=None,
                last_error=None,
                audit=(
                    AuditAction.REPORT_FINISHED,
                    {"remote_id": remote_id, "files": len(report.files)},
                ),
                # preservation (REPORT Act) commits with the finish: hold and webhook
                preserve=preservation(report, remote_id, finished_at, self.endpoints),
            )
        return self._failed_call(report, "finish", answer)

    # -- failures --

    def _failed_call(
        self, report: Report, step: str, answer: SinkAnswer, *, request: bytes | None = None
    ) -> Report | None:
        sealed = self.keys.sealed(report, request=request, response=answer.raw)
        error = f"{step}: {answer.outcome} (code {answer.code}): {answer.description}"
        if answer.outcome is SinkOutcome.EXPIRED and report.state is not ReportState.DRAFT:
            return self._restart(report, answer, f"{step}: NCMEC no longer holds the report")
        if answer.outcome is SinkOutcome.RETRYABLE:
            attempts = report.attempts + 1
            now = self.clock()
            # the window runs from the draft, or from a person's retry of the failed report
            since = self.reports.reopened_at(report.id) or report.created_at
            if now - since >= (self.backoff.give_up_after or timedelta.max):
                return self._fail(report, step, f"retries spent; last: {error}", sealed=sealed)
            due = now + self.backoff.delay(attempts)
            self._record(
                report,
                step=step.split(":", maxsplit=1)[0],
                outcome=str(answer.outcome),
                code=answer.code,
                detail=f"{error}; next attempt {due.isoformat()}",
                sealed=sealed,
                attempts=attempts,
                next_attempt_at=due,
                last_error=error,
                audit=(
                    AuditAction.REPORT_RETRY_SCHEDULED,
                    {
                        "step": step,
                        "code": answer.code,
                        "attempts": attempts,
                        "due": due.isoformat(),
                    },
                ),
            )
            return None
        return self._fail(report, step, error, sealed=sealed)

    def _restart(self, report: Report, answer: SinkAnswer, why: str) -> Report:
        if report.attempts >= MAX_RESTARTS:
            return self._fail(report, "restart", f"{why}; {MAX_RESTARTS} attempts spent")
        if report.remote_id is not None and answer.outcome is not SinkOutcome.EXPIRED:
            self.sink.retract(report.remote_id)
        return self._record(
            report,
            step="restart",
            outcome=str(answer.outcome),
            code=answer.code,
            detail=f"{why}: a new report is opened from the draft",
            sealed=self.keys.sealed(report, response=answer.raw),
            state=ReportState.DRAFT,
            remote_id=None,
            reset_files=True,
            attempts=report.attempts + 1,
            audit=(AuditAction.REPORT_RESTARTED, {"reason": why, "code": answer.code}),
        )

    def _fail(self, report: Report, step: str, error: str, *, sealed: Any = None) -> Report:
        return self._record(
            report,
            step=step.split(":", maxsplit=1)[0],
            outcome="failed",
            detail=error,
            sealed=sealed,
            state=ReportState.FAILED,
            last_error=error,
            next_attempt_at=None,
            audit=(AuditAction.REPORT_FAILED, {"step": step, "error": error[:500]}),
        )

    # -- retraction --

    def retract(self, report_id: int, *, actor: str) -> Report:
        """Cancel a report not yet finished. One never sent is retracted here only.
        ``RetractRefused`` says why a report cannot be (finished, or NCMEC refused);
        ``ReportBusy`` when another process is working on it."""
        with self._holding(report_id):
            report = self.reports.get(report_id)
            if report.state.final:
                raise RetractRefused(
                    f"report #{report_id} is {report.state}: it cannot be retracted"
                )
            return self._retract_call(report, actor=actor, marked=False)

    def _retract_call(self, report: Report, *, actor: str, marked: bool) -> Report:
        if report.remote_id is None:
            return self.reports.advance(
                report,
                actor=actor,
                at=self.clock(),
                step="retract",
                outcome="ok",
                detail="retracted before NCMEC gave a report id",
                state=ReportState.RETRACTED,
                next_attempt_at=None,
                audit=(AuditAction.REPORT_RETRACTED, {"remote_id": None}),
            )
        remote_id = report.remote_id
        if marked:
            answer = self.sink.retract(remote_id)
        else:
            report, answer = self._call(report, "retract", lambda: self.sink.retract(remote_id))
        sealed = self.keys.sealed(report, response=answer.raw)
        if answer.outcome in (SinkOutcome.OK, SinkOutcome.ALREADY_DONE, SinkOutcome.EXPIRED):
            return self.reports.advance(
                report,
                actor=actor,
                at=self.clock(),
                step="retract",
                outcome=str(answer.outcome),
                code=answer.code,
                sealed=sealed,
                detail=f"report {remote_id} retracted",
                state=ReportState.RETRACTED,
                next_attempt_at=None,
                audit=(AuditAction.REPORT_RETRACTED, {"remote_id": remote_id}),
            )
        self.reports.advance(
            report,
            actor=actor,
            at=self.clock(),
            step="retract",
            outcome=str(answer.outcome),
            code=answer.code,
            sealed=sealed,
            detail=f"retraction refused: {answer.description}",
            # still asked for: a resumed report retracts before anything else
            intent="retract",
        )
        raise RetractRefused(
            f"NCMEC did not retract report {remote_id}: {answer.outcome} (code {answer.code})"
        )

    # -- a person's retry of a failed report --

    def retry(self, report_id: int, *, actor: str) -> Report:
        """Send a ``failed`` report again for ``actor`` (a person), then take it as far
        as it goes now, as ``run`` does. ``RetryRefused`` names the state of a report
        that is not ``failed``; ``ReportBusy`` when another process holds it.

        The report is opened again under the same row: the failed attempt's steps and
        sealed documents stay, a ``reopen`` step and ``report.reopened`` (the actor,
        the previous error and attempts) are recorded, the attempts start from 0 (a
        person's retry gets the whole budget: ``MAX_RESTARTS`` restarts and the retries'
        window from now) and the last error is cleared. Where it starts again depends on
        what NCMEC holds (``_reopen``)."""
        with self._holding(report_id):
            report = self.reports.get(report_id)
            if report.state is not ReportState.FAILED:
                raise RetryRefused(report)
            self._reopen(report, actor=actor)
            return self._drive(report_id)

    def _reopen(self, report: Report, *, actor: str) -> Report:
        """The failed ``report`` back in the state machine:

        - every file's details at NCMEC (it failed at ``finish``): back to ``described``
          with its report id, so the next call is ``finish`` again. Never retracted:
          NCMEC may have finished it (a finish whose answer was lost), and it answers a
          second finish "already finished", recorded as finished, never a second
          report; one NCMEC dropped answers "expired" and is opened again from the
          draft, as ``_restart`` does.
        - otherwise back to ``draft``, as ``_restart`` does: an unfinished report NCMEC
          holds (it was never finished: a finish is only sent once every file is
          described) is retracted first, so NCMEC keeps no half report (whatever it
          answers, that report is never finished and expires there), every file is
          sent again, and a new report is opened from the sealed draft document.
        """
        remote_id = report.remote_id
        previous = report.last_error or "no error recorded"
        details: dict[str, Any] = {
            "previous_error": previous[:500],
            "previous_attempts": report.attempts,
            "remote_id": remote_id,
        }
        every_file_described = bool(report.files) and all(
            f.state is FileState.DESCRIBED for f in report.files
        )
        common: dict[str, Any] = {
            "actor": actor,
            "at": self.clock(),
            "step": REOPEN_STEP,
            "attempts": 0,
            "next_attempt_at": None,
            "last_error": None,
        }
        if remote_id is not None and every_file_described:
            reopened = self.reports.advance(
                report,
                **common,
                outcome="ok",
                detail=f"sent again by {actor} after: {previous}; NCMEC holds every file "
                f"of report {remote_id}: it is finished again",
                state=ReportState.DESCRIBED,
                audit=(AuditAction.REPORT_REOPENED, {**details, "from": "finish"}),
            )
            self.checkpoint(f"recorded:{REOPEN_STEP}")
            return reopened
        detail = f"sent again by {actor} after: {previous}"
        outcome, code, sealed = "ok", None, None
        if remote_id is not None:
            answer = self.sink.retract(remote_id)
            self.checkpoint("answered:retract")
            outcome, code = str(answer.outcome), answer.code
            sealed = self.keys.sealed(report, response=answer.raw)
            detail += (
                f"; retraction of NCMEC's unfinished report {remote_id}: "
                f"{answer.outcome} (code {answer.code})"
            )
            details["retracted"] = str(answer.outcome)
        reopened = self.reports.advance(
            report,
            **common,
            outcome=outcome,
            code=code,
            sealed=sealed,
            detail=detail + ": a new report is opened from the draft",
            state=ReportState.DRAFT,
            remote_id=None,
            reset_files=True,
            audit=(AuditAction.REPORT_REOPENED, {**details, "from": "draft"}),
        )
        self.checkpoint(f"recorded:{REOPEN_STEP}")
        return reopened


class RetractRefused(RuntimeError):
    pass


class RetryRefused(RuntimeError):
    """Only a ``failed`` report is sent again; ``state`` is the report's."""

    def __init__(self, report: Report) -> None:
        self.state = report.state
        why = {
            ReportState.FINISHED: f"NCMEC has it as report {report.remote_id}",
            ReportState.RETRACTED: "it was retracted",
        }.get(
            report.state,
            f"it is under way: `hashguard reports submit {report.case_id}` sends or resumes it",
        )
        super().__init__(
            f"report #{report.id} is {report.state}: only a failed report is sent again; {why}"
        )


__all__ = ["Backoff", "ReportBusy", "RetractRefused", "RetryRefused", "Runner", "StaleReport"]
