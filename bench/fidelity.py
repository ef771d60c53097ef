"""Fidelity figures: the default (fast) PDQ mode against the reference on real images.

The corpus is ``bench.realimages``: files of Debian packages picked per (kind, size
band), plus photos resized to the bands no package ships (up to 50 MP). Each original
and each of its edits (``hashguard.hashing.fidelity.Edit``) is hashed with the default
settings and with ``reference``; the gate (``hashguard.hashing.fidelity``) is applied
and reported per size band, per kind and per edit. Not timed, so run once: the hashes
do not change between runs.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.config import Scale
from bench.realimages import (
    BANDS,
    BENCH_PACKAGES,
    RESIZE_TARGETS,
    discover,
    native_samples,
    pick,
    resized_samples,
)
from bench.report import FAIL, INFO, PASS, Row
from hashguard.hashing.fidelity import CEILING, Edit, GateReport, Measured, evaluate

#: Originals per (kind, band) and resized photos per target size, by scale.
PER_GROUP = {"small": 4, "full": 12}
PER_LARGE_GROUP = {"small": 2, "full": 4}
PER_TARGET = {"small": 1, "full": 3}


def _drift_row(what: str, items: tuple[Measured, ...], report: GateReport) -> Row:
    drift = report.drift(items)
    return Row(
        figure=(
            f"PDQ drift, {what} (n={drift.count}, {drift.fast_path} on the fast path): "
            "default vs reference hash of the file, Hamming distance; quality flips across 50"
        ),
        value=f"p50 {drift.p50:g} / p95 {drift.p95:g} / max {drift.max}; flips {drift.flips}",
        unit="",
        target=f"max <= {CEILING}, no flips",
        verdict=PASS if drift.max <= CEILING and not drift.flips else FAIL,
        details={
            "count": drift.count,
            "fast_path": drift.fast_path,
            "p50": drift.p50,
            "p95": drift.p95,
            "max": drift.max,
            "flips": drift.flips,
        },
    )


def _recall_row(what: str, groups: dict[str, tuple[Measured, ...]], report: GateReport) -> Row:
    """One edit: recall overall, then per group (default / reference)."""
    cells = {name: report.recall(items, Edit(what)) for name, items in groups.items()}
    overall = cells.pop("all")
    holds = overall.holds and all(cell.holds for cell in cells.values())
    detail = "; ".join(f"{name} {cell}" for name, cell in cells.items() if cell.count)
    return Row(
        figure=f"PDQ recall, {what} (n={overall.count}; default / reference): {detail}",
        value=str(overall),
        unit="",
        target="default >= reference - 0.005, overall, per band and per kind",
        verdict=PASS if holds else FAIL,
        details={
            f"{name} {part}": value
            for name, cell in {"all": overall, **cells}.items()
            for part, value in (
                ("n", cell.count),
                ("default", cell.fast),
                ("reference", cell.reference),
            )
        },
    )


def fidelity_rows(scale: Scale, progress: Callable[[str], None]) -> list[Row]:
    images = discover(BENCH_PACKAGES)
    if not images:
        return [
            Row(
                figure="PDQ fidelity on real images",
                value="no real images installed (run .ci/real-images --bench)",
                unit="",
                target="",
                verdict=INFO,
            )
        ]
    chosen = pick(images, PER_GROUP[scale.name], per_large_group=PER_LARGE_GROUP[scale.name])
    samples = native_samples(chosen)
    samples += resized_samples(images, RESIZE_TARGETS, PER_TARGET[scale.name], frozenset({"photo"}))
    progress(f"fidelity gate: {len(samples)} real images x {len(Edit)} edits, both settings")
    # A file the default setting hashes on the reference path is hashed once (the test
    # suite checks that this equals the reference setting's hash).
    report = evaluate(samples, reuse=True)
    bands = report.groups(lambda item: item.band)
    kinds = report.groups(lambda item: item.kind)
    rows = [_drift_row("all real images", report.measured, report)]
    rows += [_drift_row(f"band {name}", bands[name], report) for name, _ in BANDS if name in bands]
    rows += [_drift_row(f"kind {name}", items, report) for name, items in sorted(kinds.items())]
    groups = {"all": report.measured, **bands, **dict(sorted(kinds.items()))}
    rows += [_recall_row(str(edit), groups, report) for edit in Edit]
    return rows
