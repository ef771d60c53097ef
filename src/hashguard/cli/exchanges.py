"""``hashguard exchanges``: hash-sharing exchanges that keep a bank in sync."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.banks.exchanges.base import ListSource
from hashguard.banks.exchanges.fbtx import ThreatExchangeExchange
from hashguard.banks.exchanges.graph_api import graph_api_warning
from hashguard.banks.exchanges.sync import build_source, sync_exchange
from hashguard.cli.context import err, fail, master_key_of, out, registry_of, store_of
from hashguard.domain.actions import ActionState
from hashguard.domain.exchanges import Exchange, ExchangeState, FeedbackVerdict, SyncReport
from hashguard.domain.signals import Algorithm
from hashguard.keys import MasterKeyError
from hashguard.plugins import AdapterKind, PluginError
from hashguard.services import exchanges as service
from hashguard.services.exchanges import BankInUse, NothingToSend
from hashguard.store.banks import InvalidBankName
from hashguard.store.cases import UnknownCase
from hashguard.store.exchanges import ExchangeExists, UnknownExchange

app = typer.Typer(help="Hash-sharing exchanges (NCMEC, StopNCII...).", no_args_is_help=True)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise fail(f"{what} takes NAME=VALUE, not {item!r}")
        pairs[name.strip()] = value
    return pairs


def _setting_value(text: str) -> Any:
    """JSON where it parses (numbers, booleans, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def credential_value(name: str, given: str | None) -> str:
    """From ``env:VAR`` or ``file:PATH`` (never from the command line itself, which other
    users can see), or asked for without echo."""
    if given is None:
        if not sys.stdin.isatty():
            raise fail(f"credential {name!r} missing: pass --credential {name}=env:VAR")
        return str(typer.prompt(name, hide_input=True))
    source, _, where = given.partition(":")
    if source == "env":
        value = os.environ.get(where)
        if value is None:
            raise fail(f"credential {name!r}: environment variable {where} is not set")
        return value
    if source == "file":
        try:
            return Path(where).read_text().strip()
        except OSError as exc:
            raise fail(f"credential {name!r}: cannot read {where}: {exc.strerror}") from None
    raise fail(f"credential {name!r} must be env:VAR or file:PATH")


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Your name for this exchange.")],
    adapter: Annotated[str, typer.Option(help="Adapter: ncmec, stopncii, local_file...")],
    bank: Annotated[
        str | None, typer.Option(help="Bank it syncs into (default: the exchange's name).")
    ] = None,
    setting: Annotated[
        list[str] | None, typer.Option("--setting", help="Adapter setting NAME=VALUE; repeat.")
    ] = None,
    credential: Annotated[
        list[str] | None,
        typer.Option(
            "--credential", help="NAME=env:VAR or NAME=file:PATH; asked for when missing."
        ),
    ] = None,
    share_bank: Annotated[
        bool,
        typer.Option(
            "--share-bank", help="Allow a bank that already has entries or another exchange."
        ),
    ] = False,
    feedback: Annotated[
        bool,
        typer.Option(
            "--feedback/--no-feedback",
            help="Tell it each final review decision on a case its entries matched.",
        ),
    ] = False,
    feedback_reason: Annotated[
        str | None,
        typer.Option(help="The reason false positives are sent with (NCMEC: one of its names)."),
    ] = None,
) -> None:
    """Configure an exchange. Its credentials are sealed with the master key; the bank
    is created if missing and, by default, belongs to this exchange alone (so a list
    of adult NCII from StopNCII is never mixed into a CSAM bank)."""
    registry = registry_of(ctx)
    try:
        kind = registry.get(adapter, AdapterKind.LIST_SOURCE)
    except PluginError as exc:
        raise fail(str(exc)) from None
    settings = {k: _setting_value(v) for k, v in _pairs(setting or [], "--setting").items()}
    given = _pairs(credential or [], "--credential")
    unknown = set(given) - set(kind.secrets) - set(kind.optional_secrets)
    if unknown:
        raise fail(f"{adapter} takes no credential named {sorted(unknown)}")
    secrets = {secret: credential_value(secret, given.get(secret)) for secret in kind.secrets}
    secrets |= {
        secret: credential_value(secret, given[secret])
        for secret in kind.optional_secrets
        if secret in given
    }
    try:
        kind.configure(settings, {k: SecretStr(v) for k, v in secrets.items()})
    except PluginError as exc:
        raise fail(str(exc)) from None
    bank = bank or name
    key = master_key_of(ctx) if secrets else None
    with store_of(ctx) as store:
        try:
            service.add_exchange(
                store,
                cli_actor(),
                name,
                adapter=adapter,
                bank=bank,
                settings=settings,
                secrets=secrets,
                key=key,
                share_bank=share_bank,
                feedback=feedback,
                feedback_reason=feedback_reason,
            )
        except BankInUse as exc:
            raise fail(f"{exc}; pass --share-bank to mix this exchange's list into it") from None
        except (InvalidBankName, ExchangeExists) as exc:
            raise fail(str(exc)) from None
    err.print(f"exchange {name!r} ({adapter}) syncs into bank {bank!r}; run `exchanges sync`")


def _state_json(exchange: Exchange, state: ExchangeState) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "name": exchange.name,
        "adapter": exchange.adapter,
        "bank": exchange.bank,
        "enabled": exchange.enabled,
        "feedback": exchange.feedback,
        "feedback_reason": exchange.feedback_reason,
        "settings": dict(exchange.settings),
        "credentials": list(exchange.credential_names),
        "last_started_at": iso(state.last_started_at),
        "last_success_at": iso(state.last_success_at),
        "last_error": state.last_error,
        "upserted": state.upserted,
        "removed": state.removed,
        "skipped": state.skipped,
        "has_checkpoint": state.checkpoint is not None,
    }


@app.command("list")
def list_exchanges(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Configured exchanges with their sync state (never their credentials)."""
    with store_of(ctx) as store:
        rows = [_state_json(e, store.exchanges.state(e.name)) for e in store.exchanges.list()]
    if as_json:
        out.print(json.dumps(rows), markup=False)
        return
    table = Table(
        "name",
        "adapter",
        "bank",
        "enabled",
        "feedback",
        "last success (UTC)",
        "entries +/-",
        "error",
    )
    for row in rows:
        success = (row["last_success_at"] or "")[:16].replace("T", " ")
        table.add_row(
            row["name"],
            row["adapter"],
            row["bank"],
            "yes" if row["enabled"] else "no",
            "on" if row["feedback"] else "off",
            success,
            f"+{row['upserted']} -{row['removed']} ({row['skipped']} skipped)",
            row["last_error"] or "",
        )
    out.print(table)


@app.command()
def status(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The exchange.")]) -> None:
    """One exchange's configuration and sync state, as JSON."""
    with store_of(ctx) as store:
        try:
            row = _state_json(store.exchanges.get(name), store.exchanges.state(name))
        except UnknownExchange as exc:
            raise fail(str(exc)) from None
    out.print(json.dumps(row, indent=2), markup=False)


def _report_json(report: SyncReport) -> dict[str, Any]:
    return {
        "exchange": report.exchange,
        "ok": report.ok,
        "batches": report.batches,
        "upserted": report.upserted,
        "removed": report.removed,
        "skipped": report.skipped,
        "skipped_reasons": list(report.skipped_reasons),
        "error": report.error,
    }


@app.command()
def sync(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Exchanges to sync (default: every enabled one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Fetch what changed since the last sync and apply it to each exchange's bank.
    Exit status 1 when any exchange failed (its checkpoint is kept)."""
    registry = registry_of(ctx)
    reports = []
    with store_of(ctx) as store:
        try:
            chosen = (
                [store.exchanges.get(n) for n in names]
                if names
                else [e for e in store.exchanges.list() if e.enabled]
            )
        except UnknownExchange as exc:
            raise fail(str(exc)) from None
        key = master_key_of(ctx) if any(e.credential_names for e in chosen) else None
        for exchange in chosen:
            try:
                source: ListSource = build_source(registry, store, key, exchange)
            except (PluginError, MasterKeyError) as exc:
                reports.append(SyncReport(exchange=exchange.name, error=str(exc)))
                continue
            if isinstance(source, ThreatExchangeExchange):
                warning = graph_api_warning(source.graph_api_version, datetime.now(UTC).date())
                if warning is not None:
                    err.print(
                        f"[yellow]warning:[/yellow] {exchange.name}: {warning}", highlight=False
                    )
            err.print(f"syncing {exchange.name} ({exchange.adapter}) into {exchange.bank}...")
            reports.append(sync_exchange(store, exchange, source, actor=cli_actor()))
    if as_json:
        out.print(json.dumps([_report_json(r) for r in reports]), markup=False)
    for report in reports:
        if report.ok:
            err.print(
                f"{report.exchange}: +{report.upserted} -{report.removed} "
                f"({report.skipped} skipped) in {report.batches} batch(es)",
                highlight=False,
            )
        else:
            err.print(f"[red]{report.exchange}: {report.error}[/red]", highlight=False)
        for reason in report.skipped_reasons:
            err.print(f"  [yellow]skipped[/yellow] {reason}", highlight=False)
    if any(not r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def feedback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The exchange the entry came from.")],
    verdict: Annotated[FeedbackVerdict, typer.Option(help="What review concluded.")],
    case: Annotated[
        int | None, typer.Option("--case", help="Every entry of NAME this case matched.")
    ] = None,
    entry_id: Annotated[
        str | None, typer.Option(help="The entry's id, as the bank shows it.")
    ] = None,
    algorithm: Annotated[
        Algorithm | None, typer.Option(help="The matched hash's algorithm.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (a false positive's reason).")] = None,
) -> None:
    """Tell the exchange what review concluded about its entries: those case --case
    matched, or the entry --entry-id of --algorithm. It goes through the outbox like a
    decision's feedback (whether feedback is switched on for NAME or not), audited; the
    dispatcher (`serve`, `worker` or `actions dispatch --once`) sends it and retries it."""
    with store_of(ctx) as store:
        try:
            queued = service.queue_feedback(
                store,
                cli_actor(),
                name,
                verdict=verdict,
                reason=reason,
                case_id=case,
                entry_id=entry_id,
                algorithm=algorithm,
            )
        except (UnknownExchange, UnknownCase, NothingToSend) as exc:
            raise fail(str(exc)) from None
        states = {action_id: store.actions.get(action_id) for action_id, _ in queued}
    for action_id, request in queued:
        action = states[action_id]
        if action.state is ActionState.PENDING and action.attempts == 0:
            said = "queued"
        elif action.state is ActionState.DEAD:
            said = f"queued before, now a dead letter (`hashguard actions retry {action_id}`)"
        else:
            said = f"queued before ({action.state})"
        err.print(f"{request.describe()}: action {action_id} {said}", highlight=False)
    err.print("the dispatcher sends it: `hashguard actions dispatch --once`, `serve` or `worker`")


@app.command("feedback-setting")
def feedback_setting(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The exchange.")],
    on: Annotated[
        bool,
        typer.Option(
            "--on/--off", help="Tell it each final review decision on a case its entries matched."
        ),
    ],
    reason: Annotated[
        str | None,
        typer.Option(
            help='The reason false positives are sent with (NCMEC: one of its names); "" clears.'
        ),
    ] = None,
) -> None:
    """Switch automatic feedback to this exchange on or off (off for a new exchange)."""
    with store_of(ctx) as store:
        try:
            exchange = service.set_exchange_feedback(store, cli_actor(), name, on=on, reason=reason)
        except UnknownExchange as exc:
            raise fail(str(exc)) from None
    said = (
        f", false positives sent as {exchange.feedback_reason!r}"
        if exchange.feedback_reason
        else ""
    )
    err.print(f"exchange {name!r}: feedback {'on' if on else 'off'}{said}", highlight=False)


def _set_enabled(ctx: typer.Context, name: str, enabled: bool) -> None:
    with store_of(ctx) as store:
        try:
            service.set_exchange_enabled(store, cli_actor(), name, enabled=enabled)
        except UnknownExchange as exc:
            raise fail(str(exc)) from None
    err.print(f"exchange {name!r} {'enabled' if enabled else 'disabled'}")


@app.command()
def enable(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Sync this exchange again (with `exchanges sync` and in `hashguard serve`)."""
    _set_enabled(ctx, name, True)


@app.command()
def disable(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Stop syncing this exchange; its bank keeps its entries."""
    _set_enabled(ctx, name, False)


@app.command()
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Forget this exchange and its credentials; its bank keeps its entries."""
    with store_of(ctx) as store:
        try:
            service.remove_exchange(store, cli_actor(), name)
        except UnknownExchange as exc:
            raise fail(str(exc)) from None
    err.print(f"exchange {name!r} removed")
