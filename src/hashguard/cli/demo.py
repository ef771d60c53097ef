"""``hashguard demo``: build a benign corpus and a demo bank, scan it, show what was found."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hashguard.banks.importer import ImportOptions, NewBank, import_list
from hashguard.cli.context import err, out, settings_of
from hashguard.demo.run import build, needs_dihedral
from hashguard.domain.scans import FileResult, Outcome, ScanOptions
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.matching.matcher import load_or_build
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.settings import Settings
from hashguard.store import open_store


def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder to (re)create for the demo.")
    ] = Path("demo"),
) -> None:
    """Generate benign images, make a demo bank of four, scan edited copies and distractors.

    Uses its own store in DIR/home, never your configured one. Exit code 0 when every
    copy of a known image was found and no distractor matched.
    """
    settings = settings_of(ctx)
    started = time.monotonic()
    shutil.rmtree(directory, ignore_errors=True)
    layout = build(directory)
    demo_home = Settings(home=(directory / "home").resolve(), workers=settings.workers)
    store = open_store(demo_home.resolved_database_url)
    try:
        report = import_list(
            store.banks,
            "demo-known",
            layout.known_list,
            options=ImportOptions(
                source="hashguard demo (generated images)", licence="test only", create=NewBank()
            ),
        )
        err.print(f"bank demo-known: {report.added} entries from {layout.known_list}")
        options = ScanOptions(max_pixels=settings.max_pixels, dihedral=True)
        prepared = prepare_run(store.scans, [str(layout.uploads)], options, rescan=True)
        results: dict[str, FileResult] = {}
        with HashingPool(
            workers=settings.workers,
            options=HashOptions.for_scan(options),
            timeout=settings.decode_timeout,
            memory_mb=settings.worker_memory_mb,
        ) as pool:
            matcher = load_or_build(store.banks, demo_home.index_path)
            run = Scanner(store=store.scans, matcher=matcher, pool=pool).run(
                prepared.run, on_result=lambda r: results.__setitem__(Path(r.path).name, r)
            )
    finally:
        store.close()

    table = Table("file", "copy of a known image?", "outcome", "best match")
    missed, false_hits = [], []
    for name, expected in sorted(layout.expected.items()):
        result = results[name]
        effective = sorted((m for m in result.matches if m.effective), key=lambda m: m.distance)
        found = result.outcome is Outcome.MATCHED
        if expected and not found:
            missed.append(name)
        if found and not expected:
            false_hits.append(name)
        best = effective[0] if effective else None
        detail = (
            f"{best.algorithm} d={best.distance} {best.transform}"
            if best
            else (result.reason or "")
        )
        style = "green" if found == expected else "red"
        table.add_row(
            name, "yes" if expected else "no", f"[{style}]{result.outcome}[/{style}]", detail
        )
    out.print(table)
    copies = sum(layout.expected.values())
    dihedral = sum(1 for name, exp in layout.expected.items() if exp and needs_dihedral(name))
    err.print(
        f"scan #{run.id}: {copies - len(missed)}/{copies} copies of known images found "
        f"({dihedral} of them rotated or mirrored, found by dihedral matching); "
        f"{len(false_hits)} distractors matched; {time.monotonic() - started:.1f} s"
    )
    err.print(
        f"explore it: export HASHGUARD_HOME={(directory / 'home').resolve()}; "
        f"hashguard banks list; hashguard scans show {run.id}"
    )
    if missed or false_hits:
        err.print(f"[red]demo check failed[/red]: missed {missed}, false hits {false_hits}")
        raise typer.Exit(1)
