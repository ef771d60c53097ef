"""Retro-matching figures: new PDQ entries against an index over kept signals (same run).

The kept-signal index (``hashguard.matching.kept.KeptIndex``) is built over synthetic
uniform random 256-bit hashes in a child process (``python -m bench.retro COUNT``), so
the resident memory reported is the index's alone. The real PDQ hashes of a few benign
generated images are planted among them. Queries are new entries: half are random (no
kept signal near), half are kept signals with 8 bits flipped (each must be found:
recall), plus the planted real hashes with 4-12 bits flipped (each must find its
image's kept signal). The baseline is a brute-force scan of every kept signal per query.
Targets: 1,000 new entries in <= 1 s and 100,000 in <= 30 s against 10 M kept signals.

Partitions (``python -m bench.retro --partitions N COUNT``): the same count split over
``N`` Ray actors on a local 2-CPU Ray (``hashguard.scan.retroray``), each building its
share; batches of 1,000 new entries are broadcast; wall time per 1,000 at the driver,
CPU per actor, memory per partition. From them, the 1,000,000,000-kept-signal
projection (``docs/architecture.md``, "Retro-matching at scale").
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
#: partition counts measured on this machine's local Ray (2 CPUs)
PARTITIONS = (2, 4)
#: kept signals per partition assumed in the 1,000,000,000 projection (one measured size)
PROJECTION_ROWS = 10_000_000
PROJECTION_TOTAL = 1_000_000_000
#: batches of 1,000 new entries timed per partition count (median reported)
BATCHES = 5


def real_hashes(count: int = 6) -> Any:
    """The reference PDQ hashes of ``count`` benign generated images, packed."""
    from hashguard.demo.corpus import Kind, encode, generate  # noqa: PLC0415
    from hashguard.hashing.kernel import HashOptions, hash_data  # noqa: PLC0415
    from hashguard.matching.pdq import pack  # noqa: PLC0415

    values = []
    for number in range(count):
        kind = Kind.PHOTO if number % 2 else Kind.TEXTURE
        output = hash_data(
            encode(generate(kind, 1800 + number, 640, 480)), HashOptions(max_pixels=50_000_000)
        )
        assert output.signals is not None
        assert output.signals.pdq
        values.append(output.signals.pdq[0].value)
    return pack(values)


def planted_ids(count: int, planted: int) -> list[int]:
    """Where the real hashes sit among ``count`` kept signals (spread, deterministic)."""
    return [(count // (planted + 1)) * (i + 1) + i for i in range(planted)]


def random_kept(count: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**64 - 1, (count, 4), dtype=np.uint64, endpoint=True)


def _flipped(real: Any, rng: np.random.Generator) -> Any:
    """Each real hash with 4-12 random bits flipped (well within the threshold)."""
    out = real.copy()
    for row in out:
        for bit in rng.choice(256, size=int(rng.integers(4, 13)), replace=False):
            row[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return out


def _queries(hashes: np.ndarray[Any, Any], count: int, rng: np.random.Generator) -> Any:
    """``count`` packed queries: half near a kept signal (8 bits flipped), half random."""
    near = hashes[rng.integers(0, len(hashes), count // 2)].copy()
    near[:, 0] ^= np.uint64(0xFF)
    far = rng.integers(0, 2**63, (count - count // 2, 4), dtype=np.uint64)
    return np.concatenate([near, far])


def measure(count: int, seed: int = 7) -> dict[str, Any]:
    """Build the index over ``count`` random kept signals (real hashes planted); time
    1,000 and 100,000 new entries (wall and CPU); resident memory; recall of the planted
    near copies and of the real hashes; the brute-force baseline."""
    from hashguard.matching.kept import KeptIndex  # noqa: PLC0415

    real = real_hashes()
    rng = np.random.default_rng(seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hashes = random_kept(count, seed)
    planted = planted_ids(count, len(real))
    hashes[planted] = real
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
        packed = np.concatenate([_flipped(real, rng), _queries(hashes, new - len(real), rng)])
        limits = np.full(new, THRESHOLD, dtype=np.int16)
        start, cpu = time.perf_counter(), time.process_time()
        hits = index.search_packed(packed, limits)
        figures[f"q{new}_s"] = time.perf_counter() - start
        # CPU time too: on a shared machine the wall time says more about the neighbours
        figures[f"q{new}_cpu_s"] = time.process_time() - cpu
        # the first len(real) queries are the real hashes; then (new - len(real)) // 2 near
        near = range(len(real), len(real) + (new - len(real)) // 2)
        found = set(hits.queries.tolist())
        figures[f"q{new}_recall"] = len(found & set(near)) / len(near)
        figures[f"q{new}_false"] = len(found - set(near) - set(range(len(real))))
        pairs = set(zip(hits.queries.tolist(), hits.kept_ids.tolist(), strict=True))
        figures[f"q{new}_real_found"] = sum((i, k) in pairs for i, k in enumerate(planted))
    figures["real_planted"] = len(real)
    # baseline: brute force, a few queries, scaled to 1,000
    sample = _queries(hashes, 4, rng)
    start = time.perf_counter()
    for query in sample:
        np.bitwise_count(hashes ^ query).sum(axis=1) <= THRESHOLD  # noqa: B015
    figures["brute_1000_s"] = (time.perf_counter() - start) / len(sample) * 1000
    return figures


def synthetic_partition(count: int, seed: int, part: int, parts: int) -> Any:
    """Partition ``part`` of ``parts`` of ``count`` synthetic kept signals (kept ids
    ``part, part + parts, …``, as the store's ``id % parts`` split), the real hashes
    planted at their ids: built inside the actor, as an actor builds from the store."""
    from hashguard.matching.kept import KeptIndex  # noqa: PLC0415

    ids = np.arange(part, count, parts, dtype=np.int64)
    hashes = random_kept(len(ids), seed * 1000 + part)
    real = real_hashes()
    for number, kept_id in enumerate(planted_ids(count, len(real))):
        if kept_id % parts == part:
            hashes[kept_id // parts] = real[number]
    return KeptIndex(hashes, ids, threshold=THRESHOLD)


def measure_partitions(count: int, partitions: int, seed: int = 7) -> dict[str, Any]:
    """``count`` kept signals over ``partitions`` actors of a local 2-CPU Ray: load
    time and memory per partition; wall (driver) and CPU (actors) per 1,000 new entries."""
    import functools  # noqa: PLC0415
    import os  # noqa: PLC0415

    from hashguard.scan.retroray import partitioned  # noqa: PLC0415

    # the actors import bench.retro (this module) to build their share
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    import ray  # noqa: PLC0415 - the bulk extra; this child process only

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        real = real_hashes()
        planted = planted_ids(count, len(real))
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        with partitioned(
            partitions,
            lambda k: functools.partial(synthetic_partition, count, seed, k, partitions),
        ) as search:
            load_wall = time.perf_counter() - start
            walls, cpus, real_found = [], [], 0
            for _batch in range(BATCHES):
                far = rng.integers(0, 2**64 - 1, (1_000 - len(real), 4), np.uint64, endpoint=True)
                queries = np.concatenate([_flipped(real, rng), far])
                hits, _rows = search(queries, np.full(1_000, THRESHOLD, dtype=np.int16))
                assert search.last is not None
                walls.append(search.last.wall_s)
                cpus.append(max(search.last.cpu_s))
                pairs = set(zip(hits.queries.tolist(), hits.kept_ids.tolist(), strict=True))
                real_found = min(
                    real_found if _batch else len(real),
                    sum((i, k) in pairs for i, k in enumerate(planted)),
                )
            peaks = search.peak_rss()
            stats = search.stats
    finally:
        ray.shutdown()
    return {
        "count": count,
        "partitions": partitions,
        "rows_per_partition": max(s.rows for s in stats),
        "load_wall_s": load_wall,
        "load_cpu_s": max(s.load_cpu_s for s in stats),
        "index_mb": max(s.index_bytes for s in stats) / 2**20,
        "rss_mb": max(s.rss_bytes for s in stats) / 2**20,
        "peak_rss_mb": max(peaks) / 2**20,
        "q1000_s": float(np.median(walls)),
        "q1000_actor_cpu_s": float(np.median(cpus)),
        "real_found": real_found,
        "real_planted": len(real),
    }


def _measure_child(count: int, partitions: int = 1) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.retro", "--partitions", str(partitions), str(count)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"retro worker {count} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _single_rows(count: int, got: dict[str, Any]) -> list[Row]:
    label = f"{count / 1e6:g} M kept"
    judged = count >= 10_000_000
    # Judged on CPU time: on this shared 2-core machine (load 5-15 while measured) the
    # wall time measures the neighbours; both are reported.
    ok_1k = got["q1000_cpu_s"] <= 1.0
    ok_100k = got["q100000_cpu_s"] <= 30.0
    real_ok = got["q1000_real_found"] == got["q100000_real_found"] == got["real_planted"]
    recall = min(got["q1000_recall"], got["q100000_recall"])
    return [
        Row(
            figure=f"retro: 1,000 new PDQ entries vs {label} (CPU)",
            value=round(got["q1000_cpu_s"], 3),
            unit="s",
            extra={"wall s": round(got["q1000_s"], 3)},
            baseline=round(got["brute_1000_s"], 2),
            ratio=round(got["q1000_cpu_s"] / got["brute_1000_s"], 4),
            target="<= 1 s at 10 M",
            verdict=(PASS if ok_1k else FAIL) if judged else INFO,
        ),
        Row(
            figure=f"retro: 100,000 new PDQ entries vs {label} (CPU)",
            value=round(got["q100000_cpu_s"], 2),
            unit="s",
            extra={"wall s": round(got["q100000_s"], 2)},
            target="<= 30 s at 10 M",
            verdict=(PASS if ok_100k else FAIL) if judged else INFO,
        ),
        Row(
            figure=f"retro: kept-signal index, {label}",
            value=f"{got['nbytes'] / 2**20:.0f} MiB arrays "
            f"({got['nbytes'] / count:.0f} B a kept hash), {got['rss_mb']:.0f} MiB peak RSS "
            f"growth, built in {got['build_cpu_s']:.1f} s CPU",
            unit="",
            details={k: float(v) for k, v in got.items()},
        ),
        Row(
            figure=f"retro: recall, planted near copies and real PDQ hashes, {label}",
            value=recall if real_ok else 0.0,
            unit="",
            target="1.0",
            verdict=PASS if recall == 1.0 and real_ok and not got["q1000_false"] else FAIL,
        ),
    ]


def _partition_rows(got: dict[str, Any]) -> list[Row]:
    label = f"{got['partitions']} partitions of {got['rows_per_partition'] / 1e6:g} M"
    return [
        Row(
            figure=f"retro on Ray (2 CPUs): 1,000 new entries, {label}",
            value=round(got["q1000_s"], 3),
            unit="s",
            extra={"CPU s per actor": round(got["q1000_actor_cpu_s"], 3)},
            target="info",
            verdict=INFO,
        ),
        Row(
            figure=f"retro on Ray: memory per partition, {label}",
            value=f"{got['index_mb']:.0f} MiB index, {got['rss_mb']:.0f} MiB RSS growth, "
            f"{got['peak_rss_mb']:.0f} MiB actor peak; loaded in {got['load_cpu_s']:.1f} s CPU",
            unit="",
            details={k: float(v) for k, v in got.items()},
        ),
        Row(
            figure=f"retro on Ray: real PDQ hashes found, {label}",
            value=got["real_found"],
            unit=f"of {got['real_planted']}",
            target="all",
            verdict=PASS if got["real_found"] == got["real_planted"] else FAIL,
        ),
    ]


def projection(single: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, float]:
    """What ``PROJECTION_TOTAL`` kept signals need, in partitions of ``PROJECTION_ROWS``:
    the index's bytes per row as measured, one actor (one CPU) per partition, and per
    1,000 new entries the measured single-index CPU time (every actor searches its
    partition at once) plus the driver's broadcast-and-merge overhead seen here."""
    per_row = single["nbytes"] / single["count"]
    overhead = min((p["q1000_s"] - p["q1000_actor_cpu_s"] for p in parts), default=0.0)
    actors = PROJECTION_TOTAL / PROJECTION_ROWS
    # Search time is not scaled: a multi-index query costs about the same at 1 M and 10 M
    # rows (its chunks widen with the count); BENCH_SCALE=full measures it at 10 M.
    return {
        "actors": actors,
        "index_gib_per_partition": per_row * PROJECTION_ROWS / 2**30,
        "index_gib_total": per_row * PROJECTION_TOTAL / 2**30,
        "search_s_per_1000": single["q1000_cpu_s"],
        "driver_overhead_s": max(overhead, 0.0),
        "cpu_s_per_1000": single["q1000_cpu_s"] * actors,
        "measured_at": single["count"],
    }


def retro_rows(scale: Scale, say: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    counts = SIZES.get(scale.name, SIZES["small"])
    single: dict[str, Any] = {}
    for count in counts:
        say(f"retro-matching: index over {count:,} kept signals")
        single = _measure_child(count)
        rows += _single_rows(count, single)
    parts = []
    for partitions in PARTITIONS:
        say(f"retro-matching: {counts[-1]:,} kept signals over {partitions} Ray actors")
        got = _measure_child(counts[-1], partitions)
        parts.append(got)
        rows += _partition_rows(got)
    plan = projection(single, parts)
    rows.append(
        Row(
            figure="retro: projection for 1,000,000,000 kept signals",
            value=f"{plan['actors']:.0f} actors of {PROJECTION_ROWS / 1e6:g} M, "
            f"{plan['index_gib_per_partition']:.1f} GiB index each "
            f"({plan['index_gib_total']:.0f} GiB in all); per 1,000 new entries "
            f"{plan['search_s_per_1000']:.2f} s of search on every actor at once "
            f"({plan['cpu_s_per_1000']:.0f} CPU s in all; measured at "
            f"{plan['measured_at'] / 1e6:g} M) + the broadcast and merge "
            f"({plan['driver_overhead_s']:.2f} s here, wall at the driver less actor CPU)",
            unit="",
            target="info",
            verdict=INFO,
            details=plan,
        )
    )
    return rows


def _main(argv: list[str]) -> dict[str, Any]:
    partitions = 1
    if argv[:1] == ["--partitions"]:
        partitions, argv = int(argv[1]), argv[2:]
    count = int(argv[0])
    return measure(count) if partitions == 1 else measure_partitions(count, partitions)


if __name__ == "__main__":
    print(json.dumps(_main(sys.argv[1:])))
