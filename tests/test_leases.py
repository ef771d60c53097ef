"""Named leases (``store.leases``) and the job runner on them, on SQLite and PostgreSQL, on a
set clock: two holders never both hold a lease, an expired lease is taken over, a job
runs once per interval however many runners share the store, and a job whose lease was
lost stops and records nothing."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hashguard.doctor import Doctor, Level, check_background_jobs
from hashguard.jobs.runner import RETRY_AFTER, Job, JobContext, JobRunner
from hashguard.settings import Settings
from hashguard.store import Store

#: a fixed instant near the wall clock: nothing here depends on the day it runs
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
TTL = timedelta(seconds=60)


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


def test_two_holders_never_both_hold_a_lease(store: Store) -> None:
    leases = store.leases
    first = leases.acquire("retention", "a", at=T0, ttl=TTL)
    assert first is not None
    assert (first.holder, first.acquired_at, first.expires_at) == ("a", T0, T0 + TTL)
    for seconds in (0, 1, 59):
        at = T0 + timedelta(seconds=seconds)
        assert leases.acquire("retention", "b", at=at, ttl=TTL) is None
        assert not leases.renew("retention", "b", at=at, ttl=TTL)
        assert not leases.release("retention", "b", at=at, completed=True)
    held = leases.get("retention")
    assert held is not None
    assert held.holder == "a"
    assert held.held_by("a", T0 + timedelta(seconds=59))
    assert held.completed_at is None  # b's release recorded nothing
    # the holder itself may take it again: that extends it and keeps when it was taken
    again = leases.acquire("retention", "a", at=T0 + timedelta(seconds=30), ttl=TTL)
    assert again is not None
    assert (again.acquired_at, again.expires_at) == (T0, T0 + timedelta(seconds=90))
    # another name is another lease
    assert leases.acquire("housekeeping", "b", at=T0, ttl=TTL) is not None


def test_holders_racing_for_a_lease_get_it_once(store: Store) -> None:
    """Eight threads, each its own holder, acquire at the same instant: one wins."""
    start = threading.Barrier(8)
    won: list[str] = []

    def race(holder: str) -> None:
        start.wait()
        if store.leases.acquire("exchange-sync", holder, at=T0, ttl=TTL) is not None:
            won.append(holder)

    threads = [threading.Thread(target=race, args=(f"h{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1
    lease = store.leases.get("exchange-sync")
    assert lease is not None
    assert lease.holder == won[0]


def test_an_expired_lease_is_taken_over(store: Store) -> None:
    leases = store.leases
    assert leases.acquire("retention", "dead", at=T0, ttl=TTL) is not None
    # the holder died: at its expiry the lease is anyone's
    taken = leases.acquire("retention", "next", at=T0 + TTL, ttl=TTL)
    assert taken is not None
    assert (taken.holder, taken.acquired_at) == ("next", T0 + TTL)
    # the old holder, should it wake up, holds nothing and records nothing
    late = T0 + TTL + timedelta(seconds=1)
    assert not leases.renew("retention", "dead", at=late, ttl=TTL)
    assert not leases.release("retention", "dead", at=late, completed=True)
    assert leases.release("retention", "next", at=late, completed=True)
    done = leases.get("retention")
    assert done is not None
    assert (done.holder, done.expires_at) == (None, None)
    assert (done.completed_at, done.completed_by) == (late, "next")


def test_a_holder_past_its_expiry_no_longer_holds_it(store: Store) -> None:
    """Nobody took it over, yet it is lost: renewing fails and releasing records nothing
    (the job may have overlapped another process's)."""
    assert store.leases.acquire("housekeeping", "slow", at=T0, ttl=TTL) is not None
    assert not store.leases.renew("housekeeping", "slow", at=T0 + TTL, ttl=TTL)
    assert not store.leases.release("housekeeping", "slow", at=T0 + TTL, completed=True)
    lease = store.leases.get("housekeeping")
    assert lease is not None
    assert (lease.holder, lease.completed_at) == (None, None)


def _counting(name: str, every: timedelta, runs: list[str]) -> Job:
    return Job(name=name, every=every, run=lambda ctx: runs.append(ctx.holder))


def test_a_job_runs_once_per_interval_across_runners(store: Store) -> None:
    clock = Clock()
    runs: list[str] = []
    job = _counting("housekeeping", timedelta(hours=1), runs)
    a = JobRunner(store.leases, [job], holder="a", ttl=TTL, clock=clock)
    b = JobRunner(store.leases, [job], holder="b", ttl=TTL, clock=clock)
    # first seen now: due one interval later, not at once
    assert a.run_due()[0] == []
    done, wait = b.run_due()
    assert (done, wait) == ([], timedelta(seconds=10))  # idle runners look every 10 s
    clock.advance(timedelta(minutes=59, seconds=55))
    assert a.run_due()[1] == timedelta(seconds=5)  # wakes when it is due
    clock.advance(timedelta(seconds=5))
    assert a.run_due()[0] == ["housekeeping"]
    assert b.run_due()[0] == []  # a did it for everyone
    assert runs == ["a"]
    clock.advance(timedelta(hours=1))
    assert b.run_due()[0] == ["housekeeping"]
    assert a.run_due()[0] == []
    assert runs == ["a", "b"]
    lease = store.leases.get("housekeeping")
    assert lease is not None
    assert (lease.holder, lease.completed_by, lease.completed_at) == (None, "b", clock())


def test_a_runner_leaves_a_job_another_holds_until_its_lease_expires(store: Store) -> None:
    clock = Clock()
    runs: list[str] = []
    job = _counting("retention", timedelta(minutes=1), runs)
    runner = JobRunner(store.leases, [job], holder="b", ttl=TTL, clock=clock)
    store.leases.ensure("retention", at=T0 - timedelta(days=1))  # long overdue
    assert store.leases.acquire("retention", "killed", at=T0, ttl=TTL) is not None
    done, wait = runner.run_due()
    assert (done, wait) == ([], timedelta(seconds=10))
    clock.advance(TTL - timedelta(seconds=5))
    assert runner.run_due() == ([], timedelta(seconds=5))  # wakes at the expiry
    clock.advance(timedelta(seconds=5))
    assert runner.run_due()[0] == ["retention"]
    assert runs == ["b"]


def test_a_job_whose_lease_was_lost_stops_and_records_nothing(store: Store) -> None:
    clock = Clock()
    steps: list[int] = []

    def slow(ctx: JobContext) -> None:
        steps.append(1)
        clock.advance(TTL + timedelta(seconds=1))  # stalled past its expiry...
        assert store.leases.acquire("exchange-sync", "other", at=clock(), ttl=TTL)
        ctx.check()  # ...so it must not go on
        steps.append(2)

    job = Job(name="exchange-sync", every=timedelta(minutes=1), run=slow)
    store.leases.ensure("exchange-sync", at=T0 - timedelta(minutes=1))
    runner = JobRunner(store.leases, [job], holder="a", ttl=TTL, clock=clock)
    assert runner.run_due()[0] == []
    assert steps == [1]
    lease = store.leases.get("exchange-sync")
    assert lease is not None
    assert (lease.holder, lease.completed_at) == ("other", None)


def test_a_stopping_runner_interrupts_its_job_and_releases_the_lease(store: Store) -> None:
    clock = Clock()
    stop = threading.Event()

    def long(ctx: JobContext) -> None:
        stop.set()  # SIGTERM arrives while the job runs
        ctx.check()
        raise AssertionError("not reached")

    store.leases.ensure("exchange-sync", at=T0 - timedelta(hours=2))
    job = Job(name="exchange-sync", every=timedelta(hours=1), run=long)
    runner = JobRunner(store.leases, [job], holder="a", ttl=TTL, clock=clock)
    assert runner.run_due(stop)[0] == []
    lease = store.leases.get("exchange-sync")
    assert lease is not None
    assert (lease.holder, lease.completed_at) == (None, None)  # free, and still due
    quick = replace(job, run=lambda ctx: None)
    assert JobRunner(store.leases, [quick], holder="b", ttl=TTL, clock=clock).run_due()[0] == [
        "exchange-sync"
    ]


def test_a_failing_job_is_tried_again_later_not_at_every_look(store: Store) -> None:
    clock = Clock()
    tries: list[datetime] = []

    def broken(ctx: JobContext) -> None:
        tries.append(ctx.now())
        raise RuntimeError("the store went away")

    store.leases.ensure("retention", at=T0 - timedelta(days=2))
    job = Job(name="retention", every=timedelta(days=1), run=broken)
    runner = JobRunner(store.leases, [job], holder="a", ttl=TTL, clock=clock)
    assert runner.run_due()[0] == []
    clock.advance(RETRY_AFTER - timedelta(seconds=1))
    runner.run_due()
    assert tries == [T0]
    clock.advance(timedelta(seconds=1))
    runner.run_due()
    assert tries == [T0, T0 + RETRY_AFTER]
    lease = store.leases.get("retention")
    assert lease is not None
    assert (lease.holder, lease.completed_at) == (None, None)


def test_job_names_are_unique(store: Store) -> None:
    job = Job(name="retention", every=timedelta(days=1), run=lambda ctx: None)
    with pytest.raises(ValueError, match="unique"):
        JobRunner(store.leases, [job, job])


def test_doctor_warns_of_background_jobs_nobody_runs(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    doctor = Doctor(Settings(home=tmp_path / "home", database_url=db_url), today=T0.date(), now=T0)
    try:
        assert check_background_jobs(doctor) == (
            True,
            "no background job has run on this store yet",
        )
        hour = timedelta(hours=1)
        for name, done, at in (
            ("housekeeping", "a", T0 - hour / 2),
            ("retention", "a", T0 - 3 * 24 * hour),
        ):
            assert store.leases.acquire(name, done, at=at, ttl=TTL) is not None
            assert store.leases.release(name, done, at=at, completed=True)
        assert check_background_jobs(doctor)[0] is Level.WARN
        # a holder killed mid-sync five hours ago that nobody took over
        assert store.leases.acquire("exchange-sync", "dead", at=T0 - 5 * hour, ttl=TTL)
        level, message = check_background_jobs(doctor)
        assert level is Level.WARN
        assert "housekeeping" not in message
        assert f"retention last completed {T0 - 3 * 24 * hour:%Y-%m-%d %H:%M} UTC" in message
        assert "exchange-sync never completed" in message
        assert "its holder dead stopped renewing it" in message
        assert "hashguard worker" in message
        assert store.leases.acquire("exchange-sync", "b", at=T0, ttl=TTL)
        assert store.leases.release("exchange-sync", "b", at=T0, completed=True)
        assert store.leases.acquire("retention", "b", at=T0, ttl=TTL)
        assert store.leases.release("retention", "b", at=T0, completed=True)
        assert check_background_jobs(doctor) == (True, "3 background job(s) on schedule")
    finally:
        doctor.close()


def test_a_heartbeat_keeps_a_long_job_s_lease(store: Store) -> None:
    """A job step longer than the lease (real time here: the heartbeat is a thread) keeps
    it: nobody else may take it meanwhile, and the job may go on afterwards."""
    ttl = timedelta(seconds=3)
    seen: list[object] = []

    def long(ctx: JobContext) -> None:
        time.sleep(4.5)  # one step, longer than the lease; renewed every second meanwhile
        seen.append(store.leases.acquire("retention", "other", at=ctx.now(), ttl=ttl))
        ctx.check()
        seen.append("went on")

    store.leases.ensure("retention", at=datetime.now(UTC) - timedelta(days=2))
    job = Job(name="retention", every=timedelta(days=1), run=long)
    runner = JobRunner(store.leases, [job], holder="a", ttl=ttl)
    assert runner.run_due()[0] == ["retention"]
    assert seen == [None, "went on"]
