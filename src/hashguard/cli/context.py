"""What every command receives: the settings, read once, and the store opened from them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from hashguard.hashing.hasher import Hasher, enabled_hashers
from hashguard.keys import MasterKey, MasterKeyError, master_key_for
from hashguard.plugins import PluginError, Registry
from hashguard.settings import Settings
from hashguard.store import Store, open_store

PDQ_MODE_OPTION = typer.Option(
    "--pdq-mode",
    help="fast: reduced luma before PDQ (default, held to the fidelity gate); "
    "reference: full pixels, bit-identical to HMA.",
)

#: Human output goes to stderr so stdout carries only machine-readable results.
err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


def settings_of(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Settings()
    assert isinstance(root.obj, Settings)
    return root.obj


@contextmanager
def store_of(ctx: typer.Context) -> Iterator[Store]:
    store = open_store(settings_of(ctx).resolved_database_url)
    try:
        yield store
    finally:
        store.close()


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def registry_of(ctx: typer.Context) -> Registry:
    try:
        return Registry.load(settings_of(ctx).adapters)
    except PluginError as exc:
        raise fail(str(exc)) from None


def hashers_of(ctx: typer.Context) -> tuple[Hasher, ...]:
    """The hashers the settings enable (``HashOptions.hashers``)."""
    try:
        return enabled_hashers(registry_of(ctx))
    except PluginError as exc:
        raise fail(str(exc)) from None


def master_key_of(ctx: typer.Context) -> MasterKey:
    settings = settings_of(ctx)
    try:
        key, created = master_key_for(settings)
    except MasterKeyError as exc:
        raise fail(str(exc)) from None
    if created:
        err.print(
            f"[yellow]created a master key in {settings.default_master_key_file}[/yellow]: "
            "it seals exchange credentials. Keep a copy apart from the database; in "
            "production set HASHGUARD_MASTER_KEY_FILE to a key kept elsewhere.",
            highlight=False,
        )
    return key
