"""Isolation: a crash, a hang or an out-of-memory decode costs one file, never the batch."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.scans import Outcome
from hashguard.domain.signals import PdqMode
from hashguard.hashing.isolate import HashingPool, PoolStopped
from hashguard.hashing.kernel import HashOptions

# Reference mode: full-resolution PDQ of a 30 MP image takes seconds and over 1 GB,
# which is what these tests need (the fast path hashes it in a fraction of a second).
OPTIONS = HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE)


def _write(folder: Path, name: str, width: int, height: int) -> Path:
    path = folder / name
    path.write_bytes(encode(generate(Kind.PHOTO, seed=width, width=width, height=height), "JPEG"))
    return path


def _busiest_worker() -> int:
    """The worker decoding the big image, once it holds its pixels (> 200 MB resident).

    Only that one is killed, as a real decoder crash would: killing an idle worker
    while it waits for work is not a decoder crash (and may hold the pool's lock).
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = _worker_rss()
        busiest = max(workers, key=workers.__getitem__, default=None)
        if busiest is not None and workers[busiest] > 200_000:
            return busiest
        time.sleep(0.02)
    raise AssertionError("no worker started decoding the big image")


def _worker_rss() -> dict[int, int]:
    """Resident kB of each hashing worker."""
    workers = {}
    for server in _children("self"):  # workers are forked from multiprocessing's forkserver
        if b"forkserver" in Path(f"/proc/{server}/cmdline").read_bytes():
            for pid in _children(server):
                status = Path(f"/proc/{pid}/status").read_text()
                workers[pid] = int(status.split("VmRSS:")[1].split()[0])
    return workers


def _children(pid: int | str) -> list[int]:
    return [
        int(child)
        for listing in Path(f"/proc/{pid}/task").glob("*/children")
        for child in listing.read_text().split()
    ]


def test_a_hang_becomes_undecodable_with_exact_hashes(tmp_path: Path) -> None:
    big = _write(tmp_path, "big.jpg", 6000, 5000)
    small = _write(tmp_path, "small.jpg", 300, 200)
    with HashingPool(workers=1, options=OPTIONS, timeout=0.3, memory_mb=3072) as pool:
        slow, fine = pool.submit(str(big)), pool.submit(str(small))
        output = slow.result(timeout=60)
        assert output.problem is Outcome.UNDECODABLE
        assert "longer than 0.3 s" in (output.reason or "")
        assert output.signals is not None
        assert output.signals.md5 == hashlib.md5(big.read_bytes()).hexdigest()
        assert fine.result(timeout=60).problem is None


def test_out_of_memory_costs_one_file(tmp_path: Path) -> None:
    big = _write(tmp_path, "big.jpg", 6000, 5000)
    small = _write(tmp_path, "small.jpg", 300, 200)
    with HashingPool(workers=1, options=OPTIONS, timeout=60, memory_mb=512) as pool:
        output = pool.hash(str(big))
        assert output.problem is Outcome.UNDECODABLE
        assert "memory" in (output.reason or "")
        assert output.signals is not None
        assert pool.hash(str(small)).problem is None


def test_a_crashed_decoder_costs_one_file(tmp_path: Path) -> None:
    big = _write(tmp_path, "big.jpg", 6000, 5000)
    small = _write(tmp_path, "small.jpg", 300, 200)
    with HashingPool(workers=2, options=OPTIONS, timeout=60, memory_mb=3072) as pool:
        assert pool.hash(str(small)).problem is None  # workers are up
        doomed = pool.submit(str(big))
        os.kill(_busiest_worker(), signal.SIGSEGV)
        output = doomed.result(timeout=60)
        assert output.problem is Outcome.UNDECODABLE
        assert "SIGSEGV" in (output.reason or "")
        assert output.signals is not None
        assert output.signals.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
        assert [pool.hash(str(small)).problem for _ in range(4)] == [None] * 4


def test_a_batch_broken_by_one_file_is_retried_file_by_file(tmp_path: Path) -> None:
    big = _write(tmp_path, "big.jpg", 6000, 5000)
    small = [_write(tmp_path, f"small{i}.jpg", 300 + i, 200) for i in range(3)]
    paths = [str(small[0]), str(big), str(small[1]), str(small[2])]
    with HashingPool(workers=1, options=OPTIONS, timeout=0.5, memory_mb=3072) as pool:
        outputs = [future.result(timeout=120) for future in pool.submit_batch(paths)]
    assert [o.problem for o in outputs] == [None, Outcome.UNDECODABLE, None, None]
    assert "longer than 0.5 s" in (outputs[1].reason or "")
    assert outputs[1].signals is not None  # exact hashes still recorded


def test_a_stopped_pool_blames_no_file(tmp_path: Path) -> None:
    """Stopping the pool is not a file's fault: no outcome is invented, the caller is told."""
    big = _write(tmp_path, "big.jpg", 6000, 5000)
    small = _write(tmp_path, "small.jpg", 300, 200)
    pool = HashingPool(workers=1, options=OPTIONS, timeout=60, memory_mb=3072)
    futures = pool.submit_batch([str(big), str(small)])
    pool.close(wait=False)
    for future in [*futures, pool.submit(str(small))]:
        with pytest.raises(PoolStopped):
            future.result(timeout=60)
