"""Worker processes for hashing untrusted files, each under a memory and a wall-time limit.

A decoder that crashes, hangs or runs out of memory costs its one file: the worker is
replaced, the file is exact-hashed again without decoding (hashing bytes cannot hang
or crash), and it gets the outcome ``undecodable`` with the reason. Nothing else in
the batch is affected. pebble's ``ProcessPool`` does the supervision of workers, and
``supervisor.PoolSupervisor`` that of the pools (a broken pool is rebuilt at once).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import resource
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError, TimeoutError
from contextlib import suppress
from types import TracebackType
from typing import Any, Self, TypeVar

from pebble import ProcessExpired, ProcessPool
from pebble.common.types import RemoteTraceback

from hashguard.domain.scans import Outcome
from hashguard.hashing.kernel import (
    HashOptions,
    HashOutput,
    exact_data,
    exact_only,
    hash_data,
    hash_path,
)
from hashguard.hashing.supervisor import PoolHealth, PoolSupervisor


def hash_batch(paths: list[str], options: HashOptions, seconds: float) -> list[HashOutput]:
    """Hash files one after another inside a worker, each under its own wall-time limit.

    The limit is a kernel timer whose signal's default action ends the process, so a
    decoder stuck in C code still stops after ``seconds``; the pool then retries the
    batch file by file (see ``HashingPool.submit_batch``).
    """
    results = []
    for path in paths:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            results.append(hash_path(path, options))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return results


#: Recycle each worker after this many files, bounding allocator fragmentation.
MAX_TASKS_PER_WORKER = 2000
#: Workers are split over at most this many pools, recycled at staggered points.
MAX_GROUPS = 4


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers fork from a clean server process that has already imported the decoders
    and hashed a few images (``warmup``), so replacing a crashed or recycled worker costs
    milliseconds, not a fresh interpreter; and they never inherit the parent's threads,
    as plain fork would."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hashguard.hashing.warmup"])
    return context


def _keep_freed_memory() -> None:
    """Let glibc keep freed heap instead of returning every block over 128 KiB to the OS.

    Otherwise each image's decode and PDQ buffers are mapped afresh and fault in page by
    page, which measured as long as PDQ itself on a 1 MP image. Up to 256 MiB of freed
    heap is kept per worker; blocks over 32 MiB are still mapped and unmapped.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: keep its defaults
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 256 << 20)


def _init_worker(memory_bytes: int, niceness: int) -> None:
    if niceness:
        os.nice(niceness)
    _keep_freed_memory()
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Ctrl-C is the parent's to handle; workers are stopped by the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _resolve(future: Future[HashOutput], result: HashOutput) -> None:
    with suppress(InvalidStateError):  # already failed by a stop
        future.set_result(result)


def _fail(future: Future[HashOutput], error: BaseException) -> None:
    with suppress(InvalidStateError):  # already resolved
        future.set_exception(error)


T = TypeVar("T")


class WorkerFailed(RuntimeError):
    """A task run with ``HashingPool.call`` failed because of its input: the worker
    crashed, ran out of memory or time, or the function raised. The message says which."""


class PoolStopped(RuntimeError):
    """The worker pool itself stopped or broke. No file is to blame, so none gets an
    outcome: a scan stops (and resumes later) instead of recording false errors."""


def _file_failure(exc: BaseException, timeout: float) -> str | None:
    """Why hashing this file failed, when the file is to blame; None for pool failures."""
    if isinstance(exc, TimeoutError):
        return f"decoding took longer than {timeout:g} s"
    if isinstance(exc, ProcessExpired):
        return _death_reason(exc)
    if isinstance(exc, Exception) and isinstance(exc.__cause__, RemoteTraceback):
        return f"hashing failed: {type(exc).__name__}: {exc}"
    return None


def _death_reason(exc: ProcessExpired) -> str:
    code = exc.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the decoder process was killed by {name} (crash or memory limit)"
    return f"the decoder process exited with code {code}"


class HashingPool:
    """A pool of isolated hashing workers; use as a context manager.

    ``submit`` returns a future that always resolves to a ``HashOutput``; it never
    raises for anything a file can cause.
    """

    def __init__(
        self,
        *,
        workers: int,
        options: HashOptions,
        timeout: float,
        memory_mb: int,
        max_tasks: int = MAX_TASKS_PER_WORKER,
        niceness: int = 0,
        on_rebuild: Callable[[str], None] | None = None,
    ) -> None:
        """``niceness`` lowers the workers' CPU priority: a server's event loop must get
        the CPU to admit, refuse and answer requests while its workers are busy.
        ``on_rebuild(reason)`` is called whenever a broken worker pool was rebuilt."""
        self.workers = workers
        self.options = options
        self.timeout = timeout
        # Native libraries must not start thread pools inside a memory-capped worker.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
        self._lock = threading.Lock()
        self._outstanding: set[Future[HashOutput]] = set()
        # Workers recycled at the same moment stall every request at once (measured:
        # 150-400 ms with all slots waiting). So the workers are split over a few pools
        # whose recycling points are staggered, and each task goes to the least busy.
        groups = min(workers, MAX_GROUPS)
        context = _worker_context()

        def make_pool(index: int) -> ProcessPool:
            return ProcessPool(
                max_workers=workers // groups + (index < workers % groups),
                max_tasks=max_tasks + max_tasks * index // groups,
                initializer=_init_worker,
                initargs=(memory_mb * 1024 * 1024, niceness),
                context=context,
            )

        self._pools = PoolSupervisor(groups, make_pool, on_rebuild=on_rebuild)

    def health(self) -> PoolHealth:
        """Whether a worker pool can take work now, and how often one was rebuilt."""
        return self._pools.health()

    @property
    def ready(self) -> bool:
        return self._pools.health().ready

    def _schedule_task(self, function: Any, args: tuple[Any, ...], timeout: float) -> Future[Any]:
        """``function(*args)`` on the least busy pool; fails with ``PoolBroken`` when no
        pool could run it (a pool that broke under it is rebuilt and tried once more)."""
        return self._pools.schedule(function, args, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(wait=exc_type is None)

    def close(self, *, wait: bool = True) -> None:
        """Finish the queued work (``wait``) or stop at once, failing what is left with
        ``PoolStopped`` (pebble drops the futures of tasks it never ran)."""
        self._pools.close(wait=wait)
        with self._lock:
            left = list(self._outstanding)
        for future in left:
            _fail(future, PoolStopped("the worker pool was stopped"))

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` (a module-level function) in a worker, under the pool's
        memory and wall-time limits, for other work on untrusted content than hashing
        (the review's contact sheet of a kept video). Blocks until it is done; raises
        ``WorkerFailed`` when the input is to blame (the worker is replaced), else
        ``PoolStopped``."""
        try:
            result: T = self._schedule_task(function, args, self.timeout).result()
        except Exception as exc:
            reason = _file_failure(exc, self.timeout)
            if reason is None:
                raise PoolStopped(f"the worker pool stopped: {exc!r}") from exc
            raise WorkerFailed(reason) from exc
        return result

    def submit(self, path: str, *, options: HashOptions | None = None) -> Future[HashOutput]:
        """Hash the file at ``path`` with the pool's options, or ``options`` for this call
        (e.g. reference mode for an exit: ``hashguard.hashing.reference``)."""
        outer = self._future()
        self._schedule(path, outer, options or self.options)
        return outer

    def hash(self, path: str) -> HashOutput:
        return self.submit(path).result()

    def submit_data(self, data: bytes, *, options: HashOptions | None = None) -> Future[HashOutput]:
        """Hash an upload held in memory, under the same limits as a file (with the
        pool's options, or ``options`` for this call).

        If decoding kills or hangs the worker, the exact hashes are computed here
        (hashing bytes cannot crash or hang) and the upload is ``undecodable``.
        """
        outer = self._future()
        chosen = options or self.options
        inner = self._schedule_task(hash_data, (data, chosen), self.timeout)
        inner.add_done_callback(lambda done: self._settle_data(done, data, chosen, outer))
        return outer

    def _settle_data(
        self,
        done: Future[HashOutput],
        data: bytes,
        options: HashOptions,
        outer: Future[HashOutput],
    ) -> None:
        try:
            result = done.result()
        except BaseException as exc:  # noqa: BLE001 - decided below, per kind of failure
            reason = _file_failure(exc, self.timeout)
            if reason is None:
                _fail(outer, PoolStopped(f"hashing stopped: {exc!r}"))
                return
            signals = exact_data(data, options)
            _resolve(outer, HashOutput(signals=signals, problem=Outcome.UNDECODABLE, reason=reason))
        else:
            _resolve(outer, result)

    def _future(self) -> Future[HashOutput]:
        """A future for the caller, failed with ``PoolStopped`` if the pool stops first."""
        future: Future[HashOutput] = Future()
        with self._lock:
            self._outstanding.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[HashOutput]) -> None:
        with self._lock:
            self._outstanding.discard(future)

    def submit_batch(self, paths: Sequence[str]) -> list[Future[HashOutput]]:
        """Hash several files in one task: less inter-process traffic per file.

        If the task fails (a decoder crashed, hung or ran out of memory on one of the
        files), every file of the batch is hashed again on its own, so the failure
        still costs that one file only.
        """
        outers = [self._future() for _ in paths]
        if len(paths) == 1:
            self._schedule(paths[0], outers[0], self.options)
            return outers
        inner = self._schedule_task(
            hash_batch, (list(paths), self.options, self.timeout), self.timeout * len(paths)
        )
        inner.add_done_callback(lambda done: self._settle_batch(done, paths, outers))
        return outers

    def _schedule(self, path: str, outer: Future[HashOutput], options: HashOptions) -> None:
        inner = self._schedule_task(hash_path, (path, options), self.timeout)
        inner.add_done_callback(lambda done: self._settle(done, path, options, outer))

    def _settle_batch(
        self,
        done: Future[list[HashOutput]],
        paths: Sequence[str],
        outers: list[Future[HashOutput]],
    ) -> None:
        try:
            results = done.result()
        except BaseException as exc:  # noqa: BLE001 - decided below, per kind of failure
            if _file_failure(exc, self.timeout) is None:
                for outer in outers:
                    _fail(outer, PoolStopped(f"hashing stopped: {exc!r}"))
            else:  # one file broke the batch: retry each on its own
                for path, outer in zip(paths, outers, strict=True):
                    self._schedule(path, outer, self.options)
            return
        for outer, result in zip(outers, results, strict=True):
            _resolve(outer, result)

    def _settle(
        self,
        done: Future[HashOutput],
        path: str,
        options: HashOptions,
        outer: Future[HashOutput],
    ) -> None:
        try:
            result = done.result()
        except BaseException as exc:  # noqa: BLE001 - decided below, per kind of failure
            reason = _file_failure(exc, self.timeout)
            if reason is None:
                _fail(outer, PoolStopped(f"hashing stopped: {exc!r}"))
                return
        else:
            _resolve(outer, result)
            return
        fallback = self._schedule_task(exact_only, (path, options), self.timeout)
        fallback.add_done_callback(lambda again: self._settle_fallback(again, reason, outer))

    def _settle_fallback(
        self, done: Future[HashOutput], reason: str, outer: Future[HashOutput]
    ) -> None:
        try:
            exact = done.result()
        except BaseException as exc:  # noqa: BLE001 - decided below, per kind of failure
            if _file_failure(exc, self.timeout) is None:
                _fail(outer, PoolStopped(f"hashing stopped: {exc!r}"))
            else:
                problem = HashOutput(
                    signals=None, problem=Outcome.ERROR, reason=f"{reason}; then {exc}"
                )
                _resolve(outer, problem)
            return
        if exact.signals is None:
            _resolve(outer, exact)
            return
        _resolve(
            outer, HashOutput(signals=exact.signals, problem=Outcome.UNDECODABLE, reason=reason)
        )
