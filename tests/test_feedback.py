"""Feedback to the lists: a final review decision -> the outbox (same transaction as the
case change) -> the loopback fake of the exchange whose entry matched, for NCMEC,
StopNCII and ThreatExchange and each verdict; the per-exchange switch; retries and dead
letters that never undo the decision; the list's hash never in the outbox or the audit
log; the manual ``hashguard exchanges feedback`` through the same path. SQLite and
PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hashguard.actions.dispatcher import Dispatcher, dispatcher_from_settings
from hashguard.actions.feedback import (
    FeedbackDeliverer,
    FeedbackRequest,
    feedback_action,
    plan_feedback,
)
from hashguard.audit import verify
from hashguard.banks.exchanges.ncmec import NAMESPACE
from hashguard.banks.exchanges.sync import build_source, seal_credentials, sync_exchange
from hashguard.domain.actions import ActionKind, ActionState, OutboxAction
from hashguard.domain.backoff import Backoff
from hashguard.domain.cases import CaseSource, CaseState, SourceKind
from hashguard.domain.exchanges import FeedbackVerdict
from hashguard.domain.policy import Action, Decision
from hashguard.domain.scans import FileResult, Outcome
from hashguard.domain.signals import Algorithm, FileSignals, PdqHash, PdqMode
from hashguard.keys import MasterKey, generate
from hashguard.matching.matcher import Matcher
from hashguard.plugins import Registry
from hashguard.review import cases as review
from hashguard.review.decide import Verdict, apply_verdict
from hashguard.services import exchanges as service
from hashguard.settings import Settings
from hashguard.store import Store
from hashguard.store.cases import UnknownCase
from hashguard.store.schema import exchanges as exchanges_table
from tests.cli import hashguard
from tests.fakes.ncmec import DEFAULT_REASONS, Failure, FakeEntry, FakeNcmec
from tests.fakes.stopncii import (
    FEEDBACK_KEY,
    FETCH_KEY,
    SUBSCRIPTION_KEY,
    FakeStopNcii,
    made_up_hex,
    record,
)
from tests.fakes.threatexchange import APP_TOKEN, PRIVACY_GROUP, FakeThreatExchange, FakeUpdate

ALICE, BOB = "user:alice", "user:bob"
NCMEC_USER, NCMEC_PASSWORD = "hashguard-test", "made-up-ncmec-password"
FAST = {"retries": 0, "timeout_seconds": 2.0, "requests_per_second": 1000.0}
RNG = random.Random(1313)
NCMEC_PRINTS = {
    "md5": made_up_hex(RNG, 32),
    "sha1": made_up_hex(RNG, 40),
    "pdq": made_up_hex(RNG, 64),
}
STOPNCII_PDQ, STOPNCII_MD5 = made_up_hex(RNG, 64), made_up_hex(RNG, 32)
TX_PDQ, TX_MD5 = made_up_hex(RNG, 64), made_up_hex(RNG, 32)
TX_PDQ_ID, TX_MD5_ID = 7_100_000_001, 7_100_000_002


def _near(value: str, bits: int = 3) -> str:
    """A PDQ hash ``bits`` bits from ``value``: our content's, near the list's."""
    return f"{int(value, 16) ^ ((1 << bits) - 1):064x}"


@dataclass
class Setup:
    """One exchange behind its fake, synced into its bank, and how to reach it."""

    kind: str
    store: Store
    registry: Registry
    key: MasterKey
    fake: Any
    #: the list's own hashes our content matched (must never show)
    list_values: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.kind}-list"

    def sent(self) -> list[Any]:
        if self.kind == "ncmec":
            return list(self.fake.feedback)
        if self.kind == "stopncii":
            return [item for body in self.fake.feedback for item in body["hashFeedbacks"]]
        return list(self.fake.reactions)

    def dispatcher(self, **backoff: timedelta) -> Dispatcher:
        deliverer = FeedbackDeliverer(self.store, self.registry, lambda: self.key)
        return Dispatcher(
            self.store.actions,
            {ActionKind.FEEDBACK: deliverer},
            backoff=Backoff(**backoff)
            if backoff
            else Backoff(
                first=timedelta(0), longest=timedelta(0), give_up_after=timedelta(hours=24)
            ),
        )


def _exchange_settings(kind: str, fake: Any) -> tuple[str, dict[str, Any], dict[str, str]]:
    if kind == "ncmec":
        start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
        settings = {"base_url": fake.url, "start": start, "window_hours": 24 * 7, **FAST}
        return "ncmec", settings, {"username": NCMEC_USER, "password": NCMEC_PASSWORD}
    if kind == "stopncii":
        secrets = {
            "subscription_key": SUBSCRIPTION_KEY,
            "fetch_function_key": FETCH_KEY,
            "feedback_function_key": FEEDBACK_KEY,
        }
        return "stopncii", {"base_url": fake.url, "backoff_seconds": 0.01, **FAST}, secrets
    settings = {"base_url": fake.url, "privacy_group": PRIVACY_GROUP, "backoff_seconds": 0.01}
    return "threatexchange", {**settings, **FAST}, {"app_token": APP_TOKEN}


def _fake(kind: str) -> Any:
    if kind == "ncmec":
        entry = FakeEntry(
            member_id=42,
            entry_id="img-01",
            timestamp=datetime.now(UTC) - timedelta(days=2),
            fingerprints=NCMEC_PRINTS,
        )
        return FakeNcmec([entry], username=NCMEC_USER, password=NCMEC_PASSWORD)
    if kind == "stopncii":
        return FakeStopNcii(
            [
                record("ImagePDQ", STOPNCII_PDQ, timestamp=1_600_000_000),
                record("VideoMD5", STOPNCII_MD5, timestamp=1_600_000_001),
            ]
        )
    return FakeThreatExchange(
        [
            FakeUpdate(
                id=TX_PDQ_ID,
                indicator=TX_PDQ,
                type="HASH_PDQ",
                last_updated=1_650_000_000,
                descriptors=[8_100_000_001],
            ),
            FakeUpdate(
                id=TX_MD5_ID,
                indicator=TX_MD5,
                type="HASH_MD5",
                last_updated=1_650_000_001,
                descriptors=[8_100_000_002],
            ),
        ]
    )


@pytest.fixture
def key(tmp_path: Path) -> MasterKey:
    return MasterKey.load(value=generate(), file=None, default_file=tmp_path / "unused")[0]


@pytest.fixture
def registry() -> Registry:
    return Registry.load(["ncmec", "stopncii", "threatexchange"])


def _setup(
    kind: str, store: Store, registry: Registry, key: MasterKey, fake: Any, **options: Any
) -> Setup:
    adapter, settings, secrets = _exchange_settings(kind, fake)
    setup = Setup(kind=kind, store=store, registry=registry, key=key, fake=fake)
    service.add_exchange(
        store,
        "cli:root",
        setup.name,
        adapter=adapter,
        bank=setup.name,
        settings=settings,
        secrets=secrets,
        key=key,
        **options,
    )
    exchange = store.exchanges.get(setup.name)
    report = sync_exchange(store, exchange, build_source(registry, store, key, exchange))
    assert report.ok, report.error
    return setup


@pytest.fixture(params=["ncmec", "stopncii", "threatexchange"])
def exchange(
    request: pytest.FixtureRequest, store: Store, registry: Registry, key: MasterKey
) -> Iterator[Setup]:
    kind = request.param
    with _fake(kind) as fake:
        yield _setup(kind, store, registry, key, fake, feedback=True, feedback_reason="Not CSAM")


def _signals(setup: Setup) -> FileSignals:
    """Our content: exact hashes and a PDQ hash 3 bits from the list's."""
    n = RNG.getrandbits(64)
    common: dict[str, Any] = {"size": 1000, "sha1": f"{n:040x}", "sha256": f"{n:064x}"}
    if setup.kind == "ncmec":
        md5, sha1, pdq = NCMEC_PRINTS["md5"], NCMEC_PRINTS["sha1"], NCMEC_PRINTS["pdq"]
        common["sha1"] = sha1
        setup.list_values = [md5, sha1, pdq]
    elif setup.kind == "stopncii":
        md5, pdq = STOPNCII_MD5, STOPNCII_PDQ
        setup.list_values = [md5, pdq]
    else:
        md5, pdq = TX_MD5, TX_PDQ
        setup.list_values = [md5, pdq]
    ours = PdqHash(value=_near(pdq), quality=100, mode=PdqMode.REFERENCE)
    return FileSignals(md5=md5, pdq=(ours,), **common)


def _open_case(setup: Setup) -> int:
    store = setup.store
    signals = _signals(setup)
    matches = Matcher.build(store.banks).match(signals)
    assert {m.bank for m in matches} == {setup.name}
    result = FileResult(
        path="/srv/upload.jpg",
        outcome=Outcome.MATCHED,
        signals=signals,
        matches=matches,
        decision=Decision(action=Action.ACT, rule="act: test", bank=setup.name),
    )
    opened = review.open_from_result(store, result, CaseSource(kind=SourceKind.UPLOAD, ref="r1"))
    assert opened is not None
    return opened[0].id


def _decide(store: Store, case_id: int, verdict: Verdict, actor: str) -> CaseState:
    decided = apply_verdict(
        store,
        case_id,
        verdict,
        actor=actor,
        reason="looked at it: a stock photo" if verdict is Verdict.FALSE_POSITIVE else "seen",
        second_confirmation=True,
        allow_bank="vetted",
        endpoints=(),
    )
    return decided.case.state


def _feedback_actions(store: Store) -> list[OutboxAction]:
    return [a for a in store.actions.list(limit=1000) if a.kind is ActionKind.FEEDBACK]


def _audit(store: Store, prefix: str = "exchange.feedback") -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.action, dict(e.details)) for e in store.audit.events() if e.action.startswith(prefix)
    ]


def _everything_recorded(store: Store) -> str:
    """Every outbox payload and error and every audit event, as text."""
    actions = [
        json.dumps(dict(a.payload)) + (a.last_error or "") + a.idempotency_key
        for a in store.actions.list(limit=1000)
    ]
    events = [json.dumps(dict(e.details)) + (e.subject or "") for e in store.audit.events()]
    return "\n".join(actions + events).lower()


EXPECTED_ALGORITHMS = {
    "ncmec": {"md5", "sha1", "pdq"},
    "stopncii": {"md5", "pdq"},
    "threatexchange": {"md5", "pdq"},
}


def _check_sent(setup: Setup, verdict: FeedbackVerdict) -> None:
    sent = setup.sent()
    if setup.kind == "ncmec":
        assert sorted(where for where, _ in sent) == [
            ("42", "img-01", "MD5"),
            ("42", "img-01", "PDQ"),
            ("42", "img-01", "SHA1"),
        ]
        for _, body in sent:
            if verdict is FeedbackVerdict.CONFIRMED:
                assert [c.tag for c in body] == [f"{{{NAMESPACE}}}affirmative"]
            else:  # the exchange's own reason name, not the reviewer's text
                assert body.findtext(f".//{{{NAMESPACE}}}guid") == DEFAULT_REASONS["Not CSAM"]
    elif setup.kind == "stopncii":
        expected = "Blocked" if verdict is FeedbackVerdict.CONFIRMED else "NotBlocked"
        # the list's own hashes go back, not ours (our PDQ hash is 3 bits away)
        assert sorted(item["hashValue"] for item in sent) == sorted([STOPNCII_MD5, STOPNCII_PDQ])
        assert {item["feedbackValue"] for item in sent} == {expected}
        assert all(item["tags"] == [] for item in sent), "the reviewer's reason stays with us"
    else:
        reaction = "SAW_THIS_TOO" if verdict is FeedbackVerdict.CONFIRMED else "DISAGREE_WITH_TAGS"
        assert sorted(sent) == [("8100000001", reaction), ("8100000002", reaction)]


@pytest.mark.parametrize("verdict", [FeedbackVerdict.CONFIRMED, FeedbackVerdict.FALSE_POSITIVE])
def test_a_final_decision_sends_feedback_through_the_outbox(
    exchange: Setup, verdict: FeedbackVerdict
) -> None:
    store = exchange.store
    case_id = _open_case(exchange)
    if verdict is FeedbackVerdict.CONFIRMED:
        assert _decide(store, case_id, Verdict.CONFIRM, ALICE) is CaseState.CONFIRMED_ONCE
        assert _feedback_actions(store) == [], "confirmed_once is not final: nothing queued"
        assert _decide(store, case_id, Verdict.CONFIRM, BOB) is CaseState.CONFIRMED
    else:
        assert _decide(store, case_id, Verdict.FALSE_POSITIVE, ALICE) is CaseState.FALSE_POSITIVE

    queued = _feedback_actions(store)
    algorithms = EXPECTED_ALGORITHMS[exchange.kind]
    assert sorted(a.payload["algorithm"] for a in queued) == sorted(algorithms)
    for action in queued:
        assert action.state is ActionState.PENDING
        assert action.target == exchange.name
        assert action.subject == f"case:{case_id}"
        request = FeedbackRequest.from_json(action.payload)
        assert (request.exchange, request.bank, request.case) == (
            exchange.name,
            exchange.name,
            case_id,
        )
        assert request.verdict is verdict
        if verdict is FeedbackVerdict.FALSE_POSITIVE:
            assert request.reason == "Not CSAM"
    assert exchange.sent() == [], "queued, not sent inline: the decision never waits"
    assert [a for a, _ in _audit(store)] == ["exchange.feedback_queued"] * len(algorithms)

    report = exchange.dispatcher().run_once()
    assert len(report.delivered) == len(algorithms)
    _check_sent(exchange, verdict)
    assert {a.state for a in _feedback_actions(store)} == {ActionState.DELIVERED}
    sent = [d for a, d in _audit(store) if a == "exchange.feedback_sent"]
    assert sorted(d["algorithm"] for d in sent) == sorted(algorithms)
    assert {(d["case"], d["verdict"], d["bank"]) for d in sent} == {
        (case_id, str(verdict), exchange.name)
    }

    # delivered once: another round and the same decision queued again send nothing new
    assert exchange.dispatcher().run_once().handled == 0
    case = store.cases.get(case_id)
    planned = plan_feedback(case, store.exchanges.list(), verdict, reason="again")
    again = [store.actions.enqueue(feedback_action(r)) for r in planned]
    assert sorted(again) == sorted(a.id for a in queued)
    assert exchange.dispatcher().run_once().handled == 0

    recorded = _everything_recorded(store)
    for value in exchange.list_values:
        assert value.lower() not in recorded, "the list's hash is never in the outbox or audit"
    assert verify(store.audit.events(), recorded_head=store.audit.head()).ok


def test_feedback_off_sends_nothing(store: Store, registry: Registry, key: MasterKey) -> None:
    with _fake("stopncii") as fake:
        setup = _setup("stopncii", store, registry, key, fake)  # off: the default
        assert store.exchanges.get(setup.name).feedback is False
        case_id = _open_case(setup)
        _decide(store, case_id, Verdict.CONFIRM, ALICE)
        _decide(store, case_id, Verdict.CONFIRM, BOB)
        assert _feedback_actions(store) == []
        assert _audit(store) == []
        setup.dispatcher().run_once()
        assert setup.sent() == []

        # switched on (audited): the next final decision sends
        service.set_exchange_feedback(store, "cli:root", setup.name, on=True, reason="why")
        assert [a for a, _ in _audit(store, "exchange.feedback_o")] == ["exchange.feedback_on"]
        other = _open_case(setup)
        _decide(store, other, Verdict.FALSE_POSITIVE, ALICE)
        assert len(_feedback_actions(store)) == 2
        setup.dispatcher().run_once()
        assert {item["feedbackValue"] for item in setup.sent()} == {"NotBlocked"}

        service.set_exchange_feedback(store, "cli:root", setup.name, on=False)
        assert _audit(store, "exchange.feedback_o")[-1][0] == "exchange.feedback_off"
        off = store.exchanges.get(setup.name)
        assert (off.feedback, off.feedback_reason) == (False, "why"), "the reason is kept"
        service.set_exchange_feedback(store, "cli:root", setup.name, on=False, reason="")
        assert store.exchanges.get(setup.name).feedback_reason is None


def test_a_failing_exchange_is_retried_then_dead_and_the_decision_stands(
    store: Store, registry: Registry, key: MasterKey
) -> None:
    with _fake("ncmec") as fake:
        setup = _setup("ncmec", store, registry, key, fake, feedback=True)
        case_id = _open_case(setup)
        fake.fail(Failure.SERVER_ERROR)  # NCMEC is down
        _decide(store, case_id, Verdict.CONFIRM, ALICE)
        assert _decide(store, case_id, Verdict.CONFIRM, BOB) is CaseState.CONFIRMED
        created = _feedback_actions(store)[0].created_at

        dispatcher = setup.dispatcher(
            first=timedelta(seconds=1),
            longest=timedelta(seconds=1),
            give_up_after=timedelta(hours=1),
        )
        first = dispatcher.run_once(created + timedelta(minutes=1))
        assert len(first.retried) == 3
        assert not first.delivered
        assert all("answered 500" in (a.last_error or "") for a in _feedback_actions(store))
        final = dispatcher.run_once(created + timedelta(hours=2))
        assert len(final.dead) == 3
        dead = store.actions.dead_letters()
        assert {a.kind for a in dead} == {ActionKind.FEEDBACK}
        assert all("gave up after 2 attempts" in (a.last_error or "") for a in dead)
        assert store.cases.get(case_id).state is CaseState.CONFIRMED, "the decision stands"
        assert fake.feedback == []

        # back up: a dead letter put back by hand goes
        fake.fail(None)
        for action in dead:
            store.actions.retry(action.id, actor="cli:root")
        assert len(dispatcher.run_once().delivered) == 3
        assert len(fake.feedback) == 3


def test_feedback_the_exchange_cannot_take_is_a_dead_letter_at_once(
    store: Store, registry: Registry, key: MasterKey
) -> None:
    """StopNCII without its feedback key: ``FeedbackUnsupported``, dead at once, audited;
    the decision stands."""
    with _fake("stopncii") as fake:
        setup = _setup("stopncii", store, registry, key, fake, feedback=True)
        sealed = seal_credentials(
            key, setup.name, {"subscription_key": SUBSCRIPTION_KEY, "fetch_function_key": FETCH_KEY}
        )
        with store.engine.begin() as conn:  # the feedback key withdrawn
            conn.execute(exchanges_table.update().values(credentials=sealed))
        case_id = _open_case(setup)
        _decide(store, case_id, Verdict.FALSE_POSITIVE, ALICE)
        report = setup.dispatcher().run_once()
        assert len(report.dead) == 2
        assert not report.retried
        dead = store.actions.dead_letters()
        assert all("feedback_function_key" in (a.last_error or "") for a in dead)
        failed = [d for a, d in _audit(store) if a == "exchange.feedback_failed"]
        assert len(failed) == 2
        assert all("feedback_function_key" in d["error"] for d in failed)
        assert setup.sent() == []
        assert store.cases.get(case_id).state is CaseState.FALSE_POSITIVE


def test_an_entry_gone_and_an_exchange_gone_are_dead_letters(
    store: Store, registry: Registry, key: MasterKey
) -> None:
    with _fake("threatexchange") as fake:
        setup = _setup("threatexchange", store, registry, key, fake, feedback=True)
        case_id = _open_case(setup)
        _decide(store, case_id, Verdict.CONFIRM, ALICE)
        _decide(store, case_id, Verdict.CONFIRM, BOB)
        store.banks.remove_entries_by_id(setup.name, [str(TX_PDQ_ID)])
        report = setup.dispatcher().run_once()
        assert (len(report.delivered), len(report.dead)) == (1, 1)
        [dead] = store.actions.dead_letters()
        assert dead.payload["entry_id"] == str(TX_PDQ_ID)
        assert f"no longer holds pdq entry {TX_PDQ_ID}" in (dead.last_error or "")

        other = _open_case(setup)  # the MD5 entry only
        _decide(store, other, Verdict.FALSE_POSITIVE, ALICE)
        service.remove_exchange(store, "cli:root", setup.name)
        report = setup.dispatcher().run_once()
        assert len(report.dead) == 1
        assert "no exchange named" in (store.actions.dead_letters()[0].last_error or "")
        assert fake.reactions == [("8100000002", "SAW_THIS_TOO")]


def test_planning_failure_never_blocks_the_decision(
    store: Store, registry: Registry, key: MasterKey
) -> None:
    """Whatever goes wrong while planning feedback, the decision lands (and the audit
    log says feedback was not queued): here the exchanges' rows cannot be read."""
    with _fake("stopncii") as fake:
        setup = _setup("stopncii", store, registry, key, fake, feedback=True)
        case_id = _open_case(setup)
        with store.engine.begin() as conn:  # a row no exchange can be read from
            conn.execute(exchanges_table.update().values(settings=[1, 2]))
        assert _decide(store, case_id, Verdict.FALSE_POSITIVE, ALICE) is CaseState.FALSE_POSITIVE
        assert _feedback_actions(store) == []
        [(action, details)] = _audit(store)
        assert action == "exchange.feedback_failed"
        assert details["error"] == "TypeError while planning feedback"


def test_a_shared_bank_gets_no_automatic_feedback(
    store: Store, registry: Registry, key: MasterKey
) -> None:
    with _fake("stopncii") as fake:
        setup = _setup("stopncii", store, registry, key, fake, feedback=True)
        adapter, settings, secrets = _exchange_settings("stopncii", fake)
        service.add_exchange(
            store,
            "cli:root",
            "second",
            adapter=adapter,
            bank=setup.name,
            settings=settings,
            secrets=secrets,
            key=key,
            share_bank=True,
            feedback=True,
        )
        case_id = _open_case(setup)
        _decide(store, case_id, Verdict.FALSE_POSITIVE, ALICE)
        assert _feedback_actions(store) == [], "which exchange an entry came from is unknown"


def test_the_dispatcher_from_settings_delivers_feedback(
    store: Store, registry: Registry, key: MasterKey, settings: Settings
) -> None:
    with _fake("threatexchange") as fake:
        setup = _setup("threatexchange", store, registry, key, fake, feedback=True)
        confirmed = _open_case(setup)
        _decide(store, confirmed, Verdict.CONFIRM, ALICE)
        _decide(store, confirmed, Verdict.CONFIRM, BOB)
        dispatcher, webhooks = dispatcher_from_settings(settings, store, registry, key=lambda: key)
        try:
            assert len(dispatcher.run_once().delivered) == 2
        finally:
            webhooks.close()
        assert sorted(fake.reactions) == [
            ("8100000001", "SAW_THIS_TOO"),
            ("8100000002", "SAW_THIS_TOO"),
        ]
        # no master key here: the sealed credentials cannot open, so retried, not dead
        _decide(store, _open_case(setup), Verdict.FALSE_POSITIVE, ALICE)
        dispatcher, webhooks = dispatcher_from_settings(settings, store, registry)
        try:
            report = dispatcher.run_once()
        finally:
            webhooks.close()
        assert len(report.retried) == 2
        pending = [a for a in _feedback_actions(store) if a.state is ActionState.PENDING]
        assert len(pending) == 2
        assert all("master key" in (a.last_error or "") for a in pending)
        assert len(fake.reactions) == 2


def test_manual_feedback_goes_through_the_outbox(
    store: Store, registry: Registry, key: MasterKey
) -> None:
    with _fake("ncmec") as fake:
        setup = _setup("ncmec", store, registry, key, fake)  # feedback off: by hand still works
        case_id = _open_case(setup)
        queued = service.queue_feedback(
            store,
            "cli:root",
            setup.name,
            verdict=FeedbackVerdict.FALSE_POSITIVE,
            reason="wrong classification",
            entry_id="42:img-01",
            algorithm=Algorithm.MD5,
        )
        [(action_id, request)] = queued
        assert request.manual
        assert request.reason == "wrong classification"
        again = service.queue_feedback(
            store,
            "cli:root",
            setup.name,
            verdict=FeedbackVerdict.FALSE_POSITIVE,
            reason="wrong classification",
            entry_id="42:img-01",
            algorithm=Algorithm.MD5,
        )
        assert again[0][0] == action_id, "the same feedback is queued once"
        by_case = service.queue_feedback(
            store, "cli:root", setup.name, verdict=FeedbackVerdict.CONFIRMED, case_id=case_id
        )
        assert {r.algorithm for _, r in by_case} == {Algorithm.MD5, Algorithm.SHA1, Algorithm.PDQ}
        queued_events = [d for a, d in _audit(store) if a == "exchange.feedback_queued"]
        assert len(queued_events) == 5
        assert all(d["manual"] for d in queued_events)
        with pytest.raises(service.NothingToSend):
            service.queue_feedback(
                store,
                "cli:root",
                setup.name,
                verdict=FeedbackVerdict.CONFIRMED,
                entry_id="42:no-such",
                algorithm=Algorithm.MD5,
            )
        with pytest.raises(UnknownCase):
            service.queue_feedback(
                store, "cli:root", setup.name, verdict=FeedbackVerdict.CONFIRMED, case_id=999
            )
        assert len(setup.dispatcher().run_once().delivered) == 4
        negative = [
            body
            for where, body in fake.feedback
            if body.find(f"{{{NAMESPACE}}}negative") is not None
        ]
        [body] = negative
        assert body.findtext(f".//{{{NAMESPACE}}}guid") == DEFAULT_REASONS["Wrong classification"]
        recorded = _everything_recorded(store)
        assert NCMEC_PRINTS["md5"] not in recorded
        assert NCMEC_PRINTS["pdq"] not in recorded


def test_feedback_commands(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``exchanges add --feedback``, ``feedback-setting``, ``list --json``, and the manual
    ``feedback`` command: queued (audited), then sent by ``actions dispatch --once``."""
    del home
    monkeypatch.setenv("NCMEC_USER", NCMEC_USER)
    monkeypatch.setenv("NCMEC_PASSWORD", NCMEC_PASSWORD)
    with _fake("ncmec") as fake:
        _, settings, _ = _exchange_settings("ncmec", fake)
        hashguard(
            "exchanges", "add", "nc", "--adapter", "ncmec",
            *(arg for k, v in settings.items() for arg in ("--setting", f"{k}={v}")),
            "--credential", "username=env:NCMEC_USER",
            "--credential", "password=env:NCMEC_PASSWORD",
            "--feedback", "--feedback-reason", "Not CSAM",
        )  # fmt: skip
        [listed] = json.loads(hashguard("exchanges", "list", "--json").stdout)
        assert (listed["feedback"], listed["feedback_reason"]) == (True, "Not CSAM")
        off = hashguard("exchanges", "feedback-setting", "nc", "--off")
        assert "feedback off" in off.stderr
        hashguard("exchanges", "sync")

        missing = hashguard("exchanges", "feedback", "nc", "--verdict", "confirmed", check=None)
        assert missing.returncode != 0
        assert "--entry-id" in missing.stderr
        by_hand = ("exchanges", "feedback", "nc", "--verdict", "false_positive",
                   "--entry-id", "42:img-01", "--algorithm", "sha1")  # fmt: skip
        queued = hashguard(*by_hand)
        assert "action 1 queued" in queued.stderr
        assert fake.feedback == [], "queued, not sent"
        sent = json.loads(hashguard("actions", "dispatch", "--once").stdout)
        assert sent["delivered"] == 1, hashguard("actions", "list", "--json").stdout
        [(where, body)] = fake.feedback
        assert where == ("42", "img-01", "SHA1")
        assert body.findtext(f".//{{{NAMESPACE}}}guid") == DEFAULT_REASONS["Not CSAM"]
        assert "queued before (delivered)" in hashguard(*by_hand).stderr
        events = [
            json.loads(line)
            for line in hashguard("audit", "list", "--json").stdout.splitlines()
            if line.strip()
        ]
        actions = [e["action"] for e in events if e["action"].startswith("exchange.feedback")]
        assert actions == [
            "exchange.feedback_off",
            "exchange.feedback_queued",
            "exchange.feedback_sent",
            "exchange.feedback_queued",
        ]
        assert NCMEC_PRINTS["sha1"] not in json.dumps(events).lower()


def test_feedback_commits_with_the_case_change_only(
    store: Store, registry: Registry, key: MasterKey
) -> None:
    """Queued in the case change's transaction: a decision refused as stale queues none."""
    with _fake("stopncii") as fake:
        setup = _setup("stopncii", store, registry, key, fake, feedback=True)
        case_id = _open_case(setup)
        seen = store.cases.get(case_id).version
        review.assign(store, case_id, "carol", actor=BOB)  # the case changes meanwhile
        with pytest.raises(review.StaleCase):
            review.mark_false_positive(
                store, case_id, actor=ALICE, reason="r", allow_bank="vetted", version=seen
            )
        assert _feedback_actions(store) == []
        assert _audit(store) == []
        review.mark_false_positive(store, case_id, actor=ALICE, reason="r", allow_bank="vetted")
        assert len(_feedback_actions(store)) == 2
