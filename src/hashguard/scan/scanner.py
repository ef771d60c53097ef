"""The local scanner: resumable runs that give every file under the roots exactly one outcome."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any, Protocol

from hashguard.domain.banks import Bank
from hashguard.domain.matches import Match
from hashguard.domain.policy import BankPolicy
from hashguard.domain.scans import FileResult, RunStatus, ScanOptions, ScanRun
from hashguard.domain.signals import FileSignals
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOutput
from hashguard.matching.matcher import Screened
from hashguard.scan.classify import classify, policies_of
from hashguard.scan.confirm import screened
from hashguard.scan.pipeline import Pipeline, Prepared
from hashguard.scan.sources import LocalFile, Source
from hashguard.scan.walk import WalkItem, walk
from hashguard.store.scans import ScanStore, path_key

#: Files per worker task: enough to amortise the inter-process traffic on small images.
BATCH = 8


class SignalMatcher(Protocol):
    """What the scanner needs of a matcher (a ``Matcher`` or a server's ``MatcherService``)."""

    def screen(self, signals: FileSignals) -> Screened: ...

    @property
    def banks(self) -> tuple[Bank, ...]:
        """The enabled banks, whose policies decide what a match leads to."""
        ...


class ScanAlreadyRunning(RuntimeError):
    pass


def resume_key(
    roots: Sequence[str], options: ScanOptions, scope: Mapping[str, Any] | None = None
) -> str:
    """Runs over the same roots with the same options (and ``scope``: what an object
    scan selects) are one run, resumable."""
    shape = {"roots": sorted(roots), **options.as_json(), **({"scope": scope} if scope else {})}
    canonical = json.dumps(shape, sort_keys=True)
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
    store: ScanStore,
    roots: Sequence[str],
    options: ScanOptions,
    *,
    rescan: bool = False,
    scope: Mapping[str, Any] | None = None,
) -> PreparedRun:
    """Resume the unfinished run over these roots, or start a new one.

    ``rescan`` always starts afresh. A run whose process is still alive on this host
    is not taken over. A root with a scheme (``s3://bucket/prefix``) is kept as given.
    """
    absolute = list(
        dict.fromkeys(root if root.startswith("s3://") else os.path.abspath(root) for root in roots)
    )
    key = resume_key(absolute, options, scope)
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


class _Recorder:
    """Collects prepared items and commits them in batches: every ``rows`` items or
    ``seconds``. Through the pipeline each batch is one transaction (an item's result
    with its evidence, case and actions); without one, results alone are recorded."""

    def __init__(
        self,
        store: ScanStore,
        pipeline: Pipeline | None,
        run_id: int,
        on_result: Callable[[FileResult], None],
        *,
        seconds: float,
        rows: int,
    ) -> None:
        self._store, self._pipeline, self._run_id = store, pipeline, run_id
        self._on_result = on_result
        self._seconds, self._rows = seconds, rows
        self._buffer: list[Prepared] = []
        self._last = time.monotonic()
        #: the scan's thread and late remote answers both commit
        self.lock = threading.RLock()

    def add(self, prepared: Prepared) -> None:
        with self.lock:
            self._buffer.append(prepared)
        self._on_result(prepared.result)
        if len(self._buffer) >= self._rows or time.monotonic() - self._last >= self._seconds:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            if self._pipeline is not None:
                self._pipeline.commit(self._buffer)
            else:
                self._store.add_results(self._run_id, [p.result for p in self._buffer])
            self._buffer.clear()
            self._last = time.monotonic()

    def late(self, prepared: Prepared) -> None:
        """A late remote answer's new result, committed after the items before it."""
        assert self._pipeline is not None
        with self.lock:
            self.flush()
            self._pipeline.commit([prepared])


class Scanner:
    """Runs a prepared scan: walks, hashes in the pool, matches, and hands every file to
    the pipeline, committing in batches.

    Results are committed at least every ``flush_seconds``; a run killed at any moment
    loses at most the uncommitted batch, whose files are hashed again on resume. The
    unique (run, path) key means no file is ever recorded twice. Files go to the
    workers ``batch`` at a time, and completed hashes come back through a queue.
    With ``confine`` (real folder paths), nothing outside those folders is read.

    ``pipeline`` takes each hashed file through the remote matchers (several files at
    a time, each within the remote time budget), the policy, evidence, its case and
    its actions, all committed with the file's result; a remote answer that comes late
    replaces the file's result and brings its consequences. Without a pipeline only the
    results are recorded (local matches and the default policies).
    """

    def __init__(
        self,
        *,
        store: ScanStore,
        matcher: SignalMatcher,
        pool: HashingPool,
        pipeline: Pipeline | None = None,
        flush_seconds: float = 0.5,
        flush_rows: int = 500,
        batch: int = BATCH,
        confine: Sequence[str] | None = None,
    ) -> None:
        self._store = store
        if pipeline is not None:  # it matches with this scanner's matcher, in its pool
            pipeline = dataclasses.replace(
                pipeline, matcher=pipeline.matcher or matcher, hashing=pipeline.hashing or pool
            )
        self._pipeline = pipeline
        self._confine = confine
        self._matcher = matcher
        self._pool = pool
        self._flush_seconds = flush_seconds
        self._flush_rows = flush_rows
        self._batch = batch
        # (path, hashing future) or (path, future of the file's final result)
        self._finished: SimpleQueue[tuple[str, Future[Any]]] = SimpleQueue()
        self._run_id = 0
        #: files put to the remote matchers whose first result is not recorded yet, and
        #: the late answers that came for them meanwhile
        self._awaiting: set[str] = set()
        self._early_late: dict[str, FileResult] = {}

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
        self._run_id = run.id
        recorder = _Recorder(
            self._store,
            self._pipeline,
            run.id,
            on_result,
            seconds=self._flush_seconds,
            rows=self._flush_rows,
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

    def _source(self, path: str) -> Source:
        return LocalFile(path=path, run_id=self._run_id, confine=self._confine)

    def _prepare(self, result: FileResult) -> Prepared:
        source = self._source(result.path)
        if self._pipeline is None:
            if source.object is not None:  # the pipeline's prepare does this otherwise
                result = dataclasses.replace(result, object=source.object)
            return Prepared(result=result, source=source)
        return self._pipeline.prepare(result, source)

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
                # a fast hash near an entry is confirmed here with the reference hash (a
                # rare, blocking re-hash of this one file in the pool)
                result, matches = self._match(path, result)
                if self._remote_wanted(result):
                    self._consult(remote_calls, recorder, path, result, matches)
                    continue  # comes back through the queue as the file's result
                result = classify(path, result, matches, policies=self._policies())
            in_flight -= 1
            try:
                recorder.add(self._prepare(result))
            finally:  # even when the run stops here (the result above is saved)
                self._late_since(recorder, path)

    def _match(self, path: str, output: HashOutput) -> tuple[HashOutput, tuple[Match, ...]]:
        if self._pipeline is not None:
            return self._pipeline.match(output, self._source(path))
        return screened(self._matcher, output, pool=self._pool, path=path)  # results only

    def _late_since(self, recorder: _Recorder, path: str) -> None:
        """A late remote answer that came before the file's first result was recorded
        is recorded after it."""
        with recorder.lock:
            self._awaiting.discard(path)
            early = self._early_late.pop(path, None)
        if early is not None and self._pipeline is not None:
            recorder.late(self._pipeline.prepare(early, self._source(path), late=True))

    def _remote_wanted(self, output: HashOutput) -> bool:
        return (
            self._pipeline is not None
            and self._pipeline.remote is not None
            and output.signals is not None
        )

    def _consult(
        self,
        calls: ThreadPoolExecutor,
        recorder: _Recorder,
        path: str,
        output: HashOutput,
        matches: tuple[Match, ...],
    ) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        source = self._source(path)

        def late(result: FileResult) -> None:
            with recorder.lock:
                if path in self._awaiting:  # its first result is not recorded yet
                    self._early_late[path] = result
                    return
            recorder.late(pipeline.prepare(result, source, late=True))

        with recorder.lock:
            self._awaiting.add(path)

        def ask() -> FileResult:
            return pipeline.judge(path, output, matches, source, on_late=late)

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
                recorder.add(
                    self._prepare(
                        FileResult(path=item.path, outcome=item.problem, reason=item.reason)
                    )
                )
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
