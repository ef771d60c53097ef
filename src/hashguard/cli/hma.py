"""``hashguard import-hma``: move an HMA (OpenMediaMatch) database's banks into hashguard."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer

from hashguard.audit import cli_actor
from hashguard.cli.context import fail, out, store_of
from hashguard.services.hma_import import import_hma
from hashguard.store.hma import HmaDatabase


def import_hma_command(
    ctx: typer.Context,
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            envvar="HMA_DATABASE_URL",
            help="The HMA PostgreSQL database (read only), e.g. postgresql://hma@host/hma.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Copy HMA's banks, their enabled content and its signals (pdq, md5, video_md5) into
    hashguard banks, keeping HMA's content ids and where each came from. Exchange
    configurations are listed (without credentials) to set up with `hashguard exchanges`."""
    source = HmaDatabase(database_url)
    try:
        with store_of(ctx) as store:
            report = import_hma(store, cli_actor(), source)
    except Exception as exc:  # noqa: BLE001 - the URL may hold a password: only the type
        raise fail(f"the HMA database could not be read ({type(exc).__name__})") from None
    finally:
        with contextlib.suppress(Exception):
            source.close()
    data = {
        "banks_created": list(report.banks_created),
        "banks_existing": list(report.banks_existing),
        "content": report.content,
        "signals": report.signals,
        "disabled_skipped": report.disabled_skipped,
        "unsupported": dict(report.unsupported),
        "invalid": report.invalid,
        "exchanges": [
            {"name": e.name, "api": e.api, "enabled": e.enabled, "config": dict(e.config)}
            for e in report.exchanges
        ],
    }
    if as_json:
        out.print_json(json.dumps(data))
        return
    out.print(
        f"{report.content} content items ({report.signals} signals) into "
        f"{len(report.banks_created)} new and {len(report.banks_existing)} existing banks; "
        f"{report.disabled_skipped} disabled skipped, {report.invalid} invalid, "
        f"unsupported: {dict(report.unsupported) or 'none'}"
    )
    for exchange in report.exchanges:
        out.print(
            f"exchange {exchange.name} ({exchange.api}): set it up with `hashguard exchanges`"
        )
