"""The job runner: runs each named job when it is due, only while holding the job's lease.

Every process that runs background work (``hashguard worker``, and ``hashguard serve``
unless ``--no-background``) runs one ``JobRunner`` over the same jobs. A job is due
``every`` after it last completed anywhere (or after the store first saw it); the
runner that gets the job's lease runs it, a heartbeat renews the lease while it runs,
and the release records the completion. So however many processes share a store, each
job runs once per interval, one process at a time; a process killed mid-job holds the
lease only until it expires, and the next runner takes the job over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType

from hashguard.domain.leases import Lease
from hashguard.store.leases import LeaseStore

log = logging.getLogger("hashguard.jobs")

Clock = Callable[[], datetime]
#: the longest an idle runner waits before it looks again
MAX_POLL = timedelta(seconds=10)
#: a failed job is tried again by this process after this long (or its interval)
RETRY_AFTER = timedelta(minutes=5)


def wall_clock() -> datetime:
    return datetime.now(UTC)


def holder_id() -> str:
    """This process's name as a lease holder (host, pid, and a random part: a pid is
    reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobInterrupted(Exception):
    """The job must stop now: the process is stopping or the lease was lost."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    """A background job: ``name`` is its lease's name (persisted, never renamed)."""

    name: str
    every: timedelta
    run: Callable[[JobContext], None]


class JobContext:
    """What a running job may ask: the time, and whether to go on (``check``)."""

    def __init__(
        self,
        leases: LeaseStore,
        name: str,
        holder: str,
        *,
        ttl: timedelta,
        clock: Clock,
        stopping: threading.Event,
    ) -> None:
        self._leases = leases
        self.name = name
        self.holder = holder
        self._ttl = ttl
        self._clock = clock
        self._stopping = stopping
        self.lost = threading.Event()

    def now(self) -> datetime:
        return self._clock()

    def renew(self) -> bool:
        """Extend the lease; False (and ``lost`` set) once it is no longer ours."""
        if self.lost.is_set():
            return False
        if not self._leases.renew(self.name, self.holder, at=self._clock(), ttl=self._ttl):
            self.lost.set()
        return not self.lost.is_set()

    def check(self) -> None:
        """Call between units of work: raises ``JobInterrupted`` when the process is
        stopping or the lease is no longer held (then the job must not go on)."""
        if self._stopping.is_set():
            raise JobInterrupted(f"{self.name}: stopping")
        if not self.renew():
            raise JobInterrupted(f"{self.name}: the lease was lost")


class _Heartbeat:
    """Renews a running job's lease every third of its ttl, in a thread."""

    def __init__(self, context: JobContext, interval: float) -> None:
        self._context = context
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{context.name}", daemon=True
        )

    def _beat(self) -> None:
        while not self._done.wait(self._interval):
            try:
                if not self._context.renew():
                    log.warning("job %s: lease lost while running", self._context.name)
                    return
            except Exception:  # the store away for a moment: the next beat tries again
                log.exception("job %s: renewing the lease failed", self._context.name)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join(timeout=30)


class JobRunner:
    def __init__(
        self,
        leases: LeaseStore,
        jobs: Sequence[Job],
        *,
        holder: str | None = None,
        ttl: timedelta = timedelta(seconds=60),
        clock: Clock = wall_clock,
    ) -> None:
        if len({job.name for job in jobs}) != len(jobs):
            raise ValueError("job names must be unique")
        self._leases = leases
        self.jobs = tuple(jobs)
        self.holder = holder or holder_id()
        self._ttl = ttl
        self._clock = clock
        self._retry_at: dict[str, datetime] = {}

    def _due_at(self, job: Job, lease: Lease) -> datetime:
        since = lease.completed_at or lease.created_at
        return max(since + job.every, self._retry_at.get(job.name, since))

    def run_due(self, stop: threading.Event | None = None) -> tuple[list[str], timedelta]:
        """Run every job that is due now and whose lease this runner gets, one after
        another. The names of the jobs completed, and how long until one may be due."""
        stopping = stop or threading.Event()
        completed: list[str] = []
        wait = MAX_POLL
        for job in self.jobs:
            if stopping.is_set():
                break
            now = self._clock()
            lease = self._leases.get(job.name) or self._leases.ensure(job.name, at=now)
            due_at = self._due_at(job, lease)
            if lease.held(now) and lease.holder != self.holder:
                assert lease.expires_at is not None
                wait = min(wait, max(lease.expires_at, due_at) - now)
                continue
            if due_at > now:
                wait = min(wait, due_at - now)
                continue
            if self._run(job, stopping):
                completed.append(job.name)
            taken = self._leases.get(job.name)
            if taken is not None:
                wait = min(wait, self._due_at(job, taken) - self._clock())
        return completed, max(wait, timedelta(seconds=0.05))

    def _run(self, job: Job, stopping: threading.Event) -> bool:
        now = self._clock()
        lease = self._leases.acquire(job.name, self.holder, at=now, ttl=self._ttl)
        if lease is None:
            return False  # another process was quicker
        if self._due_at(job, lease) > now:  # it completed the job just before us
            self._leases.release(job.name, self.holder, at=now)
            return False
        context = JobContext(
            self._leases,
            job.name,
            self.holder,
            ttl=self._ttl,
            clock=self._clock,
            stopping=stopping,
        )
        ok = False
        with _Heartbeat(context, self._ttl.total_seconds() / 3):
            try:
                job.run(context)
                ok = True
            except JobInterrupted as exc:
                log.info("job %s interrupted: %s", job.name, exc)
            except Exception:
                log.exception("job %s failed", job.name)
                self._retry_at[job.name] = self._clock() + min(job.every, RETRY_AFTER)
        if ok:
            self._retry_at.pop(job.name, None)
        released = self._leases.release(job.name, self.holder, at=self._clock(), completed=ok)
        if ok and not released:
            log.warning("job %s finished after its lease ran out: not recorded", job.name)
        return ok and released

    def run_forever(self, stop: threading.Event) -> None:
        """Run due jobs until ``stop`` is set; a job running then is interrupted at its
        next ``check`` (or finishes), and its lease is released."""
        while not stop.is_set():
            try:
                _, wait = self.run_due(stop)
            except Exception:  # the store away for a moment: look again later
                log.exception("background jobs round failed")
                wait = MAX_POLL
            stop.wait(wait.total_seconds())
