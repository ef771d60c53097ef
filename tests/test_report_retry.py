"""A person sends a failed report to NCMEC again (``Runner.retry``, ``Reporting.retry``,
``hashguard reports retry``) against the loopback fake CyberTipline, with an injected
clock: failed → retried → finished, with the ``reopen`` step and ``report.reopened``
audited; the earlier attempt's sealed documents kept; a report NCMEC holds every file of
finished again, never twice; any other state refused; another process's lease honoured.
Store-level behaviour (``reopened_at``) on SQLite and PostgreSQL, the rest on SQLite."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hashguard.cli.app import app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.audit import AuditAction, AuditEvent
from hashguard.domain.cases import CaseEventKind, CaseState
from hashguard.domain.reports import Report
from hashguard.domain.reports import ReportState as S
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions
from hashguard.keys import MasterKey
from hashguard.reports import service
from hashguard.reports.machine import ReportBusy, RetryRefused, report_backoff
from hashguard.store import Store, open_store
from hashguard.store.reports import UnknownReport
from tests.fakes.cybertipline import XSD, FakeCyberTipline
from tests.test_reports import IMAGE, REPORTER, T0, World, _confirmed, _sink

LEAD = "cli:lead"


@pytest.fixture
def fake() -> Iterator[FakeCyberTipline]:
    with FakeCyberTipline() as server:
        yield server


def _world(store: Store, tmp_path: Path, fake: FakeCyberTipline) -> World:
    store.banks.create("known")
    key = MasterKey(secrets.token_bytes(32))
    service.change_settings(
        store,
        lambda: key,
        reporter={k: getattr(REPORTER, k) for k in service.REPORTER_FIELDS},
        sink_settings={},
        secrets={},
        actor=LEAD,
        at=T0,
    )
    vault = Vault(store.evidence, key, tmp_path / "evidence")
    return World(store=store, vault=vault, key=key, fake=fake, now=[T0])


@pytest.fixture
def world(store: Store, tmp_path: Path, fake: FakeCyberTipline) -> World:
    """On both engines: for what the store keeps of a retry."""
    return _world(store, tmp_path, fake)


@pytest.fixture
def w(sqlite_store: Store, tmp_path: Path, fake: FakeCyberTipline) -> World:
    return _world(sqlite_store, tmp_path, fake)


def _reporting(world: World) -> service.Reporting:
    """What the CLI and the review UI drive reports through, over the fake."""
    return service.Reporting(
        store=world.store,
        sink=_sink(world.fake),
        keys=world.keys(),
        evidence=world.read,
        limits=HashOptions(max_pixels=50_000_000),
        clock=world.clock,
    )


def _failed_at_upload(world: World, name: str = "a", data: bytes = IMAGE) -> Report:
    """A report NCMEC opened (its report id recorded) whose file it then refused
    permanently (4200 malformed file): the dead letter, with an unfinished report at
    NCMEC."""
    report_id = world.draft(_confirmed(world, name, data))

    def refuse_the_file(step: str) -> None:
        if step == "intent:upload:1":
            world.fake.fail_codes = [4200]

    failed = world.runner(refuse_the_file).run(report_id)
    assert failed.state is S.FAILED
    assert failed.remote_id is not None
    return failed


def _events(world: World, action: AuditAction) -> list[AuditEvent]:
    return [e for e in world.store.audit.events() if e.action == str(action)]


def _steps(world: World, report_id: int) -> list[str]:
    return [s.step for s in world.store.reports.steps(report_id)]


def test_a_failed_report_is_sent_again_and_finished(world: World) -> None:
    failed = _failed_at_upload(world)
    assert world.store.reports.reopened_at(failed.id) is None
    kept = world.store.reports.sealed(failed.id)
    (old,) = world.fake.reports.values()
    assert old.state == "open"
    world.now[0] = T0 + timedelta(days=1)

    with _reporting(world) as reporting:
        report = reporting.retry(failed.id, actor=LEAD)

    assert report.state is S.FINISHED, world.store.reports.steps(failed.id)
    assert (report.attempts, report.last_error) == (0, None)
    # NCMEC's half report was retracted; the new one holds the file once
    assert old.state == "retracted"
    (sent,) = world.fake.finished()
    assert report.remote_id == str(sent.id) != failed.remote_id
    assert list(sent.files.values()) == [IMAGE]
    steps = world.store.reports.steps(failed.id)
    assert [s.step for s in steps] == [
        "draft", "submit", "upload", "reopen",
        "submit", "upload", "uploaded", "fileinfo", "described", "finish",
    ]  # fmt: skip
    reopen = steps[3]
    assert (reopen.actor, reopen.outcome, reopen.state) == (LEAD, "ok", S.DRAFT)
    assert reopen.at == T0 + timedelta(days=1)
    assert "permanent (code 4200)" in reopen.detail
    assert f"retraction of NCMEC's unfinished report {failed.remote_id}: ok" in reopen.detail
    assert all(s.actor == LEAD for s in steps[3:]), "the person's retry, under their name"
    # the earlier attempt's sealed request/response history stays, and still opens
    assert world.store.reports.sealed(failed.id)[: len(kept)] == kept
    opened = world.keys().opened(report)
    assert opened[0].request == sent.document, "the new report is the sealed draft"
    # the store: when it was sent again (the retries' window runs from then)
    assert world.store.reports.reopened_at(failed.id) == T0 + timedelta(days=1)
    # audited: who, the previous error and attempts, what NCMEC held
    (event,) = _events(world, AuditAction.REPORT_REOPENED)
    assert (event.actor, event.subject) == (LEAD, f"report:{failed.id}")
    assert "upload:1: permanent (code 4200)" in event.details["previous_error"]
    assert event.details["previous_attempts"] == 0
    assert event.details["remote_id"] == failed.remote_id
    assert event.details["retracted"] == "ok"
    assert event.details["from"] == "draft"
    actions = [e.action for e in world.store.audit.events() if e.action.startswith("report.")]
    assert actions == [
        "report.settings_changed", "report.drafted", "report.submitted", "report.failed",
        "report.reopened", "report.submitted", "report.file_uploaded",
        "report.file_described", "report.finished",
    ]  # fmt: skip


def test_the_retries_window_runs_again_from_the_retry(w: World) -> None:
    """A report failed because its retries were spent (NCMEC down past the window):
    sent again while NCMEC is still down, it waits for its next attempt with the whole
    window again, instead of failing at once; then it is finished."""
    report_id = w.draft(_confirmed(w))
    w.fake.down = True
    runner = w.runner(backoff=report_backoff(timedelta(hours=2)))
    report = runner.run(report_id)
    while not report.state.final:
        w.now[0] = report.next_attempt_at or w.clock()
        report = runner.run(report_id)
    assert report.state is S.FAILED
    assert "retries spent" in (report.last_error or "")
    spent = report.attempts
    assert spent > 1

    w.now[0] += timedelta(days=1)
    again = runner.retry(report_id, actor=LEAD)
    assert again.state is S.DRAFT, "waiting, not failed: the window starts at the retry"
    assert again.attempts == 1
    assert again.next_attempt_at is not None
    (event,) = _events(w, AuditAction.REPORT_REOPENED)
    assert event.details["previous_attempts"] == spent
    assert event.details["remote_id"] is None
    assert "retracted" not in event.details, "NCMEC never gave a report id"
    w.fake.down = False
    w.now[0] = again.next_attempt_at
    done = runner.run(report_id)
    assert done.state is S.FINISHED
    assert len(w.fake.reports) == 1


@pytest.mark.parametrize("ncmec", ["finished", "open", "expired"])
def test_a_report_that_failed_at_finish_is_finished_again_never_twice(w: World, ncmec: str) -> None:
    """NCMEC holds every file: the retry asks it to finish again, never retracts. A
    report NCMEC finished (the answer was lost) is recorded finished, not sent twice; one
    it still holds open is finished now; one it dropped is opened again from the draft."""
    report_id = w.draft(_confirmed(w))

    def refuse_the_finish(step: str) -> None:
        if step == "intent:finish":
            w.fake.fail_codes = [4000]

    failed = w.runner(refuse_the_finish).run(report_id)
    assert failed.state is S.FAILED
    assert _steps(w, report_id)[-1] == "finish"
    (held,) = w.fake.reports.values()
    if ncmec == "finished":
        held.state = "finished"
    elif ncmec == "expired":
        w.fake.reports.clear()
    calls = len(w.fake.calls)

    report = w.runner().retry(report_id, actor=LEAD)

    assert report.state is S.FINISHED, w.store.reports.steps(report_id)
    assert "POST /retract" not in w.fake.calls[calls:]
    assert len(w.fake.finished()) == 1
    (event,) = _events(w, AuditAction.REPORT_REOPENED)
    assert event.details["from"] == "finish"
    assert "permanent (code 4000)" in event.details["previous_error"]
    assert len(_events(w, AuditAction.EVIDENCE_PRESERVED)) == 1
    steps = _steps(w, report_id)
    if ncmec == "expired":
        # the finish answered "expired": a new report from the draft, as _restart does
        assert steps[steps.index("reopen") + 1 :][:2] == ["restart", "submit"]
        assert report.remote_id != failed.remote_id
    else:
        assert steps[-2:] == ["reopen", "finish"]
        assert report.remote_id == failed.remote_id == str(held.id)


def test_only_a_failed_report_of_a_confirmed_case_is_sent_again(w: World) -> None:
    reporting = _reporting(w)
    draft = w.draft(_confirmed(w, "a"))
    for retry in (reporting.retry, w.runner().retry):
        with pytest.raises(RetryRefused, match=f"report #{draft} is draft: only a failed") as e:
            retry(draft, actor=LEAD)
        assert e.value.state is S.DRAFT
    w.runner().run(draft)
    with pytest.raises(RetryRefused, match=r"is finished: only a failed report .* NCMEC has it"):
        reporting.retry(draft, actor=LEAD)
    with pytest.raises(UnknownReport):
        reporting.retry(987654, actor=LEAD)

    # a failed report whose case was reversed on appeal meanwhile: not reported again
    failed = _failed_at_upload(w, "b", encode(generate(Kind.PHOTO, 1302, 320, 240)))
    case = w.store.cases.get(failed.case_id)
    w.store.cases.transition(
        case.id, expected_version=case.version, actor="user:carol",
        kind=CaseEventKind.APPEAL_REVERSED, to_state=CaseState.FALSE_POSITIVE, reason="not it",
    )  # fmt: skip
    calls = len(w.fake.calls)
    with pytest.raises(service.ReportRefused, match="is false_positive"):
        reporting.retry(failed.id, actor=LEAD)
    assert w.fake.calls[calls:] == []
    assert w.store.reports.get(failed.id).state is S.FAILED
    assert "reopen" not in _steps(w, draft) + _steps(w, failed.id)
    assert _events(w, AuditAction.REPORT_REOPENED) == []


def test_a_retry_while_another_process_holds_the_report_is_busy(w: World) -> None:
    failed = _failed_at_upload(w)
    assert w.store.reports.claim(failed.id, "elsewhere", now=T0, until=T0 + timedelta(minutes=5))
    calls = len(w.fake.calls)
    with pytest.raises(ReportBusy, match="another process"):
        _reporting(w).retry(failed.id, actor=LEAD)
    assert w.fake.calls[calls:] == []
    assert w.store.reports.get(failed.id) == failed
    assert _events(w, AuditAction.REPORT_REOPENED) == []
    # that process died: its lease runs out, and the retry goes through
    w.now[0] = T0 + timedelta(minutes=6)
    assert _reporting(w).retry(failed.id, actor=LEAD).state is S.FINISHED


def test_cli_retry(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeCyberTipline
) -> None:
    """``hashguard reports retry ID`` in-process: a failed report sent again (exit 0, its
    JSON), then refused as finished (exit 2), and an unknown id refused."""
    from hashguard.evidence import open_vault  # noqa: PLC0415
    from hashguard.keys import master_key_for  # noqa: PLC0415
    from hashguard.settings import Settings  # noqa: PLC0415

    settings = Settings()
    store = open_store(settings.resolved_database_url)
    try:
        store.banks.create("known")
        key = master_key_for(settings)[0]
        cli_world = World(
            store=store, vault=open_vault(settings, store, key), key=key, fake=fake, now=[T0]
        )
        case_id = _confirmed(cli_world)
        service.change_settings(
            store, lambda: key,
            reporter={k: getattr(REPORTER, k) for k in service.REPORTER_FIELDS},
            sink_settings={"test_url": fake.base_url, "schema_file": str(XSD),
                           "requests_per_second": 1000},
            secrets={"username": "esp-user", "password": "esp-pass"}, actor=LEAD, at=T0,
        )  # fmt: skip
    finally:
        store.close()
    runner = CliRunner()
    help_text = runner.invoke(app, ["reports", "--help"]).output
    assert "retry" in help_text
    fake.fail_codes = [4000]  # the submit is refused: the dead letter
    submitted = runner.invoke(app, ["reports", "submit", str(case_id)])
    assert submitted.exit_code == 1, submitted.output
    failed = json.loads(submitted.stdout)
    assert failed["state"] == "failed"

    retried = runner.invoke(app, ["reports", "retry", str(failed["id"])])
    assert retried.exit_code == 0, retried.output
    shown = json.loads(retried.stdout)
    assert (shown["state"], shown["attempts"], shown["last_error"]) == ("finished", 0, None)
    (sent,) = fake.finished()
    assert shown["report_id"] == str(sent.id)

    again = runner.invoke(app, ["reports", "retry", str(failed["id"])])
    assert again.exit_code == 2
    assert "is finished: only a failed report is sent again" in " ".join(again.output.split())
    missing = runner.invoke(app, ["reports", "retry", "987654"])
    assert missing.exit_code == 2
    assert "no report #987654" in missing.output
