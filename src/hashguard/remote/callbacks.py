"""A remote service's late answer by callback (Thorn Safer's asynchronous endpoint),
joined to the scan items it is for through the one pipeline.

The server checks the callback (``SaferMatcher.check_callback``: signature, deadline,
Hive's answer), then finds the recorded scan results of that content whose answer from
that service is still the pending one of that task, and records each again with the
answer merged in, exactly as a late remote answer is (``Pipeline.classify``,
``prepare(late=True)``, ``commit``): the result replaced, a case opened, evidence kept,
actions queued, the decision audited with ``late_remote_answer``. A callback that no
scan item awaits any more (a replay, a second delivery) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from hashguard.domain.remote import RemoteResult
from hashguard.domain.scans import FileResult
from hashguard.hashing.kernel import HashOutput
from hashguard.remote.safer_callback import CallbackRefused
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import LocalFile
from hashguard.store import Store


@dataclass(frozen=True, kw_only=True, slots=True)
class Joined:
    """The scan items (run id, result) the answer was joined to."""

    items: tuple[tuple[int, FileResult], ...]


def join_answer(store: Store, pipeline: Pipeline, sha256: str, answer: RemoteResult) -> Joined:
    """Record ``answer`` (its ``tracking_id`` Hive's task id) for every scan item of the
    content ``sha256`` that awaits it; ``CallbackRefused`` (409) when none does."""
    assert answer.tracking_id is not None
    waiting = store.scans.awaiting(sha256, answer.service, answer.tracking_id)
    if not waiting:
        raise CallbackRefused(409, "no scan item awaits this answer (already joined, or unknown)")
    joined = []
    for run_id, recorded in waiting:
        remote = tuple(answer if r.service == answer.service else r for r in recorded.remote)
        output = HashOutput(signals=recorded.signals)
        result = pipeline.classify(recorded.path, output, recorded.matches, remote)
        source = LocalFile(path=recorded.path, run_id=run_id)
        pipeline.commit([pipeline.prepare(result, source, late=True)])
        joined.append((run_id, result))
    return Joined(items=tuple(joined))
