"""``hashguard serve``: the HTTP service, under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from hashguard.cli.context import err, settings_of


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: settings).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings, 8080).", min=1)] = None,
    background: Annotated[
        bool,
        typer.Option(
            "--background/--no-background",
            help="Also run the background jobs (outbox, exchange sync, retention, "
            "housekeeping) in this process; --no-background leaves them to "
            "`hashguard worker` processes.",
        ),
    ] = True,
) -> None:
    """Serve the JSON API (/v1/scan, /v1/lookup, /v1/banks, /v1/runs, health, metrics).

    SQLite by default; PostgreSQL with HASHGUARD_DATABASE_URL (run `hashguard db upgrade`
    first). Run several processes on one PostgreSQL to scale; bank changes reach all
    of them within seconds. Background jobs run in every server unless --no-background;
    leases let each job run in one process at a time.
    """
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from hashguard.web.app import create_app  # noqa: PLC0415

    settings = settings_of(ctx)
    bind_host, bind_port = host or settings.host, port or settings.port
    store = settings.resolved_database_url.split(":", 1)[0]
    jobs = "with background jobs" if background else "background jobs left to workers"
    err.print(
        f"hashguard serving on http://{bind_host}:{bind_port} (store: {store}; {jobs})",
        soft_wrap=True,
    )
    uvicorn.run(
        create_app(settings, background=background),
        host=bind_host,
        port=bind_port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
