"""Scan figures: ``hashguard scan`` in both PDQ modes against the HMA path and the decode floor.

Baselines, measured in this process on the same page-cached files and interleaved
round-robin with the scans: the HMA path (MD5 + threatexchange's ``PdqSignal`` per
file) and, for 1 MP, the decode floor (``bench.floor``).

``hashguard scan`` runs as a real subprocess with a fresh SQLite store each time, once
per PDQ mode (``--pdq-mode fast``, the default, and ``reference``) and worker count.
Its wall time includes start-up: the interpreter, imports, the store's migrations and
the spawning of hashing workers, about 1.2 s. The fast path hashes several hundred
1 MP files/s, so a scan of a few hundred files would be mostly start-up, and ``wall -
start-up`` would be the difference of two noisy timings of similar size. Throughput is
therefore judged on the **in-run** rate: every result line is timestamped as it
arrives, and the rate runs from the end of each worker's first task (the scanner
hands a worker ``BATCH`` files per task and their results arrive together; the first
task also carries the worker's warm-up) to the last result line. Start-up and the
final commit are outside that window by construction. The full-scale corpora are
1,000 x 1 MP and 90 x 12 MP files so that the window lasts seconds. Its one bias: up
to three tasks per worker are in flight, so if the window's first line is late (the
parent was busy), files hashed before the window opened are counted in it; that
flatters the rate by a few % at full scale and more at the small scale (100 x 1 MP,
6 x 12 MP), whose verdicts are a smoke test. Reported as cross-checks, not judged:

- wall: the whole command, start-up included;
- ``wall - start-up``: start-up is a scan of one tiny file, timed on its own (a scan of
  an empty folder never starts the worker pool, so it would miss the spawning). It is
  timed in the default (fast) mode and subtracted from both modes' scans.

"1 worker" means one hashing process. The scan's parent process (pebble's threads,
matching, SQLite writes, the JSON lines) runs beside it, on the second core when there
is one, so a 1-worker scan is not confined to one core as the in-process baselines are.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from threatexchange.signal_type.pdq.signal import PdqSignal

from bench.budget import budget_rows
from bench.cli import BenchError, Finished, run_hashguard
from bench.config import REPEATS
from bench.corpus import Corpus, startup_dirs, warm_page_cache
from bench.floor import DESCRIPTIONS, NAMES, Floor, decode_floor
from bench.report import FAIL, INFO, Row, at_least
from bench.timing import median, round_robin, timed
from hashguard.domain.signals import PdqMode
from hashguard.scan.scanner import BATCH

WORKERS = (1, 2)
MODES = (PdqMode.FAST, PdqMode.REFERENCE)
#: hashguard with 1 worker over the HMA path, in-run, by (mode, corpus).
TARGET_RATIO = {
    (PdqMode.FAST, "1 MP"): 3.5,
    (PdqMode.FAST, "12 MP"): 12.0,
    (PdqMode.REFERENCE, "1 MP"): 1.0,
    (PdqMode.REFERENCE, "12 MP"): 1.0,
}
#: 2 workers over 1, in-run; judged for the fast mode only.
TARGET_SCALING = 1.8
#: The fast mode, 1 worker, 1 MP, over the full-size luma decode floor.
TARGET_FLOOR = 0.7
FLOOR_CORPUS = "1 MP"
#: How ``hashguard scan --json`` starts the line of each file's result.
_FILE_LINE = '{"type": "file"'


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    seconds: float
    #: Files/s from the first results (one per worker) to the last; hashguard only.
    in_run: float | None = None


def hma_path(files: tuple[Path, ...]) -> Sample:
    """What HMA does per file, in this process: MD5 of the bytes, then PdqSignal from the file."""

    def work() -> None:
        for path in files:
            hashlib.md5(path.read_bytes()).hexdigest()
            PdqSignal.hash_from_file(path)

    return Sample(seconds=timed(work))


def floor_path(files: tuple[Path, ...], floor: Floor) -> Sample:
    return Sample(seconds=decode_floor(files, floor))


def _summary(done: Finished) -> dict[str, object] | None:
    for line in reversed(done.stdout):
        try:
            shown = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(shown, dict) and shown.get("type") == "summary":
            return shown
    return None


def _check_all_no_match(done: Finished, expected: int, what: str) -> None:
    summary = _summary(done)
    counts = summary.get("counts") if summary else None
    if (
        done.returncode != 0
        or summary is None
        or summary.get("total") != expected
        or not isinstance(counts, dict)
        or counts.get("no_match") != expected
    ):
        raise BenchError(
            f"{what}: exit {done.returncode}, expected {expected} files all no_match, "
            f"summary {summary}\n{done.tail()}"
        )


def _in_run_rate(done: Finished, workers: int) -> float | None:
    """Files/s after each worker's first task: the scanner hands a worker ``BATCH`` files
    per task and their results arrive together, so the first ``workers * BATCH`` results
    mark the start of the steady state."""
    arrivals = [
        at
        for at, line in zip(done.arrivals, done.stdout, strict=True)
        if line.startswith(_FILE_LINE)
    ]
    skip = workers * BATCH
    if len(arrivals) <= skip or arrivals[-1] <= arrivals[skip - 1]:
        return None
    return (len(arrivals) - skip) / (arrivals[-1] - arrivals[skip - 1])


def hashguard_scan(
    directory: Path, *, workers: int, expected: int, mode: PdqMode = PdqMode.FAST
) -> Sample:
    """``hashguard scan --json`` on a fresh store; every file must come out no_match."""
    with tempfile.TemporaryDirectory(prefix="hashguard-bench-home-") as home:
        args = ["scan", str(directory), "--json", "--workers", str(workers), "--rescan"]
        args += ["--pdq-mode", str(mode)]
        done = run_hashguard(args, home=Path(home))
    what = f"hashguard scan {directory} --workers {workers} --pdq-mode {mode}"
    _check_all_no_match(done, expected, what)
    return Sample(seconds=done.seconds, in_run=_in_run_rate(done, workers))


Key = tuple[object, ...]


def _measures(corpora: list[Corpus], empty: Path, one: Path) -> dict[Key, Callable[[], Sample]]:
    """Every timed command, keyed; run round-robin so baselines and hashguard alternate."""
    measures: dict[Key, Callable[[], Sample]] = {
        ("startup", "empty"): partial(hashguard_scan, empty, workers=1, expected=0),
    }
    for workers in WORKERS:
        measures["startup", workers] = partial(hashguard_scan, one, workers=workers, expected=1)
    for corpus in corpora:
        measures["hma", corpus.label] = partial(hma_path, corpus.files)
        if corpus.label == FLOOR_CORPUS:
            for floor in Floor:
                measures["floor", floor] = partial(floor_path, corpus.files, floor)
        for mode in MODES:
            for workers in WORKERS:
                measures["scan", corpus.label, mode, workers] = partial(
                    hashguard_scan,
                    corpus.directory,
                    workers=workers,
                    expected=len(corpus.files),
                    mode=mode,
                )
    return measures


def _seconds(samples: list[Sample]) -> list[float]:
    return [sample.seconds for sample in samples]


def _startup_rows(samples: dict[Key, list[Sample]]) -> list[Row]:
    empty = _seconds(samples["startup", "empty"])
    rows = [
        Row(
            figure="start-up: scan of an empty folder (worker pool never starts)",
            value=median(empty),
            unit="s",
            samples=empty,
        )
    ]
    for workers in WORKERS:
        seconds = _seconds(samples["startup", workers])
        rows.append(
            Row(
                figure=f"start-up incl. spawning {workers} worker(s): scan of 1 tiny file",
                value=median(seconds),
                unit="s",
                target="subtracted below",
                samples=seconds,
            )
        )
    return rows


@dataclass(frozen=True, kw_only=True, slots=True)
class Rates:
    """Files/s of one corpus, mode and worker count, from the median of its runs."""

    wall: float
    steady: float
    in_run: float | None
    wall_samples: list[float]
    in_run_samples: list[float]


def _rates(corpus: Corpus, mode: PdqMode, workers: int, samples: dict[Key, list[Sample]]) -> Rates:
    files = len(corpus.files)
    runs = samples["scan", corpus.label, mode, workers]
    wall_seconds = median(_seconds(runs))
    startup = median(_seconds(samples["startup", workers]))
    in_runs = [run.in_run for run in runs if run.in_run is not None]
    return Rates(
        wall=files / wall_seconds,
        steady=files / max(wall_seconds - startup, 1e-9),
        in_run=median(in_runs) if in_runs else None,
        wall_samples=_seconds(runs),
        in_run_samples=in_runs,
    )


def _judged(ratio: float | None, target: float | None) -> tuple[str, str]:
    """(target, verdict) of a ratio; a judged figure that could not be measured fails."""
    if target is None:
        return INFO, INFO
    if ratio is None:
        return f">= {target}", FAIL
    return f">= {target}", at_least(ratio, target)


def _worker_rows(name: str, rates: Rates, hma: float, target: float | None) -> list[Row]:
    """Wall, wall - start-up and in-run rates against the HMA path; in-run is judged."""
    in_run_ratio = rates.in_run / hma if rates.in_run is not None else None
    shown, verdict = _judged(in_run_ratio, target)
    return [
        Row(
            figure=f"{name}, wall",
            value=rates.wall,
            unit="files/s",
            baseline=hma,
            ratio=rates.wall / hma,
            samples=rates.wall_samples,
        ),
        Row(
            figure=f"{name}, steady (wall - start-up, cross-check)",
            value=rates.steady,
            unit="files/s",
            baseline=hma,
            ratio=rates.steady / hma,
        ),
        Row(
            figure=f"{name}, steady (in-run)",
            value=rates.in_run,
            unit="files/s",
            baseline=hma,
            ratio=in_run_ratio,
            target=shown,
            verdict=verdict,
            samples=rates.in_run_samples,
            samples_unit="files/s",
        ),
    ]


def _scaling_row(name: str, one: Rates, two: Rates, target: float | None) -> Row:
    scaling = two.in_run / one.in_run if one.in_run and two.in_run else None
    shown, verdict = _judged(scaling, target)
    return Row(
        figure=f"{name}: 2 workers / 1 worker (in-run)",
        value=two.in_run,
        unit="files/s",
        baseline=one.in_run,
        ratio=scaling,
        target=shown,
        verdict=verdict,
    )


def _floor_rows(corpus: Corpus, fast: Rates, samples: dict[Key, list[Sample]]) -> list[Row]:
    """Each decode floor, then the fast scan (1 worker, in-run) over it."""
    rows = []
    for floor in Floor:
        seconds = _seconds(samples["floor", floor])
        rate = len(corpus.files) / median(seconds)
        ratio = fast.in_run / rate if fast.in_run is not None else None
        shown, verdict = _judged(ratio, TARGET_FLOOR if floor is Floor.FULL else None)
        what = f"decode floor {NAMES[floor]}, {corpus.label}"
        rows += [
            Row(
                figure=f"{what}: read + md5 + Pillow {DESCRIPTIONS[floor]}, 1 process",
                value=rate,
                unit="files/s",
                target="baseline",
                samples=seconds,
            ),
            Row(
                figure=f"hashguard scan (fast), {corpus.label}, 1 worker (in-run) / {what}",
                value=fast.in_run,
                unit="files/s",
                baseline=rate,
                ratio=ratio,
                target=shown,
                verdict=verdict,
                samples=fast.in_run_samples,
                samples_unit="files/s",
            ),
        ]
    return rows


def _corpus_rows(corpus: Corpus, samples: dict[Key, list[Sample]]) -> list[Row]:
    label = corpus.label
    hma_seconds = _seconds(samples["hma", label])
    hma = len(corpus.files) / median(hma_seconds)
    rows = [
        Row(
            figure=f"HMA path, {len(corpus.files)} x {label}: md5 + PdqSignal, 1 process",
            value=hma,
            unit="files/s",
            target="baseline",
            samples=hma_seconds,
        )
    ]
    fast: Rates | None = None
    for mode in MODES:
        rates = {workers: _rates(corpus, mode, workers, samples) for workers in WORKERS}
        for workers, rate in rates.items():
            target = TARGET_RATIO[mode, label] if workers == 1 else None
            name = f"hashguard scan ({mode}), {label}, {workers} worker(s)"
            rows += _worker_rows(name, rate, hma, target)
        scaling = TARGET_SCALING if mode is PdqMode.FAST else None
        name = f"hashguard scaling ({mode}), {label}"
        rows.append(_scaling_row(name, rates[1], rates[2], scaling))
        if mode is PdqMode.FAST:
            fast = rates[1]
    if label == FLOOR_CORPUS and fast is not None:
        rows += _floor_rows(corpus, fast, samples)
    return rows


def scan_rows(corpora: list[Corpus], on_round: Callable[[int], None]) -> list[Row]:
    empty, one = startup_dirs()
    for corpus in corpora:
        warm_page_cache(corpus.files)
    # Untimed: compiles the children's bytecode cache and warms the OS caches.
    for mode in MODES:
        hashguard_scan(one, workers=1, expected=1, mode=mode)
    samples = round_robin(_measures(corpora, empty, one), REPEATS, on_round)
    rows = _startup_rows(samples)
    for corpus in corpora:
        rows += _corpus_rows(corpus, samples)
    return rows + budget_rows(corpora)
