"""``hashguard users``: the people who sign in to the review UI, and their roles.

A person signs in with a password (``--password-stdin``, or asked for twice without
echo), or through OpenID Connect only (``--no-password``; ``--email`` binds them at
their first single sign-on). Each change is audited (``user.created``,
``user.updated``) under the person who runs the command (``cli:<login>``). Disabling
someone also ends their sessions; their API tokens stop working with it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, out, store_of
from hashguard.domain.people import NAME_PATTERN, Role, User, user_to_json
from hashguard.people.passwords import PasswordRefused, check_new_password, hash_password
from hashguard.services import people as service
from hashguard.services.people import UnknownPerson
from hashguard.store import Store
from hashguard.store.people import UserExists

app = typer.Typer(help="People who sign in to the review UI.", no_args_is_help=True)

NAME = typer.Argument(help="The person's login name (letters, digits, . _ @ -).")
PASSWORD_STDIN = typer.Option(
    "--password-stdin", help="Read the password from the first line of stdin."
)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def _check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise fail(f"{name!r} is not a name: letters, digits, . _ @ - (first a letter or digit)")
    return name


def _read_password(name: str, from_stdin: bool) -> str:
    """A new password for ``name``: stdin's first line, or asked twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = str(typer.prompt("Password", hide_input=True))
        if str(typer.prompt("Again", hide_input=True)) != password:
            raise fail("the two passwords differ")
    else:
        raise fail("no terminal to ask for the password: pass --password-stdin")
    try:
        check_new_password(name, password)
    except PasswordRefused as exc:
        raise fail(str(exc)) from None
    return password


def _find(store: Store, name: str) -> User:
    try:
        return service.find_person(store, name)
    except UnknownPerson as exc:
        raise fail(str(exc)) from None


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, NAME],
    role: Annotated[Role, typer.Option("--role", help="What they may do.")],
    email: Annotated[
        str | None,
        typer.Option(help="Their e-mail address (binds them at their first single sign-on)."),
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="The name pages show.")] = None,
    password_stdin: Annotated[bool, PASSWORD_STDIN] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password: single sign-on only.")
    ] = False,
) -> None:
    """Add a person with a role and a password (or none, for single sign-on only)."""
    _check_name(name)
    if password_stdin and no_password:
        raise fail("--password-stdin and --no-password exclude each other")
    if email is not None and not _EMAIL.match(email):
        raise fail(f"{email!r} is not an e-mail address")
    if display_name is not None and not 0 < len(display_name) <= 200:
        raise fail("a display name has 1 to 200 characters")
    password_hash = None if no_password else hash_password(_read_password(name, password_stdin))
    with store_of(ctx) as store:
        try:
            user = service.add_person(
                store,
                cli_actor(),
                name,
                role,
                email=email,
                display_name=display_name,
                password_hash=password_hash,
            )
        except UserExists as exc:
            raise fail(str(exc)) from None
    err.print(
        f"added {user.name} ({user.role})"
        + ("" if user.has_password else ": no password, single sign-on only"),
        highlight=False,
    )


@app.command("list")
def list_users(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Everyone, with their role and how they sign in (never a password hash)."""
    with store_of(ctx) as store:
        users = store.people.list_users()
    if as_json:
        out.print(json.dumps([user_to_json(u) for u in users]), markup=False)
        return
    table = Table("name", "role", "email", "signs in with", "state")
    for user in users:
        ways = [w for w, on in (("password", user.has_password), ("sso", user.oidc_subject)) if on]
        table.add_row(
            user.name,
            str(user.role),
            user.email or "",
            ", ".join(ways) or ("sso (not yet bound)" if user.email else "nothing"),
            "disabled" if user.disabled else "active",
        )
    out.print(table)


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    name: Annotated[str, NAME],
    role: Annotated[Role, typer.Argument(help="The new role.")],
) -> None:
    """Change what a person may do (takes effect on their next request)."""
    with store_of(ctx) as store:
        user = _find(store, _check_name(name))
        if user.role == role:
            err.print(f"{user.name} is {role} already", highlight=False)
            return
        service.update_person(store, cli_actor(), user, role=role)
    err.print(f"{user.name}: {user.role} -> {role}", highlight=False)


@app.command()
def passwd(
    ctx: typer.Context,
    name: Annotated[str, NAME],
    password_stdin: Annotated[bool, PASSWORD_STDIN] = False,
) -> None:
    """Set a person's password (their sessions go on; disable them to end those)."""
    _check_name(name)
    with store_of(ctx) as store:
        user = _find(store, name)
    password_hash = hash_password(_read_password(name, password_stdin))
    with store_of(ctx) as store:
        service.update_person(store, cli_actor(), user, password_hash=password_hash)
    err.print(f"{user.name}: password set", highlight=False)


@app.command()
def disable(ctx: typer.Context, name: Annotated[str, NAME]) -> None:
    """Stop a person signing in; ends their sessions, and their tokens stop working."""
    with store_of(ctx) as store:
        user = _find(store, _check_name(name))
        ended = service.disable_person(store, cli_actor(), user)
    err.print(f"{user.name}: disabled, {ended} session(s) ended", highlight=False)


@app.command()
def enable(ctx: typer.Context, name: Annotated[str, NAME]) -> None:
    """Let a disabled person sign in again."""
    with store_of(ctx) as store:
        user = _find(store, _check_name(name))
        service.enable_person(store, cli_actor(), user)
    err.print(f"{user.name}: enabled", highlight=False)
