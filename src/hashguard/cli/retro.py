"""``hashguard retro-match``: new bank entries since the last run against every kept signal."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, master_key_of, out, settings_of, store_of
from hashguard.evidence import open_vault
from hashguard.matching.matcher import load_or_build
from hashguard.scan.classify import policies_of
from hashguard.scan.objects import object_fetcher
from hashguard.scan.pipeline import OnceVault, Pipeline
from hashguard.scan.retro import PdqSearch, retro_match
from hashguard.settings import Settings
from hashguard.store import Store


def retro_match_command(
    ctx: typer.Context,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint to read matched objects from.")
    ] = None,
    keep_evidence: Annotated[
        bool, typer.Option(help="Keep encrypted evidence of what matched (read again).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON summary line.")] = False,
    partitions: Annotated[
        int,
        typer.Option(
            min=1,
            help="Split the kept-signal index across this many Ray actors (extra: bulk).",
        ),
    ] = 1,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster for --partitions (auto, ray://host:10001); default: local."),
    ] = None,
) -> None:
    """Match the entries banks gained since the last run against every kept signal
    (settings: keep_signals); hits go through the policy, cases and actions."""
    settings: Settings = settings_of(ctx)
    if address is not None and partitions == 1:
        raise fail("--address needs --partitions 2 or more")
    with store_of(ctx) as store:
        if partitions == 1:
            _run(ctx, settings, store, endpoint_url, keep_evidence=keep_evidence, as_json=as_json)
            return
        from hashguard.scan.retroray import (  # noqa: PLC0415 - the bulk extra
            NeedsBulkExtra,
            partitioned,
            store_partitions,
        )

        try:
            with partitioned(
                partitions,
                store_partitions(settings.resolved_database_url, partitions),
                address=address,
            ) as search:
                _run(
                    ctx,
                    settings,
                    store,
                    endpoint_url,
                    keep_evidence=keep_evidence,
                    as_json=as_json,
                    pdq_search=search,
                    partitions=partitions,
                )
        except NeedsBulkExtra as exc:
            raise fail(str(exc)) from None


def _run(
    ctx: typer.Context,
    settings: Settings,
    store: Store,
    endpoint_url: str | None,
    *,
    keep_evidence: bool,
    as_json: bool,
    pdq_search: PdqSearch | None = None,
    partitions: int = 1,
) -> None:
    if not settings.keep_signals:
        err.print("[yellow]warning:[/yellow] keep_signals is off: nothing new is kept to match")
    matcher = load_or_build(store.banks, settings.index_path)
    matcher.refresh()
    pipeline = Pipeline.configured(
        settings,
        store,
        actor=cli_actor(),
        matcher=matcher,
        policies=lambda: policies_of(matcher.banks),
        vault=OnceVault(lambda: open_vault(settings, store, master_key_of(ctx)))
        if keep_evidence
        else None,
    )
    summary = retro_match(
        store,
        pipeline,
        fetch_object=object_fetcher(endpoint_url or settings.s3_endpoint_url),
        keep_days=settings.keep_signals_days,
        pdq_search=pdq_search,
    )
    fields = {
        "partitions": partitions,
        "since": summary.since,
        "seq": summary.seq,
        "new_entries": summary.new_entries,
        "kept_pdq_indexed": summary.kept_pdq,
        "candidates": summary.candidates,
        "matched": summary.matched,
        "cases": summary.cases,
        "forgotten": summary.forgotten,
    }
    if as_json:
        out.print(json.dumps(fields), highlight=False, markup=False, soft_wrap=True)
        return
    out.print(
        f"retro-match: {summary.new_entries} new entries (changes {summary.since}→{summary.seq}), "
        f"{summary.candidates} kept items near them, {summary.matched} matched, "
        f"{summary.cases} cases; {summary.forgotten} kept signals past retention forgotten",
        highlight=False,
    )
