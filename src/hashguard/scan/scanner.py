"""The local scanner: resumable runs that give every file under the roots exactly one outcome."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any, Protocol

from hashguard.domain.actions import NewAction
from hashguard.domain.banks import Bank
from hashguard.domain.matches import Match
from hashguard.domain.policy import Action, BankPolicy, Decision
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.scans import FileResult, Outcome, RunStatus, ScanOptions, ScanRun
from hashguard.domain.signals import PDQ_MIN_QUALITY, FileSignals
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOutput, open_input
from hashguard.policy import decide
from hashguard.remote.service import RemoteMatching
from hashguard.safefs import OutsideRoots
from hashguard.scan.walk import WalkItem, walk
from hashguard.store.scans import ScanStore, path_key

#: Files per worker task: enough to amortise the inter-process traffic on small images.
BATCH = 8


class SignalMatcher(Protocol):
    """What the scanner needs of a matcher (a ``Matcher`` or a server's ``MatcherService``)."""

    def match(self, signals: FileSignals) -> tuple[Match, ...]: ...

    @property
    def banks(self) -> tuple[Bank, ...]:
        """The enabled banks, whose policies decide what a match leads to."""
        ...


def policies_of(banks: Sequence[Bank]) -> dict[str, BankPolicy]:
    """The policy of each bank, by name, as ``policy.decide`` takes them."""
    return {bank.name: bank.policy for bank in banks}


class ScanAlreadyRunning(RuntimeError):
    pass


def resume_key(roots: Sequence[str], options: ScanOptions) -> str:
    """Runs over the same roots with the same options are one run, resumable."""
    canonical = json.dumps({"roots": sorted(roots), **options.as_json()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class PreparedRun:
    run: ScanRun
    resumed: bool


def _alive(run: ScanRun, host: str) -> bool:
    if run.pid is None or run.host != host or run.pid == os.getpid():
        return False
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_run(
    store: ScanStore, roots: Sequence[str], options: ScanOptions, *, rescan: bool = False
) -> PreparedRun:
    """Resume the unfinished run over these roots, or start a new one.

    ``rescan`` always starts afresh. A run whose process is still alive on this host
    is not taken over.
    """
    absolute = list(dict.fromkeys(os.path.abspath(root) for root in roots))
    key = resume_key(absolute, options)
    host = socket.gethostname()
    if not rescan:
        previous = store.latest_unfinished(key)
        if previous is not None:
            if _alive(previous, host):
                raise ScanAlreadyRunning(
                    f"scan #{previous.id} over these paths is running (pid {previous.pid})"
                )
            store.claim(previous.id, pid=os.getpid(), host=host)
            return PreparedRun(run=store.get(previous.id), resumed=True)
    run = store.create_run(
        roots=absolute, resume_key=key, options=options, pid=os.getpid(), host=host
    )
    return PreparedRun(run=run, resumed=False)


def classify(
    path: str,
    output: HashOutput,
    matches: tuple[Match, ...],
    remote: tuple[RemoteResult, ...] = (),
    policies: Mapping[str, BankPolicy] | None = None,
) -> FileResult:
    """The one outcome of a file: a match (local or remote) wins, then the hashing
    problem, then a remote matcher that did not answer, then no_match. The policy's
    decision (``policies`` by bank name; default policies when not given) goes with it:
    the outcome says what matched, the decision what is to be done about it."""
    if output.signals is None:
        return FileResult(
            path=path,
            outcome=Outcome.ERROR,
            reason=output.reason,
            decision=Decision(
                action=Action.IGNORE, rule="ignore: the file could not be read, nothing matched"
            ),
        )
    silent = [r for r in remote if r.status is RemoteStatus.NOT_ANSWERED]
    if any(match.effective for match in matches) or any(
        r.status is RemoteStatus.MATCHED for r in remote
    ):
        outcome, reason = Outcome.MATCHED, output.reason
    elif output.problem is not None:
        outcome, reason = output.problem, output.reason
    elif silent:
        outcome = Outcome.NOT_ANSWERED
        reason = "; ".join(f"{r.service}: {r.reason}" for r in silent)
    else:
        outcome, reason = Outcome.NO_MATCH, _no_match_note(output, matches)
    return FileResult(
        path=path,
        outcome=outcome,
        reason=reason,
        signals=output.signals,
        matches=matches,
        remote=remote,
        decision=decide(matches, remote, policies or {}),
    )


def _no_match_note(output: HashOutput, matches: tuple[Match, ...]) -> str | None:
    suppressed = sorted({m.suppressed_by for m in matches if m.suppressed_by})
    if suppressed:
        return "matches suppressed by allow bank " + ", ".join(suppressed)
    assert output.signals is not None
    low = [pdq.quality for pdq in output.signals.pdq if pdq.low_quality]
    if low and len(low) == len(output.signals.pdq):
        return (
            f"PDQ quality {min(low)} is below {PDQ_MIN_QUALITY}: "
            "checked against exact-hash lists only"
        )
    return None


class _Recorder:
    """Collects outcomes and commits them in batches: every ``rows`` results or ``seconds``."""

    def __init__(
        self,
        store: ScanStore,
        run_id: int,
        on_result: Callable[[FileResult], None],
        *,
        seconds: float,
        rows: int,
    ) -> None:
        self._store, self._run_id, self._on_result = store, run_id, on_result
        self._seconds, self._rows = seconds, rows
        self._buffer: list[FileResult] = []
        self._actions: list[NewAction] = []
        self._last = time.monotonic()

    def add(self, result: FileResult, actions: Sequence[NewAction] = ()) -> None:
        self._buffer.append(result)
        self._actions.extend(actions)
        self._on_result(result)
        if len(self._buffer) >= self._rows or time.monotonic() - self._last >= self._seconds:
            self.flush()

    def flush(self) -> None:
        self._store.add_results(self._run_id, self._buffer, self._actions)
        self._buffer.clear()
        self._actions.clear()
        self._last = time.monotonic()


class Scanner:
    """Runs a prepared scan: walks, hashes in the pool, matches, writes results in batches.

    Results are committed at least every ``flush_seconds``; a run killed at any moment
    loses at most the uncommitted batch, whose files are hashed again on resume. The
    unique (run, path) key means no file is ever recorded twice. Files go to the
    workers ``batch`` at a time, and completed hashes come back through a queue.
    With ``confine`` (real folder paths), nothing outside those folders is read. With
    ``remote``, every hashed file is also put to the remote matchers, several files at
    a time, each within the remote time budget. ``on_decided`` sees every result before
    it is recorded (evidence is kept and cases are opened for what the policy acts on);
    ``plan_actions(result)`` gives the actions (webhooks, quarantine) stored in
    the outbox in the same transaction as the result.
    """

    def __init__(
        self,
        *,
        store: ScanStore,
        matcher: SignalMatcher,
        pool: HashingPool,
        flush_seconds: float = 0.5,
        flush_rows: int = 500,
        batch: int = BATCH,
        confine: Sequence[str] | None = None,
        remote: RemoteMatching | None = None,
        on_decided: Callable[[FileResult], None] | None = None,
        plan_actions: Callable[[FileResult], list[NewAction]] | None = None,
    ) -> None:
        self._store = store
        self._on_decided = on_decided
        self._plan_actions = plan_actions
        self._confine = confine
        self._remote = remote
        self._matcher = matcher
        self._pool = pool
        self._flush_seconds = flush_seconds
        self._flush_rows = flush_rows
        self._batch = batch
        # (path, hashing future) or (path, future of the file's final result)
        self._finished: SimpleQueue[tuple[str, Future[Any]]] = SimpleQueue()

    def run(
        self,
        run: ScanRun,
        *,
        on_planned: Callable[[int, int], None] = lambda total, done: None,
        on_result: Callable[[FileResult], None] = lambda result: None,
    ) -> ScanRun:
        """Scan every file of ``run`` that has no outcome yet; returns the updated run.

        ``on_planned(total, already_done)`` is called once the walk is complete;
        ``on_result`` for each file as its outcome is recorded. On KeyboardInterrupt
        the finished results are saved, the run is marked interrupted, and the
        interrupt propagates.
        """
        items = self._unfinished(run)
        on_planned(run.total + len(items), run.total)
        recorder = _Recorder(
            self._store, run.id, on_result, seconds=self._flush_seconds, rows=self._flush_rows
        )
        try:
            with ThreadPoolExecutor(REMOTE_CALLS, thread_name_prefix="remote-scan") as calls:
                self._hash_all(items, recorder, calls)
        except BaseException:
            recorder.flush()
            self._store.finish(run.id, RunStatus.INTERRUPTED)
            raise
        recorder.flush()
        self._store.finish(run.id, RunStatus.COMPLETED)
        return self._store.get(run.id)

    def _unfinished(self, run: ScanRun) -> list[WalkItem]:
        done = self._store.done_paths(run.id)
        items = []
        for item in walk(list(run.roots), confine=self._confine):
            key = path_key(item.path)
            if key not in done:
                done.add(key)
                items.append(item)
        return items

    def _hash_all(
        self, items: list[WalkItem], recorder: _Recorder, remote_calls: ThreadPoolExecutor
    ) -> None:
        window = self._pool.workers * self._batch * 3
        in_flight = 0
        pending = iter(items)
        exhausted = False
        while True:
            while not exhausted and in_flight < window:
                batch, exhausted = self._next_batch(pending, recorder)
                if batch:
                    self._submit(batch)
                    in_flight += len(batch)
            if not in_flight:
                return
            try:
                path, future = self._finished.get(timeout=self._flush_seconds)
            except Empty:
                recorder.flush()  # nothing finished lately: commit what we have
                continue
            result = future.result()
            if isinstance(result, HashOutput):
                matches = self._matcher.match(result.signals) if result.signals else ()
                if self._remote is not None and result.signals is not None:
                    self._consult(remote_calls, path, result, matches)
                    continue  # comes back through the queue as the file's result
                result = classify(path, result, matches, policies=self._policies())
            in_flight -= 1
            if self._on_decided is not None:
                self._on_decided(result)
            planned = self._plan_actions(result) if self._plan_actions else []
            recorder.add(result, planned)

    def _consult(
        self, calls: ThreadPoolExecutor, path: str, output: HashOutput, matches: tuple[Match, ...]
    ) -> None:
        remote, signals = self._remote, output.signals
        assert remote is not None
        assert signals is not None

        def ask() -> FileResult:
            data = _media(path, signals, self._confine) if remote.wants_media else b""
            answers = remote.match(data, signals)
            return classify(path, output, matches, answers, policies=self._policies())

        calls.submit(ask).add_done_callback(partial(self._done, path))

    def _policies(self) -> dict[str, BankPolicy]:
        return policies_of(self._matcher.banks)

    def _next_batch(
        self, pending: Iterator[WalkItem], recorder: _Recorder
    ) -> tuple[list[str], bool]:
        """Up to ``batch`` paths to hash (recording what the walk settled on the way),
        and whether the walk is exhausted."""
        batch: list[str] = []
        for item in pending:
            if item.problem is not None:
                recorder.add(FileResult(path=item.path, outcome=item.problem, reason=item.reason))
                continue
            batch.append(item.path)
            if len(batch) == self._batch:
                return batch, False
        return batch, True

    def _submit(self, paths: list[str]) -> None:
        for path, future in zip(paths, self._pool.submit_batch(paths), strict=True):
            future.add_done_callback(partial(self._done, path))

    def _done(self, path: str, future: Future[Any]) -> None:
        self._finished.put((path, future))


#: files put to the remote matchers at once (each call waits on the network)
REMOTE_CALLS = 16
#: files larger than this are not sent to remote matchers (PhotoDNA takes 4 MB at most)
REMOTE_MEDIA_LIMIT = 32 * 1024 * 1024


def _media(path: str, signals: FileSignals, confine: Sequence[str] | None) -> bytes:
    """The file's bytes for a remote matcher that may send media: only the bytes that
    were hashed, opened as the kernel opens them (none past the limit, or if the file
    changed; the matcher then answers not_answered for want of them)."""
    if signals.size > REMOTE_MEDIA_LIMIT:
        return b""
    try:
        with os.fdopen(open_input(path, confine), "rb") as handle:
            data = handle.read(REMOTE_MEDIA_LIMIT + 1)
    except (OSError, OutsideRoots):
        return b""
    return data if hashlib.sha256(data).hexdigest() == signals.sha256 else b""
