"""Appeals (DSA Art. 20): the six months, one appeal per statement and per reference, a
person who did not take the first decision, uphold (the restriction stands, a new
statement for the Transparency Database) and reverse (the quarantined file comes back,
for real, a statement that is never filed, the platform told) — the service on SQLite,
the store on both engines, the CLI in-process. The clock is injected everywhere."""

from __future__ import annotations

import json
import os
import random
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hashguard.actions.dispatcher import Dispatcher
from hashguard.actions.outbox import quarantine_action
from hashguard.actions.quarantine import QuarantineDeliverer, file_facts
from hashguard.cli.app import app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.demo.receiver import new_secret
from hashguard.domain.actions import ActionKind, ActionState, EventType, WebhookEndpoint
from hashguard.domain.appeals import APPEAL_WINDOW, AppealState, NewAppeal, Outcome, Restoration
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import (
    Case,
    CaseEventKind,
    CaseSource,
    CaseState,
    ContentRef,
    SourceKind,
)
from hashguard.domain.policy import Action
from hashguard.domain.scans import FileResult
from hashguard.domain.signals import Algorithm
from hashguard.domain.statements import FilingState, StatementKind
from hashguard.domain.stats import Metric, Timing, timing_bucket
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.review import appeals
from hashguard.review.decide import Verdict, apply_verdict
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import Upload
from hashguard.statements import service
from hashguard.statements.tdb import tdb_document
from hashguard.store import Store
from hashguard.store.appeals import AppealAlreadyDecided, StatementAppealed
from tests.fakes.tdb import problems

T0 = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
SCHEMA = Path(
    os.environ.get("HG_TEST_TDB_SCHEMA")
    or Path(__file__).resolve().parents[2] / "shared/reference/dsa/tdb_schema.json"
)
ALLOW = "false-positives"
#: what the uploader wrote may name them: it never reaches a statement
EXPLANATION = "This is my own holiday photo, alice.smith@example.test, please look again."


@dataclass(frozen=True, kw_only=True, slots=True)
class ScannedFile(Upload):
    """Content a scan found at ``path`` (run 1), as a local-file source names it."""

    path: str = ""

    def case_source(self, result: FileResult) -> CaseSource:
        return CaseSource(kind=SourceKind.SCAN, ref="1", path=self.path)

    def action_key(self, result: FileResult) -> str:
        return f"scan:1:{self.path}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Noticed(Upload):
    """Content a DSA notice (#42) named, resolved through the platform's callback."""

    def case_source(self, result: FileResult) -> CaseSource:
        return CaseSource(kind=SourceKind.NOTICE, ref="42")


@dataclass
class World:
    store: Store
    tmp: Path
    now: list[datetime] = field(default_factory=lambda: [T0])
    endpoint: WebhookEndpoint = field(
        default_factory=lambda: WebhookEndpoint(
            name="platform", url="http://127.0.0.1:9/hooks", secret=new_secret()
        )
    )

    def clock(self) -> datetime:
        return self.now[0]

    def statements_on(self) -> None:
        service.change_settings(
            self.store,
            lambda: MasterKey(secrets.token_bytes(32)),
            statements={"issue": True, "territorial_scope": ["DE", "LU", "NL"]},
            sink_settings={},
            token=None,
            actor="cli:lead",
            at=self.clock(),
        )

    def case(
        self,
        seed: int,
        *,
        review: bool = False,
        path: Path | None = None,
        notice: bool = False,
        dispatch: bool = True,
    ) -> Case:
        """The case the pipeline opens for a generated benign image matched by MD5
        (``review``: sent to review; else acted on, with an automated statement).
        ``path``: the image is a file a scan found there."""
        data = encode(generate(Kind.PHOTO, seed, 64, 48))
        output = hash_data(data, HashOptions(max_pixels=50_000_000))
        assert output.signals is not None
        if self.store.banks.find("known") is None:
            self.store.banks.create("known")
        self.store.banks.configure("known", exact_action=Action.REVIEW if review else Action.ACT)
        self.store.banks.add_entries(
            "known", [BankEntry(algorithm=Algorithm.MD5, value=output.signals.md5)]
        )
        matcher = Matcher.build(self.store.banks)
        source: Upload = Upload(data=data, request_id=f"req-{seed}", content_ref=_content())
        if notice:
            source = Noticed(data=data, request_id=None, content_ref=_content())
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            source = ScannedFile(data=data, request_id=None, content_ref=_content(), path=str(path))
        done = Pipeline(
            store=self.store,
            actor="system:test",
            policies=lambda: policies_of(matcher.banks),
            endpoints=(self.endpoint,),
            clock=self.clock,
        ).process("upload", output, matcher.match(output.signals), source)
        assert done.case is not None
        if path is not None:
            self.quarantine(path, dispatch=dispatch)
        return self.store.cases.get(done.case.id)

    def quarantine(self, path: Path, *, dispatch: bool = True) -> None:
        """The quarantine a scan that acts queues, carried out by the dispatcher."""
        action = quarantine_action(str(path), key=f"scan:1:{path}", sha256=file_facts(path).sha256)
        self.store.actions.enqueue(action, at=self.clock())
        if dispatch:
            self.dispatch()
            assert not path.exists()

    def dispatch(self) -> None:
        Dispatcher(
            self.store.actions,
            {ActionKind.QUARANTINE: QuarantineDeliverer(self.store.actions, self.tmp / "q", {})},
            rng=random.Random(1),
            clock=self.clock,
        ).run_once()

    def confirm(self, case: Case, actor: str = "user:lead") -> Case:
        return apply_verdict(
            self.store,
            case.id,
            Verdict.CONFIRM,
            actor=actor,
            reason="looked",
            second_confirmation=False,
            allow_bank=ALLOW,
            endpoints=(self.endpoint,),
            at=self.clock(),
        ).case

    def appeal(self, case: Case, reference: str = "P-1", **kw: Any) -> appeals.Received:
        (statement, *_) = self.store.statements.for_case(case.id)
        new = NewAppeal(
            case_id=case.id,
            statement_puid=kw.pop("puid", statement.puid),
            reference=reference,
            explanation=kw.pop("explanation", EXPLANATION),
        )
        return appeals.receive(self.store, new, actor="token:7", at=kw.pop("at", self.clock()))

    def decide(self, appeal_id: int, outcome: Outcome, actor: str = "user:carol") -> Any:
        return appeals.decide(
            self.store,
            appeal_id,
            outcome,
            actor=actor,
            reason="looked again",
            at=self.clock(),
            allow_bank=ALLOW,
            endpoints=(self.endpoint,),
        )

    def webhooks(self, event: EventType) -> list[dict[str, Any]]:
        return [
            dict(a.payload["data"]) for a in self.store.actions.list(limit=1000) if a.event is event
        ]

    def audit(self, action: str) -> list[dict[str, Any]]:
        return [dict(e.details) for e in self.store.audit.events() if e.action == action]


def _content() -> ContentRef:
    return ContentRef(content_id="c-0001", uploader_id="alice.smith")


@pytest.fixture
def world(sqlite_store: Store, tmp_path: Path) -> World:
    made = World(store=sqlite_store, tmp=tmp_path)
    made.statements_on()
    return made


# -- receiving ----------------------------------------------------------------------------


def test_an_appeal_reopens_the_case_once_per_reference_and_is_audited(world: World) -> None:
    case = world.confirm(world.case(1, review=True))
    (contested,) = world.store.statements.for_case(case.id)
    assert contested.reasons.kind is StatementKind.CONFIRMED
    received = world.appeal(case)
    assert received.new
    appeal = received.appeal
    assert (appeal.state, appeal.statement_puid, appeal.received_by) == (
        AppealState.OPEN, contested.puid, "token:7",
    )  # fmt: skip
    assert world.store.cases.history(case.id)[-1].kind is CaseEventKind.APPEALED
    (audited,) = world.audit("appeal.received")
    assert audited["state"] == "received"
    assert audited["case"] == case.id
    assert EXPLANATION not in json.dumps(audited)  # the uploader's words stay in the appeal

    again = world.appeal(case)  # the platform's retry
    assert not again.new
    assert again.appeal == appeal
    assert len(world.audit("appeal.received")) == 1
    with pytest.raises(appeals.AppealConflict):  # the same reference, another text
        world.appeal(case, explanation="something else")
    with pytest.raises(appeals.AppealConflict):  # one appeal per statement
        world.appeal(case, reference="P-2")
    with pytest.raises(appeals.UnknownStatement):
        world.appeal(case, reference="P-3", puid="hg-nothing")
    for bad in ("", "   ", "a\x00b", "\ud800"):
        with pytest.raises(appeals.InvalidAppeal):
            world.appeal(case, reference="P-4", explanation=bad)
    with pytest.raises(appeals.InvalidAppeal):
        world.appeal(case, reference="no spaces in a reference")


def test_an_appeal_comes_within_six_months_of_the_statement(world: World) -> None:
    late = world.confirm(world.case(2, review=True))
    (statement,) = world.store.statements.for_case(late.id)
    assert statement.reasons.decided_at == T0  # the injected clock, not the wall clock
    end = T0 + APPEAL_WINDOW
    assert timedelta(days=184) <= APPEAL_WINDOW  # never shorter than six calendar months
    with pytest.raises(appeals.AppealTooLate, match="six months"):
        world.appeal(late, at=end + timedelta(seconds=1))
    assert world.store.appeals.for_case(late.id) == []
    assert world.appeal(late, at=end).new  # the last moment still counts


def test_nothing_restricted_is_nothing_to_appeal(world: World) -> None:
    case = world.case(3, review=True)
    assert world.store.statements.for_case(case.id) == []
    with pytest.raises(appeals.UnknownStatement):
        appeals.receive(
            world.store,
            NewAppeal(case_id=case.id, statement_puid="x", reference="R", explanation="e"),
            actor="token:7",
            at=T0,
        )


# -- deciding -----------------------------------------------------------------------------


def test_whoever_took_the_first_decision_never_decides_the_appeal(world: World) -> None:
    case = world.confirm(world.case(4, review=True), actor="user:lead")
    appeal = world.appeal(case).appeal
    # the same person whichever way they come in, whatever their role
    for actor in ("user:lead", "cli:lead", "token:3/as:lead", "cli:root/as:lead"):
        with pytest.raises(appeals.SamePerson):
            world.decide(appeal.id, Outcome.UPHOLD, actor=actor)
    assert world.store.appeals.get(appeal.id).open
    assert not appeals.eligible(world.store, appeal, "user:lead")
    assert appeals.eligible(world.store, appeal, "user:carol")
    with pytest.raises(appeals.ReasonRequired):
        appeals.decide(
            world.store, appeal.id, Outcome.UPHOLD, actor="user:carol", reason=" ",
            at=T0, allow_bank=ALLOW,
        )  # fmt: skip


def test_upholding_keeps_the_restriction_and_files_a_new_statement(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "uploads" / "kept.png"
    case = world.case(5, path=path)  # acted on automatically: quarantined
    appeal = world.appeal(case).appeal
    world.now[0] = T0 + timedelta(days=3)
    decided = world.decide(appeal.id, Outcome.UPHOLD)
    assert decided.appeal.state is AppealState.UPHELD
    assert decided.appeal.restoration is None
    assert decided.case.state is case.state  # still in the review workflow as it was
    assert not path.exists(), "upholding leaves the file in quarantine"
    statement = decided.statement
    assert statement.reasons.kind is StatementKind.APPEAL_UPHELD
    assert statement.state is FilingState.PENDING  # filed like every restriction
    assert statement.reasons.decided_at == world.clock()
    assert "upheld" in statement.text
    assert "alice" not in statement.text.lower()
    (hook,) = world.webhooks(EventType.APPEAL_DECIDED)
    assert (hook["outcome"], hook["statement_puid"], hook["reference"]) == (
        "upheld", statement.puid, "P-1",
    )  # fmt: skip
    (audited,) = world.audit("appeal.decided")
    assert audited["state"] == "upheld"
    assert world.store.cases.history(case.id)[-1].kind is CaseEventKind.APPEAL_UPHELD
    with pytest.raises(appeals.AppealClosed):
        world.decide(appeal.id, Outcome.REVERSE)


def test_reversing_restores_the_quarantined_file_and_tells_the_platform(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "uploads" / "mine.png"
    case = world.case(6, path=path)
    content = world.store.cases.get(case.id)
    appeal = world.appeal(content).appeal
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert path.is_file(), "the file is back where it was"
    assert decided.appeal.restoration is Restoration.RESTORED
    assert decided.notes == (f"{path}: restored",)
    assert decided.case.state is CaseState.FALSE_POSITIVE
    assert not decided.case.reportable
    # its hashes are allowed now: the restored file is not restricted again
    assert world.store.banks.get(ALLOW).kind.value == "allow"
    statement = decided.statement
    assert statement.reasons.kind is StatementKind.APPEAL_REVERSED
    assert statement.state is FilingState.NOT_FILED  # the Database takes no lifted restriction
    assert "reversed" in statement.text
    (hook,) = world.webhooks(EventType.APPEAL_DECIDED)
    assert hook["outcome"] == "reversed"
    assert [d["state"] for d in world.audit("appeal.decided")] == ["reversed"]
    assert [d["restoration"] for d in world.audit("appeal.restored")] == ["restored"]
    # a reversed case has nothing left to appeal
    with pytest.raises(appeals.NotContestable):
        world.appeal(content, reference="P-9")


def test_a_restore_that_fails_is_kept_and_retried(world: World, tmp_path: Path) -> None:
    path = tmp_path / "uploads" / "taken.png"
    case = world.case(7, path=path)
    appeal = world.appeal(case).appeal
    path.write_text("another file uploaded since")  # never overwritten
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert decided.appeal.state is AppealState.REVERSED
    assert decided.appeal.restoration is Restoration.FAILED
    (note,) = decided.appeal.restoration_notes
    assert "not restored" in note
    assert path.read_text() == "another file uploaded since"
    path.unlink()
    again, _ = appeals.restore_content(world.store, appeal.id, actor="cli:ops")
    assert again.restoration is Restoration.RESTORED
    assert path.is_file()
    assert [d["restoration"] for d in world.audit("appeal.restored")] == ["failed", "restored"]


def test_statements_of_appeals_follow_the_databases_schema(world: World) -> None:
    documents = []
    for seed, outcome in ((8, Outcome.UPHOLD), (9, Outcome.REVERSE)):
        case = world.confirm(world.case(seed, review=True))
        appeal = world.appeal(case, reference=f"S-{seed}").appeal
        statement = world.decide(appeal.id, outcome).statement
        assert statement is not None
        if statement.reasons.kind.filed:
            documents.append(tdb_document(statement.reasons))
    assert len(documents) == 1  # the upheld one; a reversal is never sent
    for document in documents:
        assert problems(document) == {}, document
        assert "alice" not in json.dumps(document).lower()
    if not SCHEMA.is_file():
        pytest.skip(f"the reference schema is not here: {SCHEMA}")
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    for document in documents:
        assert [e.message for e in validator.iter_errors(document)] == []
    claimed = world.store.statements.claim(now=T0, lease_until=T0 + timedelta(minutes=1), limit=100)
    kinds = {s.reasons.kind for s in claimed[1]}
    assert StatementKind.APPEAL_REVERSED not in kinds
    assert StatementKind.APPEAL_UPHELD in kinds


# -- a reversal undoes what the first decision set off ------------------------------------


def test_a_reversal_tells_the_platform_and_the_notifier(world: World) -> None:
    case = world.confirm(world.case(12, review=True, notice=True))
    (told,) = world.webhooks(EventType.NOTICE_DECIDED)
    assert told["outcome"] == "restricted"
    assert world.webhooks(EventType.CASE_FALSE_POSITIVE) == []
    appeal = world.appeal(case).appeal
    world.now[0] = T0 + timedelta(days=2)
    decided = world.decide(appeal.id, Outcome.REVERSE)
    (hook,) = world.webhooks(EventType.CASE_FALSE_POSITIVE)
    assert (hook["case"], hook["state"]) == (case.id, "false_positive")
    answers = world.webhooks(EventType.NOTICE_DECIDED)
    assert sorted(a["outcome"] for a in answers) == ["not_restricted", "restricted"]
    (lifted,) = [a for a in answers if a["outcome"] == "not_restricted"]
    assert (lifted["notice"], lifted["case"]) == ("42", case.id)
    assert [d["outcome"] for d in world.audit("notice.decided")][-1] == "not_restricted"
    # the case's change carries the injected clock
    assert decided.case.updated_at == world.clock()
    assert world.store.cases.history(case.id)[-1].at == world.clock()


def test_upholding_tells_the_platform_nothing_new(world: World) -> None:
    case = world.confirm(world.case(13, review=True, notice=True))
    appeal = world.appeal(case).appeal
    world.decide(appeal.id, Outcome.UPHOLD)
    assert world.webhooks(EventType.CASE_FALSE_POSITIVE) == []
    assert [a["outcome"] for a in world.webhooks(EventType.NOTICE_DECIDED)] == ["restricted"]


def test_a_quarantine_still_pending_at_reversal_is_never_carried_out(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "uploads" / "queued.png"
    case = world.case(14, path=path, dispatch=False)  # the dispatcher has not run yet
    assert path.is_file()
    appeal = world.appeal(case).appeal
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert decided.appeal.restoration is Restoration.NONE  # nothing was moved
    world.dispatch()  # the dispatcher comes round after the reversal
    assert path.is_file(), "the reversed decision's quarantine was cancelled"
    (action,) = [a for a in world.store.actions.list(limit=1000) if a.kind is ActionKind.QUARANTINE]
    assert action.state is ActionState.DEAD
    assert f"reversed on appeal #{appeal.id}" in (action.last_error or "")


def test_the_restores_job_retries_a_failed_restoration_with_backoff(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "uploads" / "busy.png"
    case = world.case(15, path=path)
    appeal = world.appeal(case).appeal
    path.write_text("another file uploaded since")
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert decided.appeal.restoration is Restoration.FAILED
    first = appeals.RESTORE_BACKOFF.delay(1)
    assert decided.appeal.restore_after == T0 + first
    # not due before the backoff's wait
    assert appeals.restore_due(world.store, actor="system:appeals", at=T0 + first / 2) == []
    (still,) = appeals.restore_due(world.store, actor="system:appeals", at=T0 + first)
    assert still.restoration is Restoration.FAILED  # the other file is still there
    assert still.restore_after == T0 + first + appeals.RESTORE_BACKOFF.delay(2)
    path.unlink()
    later = T0 + first + appeals.RESTORE_BACKOFF.delay(2)
    (done,) = appeals.restore_due(world.store, actor="system:appeals", at=later)
    assert done.restoration is Restoration.RESTORED
    assert done.restore_after is None
    assert path.is_file()
    assert (
        appeals.restore_due(world.store, actor="system:appeals", at=later + timedelta(days=1)) == []
    )
    audited = world.audit("appeal.restored")
    assert [(d["restoration"], d["attempt"]) for d in audited] == [
        ("failed", 1), ("failed", 2), ("restored", 3),
    ]  # fmt: skip


def test_the_restores_job_gives_up_after_a_week(world: World, tmp_path: Path) -> None:
    path = tmp_path / "uploads" / "stuck.png"
    case = world.case(16, path=path)
    appeal = world.appeal(case).appeal
    path.write_text("another file uploaded since")
    world.decide(appeal.id, Outcome.REVERSE)
    week = appeals.RESTORE_BACKOFF.give_up_after
    assert week is not None
    (last,) = appeals.restore_due(world.store, actor="system:appeals", at=T0 + week)
    assert (last.restoration, last.restore_after) == (Restoration.FAILED, None)
    assert appeals.restore_due(world.store, actor="system:appeals", at=T0 + 2 * week) == []
    path.unlink()  # an operator fixed it: the manual path still works
    again, _ = appeals.restore_content(world.store, appeal.id, actor="cli:ops", at=T0 + 2 * week)
    assert again.restoration is Restoration.RESTORED


def test_appeals_are_counted_with_their_time_to_decision(world: World) -> None:
    case = world.confirm(world.case(17, review=True))
    appeal = world.appeal(case).appeal
    world.now[0] = T0 + timedelta(hours=3)
    world.decide(appeal.id, Outcome.UPHOLD)
    wide = (date(2000, 1, 1), date(2100, 1, 1))
    counted = {
        r.labels["state"]: r.value for r in world.store.stats.counts(*wide, [Metric.APPEALS])
    }
    assert counted == {"received": 1, "upheld": 1}
    (timing,) = [
        r for r in world.store.stats.timings(*wide) if r.timing is Timing.APPEAL_TO_DECISION
    ]
    assert timing.count == 1
    assert timing.bucket == timing_bucket(3 * 3600)  # received to decided, injected clock


# -- the store, on both engines -----------------------------------------------------------


def test_the_store_keeps_one_appeal_per_reference_and_decides_it_once(store: Store) -> None:
    world = World(store=store, tmp=Path("/nonexistent"))
    world.statements_on()
    case = world.confirm(world.case(10, review=True))
    (statement,) = store.statements.for_case(case.id)
    new = NewAppeal(case_id=case.id, statement_puid=statement.puid, reference="S/1#a",
                    explanation="mine")  # fmt: skip
    first, added = store.appeals.add(new, statement_id=statement.id, received_by="token:1", at=T0)
    again, added_again = store.appeals.add(
        new, statement_id=statement.id, received_by="token:2", at=T0
    )
    assert (added, added_again) == (True, False)
    other = NewAppeal(case_id=case.id, statement_puid=statement.puid, reference="S/2",
                      explanation="mine")  # fmt: skip
    with pytest.raises(StatementAppealed):  # one appeal per statement
        store.appeals.add(other, statement_id=statement.id, received_by="token:1", at=T0)
    assert again == first
    assert first.received_at == T0
    assert store.appeals.find("S/1#a") == first
    assert store.appeals.list(states=[AppealState.OPEN]) == [first]
    decided = store.appeals.decide(
        first.id, state=AppealState.REVERSED, decided_by="user:carol", reason="r",
        at=T0 + timedelta(days=1), decision_statement_id=None, restoration=Restoration.PENDING,
    )  # fmt: skip
    assert (decided.state, decided.restoration) == (AppealState.REVERSED, Restoration.PENDING)
    assert decided.decided_at == T0 + timedelta(days=1)
    with pytest.raises(AppealAlreadyDecided):
        store.appeals.decide(
            first.id, state=AppealState.UPHELD, decided_by="user:dora", reason="r", at=T0,
            decision_statement_id=None, restoration=None,
        )  # fmt: skip
    noted = store.appeals.set_restoration(first.id, Restoration.FAILED, ["x: not restored: y"])
    assert noted.restoration_notes == ("x: not restored: y",)
    assert store.appeals.list(states=[AppealState.OPEN]) == []
    assert store.appeals.for_case(case.id) == [noted]


# -- the CLI, in-process ------------------------------------------------------------------


def test_cli_lists_and_decides_appeals_as_a_named_person(
    world: World, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", str(world.store.engine.url))
    cli_world = world
    case = cli_world.confirm(cli_world.case(11, review=True), actor="user:lead")
    appeal = cli_world.appeal(case).appeal
    runner = CliRunner()

    listed = runner.invoke(app, ["appeals", "list", "--state", "open", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [a["id"] for a in json.loads(listed.stdout)] == [appeal.id]

    refused = runner.invoke(
        app, ["appeals", "decide", str(appeal.id), "--uphold", "--reason", "r", "--as", "lead"]
    )
    assert refused.exit_code != 0
    assert "took part in the decision" in " ".join(refused.output.split())
    both = runner.invoke(app, ["appeals", "decide", str(appeal.id), "--uphold", "--reverse",
                               "--reason", "r", "--as", "carol"])  # fmt: skip
    assert both.exit_code != 0
    done = runner.invoke(
        app, ["appeals", "decide", str(appeal.id), "--reverse", "--reason", "mine", "--as", "carol"]
    )
    assert done.exit_code == 0, done.output
    assert "reversed" in done.output
    decided = cli_world.store.appeals.get(appeal.id)
    assert decided.state is AppealState.REVERSED
    assert decided.decided_by.endswith("/as:carol")
    listed = runner.invoke(app, ["appeals", "list", "--state", "open", "--json"])
    assert json.loads(listed.stdout) == []
    table = runner.invoke(app, ["appeals", "list"])
    assert "reversed" in table.output


def test_an_appeal_of_a_case_marked_a_false_positive_meanwhile_is_closed_by_reversing(
    world: World,
) -> None:
    case = world.case(12)  # acted on automatically; review has not looked yet
    appeal = world.appeal(case).appeal
    apply_verdict(
        world.store, case.id, Verdict.FALSE_POSITIVE, actor="user:bob", reason="not it",
        second_confirmation=False, allow_bank=ALLOW, endpoints=(),
    )  # fmt: skip
    with pytest.raises(appeals.SamePerson):  # bob decided it: not his appeal either
        world.decide(appeal.id, Outcome.REVERSE, actor="user:bob")
    with pytest.raises(appeals.NotContestable):
        world.decide(appeal.id, Outcome.UPHOLD)
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert decided.appeal.state is AppealState.REVERSED
    assert decided.case.state is CaseState.FALSE_POSITIVE
    assert decided.appeal.restoration is Restoration.NONE
