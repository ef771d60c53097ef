"""``hashguard reports``: reports of confirmed cases to the NCMEC CyberTipline — the
reporter's settings, a draft, submitting, the list, one report's steps, retraction, and
sending a failed report again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, master_key_of, out, registry_of, settings_of, store_of
from hashguard.cli.exchanges import credential_value
from hashguard.domain.reports import Report, ReportState
from hashguard.evidence.vault import EvidenceError
from hashguard.httpclient import ServiceError
from hashguard.plugins import PluginError
from hashguard.reports import service
from hashguard.reports.base import InvalidReport
from hashguard.reports.machine import ReportBusy, RetractRefused, RetryRefused
from hashguard.reports.ncmec import CyberTiplineSink
from hashguard.store import Store
from hashguard.store.cases import UnknownCase
from hashguard.store.reports import UnknownReport

app = typer.Typer(
    help="Reports of confirmed cases to the NCMEC CyberTipline.", no_args_is_help=True
)


def _now() -> datetime:
    return datetime.now(UTC)


def _report_json(report: Report) -> dict[str, Any]:
    return {
        "id": report.id,
        "case": report.case_id,
        "sink": report.sink,
        "environment": report.environment,
        "state": str(report.state),
        "report_id": report.remote_id,
        "attempts": report.attempts,
        "next_attempt_at": report.next_attempt_at.isoformat() if report.next_attempt_at else None,
        "last_error": report.last_error,
        "receipt": list(report.receipt),
        "files": [
            {"seq": f.seq, "name": f.name, "state": str(f.state), "file_id": f.file_id}
            for f in report.files
        ],
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
    }


def _reporting(ctx: typer.Context, store: Store) -> service.Reporting:
    try:
        return service.Reporting.open(
            settings_of(ctx), store, registry_of(ctx), lambda: master_key_of(ctx), clock=_now
        )
    except PluginError as exc:
        raise fail(f"{exc} (see `hashguard reports settings`)") from None


@app.command("settings")
def settings_command(
    ctx: typer.Context,
    first_name: Annotated[str | None, typer.Option(help="Reporting person.")] = None,
    last_name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    company_template: Annotated[str | None, typer.Option(help="Company text for NCMEC.")] = None,
    legal_url: Annotated[str | None, typer.Option()] = None,
    platform: Annotated[str | None, typer.Option(help="Your service's name.")] = None,
    environment: Annotated[str | None, typer.Option(help="test or production.")] = None,
    schema_file: Annotated[str | None, typer.Option(help="NCMEC's XSD (GET /xsd).")] = None,
    test_url: Annotated[str | None, typer.Option()] = None,
    production_url: Annotated[str | None, typer.Option()] = None,
    username: Annotated[
        str | None, typer.Option(help="env:VAR or file:PATH; sealed with the master key.")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="env:VAR or file:PATH; sealed with the master key.")
    ] = None,
    industry_classification_mou: Annotated[
        bool | None,
        typer.Option(
            "--industry-classification-mou/--no-industry-classification-mou",
            help="You signed NCMEC's hash-sharing MOU: send the files' industryClassification.",
        ),
    ] = None,
    uploader_info_url: Annotated[
        str | None,
        typer.Option(
            help="Your platform's endpoint for the signed additional-information request "
            "(the uploader's details); an empty string switches it off.",
        ),
    ] = None,
    uploader_info_secret: Annotated[
        str | None,
        typer.Option(
            help="Its Standard Webhooks secret (whsec_...): env:VAR or file:PATH; sealed.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show or change who reports and how (credentials are sealed, never shown)."""
    reporter = {
        "first_name": first_name, "last_name": last_name, "email": email,
        "company_template": company_template, "legal_url": legal_url, "platform": platform,
    }  # fmt: skip
    sink_settings = {
        "environment": environment, "schema_file": schema_file,
        "test_url": test_url, "production_url": production_url,
        "industry_classification_mou": industry_classification_mou,
    }  # fmt: skip
    uploader_info = {"url": uploader_info_url}
    if environment not in (None, "test", "production"):
        raise fail("environment is test or production")
    secrets = {
        name: credential_value(name, given)
        for name, given in (
            ("username", username),
            ("password", password),
            (service.UPLOADER_SECRET, uploader_info_secret),
        )
        if given is not None
    }
    given = (*reporter.values(), *sink_settings.values(), *uploader_info.values())
    with store_of(ctx) as store:
        if any(v is not None for v in given) or secrets:
            try:
                changed = service.change_settings(
                    store, lambda: master_key_of(ctx), reporter=reporter,
                    sink_settings=sink_settings, secrets=secrets, actor=cli_actor(), at=_now(),
                    uploader_info=uploader_info,
                )  # fmt: skip
            except ValueError as exc:  # names the setting, never a value
                raise fail(str(exc)) from None
            err.print(f"changed: {', '.join(changed)}", highlight=False)
        stored, sealed = store.reports.settings(service.SINK)
    shown = {**stored, "credentials": sorted(sealed)}
    out.print(json.dumps(shown, indent=None if as_json else 2), markup=False)


@app.command("schema")
def schema_command(
    ctx: typer.Context,
    fetch: Annotated[bool, typer.Option("--fetch", help="Fetch NCMEC's XSD now.")] = False,
) -> None:
    """Fetch NCMEC's current XSD with the stored credentials into the home folder and
    use it to validate every report."""
    if not fetch:
        raise fail("pass --fetch")
    settings = settings_of(ctx)
    with store_of(ctx) as store:
        with _reporting(ctx, store) as reporting:
            sink = reporting.sink
            if not isinstance(sink, CyberTiplineSink):
                raise fail(f"{sink.name} has no schema to fetch")
            try:
                data = sink.fetch_schema()
            except ServiceError as exc:  # its message names no secret
                raise fail(str(exc)) from None
        path = settings.home / "reports" / "cyber_tipline.xsd"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        service.change_settings(
            store, lambda: master_key_of(ctx), reporter={},
            sink_settings={"schema_file": str(path)}, secrets={}, actor=cli_actor(), at=_now(),
        )  # fmt: skip
    err.print(f"schema saved to {path}", highlight=False)


def _draft(reporting: service.Reporting, case_id: int) -> Report:
    try:
        report, created = reporting.draft(case_id, actor=cli_actor())
    except (service.ReportRefused, InvalidReport, UnknownCase, EvidenceError) as exc:
        raise fail(str(exc)) from None
    if not created:
        err.print(f"case #{case_id} already has report #{report.id}", highlight=False)
    return report


@app.command("draft")
def draft_command(ctx: typer.Context, case: Annotated[int, typer.Argument()]) -> None:
    """Build the report of a confirmed case, validated against NCMEC's XSD; nothing is sent.
    Prints the report document."""
    with store_of(ctx) as store, _reporting(ctx, store) as reporting:
        report = _draft(reporting, case)
        out.print(reporting.keys.draft_document(report).decode(), markup=False)
    err.print(f"report #{report.id}: {report.state}", highlight=False)


@app.command("submit")
def submit_command(ctx: typer.Context, case: Annotated[int, typer.Argument()]) -> None:
    """Draft (if needed) and send the report of a confirmed case, or resume it."""
    with store_of(ctx) as store, _reporting(ctx, store) as reporting:
        report = _draft(reporting, case)
        try:
            report = reporting.runner(cli_actor()).run(report.id)
        except ReportBusy as exc:
            raise fail(str(exc)) from None
    out.print(json.dumps(_report_json(report)), markup=False)
    if report.state is ReportState.FAILED:
        raise typer.Exit(1)


@app.command("resume")
def resume_command(ctx: typer.Context) -> None:
    """Run every report whose next attempt is due (retries after a failure, reports a
    killed process left); the background jobs do the same."""
    with store_of(ctx) as store, _reporting(ctx, store) as reporting:
        done = reporting.resume_due(actor=cli_actor())
    out.print(json.dumps([_report_json(r) for r in done]), markup=False)


@app.command("list")
def list_command(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="Only reports in this state.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Reports by state (``failed``: the dead letter)."""
    try:
        wanted = None if state is None else ReportState(state)
    except ValueError:
        raise fail(f"state is one of {', '.join(ReportState)}") from None
    with store_of(ctx) as store:
        found = store.reports.list(state=wanted)
    if as_json:
        out.print(json.dumps([_report_json(r) for r in found]), markup=False)
        return
    table = Table("id", "case", "state", "NCMEC id", "attempts", "last error")
    for r in found:
        table.add_row(
            str(r.id), str(r.case_id), str(r.state), r.remote_id or "", str(r.attempts),
            (r.last_error or "")[:60],
        )  # fmt: skip
    out.print(table)


@app.command("show")
def show_command(ctx: typer.Context, report_id: Annotated[int, typer.Argument()]) -> None:
    """One report: its state and every step with NCMEC's response code."""
    with store_of(ctx) as store:
        try:
            report = store.reports.get(report_id)
        except UnknownReport as exc:
            raise fail(str(exc)) from None
        steps = store.reports.steps(report_id)
    shown = _report_json(report)
    shown["steps"] = [
        {"at": s.at.isoformat(), "actor": s.actor, "step": s.step, "outcome": s.outcome,
         "code": s.code, "detail": s.detail, "state": str(s.state)}
        for s in steps
    ]  # fmt: skip
    out.print(json.dumps(shown, indent=2), markup=False)


@app.command("retract")
def retract_command(ctx: typer.Context, report_id: Annotated[int, typer.Argument()]) -> None:
    """Cancel a report that is not finished."""
    with store_of(ctx) as store, _reporting(ctx, store) as reporting:
        try:
            report = reporting.retract(report_id, actor=cli_actor())
        except (RetractRefused, ReportBusy, UnknownReport) as exc:
            raise fail(str(exc)) from None
    out.print(json.dumps(_report_json(report)), markup=False)


@app.command("retry")
def retry_command(ctx: typer.Context, report_id: Annotated[int, typer.Argument()]) -> None:
    """Send a failed report (the dead letter) again, now, and print where it stands.

    Only a `failed` report of a case still confirmed; the same report goes again (its
    earlier steps and documents are kept). If NCMEC holds every file, the report is
    finished again (one NCMEC already finished is recorded as finished, never sent
    twice); otherwise NCMEC's unfinished report is retracted and a new one is opened from
    the draft. Audited as report.reopened. Exit 1 if it failed again.
    """
    with store_of(ctx) as store, _reporting(ctx, store) as reporting:
        try:
            report = reporting.retry(report_id, actor=cli_actor())
        except (
            RetryRefused, ReportBusy, UnknownReport, service.ReportRefused, EvidenceError,
        ) as exc:  # fmt: skip
            raise fail(str(exc)) from None
    out.print(json.dumps(_report_json(report)), markup=False)
    if report.state is ReportState.FAILED:
        raise typer.Exit(1)
