"""``hashguard statements``: statements of reasons (DSA Art. 17) — their settings, the
list, one statement, and filing them in the Transparency Database (Art. 24(5))."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, master_key_of, out, registry_of, store_of
from hashguard.cli.exchanges import credential_value
from hashguard.domain.statements import FilingState, Statement, reasons_to_json
from hashguard.plugins import PluginError
from hashguard.statements import service
from hashguard.statements.filing import Filer
from hashguard.store.statements import UnknownStatement

app = typer.Typer(
    help="Statements of reasons (DSA Art. 17) and the Transparency Database (Art. 24(5)).",
    no_args_is_help=True,
)


def _now() -> datetime:
    return datetime.now(UTC)


def statement_json(statement: Statement, *, full: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": statement.id,
        "puid": statement.puid,
        "case": statement.case_id,
        "kind": str(statement.reasons.kind),
        "state": str(statement.state),
        "attempts": statement.attempts,
        "next_attempt_at": statement.next_attempt_at.isoformat()
        if statement.next_attempt_at
        else None,
        "last_error": statement.last_error,
        "tdb_uuid": statement.tdb_uuid,
        "created_at": statement.created_at.isoformat(),
        "filed_at": statement.filed_at.isoformat() if statement.filed_at else None,
    }
    if full:
        shown["reasons"] = reasons_to_json(statement.reasons)
        shown["text"] = statement.text
    return shown


@app.command("settings")
def settings_command(
    ctx: typer.Context,
    issue: Annotated[
        bool | None,
        typer.Option(
            "--issue/--no-issue",
            help="Decisions that restrict content produce statements of reasons (EU hosts).",
        ),
    ] = None,
    legal_ground: Annotated[
        str | None, typer.Option(help="The statute the content breaks (up to 500 characters).")
    ] = None,
    territorial_scope: Annotated[
        str | None, typer.Option(help="EU/EEA country codes, comma-separated (GR for Greece).")
    ] = None,
    redress: Annotated[str | None, typer.Option(help="How the uploader contests it.")] = None,
    reference_url: Annotated[str | None, typer.Option(help="A URL of the legal ground.")] = None,
    tdb: Annotated[
        bool | None,
        typer.Option(
            "--tdb/--no-tdb",
            help="File statements in the Transparency Database (online platforms only).",
        ),
    ] = None,
    environment: Annotated[str | None, typer.Option(help="sandbox or production.")] = None,
    sandbox_url: Annotated[
        str | None, typer.Option(help="The sandbox's address (from onboarding).")
    ] = None,
    production_url: Annotated[str | None, typer.Option()] = None,
    token: Annotated[
        str | None, typer.Option(help="env:VAR or file:PATH; sealed with the master key.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show or change what statements say and where they are filed (the token is
    sealed, never shown)."""
    if environment not in (None, "sandbox", "production"):
        raise fail("environment is sandbox or production")
    scope = None
    if territorial_scope is not None:
        scope = [c.strip().upper() for c in territorial_scope.split(",") if c.strip()]
    statements = {
        "issue": issue, "legal_ground": legal_ground, "territorial_scope": scope,
        "redress": redress, "reference_url": reference_url,
    }  # fmt: skip
    sink_settings = {
        "environment": environment, "sandbox_url": sandbox_url, "production_url": production_url,
    }  # fmt: skip
    secret = credential_value("token", token) if token is not None else None
    given = [*statements.values(), *sink_settings.values(), tdb, secret]
    with store_of(ctx) as store:
        if any(v is not None for v in given):
            try:
                changed = service.change_settings(
                    store, lambda: master_key_of(ctx), statements=statements,
                    sink_settings=sink_settings, token=secret, actor=cli_actor(), at=_now(),
                    tdb=tdb,
                )  # fmt: skip
            except ValueError as exc:  # names the setting, never a value
                raise fail(str(exc)) from None
            err.print(f"changed: {', '.join(changed)}", highlight=False)
        stored, _ = store.statements.settings(service.STATEMENTS)
        sink, sealed = store.statements.settings(service.SINK)
    shown = {"statements": stored, "tdb": {**sink, "credentials": sorted(sealed)}}
    out.print(json.dumps(shown, indent=None if as_json else 2), markup=False)


@app.command("list")
def list_command(
    ctx: typer.Context,
    pending: Annotated[
        bool, typer.Option("--pending", help="Only those not yet in the Database.")
    ] = False,
    state: Annotated[str | None, typer.Option(help="Only statements in this state.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Statements by filing state (``failed``: refused by the Database, the dead letter)."""
    try:
        states = [FilingState(state)] if state else []
    except ValueError:
        raise fail(f"state is one of {', '.join(FilingState)}") from None
    if pending:
        states = [FilingState.PENDING, FilingState.SENDING, FilingState.FAILED]
    with store_of(ctx) as store:
        found = store.statements.list(states=states)
    if as_json:
        out.print(json.dumps([statement_json(s) for s in found]), markup=False)
        return
    table = Table("id", "puid", "case", "kind", "state", "attempts", "last error")
    for s in found:
        table.add_row(
            str(s.id), s.puid, str(s.case_id), str(s.reasons.kind), str(s.state),
            str(s.attempts), (s.last_error or "")[:60],
        )  # fmt: skip
    out.print(table)


@app.command("show")
def show_command(ctx: typer.Context, statement_id: Annotated[int, typer.Argument()]) -> None:
    """One statement: its reasons, the uploader's text and its filing state."""
    with store_of(ctx) as store:
        try:
            statement = store.statements.get(statement_id)
        except UnknownStatement as exc:
            raise fail(str(exc)) from None
    out.print(json.dumps(statement_json(statement, full=True), indent=2), markup=False)


@app.command("submit")
def submit_command(
    ctx: typer.Context,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Send refused statements again too.")
    ] = False,
) -> None:
    """File every due statement now, in batches of up to 100 (idempotent by puid); the
    background job does the same."""
    with store_of(ctx) as store:
        try:
            sink = service.open_sink(store, registry_of(ctx), lambda: master_key_of(ctx))
        except PluginError as exc:
            raise fail(f"{exc} (see `hashguard statements settings`)") from None
        try:
            if retry_failed:
                store.statements.retry_failed(actor=cli_actor(), at=_now())
            report = Filer(
                statements=store.statements, sink=sink, clock=_now, actor=cli_actor()
            ).run()
        finally:
            sink.close()
        counts = store.statements.count_by_state()
    shown = {
        "filed": report.filed, "already_filed": report.existing, "refused": report.failed,
        "batches": report.batches, "error": report.error,
        "states": {str(k): v for k, v in sorted(counts.items())},
    }  # fmt: skip
    out.print(json.dumps(shown), markup=False)
    if report.error:
        raise typer.Exit(1)
