"""The flood guard end to end on SQLite and PostgreSQL, with an injected clock: real bank
entries, real matches from the Matcher, counts, flags, alerts (outbox), audit events,
release, tombstone, limits, counts for statistics, and the CLI."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer

from hashguard.actions.flood import flood_alerts
from hashguard.audit import verify
from hashguard.cli.banks import _window
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.actions import EventType, WebhookEndpoint
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry, BankKind
from hashguard.domain.cases import ContentRef
from hashguard.domain.flood import (
    DEFAULT_FLOOD_MAX_ITEMS,
    DEFAULT_FLOOD_WINDOW,
    FloodLimit,
    FloodState,
    InvalidFloodLimit,
)
from hashguard.domain.matches import Match, match_from_json, match_to_json
from hashguard.domain.people import Role
from hashguard.domain.policy import Action, BankPolicy
from hashguard.domain.signals import Algorithm
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.matching.matcher import Matcher
from hashguard.policy import decide
from hashguard.policy.flood import counted, floods
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import Upload
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.store.flood import FlagNotActive, UnknownFlag, audit_flags, observe
from tests.cli import hashguard
from tests.server import running_server
from tests.test_ui_pages import Person, form_post, ui_settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: made-up values, not from any list
PDQ = "a5" * 32
PDQ_OTHER = "3c" * 32
MD5 = "0123456789abcdef" * 2
SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
LEADS = WebhookEndpoint(
    name="leads",
    url="http://127.0.0.1:9/hook",
    secret=SECRET,
    events=frozenset({EventType.BANK_ENTRY_FLOODED}),
)


def item(n: int) -> str:
    """The SHA-256 of the n-th (made-up) content item."""
    return hashlib.sha256(f"item {n}".encode()).hexdigest()


def known_bank(store: Store, name: str = "national", limit: FloodLimit | None = None) -> None:
    store.banks.create(name)
    store.banks.add_entries(
        name,
        [
            BankEntry(algorithm=Algorithm.PDQ, value=PDQ, entry_id="E-17"),
            BankEntry(algorithm=Algorithm.PDQ, value=PDQ_OTHER),
            BankEntry(algorithm=Algorithm.MD5, value=MD5, entry_id="E-18"),
        ],
    )
    if limit is not None:
        store.flood.set_limit(name, limit, actor="cli:test", at=T0)


def matches_of(store: Store, algorithm: Algorithm, value: str) -> tuple[Match, ...]:
    (found,) = Matcher.build(store.banks).lookup([(algorithm, value)])
    assert found
    assert all(m.entry_ref is not None for m in found)
    return found


def test_the_rule_is_pure() -> None:
    limit = FloodLimit(max_items=3)
    assert [floods(n, limit) for n in (0, 3, 4)] == [False, False, True]
    assert not floods(10**6, FloodLimit(max_items=None))
    assert DEFAULT_FLOOD_MAX_ITEMS == 100
    assert timedelta(hours=24) == DEFAULT_FLOOD_WINDOW
    with pytest.raises(InvalidFloodLimit):
        FloodLimit(max_items=0)
    with pytest.raises(InvalidFloodLimit):
        FloodLimit(window=timedelta(days=365))
    allow = Match(
        bank="ok",
        bank_kind=BankKind.ALLOW,
        algorithm=Algorithm.MD5,
        distance=0,
        entry_id=None,
        category=None,
        entry_ref=1,
    )
    known = Match(
        bank="b",
        bank_kind=BankKind.KNOWN,
        algorithm=Algorithm.MD5,
        distance=0,
        entry_id=None,
        category=None,
        entry_ref=2,
    )
    suppressed = Match(
        bank="c",
        bank_kind=BankKind.KNOWN,
        algorithm=Algorithm.MD5,
        distance=0,
        entry_id=None,
        category=None,
        suppressed_by="ok",
        entry_ref=3,
    )
    assert list(counted([allow, known, suppressed, known])) == [2]


def test_entry_ref_never_leaves_and_is_not_compared() -> None:
    match = Match(
        bank="b",
        bank_kind=BankKind.KNOWN,
        algorithm=Algorithm.PDQ,
        distance=3,
        entry_id=None,
        category=None,
        entry_ref=42,
    )
    assert "entry_ref" not in match_to_json(match)
    assert "42" not in repr(match)
    assert match_from_json(match_to_json(match)) == match


def test_an_entry_floods_after_more_than_n_distinct_items(store: Store) -> None:
    known_bank(store, limit=FloodLimit(max_items=3, window=timedelta(hours=1)))
    matches = matches_of(store, Algorithm.PDQ, PDQ)
    (entry_ref,) = {m.entry_ref for m in matches}
    alerts = flood_alerts([LEADS])
    for n in range(3):
        seen = store.flood.observe(matches, item(n), now=T0 + timedelta(minutes=n), alerts=alerts)
        assert seen.paused == frozenset()
    # the same item again is not a new distinct item
    again = store.flood.observe(matches, item(0), now=T0 + timedelta(minutes=4), alerts=alerts)
    assert again.paused == frozenset()
    assert store.flood.paused() == []
    # the fourth distinct item tips it over, and is itself paused
    tipped = store.flood.observe(matches, item(3), now=T0 + timedelta(minutes=5), alerts=alerts)
    assert tipped.paused == frozenset({entry_ref})
    (flag,) = tipped.flagged
    assert (flag.bank, flag.entry_id, flag.state, flag.distinct_items) == (
        "national",
        "E-17",
        FloodState.FLAGGED,
        4,
    )
    assert flag.flagged_at == T0 + timedelta(minutes=5)
    assert flag.paused_matches == 1
    # later matches stay paused, and are counted
    later = store.flood.observe(matches, item(99), now=T0 + timedelta(hours=5), alerts=alerts)
    assert later.paused == frozenset({entry_ref})
    assert later.flagged == ()
    (shown,) = store.flood.paused(bank="national")
    assert shown.id == flag.id
    assert shown.paused_matches == 2
    # the policy: that entry's match goes to review, saying why
    decision = decide(matches, [], {"national": BankPolicy()}, paused=later.paused)
    assert decision.action is Action.REVIEW
    assert "entry E-17 is paused by the flood guard" in decision.rule
    assert decide(matches, [], {"national": BankPolicy()}).action is Action.ACT
    # leads are alerted: one webhook (never the hash), one audit event
    (webhook,) = [a for a in store.actions.list() if a.event is EventType.BANK_ENTRY_FLOODED]
    assert webhook.target == "leads"
    assert webhook.payload["data"]["entry_id"] == "E-17"
    assert webhook.payload["data"]["distinct_items"] == 4
    assert PDQ not in json.dumps(webhook.payload)
    flooded = [e for e in store.audit.events() if e.action == AuditAction.BANK_ENTRY_FLOODED]
    assert [(e.actor, e.subject, e.details["flag"]) for e in flooded] == [
        ("system:flood_guard", "bank:national", flag.id)
    ]
    assert PDQ not in json.dumps(dict(flooded[0].details))
    assert verify(store.audit.events(), recorded_head=store.audit.head()).ok


def test_items_past_the_window_no_longer_count(store: Store) -> None:
    known_bank(store, limit=FloodLimit(max_items=3, window=timedelta(hours=1)))
    matches = matches_of(store, Algorithm.PDQ, PDQ)
    for n in range(3):
        store.flood.observe(matches, item(n), now=T0)
    # an hour and a bit later the first three have left the window
    for n in range(3, 6):
        seen = store.flood.observe(matches, item(n), now=T0 + timedelta(minutes=61 + n))
        assert seen.paused == frozenset()
    # one seen again inside the window counts once, with its new time
    store.flood.observe(matches, item(3), now=T0 + timedelta(minutes=100))
    assert store.flood.observe(matches, item(6), now=T0 + timedelta(minutes=101)).paused


def test_only_the_flooding_entry_pauses(store: Store) -> None:
    known_bank(store, limit=FloodLimit(max_items=1, window=timedelta(hours=1)))
    flooding = matches_of(store, Algorithm.PDQ, PDQ)
    other = matches_of(store, Algorithm.MD5, MD5)
    store.flood.observe(flooding, item(1), now=T0)
    paused = store.flood.observe(flooding, item(2), now=T0).paused
    assert paused
    both = (*flooding, *other)
    seen = store.flood.observe(both, item(3), now=T0)
    assert seen.paused == paused
    # the md5 entry acts: the file's decision is act, by the other entry
    decision = decide(both, [], {"national": BankPolicy()}, paused=seen.paused)
    assert decision.action is Action.ACT
    assert "exact md5" in decision.rule


def test_release_resumes_and_restarts_the_counter(store: Store) -> None:
    known_bank(store, limit=FloodLimit(max_items=2, window=timedelta(days=1)))
    matches = matches_of(store, Algorithm.PDQ, PDQ)
    for n in range(3):
        found = store.flood.observe(matches, item(n), now=T0 + timedelta(minutes=n))
    (flag,) = found.flagged
    released = store.flood.release(flag.id, actor="user:lead", at=T0 + timedelta(hours=1))
    assert (released.state, released.resolved_by) == (FloodState.RELEASED, "user:lead")
    assert released.resolved_at == T0 + timedelta(hours=1)
    assert store.flood.paused() == []
    with pytest.raises(FlagNotActive):
        store.flood.release(flag.id, actor="user:lead")
    with pytest.raises(UnknownFlag):
        store.flood.release(flag.id + 100, actor="user:lead")
    # the counter restarted: the old items count again as new, two are allowed
    later = T0 + timedelta(hours=2)
    assert not store.flood.observe(matches, item(0), now=later).paused
    assert not store.flood.observe(matches, item(1), now=later).paused
    again = store.flood.observe(matches, item(2), now=later)
    assert again.paused
    assert again.flagged[0].id != flag.id
    events = [e.action for e in store.audit.events()]
    assert events.count(AuditAction.BANK_ENTRY_RELEASED) == 1
    assert events.count(AuditAction.BANK_ENTRY_FLOODED) == 2
    counts = store.flood.counts()
    assert (counts.flagged, counts.released, counts.tombstoned, counts.paused_now) == (2, 1, 0, 1)
    assert counts.paused_matches == 2
    assert store.flood.counts(since=T0 + timedelta(minutes=90)).flagged == 1


def test_tombstone_removes_the_entry_and_keeps_it_paused_if_it_returns(store: Store) -> None:
    known_bank(store, limit=FloodLimit(max_items=1, window=timedelta(days=1)))
    matches = matches_of(store, Algorithm.PDQ, PDQ)
    store.flood.observe(matches, item(1), now=T0)
    (flag,) = store.flood.observe(matches, item(2), now=T0).flagged
    seq = store.banks.change_seq()
    gone = store.flood.tombstone(flag.id, actor="user:lead", at=T0 + timedelta(hours=1))
    assert gone.state is FloodState.TOMBSTONED
    assert store.banks.stats("national").removed == 1
    changes = store.banks.changes_since(seq)
    assert list(changes.removed) == [flag.entry_ref]
    (found,) = Matcher.build(store.banks).lookup([(Algorithm.PDQ, PDQ)])
    assert found == ()
    with pytest.raises(FlagNotActive):
        store.flood.tombstone(flag.id, actor="user:lead")
    # a later delta brings it back: it stays paused until a lead releases it
    store.banks.add_entries("national", [BankEntry(algorithm=Algorithm.PDQ, value=PDQ)])
    back = matches_of(store, Algorithm.PDQ, PDQ)
    assert store.flood.observe(back, item(3), now=T0 + timedelta(hours=2)).paused
    (still,) = store.flood.paused()
    assert still.state is FloodState.TOMBSTONED
    store.flood.release(flag.id, actor="user:lead")
    assert not store.flood.observe(back, item(3), now=T0 + timedelta(hours=3)).paused
    counts = store.flood.counts()
    assert (counts.tombstoned, counts.released, counts.paused_now) == (1, 0, 0)
    actions = [e.action for e in store.audit.events()]
    assert AuditAction.BANK_ENTRY_TOMBSTONED in actions
    assert AuditAction.BANK_ENTRY_RELEASED in actions


def test_limits_per_bank_and_off(store: Store) -> None:
    known_bank(store)
    assert store.flood.limit("national") == FloodLimit()
    store.flood.set_limit("national", FloodLimit(max_items=None), actor="cli:test")
    assert not store.flood.limit("national").enabled
    matches = matches_of(store, Algorithm.PDQ, PDQ)
    for n in range(5):
        assert not store.flood.observe(matches, item(n), now=T0).paused
    configured = [e for e in store.audit.events() if e.action == AuditAction.BANK_FLOOD_CONFIGURED]
    assert configured[-1].details["max_items"] is None


def test_deleting_the_bank_ends_its_flags_but_keeps_the_counts(store: Store) -> None:
    known_bank(store, limit=FloodLimit(max_items=1))
    matches = matches_of(store, Algorithm.PDQ, PDQ)
    store.flood.observe(matches, item(1), now=T0)
    store.flood.observe(matches, item(2), now=T0)
    assert store.flood.counts().paused_now == 1
    store.banks.delete("national")
    assert store.flood.paused() == []
    counts = store.flood.counts()
    assert (counts.flagged, counts.paused_now) == (1, 0)


def test_the_cli_lists_releases_and_tombstones(tmp_path: Path, home: Path) -> None:
    settings = Settings()
    store = open_store(settings.resolved_database_url)
    try:
        known_bank(store, limit=FloodLimit(max_items=1))
        for matches in (
            matches_of(store, Algorithm.PDQ, PDQ),
            matches_of(store, Algorithm.PDQ, PDQ_OTHER),
        ):
            store.flood.observe(matches, item(1), now=T0)
            store.flood.observe(matches, item(2), now=T0)
        first, second = sorted(f.id for f in store.flood.paused())
    finally:
        store.close()
    listed = json.loads(hashguard("banks", "flood", "list", "--json").stdout)
    assert [f["flag"] for f in listed["flags"]] == [second, first]
    assert listed["counts"]["paused_now"] == 2
    shown = hashguard("banks", "show", "national", "--json").stdout
    assert {f["entry"] for f in json.loads(shown)["flooded_entries"]} == {"E-17", "#2"}
    assert PDQ not in shown
    hashguard("banks", "flood", "release", str(first), "--yes")
    hashguard("banks", "flood", "tombstone", str(second), "--yes")
    refused = hashguard("banks", "flood", "release", str(first), "--yes", check=2)
    assert "no longer pauses" in refused.stderr
    hashguard("banks", "flood", "set", "national", "--max-items", "off", "--window", "7d")
    shown = hashguard("banks", "show", "national").stdout
    assert "flood_guard: off" in shown
    assert "'state': 'tombstoned'" in shown
    assert "'state': 'flagged'" not in shown


def test_the_leads_page_lists_releases_and_tombstones(tmp_path: Path) -> None:
    settings = ui_settings(f"sqlite:///{tmp_path / 'ui.db'}", tmp_path / "home")
    with closing(open_store(settings.resolved_database_url)) as store:
        known_bank(store, limit=FloodLimit(max_items=1))
        flags = []
        for value in (PDQ, PDQ_OTHER):
            matches = matches_of(store, Algorithm.PDQ, value)
            store.flood.observe(matches, item(1), now=T0)
            flags.extend(store.flood.observe(matches, item(2), now=T0).flagged)
        named, unnamed = flags
        people = {}
        for name, role in (("carol", Role.LEAD), ("alice", Role.REVIEWER), ("adam", Role.ADMIN)):
            user = store.people.create_user(name, role)
            session, secret = store.people.create_session(user.id, method="password", ip=None)
            people[name] = Person(name, user.id, secret, session.csrf_token)
    with running_server(settings) as base, people["carol"].client(base) as carol:
        shown = carol.get("/ui/flood")
        assert shown.status_code == 200
        assert re.findall(r'class="flood-flag" data-flag-id="(\d+)"', shown.text) == [
            str(unnamed.id),
            str(named.id),
        ]
        assert "E-17" in shown.text
        assert f"#{unnamed.entry_ref}" in shown.text
        assert PDQ not in shown.text
        assert PDQ_OTHER not in shown.text
        assert 'href="/ui/flood"' in carol.get("/ui/").text
        for name in ("alice", "adam"):
            with people[name].client(base) as other:
                assert other.get("/ui/flood").status_code == 403
                path = f"/ui/flood/{named.id}/release"
                assert form_post(other, path, people[name]).status_code == 403
        release = f"/ui/flood/{named.id}/release"
        assert carol.post(release).status_code == 403, "no CSRF token"
        done = form_post(carol, release, people["carol"])
        assert (done.status_code, done.headers["location"]) == (303, "/ui/flood?done=released")
        assert form_post(carol, release, people["carol"]).status_code == 409
        assert form_post(carol, "/ui/flood/99999/release", people["carol"]).status_code == 404
        gone = form_post(carol, f"/ui/flood/{unnamed.id}/tombstone", people["carol"])
        assert gone.headers["location"] == "/ui/flood?done=tombstoned"
        after = carol.get("/ui/flood?done=tombstoned").text
        assert "removed from its bank" in after
        assert re.findall(r'class="flood-old" data-flag-id="(\d+)"', after) == [str(named.id)]
    with closing(open_store(settings.resolved_database_url)) as store:
        actors = [
            (e.action, e.actor)
            for e in store.audit.events()
            if e.action in (AuditAction.BANK_ENTRY_RELEASED, AuditAction.BANK_ENTRY_TOMBSTONED)
        ]
        assert actors == [
            (AuditAction.BANK_ENTRY_RELEASED, "user:carol"),
            (AuditAction.BANK_ENTRY_TOMBSTONED, "user:carol"),
        ]


def test_inside_the_callers_transaction_and_rolled_back_with_it(store: Store) -> None:
    known_bank(store, limit=FloodLimit(max_items=1))
    matches = matches_of(store, Algorithm.PDQ, PDQ)

    def failing_item() -> None:
        with store.engine.begin() as conn:
            observe(conn, matches, item(1), now=T0)
            assert observe(conn, matches, item(2), now=T0).flagged
            raise RuntimeError("the item's transaction failed")

    with pytest.raises(RuntimeError):
        failing_item()
    assert store.flood.counts().flagged == 0
    assert not [e for e in store.audit.events() if e.action == AuditAction.BANK_ENTRY_FLOODED]
    # the audit event can be taken last, after the caller's other writes
    with store.engine.begin() as conn:
        observe(conn, matches, item(1), now=T0, audit=False)
        seen = observe(conn, matches, item(2), now=T0, audit=False)
        assert seen.flagged
        assert not [e for e in store.audit.events() if e.action == AuditAction.BANK_ENTRY_FLOODED]
        audit_flags(conn, seen, now=T0)
    flooded = [e for e in store.audit.events() if e.action == AuditAction.BANK_ENTRY_FLOODED]
    assert len(flooded) == 1


def test_concurrent_observers_raise_one_flag(store: Store) -> None:
    known_bank(store, limit=FloodLimit(max_items=5))
    matches = matches_of(store, Algorithm.PDQ, PDQ)
    start = threading.Barrier(4)

    def observer(n: int) -> list[int]:
        start.wait()
        raised = []
        for k in range(5):
            seen = store.flood.observe(matches, item(100 * n + k), now=T0)
            raised.extend(flag.id for flag in seen.flagged)
        return raised

    with ThreadPoolExecutor(4) as threads:
        raised = [flag for found in threads.map(observer, range(4)) for flag in found]
    assert len(raised) == 1
    counts = store.flood.counts()
    assert (counts.flagged, counts.paused_now) == (1, 1)
    # every item after the sixth distinct one was paused and counted
    assert counts.paused_matches == 20 - 5


def test_window_option() -> None:
    assert [_window(v) for v in ("90min", "24h", "7d", "600")] == [
        timedelta(minutes=90),
        timedelta(hours=24),
        timedelta(days=7),
        timedelta(seconds=600),
    ]
    with pytest.raises(typer.BadParameter):
        _window("a fortnight")


def test_from_image_bytes_to_decision(store: Store) -> None:
    """Real hashing and matching: re-encodes of one benign generated image on a PDQ list
    are distinct items of the same entry; past the limit their decision is review."""
    image = generate(Kind.PHOTO, 5, 256, 192)
    options = HashOptions(max_pixels=10**7)
    listed = hash_data(encode(image, "PNG"), options).signals
    assert listed is not None
    store.banks.create("pdq-list")
    store.banks.add_entries(
        "pdq-list", [BankEntry(algorithm=Algorithm.PDQ, value=listed.pdq[0].value)]
    )
    store.flood.set_limit("pdq-list", FloodLimit(max_items=2), actor="cli:test")
    matcher = Matcher.build(store.banks)
    policies = {bank.name: bank.policy for bank in matcher.banks}
    decisions = []
    for quality in (95, 85, 75, 65):
        signals = hash_data(encode(image, "JPEG", quality=quality), options).signals
        assert signals is not None
        matches = matcher.match(signals)
        assert matches
        seen = store.flood.observe(matches, signals.sha256, now=T0 + timedelta(minutes=quality))
        decisions.append(decide(matches, [], policies, paused=seen.paused).action)
    assert decisions == [Action.ACT, Action.ACT, Action.REVIEW, Action.REVIEW]
    (flag,) = store.flood.paused()
    assert (flag.entry_id, flag.distinct_items, flag.paused_matches) == (None, 3, 2)


def test_the_pipeline_pauses_a_flooding_entry_and_alerts_leads(store: Store) -> None:
    """Through the one pipeline, as /v1/scan and scans take it: past the bank's limit the
    entry's matches go to review (with the guard's rule), and its leads' alert is queued."""
    image = generate(Kind.PHOTO, 7, 256, 192)
    options = HashOptions(max_pixels=10**7)
    listed = hash_data(encode(image, "PNG"), options).signals
    assert listed is not None
    store.banks.create("pdq-list")
    store.banks.add_entries(
        "pdq-list", [BankEntry(algorithm=Algorithm.PDQ, value=listed.pdq[0].value, entry_id="F-1")]
    )
    store.flood.set_limit("pdq-list", FloodLimit(max_items=2), actor="cli:test")
    matcher = Matcher.build(store.banks)
    pipeline = Pipeline(
        store=store,
        actor="system:test",
        policies=lambda: {bank.name: bank.policy for bank in matcher.banks},
        endpoints=(LEADS,),
        clock=lambda: T0,
    )
    decided = []
    for quality in (95, 85, 75):
        data = encode(image, "JPEG", quality=quality)
        output = hash_data(data, options)
        assert output.signals is not None
        source = Upload(data=data, request_id=f"r-{quality}", content_ref=ContentRef())
        done = pipeline.process("upload", output, matcher.match(output.signals), source)
        decided.append(done.result.decision)
    assert [d.action for d in decided] == [Action.ACT, Action.ACT, Action.REVIEW]
    assert "flood guard" in decided[-1].rule
    assert [a.event for a in store.actions.list() if a.target == LEADS.name] == [
        EventType.BANK_ENTRY_FLOODED
    ]
