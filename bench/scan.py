"""Scan figures: the HMA path (md5 + PdqSignal) against ``hashguard scan``, wall and steady state.

``hashguard scan`` runs as a real subprocess with a fresh SQLite store each time, so its
wall time includes start-up: the interpreter, imports, the store's migrations and the
spawning of hashing workers. Steady state is reported two ways:

- ``wall - start-up``: start-up is a scan of one tiny file, timed on its own (a scan of
  an empty folder never starts the worker pool, so it would miss the spawning). The
  >= 1.0 verdict is judged on this one.
- in-run: the rate from the first results to the last result line of the same scan,
  timed as the lines arrive; it needs no subtraction of two noisy timings (a cross-check).
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

from bench.cli import BenchError, Finished, run_hashguard
from bench.config import REPEATS
from bench.corpus import Corpus, startup_dirs, warm_page_cache
from bench.report import INFO, Row, at_least
from bench.timing import median, round_robin, timed

WORKERS = (1, 2)
#: hashguard per file must be at least as fast as the HMA path (steady state, 1 worker).
TARGET_RATIO = 1.0
#: 2 workers should be this much faster than 1 (informational until its own issue).
TARGET_SCALING = 1.8
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
    """Files/s from result ``workers`` to the last; results arrive ``workers`` at a time."""
    arrivals = [
        at
        for at, line in zip(done.arrivals, done.stdout, strict=True)
        if line.startswith(_FILE_LINE)
    ]
    if len(arrivals) <= workers or arrivals[-1] <= arrivals[workers - 1]:
        return None
    return (len(arrivals) - workers) / (arrivals[-1] - arrivals[workers - 1])


def hashguard_scan(directory: Path, *, workers: int, expected: int) -> Sample:
    """``hashguard scan --json`` on a fresh store; every file must come out no_match."""
    with tempfile.TemporaryDirectory(prefix="hashguard-bench-home-") as home:
        args = ["scan", str(directory), "--json", "--workers", str(workers), "--rescan"]
        done = run_hashguard(args, home=Path(home))
    _check_all_no_match(done, expected, f"hashguard scan {directory} --workers {workers}")
    return Sample(seconds=done.seconds, in_run=_in_run_rate(done, workers))


Key = tuple[object, ...]


def _measures(corpora: list[Corpus], empty: Path, one: Path) -> dict[Key, Callable[[], Sample]]:
    """Every timed command, keyed; run round-robin so baseline and hashguard alternate."""
    measures: dict[Key, Callable[[], Sample]] = {
        ("startup", "empty"): partial(hashguard_scan, empty, workers=1, expected=0),
    }
    for workers in WORKERS:
        measures["startup", workers] = partial(hashguard_scan, one, workers=workers, expected=1)
    for corpus in corpora:
        measures["hma", corpus.label] = partial(hma_path, corpus.files)
        for workers in WORKERS:
            measures["scan", corpus.label, workers] = partial(
                hashguard_scan, corpus.directory, workers=workers, expected=len(corpus.files)
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
    """Files/s of one corpus with one worker count, from the median of its runs."""

    wall: float
    steady: float
    in_run: float | None
    wall_samples: list[float]
    in_run_samples: list[float]


def _rates(corpus: Corpus, workers: int, samples: dict[Key, list[Sample]]) -> Rates:
    files = len(corpus.files)
    runs = samples["scan", corpus.label, workers]
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


def _worker_rows(name: str, rates: Rates, hma: float, *, judged: bool) -> list[Row]:
    """Wall, steady and in-run rates, each against the HMA path; ``judged`` gets a verdict."""
    steady_ratio = rates.steady / hma
    return [
        Row(
            figure=f"{name}, wall",
            value=rates.wall,
            unit="files/s",
            baseline=hma,
            ratio=rates.wall / hma,
            target="info (judged on steady)" if judged else INFO,
            samples=rates.wall_samples,
        ),
        Row(
            figure=f"{name}, steady (wall - start-up)",
            value=rates.steady,
            unit="files/s",
            baseline=hma,
            ratio=steady_ratio,
            target=f">= {TARGET_RATIO}" if judged else INFO,
            verdict=at_least(steady_ratio, TARGET_RATIO) if judged else INFO,
        ),
        Row(
            figure=f"{name}, steady (in-run, cross-check)",
            value=rates.in_run,
            unit="files/s",
            baseline=hma,
            ratio=rates.in_run / hma if rates.in_run is not None else None,
            samples=rates.in_run_samples,
            samples_unit="files/s",
        ),
    ]


def _scaling_row(label: str, one: Rates, two: Rates) -> Row:
    scaling = two.in_run / one.in_run if one.in_run and two.in_run else None
    return Row(
        figure=f"hashguard scaling, {label}: 2 workers / 1 worker (in-run)",
        value=two.in_run,
        unit="files/s",
        baseline=one.in_run,
        ratio=scaling,
        target=f">= {TARGET_SCALING} (later issue)",
    )


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
    rates = {workers: _rates(corpus, workers, samples) for workers in WORKERS}
    for workers, rate in rates.items():
        name = f"hashguard scan, {label}, {workers} worker(s)"
        rows += _worker_rows(name, rate, hma, judged=workers == 1)
    rows.append(_scaling_row(label, rates[1], rates[2]))
    return rows


def scan_rows(corpora: list[Corpus], on_round: Callable[[int], None]) -> list[Row]:
    empty, one = startup_dirs()
    for corpus in corpora:
        warm_page_cache(corpus.files)
    # Untimed: compiles the children's bytecode cache and warms the OS caches.
    hashguard_scan(one, workers=1, expected=1)
    samples = round_robin(_measures(corpora, empty, one), REPEATS, on_round)
    rows = _startup_rows(samples)
    for corpus in corpora:
        rows += _corpus_rows(corpus, samples)
    return rows
