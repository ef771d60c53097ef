"""``hashguard remote``: remote matchers (PhotoDNA, Arachnid Shield, a hotline's hashguard):
added to the settings file, their credentials sealed with the master key in the store."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, master_key_of, out, registry_of, settings_of, store_of
from hashguard.cli.exchanges import _pairs, _setting_value, credential_value
from hashguard.plugins import Adapter, AdapterKind, Registry
from hashguard.remote.configure import RemoteConfigError, add_remote
from hashguard.remote.secrets import seal_secret
from hashguard.remote.service import adapter_of
from hashguard.store.remote_secrets import UnknownRemoteSecret

app = typer.Typer(
    help="Remote matchers and their credentials, sealed in the store (never shown).",
    no_args_is_help=True,
)


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Your name for it, e.g. hotline.")],
    adapter: Annotated[str, typer.Option(help="Adapter: hashguard, photodna, arachnid_shield.")],
    setting: Annotated[
        list[str] | None, typer.Option("--setting", help="Adapter setting NAME=VALUE; repeat.")
    ] = None,
    credential: Annotated[
        list[str] | None,
        typer.Option(
            "--credential", help="NAME=env:VAR or NAME=file:PATH; asked for when missing."
        ),
    ] = None,
) -> None:
    """Add a remote matcher every scan consults: ``[remote.NAME]`` in the settings file,
    its credentials sealed in the store (audited by name and key, never by value)."""
    registry = registry_of(ctx)
    values = {k: _setting_value(v) for k, v in _pairs(setting or [], "--setting").items()}
    given = _pairs(credential or [], "--credential")
    kind = _matcher(registry, adapter)
    for key in kind.secrets:
        given.setdefault(key, "")
    secrets = {key: credential_value(key, source or None) for key, source in given.items()}
    with store_of(ctx) as store:
        try:
            path = add_remote(
                settings=settings_of(ctx),
                registry=registry,
                secrets_store=store.remote_secrets,
                master_key=lambda: master_key_of(ctx),
                name=name,
                adapter=adapter,
                values=values,
                secrets=secrets,
                actor=cli_actor(),
                at=datetime.now(UTC),
            )
        except RemoteConfigError as exc:
            raise fail(str(exc)) from None
    err.print(
        f"remote matcher {name!r} ({adapter}) added to {path}"
        + (f"; credentials sealed: {', '.join(sorted(secrets))}" if secrets else ""),
        highlight=False,
    )


#: what is configured under ``remote``: matchers, and classifiers asked the same way
_REMOTE_KINDS = frozenset({AdapterKind.REMOTE_MATCHER, AdapterKind.CLASSIFIER})


def _matcher(registry: Registry, name: str) -> type[Adapter]:
    """The installed remote matcher ``name`` (enabled or not: a secret may be stored
    before the adapter is switched on)."""
    for installed in registry.installed():
        if installed.name == name and installed.kind in _REMOTE_KINDS:
            return installed.adapter
    known = sorted(a.name for a in registry.installed() if a.kind in _REMOTE_KINDS)
    raise fail(f"no remote matcher named {name!r} (installed: {known})")


@app.command("set-secret")
def set_secret(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The remote matcher: photodna, arachnid...")],
    key: Annotated[str, typer.Argument(help="Which of its secrets, e.g. subscription_key.")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="env:VAR or file:PATH; asked for without echo when missing. Never the "
            "value itself: a command line is visible to other users.",
        ),
    ] = None,
) -> None:
    """Seal one secret of a remote matcher with the master key and store it (replacing
    any earlier value). Audited by name and key, never by value."""
    adapter = _matcher(registry_of(ctx), adapter_of(name, settings_of(ctx).remote.get(name, {})))
    known = (*adapter.secrets, *adapter.optional_secrets)
    if key not in known:
        raise fail(f"{name} takes no secret named {key!r} (it takes: {', '.join(known)})")
    if source is None and not sys.stdin.isatty():
        raise fail(f"secret {key!r} missing: pass --from env:VAR or --from file:PATH")
    value = credential_value(key, source)
    if not value:
        raise fail(f"secret {key!r} is empty")
    sealed = seal_secret(master_key_of(ctx), name, key, value)
    with store_of(ctx) as store:
        replaced = store.remote_secrets.put(
            name, key, sealed, actor=cli_actor(), at=datetime.now(UTC)
        )
    err.print(
        f"remote matcher {name!r}: secret {key!r} sealed and stored"
        + (" (it replaces the previous value)" if replaced else ""),
        highlight=False,
    )
    if key in settings_of(ctx).remote_secrets.get(name, {}):
        err.print(
            f"[yellow]warning:[/yellow] the settings still hold {name}.{key} in plaintext "
            "(remote_secrets): the sealed value is used; remove the plaintext one",
            highlight=False,
        )


@app.command("unset-secret")
def unset_secret(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The remote matcher.")],
    key: Annotated[str, typer.Argument(help="Which of its secrets.")],
) -> None:
    """Forget one stored secret of a remote matcher."""
    with store_of(ctx) as store:
        try:
            store.remote_secrets.remove(name, key, actor=cli_actor(), at=datetime.now(UTC))
        except UnknownRemoteSecret as exc:
            raise fail(str(exc)) from None
    err.print(f"remote matcher {name!r}: secret {key!r} removed", highlight=False)


@app.command("list")
def list_remote(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Remote matchers: whether the settings use them, which secrets they need, which
    are sealed in the store and which still come in plaintext from the settings. Never
    a value."""
    settings = settings_of(ctx)
    registry = registry_of(ctx)
    with store_of(ctx) as store:
        sealed = store.remote_secrets.keys()
    rows: list[dict[str, Any]] = []
    for installed in registry.installed():
        if installed.kind not in _REMOTE_KINDS:
            continue
        name, adapter = installed.name, installed.adapter
        plain = sorted(settings.remote_secrets.get(name, {}))
        stored = sealed.get(name, [])
        rows.append(
            {
                "name": name,
                "adapter": name,
                "enabled": installed.enabled,
                "configured": name in settings.remote,
                "secrets": list(adapter.secrets),
                "optional_secrets": list(adapter.optional_secrets),
                "sealed": stored,
                "plaintext": plain,
                "missing": [s for s in adapter.secrets if s not in stored and s not in plain],
            }
        )
    # matchers configured under their own name (``remote.hotline``, adapter hashguard)
    names = {row["name"] for row in rows}
    for name, options in sorted(settings.remote.items()):
        adapter_name = adapter_of(name, options)
        found = next((a for a in registry.installed() if a.name == adapter_name), None)
        if name in names or found is None:
            continue
        stored = sealed.get(name, [])
        plain = sorted(settings.remote_secrets.get(name, {}))
        rows.append(
            {
                "name": name,
                "adapter": adapter_name,
                "enabled": found.enabled,
                "configured": True,
                "secrets": list(found.adapter.secrets),
                "optional_secrets": list(found.adapter.optional_secrets),
                "sealed": stored,
                "plaintext": plain,
                "missing": [s for s in found.adapter.secrets if s not in stored and s not in plain],
            }
        )
    # secrets stored for an adapter that is no longer installed
    names = {row["name"] for row in rows}
    for name, keys in sorted(sealed.items()):
        if name not in names:
            rows.append(
                {
                    "name": name,
                    "adapter": None,
                    "enabled": False,
                    "configured": name in settings.remote,
                    "secrets": [],
                    "optional_secrets": [],
                    "sealed": keys,
                    "plaintext": sorted(settings.remote_secrets.get(name, {})),
                    "missing": [],
                }
            )
    if as_json:
        out.print(json.dumps(rows), markup=False)
        return
    table = Table("name", "used", "sealed", "plaintext (deprecated)", "missing")
    for row in rows:
        table.add_row(
            row["name"],
            "yes" if row["configured"] else "no",
            ", ".join(row["sealed"]),
            ", ".join(row["plaintext"]),
            ", ".join(row["missing"]),
        )
    out.print(table)
