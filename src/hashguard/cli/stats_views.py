"""``hashguard stats``: the numbers as a table (or CSV, JSON), the transparency report
files, and the signed aggregate feed. They register on the ``stats`` group, whose other
commands (``verify``) check the recording; all of them read a ``StatsReader``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hashguard.actions.outbox import endpoints_of
from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, master_key_of, out, settings_of, store_of
from hashguard.domain.stats import Period, StatsReader
from hashguard.settings import Settings
from hashguard.stats.aggregate import BadGrouping, StatsTable, aggregate, table_json
from hashguard.stats.feed import build_feed
from hashguard.stats.figures import Proportion, Times
from hashguard.stats.formats import duration, table_csv
from hashguard.stats.push import push, subscribers
from hashguard.stats.signing import SigningKey
from hashguard.stats.source import StatsUnavailable, reader_of
from hashguard.stats.summary import summary_html
from hashguard.stats.transparency import build_report, report_files
from hashguard.store import Store

#: a table with at most this many groups is shown with the groups as columns
TRANSPOSE_UP_TO = 12


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def _now() -> datetime:
    return datetime.now(UTC)


def _day(text: str | None, default: date, name: str) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{name} is a date (YYYY-MM-DD), not {text!r}") from None


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _share(share: Proportion) -> str:
    if share.value is None or share.low is None or share.high is None:
        return "-"
    return f"{share.value:.1%} ({share.low:.1%} to {share.high:.1%}, n={share.total})"


def _times(times: Times) -> str:
    if not times.count:
        return "-"
    return f"{duration(times.median)} / {duration(times.p90)} (n={times.count})"


def rich_table(table: StatsTable) -> Table:
    """Groups as columns when there are few (a trend by month reads across), else rows."""
    title = f"{table.since.isoformat()} … {table.until.isoformat()}"
    lines: list[tuple[str, list[str]]] = [
        *((name, [str(r.counts[name]) for r in table.rows]) for name in table.counts),
        *((name, [_share(r.shares[name]) for r in table.rows]) for name in table.shares),
        *((f"{t} median / p90", [_times(r.times[t]) for r in table.rows]) for t in table.times),
    ]
    heads = [" ".join(v or "-" for v in row.key) or "all" for row in table.rows]
    if len(table.rows) <= TRANSPOSE_UP_TO:
        shown = Table(title=title)
        shown.add_column(",".join(table.by) or "figure")
        for head in heads:
            shown.add_column(head, justify="right")
        for name, values in lines:
            shown.add_row(name, *values)
        return shown
    shown = Table(title=title)
    shown.add_column(",".join(table.by))
    for name, _ in lines:
        shown.add_column(name, justify="right")
    for index, head in enumerate(heads):
        shown.add_row(head, *(values[index] for _, values in lines))
    return shown


def retention_text(settings: Settings) -> str:
    rules = "".join(
        f"; {code}: {days} days"
        for code, days in sorted(settings.evidence_retention_by_jurisdiction.items())
    )
    return (
        f"matched content kept encrypted in the evidence vault for "
        f"{settings.evidence_retention_days} days{rules} unless under legal hold; "
        "content that did not match is never stored"
    )


def register(
    group: typer.Typer,
    *,
    reader_for: Callable[[Store], StatsReader] = reader_of,
    clock: Callable[[], datetime] = _now,
) -> None:
    """Add the views to ``group`` (the ``stats`` group): the table as the group's own
    command, ``transparency``, ``feed`` and ``feed-key``. ``reader_for`` opens the
    numbers of a store; ``clock`` is the time reports and feeds say they were made."""

    def read(store: Store) -> StatsReader:
        try:
            return reader_for(store)
        except StatsUnavailable as exc:
            raise fail(str(exc)) from None

    group.callback(invoke_without_command=True)(_table_command(read, clock))
    group.command("transparency")(_transparency_command(read, clock))
    group.command("feed")(_feed_command(read, clock))
    group.command("feed-key")(feed_key)


Read = Callable[[Store], StatsReader]
Clock = Callable[[], datetime]


def _table_command(read: Read, clock: Clock) -> Callable[..., None]:
    def stats(
        ctx: typer.Context,
        since: Annotated[
            str | None, typer.Option(help="First day (YYYY-MM-DD; default: 1 January).")
        ] = None,
        until: Annotated[str | None, typer.Option(help="Last day (default: today).")] = None,
        period: Annotated[
            str | None, typer.Option(help="Instead of --since/--until: 2026, 2026-H1, 2026-Q2…")
        ] = None,
        by: Annotated[
            str | None,
            typer.Option(
                help="Group by day|week|month|quarter|year and/or labels "
                "(bank, source, algorithm, band, way, kind, service, notifier_kind…), "
                "comma-separated."
            ),
        ] = None,
        metrics: Annotated[
            str | None, typer.Option(help="Only these figures or metrics, comma-separated.")
        ] = None,
        output: Annotated[Format, typer.Option("--format")] = Format.TABLE,
    ) -> None:
        """The numbers of a span of days, grouped; times are the upper bound of the
        histogram bucket their median and 90th percentile fall in."""
        if ctx.invoked_subcommand is not None:
            return
        today = clock().date()
        if period is not None:
            chosen = _period(period)
            first, last = chosen.since, chosen.until
        else:
            first = _day(since, date(today.year, 1, 1), "--since")
            last = _day(until, today, "--until")
        figures = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        with store_of(ctx) as store:
            try:
                table = aggregate(
                    read(store), first, last, by=(by or "").split(","), figures=figures
                )
            except BadGrouping as exc:
                raise fail(str(exc)) from None
        if output is Format.JSON:
            out.print(json.dumps(table_json(table)), markup=False)
        elif output is Format.CSV:
            typer.echo(table_csv(table), nl=False)
        else:
            out.print(rich_table(table))

    return stats


def _transparency_command(read: Read, clock: Clock) -> Callable[..., None]:
    def transparency(
        ctx: typer.Context,
        period: Annotated[str, typer.Option(help="2026, 2026-H1, 2026-Q2 or 2026-05.")],
        out_dir: Annotated[Path, typer.Option("--out", help="Folder for the files.")],
        provider: Annotated[
            str | None, typer.Option(help="The provider's name (default: stats_publisher).")
        ] = None,
        service: Annotated[str, typer.Option(help="The service reported on.")] = "",
    ) -> None:
        """Transparency report files: a CSV per section of the DSA quantitative template
        (Implementing Regulation (EU) 2024/2835) that hashguard records, the annual figures
        of Regulation (EU) 2021/1232 Art. 3(1)(g)(vii), and summary.html."""
        chosen = _period(period)
        settings = settings_of(ctx)
        with store_of(ctx) as store:
            report = build_report(
                read(store),
                chosen,
                provider=provider or settings.stats_publisher or "",
                service=service,
                retention=retention_text(settings),
                at=clock(),
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, content in report_files(report, summary_html(report)).items():
            (out_dir / name).write_bytes(content)
            err.print(f"wrote {out_dir / name}", highlight=False)

    return transparency


def _feed_command(read: Read, clock: Clock) -> Callable[..., None]:
    def feed(
        ctx: typer.Context,
        period: Annotated[str, typer.Option(help="2026, 2026-H1, 2026-Q2 or 2026-05.")],
        k: Annotated[
            int | None,
            typer.Option(min=1, help="Suppress cells under k (default: stats_feed_k, 10)."),
        ] = None,
        do_push: Annotated[
            bool,
            typer.Option(
                "--push",
                help="Also deliver it to the webhook endpoints subscribed to stats.feed.",
            ),
        ] = False,
        to: Annotated[
            list[str] | None, typer.Option(help="With --push: only this endpoint (repeat).")
        ] = None,
    ) -> None:
        """The signed aggregate feed of a period for hotlines and NGOs (JSON on stdout):
        counts with small numbers suppressed, and an Ed25519 signature of this host."""
        chosen = _period(period)
        settings = settings_of(ctx)
        at = clock()
        endpoints = []
        if do_push:
            try:
                endpoints = subscribers(endpoints_of(settings), to or ())
            except ValueError as exc:
                raise fail(str(exc)) from None
            if not endpoints:
                raise fail("no webhook endpoint lists the stats.feed event")
        key = SigningKey.from_master(master_key_of(ctx))
        with store_of(ctx) as store:
            payload = build_feed(
                read(store),
                chosen,
                k=k or settings.stats_feed_k,
                publisher=settings.stats_publisher,
                at=at,
            )
            envelope = key.sign(payload)
            if endpoints:
                ids = push(store, envelope, endpoints, actor=cli_actor(), at=at)
                err.print(
                    f"queued for {', '.join(e.name for e in endpoints)} (outbox {ids})",
                    highlight=False,
                )
        out.print(json.dumps(envelope, indent=2, ensure_ascii=False), markup=False)

    return feed


def feed_key(ctx: typer.Context) -> None:
    """The public key collectors pin to verify this host's feeds (id and PEM)."""
    key = SigningKey.from_master(master_key_of(ctx))
    out.print(f"{key.id}\n{key.public_pem()}", markup=False, end="")
