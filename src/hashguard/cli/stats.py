"""``hashguard stats``: the numbers hashguard counts (``domain.stats``), and ``verify``,
which recounts a period from the records and compares it with the rollups."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

from hashguard.cli.context import fail, out, store_of
from hashguard.stats.verify import verify as verify_period

app = typer.Typer(help="Statistics: what was checked, matched, decided, reported.")

SINCE = typer.Option("--since", help="First day (YYYY-MM-DD), included.")
UNTIL = typer.Option("--until", help="Last day (YYYY-MM-DD), included.")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"not a day: {text!r} (YYYY-MM-DD)") from None


@app.command("verify")
def verify(
    ctx: typer.Context,
    since: Annotated[str, SINCE],
    until: Annotated[str, UNTIL],
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Recount the days from the audit log and the scan results and compare with the
    rollups; exits 1 on any difference."""
    first, last = _day(since), _day(until)
    if last < first:
        raise fail("--until is before --since")
    with store_of(ctx) as store:
        found = verify_period(store, first, last)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "since": str(found.since),
                    "until": str(found.until),
                    "ok": found.ok,
                    "cells": found.cells,
                    "audit_events": found.events,
                    "scan_results": found.results,
                    "differences": [
                        {
                            "day": str(d.day),
                            "name": d.name,
                            "labels": d.labels,
                            "recorded": d.recorded,
                            "recounted": d.recounted,
                        }
                        for d in found.differences
                    ],
                    "not_recomputable": dict(found.not_recomputable),
                }
            )
        )
    else:
        for d in found.differences:
            labels = " ".join(f"{k}={v}" for k, v in d.labels.items() if v)
            out.print(
                f"{d.day} {d.name} {labels}: recorded {d.recorded}, recounted {d.recounted}",
                markup=False,
                highlight=False,
            )
        for what, total in found.not_recomputable:
            out.print(f"not recomputable (counted, not recorded one by one): {what}: {total}")
        verdict = "OK" if found.ok else f"{len(found.differences)} difference(s)"
        out.print(
            f"{verdict}: {found.cells} cells compared, {found.events} audit events replayed, "
            f"{found.results} scan results recounted ({found.since} to {found.until})",
            markup=False,
            highlight=False,
        )
    if not found.ok:
        raise typer.Exit(1)
