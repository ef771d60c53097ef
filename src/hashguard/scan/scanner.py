"""The local scanner: resumable runs that give every file under the roots exactly one outcome."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from hashguard.domain.matches import Match
from hashguard.domain.scans import FileResult, Outcome, RunStatus, ScanOptions, ScanRun
from hashguard.domain.signals import PDQ_MIN_QUALITY
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOutput
from hashguard.matching.matcher import Matcher
from hashguard.scan.walk import WalkItem, walk
from hashguard.store.scans import ScanStore, path_key


class ScanAlreadyRunning(RuntimeError):
    pass


def resume_key(roots: Sequence[str], options: ScanOptions) -> str:
    """Runs over the same roots with the same options are one run, resumable."""
    canonical = json.dumps(
        {
            "roots": sorted(roots),
            "max_pixels": options.max_pixels,
            "max_frames": options.max_frames,
            "dihedral": options.dihedral,
            "pdq_mode": str(options.pdq_mode),
        },
        sort_keys=True,
    )
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


def classify(path: str, output: HashOutput, matches: tuple[Match, ...]) -> FileResult:
    """The one outcome of a file: a match wins, then the hashing problem, then no_match."""
    if output.signals is None:
        return FileResult(path=path, outcome=Outcome.ERROR, reason=output.reason)
    if any(match.effective for match in matches):
        outcome, reason = Outcome.MATCHED, output.reason
    elif output.problem is not None:
        outcome, reason = output.problem, output.reason
    else:
        outcome, reason = Outcome.NO_MATCH, _no_match_note(output, matches)
    return FileResult(
        path=path, outcome=outcome, reason=reason, signals=output.signals, matches=matches
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


class Scanner:
    """Runs a prepared scan: walks, hashes in the pool, matches, writes results in batches.

    Results are committed at least every ``flush_seconds``; a run killed at any moment
    loses at most the uncommitted batch, whose files are hashed again on resume. The
    unique (run, path) key means no file is ever recorded twice.
    """

    def __init__(
        self,
        *,
        store: ScanStore,
        matcher: Matcher,
        pool: HashingPool,
        flush_seconds: float = 0.5,
        flush_rows: int = 500,
    ) -> None:
        self._store = store
        self._matcher = matcher
        self._pool = pool
        self._flush_seconds = flush_seconds
        self._flush_rows = flush_rows

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
        done = self._store.done_paths(run.id)
        items: list[WalkItem] = []
        for item in walk(list(run.roots)):
            key = path_key(item.path)
            if key not in done:
                done.add(key)
                items.append(item)
        already = run.total
        on_planned(already + len(items), already)

        buffer: list[FileResult] = []
        last_flush = time.monotonic()

        def record(result: FileResult) -> None:
            nonlocal last_flush
            buffer.append(result)
            on_result(result)
            if (
                len(buffer) >= self._flush_rows
                or time.monotonic() - last_flush >= self._flush_seconds
            ):
                self._store.add_results(run.id, buffer)
                buffer.clear()
                last_flush = time.monotonic()

        window = self._pool.workers * 4
        in_flight: dict[Future[HashOutput], str] = {}
        try:
            queue = iter(items)
            exhausted = False
            while True:
                while not exhausted and len(in_flight) < window:
                    upcoming = next(queue, None)
                    if upcoming is None:
                        exhausted = True
                    elif upcoming.problem is not None:
                        record(
                            FileResult(
                                path=upcoming.path, outcome=upcoming.problem, reason=upcoming.reason
                            )
                        )
                    else:
                        in_flight[self._pool.submit(upcoming.path)] = upcoming.path
                if not in_flight:
                    break
                finished, _ = wait(
                    in_flight, timeout=self._flush_seconds, return_when=FIRST_COMPLETED
                )
                for future in finished:
                    path = in_flight.pop(future)
                    output = future.result()
                    matches = self._matcher.match(output.signals) if output.signals else ()
                    record(classify(path, output, matches))
                if not finished and buffer:
                    self._store.add_results(run.id, buffer)
                    buffer.clear()
                    last_flush = time.monotonic()
        except BaseException:
            self._store.add_results(run.id, buffer)
            self._store.finish(run.id, RunStatus.INTERRUPTED)
            raise
        self._store.add_results(run.id, buffer)
        self._store.finish(run.id, RunStatus.COMPLETED)
        return self._store.get(run.id)
