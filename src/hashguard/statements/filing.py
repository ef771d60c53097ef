"""Filing statements in the Transparency Database: batches of up to 100, a checkpoint
before each is sent, and every answer recorded so nothing is lost or filed twice.

One batch: ``claim`` (committed: the rows are ``sending`` under a lease), each
statement's document built (one the channel's rules refuse is marked ``failed`` and
left out), the batch sent, the answer recorded. 201: all filed. 422 "existing puid":
those puids are filed (the Database already holds them: a batch resent after a crash)
and the rest sent again. 422 invalid: those statements failed, the rest sent again.
Anything else (down, 5xx, 429, a refused token): the batch goes back to pending with
a backoff and the run stops. A process killed between the send and the record leaves
the batch ``sending``: after the lease it is claimed and sent again, and the
"existing puid" answer files what the Database stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hashguard.domain.backoff import Backoff
from hashguard.domain.statements import MAX_BATCH, Statement
from hashguard.statements.sink import InvalidStatement, StatementSink
from hashguard.store.statements import StatementStore

#: who files statements when no person does
ACTOR = "system:statements"
#: how long a claimed batch is someone's: a killed process's batch is sent again after
LEASE = timedelta(minutes=5)


def _no_checkpoint(_step: str) -> None:
    return None


#: the wait before a failed batch is tried again
BATCH_BACKOFF = Backoff(first=timedelta(minutes=1), longest=timedelta(hours=1))


@dataclass(kw_only=True, slots=True)
class FilingReport:
    filed: int = 0
    #: of ``filed``: puids the Database already held (a resent batch)
    existing: int = 0
    failed: int = 0
    batches: int = 0
    #: set when a batch could not be sent now (it waits for its retry)
    error: str | None = None


@dataclass(kw_only=True)
class Filer:
    """Files due statements through ``sink``. ``checkpoint(step)`` is called after a
    batch is claimed (``claimed``) and after it was sent, before its answer is
    recorded (``sent``): the seam the crash tests stop the process at."""

    statements: StatementStore
    sink: StatementSink
    clock: Callable[[], datetime]
    actor: str = ACTOR
    batch_size: int = MAX_BATCH
    lease: timedelta = LEASE
    backoff: Backoff = BATCH_BACKOFF
    checkpoint: Callable[[str], None] = _no_checkpoint

    def run(self, *, max_batches: int | None = None) -> FilingReport:
        """File due statements until none is due, a batch fails, or ``max_batches``."""
        report = FilingReport()
        size = max(1, min(self.batch_size, self.sink.max_batch))
        while max_batches is None or report.batches < max_batches:
            now = self.clock()
            batch, rows = self.statements.claim(now=now, lease_until=now + self.lease, limit=size)
            if not rows:
                break
            report.batches += 1
            self.checkpoint("claimed")
            if not self._file(batch, rows, report):
                break
        return report

    def _file(self, batch: str, rows: Sequence[Statement], report: FilingReport) -> bool:
        documents: dict[str, dict[str, Any]] = {}
        refused: dict[str, str] = {}
        for row in rows:
            try:
                documents[row.puid] = self.sink.document(row.reasons)
            except InvalidStatement as exc:
                refused[row.puid] = f"invalid: {exc}"
        self._refuse(batch, refused, report)
        left = [row.puid for row in rows if row.puid in documents]
        while left:
            answer = self.sink.submit([documents[p] for p in left])
            self.checkpoint("sent")
            now = self.clock()
            if answer.stored:
                receipts: dict[str, str | None] = {p: answer.created.get(p) for p in left}
                report.filed += self.statements.filed(batch, receipts, actor=self.actor, at=now)
                return True
            known = [p for p in answer.existing if p in left]
            invalid = {left[i]: why for i, why in answer.invalid.items() if 0 <= i < len(left)}
            if known:
                done = self.statements.filed(batch, dict.fromkeys(known), actor=self.actor, at=now)
                report.filed += done
                report.existing += done
                left = [p for p in left if p not in known]
                continue
            if invalid:
                self._refuse(batch, {p: f"refused: {why}" for p, why in invalid.items()}, report)
                left = [p for p in left if p not in invalid]
                continue
            attempts = max(row.attempts for row in rows)
            report.error = answer.description or f"HTTP {answer.status}"
            self.statements.release(
                batch,
                error=report.error,
                next_attempt_at=now + self.backoff.delay(attempts + 1),
                actor=self.actor,
                at=now,
            )
            return False
        return True

    def _refuse(self, batch: str, errors: Mapping[str, str], report: FilingReport) -> None:
        if errors:
            report.failed += self.statements.refused(
                batch, errors, actor=self.actor, at=self.clock()
            )
