"""``hashguard scan s3://…``: the object-storage options of ``hashguard scan``, parsed into
a store, a listing and a filter; and the dry run's estimate."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hashguard.cli.context import err, fail, out
from hashguard.scan.objectruns import ObjectScanArgs, object_run_args
from hashguard.scan.objects import NeedsExtra
from hashguard.scan.objectscan import estimate, listing_of

#: ``ObjectScanArgs`` is the shared type (``scan.objectruns``), named here for callers
__all__ = ["ObjectScanArgs", "Versions", "object_args", "object_scan", "open_store"]


class Versions(StrEnum):
    LATEST = "latest"
    ALL = "all"


ENDPOINT_OPTION = typer.Option(
    "--endpoint-url",
    help="An S3-compatible store's endpoint (default: AWS; also AWS_ENDPOINT_URL).",
    rich_help_panel="Object storage (s3://bucket/prefix)",
)
PANEL = "Object storage (s3://bucket/prefix)"
EndpointOption = Annotated[str | None, ENDPOINT_OPTION]
InventoryOption = Annotated[
    str | None,
    typer.Option(
        help="List from this S3 Inventory manifest (s3://…/manifest.json) instead of LIST calls.",
        rich_help_panel=PANEL,
    ),
]
VersionsOption = Annotated[
    Versions,
    typer.Option(help="Scan each key's current version, or every version.", rich_help_panel=PANEL),
]
MaxSizeOption = Annotated[
    int | None,
    typer.Option(
        help="Objects larger than this many bytes are not downloaded (outcome: unsupported).",
        min=1,
        rich_help_panel=PANEL,
    ),
]
ExtOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ext",
        help="Only keys with this extension (repeatable: --ext jpg --ext png).",
        rich_help_panel=PANEL,
    ),
]
ContentTypeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--content-type",
        help="Only objects of this Content-Type (image/*; repeatable; a HEAD request each).",
        rich_help_panel=PANEL,
    ),
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Estimate objects, bytes, requests and CPU-hours from the listing; read nothing.",
        rich_help_panel=PANEL,
    ),
]
RateOption = Annotated[
    float | None,
    typer.Option(help="At most this many requests per second.", min=0.01, rich_help_panel=PANEL),
]


def object_args(
    paths: Sequence[str],
    *,
    endpoint_url: str | None,
    inventory: str | None,
    versions: Versions,
    max_size: int | None,
    extensions: list[str] | None,
    content_types: list[str] | None,
    rate: float | None,
) -> ObjectScanArgs | None:
    """The object scan ``paths`` ask for (``None``: they are local paths)."""
    try:
        return object_run_args(
            paths,
            endpoint_url=endpoint_url,
            inventory=inventory,
            all_versions=versions is Versions.ALL,
            max_size=max_size,
            extensions=extensions,
            content_types=content_types,
            rate=rate,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None


def object_scan(
    paths: Sequence[str], *, dry_run: bool, as_json: bool, **options: Any
) -> tuple[ObjectScanArgs | None, Any]:
    """The object scan ``paths`` and ``options`` ask for and its opened store (``None``,
    ``None``: local paths); a dry run prints its estimate and exits."""
    args = object_args(paths, **options)
    if dry_run:
        _dry_run(args, as_json=as_json)
        raise typer.Exit(0)
    return args, open_store(args) if args is not None else None


def open_store(args: ObjectScanArgs) -> Any:
    """The ``ObjectStore`` for these options (fails saying which extra is missing)."""
    try:
        from hashguard.scan.objects import ObjectStore  # noqa: PLC0415

        return ObjectStore(endpoint_url=args.endpoint_url, rate=args.rate)
    except NeedsExtra as exc:
        raise fail(escape(str(exc))) from None


def _dry_run(args: ObjectScanArgs | None, *, as_json: bool) -> None:
    """Print what the scan would read and cost; nothing is downloaded."""
    if args is None:
        raise fail("--dry-run estimates an s3:// scan")
    store = open_store(args)
    listing = listing_of(
        store, args.uris, inventory=args.inventory, all_versions=args.chosen.all_versions
    )
    reads = store.requests.sent
    try:
        figures = estimate(
            listing(),
            args.chosen,
            listing_requests=(lambda _listed: reads.get("GetObject", 0))
            if args.inventory
            else None,
        )
    except Exception as exc:  # noqa: BLE001 - a refused listing (botocore's errors vary)
        raise fail(f"cannot list: {exc}") from None
    if as_json:
        sys.stdout.write(json.dumps(figures.as_json()) + "\n")
        return
    shown = figures.as_json()
    table = Table("estimate", "value", title="dry run: nothing was downloaded")
    table.add_row("objects listed", f"{figures.listed:,}")
    table.add_row("objects to read", f"{figures.selected:,}")
    table.add_row("bytes to read", f"{figures.selected_bytes:,}")
    table.add_row("over the size cap (not read)", f"{figures.too_large:,}")
    for kind, count in shown["requests"].items():
        table.add_row(f"{kind.upper()} requests", f"{count:,}")
    table.add_row(
        "CPU-hours (hashing)",
        f"{figures.cpu_hours:.3f}",
    )
    out.print(table)
    err.print(
        f"CPU model: {shown['cpu_model']['seconds_per_object']} s per object + "
        f"{shown['cpu_model']['seconds_per_mb']} s per MB (measured: python -m bench, "
        "section objects)"
    )
