"""The exposure limit: the pure rule (until when a reveal is refused, grants), and the
reveal service on both engines with an injected clock (refusals and grants audited,
concurrent reveals never pass the limit together), and ``hashguard exposure grant``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hashguard.domain.banks import BankKind
from hashguard.domain.cases import CaseSource, SourceKind
from hashguard.domain.exposure import RevealGrant
from hashguard.domain.matches import Match
from hashguard.domain.people import Role
from hashguard.domain.policy import Action, Decision
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.review.exposure import BreakRule, RevealLimit, grant, reveal
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from tests.cli import hashguard

#: an instant the rules are evaluated at; nothing here reads the wall clock
T0 = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
LIMIT = RevealLimit(limit=3, window=HOUR)
NO_BREAKS = BreakRule(after=0, window=HOUR)


def _grant(extra: int, at: datetime, minutes: float = 60) -> RevealGrant:
    return RevealGrant(
        id=1,
        user_id=1,
        extra=extra,
        granted_by="user:carol",
        reason="urgent",
        at=at,
        expires_at=at + timedelta(minutes=minutes),
    )


def test_the_limit_refuses_until_enough_reveals_left_the_window() -> None:
    times = [T0 - timedelta(minutes=m) for m in (50, 30, 10)]
    assert LIMIT.refusal(times[:2], [], T0) is None, "two of three: allowed"
    refused = LIMIT.refusal(times, [], T0)
    assert refused is not None
    assert (refused.count, refused.allowed) == (3, 3)
    assert refused.until == T0 + timedelta(minutes=10), "when the oldest leaves the window"
    assert LIMIT.refusal(times, [], refused.until) is None
    assert LIMIT.refusal(times, [], refused.until - timedelta(microseconds=1)) is not None
    # five reveals against a limit of three: the third-newest must leave first
    five = [T0 - timedelta(minutes=m) for m in (55, 40, 30, 20, 5)]
    later = LIMIT.refusal(five, [], T0)
    assert later is not None
    assert later.until == T0 + timedelta(minutes=30)
    assert RevealLimit(limit=0, window=HOUR).refusal(five, [], T0) is None, "0: no limit"


def test_a_grant_raises_the_allowance_while_in_force() -> None:
    times = [T0 - timedelta(minutes=m) for m in (50, 30, 10)]
    assert LIMIT.refusal(times, [_grant(2, T0 - timedelta(minutes=1))], T0) is None
    assert LIMIT.allowed([_grant(2, T0 - timedelta(minutes=1))], T0) == 5
    # a lapsed grant counts for nothing; one lapsing soon only while it is in force
    assert LIMIT.refusal(times, [_grant(5, T0 - 2 * HOUR)], T0) is not None
    four = [*times, T0 - timedelta(minutes=1)]
    lapsing = _grant(1, T0 - timedelta(minutes=55))  # ends at T0 + 5 min
    refused = LIMIT.refusal(four, [lapsing], T0)
    assert refused is not None
    assert refused.allowed == 4
    # at T0+10 the oldest leaves (3 left) but the grant has lapsed (3 allowed): refused
    # still; at T0+30 two are left
    assert refused.until == T0 + timedelta(minutes=30)


def _case(store: Store, n: int) -> int:
    case, _ = store.cases.open_or_update(
        content_key=f"{n:064x}",
        source=CaseSource(kind=SourceKind.UPLOAD, ref=f"exposure-{n}"),
        signals=FileSignals(size=1, md5=f"{n:032x}", sha1=f"{n:040x}", sha256=f"{n:064x}"),
        matches=[
            Match(
                bank="b",
                bank_kind=BankKind.KNOWN,
                algorithm=Algorithm.MD5,
                distance=0,
                entry_id=f"e{n}",
                category=None,
            )
        ],
        remote=[],
        decision=Decision(action=Action.REVIEW, rule="test: exact", bank="b"),
        actor="system:test",
    )
    return case.id


def _reveal(store: Store, user_id: int, case_id: int, now: datetime, **kw: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "user_id": user_id,
        "actor": "user:alice",
        "case_id": case_id,
        "evidence_id": "ev1",
        "session_id": "s" * 64,
        "now": now,
        "breaks": NO_BREAKS,
        "limit": LIMIT,
        "acknowledged": False,
        **kw,
    }
    return reveal(store.exposure, **values)  # type: ignore[arg-type]


def _actions(store: Store) -> list[str]:
    return [e.action for e in store.audit.events() if e.action.startswith(("review.", "content."))]


def test_reveals_are_refused_at_the_limit_until_the_window_passes_or_a_lead_grants(
    store: Store,
) -> None:
    alice = store.people.create_user("alice", Role.REVIEWER)
    case_id = _case(store, 1)
    clock = T0
    for minutes in (0, 10, 20):
        clock = T0 + timedelta(minutes=minutes)
        assert _reveal(store, alice.id, case_id, clock).revealed
    clock = T0 + timedelta(minutes=30)
    outcome = _reveal(store, alice.id, case_id, clock)
    assert not outcome.revealed
    assert outcome.refused is not None
    assert outcome.refused.until == T0 + HOUR, "when the first reveal leaves the window"
    assert store.people.reveals_since(alice.id, T0 - HOUR) == 3, "nothing revealed"
    refusal = [e for e in store.audit.events() if e.action == "review.reveal_refused"][-1]
    assert (refusal.actor, refusal.subject) == ("user:alice", f"case:{case_id}")
    assert dict(refusal.details) == {
        "reveals": 3,
        "allowed": 3,
        "window_minutes": 60.0,
        "until": (T0 + HOUR).isoformat(),
    }
    # the window passes: allowed again
    assert _reveal(store, alice.id, case_id, T0 + HOUR).revealed
    assert not _reveal(store, alice.id, case_id, T0 + HOUR + timedelta(minutes=1)).revealed

    # a lead grants two more, for one window
    at = T0 + HOUR + timedelta(minutes=2)
    given = grant(
        store.exposure,
        user_id=alice.id,
        extra=2,
        reason="a report is due today",
        actor="user:carol",
        now=at,
        limit=LIMIT,
    )
    assert given.expires_at == at + HOUR
    assert _reveal(store, alice.id, case_id, at).revealed
    assert _reveal(store, alice.id, case_id, at + timedelta(seconds=1)).revealed
    assert not _reveal(store, alice.id, case_id, at + timedelta(seconds=2)).revealed
    (event,) = [e for e in store.audit.events() if e.action == "review.reveals_granted"]
    assert (event.actor, event.subject) == ("user:carol", "user:alice")
    assert dict(event.details) == {
        "extra": 2,
        "until": (at + HOUR).isoformat(),
        "reason": "a report is due today",
    }
    assert [g.extra for g in store.exposure.active_grants(at)] == [2]
    assert store.exposure.active_grants(at + HOUR) == []
    with pytest.raises(ValueError, match="reason"):
        grant(store.exposure, user_id=alice.id, extra=1, reason=" ", actor="user:carol",
              now=at, limit=LIMIT)  # fmt: skip
    with pytest.raises(ValueError, match="1 to 100"):
        grant(store.exposure, user_id=alice.id, extra=101, reason="x", actor="user:carol",
              now=at, limit=LIMIT)  # fmt: skip
    assert _actions(store).count("content.revealed") == 6


def test_the_break_reminder_still_comes_before_the_limit(store: Store) -> None:
    bob = store.people.create_user("bob", Role.REVIEWER)
    case_id = _case(store, 2)
    breaks = BreakRule(after=2, window=HOUR)
    limit = RevealLimit(limit=4, window=HOUR)
    kw = {"breaks": breaks, "limit": limit}
    assert _reveal(store, bob.id, case_id, T0, **kw).revealed
    assert _reveal(store, bob.id, case_id, T0 + timedelta(minutes=1), **kw).revealed
    reminded = _reveal(store, bob.id, case_id, T0 + timedelta(minutes=2), **kw)
    assert (reminded.revealed, reminded.reminded) == (False, 2)
    went_on = _reveal(store, bob.id, case_id, T0 + timedelta(minutes=3), acknowledged=True, **kw)
    assert (went_on.revealed, went_on.reveals_in_window) == (True, 3)
    assert _reveal(store, bob.id, case_id, T0 + timedelta(minutes=4), **kw).revealed
    refused = _reveal(store, bob.id, case_id, T0 + timedelta(minutes=5), acknowledged=True, **kw)
    assert refused.refused is not None, "acknowledging a reminder does not pass the limit"
    assert _actions(store) == [
        "content.revealed",
        "content.revealed",
        "review.break_reminded",
        "content.revealed",
        "content.revealed",
        "review.reveal_refused",
    ]


def test_frames_of_a_video_are_revealed_one_by_one_and_each_counts(store: Store) -> None:
    """A frame's reveal opens that frame only (never the whole content), is audited with
    its timestamp, and counts once against the limit like any reveal."""
    rita = store.people.create_user("rita", Role.REVIEWER)
    case_id, session = _case(store, 3), "s" * 64
    for minute, ms in enumerate((0, 2300, 5000)):
        at = T0 + timedelta(minutes=minute)
        assert _reveal(store, rita.id, case_id, at, frame_ms=ms).revealed
    refused = _reveal(store, rita.id, case_id, T0 + timedelta(minutes=3), frame_ms=6000)
    assert refused.refused is not None, "three frames reached the limit of three"
    people = store.people
    assert people.reveals_since(rita.id, T0 - HOUR) == 3
    assert people.last_reveal(rita.id, case_id, session) is None, "no whole-content reveal"
    assert people.last_reveal(rita.id, case_id, session, frame_ms=2300) == T0 + timedelta(minutes=1)
    assert people.last_reveal(rita.id, case_id, session, frame_ms=1000) is None
    assert people.revealed_frames(rita.id, case_id, session, T0) == {0, 2300, 5000}
    assert people.revealed_frames(rita.id, case_id, session, T0 + timedelta(seconds=90)) == {5000}
    assert people.revealed_frames(rita.id, case_id, "t" * 64, T0) == set(), "that session"
    events = [e for e in store.audit.events() if e.subject == f"case:{case_id}"]
    assert [(e.action, e.details["timestamp"]) for e in events] == [
        ("content.revealed", 0.0),
        ("content.revealed", 2.3),
        ("content.revealed", 5.0),
        ("review.reveal_refused", 6.0),
    ]


def test_concurrent_reveals_never_pass_the_limit_together(db_url: str) -> None:
    setup = open_store(db_url, migrate=True)
    carl = setup.people.create_user("carl", Role.REVIEWER)
    case_id = _case(setup, 3)
    setup.close()
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def one(n: int) -> None:
        store = open_store(db_url, migrate=False)
        try:
            start.wait()
            done = _reveal(store, carl.id, case_id, T0 + timedelta(milliseconds=6 - n))
            with lock:
                results.append(done.revealed)
        finally:
            store.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [False] * 3 + [True] * 3


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_grant_command(
    db_url: str, home: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", db_url)
    store = open_store(db_url, migrate=True)
    store.people.create_user("dana", Role.REVIEWER)
    store.close()
    missing = hashguard("exposure", "grant", "nobody", "--extra", "3", "--reason", "x", check=2)
    assert "there is no person 'nobody'" in missing.stderr
    no_reason = hashguard("exposure", "grant", "dana", "--extra", "3", "--reason", " ", check=2)
    assert "a grant needs a reason" in no_reason.stderr
    done = hashguard("exposure", "grant", "dana", "--extra", "3", "--reason", "incident 42")
    assert "dana may reveal 3 more originals until" in done.stderr
    store = open_store(db_url)
    try:
        (event,) = [e for e in store.audit.events() if e.action == "review.reveals_granted"]
        assert event.actor.startswith("cli:")
        assert (event.subject, event.details["extra"]) == ("user:dana", 3)
    finally:
        store.close()
