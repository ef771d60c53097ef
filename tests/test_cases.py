"""Cases and review: one case per content item, the transition table, reasons, the
second confirmation, false positives feeding an allow bank, stale versions, the audit
log and the ``hashguard cases`` commands — on SQLite and PostgreSQL, with generated
benign images and banks built from them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hashguard.audit import verify
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.actions import EventType, WebhookEndpoint
from hashguard.domain.banks import BankEntry, BankKind
from hashguard.domain.cases import (
    TRANSITIONS,
    Case,
    CaseEventKind,
    CaseSource,
    CaseState,
    SourceKind,
)
from hashguard.domain.policy import Action, BankPolicy
from hashguard.domain.scans import FileResult, Outcome, ScanOptions
from hashguard.domain.signals import Algorithm, PdqHash, PdqMode
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.hashing.reference import with_reference
from hashguard.matching.matcher import Matcher
from hashguard.review import cases as review
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.store import Store
from tests.cli import hashguard, json_lines, write_known_list

OPTIONS = ScanOptions(max_pixels=10**7)
ALICE, BOB, CAROL = "user:alice", "user:bob", "user:carol"


def _images(folder: Path) -> dict[str, bytes]:
    folder.mkdir(exist_ok=True)
    images = {
        name: encode(generate(Kind.PHOTO, seed, 320, 240))
        for seed, name in enumerate(["act", "review", "trial", "clean"], 41)
    }
    for name, data in images.items():
        (folder / f"{name}.jpg").write_bytes(data)
    return images


def _banks(store: Store, images: dict[str, bytes]) -> None:
    """``live`` acts on "act", ``soft`` sends "review" to review, ``trial`` is shadow."""
    md5 = {
        name: signals.md5
        for name, data in images.items()
        if (signals := hash_data(data, HashOptions.for_scan(OPTIONS)).signals) is not None
    }
    store.banks.create("live")
    store.banks.add_entries("live", [BankEntry(algorithm=Algorithm.MD5, value=md5["act"])])
    store.banks.create("soft", policy=BankPolicy(exact_action=Action.REVIEW))
    store.banks.add_entries("soft", [BankEntry(algorithm=Algorithm.MD5, value=md5["review"])])
    store.banks.create("trial", policy=BankPolicy(shadow=True))
    store.banks.add_entries("trial", [BankEntry(algorithm=Algorithm.MD5, value=md5["trial"])])


def _scan(store: Store, folder: Path) -> int:
    prepared = prepare_run(store.scans, [str(folder)], OPTIONS)
    with HashingPool(
        workers=1, options=HashOptions.for_scan(OPTIONS), timeout=60, memory_mb=2048
    ) as pool:
        scanner = Scanner(store=store.scans, matcher=Matcher.build(store.banks), pool=pool)
        return scanner.run(prepared.run).id


@pytest.fixture
def scanned(store: Store, tmp_path: Path) -> tuple[Store, Path, int]:
    folder = tmp_path / "files"
    _banks(store, _images(folder))
    return store, folder, _scan(store, folder)


def _by_name(store: Store) -> dict[str, int]:
    return {
        Path(source.path or "").stem: case.id
        for case in store.cases.list()
        for source in case.sources[:1]
    }


def _audited(store: Store, prefix: str = "case.") -> list[tuple[str, str, str | None]]:
    return [
        (e.action, e.actor, e.subject) for e in store.audit.events() if e.action.startswith(prefix)
    ]


def test_cases_open_for_act_and_review_only_and_once_per_content(
    scanned: tuple[Store, Path, int], tmp_path: Path
) -> None:
    store, folder, run_id = scanned
    first = review.open_cases_for_run(store, run_id)
    assert (first.opened, first.seen_again, first.unchanged) == (2, 0, 0)
    # idempotent
    assert review.open_cases_for_run(store, run_id) == review.OpenReport(unchanged=2)
    cases = {Path(c.sources[0].path or "").stem: c for c in store.cases.list()}
    assert set(cases) == {"act", "review"}  # not the shadow bank's, not the clean one
    assert cases["act"].decision.action is Action.ACT
    assert cases["review"].decision.action is Action.REVIEW
    assert cases["act"].state is CaseState.OPEN
    assert cases["act"].banks == ("live",)
    assert cases["act"].signals is not None
    assert cases["act"].content_key == cases["act"].signals.sha256
    assert cases["act"].sources == (
        CaseSource(kind=SourceKind.SCAN, ref=str(run_id), path=str(folder / "act.jpg")),
    )

    # the same file in another place, scanned again: still one case, with both sightings
    other = tmp_path / "other"
    other.mkdir()
    (other / "copy.jpg").write_bytes((folder / "act.jpg").read_bytes())
    second_run = _scan(store, other)
    again = review.open_cases_for_run(store, second_run)
    assert (again.opened, again.seen_again) == (0, 1)
    assert len(store.cases.list()) == 2
    case = store.cases.get(cases["act"].id)
    assert [s.ref for s in case.sources] == [str(run_id), str(second_run)]
    assert case.version == 2
    kinds = [e.kind for e in store.cases.history(case.id)]
    assert kinds == [CaseEventKind.OPENED, CaseEventKind.SEEN_AGAIN]
    assert [a for a, _, _ in _audited(store)] == ["case.opened"] * 2 + ["case.seen_again"]


def test_results_that_open_no_case(scanned: tuple[Store, Path, int]) -> None:
    store, _, run_id = scanned
    results = {Path(r.path).stem: r for r in store.scans.results(run_id)}
    source = CaseSource(kind=SourceKind.UPLOAD, ref="req-1")
    assert review.open_from_result(store, results["trial"], source) is None
    assert review.open_from_result(store, results["clean"], source) is None
    undecodable = FileResult(path="x", outcome=Outcome.UNDECODABLE, reason="broken")
    assert review.open_from_result(store, undecodable, source) is None
    opened = review.open_from_result(store, results["act"], source)
    assert opened is not None
    assert opened[1] is CaseEventKind.OPENED
    assert review.open_from_result(store, results["act"], source) == (opened[0], None)


def _all_states(store: Store, run_id: int) -> dict[CaseState, int]:
    """Bring one fresh case into each state and return their ids."""
    review.open_cases_for_run(store, run_id)
    results = [r for r in store.scans.results(run_id) if r.decision.opens_case]
    ids: dict[CaseState, int] = {}
    for n, state in enumerate(CaseState):
        assert results[0].signals is not None
        signals = replace(results[0].signals, sha256=f"{n:064x}")
        opened = review.open_from_result(
            store,
            replace(results[0], signals=signals),
            CaseSource(kind=SourceKind.UPLOAD, ref=f"r{n}"),
        )
        assert opened is not None
        case_id = opened[0].id
        if state is CaseState.CONFIRMED_ONCE:
            review.confirm(store, case_id, actor=ALICE, reason="r", second_confirmation=True)
        elif state is CaseState.CONFIRMED:
            review.confirm(store, case_id, actor=ALICE, reason="r", second_confirmation=False)
        elif state is CaseState.FALSE_POSITIVE:
            review.mark_false_positive(store, case_id, actor=ALICE, reason="r", allow_bank="ok")
        elif state is CaseState.ESCALATED:
            review.escalate(store, case_id, actor=ALICE, reason="r")
        assert store.cases.get(case_id).state is state
        ids[state] = case_id
    return ids


def test_transition_table_refuses_every_other_move(scanned: tuple[Store, Path, int]) -> None:
    store, _, run_id = scanned
    ids = _all_states(store, run_id)
    for state, case_id in ids.items():
        allowed = TRANSITIONS[state]
        before = store.cases.get(case_id)
        if CaseState.ESCALATED not in allowed:
            with pytest.raises(review.InvalidTransition):
                review.escalate(store, case_id, actor=BOB, reason="r")
        if CaseState.FALSE_POSITIVE not in allowed:
            with pytest.raises(review.InvalidTransition):
                review.mark_false_positive(store, case_id, actor=BOB, reason="r", allow_bank="ok")
        if not allowed & {CaseState.CONFIRMED, CaseState.CONFIRMED_ONCE}:
            with pytest.raises(review.InvalidTransition):
                review.confirm(store, case_id, actor=BOB, reason="r", second_confirmation=True)
        if state.final:
            with pytest.raises(review.InvalidTransition):
                review.assign(store, case_id, BOB.split(":")[1], actor=ALICE)
        assert store.cases.get(case_id) == before  # a refusal changes nothing
    # the table itself: only these moves exist
    assert {s: set(t) for s, t in TRANSITIONS.items() if t} == {
        CaseState.OPEN: {
            CaseState.CONFIRMED_ONCE,
            CaseState.CONFIRMED,
            CaseState.FALSE_POSITIVE,
            CaseState.ESCALATED,
        },
        CaseState.CONFIRMED_ONCE: {
            CaseState.CONFIRMED,
            CaseState.FALSE_POSITIVE,
            CaseState.ESCALATED,
        },
        CaseState.ESCALATED: {
            CaseState.CONFIRMED_ONCE,
            CaseState.CONFIRMED,
            CaseState.FALSE_POSITIVE,
        },
    }
    # allowed moves out of escalated and confirmed_once
    review.confirm(
        store, ids[CaseState.ESCALATED], actor=BOB, reason="legal agrees", second_confirmation=True
    )
    assert store.cases.get(ids[CaseState.ESCALATED]).state is CaseState.CONFIRMED_ONCE
    review.escalate(store, ids[CaseState.CONFIRMED_ONCE], actor=BOB, reason="unsure")
    assert store.cases.get(ids[CaseState.CONFIRMED_ONCE]).state is CaseState.ESCALATED


def test_reasons_are_required(scanned: tuple[Store, Path, int]) -> None:
    store, _, run_id = scanned
    review.open_cases_for_run(store, run_id)
    case_id = store.cases.list()[0].id
    for reason in ("", "   "):
        with pytest.raises(review.ReasonRequired):
            review.confirm(store, case_id, actor=ALICE, reason=reason, second_confirmation=True)
        with pytest.raises(review.ReasonRequired):
            review.escalate(store, case_id, actor=ALICE, reason=reason)
        with pytest.raises(review.ReasonRequired):
            review.mark_false_positive(store, case_id, actor=ALICE, reason=reason, allow_bank="ok")
    assert store.cases.get(case_id).version == 1
    assert store.banks.find("ok") is None


def test_second_confirmation_by_a_different_person(scanned: tuple[Store, Path, int]) -> None:
    store, _, run_id = scanned
    review.open_cases_for_run(store, run_id)
    first, second = (c.id for c in store.cases.list())
    once = review.confirm(store, first, actor=ALICE, reason="matches", second_confirmation=True)
    assert (once.state, once.confirmers, once.reportable) == (
        CaseState.CONFIRMED_ONCE,
        ("alice",),
        False,
    )
    # the same person, under any of their actors, cannot be the second
    for same in (ALICE, "cli:alice", "cli:root/as:alice"):
        with pytest.raises(review.SameReviewer):
            review.confirm(store, first, actor=same, reason="again", second_confirmation=True)
    done = review.confirm(store, first, actor=BOB, reason="agree", second_confirmation=True)
    assert (done.state, done.confirmers, done.reportable) == (
        CaseState.CONFIRMED,
        ("alice", "bob"),
        True,
    )
    history = store.cases.history(first)
    assert [(e.actor, e.from_state, e.to_state, e.reason) for e in history[1:]] == [
        (ALICE, CaseState.OPEN, CaseState.CONFIRMED_ONCE, "matches"),
        (BOB, CaseState.CONFIRMED_ONCE, CaseState.CONFIRMED, "agree"),
    ]
    # with the setting off one confirmation is enough
    single = review.confirm(store, second, actor=CAROL, reason="ok", second_confirmation=False)
    assert single.state is CaseState.CONFIRMED


def test_false_positive_feeds_the_allow_bank_and_a_rescan_is_suppressed(
    scanned: tuple[Store, Path, int],
) -> None:
    store, folder, run_id = scanned
    review.open_cases_for_run(store, run_id)
    case_id = _by_name(store)["act"]
    review.assign(store, case_id, "alice", actor=CAROL)
    asked: list[int] = []

    def reference(case: Case) -> tuple[PdqHash, ...]:
        # the scan was fast-mode: the allow bank gets reference hashes of the content
        asked.append(case.id)
        assert case.signals is not None
        data = (folder / "act.jpg").read_bytes()
        limits = HashOptions.for_scan(OPTIONS)
        return with_reference(case.signals, limits=limits, data=data).reference_pdq

    closed = review.mark_false_positive(
        store, case_id, actor=ALICE, reason="a holiday photo", allow_bank="fp", reference=reference
    )
    # 320 x 240 JPEGs take the reference path even in the default mode: the case's hashes
    # are reference hashes already, and nothing is hashed again
    assert asked == []
    assert closed.state is CaseState.FALSE_POSITIVE
    assert closed.assignee == "alice"
    stats = store.banks.stats("fp")
    assert stats.bank.kind is BankKind.ALLOW
    assert closed.signals is not None
    assert {p.mode for p in closed.signals.pdq} == {PdqMode.REFERENCE}
    good_pdq = sum(not p.low_quality for p in closed.signals.pdq)
    assert good_pdq >= 1
    assert stats.active == {
        Algorithm.MD5: 1,
        Algorithm.SHA1: 1,
        Algorithm.SHA256: 1,
        Algorithm.PDQ: good_pdq,
    }
    # a bank that is not an allow bank is refused
    other = store.cases.get(_by_name(store)["review"])
    with pytest.raises(review.NotAnAllowBank):
        review.mark_false_positive(store, other.id, actor=ALICE, reason="r", allow_bank="live")
    assert store.cases.get(other.id).state is CaseState.OPEN

    rerun = _scan(store, folder)
    results = {Path(r.path).stem: r for r in store.scans.results(rerun)}
    assert results["act"].outcome is Outcome.NO_MATCH
    assert results["act"].decision.action is Action.IGNORE
    assert any(m.suppressed_by == "fp" for m in results["act"].matches)
    assert results["review"].decision.action is Action.REVIEW
    assert review.open_cases_for_run(store, rerun).opened == 0

    actions = [a for a, _, _ in _audited(store, "")]
    assert "bank.created" in actions
    assert "bank.entries_added" in actions
    assert ("case.false_positive", ALICE, f"case:{case_id}") in _audited(store)
    assert verify(store.audit.events(), recorded_head=store.audit.head()).ok


def test_a_stale_version_is_refused(scanned: tuple[Store, Path, int]) -> None:
    store, _, run_id = scanned
    review.open_cases_for_run(store, run_id)
    seen = store.cases.list()[0]
    review.assign(store, seen.id, "bob", actor=ALICE, version=seen.version)
    with pytest.raises(review.StaleCase) as refused:
        review.confirm(
            store,
            seen.id,
            actor=BOB,
            reason="looked at it",
            second_confirmation=True,
            version=seen.version,
        )
    assert (refused.value.expected, refused.value.actual) == (1, 2)
    with pytest.raises(review.StaleCase):
        store.cases.transition(
            seen.id,
            expected_version=seen.version,
            actor=BOB,
            kind=CaseEventKind.ESCALATED,
            to_state=CaseState.ESCALATED,
            reason="r",
        )
    current = store.cases.get(seen.id)
    assert (current.state, current.version, current.assignee) == (CaseState.OPEN, 2, "bob")
    with pytest.raises(review.UnknownCase):
        store.cases.get(10_000)


def test_every_state_change_is_audited(scanned: tuple[Store, Path, int]) -> None:
    store, _, run_id = scanned
    review.open_cases_for_run(store, run_id)
    case_id = _by_name(store)["review"]
    review.assign(store, case_id, "alice", actor=CAROL, reason="queue")
    review.escalate(store, case_id, actor=ALICE, reason="needs legal")
    review.confirm(store, case_id, actor=CAROL, reason="legal: yes", second_confirmation=True)
    review.confirm(store, case_id, actor=BOB, reason="agree", second_confirmation=True)
    subject = f"case:{case_id}"
    assert [(a, actor) for a, actor, s in _audited(store) if s == subject] == [
        ("case.opened", review.SYSTEM_ACTOR),
        ("case.assigned", CAROL),
        ("case.escalated", ALICE),
        ("case.confirmed", CAROL),
        ("case.confirmed", BOB),
    ]
    last = [e for e in store.audit.events() if e.subject == subject][-1]
    assert last.details["from_state"] == "confirmed_once"
    assert last.details["to_state"] == "confirmed"
    assert last.details["reason"] == "agree"
    assert "sha256" not in json.dumps(last.details)  # no hashes in the log
    assert verify(store.audit.events(), recorded_head=store.audit.head()).ok


# -- hashguard cases ----------------------------------------------------------------


@pytest.mark.usefixtures("home")
def test_cli_review_flow(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    _images(folder)
    files, _ = json_lines(hashguard("scan", str(folder), "--json", "--workers", "1").stdout)
    md5 = {Path(f["path"]).stem: f["md5"] for f in files}
    hashguard(
        "banks",
        "import",
        "live",
        str(write_known_list(tmp_path / "l.csv", [("md5", md5["act"], "e1")])),
    )
    files, summary = json_lines(
        hashguard("scan", str(folder), "--json", "--workers", "1", "--rescan", check=1).stdout
    )
    run = str(summary["run"])
    # the scan opened the case itself; opening from the run again changes nothing
    opened = json.loads(hashguard("cases", "open-from-run", run, "--json").stdout)
    assert (opened["opened"], opened["unchanged"]) == (0, 1)
    hashguard("cases", "open-from-run", "999", check=2)

    (listed,) = json.loads(hashguard("cases", "list", "--json").stdout)
    case = str(listed["id"])
    assert (listed["state"], listed["banks"]) == ("open", ["live"])
    assert "open" in hashguard("cases", "list").stdout
    assert json.loads(hashguard("cases", "list", "--state", "confirmed", "--json").stdout) == []

    hashguard("cases", "assign", case, "alice")
    refused = hashguard("cases", "confirm", case, "--reason", " ", check=2)
    assert "reason is required" in refused.stderr
    hashguard("cases", "confirm", case, "--reason", "it matches", "--as", "alice")
    same = hashguard("cases", "confirm", case, "--reason", "again", "--as", "alice", check=2)
    assert "different person" in same.stderr
    stale = hashguard("cases", "escalate", case, "--reason", "r", "--version", "1", check=3)
    assert "changed meanwhile" in stale.stderr
    hashguard("cases", "confirm", case, "--reason", "agree", "--as", "bob")
    shown = json.loads(hashguard("cases", "show", case, "--json").stdout)
    assert (shown["state"], shown["reportable"], shown["confirmers"]) == (
        "confirmed",
        True,
        ["alice", "bob"],
    )
    assert [e["kind"] for e in shown["history"]] == ["opened", "assigned", "confirmed", "confirmed"]
    assert shown["history"][-1]["actor"].endswith("/as:bob")
    assert "confirmed_once->confirmed" in hashguard("cases", "show", case).stdout
    done = hashguard(
        "cases", "false-positive", case, "--reason", "r", "--allow-bank", "ok", check=2
    )
    assert "cannot become false_positive" in done.stderr
    hashguard("cases", "show", "999", check=2)
    audit = hashguard("audit", "list", "--json").stdout
    assert audit.count('"case.confirmed"') == 2


def test_a_scan_audits_every_matched_files_decision(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    _banks(store, _images(folder))
    prepared = prepare_run(store.scans, [str(folder)], OPTIONS)
    with HashingPool(
        workers=1, options=HashOptions.for_scan(OPTIONS), timeout=60, memory_mb=2048
    ) as pool:
        matcher = Matcher.build(store.banks)
        Scanner(
            store=store.scans,
            matcher=matcher,
            pool=pool,
            pipeline=Pipeline(
                store=store, actor="system:test", policies=lambda: policies_of(matcher.banks)
            ),
        ).run(prepared.run)
    decided = {
        Path(e.details["source"]["path"]).stem: (e.details["decided"], e.details["shadow"])
        for e in store.audit.events()
        if e.action == "scan.decision"
    }
    # the clean file is counted, not logged; the shadow bank's match is logged as ignored
    assert decided == {
        "act": ("act", False),
        "review": ("review", False),
        "trial": ("ignore", True),
    }
    assert {a for a, _, _ in _audited(store)} == {"case.opened"}


def test_a_final_decisions_webhook_commits_with_it_or_not_at_all(
    scanned: tuple[Store, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _, run_id = scanned
    review.open_cases_for_run(store, run_id)
    case_id = _by_name(store)["review"]
    hook = [WebhookEndpoint(name="ops", url="http://127.0.0.1:9/h", secret="whsec_" + "A" * 32)]
    review.confirm(
        store, case_id, actor=ALICE, reason="yes", second_confirmation=True, endpoints=hook
    )
    assert store.actions.list() == []  # confirmed once: nothing to announce yet

    def broken(*_args: object, **_kw: object) -> int:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr("hashguard.store.cases.enqueue", broken)
    with pytest.raises(RuntimeError):
        review.confirm(
            store, case_id, actor=BOB, reason="agree", second_confirmation=True, endpoints=hook
        )
    assert store.cases.get(case_id).state is CaseState.CONFIRMED_ONCE  # rolled back
    monkeypatch.undo()
    case = review.confirm(
        store, case_id, actor=BOB, reason="agree", second_confirmation=True, endpoints=hook
    )
    assert case.state is CaseState.CONFIRMED
    (action,) = store.actions.list()
    assert (action.event, action.target, action.subject) == (
        EventType.CASE_CONFIRMED,
        "ops",
        f"case:{case_id}",
    )
    assert action.payload["data"]["state"] == "confirmed"
