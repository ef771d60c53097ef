"""The service layer: each change and its audit entry, made once for every front-end."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hashguard
from hashguard.banks.importer import NewBank
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry, BankKind
from hashguard.domain.people import Role
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.services import banks, exchanges, people, tokens
from hashguard.store import Store
from hashguard.store.audit import InvalidAuditEvent
from hashguard.store.banks import BankExists

ACTOR = "cli:tester"
MD5 = "0123456789abcdef0123456789abcdef"  # made up


def _events(store: Store) -> list[tuple[str, str, str | None]]:
    return [(e.actor, str(e.action), e.subject) for e in store.audit.events()]


def test_each_change_is_recorded_once_under_its_actor(store: Store, tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text(f"algorithm,hash,entry_id\nmd5,{MD5},ex-1\n")
    banks.create_bank(store, ACTOR, "known")
    banks.configure_bank(store, ACTOR, "known", banks.BankChanges(pdq_threshold=20))
    report = banks.import_file(
        store, ACTOR, "imported", listed, banks.ImportRequest(create=NewBank())
    )
    assert (report.applied, report.added) == (True, 1)
    entry = BankEntry(algorithm=Algorithm.MD5, value="f" * 32, entry_id=None, category=None)
    assert banks.add_entries(store, ACTOR, "known", [entry]).added == 1
    assert banks.remove_entries(store, ACTOR, "known", [(Algorithm.MD5, "f" * 32)]) == 1
    banks.delete_bank(store, ACTOR, "known")
    alice = people.add_person(store, ACTOR, "alice", Role.REVIEWER)
    alice = people.update_person(store, ACTOR, alice, role=Role.LEAD)
    token, secret, owner = tokens.create_token(store, ACTOR, "ci", [Scope.SCAN], user="alice")
    assert (owner, store.people.token_owner(token.id)) == (alice, alice)
    assert secret
    assert store.tokens.by_secret(secret) == token
    tokens.revoke_token(store, ACTOR, token.id)
    assert people.disable_person(store, ACTOR, alice) == 0
    exchanges.add_exchange(
        store,
        ACTOR,
        "feed",
        adapter="local_file",
        bank="feed-bank",
        settings={"path": "x"},
        secrets={},
        key=None,
    )
    exchanges.set_exchange_enabled(store, ACTOR, "feed", enabled=False)
    exchanges.remove_exchange(store, ACTOR, "feed")
    token_subject = f"token:{token.id}"
    assert _events(store) == [
        (ACTOR, str(action), subject)
        for action, subject in [
            (AuditAction.BANK_CREATED, "bank:known"),
            (AuditAction.BANK_CONFIGURED, "bank:known"),
            (AuditAction.BANK_IMPORTED, "bank:imported"),
            (AuditAction.BANK_ENTRIES_ADDED, "bank:known"),
            (AuditAction.BANK_ENTRIES_REMOVED, "bank:known"),
            (AuditAction.BANK_DELETED, "bank:known"),
            (AuditAction.USER_CREATED, alice.actor),
            (AuditAction.USER_UPDATED, alice.actor),
            (AuditAction.TOKEN_CREATED, token_subject),
            (AuditAction.TOKEN_REVOKED, token_subject),
            (AuditAction.USER_UPDATED, alice.actor),
            (AuditAction.BANK_CREATED, "bank:feed-bank"),
            (AuditAction.EXCHANGE_ADDED, "exchange:feed"),
            (AuditAction.EXCHANGE_DISABLED, "exchange:feed"),
            (AuditAction.EXCHANGE_REMOVED, "exchange:feed"),
        ]
    ]
    details = [e.details for e in store.audit.events()]
    assert details[1]["pdq_threshold"] == 20
    assert details[7] == {"role": "lead"}
    assert details[10] == {"disabled": True}
    assert details[11] == {"kind": "known", "exchange": "feed"}


def test_a_refused_change_records_nothing(store: Store, tmp_path: Path) -> None:
    banks.create_bank(store, ACTOR, "known", kind=BankKind.KNOWN)
    banks.add_entries(
        store,
        ACTOR,
        "known",
        [BankEntry(algorithm=Algorithm.MD5, value=MD5, entry_id=None, category=None)],
    )
    before = _events(store)
    with pytest.raises(BankExists):
        banks.create_bank(store, ACTOR, "known")
    bad = tmp_path / "bad.csv"
    bad.write_text("algorithm,hash\nmd5,not-a-hash\n")
    report = banks.import_file(store, ACTOR, "known", bad, banks.ImportRequest())
    assert not report.applied
    with pytest.raises(people.UnknownPerson):
        tokens.create_token(store, ACTOR, "ci", [Scope.SCAN], user="nobody")
    bob = people.add_person(store, ACTOR, "bob", Role.REVIEWER)
    people.disable_person(store, ACTOR, bob)
    before += _events(store)[len(before) :]
    with pytest.raises(tokens.PersonDisabled):
        tokens.create_token(store, ACTOR, "ci", [Scope.SCAN], user="bob")
    people.enable_person(store, ACTOR, store.people.get_user(bob.id))
    people.enable_person(store, ACTOR, store.people.get_user(bob.id))  # enabled already
    with pytest.raises(exchanges.BankInUse):
        exchanges.add_exchange(
            store,
            ACTOR,
            "feed",
            adapter="local_file",
            bank="known",
            settings={},
            secrets={},
            key=None,
        )
    assert store.tokens.list() == []
    assert store.exchanges.list() == []
    assert _events(store) == [*before, (ACTOR, "user.updated", bob.actor)]


def test_a_change_whose_audit_entry_fails_is_not_made(store: Store) -> None:
    """A change and its audit entry commit together: an entry the log refuses (here an
    actor that is not one) leaves no token, no token owner, no bank, no person."""
    carol = people.add_person(store, ACTOR, "carol", Role.LEAD)
    before = _events(store)
    with pytest.raises(InvalidAuditEvent):
        tokens.create_token(store, "not an actor", "ci", [Scope.ADMIN], user="carol")
    with pytest.raises(InvalidAuditEvent):
        banks.create_bank(store, "not an actor", "known")
    with pytest.raises(InvalidAuditEvent):
        people.add_person(store, "not an actor", "dave", Role.REVIEWER)
    with pytest.raises(InvalidAuditEvent):
        people.disable_person(store, "not an actor", carol)
    assert store.tokens.list() == []
    assert store.banks.find("known") is None
    assert store.people.find_user("dave") is None
    assert not store.people.get_user(carol.id).disabled
    assert _events(store) == before
    # and the same changes with a real actor land, each with its entry
    token, _, owner = tokens.create_token(store, ACTOR, "ci", [Scope.ADMIN], user="carol")
    found = store.people.token_owner(token.id)
    assert owner is not None
    assert found is not None
    assert found.id == carol.id
    assert people.disable_person(store, ACTOR, carol) == 0
    assert store.people.get_user(carol.id).disabled
    assert [e[1] for e in _events(store)[len(before) :]] == ["token.created", "user.updated"]


def test_front_ends_record_no_change_themselves() -> None:
    """``cli/`` and ``web/api/`` call a service for each change and never append an audit
    entry themselves; the one exception is the lookup's probing alert, an observation
    about a token's calls rather than a change."""
    root = Path(hashguard.__file__).parent
    recording = set()
    for folder in ("cli", "web/api"):
        for path in sorted((root / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    called = node.func
                    name = called.id if isinstance(called, ast.Name) else None
                    if isinstance(called, ast.Attribute):
                        name = called.attr
                    if name in ("record", "append_event") or (
                        name == "append"
                        and isinstance(called, ast.Attribute)
                        and isinstance(called.value, ast.Attribute)
                        and called.value.attr == "audit"
                    ):
                        recording.add(str(path.relative_to(root)))
    assert recording == {"web/api/lookup.py"}
