"""Retro-matching figures: new PDQ entries against an index over kept signals (same run).

The kept-signal index (``hashguard.matching.kept.KeptIndex``) is built over synthetic
uniform random 256-bit hashes in a child process (``python -m bench.retro COUNT``), so
the resident memory reported is the index's alone. Queries are new entries: half are
random (no kept signal near), half are kept signals with 8 bits flipped (each must be
found: recall). The baseline is a brute-force scan of every kept signal per query.
Targets: 1,000 new entries in <= 1 s and 100,000 in <= 30 s against 10 M kept signals.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.cli import BenchError
from bench.config import PROJECT_DIR, Scale
from bench.report import FAIL, INFO, PASS, Row

SIZES = {"small": (1_000_000,), "full": (10_000_000,)}
THRESHOLD = 31


def _queries(hashes: np.ndarray[Any, Any], count: int, rng: np.random.Generator) -> Any:
    """``count`` packed queries: half near a kept signal (8 bits flipped), half random."""
    near = hashes[rng.integers(0, len(hashes), count // 2)].copy()
    near[:, 0] ^= np.uint64(0xFF)
    far = rng.integers(0, 2**63, (count - count // 2, 4), dtype=np.uint64)
    return np.concatenate([near, far])


def measure(count: int, seed: int = 7) -> dict[str, Any]:
    """Build the index over ``count`` random kept signals; time 1,000 and 100,000 new
    entries; resident memory; recall of the planted near copies; the brute-force baseline."""
    from hashguard.matching.kept import KeptIndex  # noqa: PLC0415
    from hashguard.matching.pdq import unpack  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hashes = rng.integers(0, 2**63, (count, 4), dtype=np.uint64) ^ rng.integers(
        0, 2, (count, 4), dtype=np.uint64
    ) << np.uint64(63)
    start, cpu = time.perf_counter(), time.process_time()
    index = KeptIndex(hashes, np.arange(count, dtype=np.int64), threshold=THRESHOLD)
    build = time.perf_counter() - start
    build_cpu = time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    figures: dict[str, Any] = {
        "count": count,
        "build_s": build,
        "build_cpu_s": build_cpu,
        "nbytes": index.nbytes,
    }
    figures["rss_mb"] = rss / 1024
    for new in (1_000, 100_000):
        packed = _queries(hashes, new, rng)
        values = [unpack(row) for row in packed]
        start, cpu = time.perf_counter(), time.process_time()
        hits = index.search(values, [THRESHOLD] * new)
        figures[f"q{new}_s"] = time.perf_counter() - start
        # CPU time too: on a shared machine the wall time says more about the neighbours
        figures[f"q{new}_cpu_s"] = time.process_time() - cpu
        found = {hit.query for hit in hits}
        figures[f"q{new}_recall"] = len(found & set(range(new // 2))) / (new // 2)
        figures[f"q{new}_false"] = len(found - set(range(new // 2)))
    # baseline: brute force, a few queries, scaled to 1,000
    sample = _queries(hashes, 4, rng)
    start = time.perf_counter()
    for query in sample:
        np.bitwise_count(hashes ^ query).sum(axis=1) <= THRESHOLD  # noqa: B015
    figures["brute_1000_s"] = (time.perf_counter() - start) / len(sample) * 1000
    return figures


def _measure_child(count: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.retro", str(count)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"retro worker {count} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def retro_rows(scale: Scale, say: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    for count in SIZES.get(scale.name, SIZES["small"]):
        say(f"retro-matching: index over {count:,} kept signals")
        got = _measure_child(count)
        label = f"{count / 1e6:g} M kept"
        judged = count >= 10_000_000
        ok_1k = got["q1000_s"] <= 1.0
        ok_100k = got["q100000_s"] <= 30.0
        rows += [
            Row(
                figure=f"retro: 1,000 new PDQ entries vs {label}",
                value=round(got["q1000_s"], 3),
                unit="s",
                extra={"CPU s": round(got["q1000_cpu_s"], 3)},
                baseline=round(got["brute_1000_s"], 2),
                ratio=round(got["q1000_s"] / got["brute_1000_s"], 4),
                target="<= 1 s at 10 M",
                verdict=(PASS if ok_1k else FAIL) if judged else INFO,
            ),
            Row(
                figure=f"retro: 100,000 new PDQ entries vs {label}",
                value=round(got["q100000_s"], 2),
                unit="s",
                extra={"CPU s": round(got["q100000_cpu_s"], 2)},
                target="<= 30 s at 10 M",
                verdict=(PASS if ok_100k else FAIL) if judged else INFO,
            ),
            Row(
                figure=f"retro: kept-signal index, {label}",
                value=f"{got['nbytes'] / 2**20:.0f} MiB arrays, {got['rss_mb']:.0f} MiB RSS, "
                f"built in {got['build_s']:.1f} s",
                unit="",
                details={k: float(v) for k, v in got.items()},
            ),
            Row(
                figure=f"retro: recall of planted near copies, {label}",
                value=min(got["q1000_recall"], got["q100000_recall"]),
                unit="",
                target="1.0",
                verdict=PASS if min(got["q1000_recall"], got["q100000_recall"]) == 1.0 else FAIL,
            ),
        ]
    return rows


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
