"""Scan figures: the HMA path (md5 + PdqSignal) against ``hashguard scan``, wall and steady state.

``hashguard scan`` runs as a real subprocess with a fresh SQLite store each time, so its
wall time includes start-up: the interpreter, imports, the store's migrations and the
spawning of hashing workers. Start-up is measured on its own and subtracted to give the
steady-state rate, which is what the >= 1.0 target is judged on.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from threatexchange.signal_type.pdq.signal import PdqSignal

from bench.cli import BenchError, Finished, run_hashguard
from bench.config import REPEATS
from bench.corpus import Corpus, startup_dirs, warm_page_cache
from bench.report import Row, at_least
from bench.timing import median, round_robin, timed

WORKERS = (1, 2)
#: hashguard per file must be at least as fast as the HMA path (steady state, 1 worker).
TARGET_RATIO = 1.0
#: 2 workers should be this much faster than 1 (informational until its own issue).
TARGET_SCALING = 1.8


def hma_path(files: tuple[Path, ...]) -> float:
    """Seconds for what HMA does per file, in this process: MD5, then PdqSignal from the file."""

    def work() -> None:
        for path in files:
            hashlib.md5(path.read_bytes()).hexdigest()
            PdqSignal.hash_from_file(path)

    return timed(work)


def _summary(done: Finished) -> dict[str, object] | None:
    for line in reversed(done.stdout.splitlines()):
        try:
            shown = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(shown, dict) and shown.get("type") == "summary":
            return shown
    return None


def hashguard_scan(directory: Path, *, workers: int, expected: int) -> float:
    """Wall seconds of ``hashguard scan`` on a fresh store; every file must be no_match."""
    with tempfile.TemporaryDirectory(prefix="hashguard-bench-home-") as home:
        args = ["scan", str(directory), "--json", "--workers", str(workers), "--rescan"]
        done = run_hashguard(args, home=Path(home))
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
            f"hashguard scan {directory} --workers {workers}: exit {done.returncode}, "
            f"expected {expected} files all no_match, summary {summary}\n{done.tail()}"
        )
    return done.seconds


def _measures(
    corpora: list[Corpus], empty: Path, one: Path
) -> dict[tuple[object, ...], Callable[[], float]]:
    """Every timed command, keyed; run round-robin so baseline and hashguard alternate."""
    measures: dict[tuple[object, ...], Callable[[], float]] = {
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


def _startup_rows(samples: dict[tuple[object, ...], list[float]]) -> list[Row]:
    rows = [
        Row(
            figure="hashguard start-up: scan of an empty folder (pool never starts)",
            value=median(samples["startup", "empty"]),
            unit="s",
            samples=samples["startup", "empty"],
        )
    ]
    for workers in WORKERS:
        key = ("startup", workers)
        rows.append(
            Row(
                figure=f"hashguard start-up incl. spawning {workers} worker(s) (1 tiny file)",
                value=median(samples[key]),
                unit="s",
                target="subtracted for steady state",
                samples=samples[key],
            )
        )
    return rows


def _corpus_rows(corpus: Corpus, samples: dict[tuple[object, ...], list[float]]) -> list[Row]:
    files, label = len(corpus.files), corpus.label
    hma = files / median(samples["hma", label])
    rows = [
        Row(
            figure=f"HMA path, {files} x {label}: md5 + PdqSignal.hash_from_file, 1 process",
            value=hma,
            unit="files/s",
            target="baseline",
            samples=samples["hma", label],
        )
    ]
    steady: dict[int, float] = {}
    for workers in WORKERS:
        wall_seconds = median(samples["scan", label, workers])
        startup = median(samples["startup", workers])
        wall = files / wall_seconds
        steady[workers] = files / max(wall_seconds - startup, 1e-9)
        fair = workers == 1
        rows += [
            Row(
                figure=f"hashguard scan, {label}, {workers} worker(s), wall",
                value=wall,
                unit="files/s",
                baseline=hma,
                ratio=wall / hma,
                target="info (judged on steady state)" if fair else "info",
                samples=samples["scan", label, workers],
            ),
            Row(
                figure=f"hashguard scan, {label}, {workers} worker(s), steady state",
                value=steady[workers],
                unit="files/s",
                baseline=hma,
                ratio=steady[workers] / hma,
                target=f">= {TARGET_RATIO}" if fair else "info",
                verdict=at_least(steady[workers] / hma, TARGET_RATIO) if fair else "info",
            ),
        ]
    scaling = steady[2] / steady[1]
    rows.append(
        Row(
            figure=f"hashguard scaling, {label}: 2 workers / 1 worker, steady state",
            value=steady[2],
            unit="files/s",
            baseline=steady[1],
            ratio=scaling,
            target=f">= {TARGET_SCALING} (later issue)",
        )
    )
    return rows


def scan_rows(corpora: list[Corpus], on_round: Callable[[int], None]) -> list[Row]:
    empty, one = startup_dirs()
    for corpus in corpora:
        warm_page_cache(corpus.files)
    samples = round_robin(_measures(corpora, empty, one), REPEATS, on_round)
    rows = _startup_rows(samples)
    for corpus in corpora:
        rows += _corpus_rows(corpus, samples)
    return rows
