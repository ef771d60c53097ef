"""Exact hashing throughput: MD5, SHA-1 and SHA-256 in one pass with hashguard's hasher."""

from __future__ import annotations

import numpy as np

from bench.config import REPEATS
from bench.report import Row
from bench.timing import median, round_robin, timed
from hashguard.hashing.exact import hash_bytes

BUFFER_BYTES = 256 * 1024 * 1024


def exact_rows() -> list[Row]:
    data = np.random.default_rng(0).bytes(BUFFER_BYTES)
    samples = round_robin({"exact": lambda: timed(lambda: hash_bytes(data))}, REPEATS)["exact"]
    return [
        Row(
            figure="exact hashing: MD5 + SHA-1 + SHA-256, one pass over 256 MiB in memory",
            value=BUFFER_BYTES / 1e9 / median(samples),
            unit="GB/s",
            samples=samples,
        )
    ]
