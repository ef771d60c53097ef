"""The reports background job (resuming due reports, auto_report), preservation after a
finished report (evidence held a year from the receipt, ``report.filed`` queued, audited)
and doctor's reports line — on SQLite and PostgreSQL, against the loopback fake
CyberTipline, with the clock injected everywhere."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.demo.receiver import new_secret
from hashguard.doctor import Doctor, Level, check_reports
from hashguard.domain.actions import EventType
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import ContentRef
from hashguard.domain.reports import ReportState
from hashguard.domain.signals import Algorithm
from hashguard.evidence import retention_policy
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.jobs.builtin import REPORTS, builtin_jobs
from hashguard.jobs.runner import JobRunner
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.plugins import GROUP, Registry
from hashguard.reports import service
from hashguard.reports.preservation import PRESERVE_FOR
from hashguard.review import cases as review
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import Upload
from hashguard.settings import Settings, WebhookEndpointSettings
from hashguard.store import Store
from tests.fakes.cybertipline import XSD, FakeCyberTipline

T0 = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
POINT = EntryPoint(
    name="cybertipline", value="hashguard.reports.ncmec:CyberTiplineSink", group=GROUP
)
EVERY = timedelta(minutes=1)


@dataclass
class World:
    store: Store
    fake: FakeCyberTipline
    key: MasterKey
    settings: Settings
    vault: Vault
    now: list[datetime]
    runner: JobRunner | None = None

    def clock(self) -> datetime:
        return self.now[0]

    def configure(self, **values: Any) -> None:
        """The settings ``values`` change, and the job runner made again from them."""
        self.settings = self.settings.model_copy(update=values)
        self.runner = None

    def run_job(self) -> None:
        """Let the reports job's interval pass and run it once, as a worker would."""
        if self.runner is None:
            jobs = builtin_jobs(self.settings, self.store, Registry.load(points=[POINT]))
            self.runner = JobRunner(
                self.store.leases, [j for j in jobs if j.name == REPORTS], clock=self.clock
            )
            self.store.leases.ensure(REPORTS, at=self.clock())
        self.now[0] += EVERY + timedelta(seconds=1)
        completed, _ = self.runner.run_due()
        assert completed == [REPORTS]

    def reporting(self) -> service.Reporting:
        return service.Reporting.open(
            self.settings,
            self.store,
            Registry.load(points=[POINT]),
            lambda: self.key,
            clock=self.clock,
        )

    def case(self, name: str, seed: int) -> int:
        """A case opened by the upload pipeline for a generated benign image."""
        data = encode(generate(Kind.PHOTO, seed, 320, 240))
        output = hash_data(data, HashOptions(max_pixels=50_000_000))
        assert output.signals is not None
        self.store.banks.add_entries(
            "known", [BankEntry(algorithm=Algorithm.MD5, value=output.signals.md5)]
        )
        matcher = Matcher.build(self.store.banks)
        Pipeline(
            store=self.store,
            actor="system:test",
            policies=lambda: policies_of(matcher.banks),
            vault=lambda: self.vault,
            endpoints=(),
            quarantine_local=False,
        ).process(
            "upload",
            output,
            matcher.match(output.signals),
            Upload(
                data=data,
                request_id=name,
                content_ref=ContentRef(content_id=name, uploader_id="user-0001"),
                uploader_ip=None,
            ),
        )
        (case,) = [c for c in self.store.cases.list() if c.content.content_id == name]
        return case.id

    def confirmed(self, name: str, seed: int) -> int:
        case_id = self.case(name, seed)
        for who in ("user:alice", "user:bob"):
            review.confirm(self.store, case_id, actor=who, reason="seen", second_confirmation=True)
        return case_id

    def actions(self, prefix: str) -> list[str]:
        return [e.action for e in self.store.audit.events() if e.action.startswith(prefix)]


def _settings(home: Path, key: str | None, **values: Any) -> Settings:
    own: dict[str, Any] = {
        "home": home,
        "master_key": SecretStr(key) if key else None,
        "evidence_retention_days": 30,
        "webhooks": (
            WebhookEndpointSettings(
                name="platform", url="http://127.0.0.1:9/hooks", secret=SecretStr(new_secret())
            ),
        ),
    }
    return Settings(**(own | values))


@pytest.fixture
def fake() -> Iterator[FakeCyberTipline]:
    with FakeCyberTipline() as server:
        yield server


@pytest.fixture
def world(store: Store, home: Path, fake: FakeCyberTipline) -> World:
    store.banks.create("known")
    text = base64.b64encode(secrets.token_bytes(32)).decode()
    key = MasterKey(base64.b64decode(text))
    settings = _settings(home, text)
    now = [T0]
    vault = Vault(
        store.evidence,
        key,
        home / "evidence",
        lambda: now[0],
        retention=retention_policy(settings),
    )
    service.change_settings(
        store,
        lambda: key,
        reporter={"first_name": "Test", "last_name": "Reporter", "email": "ts@example.test"},
        sink_settings={
            "test_url": fake.base_url,
            "schema_file": str(XSD),
            "requests_per_second": 1000,
        },
        secrets={"username": "esp-user", "password": "esp-pass"},
        actor="cli:lead",
        at=T0,
    )
    return World(store=store, fake=fake, key=key, settings=settings, vault=vault, now=now)


def test_auto_report_submits_a_confirmed_case_once(world: World) -> None:
    world.configure(auto_report=True)
    case_id = world.confirmed("a", 1401)
    once = world.case("b", 1402)
    review.confirm(world.store, once, actor="user:alice", reason="seen", second_confirmation=True)
    world.run_job()
    world.run_job()
    (report,) = world.store.reports.list()
    assert (report.case_id, report.state) == (case_id, ReportState.FINISHED)
    assert len(world.fake.finished()) == 1
    assert world.actions("report.finished") == ["report.finished"]
    (finished,) = [e for e in world.store.audit.events() if e.action == "report.finished"]
    assert finished.actor == "system:reports"


def test_auto_report_off_reports_nothing_and_sends_no_draft(world: World) -> None:
    case_id = world.confirmed("a", 1401)
    world.run_job()
    assert world.store.reports.list() == []
    # a draft (`hashguard reports draft`) is a preview: the job never sends it alone
    with world.reporting() as reporting:
        report, _ = reporting.draft(case_id, actor="cli:lead")
    world.run_job()
    assert world.store.reports.get(report.id).state is ReportState.DRAFT
    assert world.fake.calls == []
    # auto_report sends it (it is the case's report)
    world.configure(auto_report=True)
    world.run_job()
    assert world.store.reports.get(report.id).state is ReportState.FINISHED
    assert len(world.store.reports.list()) == 1


def test_the_job_resumes_due_reports(world: World) -> None:
    case_id = world.confirmed("a", 1401)
    world.fake.down = True
    with world.reporting() as reporting:
        waiting = reporting.submit(case_id, actor="cli:lead")
    assert waiting.state is ReportState.DRAFT
    assert waiting.next_attempt_at is not None
    world.fake.down = False
    world.run_job()  # its interval passed, and the report's first backoff (a minute)
    assert world.store.reports.get(waiting.id).state is ReportState.FINISHED


def test_the_give_up_horizon_comes_from_the_settings(world: World) -> None:
    world.configure(reports_give_up_days=0.01)  # about 14 minutes
    case_id = world.confirmed("a", 1401)
    world.fake.down = True
    with world.reporting() as reporting:
        report = reporting.submit(case_id, actor="cli:lead")
    world.now[0] += timedelta(minutes=20)
    world.run_job()
    failed = world.store.reports.get(report.id)
    assert failed.state is ReportState.FAILED
    assert "retries spent" in (failed.last_error or "")


def test_one_case_s_failure_does_not_stop_the_others(world: World) -> None:
    world.configure(auto_report=True)
    broken = world.confirmed("a", 1401)
    fine = world.confirmed("b", 1402)
    evidence_id = world.store.cases.get(broken).evidence_id
    assert evidence_id is not None
    world.vault.delete(evidence_id, actor="cli:op", reason="test", now=T0 + timedelta(days=40))
    world.run_job()
    states = {r.case_id: r.state for r in world.store.reports.list()}
    assert states[fine] is ReportState.FINISHED
    assert not states.get(broken, ReportState.DRAFT).final
    refused = [e for e in world.store.audit.events() if e.action == "report.auto_refused"]
    assert [(e.subject, e.actor) for e in refused] == [(f"case:{broken}", "system:reports")]
    assert "destroyed" in refused[0].details["error"]
    world.run_job()
    world.now[0] += timedelta(hours=1)
    world.run_job()  # tried again after an hour: the same error is not audited twice
    assert world.actions("report.auto_refused") == ["report.auto_refused"]


def test_without_a_report_sink_the_job_does_nothing_and_needs_no_key(
    store: Store, home: Path
) -> None:
    store.banks.create("known")
    settings = _settings(home, None, auto_report=True)
    key = MasterKey(secrets.token_bytes(32))
    now = [T0]
    w = World(
        store=store,
        fake=FakeCyberTipline(),
        key=key,
        settings=settings,
        vault=Vault(store.evidence, key, home / "evidence", lambda: now[0]),
        now=now,
    )
    w.confirmed("a", 1401)
    w.run_job()
    assert store.reports.list() == []
    assert not settings.default_master_key_file.exists()
    assert not w.actions("report.")


def test_a_finished_report_preserves_its_evidence_and_tells_the_platform(world: World) -> None:
    case_id = world.confirmed("a", 1401)
    case = world.store.cases.get(case_id)
    assert case.evidence_id is not None
    before = world.store.evidence.get(case.evidence_id)
    assert not before.legal_hold
    world.now[0] += timedelta(days=2)
    with world.reporting() as reporting:
        report = reporting.submit(case_id, actor="cli:lead")
    assert report.state is ReportState.FINISHED
    assert report.finished_at == world.now[0]
    item = world.store.evidence.get(case.evidence_id)
    assert item.retain_until == report.finished_at + PRESERVE_FOR > before.retain_until
    assert item.legal_hold
    assert item.hold_reason is not None
    assert "REPORT Act" in item.hold_reason
    assert f"report {report.remote_id}" in item.hold_reason
    (filed,) = [a for a in world.store.actions.list() if a.event is EventType.REPORT_FILED]
    assert (filed.target, filed.subject) == ("platform", f"case:{case_id}")
    assert filed.payload["type"] == "report.filed"
    assert filed.payload["data"] == {
        "case": case_id,
        "report": report.id,
        "sink": "cybertipline",
        "ncmec_report_id": report.remote_id,
        "environment": "test",
        "finished_at": report.finished_at.isoformat(),
        "preserve_until": item.retain_until.isoformat(),
        "content_sha256": case.content_key,
    }
    (held,) = [e for e in world.store.audit.events() if e.action == "evidence.preserved"]
    assert (held.subject, held.actor) == (case.evidence_id, "cli:lead")
    assert held.details["remote_id"] == report.remote_id
    assert held.details["webhooks"] == 1
    # resuming or running it again changes nothing
    world.run_job()
    with world.reporting() as reporting:
        reporting.runner("cli:lead").run(report.id)
    assert len([a for a in world.store.actions.list() if a.event is EventType.REPORT_FILED]) == 1
    assert world.actions("evidence.preserved") == ["evidence.preserved"]


def test_preservation_never_shortens_and_keeps_an_earlier_hold(world: World) -> None:
    case_id = world.confirmed("a", 1401)
    evidence_id = world.store.cases.get(case_id).evidence_id
    assert evidence_id is not None
    world.vault.hold(evidence_id, "court order 17", actor="cli:op")
    later = T0 + timedelta(days=5000)
    world.store.evidence.preserve([evidence_id], until=later, reason="REPORT Act: r1", at=T0)
    world.store.evidence.preserve([evidence_id], until=T0, reason="REPORT Act: r1", at=T0)
    item = world.store.evidence.get(evidence_id)
    assert item.retain_until == later
    assert item.hold_reason == "court order 17; REPORT Act: r1"


def test_a_retracted_or_failed_report_preserves_nothing(world: World) -> None:
    retracted = world.confirmed("a", 1401)
    failed = world.confirmed("b", 1402)
    with world.reporting() as reporting:
        drafted, _ = reporting.draft(retracted, actor="cli:lead")
        reporting.retract(drafted.id, actor="cli:lead")
        world.fake.fail_codes = [4100]
        assert reporting.submit(failed, actor="cli:lead").state is ReportState.FAILED
    for case_id in (retracted, failed):
        evidence_id = world.store.cases.get(case_id).evidence_id
        assert evidence_id is not None
        assert not world.store.evidence.get(evidence_id).legal_hold
    assert not [a for a in world.store.actions.list() if a.event is EventType.REPORT_FILED]
    assert not world.actions("evidence.preserved")


def test_doctor_fails_on_the_dead_letter_and_warns_of_late_reports(
    world: World, db_url: str
) -> None:
    settings = world.settings.model_copy(update={"database_url": SecretStr(db_url)})

    def finding(at: datetime) -> tuple[Level | bool, str]:
        doctor = Doctor(settings, today=date(2026, 1, 15), now=at)
        try:
            return check_reports(doctor)
        finally:
            doctor.close()

    assert finding(T0) == (True, "0 report(s), 0 finished, none failed or late")
    world.fake.down = True
    with world.reporting() as reporting:
        report = reporting.submit(world.confirmed("a", 1401), actor="cli:lead")
    assert report.next_attempt_at is not None
    assert finding(report.next_attempt_at)[0] is True, "due now: the job has time"
    level, said = finding(report.next_attempt_at + timedelta(minutes=10))
    assert level is Level.WARN
    assert f"1 report(s) due but not resumed (#{report.id})" in said
    world.fake.fail_codes = [4100]
    world.fake.down = False
    world.now[0] = report.next_attempt_at
    world.run_job()
    level, said = finding(world.now[0])
    assert level is False
    assert "1 report(s) failed (the dead letter)" in said
