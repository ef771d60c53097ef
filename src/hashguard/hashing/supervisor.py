"""Keeping pebble worker pools able to take work: a broken pool is rebuilt at once.

pebble puts a ``ProcessPool`` into a permanent error state when a worker dies while the
pool has no task running (``kill -9`` of an idle worker, the kernel's OOM killer): every
later ``schedule`` raises "Unexpected error within the Pool", and tasks already handed
to it fail with ``BrokenProcessPool``. A supervisor thread notices that within a tenth
of a second, logs it, retires the pool and builds a new one (at once the first time,
then with backoff while new pools keep breaking), and a task that met the broken pool
is run once more on the new one. While no pool can take work, ``ready`` is False.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pebble import ProcessPool

from hashguard.domain.backoff import Backoff

log = logging.getLogger("hashguard.hashing")

#: how often the supervisor looks at its pools (pebble itself looks every 0.1 s)
CHECK_SECONDS = 0.05
#: a pool that breaks again right after a rebuild is rebuilt after 0.5 s, doubling up to 30 s
REBUILD_BACKOFF = Backoff(first=timedelta(seconds=0.5), longest=timedelta(seconds=30))
#: a task that finds no pool able to take work waits this long for a rebuild
WAIT_FOR_REBUILD = 10.0


class PoolBroken(RuntimeError):
    """No worker pool could run the task (broken twice, or stopped)."""


def backoff(failures: int) -> float:
    """Seconds before rebuilding a pool that broke ``failures`` times in a row."""
    if failures <= 1:
        return 0.0
    return REBUILD_BACKOFF.delay(failures - 1).total_seconds()


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolHealth:
    groups: int
    #: groups whose current pool runs and has not broken since it last ran a task
    ready_groups: int
    rebuilds: int
    #: why the last pool broke, if one ever did
    last_problem: str | None

    @property
    def ready(self) -> bool:
        return self.ready_groups > 0


@dataclass(eq=False)
class _Group:
    index: int
    pool: ProcessPool | None
    started: bool = False
    load: int = 0
    #: breaks in a row since a pool of this group last completed a task
    failures: int = 0
    rebuild_at: float = 0.0
    tasks: set[Future[Any]] = field(default_factory=set)


@dataclass(eq=False)
class _Task:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    timeout: float
    outer: Future[Any]
    retries: int
    #: tried again: waits for this group's new pool
    group: _Group | None = None
    waiting_until: float = 0.0


def _settle(outer: Future[Any], done: Future[Any]) -> None:
    with suppress(InvalidStateError):  # already failed by a stop
        if done.cancelled():
            outer.set_exception(PoolBroken("the task was cancelled"))
        elif (exc := done.exception()) is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(done.result())


def _fail(outer: Future[Any], message: str) -> None:
    with suppress(InvalidStateError):
        outer.set_exception(PoolBroken(message))


class PoolSupervisor:
    """Several pebble pools ("groups"); each task goes to the least busy one that runs."""

    def __init__(
        self,
        groups: int,
        make_pool: Callable[[int], ProcessPool],
        *,
        on_rebuild: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_pool = make_pool
        self._on_rebuild = on_rebuild
        self._clock = clock
        self._lock = threading.Lock()
        self._groups = [_Group(index=i, pool=make_pool(i)) for i in range(groups)]
        self._waiting: list[_Task] = []
        self._rebuilds = 0
        self._last_problem: str | None = None
        self._closing = False
        self._wake = threading.Event()
        self._reapers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._watch, name="hashing-pools", daemon=True)
        self._thread.start()

    # -- scheduling --------------------------------------------------------------------

    def schedule(
        self, function: Callable[..., Any], args: tuple[Any, ...], timeout: float
    ) -> Future[Any]:
        """A future for ``function(*args)`` in a worker; never raises. A task that a
        broken pool dropped runs once more on a rebuilt one; after that, or once the
        supervisor is closed, the future fails with ``PoolBroken``."""
        outer: Future[Any] = Future()
        self._attempt(_Task(function, args, timeout, outer, retries=1))
        return outer

    def _attempt(self, task: _Task) -> None:
        with self._lock:
            if self._closing:
                _fail(task.outer, "the worker pool was stopped")
                return
            if task.group is not None:  # tried again: on that group's new pool
                runnable = [task.group] if task.group.pool is not None else []
                waiting_for = [task.group]
            else:
                runnable = [g for g in self._groups if g.pool is not None]
                waiting_for = self._groups
            if not runnable:
                now = self._clock()
                task.waiting_until = task.waiting_until or now + WAIT_FOR_REBUILD
                if min(g.rebuild_at for g in waiting_for) > task.waiting_until:
                    _fail(task.outer, f"no hashing worker can take work: {self._last_problem}")
                    return
                self._waiting.append(task)
                self._wake.set()
                return
            group = min(runnable, key=lambda g: g.load)
            pool = group.pool
            assert pool is not None
            group.load += 1
            group.started = True
        try:
            inner: Future[Any] = pool.schedule(task.function, args=task.args, timeout=task.timeout)
        except RuntimeError as exc:  # pebble: this pool broke meanwhile; the task never ran
            with self._lock:
                group.load -= 1
            self._broken(group, pool, str(exc))
            task.group = group
            self._attempt(task)
            return
        with self._lock:
            group.tasks.add(inner)
        inner.add_done_callback(lambda done: self._finished(group, pool, task, done))

    def _again(self, task: _Task, group: _Group, problem: str) -> None:
        """A task that a broken pool dropped runs once more, on the group's new pool."""
        if task.retries > 0 and not self._closing:
            task.retries -= 1
            task.group = group
            self._attempt(task)
        else:
            _fail(task.outer, f"hashing stopped: {problem}")

    def _finished(self, group: _Group, pool: ProcessPool, task: _Task, done: Future[Any]) -> None:
        with self._lock:
            group.load -= 1
            group.tasks.discard(done)
        exc = None if done.cancelled() else done.exception()
        if isinstance(exc, BrokenProcessPool):
            self._broken(group, pool, repr(exc))
            self._again(task, group, repr(exc))
            return
        if exc is None and not done.cancelled():
            with self._lock:
                if group.pool is pool:
                    group.failures = 0  # this pool works
        _settle(task.outer, done)

    # -- breaking and rebuilding ---------------------------------------------------------

    def _broken(self, group: _Group, pool: ProcessPool, problem: str) -> None:
        """Retire ``pool`` (once) and ask for a rebuild."""
        with self._lock:
            if group.pool is not pool or self._closing:
                return
            group.pool = None
            group.started = False
            group.failures += 1
            group.rebuild_at = self._clock() + backoff(group.failures)
            self._last_problem = problem
            orphans = list(group.tasks)
            group.tasks.clear()
            failures, delay = group.failures, group.rebuild_at - self._clock()
        log.warning(
            "hashing worker pool %d broke (%s); rebuilding it%s",
            group.index,
            problem,
            f" in {delay:.1f} s ({failures} breaks in a row)" if delay > 0 else " now",
        )
        self._retire(pool, orphans)
        self._wake.set()

    def _retire(self, pool: ProcessPool, orphans: list[Future[Any]]) -> None:
        """Stop ``pool`` in the background; a task it never answered counts as dropped."""

        def reap() -> None:
            with suppress(Exception):
                pool.stop()  # type: ignore[no-untyped-call]
                pool.join()
            for inner in orphans:
                with suppress(InvalidStateError):
                    inner.set_exception(BrokenProcessPool("the pool was retired"))

        reaper = threading.Thread(target=reap, name="hashing-pool-reaper", daemon=True)
        with self._lock:
            self._reapers = [r for r in self._reapers if r.is_alive()] + [reaper]
        reaper.start()

    def _watch(self) -> None:
        while True:
            self._wake.wait(CHECK_SECONDS)
            self._wake.clear()
            if self._closing:
                return
            with self._lock:
                groups = list(self._groups)
            for group in groups:
                pool = group.pool
                if pool is not None and group.started and not pool.active:
                    self._broken(group, pool, "a worker died while the pool was idle")
            for group in groups:
                if group.pool is None and self._clock() >= group.rebuild_at:
                    self._rebuild(group)
            self._dispatch_waiting()

    def _rebuild(self, group: _Group) -> None:
        try:
            pool = self._make_pool(group.index)
        except Exception as exc:  # e.g. no memory to start a process
            with self._lock:
                group.failures += 1
                group.rebuild_at = self._clock() + max(
                    REBUILD_BACKOFF.first.total_seconds(), backoff(group.failures)
                )
                self._last_problem = f"rebuilding failed: {exc!r}"
            log.exception("rebuilding hashing worker pool %d failed", group.index)
            return
        with self._lock:
            if self._closing:
                closing = True
            else:
                closing = False
                group.pool, group.started = pool, False
                self._rebuilds += 1
        if closing:
            self._retire(pool, [])
            return
        log.warning("hashing worker pool %d rebuilt", group.index)
        if self._on_rebuild is not None:
            self._on_rebuild(self._last_problem or "broken")
        # a no-op task starts the new workers and proves the pool (resets the failures)
        self._attempt(_Task(os.getpid, (), 5.0, Future(), retries=0, group=group))

    def _dispatch_waiting(self) -> None:
        now = self._clock()
        with self._lock:
            if not self._waiting:
                return
            ready, expired, still = [], [], []
            for task in self._waiting:
                if task.group is not None:
                    runnable = task.group.pool is not None
                else:
                    runnable = any(g.pool is not None for g in self._groups)
                if runnable:
                    ready.append(task)
                elif task.waiting_until <= now:
                    expired.append(task)
                else:
                    still.append(task)
            self._waiting = still
        for task in expired:
            _fail(task.outer, f"no hashing worker can take work: {self._last_problem}")
        for task in ready:
            self._attempt(task)

    # -- state and shutdown --------------------------------------------------------------

    def health(self) -> PoolHealth:
        with self._lock:
            ready = sum(1 for g in self._groups if g.pool is not None and g.failures == 0)
            return PoolHealth(
                groups=len(self._groups),
                ready_groups=ready,
                rebuilds=self._rebuilds,
                last_problem=self._last_problem,
            )

    def close(self, *, wait: bool) -> None:
        """Finish queued work (``wait``) or stop at once; tasks never run fail."""
        with self._lock:
            self._closing = True
            pools = [g.pool for g in self._groups if g.pool is not None]
            waiting, self._waiting = self._waiting, []
            reapers = list(self._reapers)
        self._wake.set()
        self._thread.join()
        for task in waiting:
            _fail(task.outer, "the worker pool was stopped")
        for pool in pools:
            if wait:
                pool.close()  # type: ignore[no-untyped-call]
            else:
                pool.stop()  # type: ignore[no-untyped-call]
        for pool in pools:
            pool.join()
        for reaper in reapers:
            reaper.join(timeout=10)
