"""Reports to the NCMEC CyberTipline: the sink's contract against a loopback fake, XSD
validation of every document, reference hashes only, confirmed cases only, and the
persisted state machine resumed after a stop between any two steps (and a real kill -9)
— on SQLite and PostgreSQL, with generated benign images."""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from pydantic import SecretStr

from hashguard.demo.clips import benign_clip
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import ContentRef
from hashguard.domain.reports import FileHash, ReportDraft, Reporter, ReportFile, SinkOutcome
from hashguard.domain.reports import ReportState as S
from hashguard.domain.signals import Algorithm, PdqMode
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.plugins import GROUP, AdapterKind, Registry
from hashguard.reports import service
from hashguard.reports.base import InvalidReport
from hashguard.reports.documents import ReportKeys
from hashguard.reports.machine import RetractRefused, Runner, report_backoff
from hashguard.reports.ncmec import CyberTiplineSink, map_code
from hashguard.review import cases as review
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import Upload
from hashguard.store import Store, open_store
from hashguard.testing import ReportSinkContract
from tests.fakes.cybertipline import XSD, FakeCyberTipline, schema

REPORTER = Reporter(
    first_name="Test",
    last_name="Reporter",
    email="trust-safety@example.test",
    company_template="Example ESP. Legal process: legal@example.test.",
    legal_url="https://example.test/legal",
    platform="ExampleHost Files",
)
#: a large textured JPEG: the scan's default (fast) PDQ hash differs from the reference one
IMAGE = encode(generate(Kind.PHOTO, 1301, 1024, 768))
T0 = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
POINT = EntryPoint(
    name="cybertipline", value="hashguard.reports.ncmec:CyberTiplineSink", group=GROUP
)


def _sink(fake: FakeCyberTipline, *, password: str = "esp-pass") -> CyberTiplineSink:
    return CyberTiplineSink.configure(
        {"test_url": fake.base_url, "schema_file": str(XSD), "requests_per_second": 1000},
        {"username": SecretStr("esp-user"), "password": SecretStr(password)},
    )


@pytest.fixture
def fake() -> Iterator[FakeCyberTipline]:
    with FakeCyberTipline() as server:
        yield server


def _valid(document: bytes) -> bytes:
    errors = list(schema().iter_errors(ET.fromstring(document)))
    assert not errors, errors[0]
    return document


# -- the contract ----------------------------------------------------------------------


class TestCyberTiplineContract(ReportSinkContract):
    @pytest.fixture(autouse=True)
    def _server(self, fake: FakeCyberTipline) -> None:
        self.fake = fake

    def sink(self, behaviour: str) -> CyberTiplineSink:
        self.fake.down = behaviour == "down"
        return _sink(self.fake, password="wrong" if behaviour == "unauthorized" else "esp-pass")

    def sample(self) -> bytes:
        return IMAGE

    def draft(self) -> ReportDraft:
        md5 = hashlib.md5(IMAGE).hexdigest()
        return ReportDraft(
            case_id=1,
            incident_at=T0,
            reporter=REPORTER,
            files=(
                ReportFile(
                    evidence_id="x",
                    name="case-1.jpg",
                    md5=md5,
                    hashes=(FileHash(kind="MD5", value=md5), FileHash(kind="PDQ", value="0" * 64)),
                    viewed=False,
                ),
            ),
            url="https://files.example.test/u/abc123",
            uploader_id="user-0001",
            additional_info="TEST REPORT",
        )


def test_the_sink_loads_through_the_registry() -> None:
    registry = Registry.load(points=[POINT])
    assert registry.get("cybertipline", AdapterKind.REPORT_SINK) is CyberTiplineSink


def test_response_codes_map_as_documented() -> None:
    assert map_code(0, "submit") is SinkOutcome.OK
    for code in (1000, 1100, 1110, 1111, 1300):
        assert map_code(code, "upload") is SinkOutcome.RETRYABLE
    for code in (1210, 2000, 3000, 3100, 3300, 4000, 4100, 4110, 4200, 9999):
        assert map_code(code, "submit") is SinkOutcome.PERMANENT
    assert map_code(5001, "finish") is SinkOutcome.EXPIRED
    assert map_code(5102, "finish") is SinkOutcome.ALREADY_DONE
    assert map_code(5102, "upload") is SinkOutcome.PERMANENT
    assert map_code(5101, "retract") is SinkOutcome.ALREADY_DONE


def test_nothing_unvalidated_is_built_or_sent(fake: FakeCyberTipline) -> None:
    draft = TestCyberTiplineContract().draft()
    unvalidated = CyberTiplineSink.configure(
        {"test_url": fake.base_url}, {"username": SecretStr("u"), "password": SecretStr("p")}
    )
    with pytest.raises(InvalidReport, match="no CyberTipline schema"):
        unvalidated.report_document(draft)
    sink = _sink(fake)
    _valid(sink.report_document(draft))
    # NCMEC's reportId is an xs:long: the schema refuses anything else
    with pytest.raises(InvalidReport, match="schema"):
        sink.file_document("not-a-number", "f", draft.files[0])
    assert fake.calls == []


# -- a world with a confirmed case ----------------------------------------------------------


@dataclass
class World:
    store: Store
    vault: Vault
    key: MasterKey
    fake: FakeCyberTipline
    now: list[datetime]

    def clock(self) -> datetime:
        return self.now[0]

    def keys(self) -> ReportKeys:
        return ReportKeys(self.store.reports, self.key)

    def read(self, evidence_id: str) -> bytes:
        return self.vault.get(evidence_id, actor="system:reports", reason="report")[0]

    def runner(self, checkpoint: Callable[[str], None] | None = None, **kw: Any) -> Runner:
        extra: dict[str, Any] = {"checkpoint": checkpoint} if checkpoint else {}
        return Runner(
            reports=self.store.reports,
            sink=_sink(self.fake),
            keys=self.keys(),
            evidence=self.read,
            clock=self.clock,
            **extra,
            **kw,
        )

    def draft(self, case_id: int) -> int:
        report, _ = service.draft(
            self.store,
            _sink(self.fake),
            self.keys(),
            case_id,
            data=self.read,
            limits=HashOptions(max_pixels=50_000_000),
            actor="cli:lead",
            at=self.clock(),
        )
        return report.id


def _case(store: Store, vault: Vault, data: bytes, name: str) -> int:
    signals = hash_data(data, HashOptions(max_pixels=50_000_000)).signals
    assert signals is not None
    store.banks.add_entries("known", [BankEntry(algorithm=Algorithm.MD5, value=signals.md5)])
    matcher = Matcher.build(store.banks)
    pipeline = Pipeline(
        store=store,
        actor="system:test",
        policies=lambda: policies_of(matcher.banks),
        vault=lambda: vault,
        endpoints=(),
        quarantine_local=True,
    )
    output = hash_data(data, HashOptions(max_pixels=50_000_000))
    assert output.signals is not None
    pipeline.process(
        "upload",
        output,
        matcher.match(output.signals),
        Upload(
            data=data,
            request_id=name,
            content_ref=ContentRef(
                content_id=name, uploader_id="user-0001", url=f"https://files.example.test/u/{name}"
            ),
            uploader_ip=None,
        ),
    )
    (case,) = [c for c in store.cases.list() if c.content.content_id == name]
    return case.id


@pytest.fixture
def world(store: Store, tmp_path: Path, fake: FakeCyberTipline) -> World:
    store.banks.create("known")
    key = MasterKey(secrets.token_bytes(32))
    vault = Vault(store.evidence, key, tmp_path / "evidence")
    service.change_settings(
        store,
        lambda: key,
        reporter={k: getattr(REPORTER, k) for k in service.REPORTER_FIELDS},
        sink_settings={},
        secrets={},
        actor="cli:lead",
        at=T0,
    )
    return World(store=store, vault=vault, key=key, fake=fake, now=[T0])


def _confirmed(world: World, name: str = "a", data: bytes = IMAGE) -> int:
    case_id = _case(world.store, world.vault, data, name)
    for who in ("user:alice", "user:bob"):
        review.confirm(world.store, case_id, actor=who, reason="seen", second_confirmation=True)
    return case_id


def test_a_confirmed_case_is_reported_end_to_end(world: World) -> None:
    case_id = _confirmed(world)
    report_id = world.draft(case_id)
    assert world.fake.calls == [], "a draft sends nothing"
    report = world.runner().run(report_id)
    assert report.state is S.FINISHED, world.store.reports.steps(report_id)
    (sent,) = world.fake.finished()
    assert report.remote_id == str(sent.id)
    assert list(sent.files.values()) == [IMAGE]
    assert report.receipt == tuple(sent.files)
    _valid(sent.document)
    for details in sent.details.values():
        _valid(details)
    # every document and answer is kept, sealed, and opens again
    opened = world.keys().opened(report)
    assert opened[0].request == sent.document
    assert any(s.response and b"reportDoneResponse" in s.response for s in opened)
    actions = [e.action for e in world.store.audit.events() if e.action.startswith("report.")]
    assert actions == [
        "report.settings_changed",
        "report.drafted",
        "report.submitted",
        "report.file_uploaded",
        "report.file_described",
        "report.finished",
    ]
    # drafting or running again never makes a second report
    assert world.draft(case_id) == report_id
    assert world.runner().run(report_id).state is S.FINISHED
    assert len(world.fake.reports) == 1


def test_a_report_holds_reference_hashes_only(world: World) -> None:
    case = world.store.cases.get(_confirmed(world))
    assert case.signals is not None
    assert {p.mode for p in case.signals.pdq} == {PdqMode.FAST}, "the scan hashed fast"
    world.runner().run(world.draft(case.id))
    (sent,) = world.fake.finished()
    (details,) = sent.details.values()
    tree = ET.fromstring(details)
    pdq = [p.findtext("value") for p in tree.iter("nameValuePair") if p.findtext("name") == "PDQ"]
    reference = hash_data(IMAGE, HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE))
    assert reference.signals is not None
    assert pdq == [p.value for p in reference.signals.pdq]
    assert pdq
    assert not {p.value for p in case.signals.pdq} & set(pdq), "no fast hash was sent"
    hashes = {h.get("hashType"): h.text for h in tree.iter("originalFileHash")}
    assert hashes == {
        "MD5": case.signals.md5,
        "SHA1": case.signals.sha1,
        "SHA256": case.signals.sha256,
    }
    assert tree.findtext("fileViewedByEsp") == "false"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return benign_clip(tmp_path_factory.mktemp("clip") / "c.mp4", 1303, seconds=3).read_bytes()


def test_a_video_case_keeps_its_evidence_and_reports_its_exact_hashes(
    world: World, clip: bytes
) -> None:
    """A video is kept like an image (its bytes in the vault, its vPDQ frames in the
    evidence context) and its report carries the file's MD5/SHA-1/SHA-256 only: the
    XSD names no video hash (see reports.service.file_of)."""
    case = world.store.cases.get(_confirmed(world, "video", data=clip))
    assert case.signals is not None
    assert case.signals.video is not None
    assert case.evidence_id is not None
    data, context = world.vault.get(case.evidence_id, actor="system:test", reason="test")
    assert data == clip
    assert len(context["hashes"]["vpdq"]) == len(case.signals.vpdq) == 3
    assert context["video"]["codec"] == "mpeg4"
    world.runner().run(world.draft(case.id))
    (sent,) = world.fake.finished()
    assert list(sent.files.values()) == [clip]
    (details,) = sent.details.values()
    _valid(details)
    tree = ET.fromstring(details)
    assert tree.findtext("fileName") == f"case-{case.id}.mp4"
    hashes = {h.get("hashType"): h.text for h in tree.iter("originalFileHash")}
    assert hashes == {
        "MD5": hashlib.md5(clip).hexdigest(),
        "SHA1": hashlib.sha1(clip).hexdigest(),
        "SHA256": hashlib.sha256(clip).hexdigest(),
    }
    assert list(tree.iter("nameValuePair")) == []


def test_a_reveal_makes_the_file_viewed(world: World) -> None:
    case_id = _confirmed(world)
    world.store.audit.append("user:alice", AuditAction.CONTENT_REVEALED, f"case:{case_id}", {})
    world.runner().run(world.draft(case_id))
    (sent,) = world.fake.finished()
    (details,) = sent.details.values()
    assert ET.fromstring(details).findtext("fileViewedByEsp") == "true"


def test_only_a_confirmed_case_is_reported(world: World) -> None:
    case_id = _case(world.store, world.vault, IMAGE, "a")
    with pytest.raises(service.ReportRefused, match="only confirmed"):
        world.draft(case_id)
    review.confirm(
        world.store, case_id, actor="user:alice", reason="seen", second_confirmation=True
    )
    with pytest.raises(service.ReportRefused, match="confirmed_once"):
        world.draft(case_id)
    assert world.store.reports.list() == []


def test_ncmec_down_for_an_hour_retries_then_succeeds(world: World) -> None:
    report_id = world.draft(_confirmed(world))
    world.fake.down = True
    runner = world.runner(backoff=replace(report_backoff(), first=timedelta(minutes=5)))
    report = runner.run(report_id)
    while world.clock() < T0 + timedelta(hours=1):
        assert report.state is S.DRAFT
        assert report.next_attempt_at is not None
        world.now[0] = report.next_attempt_at
        report = runner.run(report_id)
    world.fake.down = False
    world.now[0] = report.next_attempt_at or world.clock()
    report = runner.run(report_id)
    assert report.state is S.FINISHED
    assert report.attempts >= 4
    assert len(world.fake.reports) == 1


def test_retries_spent_and_permanent_refusals_are_the_dead_letter(world: World) -> None:
    first = world.draft(_confirmed(world, "a"))
    world.fake.down = True
    runner = world.runner(backoff=report_backoff(timedelta(hours=2)))
    report = runner.run(first)
    while not report.state.final:
        world.now[0] = report.next_attempt_at or world.clock()
        report = runner.run(first)
    assert report.state is S.FAILED
    assert "retries spent" in (report.last_error or "")
    world.fake.down = False
    second = world.draft(_confirmed(world, "b", encode(generate(Kind.PHOTO, 1302, 320, 240))))
    world.fake.fail_codes = [0, 4200]  # the upload is refused as a malformed file
    failed = runner.run(second)
    assert failed.state is S.FAILED
    assert world.store.reports.list(state=S.FAILED) == [report, failed]


def test_an_expired_report_is_opened_again(world: World) -> None:
    report_id = world.draft(_confirmed(world))
    stops: list[str] = []

    def expire_after_upload(step: str) -> None:
        if step == "recorded:upload" and not stops:
            stops.append(step)
            world.fake.reports.clear()  # NCMEC cancelled the unfinished report

    report = world.runner(expire_after_upload).run(report_id)
    assert report.state is S.FINISHED
    assert [s.step for s in world.store.reports.steps(report_id)].count("restart") == 1
    (sent,) = world.fake.finished()
    assert list(sent.files.values()) == [IMAGE]


def test_retract_a_report_not_finished(world: World) -> None:
    report_id = world.draft(_confirmed(world))

    def stop(step: str) -> None:
        if step == "recorded:submit":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        world.runner(stop).run(report_id)
    retracted = world.runner().retract(report_id, actor="cli:lead")
    assert retracted.state is S.RETRACTED
    (held,) = world.fake.reports.values()
    assert held.state == "retracted"


# -- stopped between any two steps, then resumed ------------------------------------------

STOPS = [
    "intent:submit",
    "answered:submit",
    "recorded:submit",
    "intent:upload:1",
    "answered:upload:1",
    "recorded:upload",
    "recorded:uploaded",
    "intent:fileinfo:1",
    "answered:fileinfo:1",
    "recorded:fileinfo",
    "recorded:described",
    "intent:finish",
    "answered:finish",
]


@pytest.mark.parametrize("stop", STOPS)
def test_stopped_at_any_step_then_resumed_one_report_every_file_once(
    world: World, stop: str
) -> None:
    report_id = world.draft(_confirmed(world))

    def crash(step: str) -> None:
        if step == stop:
            raise SystemExit(f"stopped at {step}")

    with pytest.raises(SystemExit):
        world.runner(crash).run(report_id)
    world.now[0] += timedelta(minutes=11)  # the dead process's lease runs out
    report = world.runner().run(report_id)
    assert report.state is S.FINISHED, world.store.reports.steps(report_id)
    (sent,) = world.fake.finished()
    assert list(sent.files.values()) == [IMAGE]
    assert report.remote_id == str(sent.id)
    assert [r.state for r in world.fake.reports.values()].count("finished") == 1


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import UTC, datetime
    from pydantic import SecretStr
    from hashguard.keys import MasterKey
    from hashguard.evidence.vault import Vault
    from hashguard.reports.documents import ReportKeys
    from hashguard.reports.machine import Runner
    from hashguard.reports.ncmec import CyberTiplineSink
    from hashguard.store import open_store
    url, blob_dir, key, base, xsd, report_id, stop = sys.argv[1:]
    store = open_store(url, migrate=False)
    master = MasterKey(bytes.fromhex(key))
    vault = Vault(store.evidence, master, __import__("pathlib").Path(blob_dir))
    sink = CyberTiplineSink.configure(
        {"test_url": base, "schema_file": xsd, "requests_per_second": 1000},
        {"username": SecretStr("esp-user"), "password": SecretStr("esp-pass")})
    def checkpoint(step):
        if step == stop:
            os.kill(os.getpid(), signal.SIGKILL)
    Runner(reports=store.reports, sink=sink, keys=ReportKeys(store.reports, master),
           evidence=lambda i: vault.get(i, actor="system:reports")[0],
           clock=lambda: datetime.now(UTC), checkpoint=checkpoint).run(int(report_id))
    """
)


@pytest.mark.parametrize("stop", ["answered:submit", "answered:upload:1", "answered:finish"])
def test_a_process_killed_9_mid_call_resumes_to_one_report(
    sqlite_store: Store, tmp_path: Path, fake: FakeCyberTipline, stop: str
) -> None:
    raw = secrets.token_bytes(32)
    key = MasterKey(raw)
    sqlite_store.banks.create("known")
    vault = Vault(sqlite_store.evidence, key, tmp_path / "evidence")
    service.change_settings(
        sqlite_store,
        lambda: key,
        reporter={k: getattr(REPORTER, k) for k in service.REPORTER_FIELDS},
        sink_settings={},
        secrets={},
        actor="cli:lead",
        at=datetime.now(UTC),
    )
    w = World(store=sqlite_store, vault=vault, key=key, fake=fake, now=[datetime.now(UTC)])
    report_id = w.draft(_confirmed(w))
    url = str(sqlite_store.engine.url)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            url,
            str(tmp_path / "evidence"),
            raw.hex(),
            fake.base_url,
            str(XSD),
            str(report_id),
            stop,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert sqlite_store.reports.get(report_id).intent is not None
    w.now[0] = datetime.now(UTC) + timedelta(minutes=11)
    report = w.runner().run(report_id)
    assert report.state is S.FINISHED, sqlite_store.reports.steps(report_id)
    (sent,) = fake.finished()
    assert list(sent.files.values()) == [IMAGE]


def test_store_round_trip_on_both_engines(world: World) -> None:
    report_id = world.draft(_confirmed(world))
    again = open_store(
        str(world.store.engine.url.render_as_string(hide_password=False)), migrate=False
    )
    try:
        report = again.reports.get(report_id)
        assert report.state is S.DRAFT
        (file,) = report.files
        assert file.file.md5 == hashlib.md5(IMAGE).hexdigest()
        assert again.reports.due(T0) == [report_id]
        assert again.reports.claim(report_id, "one", now=T0, until=T0 + timedelta(minutes=1))
        assert not again.reports.claim(report_id, "two", now=T0, until=T0 + timedelta(minutes=1))
    finally:
        again.close()


def test_cli_settings_list_and_show(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cli import hashguard  # noqa: PLC0415

    monkeypatch.setenv("NCMEC_PW", "s3cret-value")
    done = hashguard(
        "reports", "settings", "--first-name", "Test", "--last-name", "Reporter",
        "--email", "trust-safety@example.test", "--username", "env:NCMEC_PW",
        "--password", "env:NCMEC_PW", "--json",
    )  # fmt: skip
    assert "s3cret-value" not in done.stdout + done.stderr
    import json  # noqa: PLC0415

    shown = json.loads(done.stdout)
    assert shown["reporter"]["first_name"] == "Test"
    assert shown["credentials"] == ["password", "username"]
    assert json.loads(hashguard("reports", "list", "--state", "failed", "--json").stdout) == []
    assert "no report #5" in hashguard("reports", "show", "5", check=2).stderr
    assert "state is one of" in hashguard("reports", "list", "--state", "bogus", check=2).stderr


def test_an_md5_that_is_not_ours_opens_the_report_again(world: World) -> None:
    report_id = world.draft(_confirmed(world))
    world.fake.wrong_md5 = 1
    report = world.runner().run(report_id)
    assert report.state is S.FINISHED
    restarts = [s for s in world.store.reports.steps(report_id) if s.step == "restart"]
    assert len(restarts) == 1
    assert "MD5" in restarts[0].detail
    (sent,) = world.fake.finished()
    assert list(sent.files.values()) == [IMAGE]
    assert [r.state for r in world.fake.reports.values()] == ["retracted", "finished"]


@pytest.mark.parametrize("stop", ["intent:retract", "answered:retract"])
def test_a_retraction_interrupted_is_completed_never_undone(world: World, stop: str) -> None:
    report_id = world.draft(_confirmed(world))

    def after_submit(step: str) -> None:
        if step == "recorded:submit":
            raise SystemExit(step)

    with pytest.raises(SystemExit):
        world.runner(after_submit).run(report_id)

    def crash(step: str) -> None:
        if step == stop:
            raise SystemExit(step)

    world.now[0] += timedelta(minutes=11)
    with pytest.raises(SystemExit):
        world.runner(crash).retract(report_id, actor="cli:lead")
    world.now[0] += timedelta(minutes=11)
    report = world.runner().run(report_id)
    assert report.state is S.RETRACTED
    assert world.fake.finished() == []
    (held,) = world.fake.reports.values()
    assert held.state == "retracted"


def test_a_refused_retraction_is_kept_asked_for(world: World) -> None:
    report_id = world.draft(_confirmed(world))

    def after_submit(step: str) -> None:
        if step == "recorded:submit":
            raise SystemExit(step)

    with pytest.raises(SystemExit):
        world.runner(after_submit).run(report_id)
    world.now[0] += timedelta(minutes=11)
    world.fake.down = True
    with pytest.raises(RetractRefused):
        world.runner().retract(report_id, actor="cli:lead")
    assert world.store.reports.get(report_id).intent == "retract"
    world.fake.down = False
    assert world.runner().run(report_id).state is S.RETRACTED
    assert world.fake.finished() == []


def _with_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses find the ``cybertipline`` entry point: from the installed metadata
    once ``pip install -e .`` ran with this pyproject, else from a one-file shim."""
    from importlib.metadata import entry_points  # noqa: PLC0415

    if entry_points(group=GROUP, name="cybertipline"):
        return
    info = tmp_path / "shim" / "hashguard_reports_shim-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: hashguard-reports-shim\nVersion: 0\n"
    )
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{POINT.name} = {POINT.value}\n")
    paths = [str(info.parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def test_cli_drafts_submits_shows_and_lists(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeCyberTipline
) -> None:
    import json  # noqa: PLC0415

    from hashguard.evidence import open_vault  # noqa: PLC0415
    from hashguard.keys import master_key_for  # noqa: PLC0415
    from hashguard.settings import Settings  # noqa: PLC0415
    from tests.cli import hashguard  # noqa: PLC0415

    _with_entry_point(tmp_path, monkeypatch)
    settings = Settings()
    store = open_store(settings.resolved_database_url)
    try:
        store.banks.create("known")
        key = master_key_for(settings)[0]
        w = World(
            store=store, vault=open_vault(settings, store, key), key=key, fake=fake,
            now=[datetime.now(UTC)],
        )  # fmt: skip
        case_id = _confirmed(w)
    finally:
        store.close()
    monkeypatch.setenv("NCMEC_USER", "esp-user")
    monkeypatch.setenv("NCMEC_PW", "esp-pass")
    hashguard(
        "reports", "settings", "--first-name", "Test", "--last-name", "Reporter",
        "--email", "trust-safety@example.test", "--platform", "ExampleHost Files",
        "--test-url", fake.base_url, "--schema-file", str(XSD),
        "--username", "env:NCMEC_USER", "--password", "env:NCMEC_PW",
    )  # fmt: skip
    drafted = hashguard("reports", "draft", str(case_id))
    _valid(drafted.stdout.encode())
    assert fake.calls == []
    submitted = json.loads(hashguard("reports", "submit", str(case_id)).stdout)
    assert submitted["state"] == "finished"
    (sent,) = fake.finished()
    assert submitted["report_id"] == str(sent.id)
    shown = json.loads(hashguard("reports", "show", str(submitted["id"])).stdout)
    assert [s["step"] for s in shown["steps"]] == [
        "draft", "submit", "upload", "uploaded", "fileinfo", "described", "finish",
    ]  # fmt: skip
    listed = json.loads(hashguard("reports", "list", "--state", "finished", "--json").stdout)
    assert [r["id"] for r in listed] == [submitted["id"]]
    refused = hashguard("reports", "retract", str(submitted["id"]), check=2)
    assert "finished: it cannot be retracted" in refused.stderr
    assert "esp-pass" not in drafted.stderr + refused.stderr


def test_resume_runs_the_reports_that_are_due(world: World) -> None:
    first = world.draft(_confirmed(world, "a"))
    second = world.draft(_confirmed(world, "b", encode(generate(Kind.PHOTO, 1303, 320, 240))))
    world.fake.down = True
    runner = world.runner()
    assert {r.state for r in runner.resume_due()} == {S.DRAFT}
    assert runner.resume_due() == [], "nothing is due before the backoff ends"
    world.fake.down = False
    world.now[0] += timedelta(minutes=5)
    assert [(r.id, r.state) for r in runner.resume_due()] == [
        (first, S.FINISHED),
        (second, S.FINISHED),
    ]
