"""Issue 19 (runtime): a killed idle worker, stalled uploads, private files, concurrent snapshots.

Each test here failed before its fix: a worker killed while its pool was idle left the
pool broken for good (every upload 503, /readyz 200); 16 stalled uploads of one token
held every hashing slot; the database and index snapshot were 0644 in a 0755 home; two
servers saving the index snapshot at once wrote into one temporary file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import httpx
import numpy as np
import pytest
from pebble import ProcessPool

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.scans import Outcome, ScanOptions
from hashguard.domain.tokens import Scope
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.hashing.supervisor import PoolBroken, PoolSupervisor
from hashguard.keys import master_key_for
from hashguard.matching import snapshot
from hashguard.matching.matcher import Matcher
from hashguard.matching.service import MatcherService
from hashguard.permissions import permission_problems, warn_about_permissions
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.web.limits import Admission, Receiving
from tests.api_support import bearer, make_token, metric
from tests.server import running_server

SMALL = encode(generate(Kind.PHOTO, seed=5, width=160, height=120))
OPTIONS = HashOptions(max_pixels=10**7)


# -- finding and killing hashing workers (children of multiprocessing's forkserver) -----


def _children(pid: int | str) -> list[int]:
    found = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(FileNotFoundError):
            found += [int(child) for child in listing.read_text().split()]
    return found


def _forkserver() -> int:
    for pid in _children("self"):
        with contextlib.suppress(FileNotFoundError):
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise AssertionError("no forkserver: no hashing worker was ever started")


def _workers() -> list[int]:
    return _children(_forkserver())


def _kill_idle_workers(expected: int) -> list[int]:
    """kill -9 every hashing worker (all idle: nothing is being hashed)."""
    deadline = time.monotonic() + 10
    while len(workers := _workers()) < expected:
        assert time.monotonic() < deadline, f"only {len(workers)} workers started"
        time.sleep(0.02)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    return workers


def _warm(pool: HashingPool, groups: int) -> None:
    """Start the workers of every group (a task goes to the least busy group)."""
    futures = [pool.submit_data(SMALL) for _ in range(groups * 2)]
    assert all(f.result(timeout=60).problem is None for f in futures)


# -- 1. a killed idle worker ------------------------------------------------------------


def test_a_killed_idle_worker_costs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hashguard.hashing")
    with HashingPool(workers=2, options=OPTIONS, timeout=30, memory_mb=2048) as pool:
        _warm(pool, groups=2)
        _kill_idle_workers(expected=2)
        # at once: the request meets the broken pool, which is rebuilt and the task retried
        outputs = [pool.submit_data(SMALL).result(timeout=60) for _ in range(4)]
        assert [o.problem for o in outputs] == [None] * 4
        _kill_idle_workers(expected=2)
        time.sleep(0.5)  # now the supervisor finds the broken pools before any request
        assert pool.submit_data(SMALL).result(timeout=60).problem is None
        health = pool.health()
    assert health.ready
    assert health.rebuilds >= 2
    assert "broke" in caplog.text
    assert "rebuilt" in caplog.text


def _dead_on_arrival(_: int) -> ProcessPool:
    """A real pebble pool whose workers exit as they start (as when every fork is killed)."""
    return ProcessPool(
        max_workers=1,
        initializer=os._exit,
        initargs=(3,),
        context=multiprocessing.get_context("forkserver"),
    )


def test_a_pool_that_keeps_breaking_is_not_ready_and_backs_off() -> None:
    supervisor = PoolSupervisor(1, _dead_on_arrival)
    try:
        task: Future[object] = supervisor.schedule(os.getpid, (), 5.0)
        with pytest.raises(PoolBroken):
            task.result(timeout=30)
        started = time.monotonic()
        time.sleep(3)
        health = supervisor.health()
        assert not health.ready
        assert health.last_problem
        # rebuilt at once, then after 0.5, 1, 2 s: not a tight loop of forks
        assert 1 <= health.rebuilds <= 6, (health.rebuilds, time.monotonic() - started)
    finally:
        supervisor.close(wait=False)


def test_a_scan_survives_killed_idle_workers(tmp_path: Path, sqlite_store: Store) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    for index in range(12):
        (folder / f"{index:02d}.jpg").write_bytes(
            encode(generate(Kind.PHOTO, index, 64 + index, 48))
        )
    options = ScanOptions(max_pixels=10**6)
    prepared = prepare_run(sqlite_store.scans, [str(folder)], options)
    with HashingPool(
        workers=2, options=HashOptions.for_scan(options), timeout=30, memory_mb=2048
    ) as pool:
        _warm(pool, groups=2)
        _kill_idle_workers(expected=2)
        scanner = Scanner(
            store=sqlite_store.scans,
            matcher=Matcher.build(sqlite_store.banks),
            pool=pool,
            batch=4,
        )
        run = scanner.run(prepared.run)
    assert run.total == 12
    assert run.counts[Outcome.NO_MATCH] == 12, run.counts


def _ready(base: str) -> httpx.Response:
    return httpx.get(base + "/readyz", timeout=5)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_server_rebuilds_a_broken_pool_and_says_not_ready_meanwhile(
    api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hashguard.hashing")
    settings = api_settings.model_copy(update={"workers": 1})
    auth = bearer(make_token(settings, Scope.SCAN))
    scraper = bearer(make_token(settings, Scope.STATS, name="prometheus"))
    with (
        running_server(settings) as base,
        httpx.Client(base_url=base, headers=auth, timeout=60) as http,
    ):
        assert http.post("/v1/scan", content=SMALL).status_code == 200
        _kill_idle_workers(expected=1)
        answer = http.post("/v1/scan", content=SMALL)  # met the broken pool: retried
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "no_match"

        # the OOM killer takes the forkserver too: until a new one has started (imports,
        # warm-up) and forked new workers, no pool can take work, and /readyz says so
        forkserver = _forkserver()
        _kill_idle_workers(expected=1)
        os.kill(forkserver, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (ready := _ready(base)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.status_code == 503
        assert any("no hashing worker" in p for p in ready.json()["detail"]["problems"])
        deadline = time.monotonic() + 10
        while (ready := _ready(base)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.status_code == 200, ready.text
        assert http.post("/v1/scan", content=SMALL).status_code == 200
        metrics = http.get("/metrics", headers=scraper).text
        assert metric(metrics, "hashguard_hashing_pool_rebuilds_total", pool="uploads") >= 2
        assert metric(metrics, "hashguard_hashing_pool_ready") == 1
    assert "hashing worker pool 0 broke" in caplog.text


# -- 5. stalled uploads hold no hashing slot ----------------------------------------------


def _stall(base: str, secret: str, length: int, body: bytes = b"") -> socket.socket:
    """A raw connection that sends an upload's headers (and ``body``), then nothing."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        (
            f"POST /v1/scan HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
        + body
    )
    return sock


def _status_of(sock: socket.socket) -> int:
    with sock:
        head = sock.recv(4096)
    return int(head.split(b" ", 2)[1])


@contextlib.contextmanager
def _stalled(base: str, secret: str, count: int) -> Iterator[list[socket.socket]]:
    socks = [_stall(base, secret, 1_000_000) for _ in range(count)]
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_stalled_uploads_of_one_token_lock_no_one_out(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"workers": 2, "upload_read_timeout": 4.0})
    stalling = make_token(settings, Scope.SCAN, name="stalling")
    other = bearer(make_token(settings, Scope.SCAN, name="other"))
    scraper = bearer(make_token(settings, Scope.STATS, name="prometheus"))
    with (
        running_server(settings) as base,
        httpx.Client(base_url=base, headers=other, timeout=30) as http,
    ):
        assert http.post("/v1/scan", content=SMALL).status_code == 200  # workers started

        def scrape() -> str:
            # a scrape takes no upload slot: it answers while the stalled ones hold them
            answer = http.get("/metrics", headers=scraper)
            assert answer.status_code == 200, answer.text
            return answer.text

        started = time.monotonic()
        with _stalled(base, stalling, 16) as socks:
            deadline = time.monotonic() + 1  # until all 16 have reached the server
            while metric(scrape(), "hashguard_uploads_receiving") < 16:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            answers = [http.post("/v1/scan", content=SMALL) for _ in range(3)]
            assert [a.status_code for a in answers] == [200] * 3, answers[0].text
            assert metric(scrape(), "hashguard_uploads_receiving") == 16
            # and the stalled ones are cut off, bounded in time
            assert [_status_of(sock) for sock in socks] == [408] * 16
        assert time.monotonic() - started < 15
        metrics = scrape()
        assert metric(metrics, "hashguard_rejected_total", reason="slow_body") == 16
        assert metric(metrics, "hashguard_uploads_receiving") == 0
        assert metric(metrics, "hashguard_hashing_in_flight") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_trickling_upload_is_cut_off(api_settings: Settings) -> None:
    """Bytes that keep coming, too slowly, do not keep a body alive."""
    settings = api_settings.model_copy(
        update={"upload_read_timeout": 1.0, "upload_min_bytes_per_second": 1000}
    )
    secret = make_token(settings, Scope.SCAN)
    with running_server(settings) as base:
        sock = _stall(base, secret, 200, b"x")  # 1.2 s allowed: 1 s + 200 B at 1000 B/s
        started = time.monotonic()
        # one byte every 0.2 s (never idle for a second) until the server answers
        while not select.select([sock], [], [], 0.2)[0] and time.monotonic() - started < 10:
            sock.sendall(b"x")
        assert _status_of(sock) == 408
        assert time.monotonic() - started < 3


def test_no_token_gets_more_than_half_of_the_slots_or_the_receive_budget() -> None:
    refused: list[str] = []
    admission = Admission(16, 16, on_refusal=refused.append)
    assert admission.per_token == 8
    assert Admission(16, 3, on_refusal=refused.append).per_token == 3
    assert Admission(1, 16, on_refusal=refused.append).per_token == 1
    receiving = Receiving(8, 10_000, on_refusal=refused.append)
    held = [receiving.reserve(1, 1000) for _ in range(4)]
    with pytest.raises(Exception, match="too many uploads being received"):
        receiving.reserve(1, 1000)
    big = receiving.reserve(2, 4000)
    with pytest.raises(Exception, match="too many uploads being received"):
        receiving.reserve(2, 1001)  # over half the bytes for token 2
    with pytest.raises(Exception, match="too many uploads are being received"):
        receiving.reserve(3, 3000)  # over the budget
    assert refused == ["token_limit", "token_limit", "overload"]
    for reservation in [*held, big]:
        reservation.release()
    assert receiving.in_flight == 0
    receiving.reserve(3, 50_000).release()  # one body alone always fits


# -- 6. private files -----------------------------------------------------------------


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_home_and_its_files_are_private(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "deep" / "home")
    with _umask(0o022):
        store = open_store(settings.resolved_database_url)
        try:
            master_key_for(settings)
            matcher = MatcherService(store.banks, settings.index_path)
            matcher.load()
            store.tokens.create("t", (Scope.SCAN,))  # writes through the WAL
            home = settings.home
            files = sorted(p.name for p in home.rglob("*") if p.is_file())
            assert {"hashguard.db", "master.key", "matcher.snapshot"} <= set(files)
            assert _mode(home) == 0o700
            assert _mode(tmp_path / "deep") == 0o700  # created for it, so private too
            assert _mode(home / "index") == 0o700
            for path in home.rglob("*"):
                assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
            assert permission_problems(home) == []
        finally:
            store.close()


def test_loose_modes_are_named_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(home=tmp_path / "home")
    open_store(settings.resolved_database_url).close()
    db = settings.home / "hashguard.db"
    db.chmod(0o644)
    settings.home.chmod(0o750)
    problems = permission_problems(settings.home)
    assert len(problems) == 2
    assert str(settings.home) in problems[0]
    assert "group" in problems[0]
    assert "others" not in problems[0]
    assert str(db) in problems[1]
    assert "group and others" in problems[1]
    assert "chmod 600" in problems[1]
    with caplog.at_level(logging.WARNING, logger="hashguard"):
        assert warn_about_permissions(settings) == problems
    assert str(db) in caplog.text
    assert permission_problems(tmp_path / "absent") == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_server_warns_at_start_up(
    api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    api_settings.home.mkdir(parents=True, exist_ok=True)
    loose = api_settings.home / "notes.txt"
    loose.write_text("x")
    loose.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="hashguard")
    with running_server(api_settings):
        pass
    assert f"not private: {loose}" in caplog.text


# -- 10. two servers on one home --------------------------------------------------------


def test_concurrent_snapshot_writers_and_readers(tmp_path: Path) -> None:
    path = tmp_path / "index" / "matcher.snapshot"
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def writer(seed: int) -> None:
        arrays = {"values": np.arange(seed, seed + 200_000, dtype=np.uint64)}
        barrier.wait()
        for _ in range(15):
            try:
                snapshot.write(path, arrays, {"seed": seed})
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)

    def reader() -> None:
        barrier.wait()
        for _ in range(30):
            with contextlib.suppress(snapshot.SnapshotError):  # not written yet
                arrays, meta = snapshot.read(path)
                assert arrays["values"][0] == meta["seed"]

    threads = [threading.Thread(target=writer, args=(s,)) for s in (1, 2, 3)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    arrays, meta = snapshot.read(path)
    assert arrays["values"][0] == meta["seed"]
    assert [p.name for p in path.parent.iterdir()] == ["matcher.snapshot"]  # no leftovers
    assert _mode(path) == 0o600


def test_temporary_files_of_killed_writers_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "matcher.snapshot"
    arrays = {"values": np.arange(10, dtype=np.uint64)}
    snapshot.write(path, arrays, {})
    written = path.stat().st_mtime
    stale, fresh = (tmp_path / f".matcher.snapshot.{name}.partial" for name in ("a", "b"))
    for partial, age in ((stale, 7200), (fresh, 60)):
        partial.write_bytes(b"half")
        os.utime(partial, (written - age, written - age))
    snapshot.write(path, arrays, {})
    assert not stale.exists()
    assert fresh.exists()  # perhaps another server's, still being written


def test_two_servers_loading_one_home_both_load(tmp_path: Path, sqlite_store: Store) -> None:
    path = tmp_path / "home" / "index" / "matcher.snapshot"
    errors: list[BaseException] = []
    for _ in range(3):
        path.unlink(missing_ok=True)
        services = [MatcherService(sqlite_store.banks, path) for _ in range(2)]

        def load(service: MatcherService) -> None:
            try:
                service.load()
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(s,)) for s in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert all(s.loaded for s in services)


def test_loading_the_index_is_tried_again_with_backoff(
    tmp_path: Path, sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The snapshot's folder is briefly unusable (a file in its place): the load fails,
    is logged, and succeeds on a later attempt."""
    home = tmp_path / "home"
    home.mkdir()
    blocker = home / "index"
    blocker.write_text("in the way")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            blocker.unlink()

    service = MatcherService(
        sqlite_store.banks, blocker / "matcher.snapshot", first_wait=0.1, sleep=sleep
    )
    with caplog.at_level(logging.WARNING, logger="hashguard.matching"):
        service.load()
    assert service.loaded
    assert service.load_problem is None
    assert waits == [0.1, 0.2]
    assert "attempt 1 of 6" in caplog.text
    failing = MatcherService(
        sqlite_store.banks, home / "x" / "y", attempts=3, first_wait=0.1, sleep=waits.append
    )
    (home / "x").write_text("in the way")
    with pytest.raises(OSError):
        failing.load()
    assert failing.load_problem
    assert waits[2:] == [0.1, 0.2]
