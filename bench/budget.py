"""Where the fast path's time goes, per file: the stages ``hashguard.hashing`` runs, timed
one by one in this process (CPU time, median over the corpus).

It explains the decode-floor figure: the floor is read + MD5 + luma decode, and the
fast path adds SHA-1 + SHA-256, the DCT-scaled luma's reduction to PDQ's 64 x 64 grid
and PDQ itself on that grid. Informational (not a target): the stages are timed apart,
so their sum differs a little from a scan's rate.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.corpus import Corpus
from bench.report import Row
from hashguard.domain.signals import PdqMode
from hashguard.hashing.decode import decode
from hashguard.hashing.pdq import pdq_hash
from hashguard.hashing.pdqgrid import sample

#: files timed per corpus (the breakdown settles long before the whole 1 MP corpus)
MOST_FILES = 300
STAGES = ("read + md5", "sha-1 + sha-256", "luma decode (DCT-scaled)", "64x64 grid", "PDQ")


def _cpu(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def _stages(path: Path) -> dict[str, float]:
    data = b""

    def read() -> None:
        nonlocal data
        data = path.read_bytes()
        hashlib.md5(data, usedforsecurity=False).digest()

    times = {"read + md5": _cpu(read)}

    def others() -> None:
        hashlib.sha1(data, usedforsecurity=False).digest()
        hashlib.sha256(data).digest()

    times["sha-1 + sha-256"] = _cpu(others)
    decoded = []

    def luma() -> None:
        decoded.append(decode(data, max_pixels=10**9, mode=PdqMode.FAST))

    times["luma decode (DCT-scaled)"] = _cpu(luma)
    grids: list[npt.NDArray[np.uint8]] = []
    times["64x64 grid"] = _cpu(
        lambda: grids.append(sample(decoded[0].frames[0], *decoded[0].sizes[0]))
    )
    times["PDQ"] = _cpu(lambda: pdq_hash(grids[0], mode=PdqMode.FAST))
    return times


def budget_rows(corpora: list[Corpus]) -> list[Row]:
    rows = []
    for corpus in corpora:
        files = corpus.files[:MOST_FILES]
        per_file = [_stages(path) for path in files]
        medians = {stage: statistics.median(t[stage] for t in per_file) * 1e3 for stage in STAGES}
        total = sum(medians.values())
        shown = " · ".join(f"{stage} {ms:.2f}" for stage, ms in medians.items())
        rows.append(
            Row(
                figure=f"fast path per file, {corpus.label} ({len(files)} files), CPU ms: {shown}",
                value=total,
                unit="ms",
                extra={"% PDQ": 100 * medians["PDQ"] / total},
            )
        )
    return rows
