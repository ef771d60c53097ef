"""Match-index figures: hashguard's PDQ index against threatexchange's PDQIndex (HMA's), same run.

Each index is built and queried in its own child process (``bench.index_worker``), so
the resident memory reported is that index's alone. Lists are generated: uniform random
256-bit hashes, and "clustered" lists of near-duplicate families (as real lists are),
which make multi-index buckets uneven. Targets: at 10 M entries p50 at least 3x faster
and resident memory at most 1/3 of PDQIndex; at 1 M p50 <= 1 ms; recall 1.0 and nothing
reported beyond the threshold; 1,000 additions < 1 s; snapshot load <= 5 s; exact-hash
lookup <= 2 us; dihedral (8 variants) <= 8x a single query.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.cli import BenchError
from bench.config import PROJECT_DIR, Scale
from bench.report import FAIL, INFO, PASS, Row

SIZES = {
    "small": ((200_000, "clustered"), (1_000_000, "uniform")),
    "full": ((1_000_000, "uniform"), (10_000_000, "uniform"), (10_000_000, "clustered")),
}
TEN_MILLION = 10_000_000


def _measure(impl: str, count: int, layout: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.index_worker", impl, str(count), layout, "7"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"index worker {impl} {count} {layout} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _ms(seconds: list[float], quantile: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1e3


def _verdict(ok: bool, judged: bool = True) -> str:
    return (PASS if ok else FAIL) if judged else INFO


def _rows(count: int, layout: str, ours: dict[str, Any], theirs: dict[str, Any]) -> list[Row]:
    label = f"{count / 1e6:g} M {layout}"
    at_10m = count >= TEN_MILLION
    p50, p50_base = _ms(ours["seconds"], 0.5), _ms(theirs["seconds"], 0.5)
    speedup = p50_base / p50
    rows = [
        Row(
            figure=f"PDQ index p50 query, {label}",
            value=p50,
            unit="ms",
            baseline=p50_base,
            ratio=speedup,
            target=">= 3x faster (10 M)"
            if at_10m
            else ("<= 1 ms (1 M)" if count == 1_000_000 else "info"),
            verdict=_verdict(speedup >= 3, at_10m)
            if at_10m
            else _verdict(p50 <= 1.0, count == 1_000_000),
        ),
        Row(
            figure=f"PDQ index p99 query, {label}",
            value=_ms(ours["seconds"], 0.99),
            unit="ms",
            baseline=_ms(theirs["seconds"], 0.99),
            ratio=_ms(theirs["seconds"], 0.99) / _ms(ours["seconds"], 0.99),
        ),
        Row(
            figure=f"PDQ index resident memory, {label}",
            value=ours["rss_mib"],
            unit="MiB",
            baseline=theirs["rss_mib"],
            ratio=ours["rss_mib"] / theirs["rss_mib"],
            target="<= 1/3 of PDQIndex (10 M)" if at_10m else "info",
            verdict=_verdict(ours["rss_mib"] <= theirs["rss_mib"] / 3, at_10m),
        ),
        Row(
            figure=f"PDQ index build, {label}",
            value=ours["build_s"],
            unit="s",
            baseline=theirs["build_s"],
            ratio=ours["build_s"] / theirs["build_s"],
        ),
    ]
    correct = all(
        side["recall"] == 1.0
        and side["reports_beyond_threshold"] == 0
        and side["wrong_distances"] == 0
        and side["oracle_mismatches"] == 0
        for side in (ours, theirs)
    )
    rows.append(
        Row(
            figure=f"PDQ index correctness, {label}: recall / beyond-31 / oracle mismatches",
            value=ours["recall"],
            unit=f"recall, {ours['reports_beyond_threshold']} beyond, "
            f"{ours['oracle_mismatches']} mismatches",
            baseline=theirs["recall"],
            target="recall 1.0, 0 beyond (both)",
            verdict=_verdict(correct),
        )
    )
    return rows


def _extra_rows(count: int, layout: str, ours: dict[str, Any]) -> list[Row]:
    label = f"{count / 1e6:g} M {layout}"
    at_10m = count >= TEN_MILLION
    single = statistics.median(ours["seconds"])
    dihedral = statistics.median(ours["dihedral_seconds"])
    exact_ok = ours["exact_hit_found"] >= 3_000 and ours["exact_miss_found"] == 0
    return [
        Row(
            figure=f"dihedral query (8 variants) / single query, {label}",
            value=dihedral / single,
            unit="x",
            target="<= 8",
            verdict=_verdict(dihedral / single <= 8),
        ),
        Row(
            figure=f"1,000 additions (then all found), {label}",
            value=ours["add_1000_s"],
            unit="s",
            extra={"found": ours["added_found"], "1,000 removals s": ours["remove_1000_s"]},
            target="< 1 s (10 M)" if at_10m else "info",
            verdict=_verdict(ours["add_1000_s"] < 1 and ours["added_found"] == 1_000, at_10m),
        ),
        Row(
            figure=f"snapshot load (verify + validate), {label}",
            value=ours["snapshot_load_s"],
            unit="s",
            extra={"MiB": ours["snapshot_mib"], "save s": ours["snapshot_save_s"]},
            target="<= 5 s (10 M)" if at_10m else "info",
            verdict=_verdict(ours["snapshot_load_s"] <= 5, at_10m),
        ),
        Row(
            figure=f"exact-hash lookup, miss (3 digests per call), {label}",
            value=ours["exact_miss_us"],
            unit="us",
            extra={"hit us": ours["exact_hit_us"], "index MiB": ours["exact_rss_mib"]},
            target="<= 2 us (10 M)" if at_10m else "info",
            verdict=_verdict(ours["exact_miss_us"] <= 2 and exact_ok, at_10m),
        ),
    ]


def index_rows(scale: Scale, on_step: Callable[[str], None] = lambda text: None) -> list[Row]:
    rows: list[Row] = []
    for count, layout in SIZES[scale.name]:
        on_step(f"index: {count:,} {layout}, hashguard")
        ours = _measure("ours", count, layout)
        on_step(f"index: {count:,} {layout}, threatexchange PDQIndex")
        theirs = _measure("pdqindex", count, layout)
        rows += _rows(count, layout, ours, theirs) + _extra_rows(count, layout, ours)
    return rows
