"""``hashguard cases``: the review queue — list and show cases, assign, confirm, escalate,
mark false positives, annotate and classify a case's file for its report, and open the
cases of a recorded scan run.

Each step is recorded in the case's history and the audit log under the person who runs
the command (``cli:<login>``). ``--as NAME`` is for delegated use: an operator entering
a reviewer's decision (made elsewhere, e.g. on paper in a secure room) on their behalf.
The audit log then names both (``cli:<login>/as:NAME``) and the two-person rule counts
NAME as the reviewer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from hashguard.actions.outbox import endpoints_of
from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, out, settings_of, store_of
from hashguard.domain.cases import CaseState
from hashguard.domain.reports import FileAnnotation, IndustryClassification
from hashguard.review import cases as review
from hashguard.review.cases import case_json, event_json
from hashguard.review.decide import Decided, Verdict, apply_verdict
from hashguard.review.reference import from_settings
from hashguard.store import Store
from hashguard.store.scans import UnknownRun

app = typer.Typer(help="Cases and the review workflow.", no_args_is_help=True)

JSON_OPTION = typer.Option("--json", help="JSON output.")
CASE = typer.Argument(help="The case's id.")
REASON = typer.Option("--reason", help="Why (required; kept in the case's history).")
AS_OPTION = typer.Option(
    "--as",
    help="Delegated use: enter this reviewer's decision on their behalf (both are audited).",
)
VERSION_OPTION = typer.Option(
    "--version",
    help="The case version you reviewed; refused if the case changed since (default: current).",
)

#: Exit code of a step refused because the case changed meanwhile: look again, retry.
STALE_EXIT = 3


def _actor(as_user: str | None) -> str:
    if as_user is None:
        return cli_actor()
    try:
        return review.delegated_actor(cli_actor(), as_user)
    except review.ReviewError as exc:
        raise fail(str(exc)) from None


@contextmanager
def _step(ctx: typer.Context) -> Iterator[Store]:
    """The store, with the workflow's refusals turned into clear errors."""
    with store_of(ctx) as store:
        try:
            yield store
        except review.StaleCase as exc:
            raise fail(str(exc), STALE_EXIT) from None
        except (review.UnknownCase, review.ReviewError) as exc:
            raise fail(str(exc)) from None


def _decide(
    ctx: typer.Context,
    store: Store,
    case_id: int,
    verdict: Verdict,
    actor: str,
    reason: str,
    version: int | None,
    allow_bank: str | None = None,
) -> Decided:
    settings = settings_of(ctx)
    return apply_verdict(
        store,
        case_id,
        verdict,
        actor=actor,
        reason=reason,
        second_confirmation=settings.review_second_confirmation,
        allow_bank=allow_bank or settings.review_allow_bank,
        endpoints=endpoints_of(settings),
        version=version,
        reference=from_settings(settings, store, actor=actor),
    )


@app.command("list")
def list_cases(
    ctx: typer.Context,
    state: Annotated[CaseState | None, typer.Option(help="Only cases in this state.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Only cases assigned to this.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Cases, oldest first."""
    with store_of(ctx) as store:
        found = store.cases.list(state=state, assignee=assignee, limit=limit)
    if as_json:
        out.print(json.dumps([case_json(c) for c in found]), markup=False)
        return
    table = Table("id", "state", "assignee", "action", "banks", "sources", "updated (UTC)")
    for case in found:
        table.add_row(
            str(case.id),
            str(case.state),
            case.assignee or "-",
            str(case.decision.action),
            " ".join(case.banks),
            str(len(case.sources)),
            f"{case.updated_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    case_id: Annotated[int, CASE],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One case (its matches, sources and decision; never the content) and its history."""
    with _step(ctx) as store:
        case = store.cases.get(case_id)
        history = store.cases.history(case_id)
    if as_json:
        shown = case_json(case) | {"history": [event_json(e) for e in history]}
        out.print(json.dumps(shown), markup=False)
        return
    shown = case_json(case)
    for name in ("id", "state", "version", "assignee", "confirmers", "banks", "evidence_id"):
        out.print(f"{name}: {shown[name] if shown[name] not in (None, []) else '-'}", markup=False)
    out.print(f"decision: {case.decision.rule}", markup=False)
    for source in case.sources:
        out.print(f"source: {source}", markup=False)
    out.print("history:", markup=False)
    for event in history:
        move = f" {event.from_state or ''}->{event.to_state}" if event.to_state else ""
        why = f": {event.reason}" if event.reason else ""
        out.print(
            f"  {event.at:%Y-%m-%d %H:%M:%S} {event.actor} {event.kind}{move}{why}", markup=False
        )


@app.command()
def assign(
    ctx: typer.Context,
    case_id: Annotated[int, CASE],
    user: Annotated[str, typer.Argument(help="The reviewer to give it to.")],
    reason: Annotated[str | None, typer.Option(help="Why (optional).")] = None,
    as_user: Annotated[str | None, AS_OPTION] = None,
    version: Annotated[int | None, VERSION_OPTION] = None,
) -> None:
    """Give a case to a reviewer."""
    actor = _actor(as_user)
    with _step(ctx) as store:
        case = review.assign(store, case_id, user, actor=actor, reason=reason, version=version)
    err.print(f"case {case.id} assigned to {user}", highlight=False)


@app.command()
def confirm(
    ctx: typer.Context,
    case_id: Annotated[int, CASE],
    reason: Annotated[str, REASON],
    as_user: Annotated[str | None, AS_OPTION] = None,
    version: Annotated[int | None, VERSION_OPTION] = None,
) -> None:
    """Confirm the match. With review_second_confirmation (the default) a second,
    different person must confirm too before the case is confirmed and reportable."""
    actor = _actor(as_user)
    with _step(ctx) as store:
        case = _decide(ctx, store, case_id, Verdict.CONFIRM, actor, reason, version).case
    if case.state is CaseState.CONFIRMED_ONCE:
        err.print(
            f"case {case.id} confirmed once: a second, different reviewer must confirm it",
            highlight=False,
        )
    else:
        err.print(f"case {case.id} confirmed", highlight=False)


@app.command("false-positive")
def false_positive(
    ctx: typer.Context,
    case_id: Annotated[int, CASE],
    reason: Annotated[str, REASON],
    allow_bank: Annotated[
        str | None,
        typer.Option(
            "--allow-bank",
            help="The allow bank that gets the content's hashes (default: review_allow_bank).",
        ),
    ] = None,
    as_user: Annotated[str | None, AS_OPTION] = None,
    version: Annotated[int | None, VERSION_OPTION] = None,
) -> None:
    """Close a case as a false positive; the content's hashes go to an allow bank (created
    if missing) so it no longer matches."""
    actor = _actor(as_user)
    with _step(ctx) as store:
        decided = _decide(
            ctx, store, case_id, Verdict.FALSE_POSITIVE, actor, reason, version, allow_bank
        )
    case = decided.case
    for line in decided.notes:
        err.print(line, highlight=False, markup=False)
    err.print(
        f"case {case.id} is a false positive; its hashes are in allow bank "
        f"{allow_bank or settings_of(ctx).review_allow_bank} "
        "(rebuild or refresh the match index for scans to see them)",
        highlight=False,
    )


@app.command()
def escalate(
    ctx: typer.Context,
    case_id: Annotated[int, CASE],
    reason: Annotated[str, REASON],
    as_user: Annotated[str | None, AS_OPTION] = None,
    version: Annotated[int | None, VERSION_OPTION] = None,
) -> None:
    """Hand a case to someone senior."""
    actor = _actor(as_user)
    with _step(ctx) as store:
        case = _decide(ctx, store, case_id, Verdict.ESCALATE, actor, reason, version).case
    err.print(f"case {case.id} escalated", highlight=False)


def _drafted_note(store: Store, case_id: int) -> None:
    drafted = [r for r in store.reports.list() if r.case_id == case_id]
    if drafted:
        err.print(
            f"note: case {case_id} already has report #{drafted[0].id}; "
            "a drafted report keeps what it said then",
            highlight=False,
        )


@app.command()
def annotate(
    ctx: typer.Context,
    case_id: Annotated[int, CASE],
    annotation: Annotated[
        list[FileAnnotation] | None,
        typer.Option(
            "--annotation",
            help="NCMEC's fileAnnotations tag for the file (repeat); replaces the earlier set.",
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every annotation.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (optional).")] = None,
    as_user: Annotated[str | None, AS_OPTION] = None,
    version: Annotated[int | None, VERSION_OPTION] = None,
) -> None:
    """Tag the case's file for its NCMEC report (fileAnnotations: generative_ai, viral,
    potential_meme, ...)."""
    if not annotation and not clear:
        raise fail("pass --annotation TAG (repeat) or --clear")
    if annotation and clear:
        raise fail("--annotation and --clear exclude each other")
    actor = _actor(as_user)
    with _step(ctx) as store:
        review.annotate(
            store,
            case_id,
            actor=actor,
            annotations=annotation or (),
            reason=reason,
            version=version,
        )
        _drafted_note(store, case_id)
    shown = ", ".join(sorted(str(a) for a in annotation or ())) or "none"
    err.print(f"case {case_id} annotations: {shown}", highlight=False)


@app.command()
def classify(
    ctx: typer.Context,
    case_id: Annotated[int, CASE],
    classification: Annotated[
        str,
        typer.Argument(
            help="NCMEC's industry scale: A1, A2 (prepubescent minor: sex act, lascivious "
            "exhibition), B1, B2 (pubescent minor: the same), or none.",
        ),
    ],
    reason: Annotated[str | None, typer.Option(help="Why (optional).")] = None,
    as_user: Annotated[str | None, AS_OPTION] = None,
    version: Annotated[int | None, VERSION_OPTION] = None,
) -> None:
    """Set the file's industry classification. A report sends it only when the host
    signed NCMEC's hash-sharing MOU (`hashguard reports settings
    --industry-classification-mou`)."""
    value = classification.strip().upper()
    if value == "NONE":
        chosen = None
    else:
        try:
            chosen = IndustryClassification(value)
        except ValueError:
            raise fail("the classification is A1, A2, B1, B2 or none") from None
    actor = _actor(as_user)
    with _step(ctx) as store:
        review.set_classification(
            store, case_id, chosen, actor=actor, reason=reason, version=version
        )
        _drafted_note(store, case_id)
    err.print(f"case {case_id} classification: {chosen or 'none'}", highlight=False)


@app.command("open-from-run")
def open_from_run(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="The scan run's id.")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Open cases for a scan run's results that the policy sends to act or review
    (idempotent: running it again changes nothing)."""
    with store_of(ctx) as store:
        try:
            report = review.open_cases_for_run(store, run_id, actor=cli_actor())
        except UnknownRun as exc:
            raise fail(str(exc)) from None
    if as_json:
        shown = {
            "run": run_id,
            "opened": report.opened,
            "seen_again": report.seen_again,
            "unchanged": report.unchanged,
        }
        out.print(json.dumps(shown), markup=False)
        return
    err.print(
        f"run {run_id}: {report.opened} case(s) opened, {report.seen_again} existing "
        f"case(s) updated, {report.unchanged} already up to date",
        highlight=False,
    )
