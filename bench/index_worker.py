"""One index measurement in its own process, so its resident memory is its own.

Run as ``python -m bench.index_worker IMPL N LAYOUT SEED``; prints one JSON object.
IMPL is ``ours`` (hashguard's PdqIndex, plus its exact index and update figures) or
``pdqindex`` (threatexchange's PDQIndex, what HMA uses). Both index the same generated
list and answer the same 1,000 queries: 700 planted within distance 0-31 of an entry,
100 planted at 32-40, 200 random.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

THRESHOLD = 31
#: (query, source row or -1, planted distance or -1)
Planned = list[tuple[np.ndarray, int, int]]
QUERIES_PLANTED, QUERIES_FAR, QUERIES_RANDOM = 700, 100, 200
ORACLE_QUERIES = 40


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def generate(count: int, layout: str, seed: int) -> np.ndarray:
    """Uniform random hashes, or near-duplicate families of about ten (as real lists cluster)."""
    rng = np.random.default_rng(seed)
    full = np.iinfo(np.uint64).max
    if layout == "uniform":
        return rng.integers(0, full, size=(count, 4), dtype=np.uint64, endpoint=True)
    roots = rng.integers(0, full, size=(max(1, count // 10), 4), dtype=np.uint64, endpoint=True)
    members = roots[rng.integers(0, len(roots), count)]
    for _ in range(6):  # up to six flipped bits per member
        word = rng.integers(0, 4, count)
        bit = rng.integers(0, 64, count).astype(np.uint64)
        flip = rng.integers(0, 2, count).astype(np.uint64)
        members[np.arange(count), word] ^= flip << bit
    return members


def flipped(row: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    raw = row.copy().view(np.uint8).copy()
    for bit in rng.choice(256, size=bits, replace=False):
        raw[bit // 8] ^= 1 << (bit % 8)
    return raw.view(np.uint64)


def queries(hashes: np.ndarray, seed: int) -> Planned:
    """(query, source row or -1, planted distance)."""
    rng = np.random.default_rng(seed + 1)
    planned = []
    for far in (False,) * QUERIES_PLANTED + (True,) * QUERIES_FAR:
        row = int(rng.integers(len(hashes)))
        distance = int(rng.integers(32, 41)) if far else int(rng.integers(0, THRESHOLD + 1))
        planned.append((flipped(hashes[row], distance, rng), row, distance))
    for _ in range(QUERIES_RANDOM):
        planned.append((rng.integers(0, 2**64 - 1, 4, dtype=np.uint64, endpoint=True), -1, -1))
    return planned


def hex_of(words: np.ndarray) -> str:
    return words.astype("<u8").tobytes()[::-1].hex()


def check(
    hashes: np.ndarray, planned: Planned, results: list[list[tuple[int, int]]]
) -> dict[str, Any]:
    """Recall on planted queries, reports beyond the threshold, and an oracle sample."""
    recalled = planted = beyond = wrong = 0
    for (query, row, distance), found in zip(planned, results, strict=True):
        reported = dict(found)
        if 0 <= distance <= THRESHOLD:
            planted += 1
            recalled += reported.get(row) == distance
        for payload, reported_distance in found:
            true = int(np.bitwise_count(hashes[payload] ^ query).sum())
            beyond += true > THRESHOLD
            wrong += true != reported_distance
    oracle_mismatches = 0
    for (query, _, _), found in list(zip(planned, results, strict=True))[:ORACLE_QUERIES]:
        distances = np.bitwise_count(hashes ^ query).sum(axis=1)
        expected = set(np.flatnonzero(distances <= THRESHOLD).tolist())
        oracle_mismatches += expected != {payload for payload, _ in found}
    return {
        "recall": recalled / planted,
        "reports_beyond_threshold": beyond,
        "wrong_distances": wrong,
        "oracle_mismatches": oracle_mismatches,
    }


def timed_queries(search: Any, planned: Planned) -> tuple[list[float], list[list[tuple[int, int]]]]:
    seconds, results = [], []
    for query, _, _ in planned:
        start = time.perf_counter()
        found = search(query)
        seconds.append(time.perf_counter() - start)
        results.append(found)
    return seconds, results


def run_pdqindex(hashes: np.ndarray, planned: Planned) -> dict[str, Any]:
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex  # noqa: PLC0415

    before = rss_mib()
    start = time.perf_counter()
    index = PDQIndex((hex_of(row), number) for number, row in enumerate(hashes))
    build = time.perf_counter() - start
    memory = rss_mib() - before

    def search(query: np.ndarray) -> list[tuple[int, int]]:
        return [(m.metadata, m.similarity_info.distance) for m in index.query(hex_of(query))]

    seconds, results = timed_queries(search, planned)
    return {
        "build_s": build,
        "rss_mib": memory,
        "seconds": seconds,
        **check(hashes, planned, results),
    }


def run_ours(hashes: np.ndarray, planned: Planned, seed: int) -> dict[str, Any]:
    from hashguard.matching import snapshot  # noqa: PLC0415
    from hashguard.matching.pdq import PdqIndex  # noqa: PLC0415

    count = len(hashes)
    thresholds = np.array([THRESHOLD], dtype=np.int16)
    before = rss_mib()
    start = time.perf_counter()
    index = PdqIndex(hashes.copy(), np.arange(count, dtype=np.int64), np.zeros(count, np.uint16))
    build = time.perf_counter() - start
    memory = rss_mib() - before

    def search(query: np.ndarray) -> list[tuple[int, int]]:
        hits = index.search(query, thresholds)
        return list(zip(hits.payloads.tolist(), hits.distances.tolist(), strict=True))

    seconds, results = timed_queries(search, planned)
    figures: dict[str, Any] = {"build_s": build, "rss_mib": memory, "seconds": seconds}
    figures |= check(hashes, planned, results)

    rng = np.random.default_rng(seed + 2)
    others = [rng.integers(0, 2**64 - 1, 4, dtype=np.uint64, endpoint=True) for _ in range(7)]
    dihedral = []
    for query, _, _ in planned[:300]:
        start = time.perf_counter()
        for variant in (query, *others):
            index.search(variant, thresholds)
        dihedral.append(time.perf_counter() - start)
    figures["dihedral_seconds"] = dihedral

    added = generate(1_000, "uniform", seed + 3)
    start = time.perf_counter()
    index.add(added, np.arange(count, count + 1_000, dtype=np.int64), np.zeros(1_000, np.uint16))
    figures["add_1000_s"] = time.perf_counter() - start
    figures["added_found"] = sum(
        int(count + i) in index.search(row, thresholds).payloads.tolist()
        for i, row in enumerate(added)
    )
    start = time.perf_counter()
    figures["removed"] = index.remove(np.arange(0, 1_000, dtype=np.int64))
    figures["remove_1000_s"] = time.perf_counter() - start

    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "out") as folder:
        path = Path(folder) / "index.snapshot"
        fresh = index.compacted()
        start = time.perf_counter()
        snapshot.write(path, fresh.arrays(), {"threshold": THRESHOLD})
        figures["snapshot_save_s"] = time.perf_counter() - start
        figures["snapshot_mib"] = path.stat().st_size / 2**20
        del fresh
        path.read_bytes()  # page cache warm, as after the save
        start = time.perf_counter()
        arrays, meta = snapshot.read(path)
        loaded = PdqIndex.from_arrays(arrays, threshold=meta["threshold"])
        figures["snapshot_load_s"] = time.perf_counter() - start
        figures["loaded_entries"] = len(loaded)
    return figures


def run_exact(count: int, seed: int) -> dict[str, Any]:
    from hashguard.domain.signals import Algorithm  # noqa: PLC0415
    from hashguard.matching.exact import CODES, ExactIndex  # noqa: PLC0415

    rng = np.random.default_rng(seed + 4)
    before = rss_mib()
    raw = np.zeros((count, 32), np.uint8)
    raw[:, :16] = rng.integers(0, 256, (count, 16), dtype=np.uint8)  # MD5-sized digests
    start = time.perf_counter()
    index = ExactIndex(
        np.full(count, CODES[Algorithm.MD5], np.uint8),
        raw,
        np.arange(count, dtype=np.int64),
        np.zeros(count, np.uint16),
    )
    build = time.perf_counter() - start
    sample = raw[rng.integers(0, count, 3_000), :16].copy()
    del raw  # the index keeps its own sorted copy
    memory = rss_mib() - before
    hits = [(Algorithm.MD5, row.tobytes().hex()) for row in sample]
    misses = [(Algorithm.MD5, rng.bytes(16).hex()) for _ in range(30_000)]
    timings = {}
    for name, wanted in (("miss", misses), ("hit", hits)):
        start = time.perf_counter()
        found = 0
        for first in range(0, len(wanted), 3):  # a file's three digests per call
            found += len(index.lookup(wanted[first : first + 3]))
        timings[f"exact_{name}_us"] = (time.perf_counter() - start) / len(wanted) * 1e6
        timings[f"exact_{name}_found"] = found
    return {"exact_build_s": build, "exact_rss_mib": memory, **timings}


def main(arguments: list[str]) -> None:
    impl, count, layout, seed = arguments[0], int(arguments[1]), arguments[2], int(arguments[3])
    hashes = generate(count, layout, seed)
    planned = queries(hashes, seed)
    if impl == "pdqindex":
        result = run_pdqindex(hashes, planned)
    else:
        result = run_ours(hashes, planned, seed) | run_exact(count, seed)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
