"""``hashguard referrals``: hotline referrals of confirmed cases — tasks to file a case by
hand on a hotline's web form (IWF, EOKM, BEE SECURE Stopline: no API, nothing is sent),
with the facts to paste; marked done with the hotline's reference, or cancelled.

Each change is recorded in the audit log under the person who runs the command
(``cli:<login>``). The hotlines are the host's ``referral_hotlines`` setting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, out, settings_of, store_of
from hashguard.domain.referrals import ReferralState, ReferralTask, task_to_json
from hashguard.review import referrals as service
from hashguard.store import Store

app = typer.Typer(
    help="Hotline referrals: file confirmed cases by hand on hotlines' web forms.",
    no_args_is_help=True,
)

JSON_OPTION = typer.Option("--json", help="JSON output.")
TASK = typer.Argument(help="The referral task's id.")


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _step(ctx: typer.Context) -> Iterator[Store]:
    """The store, with the rules' refusals turned into clear errors."""
    with store_of(ctx) as store:
        try:
            yield store
        except (
            service.ReferralError,
            service.UnknownCase,
            service.UnknownReferral,
            service.ReferralClosed,
        ) as exc:
            raise fail(str(exc)) from None


def _show(task: ReferralTask) -> None:
    for name, value in (
        ("task", task.id),
        ("case", task.case_id),
        ("hotline", task.hotline),
        ("form", task.form_url),
        ("state", task.state),
        ("opened", f"{task.created_at:%Y-%m-%d %H:%M:%S} UTC by {task.created_by}"),
        ("reference", task.reference),
        ("cancelled because", task.cancel_reason),
        (
            "closed",
            f"{task.closed_at:%Y-%m-%d %H:%M:%S} UTC by {task.closed_by}"
            if task.closed_at
            else None,
        ),
    ):
        if value is not None:
            out.print(f"{name}: {value}", markup=False)
    out.print("facts to paste into the hotline's form:", markup=False)
    for line in task.facts.as_text().splitlines():
        out.print(f"  {line}", markup=False)


@app.command("hotlines")
def hotlines(ctx: typer.Context, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """The hotlines this host refers to (the referral_hotlines setting)."""
    configured = service.hotlines_of(settings_of(ctx))
    if as_json:
        shown = [{"key": h.key, **h.as_settings()} for h in configured.values()]
        out.print(json.dumps(shown), markup=False)
        return
    if not configured:
        err.print(
            'no hotlines configured: set referral_hotlines, e.g. ["iwf", "eokm", "bee-secure"]',
            highlight=False,
            markup=False,
        )
        return
    table = Table("hotline", "name", "country", "form")
    for hotline in configured.values():
        table.add_row(hotline.key, hotline.name, hotline.country, hotline.form_url)
    out.print(table)


@app.command("list")
def list_tasks(
    ctx: typer.Context,
    state: Annotated[ReferralState | None, typer.Option(help="Only tasks in this state.")] = None,
    case_id: Annotated[int | None, typer.Option("--case", help="Only this case's tasks.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 1000,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Referral tasks, oldest first."""
    with store_of(ctx) as store:
        found = store.referrals.list(state=state, case_id=case_id, limit=limit)
    if as_json:
        out.print(json.dumps([task_to_json(t) for t in found]), markup=False)
        return
    table = Table("id", "case", "hotline", "state", "reference", "opened (UTC)", "by")
    for task in found:
        table.add_row(
            str(task.id),
            str(task.case_id),
            task.hotline,
            str(task.state),
            task.reference or "-",
            f"{task.created_at:%Y-%m-%d %H:%M}",
            task.created_by,
        )
    out.print(table)


@app.command("open")
def open_task(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(help="The confirmed case's id.")],
    hotline: Annotated[str, typer.Option("--hotline", help="The hotline (see `hotlines`).")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Open a task to refer a confirmed case to a hotline (idempotent: an open task for
    the case and hotline is shown again). Prints the facts to paste and the form."""
    with _step(ctx) as store:
        task, created = service.open_referral(
            store,
            case_id,
            hotline,
            hotlines=service.hotlines_of(settings_of(ctx)),
            actor=cli_actor(),
            at=_now(),
        )
    if as_json:
        out.print(json.dumps(task_to_json(task) | {"created": created}), markup=False)
        return
    err.print(
        f"referral task {task.id} {'opened' if created else 'was already open'}: file it on "
        f"{task.form_url}, then `hashguard referrals done {task.id} --reference REF`",
        highlight=False,
        markup=False,
    )
    if task.facts.url is None:
        err.print(
            "note: no URL is known for this content; hotlines assess content at a URL",
            highlight=False,
            markup=False,
        )
    _show(task)


@app.command()
def show(
    ctx: typer.Context,
    task_id: Annotated[int, TASK],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One referral task and the facts to paste into the hotline's form."""
    with _step(ctx) as store:
        task = store.referrals.get(task_id)
    if as_json:
        out.print(json.dumps(task_to_json(task)), markup=False)
        return
    _show(task)


@app.command()
def done(
    ctx: typer.Context,
    task_id: Annotated[int, TASK],
    reference: Annotated[
        str, typer.Option("--reference", help="The hotline's reference for the report.")
    ],
) -> None:
    """Mark a task done: the report was filed on the hotline's form (audited)."""
    with _step(ctx) as store:
        task = service.mark_done(store, task_id, reference, actor=cli_actor(), at=_now())
    err.print(
        f"referral task {task.id} done: case {task.case_id} referred to {task.hotline}, "
        f"reference {task.reference}",
        highlight=False,
        markup=False,
    )


@app.command()
def cancel(
    ctx: typer.Context,
    task_id: Annotated[int, TASK],
    reason: Annotated[str, typer.Option("--reason", help="Why (required; audited).")],
) -> None:
    """Cancel an open task: no report will be filed through it (audited)."""
    with _step(ctx) as store:
        task = service.cancel(store, task_id, reason, actor=cli_actor(), at=_now())
    err.print(f"referral task {task.id} cancelled", highlight=False, markup=False)
