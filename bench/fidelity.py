"""Fidelity figures: the fast PDQ path's drift from the reference hash.

Every file of the 1 MP and 12 MP scan corpora is hashed in both modes (in this process,
by ``hashguard.hashing.fidelity``) and the gate is applied per resolution and to all
those files together: that is the gate the fast mode must pass to be the default. The
same gate is then applied to corpora of the sizes between and around those two
(``bench.corpus.OTHER_SIZES``), so that a preprocessing tuned to the gate's two sizes
would show. The kind of image (photo or texture) is read from the file name the corpus
gave it. Not timed, so run once: the hashes do not change between runs.
"""

from __future__ import annotations

from pathlib import Path

from bench.cli import BenchError
from bench.corpus import Corpus
from bench.report import FAIL, PASS, Row
from hashguard.demo.corpus import Kind
from hashguard.hashing.fidelity import CEILING, MAX_LIMIT, P95_LIMIT, GateReport, evaluate

TARGET = f"photo p95 <= {P95_LIMIT}, max <= {MAX_LIMIT}; all <= {CEILING}"


def kind_of(path: Path) -> str:
    """``0004-texture-q89.jpg`` -> ``texture`` (see ``bench.corpus``)."""
    parts = path.name.split("-")
    if len(parts) < 3 or parts[1] not in set(Kind):
        raise BenchError(f"fidelity: cannot tell the image kind from the name {path.name}")
    return parts[1]


def _merged(reports: list[GateReport]) -> GateReport:
    distances: dict[str, tuple[int, ...]] = {}
    for report in reports:
        for kind, values in report.distances.items():
            distances[kind] = distances.get(kind, ()) + values
    return GateReport(distances=distances)


def _row(what: str, report: GateReport) -> Row:
    counts = " + ".join(f"{len(v)} {kind}" for kind, v in sorted(report.distances.items()))
    return Row(
        figure=f"PDQ fidelity, {what} ({counts}): fast vs reference hash, Hamming distance",
        value=(
            f"photo p95 {report.photo_p95:g} / max {report.photo_max}; all max {report.overall_max}"
        ),
        unit="",
        target=TARGET,
        verdict=PASS if report.passed else FAIL,
        details={
            "photo_p95": report.photo_p95,
            "photo_max": report.photo_max,
            "overall_max": report.overall_max,
        },
    )


def _reports(corpora: list[Corpus]) -> list[GateReport]:
    return [
        evaluate((kind_of(path), path.read_bytes()) for path in corpus.files) for corpus in corpora
    ]


def fidelity_rows(corpora: list[Corpus], others: list[Corpus]) -> list[Row]:
    """One row per scan corpus, one over all their files, then one per other size."""
    reports = _reports(corpora)
    rows = [_row(corpus.label, report) for corpus, report in zip(corpora, reports, strict=True)]
    rows.append(_row("all files", _merged(reports)))
    other_reports = _reports(others)
    rows += [
        _row(corpus.label, report) for corpus, report in zip(others, other_reports, strict=True)
    ]
    return rows
