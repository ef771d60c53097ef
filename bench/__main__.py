"""Entry point of ``python -m bench``: runs every figure, prints one table, writes results.json."""

from __future__ import annotations

import sys

from rich.console import Console

from bench.audit import audit_rows
from bench.banks import import_rows
from bench.cli import BenchError
from bench.config import (
    CORPUS_SECTIONS,
    REPEATS,
    RESULTS_FILE,
    postgres_url,
    scale_from_env,
    sections_from_env,
)
from bench.corpus import build_corpora
from bench.exact import exact_rows
from bench.fidelity import fidelity_rows
from bench.index import index_rows
from bench.machine import describe
from bench.report import FAIL, Row, table, write_json


def main() -> int:
    scale = scale_from_env()
    # Piped output (make bench | tee) gets a width that fits the table instead of 80.
    out = Console() if sys.stdout.isatty() else Console(width=150)
    progress = Console(stderr=True)
    machine = describe(scale)
    out.print(f"machine: nproc {machine['nproc']}, {machine['cpu_model']}", highlight=False)
    out.print(f"hashguard {machine['hashguard']}, Python {machine['python']}", highlight=False)
    out.print(f"command: {machine['command']}", highlight=False, markup=False)

    rows: list[Row] = []
    wanted = sections_from_env()
    corpora = []
    if wanted & CORPUS_SECTIONS:
        progress.print(
            f"corpus ({scale.name}): {scale.files_1mp} x 1 MP, {scale.files_12mp} x 12 MP"
        )
        corpora = build_corpora(scale)
    try:
        if "scan" in wanted:
            from bench.scan import scan_rows  # noqa: PLC0415 - threatexchange is slow to import

            rows += scan_rows(
                corpora, lambda index: progress.print(f"scans: round {index + 1}/{REPEATS}")
            )
        if "fidelity" in wanted:
            rows += fidelity_rows(scale, progress.print)
        if "import" in wanted:
            progress.print(f"bank import: {scale.bank_rows:,} rows, SQLite")
            rows += import_rows(scale.bank_rows)
            url = postgres_url()
            if url is not None:
                progress.print(f"bank import: {scale.bank_rows:,} rows, PostgreSQL")
                rows += import_rows(scale.bank_rows, backend="PostgreSQL", database_url=url)
        if "exact" in wanted:
            progress.print("exact hashing")
            rows += exact_rows()
        if "index" in wanted:
            rows += index_rows(scale, progress.print)
        if "audit" in wanted:
            progress.print("audit log: cost per event")
            rows += audit_rows()
        if "service" in wanted:
            from bench.service import service_rows  # noqa: PLC0415 - uvloop, httpx: only when asked

            rows += service_rows(corpora, scale, progress.print)
        if "reports" in wanted:
            from bench.reports import reports_rows  # noqa: PLC0415 - the fake lives in tests/

            rows += reports_rows(scale, progress.print)
        if "statements" in wanted:
            from bench.statements import statements_rows  # noqa: PLC0415 - the fake lives in tests/

            rows += statements_rows(scale, progress.print)
        if "tenants" in wanted:
            from bench.tenants import tenants_rows  # noqa: PLC0415 - uvloop: only when asked

            rows += tenants_rows(scale, progress.print)
        if "client" in wanted:
            from bench.client import client_rows  # noqa: PLC0415 - a service: only when asked

            rows += client_rows(scale, progress.print)
        if "notices" in wanted:
            from bench.notices import notices_rows  # noqa: PLC0415 - uvloop: only when asked

            rows += notices_rows(scale, progress.print)
        if "stats" in wanted:
            from bench.stats import stats_rows  # noqa: PLC0415 - the hashing pool: only when asked

            rows += stats_rows(scale, progress.print)
        if "retro" in wanted:
            from bench.retro import retro_rows  # noqa: PLC0415 - builds a large index

            rows += retro_rows(scale, progress.print)
        if "ray" in wanted:
            from bench.ray import ray_rows  # noqa: PLC0415 - the bulk extra, only when asked

            rows += ray_rows(progress.print)
        if "objects" in wanted:
            from bench.objects import objects_rows  # noqa: PLC0415 - moto: the dev extra

            progress.print("object storage (moto S3 server on loopback)")
            rows += objects_rows(progress.print)
        if "video" in wanted:
            from bench.video import video_rows  # noqa: PLC0415 - the video extra: only when asked

            rows += video_rows(scale, progress.print)
    except BenchError as exc:
        progress.print(f"[red]benchmark aborted:[/red] {exc}", highlight=False, markup=True)
        return 2

    title = f"hashguard benchmark ({scale.name}; medians of {REPEATS} round-robin runs)"
    out.print(table(rows, title))
    write_json(RESULTS_FILE, rows, machine)
    out.print(f"results: {RESULTS_FILE}", highlight=False)
    return 1 if any(row.verdict == FAIL for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
