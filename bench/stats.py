"""Statistics figures: reading a year by month from the rollups, and what counting costs
per scanned file.

Read: a fresh store (SQLite; PostgreSQL too with ``BENCH_POSTGRES_URL``) holding the
rollup rows a year of recording would leave for 10,000,000 files checked and 100,000
cases (every day of the year times the label combinations a host with five lists, two
remote services and every way in produces: ~400 count cells and ~60 timing cells a
day), inserted through the same upsert as the recording (not timed). Timed:
``StatsStore.monthly`` for the year (summed by month in the database) and the table
of each metric and labels by month, as ``hashguard stats --by month`` would build it.
Target: ≤ 1 s (wall); the process's CPU time is shown too, as the machine is shared.

Counting: one directory of benign generated images scanned twice per round through
the real scanner and pipeline (hashing pool, matcher, batches of 500), once with
counting on and once with it off (``Pipeline(counting=False)``, which exists for this
figure only), alternating which goes first. Figure: the extra time per file, and the
ratio of the two scan rates.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

from bench.config import REPEATS, Scale, postgres_url
from bench.report import FAIL, INFO, PASS, Row
from bench.timing import median
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.scans import FileResult, Outcome, ScanOptions
from hashguard.domain.signals import FileSignals
from hashguard.domain.stats import TIMING_BOUNDS, Metric, Timing
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.matching.matcher import Matcher
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline, Prepared
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.scan.sources import LocalFile
from hashguard.store import Store, open_store
from hashguard.store.stats import Cell, TimingCell, label_key

YEAR = 2025
FILES = 10_000_000
CASES = 100_000
#: images scanned per round, by scale
IMAGES = {"small": 300, "full": 2000}

BANKS = [("iwf", "iwf"), ("ncmec", "ncmec"), ("eokm", "eokm"), ("own", ""), ("te", "te")]
WAYS = ["scan", "upload", "notice", "bulk"]
OUTCOMES = ["matched", "no_match", "undecodable", "unsupported", "error", "not_answered"]


def _labels() -> dict[Metric, list[dict[str, str]]]:
    """The label combinations of one day: what a host with five lists, two remote
    services and every way in records."""
    return {
        Metric.FILES_CHECKED: [
            {"way": w, "kind": k, "outcome": o}
            for w, k, o in itertools.product(WAYS, ["image", "file", ""], OUTCOMES)
        ],
        Metric.MATCHES: [
            {"way": w, "bank": b, "source": s, "algorithm": a, "band": band}
            for w, (b, s), a, band in itertools.product(
                WAYS[:3], BANKS, ["md5", "sha1", "sha256", "pdq"], ["a", "b", "beyond"]
            )
        ],
        Metric.DECISIONS: [
            {"way": w, "decision": d}
            for w, d in itertools.product(WAYS[:3], ["act", "review", "ignore", "shadow"])
        ],
        Metric.REMOTE_CALLS: [
            {"service": s, "answer": a, "way": w}
            for s, a, w in itertools.product(
                ["photodna", "arachnid"], ["answered", "not_answered"], WAYS[:3]
            )
        ],
        Metric.CASES_OPENED: [
            {"way": w, "bank": b, "band": band}
            for w, (b, _), band in itertools.product(WAYS[:3], BANKS, ["a", "b"])
        ],
        Metric.CASES_DECIDED: [
            {"outcome": o, "bank": b, "band": band}
            for o, (b, _), band in itertools.product(
                ["confirmed", "false_positive", "escalated"], BANKS, ["a", "b"]
            )
        ],
        Metric.REPORTS: [{"state": s} for s in ["filed", "acknowledged", "failed"]],
        Metric.STATEMENTS: [
            {"source_type": s, "automated": a, "kind": k}
            for s, a, k in itertools.product(
                ["SOURCE_VOLUNTARY", "SOURCE_ARTICLE_16", "SOURCE_TRUSTED_NOTIFIER"],
                ["yes", "no"],
                ["automated", "manual"],
            )
        ],
        Metric.STATEMENTS_FILED: [{"state": s} for s in ["filed", "failed"]],
        Metric.NOTICES: [
            {"notifier_kind": n, "category": c, "channel": ch}
            for n, c, ch in itertools.product(
                ["user", "trusted_flagger", "hotline", "authority"],
                ["csam", "grooming", "other", "illegal", "privacy"],
                ["api", "form"],
            )
        ],
        Metric.NOTICES_DECIDED: [
            {"notifier_kind": n, "outcome": o}
            for n, o in itertools.product(
                ["user", "trusted_flagger", "hotline", "authority"],
                ["restricted", "not_restricted"],
            )
        ],
        Metric.REFERRALS: [{"hotline": h} for h in ["iwf", "eokm", "bee"]],
        Metric.REMOVALS: [{"way": w, "how": "quarantine"} for w in WAYS[:3]],
    }


def _year_cells() -> tuple[dict[Cell, int], dict[TimingCell, int], int]:
    """A year of rollup cells totalling ``FILES`` files checked and ``CASES`` cases."""
    combos = _labels()
    days = [date(YEAR, 1, 1) + timedelta(days=n) for n in range(365)]
    files_per_cell = FILES // (len(days) * len(combos[Metric.FILES_CHECKED]))
    cases_per_cell = max(1, CASES // (len(days) * len(combos[Metric.CASES_OPENED])))
    counts: dict[Cell, int] = {}
    for day in days:
        for metric, labels in combos.items():
            per = {Metric.FILES_CHECKED: files_per_cell, Metric.CASES_OPENED: cases_per_cell}
            for one in labels:
                counts[(day, metric, label_key(metric, one))] = per.get(metric, 3)
    timings: dict[TimingCell, int] = {
        (day, timing, bucket): 2
        for day in days
        for timing in Timing
        for bucket in range(0, len(TIMING_BOUNDS), 2)
    }
    return counts, timings, files_per_cell * len(days) * len(combos[Metric.FILES_CHECKED])


def _fill(store: Store, counts: dict[Cell, int], timings: dict[TimingCell, int]) -> None:
    items = list(counts.items())
    for start in range(0, len(items), 20_000):
        store.stats.add(dict(items[start : start + 20_000]))
    store.stats.add({}, timings)


def _read_year(store: Store) -> dict[tuple[int, str, tuple[tuple[str, str], ...]], int]:
    """The year by month: what ``hashguard stats --by month`` computes from the reader."""
    since, until = date(YEAR, 1, 1), date(YEAR, 12, 31)
    by_month: Counter[tuple[int, str, tuple[tuple[str, str], ...]]] = Counter()
    counts, timings = store.stats.monthly(since, until)
    for row in counts:
        by_month[(row.day.month, str(row.metric), tuple(row.labels.items()))] += row.value
    for timing in timings:
        by_month[(timing.day.month, str(timing.timing), (("bucket", str(timing.bucket)),))] += (
            timing.count
        )
    return by_month


def _read_rows(backend: str, url: str, progress: Callable[[str], None]) -> Row:
    counts, timings, files = _year_cells()
    with closing(open_store(url, migrate=True)) as store:
        store.stats.clear()
        progress(f"stats: {len(counts):,} count cells + {len(timings):,} timing cells, {backend}")
        _fill(store, counts, timings)
        samples, cpu = [], []
        for _ in range(REPEATS):
            start, start_cpu = time.perf_counter(), time.process_time()
            by_month = _read_year(store)
            samples.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        store.stats.clear()
    checked = sum(v for (_, m, _), v in by_month.items() if m == Metric.FILES_CHECKED)
    if checked != files:
        raise RuntimeError(f"read {checked} files checked, wrote {files}")
    value = median(samples)
    return Row(
        figure=f"stats: a year by month from the rollups ({files:,} files checked, "
        f"{CASES:,} cases; {len(counts) + len(timings):,} rows; {backend})",
        value=value,
        unit="s",
        target="<= 1 s",
        verdict=PASS if value <= 1.0 else FAIL,
        extra={"s CPU (client)": median(cpu)},
        samples=samples,
    )


def _images(folder: Path, count: int) -> None:
    for n in range(count):
        kind = Kind.PHOTO if n % 2 else Kind.TEXTURE
        (folder / f"{n:05d}.jpg").write_bytes(encode(generate(kind, 7000 + n, 320, 240)))


def _scan(store: Store, pool: HashingPool, folder: Path, *, counting: bool) -> float:
    matcher = Matcher.build(store.banks)
    pipeline = Pipeline(
        store=store,
        actor="system:bench",
        policies=lambda: policies_of(matcher.banks),
        counting=counting,
    )
    options = ScanOptions(max_pixels=50_000_000)
    prepared = prepare_run(store.scans, [str(folder)], options, rescan=True)
    scanner = Scanner(store=store.scans, matcher=matcher, pool=pool, pipeline=pipeline)
    start = time.perf_counter()
    scanner.run(prepared.run)
    return time.perf_counter() - start


def _counting_rows(scale: Scale, progress: Callable[[str], None]) -> list[Row]:
    count = IMAGES.get(scale.name, IMAGES["small"])
    on: list[float] = []
    off: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        _images(folder, count)
        url = f"sqlite:///{Path(scratch) / 'scan.db'}"
        options = HashOptions.for_scan(ScanOptions(max_pixels=50_000_000))
        with (
            closing(open_store(url, migrate=True)) as store,
            HashingPool(workers=2, options=options, timeout=60, memory_mb=2048) as pool,
        ):
            store.banks.create("bench-known")
            _scan(store, pool, folder, counting=True)  # warm-up: caches, pool
            for index in range(REPEATS):
                progress(f"stats: counting cost, round {index + 1}/{REPEATS}, {count} images")
                order = (True, False) if index % 2 == 0 else (False, True)
                for counting in order:
                    taken = _scan(store, pool, folder, counting=counting)
                    (on if counting else off).append(taken)
    per_file_on, per_file_off = median(on) / count, median(off) / count
    extra_us = (per_file_on - per_file_off) * 1e6
    return [
        Row(
            figure=f"stats: counting per scanned file ({count} benign 320x240 JPEGs, scanner "
            "+ pipeline, SQLite): extra time per file, counting on against off",
            value=extra_us,
            unit="µs/file",
            baseline=per_file_off * 1e6,
            ratio=per_file_on / per_file_off,
            target="info: the rollups' cost against the same scan without them",
            verdict=INFO,
            extra={"files/s on": count / median(on), "files/s off": count / median(off)},
            samples=[t / count * 1e6 for t in on],
            samples_unit="µs/file (counting on)",
        )
    ]


def _commit_rows(progress: Callable[[str], None]) -> Row:
    """The recording step alone: batches of 500 hashed results committed through the
    pipeline (results, counts), counting on against off, on one SQLite store."""
    batches, size = 6, 500
    on: list[float] = []
    off: list[float] = []
    cpu_on: list[float] = []
    cpu_off: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'commit.db'}"
        with closing(open_store(url, migrate=True)) as store:
            store.banks.create("bench-known")
            n = 0
            for index in range(REPEATS):
                progress(f"stats: commit path, round {index + 1}/{REPEATS}")
                order = (True, False) if index % 2 == 0 else (False, True)
                for counting in order:
                    pipeline = Pipeline(
                        store=store,
                        actor="system:bench",
                        policies=dict,
                        counting=counting,
                    )
                    run = store.scans.create_run(
                        roots=["/bench"],
                        resume_key=f"bench-{n}",
                        options=ScanOptions(max_pixels=1000),
                        pid=1,
                        host="bench",
                    )
                    taken = cpu = 0.0
                    for _ in range(batches):
                        items = []
                        for _ in range(size):
                            n += 1
                            digest = f"{n:064x}"
                            signals = FileSignals(
                                size=n, md5=digest[:32], sha1=digest[:40], sha256=digest,
                                image_format="JPEG",
                            )  # fmt: skip
                            result = FileResult(
                                path=f"/bench/{n}.jpg", outcome=Outcome.NO_MATCH, signals=signals
                            )
                            items.append(
                                Prepared(
                                    result=result, source=LocalFile(path=result.path, run_id=run.id)
                                )
                            )
                        start, start_cpu = time.perf_counter(), time.process_time()
                        pipeline.commit(items)
                        taken += time.perf_counter() - start
                        cpu += time.process_time() - start_cpu
                    (on if counting else off).append(taken / (batches * size))
                    (cpu_on if counting else cpu_off).append(cpu / (batches * size))
    # SQLite runs in this process: its CPU time is the stable figure on a shared machine
    extra_us = (median(cpu_on) - median(cpu_off)) * 1e6
    return Row(
        figure="stats: counting per recorded file, commit path only (batches of 500 "
        "results through Pipeline.commit, SQLite): extra CPU time per file, on against off",
        value=extra_us,
        unit="µs CPU/file",
        baseline=median(cpu_off) * 1e6,
        ratio=median(cpu_on) / median(cpu_off),
        extra={"µs wall/file on": median(on) * 1e6, "µs wall/file off": median(off) * 1e6},
        target="info: the rollups' cost inside the recording transaction",
        verdict=INFO,
        samples=[t * 1e6 for t in cpu_on],
        samples_unit="µs CPU/file (counting on)",
    )


def stats_rows(scale: Scale, progress: Callable[[str], None]) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        rows.append(_read_rows("SQLite", f"sqlite:///{Path(scratch) / 'stats.db'}", progress))
    url = postgres_url()
    if url is not None:
        rows.append(_read_rows("PostgreSQL", url, progress))
    rows.append(_commit_rows(progress))
    rows += _counting_rows(scale, progress)
    return rows
