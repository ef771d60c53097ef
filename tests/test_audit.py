"""The audit log: the chain verifies, and edit, delete, reorder and truncate each show."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from hashguard.audit import (
    canonical_json,
    compute_hash,
    entry_hash,
    event_body,
    parse_head,
    record,
    verify,
)
from hashguard.domain.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditEvent,
    AuditHead,
    Problem,
    VerifyReport,
)
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.store import audit as audit_store
from hashguard.store.audit import AuditHeadMissing, InvalidAuditEvent
from tests.api_support import bearer, make_token
from tests.cli import hashguard
from tests.server import running_server
from tests.test_exchanges import write_feed


def fill(store: Store, count: int = 6) -> list[AuditEvent]:
    return [
        record(store, "cli:root", "bank.created", f"bank:b{n}", kind="known", n=n)
        for n in range(1, count + 1)
    ]


def check(store: Store, expected_head: tuple[int | None, str] | None = None) -> VerifyReport:
    return verify(
        store.audit.events(), recorded_head=store.audit.head(), expected_head=expected_head
    )


def sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


# -- the chain ------------------------------------------------------------------------------


def test_the_chain_verifies_and_reads_back_as_written(store: Store) -> None:
    assert store.audit.head() == AuditHead(seq=0, hash=GENESIS_HASH)
    empty = check(store)
    assert (empty.ok, empty.checked) == (True, 0)
    written = fill(store)
    written.append(
        record(store, "user:zoë", "content.revealed", "case:7", reason="ünïcode ✓", ids=(1, 2))
    )
    read = list(store.audit.events())
    assert read == written
    assert [e.seq for e in read] == list(range(1, 8))
    assert read[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(read))
    assert all(entry_hash(e) == e.hash for e in read)
    assert read[-1].details == {"reason": "ünïcode ✓", "ids": [1, 2]}
    report = check(store)
    assert report == VerifyReport(checked=7, head=AuditHead(seq=7, hash=read[-1].hash))
    assert store.audit.head() == report.head
    assert [e.seq for e in store.audit.events(after_seq=5)] == [6, 7]


def test_the_hash_is_sha256_of_prev_hash_and_canonical_json() -> None:
    """Written out by hand, so another implementation can check its own against it."""
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    body = event_body(
        seq=1,
        at=at,
        actor="cli:root",
        action="bank.created",
        subject="bank:x",
        details={"b": 1, "a": "é"},
        prev_hash=GENESIS_HASH,
    )
    canonical = (
        '{"action":"bank.created","actor":"cli:root","at":"2026-01-02T03:04:05.000006Z",'
        '"details":{"a":"é","b":1},"prev_hash":"' + GENESIS_HASH + '","seq":1,'
        '"subject":"bank:x"}'
    )
    assert canonical_json(body) == canonical.encode()
    assert compute_hash(body) == hashlib.sha256((GENESIS_HASH + canonical).encode()).hexdigest()


def test_malformed_events_are_refused(store: Store) -> None:
    for actor, action, details in [
        ("root", "bank.created", {}),
        ("cli:root", "Bank Created", {}),
        ("cli:root", "bank.created", {"password": "x"}),
        ("cli:root", "bank.created", {"at": datetime.now(UTC)}),
        ("cli:root", "bank.created", {"ratio": float("nan")}),
    ]:
        with pytest.raises(InvalidAuditEvent):
            store.audit.append(actor, action, "bank:x", details)
    assert store.audit.head().seq == 0
    assert record(store, "user:alice", "login").subject is None


# -- tampering, each detected and the first broken entry named --------------------------------


def test_an_edited_entry_is_detected(store: Store) -> None:
    fill(store)
    sql(store, "UPDATE audit_events SET details = :d WHERE seq = 3", d='{"kind":"allow","n":3}')
    report = check(store)
    assert (report.ok, report.problem, report.broken_seq) == (False, Problem.EDITED, 3)
    assert report.checked == 2
    assert "entry 3" in report.message


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(store: Store) -> None:
    events = fill(store)
    forged = replace(events[2], actor="cli:mallory")
    sql(
        store,
        "UPDATE audit_events SET actor = :a, hash = :h WHERE seq = 3",
        a=forged.actor,
        h=entry_hash(forged),
    )
    report = check(store)
    assert (report.problem, report.broken_seq) == (Problem.BROKEN_LINK, 4)


def test_a_deleted_entry_is_detected(store: Store) -> None:
    fill(store)
    sql(store, "DELETE FROM audit_events WHERE seq = 3")
    report = check(store)
    assert (report.problem, report.broken_seq) == (Problem.MISSING, 3)
    assert "entry 3 is missing" in report.message


def test_a_deleted_entry_with_the_rest_renumbered_is_detected(store: Store) -> None:
    fill(store)
    sql(store, "DELETE FROM audit_events WHERE seq = 3")
    for seq in range(4, 7):
        sql(store, "UPDATE audit_events SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    sql(store, "UPDATE audit_state SET seq = 5")
    report = check(store)
    assert (report.problem, report.broken_seq) == (Problem.BROKEN_LINK, 3)


def test_reordered_entries_are_detected(store: Store) -> None:
    fill(store)
    columns = ["at", "actor", "action", "subject", "details", "prev_hash", "hash"]
    with store.engine.begin() as conn:
        rows = {
            row.seq: row
            for row in conn.execute(text("SELECT * FROM audit_events WHERE seq IN (3, 4)"))
        }
        assignments = ", ".join(f"{c} = :{c}" for c in columns)
        for seq, other in ((3, 4), (4, 3)):
            values = {c: getattr(rows[other], c) for c in columns}
            values["details"] = json.dumps(values["details"])
            conn.execute(
                text(f"UPDATE audit_events SET {assignments} WHERE seq = :seq"),
                {**values, "seq": seq},
            )
    assert [e.subject for e in store.audit.events()][2:4] == ["bank:b4", "bank:b3"]
    report = check(store)
    assert (report.problem, report.broken_seq) == (Problem.BROKEN_LINK, 3)


def test_a_truncated_tail_is_detected_by_the_head_row(store: Store) -> None:
    fill(store)
    sql(store, "DELETE FROM audit_events WHERE seq > 4")
    report = check(store)
    assert (report.problem, report.broken_seq) == (Problem.TRUNCATED, 5)
    assert "entries 5..6 were removed" in report.message
    assert report.checked == 4


def test_a_truncation_that_also_rewrites_the_head_row_needs_the_external_anchor(
    store: Store,
) -> None:
    """The documented limit: a writer who can fix the head row hides a truncation from
    the database alone; a head kept elsewhere still shows it."""
    events = fill(store)
    kept = str(store.audit.head())
    sql(store, "DELETE FROM audit_events WHERE seq > 4")
    sql(store, "UPDATE audit_state SET seq = 4, head_hash = :h", h=events[3].hash)
    assert check(store).ok
    report = check(store, parse_head(kept))
    assert (report.problem, report.broken_seq) == (Problem.TRUNCATED, 5)
    bare = check(store, parse_head(events[-1].hash))
    assert (bare.ok, bare.problem) == (False, Problem.TRUNCATED)


def test_a_log_rewritten_with_recomputed_hashes_is_caught_by_the_external_anchor(
    store: Store,
) -> None:
    events = fill(store)
    anchor = parse_head(f"5:{events[4].hash}")
    prev = events[1].hash
    for event in events[2:]:
        forged = replace(event, actor="cli:mallory", prev_hash=prev)
        forged = replace(forged, hash=entry_hash(forged))
        sql(
            store,
            "UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s",
            a=forged.actor,
            p=forged.prev_hash,
            h=forged.hash,
            s=forged.seq,
        )
        prev = forged.hash
    sql(store, "UPDATE audit_state SET head_hash = :h", h=prev)
    assert check(store).ok  # consistent in itself...
    report = check(store, anchor)  # ...but not the log the operator anchored
    assert (report.problem, report.broken_seq) == (Problem.ANCHOR_MISMATCH, 5)
    assert check(store, parse_head(f"2:{events[1].hash}")).ok


def test_entries_slipped_in_after_the_head_are_detected(store: Store) -> None:
    events = fill(store, 3)
    sql(store, "UPDATE audit_state SET seq = 2, head_hash = :h", h=events[1].hash)
    report = check(store)
    assert (report.problem, report.broken_seq) == (Problem.UNANCHORED, 3)


def test_an_out_of_order_sequence_is_detected() -> None:
    at = datetime.now(UTC)
    first = AuditEvent(
        seq=1,
        at=at,
        actor="cli:root",
        action="bank.created",
        subject=None,
        details={},
        prev_hash=GENESIS_HASH,
        hash="",
    )
    first = replace(first, hash=entry_hash(first))
    report = verify([first, first])
    assert (report.problem, report.broken_seq) == (Problem.OUT_OF_ORDER, 1)


def test_heads_parse() -> None:
    assert parse_head(f"12:{'A' * 64}") == (12, "a" * 64)
    assert parse_head("b" * 64) == (None, "b" * 64)
    for bad in ["12:abc", "x:" + "a" * 64, ""]:
        with pytest.raises(ValueError, match="not a head"):
            parse_head(bad)


# -- concurrency: one chain, never a fork ---------------------------------------------------


def test_concurrent_threads_append_one_unbroken_chain(store: Store) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                record(store, f"token:{n}", "scan.decision", f"scan:{n}-{i}", n=n, i=i)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = check(store)
    assert report.ok, report.message
    assert report.checked == 80


APPENDER = """
import sys
from hashguard.audit import record
from hashguard.store import open_store
store = open_store(sys.argv[1])
sys.stdin.readline()
for i in range(40):
    record(store, "system:worker", "scan.decision", f"scan:{sys.argv[2]}-{i}")
store.close()
"""


def test_concurrent_processes_append_one_unbroken_chain(store: Store, db_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, db_url, str(n)],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for proc in procs:  # both connected before either starts appending
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    report = check(store)
    assert report.ok, report.message
    assert report.checked == 80
    assert {e.actor for e in store.audit.events()} == {"system:worker"}


# -- the commands ---------------------------------------------------------------------------


def test_audit_commands_verify_head_and_list(home: Path, tmp_path: Path) -> None:
    created = hashguard("tokens", "create", "ci", "--scope", "scan")
    secret = created.stdout.strip()
    hashguard("tokens", "revoke", "1")
    path = write_feed(tmp_path / "feed.jsonl", range(1, 4))
    hashguard("exchanges", "add", "feed", "--adapter", "local_file", "--setting", f"path={path}")
    hashguard("exchanges", "sync", "feed")
    hashguard("exchanges", "disable", "feed")

    listed = [json.loads(line) for line in hashguard("audit", "list", "--json").stdout.splitlines()]
    assert [e["action"] for e in listed] == [
        "token.created",
        "token.revoked",
        "bank.created",
        "exchange.added",
        "exchange.synced",
        "exchange.disabled",
    ]
    assert all(e["actor"].startswith("cli:") for e in listed)
    synced = listed[4]
    assert synced["subject"] == "exchange:feed"
    assert (synced["details"]["upserted"], synced["details"]["ok"]) == (3, True)
    everything = json.dumps(listed)
    assert secret not in everything
    assert f"{1:032x}" not in everything, "a list's contents never reach the log"
    since = hashguard("audit", "list", "--json", "--since", "4").stdout.splitlines()
    assert [json.loads(line)["seq"] for line in since] == [5, 6]
    assert "token.revoked" in hashguard("audit", "list").stdout

    head = hashguard("audit", "head").stdout.strip()
    assert head == f"6:{listed[-1]['hash']}"
    ok = hashguard("audit", "verify")
    assert "intact: 6 entries" in ok.stderr
    assert hashguard("audit", "verify", "--expect-head", head).returncode == 0
    assert "not a head" in hashguard("audit", "verify", "--expect-head", "x", check=2).stderr

    store = open_store(Settings().resolved_database_url)
    try:
        sql(store, "UPDATE audit_events SET subject = 'token:2' WHERE seq = 2")
    finally:
        store.close()
    broken = hashguard("audit", "verify", "--json", check=1)
    assert "broken at entry 2 (edited)" in broken.stderr
    assert json.loads(broken.stdout) | {"message": ""} == {
        "ok": False,
        "checked": 1,
        "head": f"1:{listed[0]['hash']}",
        "broken_seq": 2,
        "problem": "edited",
        "message": "",
    }


def test_events_stream_in_pages(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_store, "PAGE", 2)
    fill(store, 5)
    assert [e.seq for e in store.audit.events()] == [1, 2, 3, 4, 5]
    assert [e.seq for e in store.audit.events(after_seq=2)] == [3, 4, 5]


def test_a_deleted_head_row_stops_appends_and_fails_verify(store: Store) -> None:
    fill(store, 2)
    sql(store, "DELETE FROM audit_state")
    with pytest.raises(AuditHeadMissing):
        record(store, "cli:root", "bank.deleted", "bank:b1")
    with pytest.raises(AuditHeadMissing):
        store.audit.head()
    assert [e.seq for e in store.audit.events()] == [1, 2]


def test_bank_changes_through_the_cli_and_the_api_are_audited(
    api_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASHGUARD_HOME", str(api_settings.home))
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", api_settings.resolved_database_url)
    hashguard("banks", "create", "cli-bank")
    hashguard("banks", "set", "cli-bank", "--disabled")
    listed = tmp_path / "list.txt"
    listed.write_text(f"{1:032x}\n")
    hashguard("banks", "import", "cli-bank", str(listed), "--format", "plain", "--algorithm", "md5")
    hashguard("banks", "delete", "cli-bank", "--yes")
    secret = make_token(api_settings, Scope.BANKS_WRITE)
    with (
        running_server(api_settings) as base,
        httpx.Client(base_url=base, headers=bearer(secret)) as http,
    ):
        assert http.post("/v1/banks", json={"name": "api-bank"}).status_code == 201
        entry = {"algorithm": "md5", "hash": f"{2:032x}"}
        assert http.post("/v1/banks/api-bank/entries", json={"entries": [entry]}).is_success
        assert http.patch("/v1/banks/api-bank", json={"enabled": False}).is_success
    store = open_store(api_settings.resolved_database_url)
    try:
        events = [(e.actor.split(":")[0], e.action, e.subject) for e in store.audit.events()]
        assert verify(store.audit.events()).ok
    finally:
        store.close()
    assert [e for e in events if e[2] in ("bank:cli-bank", "bank:api-bank")] == [
        ("cli", "bank.created", "bank:cli-bank"),
        ("cli", "bank.configured", "bank:cli-bank"),
        ("cli", "bank.imported", "bank:cli-bank"),
        ("cli", "bank.deleted", "bank:cli-bank"),
        ("token", "bank.created", "bank:api-bank"),
        ("token", "bank.entries_added", "bank:api-bank"),
        ("token", "bank.configured", "bank:api-bank"),
    ]


def test_code_names_audit_events_only_through_the_enum() -> None:
    """No call in src/ passes an event name as a string literal: AuditAction is the one
    list of names (a typo would otherwise land in the log unnoticed)."""
    import ast  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    names = {str(member) for member in AuditAction}
    calls = {"record", "append_event", "emit", "audit", "append"}
    found = []
    for path in (Path(__file__).parents[1] / "src" / "hashguard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in calls:
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Constant) and arg.value in names:
                    found.append(f"{path.name}:{node.lineno}: {arg.value!r}")
    assert not found, found
