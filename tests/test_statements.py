"""Statements of reasons (DSA Art. 17) and their filing in the Transparency Database
(Art. 24(5)): issued where decisions happen (a reviewer's final decision, the
pipeline's automatic act), told to the platform (webhook, API) and the notifier, and
filed in batches against the loopback fake Database — on SQLite and PostgreSQL, the
clock injected everywhere."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.demo.receiver import new_secret
from hashguard.domain.actions import EventType, WebhookEndpoint
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import Case, CaseSource, CaseState, ContentRef, SourceKind
from hashguard.domain.policy import Action, Decision
from hashguard.domain.scans import FileResult
from hashguard.domain.signals import Algorithm
from hashguard.domain.statements import (
    EU_EEA,
    AutomatedDecision,
    ContentType,
    FilingState,
    SourceType,
    StatementConfig,
    StatementKind,
    Visibility,
)
from hashguard.domain.tokens import Scope
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.jobs.builtin import STATEMENTS, builtin_jobs
from hashguard.jobs.runner import JobRunner
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.plugins import GROUP, AdapterKind, Registry
from hashguard.review.decide import Verdict, apply_verdict
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import Upload
from hashguard.settings import Settings
from hashguard.statements import service
from hashguard.statements.filing import LEASE, Filer
from hashguard.statements.reasons import build, source_type, uploader_text
from hashguard.statements.tdb import TransparencyDatabaseSink, tdb_document
from hashguard.store import Store
from tests.fakes.tdb import FakeTransparencyDatabase, problems

T0 = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
POINT = EntryPoint(
    name="tdb", value="hashguard.statements.tdb:TransparencyDatabaseSink", group=GROUP
)
SCHEMA = Path(
    os.environ.get("HG_TEST_TDB_SCHEMA")
    or Path(__file__).resolve().parents[2] / "shared/reference/dsa/tdb_schema.json"
)
#: what the platform said of the uploader: none of it may reach a statement
UPLOADER = ContentRef(
    content_id="c-alice-0001",
    uploader_id="alice.smith",
    url="https://files.example.test/u/alice.smith/holiday.jpg",
)
PERSONAL = re.compile(r"alice|@|\b\d{1,3}(?:\.\d{1,3}){3}\b|/u/|https?://files", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True, slots=True)
class NoticeUpload(Upload):
    """Content a notice pointed at, as the notices' resolution hands it to the pipeline."""

    notice: str = "1"

    def case_source(self, result: FileResult) -> CaseSource:
        return CaseSource(kind=SourceKind.NOTICE, ref=self.notice)

    def action_key(self, result: FileResult) -> str:
        return f"notice:{self.notice}"


@dataclass
class World:
    store: Store
    key: MasterKey
    fake: FakeTransparencyDatabase
    now: list[datetime]
    endpoint: WebhookEndpoint
    notifiers: dict[str, str] = field(default_factory=dict)

    def clock(self) -> datetime:
        return self.now[0]

    def notifier(self, case: Case) -> str | None:
        for source in case.sources:
            if source.kind is SourceKind.NOTICE:
                return self.notifiers.get(source.ref)
        return None

    def configure(self, *, issue: bool = True, tdb: bool = True, token: str | None = None) -> None:
        service.change_settings(
            self.store,
            lambda: self.key,
            statements={"issue": issue, "territorial_scope": ["DE", "LU", "NL"]},
            sink_settings={"sandbox_url": self.fake.base_url, "requests_per_second": 200},
            token=token or self.fake.token,
            actor="cli:lead",
            at=self.clock(),
            tdb=tdb,
        )

    def upload(
        self, name: str, seed: int, *, review: bool = False, source: Upload | None = None
    ) -> Case:
        """The case the upload pipeline opens for a generated benign image (``review``:
        the bank sends exact matches to review instead of acting)."""
        data = encode(generate(Kind.PHOTO, seed, 64, 48))
        output = hash_data(data, HashOptions(max_pixels=50_000_000))
        assert output.signals is not None
        self.store.banks.configure("known", exact_action=Action.REVIEW if review else Action.ACT)
        self.store.banks.add_entries(
            "known", [BankEntry(algorithm=Algorithm.MD5, value=output.signals.md5)]
        )
        matcher = Matcher.build(self.store.banks)
        upload = source or Upload(data=data, request_id=f"req-{name}", content_ref=UPLOADER)
        if source is not None:
            upload = replace(source, data=data)
        done = Pipeline(
            store=self.store,
            actor="system:test",
            policies=lambda: policies_of(matcher.banks),
            endpoints=(self.endpoint,),
            clock=self.clock,
            notifier=self.notifier,
        ).process("upload", output, matcher.match(output.signals), upload)
        assert done.case is not None
        return self.store.cases.get(done.case.id)

    def decide(self, case: Case, verdict: Verdict) -> Case:
        return apply_verdict(
            self.store,
            case.id,
            verdict,
            actor="user:lead",
            reason="looked",
            second_confirmation=False,
            allow_bank="false-positives",
            endpoints=(self.endpoint,),
            notifier=self.notifier,
        ).case

    def webhooks(self, event: EventType) -> list[dict[str, Any]]:
        return [
            dict(a.payload["data"]) for a in self.store.actions.list(limit=1000) if a.event is event
        ]

    def audit(self, action: str) -> list[dict[str, Any]]:
        return [dict(e.details) for e in self.store.audit.events() if e.action == action]

    def filer(self, **kwargs: Any) -> Filer:
        sink = service.open_sink(self.store, Registry.load(points=[POINT]), lambda: self.key)
        return Filer(statements=self.store.statements, sink=sink, clock=self.clock, **kwargs)

    def many(self, count: int, case: Case) -> list[str]:
        """``count`` statements of automated decisions on ``case`` (distinct sightings)."""
        config = service.config_of(self.store.statements.settings(service.STATEMENTS)[0])
        puids = []
        with self.store.transaction() as writes:
            for i in range(count):
                sor = build(
                    case, config, kind=StatementKind.AUTOMATED, at=self.clock(), notifier=None,
                    key=f"sighting-{i}",
                )  # fmt: skip
                writes.add_statement(sor, uploader_text(sor), at=self.clock())
                puids.append(sor.puid)
        return puids


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTransparencyDatabase]:
    with FakeTransparencyDatabase() as server:
        yield server


@pytest.fixture
def world(store: Store, fake: FakeTransparencyDatabase) -> World:
    fake.stored.clear()
    fake.stores.clear()
    fake.batch_sizes.clear()
    fake.posts = fake.refused_auth = fake.fail_next = 0
    fake.down = False
    store.banks.create("known")
    key = MasterKey(secrets.token_bytes(32))
    endpoint = WebhookEndpoint(name="platform", url="http://127.0.0.1:9/hooks", secret=new_secret())
    return World(store=store, key=key, fake=fake, now=[T0], endpoint=endpoint)


# -- issuing ------------------------------------------------------------------------------


def test_a_confirmation_issues_a_statement_with_its_webhook_and_audit(world: World) -> None:
    world.configure(tdb=False)
    case = world.decide(world.upload("a", 1501, review=True), Verdict.CONFIRM)
    (statement,) = world.store.statements.for_case(case.id)
    sor = statement.reasons
    assert (sor.kind, sor.visibility, sor.content_type) == (
        StatementKind.CONFIRMED, Visibility.REMOVED, ContentType.IMAGE,
    )  # fmt: skip
    assert sor.automated_detection is True
    assert sor.automated_decision is AutomatedDecision.NOT_AUTOMATED
    assert sor.source_type is SourceType.VOLUNTARY
    assert sor.territorial_scope == ("DE", "LU", "NL")
    assert sor.decided_at == case.updated_at
    assert statement.state is FilingState.PENDING
    assert "Article 20" in statement.text
    assert "out-of-court" in statement.text
    (hook,) = world.webhooks(EventType.STATEMENT_ISSUED)
    assert (hook["statement"], hook["case"], hook["puid"]) == (statement.id, case.id, sor.puid)
    assert hook["text"] == statement.text
    assert hook["content_sha256"] == case.content_key
    assert not {"md5", "sha1", "pdq", "content"} & set(hook)
    (issued,) = world.audit("statement.issued")
    assert issued["puid"] == sor.puid
    assert world.webhooks(EventType.NOTICE_DECIDED) == []


def test_the_pipelines_act_issues_an_automated_statement_once_per_sighting(world: World) -> None:
    world.configure(tdb=False)
    case = world.upload("a", 1502)
    (first,) = world.store.statements.for_case(case.id)
    assert first.reasons.kind is StatementKind.AUTOMATED
    assert first.reasons.automated_decision is AutomatedDecision.FULLY
    assert first.reasons.visibility is Visibility.DISABLED
    world.upload("a", 1502)  # the same upload again: the same sighting
    assert len(world.store.statements.for_case(case.id)) == 1
    world.upload("b", 1502)  # the same content uploaded again: another restriction
    statements = world.store.statements.for_case(case.id)
    assert len(statements) == 2
    assert len({s.puid for s in statements}) == 2
    # people confirming content already restricted automatically restrict nothing new
    world.decide(case, Verdict.CONFIRM)
    assert len(world.store.statements.for_case(case.id)) == 2
    assert len(world.webhooks(EventType.STATEMENT_ISSUED)) == 2


def test_statements_off_issue_nothing(world: World) -> None:
    case = world.decide(world.upload("a", 1503, review=True), Verdict.CONFIRM)
    world.upload("b", 1504)
    assert world.store.statements.for_case(case.id) == []
    assert world.store.statements.list() == []
    assert world.webhooks(EventType.STATEMENT_ISSUED) == []


def test_a_notice_gets_its_answer_and_its_source_type(world: World) -> None:
    world.configure(tdb=False)
    world.notifiers.update({"7": "trusted_flagger", "8": "user"})
    flagged = world.upload(
        "a", 1505, review=True, source=NoticeUpload(data=b"", request_id=None,
                                                    content_ref=ContentRef(), notice="7"),
    )  # fmt: skip
    world.decide(flagged, Verdict.CONFIRM)
    (statement,) = world.store.statements.for_case(flagged.id)
    assert statement.reasons.source_type is SourceType.TRUSTED_FLAGGER
    wrong = world.upload(
        "b", 1506, review=True, source=NoticeUpload(data=b"", request_id=None,
                                                    content_ref=ContentRef(), notice="8"),
    )  # fmt: skip
    world.decide(wrong, Verdict.FALSE_POSITIVE)
    assert world.store.statements.for_case(wrong.id) == []
    answers = {a["notice"]: a for a in world.webhooks(EventType.NOTICE_DECIDED)}
    assert answers["7"]["outcome"] == "restricted"
    assert answers["7"]["statement_puid"] == statement.puid
    assert answers["8"]["outcome"] == "not_restricted"
    assert "no action" in answers["8"]["text"]
    assert sorted(a["outcome"] for a in world.audit("notice.decided")) == [
        "not_restricted", "restricted",
    ]  # fmt: skip
    # an automatic act on content a user's notice pointed at: Art. 16 notice, automated
    world.notifiers["9"] = "hotline"
    acted = world.upload(
        "c", 1507, source=NoticeUpload(data=b"", request_id=None, content_ref=ContentRef(),
                                       notice="9"),
    )  # fmt: skip
    (auto,) = world.store.statements.for_case(acted.id)
    assert auto.reasons.source_type is SourceType.ARTICLE_16
    assert auto.reasons.automated_decision is AutomatedDecision.FULLY
    assert {a["notice"] for a in world.webhooks(EventType.NOTICE_DECIDED)} == {"7", "8", "9"}


def test_source_type_from_the_notifier() -> None:
    case = Case(
        id=1, content_key="0" * 64, content=ContentRef(), signals=None, matches=(), remote=(),
        decision=Decision(action=Action.REVIEW, rule="test"), state=CaseState.CONFIRMED,
        assignee=None,
        confirmers=(), created_at=T0, updated_at=T0, version=1,
        sources=(CaseSource(kind=SourceKind.NOTICE, ref="3"),),
    )  # fmt: skip
    assert source_type(case, "trusted_flagger") is SourceType.TRUSTED_FLAGGER
    for kind in ("user", "hotline", "authority", None):
        assert source_type(case, kind) is SourceType.ARTICLE_16
    own = replace(case, sources=(CaseSource(kind=SourceKind.UPLOAD, ref="r"),))
    assert source_type(own, "trusted_flagger") is SourceType.VOLUNTARY


# -- what is sent -------------------------------------------------------------------------


def _documents(world: World) -> list[dict[str, Any]]:
    """A statement of every kind the code builds: confirmed and automated, own
    initiative, Art. 16 and trusted flagger, image and a file of no known type."""
    world.configure(tdb=False)
    world.notifiers.update({"7": "trusted_flagger", "8": "user"})
    confirmed = world.decide(world.upload("a", 1511, review=True), Verdict.CONFIRM)
    acted = world.upload("b", 1512)
    world.upload("c", 1513, source=NoticeUpload(data=b"", request_id=None,
                                                content_ref=UPLOADER, notice="7"))  # fmt: skip
    world.upload("d", 1514, source=NoticeUpload(data=b"", request_id=None,
                                                content_ref=UPLOADER, notice="8"))  # fmt: skip
    config = StatementConfig(
        issue=True, prefix="hgtest", reference_url="https://eur-lex.europa.eu/eli/dir/2011/93/oj"
    )
    assert confirmed.signals is not None
    opaque = replace(confirmed, signals=replace(confirmed.signals, pdq=(), image_format=None))
    extra = build(opaque, config, kind=StatementKind.CONFIRMED, at=T0, notifier=None)
    everything = [s.reasons for s in world.store.statements.list()] + [extra]
    assert {r.source_type for r in everything} >= {
        SourceType.VOLUNTARY, SourceType.ARTICLE_16, SourceType.TRUSTED_FLAGGER,
    }  # fmt: skip
    assert acted.id in {r.case_id for r in everything}
    return [tdb_document(r) for r in everything]


def test_every_statement_follows_the_databases_schema(world: World) -> None:
    documents = _documents(world)
    for document in documents:
        assert problems(document) == {}, document
    if not SCHEMA.is_file():
        pytest.skip(f"the reference schema is not here: {SCHEMA}")
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    for document in documents:
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == [], (document["puid"], errors)
    assert {d["content_type"][0] for d in documents} == {"CONTENT_TYPE_IMAGE", "CONTENT_TYPE_OTHER"}


def test_no_statement_sent_holds_personal_data(world: World) -> None:
    for document in _documents(world):
        text = json.dumps(document)
        assert not PERSONAL.search(text.replace("https://eur-lex.europa.eu", "")), text
        assert "source_identity" not in document
    for statement in world.store.statements.list():
        # the uploader's text does not name them either (the platform knows who they are)
        assert not PERSONAL.search(statement.text)


# -- filing -------------------------------------------------------------------------------


def test_batches_hold_at_most_100(world: World) -> None:
    world.configure()
    case = world.upload("a", 1521)
    puids = world.many(100, case)
    report = world.filer().run()
    assert (report.filed, report.batches, world.fake.batch_sizes) == (101, 2, [100, 1])
    assert set(world.fake.stored) == {
        *puids,
        *(s.puid for s in world.store.statements.for_case(case.id)),
    }
    assert world.store.statements.count_by_state() == {FilingState.FILED: 101}
    assert all(s.tdb_uuid for s in world.store.statements.list())
    assert world.filer().run().batches == 0, "nothing is sent twice"
    filed = world.audit("statement.filed")
    assert sum(len(e["puids"]) for e in filed) == 101


def test_an_existing_puid_is_reconciled_as_filed(world: World) -> None:
    world.configure()
    case = world.upload("a", 1522)
    puids = world.many(3, case)
    world.fake.stored[puids[1]] = {"puid": puids[1]}  # filed before, e.g. by a lost run
    world.fake.stores[puids[1]] = 1
    report = world.filer().run()
    assert (report.filed, report.existing) == (4, 1)
    assert world.fake.batch_sizes == [4, 3]
    assert all(n == 1 for n in world.fake.stores.values())
    assert world.store.statements.count_by_state() == {FilingState.FILED: 4}
    (existing,) = [s for s in world.store.statements.list() if s.puid == puids[1]]
    assert existing.tdb_uuid is None


class Killed(BaseException):
    """The process dies here (kill -9: nothing after it runs)."""


def test_a_kill_between_send_and_checkpoint_sends_nothing_twice(world: World) -> None:
    world.configure()
    case = world.upload("a", 1523)
    world.many(149, case)

    def die(step: str) -> None:
        if step == "sent":
            raise Killed

    with pytest.raises(Killed):
        world.filer(checkpoint=die).run()
    assert world.store.statements.count_by_state() == {
        FilingState.SENDING: 100, FilingState.PENDING: 50,
    }  # fmt: skip
    assert len(world.fake.stored) == 100
    # another process right away: the lost batch is still leased; the rest goes
    assert world.filer().run().filed == 50
    world.now[0] += LEASE + timedelta(seconds=1)
    report = world.filer().run()
    assert (report.filed, report.existing) == (100, 100)
    assert len(world.fake.stored) == 150
    assert set(world.fake.stores.values()) == {1}
    assert world.store.statements.count_by_state() == {FilingState.FILED: 150}


def test_the_database_down_is_retried_and_nothing_is_lost(world: World) -> None:
    world.configure()
    case = world.upload("a", 1524)
    world.many(4, case)
    world.fake.down = True
    report = world.filer().run()
    assert report.filed == 0
    assert report.error
    assert "503" in report.error
    pending = world.store.statements.list(states=[FilingState.PENDING])
    assert len(pending) == 5
    assert {(s.attempts, s.next_attempt_at) for s in pending} == {(1, T0 + timedelta(minutes=1))}
    assert world.filer().run().batches == 0, "not before the backoff"
    world.fake.down = False
    world.fake.fail_next = 1
    world.now[0] += timedelta(minutes=1)
    assert world.filer().run().filed == 0
    world.now[0] += timedelta(minutes=2)
    assert world.filer().run().filed == 5
    assert len(world.audit("statement.retry_scheduled")) == 2


def test_an_invalid_statement_is_the_dead_letter_and_the_rest_filed(world: World) -> None:
    world.configure()
    case = world.upload("a", 1525)
    config = StatementConfig(issue=True, prefix="hgbad", territorial_scope=("XX",))
    bad = build(case, config, kind=StatementKind.CONFIRMED, at=T0, notifier=None)
    with world.store.transaction() as writes:
        writes.add_statement(bad, uploader_text(bad), at=T0)
    report = world.filer().run()
    assert (report.filed, report.failed) == (1, 1)
    (failed,) = world.store.statements.list(states=[FilingState.FAILED])
    assert failed.puid == bad.puid
    assert "territorial_scope" in (failed.last_error or "")
    assert world.audit("statement.refused")


def test_the_token_is_sealed_and_a_wrong_one_loses_nothing(world: World) -> None:
    world.configure(token="not-the-token")
    stored, sealed = world.store.statements.settings(service.SINK)
    assert "not-the-token" not in json.dumps([stored, sealed])
    assert base64.b64decode(sealed["token"])
    world.upload("a", 1526)
    report = world.filer().run()
    assert report.error
    assert "401" in report.error
    assert world.fake.refused_auth == 1
    assert "not-the-token" not in json.dumps(world.audit("statement.retry_scheduled"))
    world.configure(token=world.fake.token)
    world.now[0] += timedelta(hours=1)
    assert world.filer().run().filed == 1


def test_the_job_files_only_when_the_sink_is_on(world: World, home: Path) -> None:
    settings = Settings(home=home, master_key=None)
    runner = JobRunner(
        world.store.leases,
        [j for j in builtin_jobs(settings, world.store, Registry.load(points=[POINT]))
         if j.name == STATEMENTS],
        clock=world.clock,
    )  # fmt: skip
    world.store.leases.ensure(STATEMENTS, at=world.clock())
    world.configure(tdb=False)
    world.upload("a", 1527)
    world.now[0] += timedelta(minutes=2)
    assert runner.run_due()[0] == [STATEMENTS]
    assert world.fake.posts == 0
    assert Registry.load(points=[POINT]).get("tdb", AdapterKind.STATEMENT_SINK) is (
        TransparencyDatabaseSink
    )


# -- the API ------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_case_api_shows_its_statements(world: World, tmp_path: Path) -> None:
    from tests.server import running_server  # noqa: PLC0415

    world.configure(tdb=False)
    case = world.upload("a", 1531)
    url = str(world.store.engine.url)
    settings = Settings(
        home=tmp_path / "home", database_url=url, workers=1, statements_run_minutes=0,  # type: ignore[arg-type]
        reports_run_minutes=0, exchange_sync_minutes=0, retention_run_hours=0,
    )  # fmt: skip
    _, reader = world.store.tokens.create("reader", [Scope.CASES_READ])
    _, scanner = world.store.tokens.create("scanner", [Scope.SCAN])
    with running_server(settings) as base:
        got = httpx.get(f"{base}/v1/cases/{case.id}/statements", headers=_bearer(reader))
        assert got.status_code == 200, got.text
        (shown,) = got.json()["statements"]
        (statement,) = world.store.statements.for_case(case.id)
        assert (shown["id"], shown["text"], shown["state"]) == (
            statement.id,
            statement.text,
            "pending",
        )
        assert shown["automated_decision"] == "AUTOMATED_DECISION_FULLY"
        assert (
            httpx.get(f"{base}/v1/cases/999/statements", headers=_bearer(reader)).status_code == 404
        )
        refused = httpx.get(f"{base}/v1/cases/{case.id}/statements", headers=_bearer(scanner))
        assert refused.status_code == 403


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_territorial_scope_defaults_to_the_eu_and_eea() -> None:
    assert StatementConfig().territorial_scope == EU_EEA
    assert "GR" in EU_EEA
    assert "EL" not in EU_EEA


# -- the command line ---------------------------------------------------------------------


def test_cli_settings_list_show_and_submit(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeTransparencyDatabase,
) -> None:
    """In-process: the ``tdb`` adapter found through the registry (from the installed
    metadata, else a one-file shim on the path)."""
    from importlib.metadata import entry_points  # noqa: PLC0415

    from typer.testing import CliRunner  # noqa: PLC0415

    from hashguard.cli.app import app  # noqa: PLC0415
    from hashguard.keys import master_key_for  # noqa: PLC0415
    from hashguard.store import open_store  # noqa: PLC0415

    if not entry_points(group=GROUP, name="tdb"):
        info = tmp_path / "shim" / "hashguard_tdb_shim-0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: hashguard-tdb-shim\nVersion: 0\n"
        )
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{POINT.name} = {POINT.value}\n")
        monkeypatch.syspath_prepend(str(info.parent))
    fake.stored.clear()
    fake.stores.clear()
    fake.down = False
    monkeypatch.setenv("TDB_TOKEN", fake.token)
    runner = CliRunner()

    def hashguard(*args: str, code: int = 0) -> str:
        done = runner.invoke(app, list(args))
        assert done.exit_code == code, (done.exit_code, done.output)
        return done.output

    settings = Settings()
    store = open_store(settings.resolved_database_url)
    try:
        store.banks.create("known")
        world = World(
            store=store, key=master_key_for(settings)[0], fake=fake, now=[datetime.now(UTC)],
            endpoint=WebhookEndpoint(name="p", url="http://127.0.0.1:9/h", secret=new_secret()),
        )  # fmt: skip
        shown = hashguard(
            "statements", "settings", "--issue", "--legal-ground", "StGB § 184b",
            "--territorial-scope", "de,lu", "--tdb", "--sandbox-url", fake.base_url,
            "--token", "env:TDB_TOKEN", "--json",
        )  # fmt: skip
        assert fake.token not in shown
        assert json.loads(shown.splitlines()[-1])["tdb"]["credentials"] == ["token"]
        case = world.upload("a", 1541)
    finally:
        store.close()
    pending = json.loads(hashguard("statements", "list", "--pending", "--json"))
    assert [(s["case"], s["state"]) for s in pending] == [(case.id, "pending")]
    one = json.loads(hashguard("statements", "show", str(pending[0]["id"])))
    assert one["reasons"]["legal_ground"] == "StGB § 184b"
    assert one["reasons"]["territorial_scope"] == ["DE", "LU"]
    submitted = json.loads(hashguard("statements", "submit").splitlines()[-1])
    assert (submitted["filed"], submitted["states"]) == (1, {"filed": 1})
    assert list(fake.stored) == [pending[0]["puid"]]
    assert json.loads(hashguard("statements", "list", "--pending", "--json")) == []
    assert "no statement #999" in hashguard("statements", "show", "999", code=2)


def test_the_job_issues_a_statement_a_crash_kept_from_being_written(world: World) -> None:
    world.configure(tdb=False)
    case = world.upload("a", 1551, review=True)
    # a process killed between the decision's commit and its statement's transaction
    from hashguard.review import cases as review  # noqa: PLC0415

    review.confirm(
        world.store, case.id, actor="user:lead", reason="seen", second_confirmation=False
    )
    assert world.store.statements.for_case(case.id) == []
    issued = service.issue_missing(world.store, actor="system:statements", endpoints=())
    assert issued == 1
    (statement,) = world.store.statements.for_case(case.id)
    assert statement.reasons.kind is StatementKind.CONFIRMED
    assert service.issue_missing(world.store, actor="system:statements", endpoints=()) == 0


def test_the_notifier_comes_from_the_notices_store_when_there_is_one() -> None:
    """The notices' store is read through ``store.notices`` when the installation has
    one (``notifier_from_store``), without importing it; an anonymous notice has none."""

    @dataclass
    class Notice:
        notifier: Any

    @dataclass
    class Notifier:
        kind: str

    class Notices:
        def get(self, notice_id: int) -> Notice:
            if notice_id == 404:
                raise LookupError(notice_id)
            return Notice(Notifier("trusted_flagger") if notice_id == 1 else None)

    @dataclass
    class WithNotices:
        notices: Notices

    def case_from(ref: str) -> Case:
        return Case(
            id=1, content_key="0" * 64, content=ContentRef(), signals=None, matches=(),
            remote=(), decision=Decision(action=Action.REVIEW, rule="test"),
            state=CaseState.CONFIRMED, assignee=None, confirmers=(), created_at=T0,
            updated_at=T0, version=1, sources=(CaseSource(kind=SourceKind.NOTICE, ref=ref),),
        )  # fmt: skip

    kind = service.notifier_from_store(WithNotices(Notices()))
    assert kind(case_from("1")) == "trusted_flagger"
    assert kind(case_from("2")) is None
    assert kind(case_from("404")) is None
    assert service.notifier_from_store(object())(case_from("1")) is None
