"""``hashguard init --via URL``: a small host set up in one command, to scan through a
hotline's hashguard (hash check service) with nothing but a token."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, master_key_of, registry_of, settings_of, store_of
from hashguard.cli.doctor import doctor
from hashguard.remote.configure import RemoteConfigError, add_remote
from hashguard.remote.hashguard import WhoamiError, whoami


def init(
    ctx: typer.Context,
    via: Annotated[
        str,
        typer.Option(
            "--via",
            help="The hash check service's URL (https), e.g. https://check.example.test.",
        ),
    ],
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            help="An environment variable holding the token (else it is asked for, without echo).",
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="The name the service goes by here.")] = "hotline",
) -> None:
    """Set this machine up to scan through a hash check service: check the token with the
    service (``/v1/whoami``), add it as the remote matcher NAME (settings file; the token
    sealed in the store), then run ``hashguard doctor``. No list is kept here: only the
    files' hashes are sent, never their content.

    Exit code: 0 ready, 1 doctor found a problem, 2 the service or the token was refused.
    """
    if token_env is not None:
        token = os.environ.get(token_env, "")
        if not token:
            raise fail(f"the environment variable {token_env} is not set or empty")
    elif sys.stdin.isatty():
        token = str(typer.prompt("token (from the service's operator)", hide_input=True))
    else:
        raise fail("no token: pass --token-env NAME (or run it in a terminal to be asked)")
    token = token.strip()
    try:
        me = whoami(via, token)
    except WhoamiError as exc:
        raise fail(str(exc)) from None
    settings = settings_of(ctx)
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    values = {"base_url": via.rstrip("/")}
    batch = me.get("lookup_max_batch")
    if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
        values["batch_size"] = min(batch, 1_000)  # type: ignore[assignment]
    with store_of(ctx) as store:
        try:
            path = add_remote(
                settings=settings,
                registry=registry_of(ctx),
                secrets_store=store.remote_secrets,
                master_key=lambda: master_key_of(ctx),
                name=name,
                adapter="hashguard",
                values=values,
                secrets={"token": token},
                actor=cli_actor(),
                at=datetime.now(UTC),
            )
        except RemoteConfigError as exc:
            raise fail(str(exc)) from None
    err.print(
        f"token {me.get('name')!r} accepted by {via}; remote matcher {name!r} added to "
        f"{path} (token sealed in the store). Checking the installation:",
        highlight=False,
    )
    # doctor checks the settings as the file now has them
    ctx.find_root().obj = settings.model_copy(
        update={"remote": {**settings.remote, name: {"adapter": "hashguard", **values}}}
    )
    doctor(ctx, strict=False, as_json=False)
    err.print(
        "ready: `hashguard scan DIR` hashes the files here and asks the service "
        "(exit 0 nothing known, 1 a known file, 2 some file not fully checked)",
        highlight=False,
    )
