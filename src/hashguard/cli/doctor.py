"""``hashguard doctor``: one line per check of the installation; exit 1 on a problem."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from hashguard.cli.context import err, out, settings_of
from hashguard.doctor import CHECKS, Level, run_checks

_STYLE = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red", Level.SKIP: "dim"}


def doctor(
    ctx: typer.Context,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on a warning too (e.g. in CI).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check.")] = False,
) -> None:
    """Check the installation: the master key, the store and its schema, the match index,
    the hashing workers, and settings that weaken safety. Changes nothing.

    One line per check: ok, warn (read it; not a problem), fail (a problem) or skip (an
    earlier check failed). Exit code 1 when a check fails (or warns, with --strict).
    """
    settings = settings_of(ctx)
    failed = warned = 0
    for result in run_checks(settings, CHECKS):
        failed += result.level is Level.FAIL
        warned += result.level is Level.WARN
        if as_json:
            line = {"check": result.name, "level": str(result.level), "message": result.message}
            out.print(json.dumps(line), markup=False)
            continue
        style = _STYLE[result.level]
        out.print(
            f"[{style}]{result.level:<4}[/{style}] {escape(result.name)}: {escape(result.message)}"
        )
    if not as_json:
        err.print(f"{failed} problem(s), {warned} warning(s)", highlight=False)
    if failed or (strict and warned):
        raise typer.Exit(1)
