"""``hashguard scan`` and ``hashguard scans``: scan local storage and look at past runs."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from enum import StrEnum
from types import FrameType
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from hashguard.audit import cli_actor
from hashguard.cli import bulk, objects
from hashguard.cli.context import (
    PDQ_MODE_OPTION,
    err,
    fail,
    hashers_of,
    master_key_of,
    out,
    registry_of,
    settings_of,
    store_of,
)
from hashguard.cli.render import csv_header, csv_row, result_json, summary_json
from hashguard.domain.matches import Match
from hashguard.domain.policy import Action
from hashguard.domain.scans import FileResult, Outcome, ScanRun
from hashguard.domain.signals import PdqMode
from hashguard.evidence import open_vault
from hashguard.hashing.isolate import HashingPool, PoolStopped
from hashguard.hashing.kernel import HashOptions
from hashguard.matching.matcher import Matcher, load_or_build
from hashguard.plugins import PluginError
from hashguard.remote.service import RemoteMatching, remote_matching, sends_pdq_hashes
from hashguard.scan.classify import policies_of
from hashguard.scan.objectruns import incremental, object_scanner
from hashguard.scan.objectscan import ObjectListingFailed, ObjectScanner, listing_of
from hashguard.scan.pipeline import OnceVault, Pipeline
from hashguard.scan.rayengine import RayEngineFailed
from hashguard.scan.scanner import PreparedRun, ScanAlreadyRunning, Scanner, prepare_run
from hashguard.scan.sources import scan_options
from hashguard.store import Store
from hashguard.store.scans import UnknownRun

runs_app = typer.Typer(help="Past and unfinished scan runs.", no_args_is_help=True)

EXIT_CLEAN, EXIT_MATCHED, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 130


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def exit_code(run: ScanRun) -> int:
    """Like virus scanners: 1 when anything matched (a match is never hidden behind an
    error), else 2 when a file could not be checked fully, else 0."""
    if run.counts.get(Outcome.MATCHED, 0):
        return EXIT_MATCHED
    if any(run.counts.get(outcome, 0) for outcome in Outcome if outcome.incomplete):
        return EXIT_INCOMPLETE
    return EXIT_CLEAN


def _emit(result: FileResult, output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        sys.stdout.write(json.dumps(result_json(result)) + "\n")
    elif output is OutputFormat.CSV:
        sys.stdout.write(csv_row(result))


def _summary_table(run: ScanRun) -> Table:
    table = Table("outcome", "files", title=f"scan #{run.id} — {run.status}")
    for outcome in Outcome:
        table.add_row(str(outcome), str(run.counts.get(outcome, 0)))
    table.add_row("total", str(run.total), style="bold")
    if run.skipped:
        table.add_row("skipped (already checked)", str(run.skipped))
    for action in Action:
        shadow = run.shadow_actions.get(action, 0) if action is not Action.IGNORE else 0
        table.add_row(
            f"decision: {action}",
            str(run.actions.get(action, 0)) + (f" (+{shadow} in shadow)" if shadow else ""),
        )
    return table


def _terminate_as_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def scan(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(help="Files and directories to scan, or s3://bucket/prefix addresses."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file, then a summary, on stdout.")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV rows on stdout.")] = False,
    workers: Annotated[
        int | None, typer.Option(help="Hashing processes (default: cores).", min=1)
    ] = None,
    rescan: Annotated[
        bool, typer.Option("--rescan", help="Start afresh instead of resuming an unfinished run.")
    ] = False,
    dihedral: Annotated[
        bool, typer.Option(help="Also find rotated and mirrored copies (PDQ's 8 variants).")
    ] = False,
    frames: Annotated[
        int | None, typer.Option(help="Hash up to this many frames of animated images.", min=1)
    ] = None,
    max_pixels: Annotated[
        int | None, typer.Option(help="Refuse images declaring more pixels than this.", min=1)
    ] = None,
    pdq_mode: Annotated[PdqMode | None, PDQ_MODE_OPTION] = None,
    keep_evidence: Annotated[
        bool,
        typer.Option(
            help="Keep an encrypted copy of each matched file the policy acts on or reviews."
        ),
    ] = True,
    endpoint_url: objects.EndpointOption = None,
    inventory: objects.InventoryOption = None,
    versions: objects.VersionsOption = objects.Versions.LATEST,
    max_size: objects.MaxSizeOption = None,
    extensions: objects.ExtOption = None,
    content_types: objects.ContentTypeOption = None,
    dry_run: objects.DryRunOption = False,
    rate: objects.RateOption = None,
    engine: bulk.EngineOption = bulk.Engine.LOCAL,
    address: bulk.AddressOption = None,
    actors: bulk.ActorsOption = None,
) -> None:
    """Scan files and directories, or object storage (s3://bucket/prefix), against every
    enabled bank.

    Exit code: 0 nothing matched, 1 something matched, 2 some file could not be
    checked fully (undecodable or unreadable), 130 interrupted (run it again to resume).
    """
    output = _output_of(as_json=as_json, as_csv=as_csv)
    ray = bulk.chosen(engine, address=address, actors=actors, cpus=workers)
    bucket, object_store = objects.object_scan(
        paths,
        endpoint_url=endpoint_url,
        inventory=inventory,
        versions=versions,
        max_size=max_size,
        extensions=extensions,
        content_types=content_types,
        rate=rate,
        dry_run=dry_run,
        as_json=as_json,
    )
    settings = settings_of(ctx)
    options = scan_options(
        settings,
        dihedral=dihedral,
        max_pixels=max_pixels,
        max_frames=frames,
        pdq_mode=pdq_mode,
    )
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    with store_of(ctx) as store:
        try:
            prepared = prepare_run(
                store.scans, list(paths), options, rescan=rescan, scope=_scope(bucket, ray, store)
            )
        except ScanAlreadyRunning as exc:
            raise fail(str(exc)) from None
        run = prepared.run
        matcher, remote = _matchers(ctx, store)
        _earlier(store, prepared, output)
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        task = progress.add_task(f"scan #{run.id}", total=None)
        try:
            with (
                ExitStack() as stack,
                progress,
                HashingPool(
                    # on Ray the driver's pool only hashes again what leaves (rare)
                    workers=1 if ray is not None else workers or settings.workers,
                    options=HashOptions.for_scan(
                        run.options,
                        also_reference=sends_pdq_hashes(remote),
                        hashers=hashers_of(ctx),
                    ),
                    timeout=settings.decode_timeout,
                    video_timeout=settings.video_timeout,
                    memory_mb=settings.worker_memory_mb,
                ) as pool,
            ):
                scanner = _scanner(
                    bucket,
                    object_store,
                    stack,
                    ray=ray,
                    store=store.scans,
                    already_checked=incremental(settings, store),
                    matcher=matcher,
                    pool=pool,
                    pipeline=_pipeline(
                        ctx, store, matcher, remote, keep_evidence=keep_evidence
                    ).with_hashing(pool),
                )

                def planned(total: int, done: int) -> None:
                    progress.update(task, total=total, completed=done)

                def on_result(result: FileResult) -> None:
                    _emit(result, output)
                    progress.advance(task)

                run = scanner.run(run, on_planned=planned, on_result=on_result)
                run = _after_late_answers(store, run, remote)
                _object_notes(scanner, object_store)
        except KeyboardInterrupt:
            sys.stdout.flush()
            err.print(
                f"interrupted: run `hashguard scan` on the same paths again to resume #{run.id}"
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (PoolStopped, ObjectListingFailed, RayEngineFailed) as exc:
            sys.stdout.flush()
            if isinstance(exc, ObjectListingFailed):
                raise fail(escape(f"cannot list scan #{run.id}'s objects: {exc}")) from None
            raise fail(
                escape(
                    f"{'Ray' if isinstance(exc, RayEngineFailed) else 'the hashing workers'} "
                    f"stopped ({exc}); scan #{run.id} is saved as far as it got: run the same "
                    "command again to resume it"
                )
            ) from None
        finally:
            if remote is not None:
                remote.close()
        code = exit_code(run)
        if output is OutputFormat.JSON:
            sys.stdout.write(
                json.dumps(summary_json(run, resumed=prepared.resumed, exit_code=code)) + "\n"
            )
        err.print(_summary_table(run))
        if output is OutputFormat.TABLE:
            out.print(_files_table(store.scans.results(run.id), only=None))
    raise typer.Exit(code)


def _output_of(*, as_json: bool, as_csv: bool) -> OutputFormat:
    if as_json and as_csv:
        raise fail("choose one of --json and --csv")
    return OutputFormat.JSON if as_json else OutputFormat.CSV if as_csv else OutputFormat.TABLE


def _scope(
    bucket: objects.ObjectScanArgs | None, ray: bulk.RayChoice | None, store: Store
) -> dict[str, Any] | None:
    """What the run's resume key holds besides roots and options: an object scan's
    selection; on Ray, also the banks' change sequence (a run is against one set of
    bank versions, so a resumed run's results all are)."""
    scope = bucket.scope() if bucket is not None else None
    if ray is not None:
        scope = {**(scope or {}), "banks": store.banks.change_seq()}
    return scope


def _earlier(store: Store, prepared: PreparedRun, output: OutputFormat) -> None:
    """A resumed run's results so far, first."""
    run = prepared.run
    if prepared.resumed:
        err.print(f"resuming scan #{run.id} ({run.total} files already done)")
    if output is OutputFormat.CSV:
        sys.stdout.write(csv_header())
    for earlier in store.scans.results(run.id):
        _emit(earlier, output)


def _scanner(
    bucket: objects.ObjectScanArgs | None,
    object_store: Any,
    stack: ExitStack,
    *,
    ray: bulk.RayChoice | None,
    **parts: Any,
) -> Scanner:
    """The local scanner, or for s3:// addresses the object scanner over their listing;
    with ``ray``, the same scanner fed by a Ray actor pool."""
    already_checked = parts.pop("already_checked")
    if ray is not None:
        return bulk.ray_scanner(
            stack,
            ray,
            object_scan=bucket,
            object_store=object_store,
            listing=_listing(bucket, object_store),
            already_checked=already_checked,
            **parts,
        )
    if bucket is None:
        return Scanner(**parts)
    scanner = object_scanner(bucket, object_store, already_checked=already_checked, **parts)
    stack.callback(scanner.close)
    return scanner


def _listing(bucket: objects.ObjectScanArgs | None, object_store: Any) -> Any:
    if bucket is None:
        return None
    return listing_of(
        object_store,
        bucket.uris,
        inventory=bucket.inventory,
        all_versions=bucket.chosen.all_versions,
    )


def _object_notes(scanner: Scanner, object_store: Any) -> None:
    if not isinstance(scanner, ObjectScanner):
        return
    requests = object_store.requests
    sent = ", ".join(f"{n} {name}" for name, n in sorted(requests.sent.items()))
    err.print(
        f"object store: {sent or 'no requests'}; {requests.retried} retried "
        f"({requests.throttled} throttled); {scanner.filtered} objects left out by filters"
        + (
            f"; {scanner.skipped} skipped (already checked against these bank versions)"
            if scanner.skipped
            else ""
        )
    )


def _pipeline(
    ctx: typer.Context,
    store: Store,
    matcher: Matcher,
    remote: RemoteMatching | None,
    *,
    keep_evidence: bool,
) -> Pipeline:
    settings = settings_of(ctx)
    return Pipeline.configured(
        settings,
        store,
        actor=cli_actor(),
        matcher=matcher,
        policies=lambda: policies_of(matcher.banks),
        remote=remote,
        vault=OnceVault(lambda: open_vault(settings, store, master_key_of(ctx)))
        if keep_evidence
        else None,
    )


def _after_late_answers(store: Store, run: ScanRun, remote: RemoteMatching | None) -> ScanRun:
    """The run once the remote answers still in flight came (a late match replaces a
    file's not_answered result and brings its case, evidence and actions)."""
    if remote is not None and not remote.settle():
        err.print(
            "[yellow]warning:[/yellow] a remote matcher still had not answered at exit: "
            "its files stay not_answered"
        )
    return store.scans.get(run.id)


def _matchers(ctx: typer.Context, store: Store) -> tuple[Matcher, RemoteMatching | None]:
    """The local banks' index, and the remote matchers the settings configure."""
    settings = settings_of(ctx)
    matcher = load_or_build(store.banks, settings.index_path)
    if not matcher.banks:
        err.print("[yellow]warning:[/yellow] no enabled bank; nothing can match")
    try:
        return matcher, remote_matching(
            settings,
            registry_of(ctx),
            stored=store.remote_secrets,
            master_key=lambda: master_key_of(ctx),
        )
    except PluginError as exc:
        raise fail(str(exc)) from None


def _when(match: Match) -> str:
    """Where in a video a match is: vPDQ percentages and times, or a frame's time."""
    if match.query_percent is not None:
        times = ", ".join(f"{t:g}" for t in match.timestamps[:5])
        more = ", …" if len(match.timestamps) > 5 else ""
        return (
            f" {match.query_percent:.0f}%/{match.compared_percent or 0:.0f}% of frames"
            f" at {times}{more} s"
        )
    return "" if match.timestamp is None else f" at {match.timestamp:g} s"


def _detail(result: FileResult) -> str:
    effective = [m for m in result.matches if m.effective]
    if effective:
        return "; ".join(
            f"{m.bank} {m.algorithm} d={m.distance}"
            + (f" ({m.transform})" if m.transform != "original" else "")
            + (f" entry {m.entry_id}" if m.entry_id else "")
            + _when(m)
            for m in effective
        )
    return result.reason or ""


def _files_table(results: Iterable[FileResult], *, only: Outcome | None) -> Table:
    """Files worth a look: every outcome but no_match, unless one outcome is asked for."""
    table = Table(
        Column("path", overflow="fold"), "outcome", Column("matches / reason", overflow="fold")
    )
    wanted = [
        result
        for result in results
        if (result.outcome is only if only is not None else result.outcome is not Outcome.NO_MATCH)
    ]
    for result in sorted(wanted, key=lambda r: r.path):
        table.add_row(result.path, str(result.outcome), _detail(result))
    return table


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Recent scan runs, newest first."""
    with store_of(ctx) as store:
        runs = store.scans.list_runs(limit)
    if as_json:
        out.print(
            json.dumps([summary_json(r, resumed=False, exit_code=exit_code(r)) for r in runs]),
            markup=False,
        )
        return
    shown = (Outcome.MATCHED, Outcome.UNDECODABLE, Outcome.ERROR, Outcome.NOT_ANSWERED)
    table = Table(
        "run",
        Column("status", no_wrap=True),
        Column("started (UTC)", no_wrap=True),
        "files",
        *(str(o) for o in shown),
        Column("roots", overflow="fold"),
    )
    for r in runs:
        table.add_row(
            str(r.id),
            str(r.status),
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            str(r.total),
            *(str(r.counts.get(o, 0)) for o in shown),
            " ".join(r.roots),
        )
    out.print(table)


@runs_app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: int,
    as_json: Annotated[
        bool, typer.Option("--json", help="Every file's result as JSON lines.")
    ] = False,
    outcome: Annotated[Outcome | None, typer.Option(help="Only files with this outcome.")] = None,
) -> None:
    """One run: its summary, and its files (all, or those with one outcome)."""
    with store_of(ctx) as store:
        try:
            run = store.scans.get(run_id)
        except UnknownRun as exc:
            raise fail(str(exc)) from None
        if as_json:
            for result in store.scans.results(run_id, outcome=outcome):
                _emit(result, OutputFormat.JSON)
            sys.stdout.write(
                json.dumps(summary_json(run, resumed=False, exit_code=exit_code(run))) + "\n"
            )
            return
        out.print(_summary_table(run))
        out.print(_files_table(store.scans.results(run_id, outcome=outcome), only=outcome))
