"""Reports in the review UI over real loopback HTTP, against the loopback fake
CyberTipline: the case page's report section, a lead's submit, retract and sending a
failed report again (refusals as pages, never a 500), the waiting report after a
retryable answer, /ui/reports by state, and who sees what. Cases come from scanning
benign generated images (``test_ui_pages``)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hashguard.domain.reports import Report, ReportState
from hashguard.keys import master_key_for
from hashguard.reports import service
from hashguard.review import cases as review
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.fakes.cybertipline import XSD, FakeCyberTipline
from tests.server import running_server
from tests.test_ui_pages import World, audit_events, build_world, form_post, ui_settings

REPORTER = {
    "first_name": "Test",
    "last_name": "Reporter",
    "email": "trust-safety@example.test",
    "company_template": "Example ESP. Legal process: legal@example.test.",
    "legal_url": "https://example.test/legal",
    "platform": "ExampleHost Files",
}


def xsd_or_skip() -> None:
    if not XSD.is_file():
        pytest.skip(f"no CyberTipline schema at {XSD} (the shared reference; HG_TEST_NCMEC_XSD)")


def configure_reports(settings: Settings, fake: FakeCyberTipline) -> None:
    """The reporter, the fake's address (no throttle) and its credentials, sealed with
    the server's master key, as ``hashguard reports settings`` stores them."""
    key = master_key_for(settings)[0]
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        service.change_settings(
            store,
            lambda: key,
            reporter=REPORTER,
            sink_settings={
                "test_url": fake.base_url,
                "schema_file": str(XSD),
                "requests_per_second": 1000,
            },
            secrets={"username": "esp-user", "password": "esp-pass"},
            actor="cli:admin",
            at=datetime.now(UTC),
        )


def confirm(settings: Settings, case_id: int, *, by: tuple[str, str] = ("alice", "carol")) -> None:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        for name in by:
            review.confirm(
                store, case_id, actor=f"user:{name}", reason="seen", second_confirmation=True
            )


@pytest.fixture
def fake() -> Iterator[FakeCyberTipline]:
    xsd_or_skip()
    with FakeCyberTipline() as server:
        yield server


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    return build_world(ui_settings(db_url, tmp_path / "home"), tmp_path)


def _text(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert found, f"no #{element_id}"
    return found.group(1).strip()


def test_a_lead_submits_and_retracts_from_the_case_page(
    world: World, fake: FakeCyberTipline
) -> None:
    people, cases = world.people, world.cases
    act, other = cases["act"], cases["review"]
    with running_server(world.settings) as base:
        carol, alice = people["carol"].client(base), people["alice"].client(base)
        try:
            # not configured yet: a clear page, not a 500, and nothing sent
            confirm(world.settings, act)
            page = carol.get(f"/ui/cases/{act}").text
            assert "Not reported." in page
            assert '<form id="report-submit"' in page
            unconfigured = form_post(carol, f"/ui/cases/{act}/report", people["carol"])
            assert unconfigured.status_code == 503
            assert "Reporting is not configured" in unconfigured.text
            assert "hashguard reports settings" in unconfigured.text
            assert fake.calls == []

            configure_reports(world.settings, fake)
            # a case that is not confirmed: refused, whatever the form says
            open_case = form_post(carol, f"/ui/cases/{other}/report", people["carol"])
            assert open_case.status_code == 409
            assert "only confirmed cases are reported" in open_case.text
            assert '<form id="report-submit"' not in carol.get(f"/ui/cases/{other}").text
            # a reviewer neither sees the button nor may post it
            assert '<form id="report-submit"' not in alice.get(f"/ui/cases/{act}").text
            assert form_post(alice, f"/ui/cases/{act}/report", people["alice"]).status_code == 403
            # without the CSRF token: refused
            assert carol.post(f"/ui/cases/{act}/report").status_code == 403
            assert fake.calls == []

            done = form_post(carol, f"/ui/cases/{act}/report", people["carol"])
            assert done.status_code == 303
            assert done.headers["location"] == f"/ui/cases/{act}?reported=submitted"
            (sent,) = fake.finished()
            page = carol.get(done.headers["location"]).text
            assert 'id="report-flash"' in page
            assert _text(page, "report-remote-id") == str(sent.id)
            assert _text(page, "report-state") == "finished"
            assert f"{', '.join(sent.files)}" in page, "the receipt lists NCMEC's file ids"
            (file_id,) = sent.files
            assert re.search(rf"<td>described</td><td>{file_id}</td>", page)
            steps = re.findall(r'<tr class="report-step">(.*?)</tr>', page, re.S)
            assert [re.findall(r"<td>(.*?)</td>", s)[2] for s in steps] == [
                "draft",
                "submit",
                "upload",
                "uploaded",
                "fileinfo",
                "described",
                "finish",
            ]
            assert "<td>0</td>" in steps[1], "NCMEC's response code is shown"
            assert '<form id="report-submit"' not in page, "one report per case"
            assert '<form id="report-retract"' not in page, "a finished report stays"
            # a second submit sends nothing new; a retraction of a finished one is refused
            assert form_post(carol, f"/ui/cases/{act}/report", people["carol"]).status_code == 303
            assert len(fake.reports) == 1
            with world.store() as store:
                report = store.reports.find(act, service.SINK)
            assert report is not None
            refused = form_post(carol, f"/ui/reports/{report.id}/retract", people["carol"])
            assert refused.status_code == 409
            assert "cannot be retracted" in refused.text
            assert ("user:carol", f"report:{report.id}") in [
                (actor, subject) for actor, subject, _ in audit_events(world, "report.submitted")
            ]

            # a reviewer sees that the case was reported, not the report's details
            seen = alice.get(f"/ui/cases/{act}").text
            assert "finished" in seen
            assert str(sent.id) not in seen

            # NCMEC says "retry later": the report waits, shown with its error; retract it
            confirm(world.settings, other)
            fake.fail_codes = [1000]
            assert form_post(carol, f"/ui/cases/{other}/report", people["carol"]).status_code == 303
            page = carol.get(f"/ui/cases/{other}").text
            assert _text(page, "report-state") == "draft"
            assert "retryable (code 1000)" in _text(page, "report-error")
            assert "next attempt" in page
            assert '<form id="report-submit"' not in page, "not due yet: nothing to resume"
            assert '<form id="report-retract"' in page
            with world.store() as store:
                waiting = store.reports.find(other, service.SINK)
            assert waiting is not None
            # another process (the background job) holds it: left to it, said so
            with world.store() as store:
                now = datetime.now(UTC)
                held = store.reports.claim(
                    waiting.id, "elsewhere", now=now, until=now + timedelta(minutes=5)
                )
                assert held
                busy = form_post(carol, f"/ui/cases/{other}/report", people["carol"])
                assert busy.headers["location"] == f"/ui/cases/{other}?reported=busy"
                assert "Another process" in carol.get(busy.headers["location"]).text
                busy = form_post(carol, f"/ui/reports/{waiting.id}/retract", people["carol"])
                assert busy.status_code == 409
                assert "another process" in busy.text
                store.reports.release(waiting.id, "elsewhere")
            gone = form_post(carol, f"/ui/reports/{waiting.id}/retract", people["carol"])
            assert gone.status_code == 303
            assert gone.headers["location"] == f"/ui/cases/{other}?reported=retracted"
            assert _text(carol.get(gone.headers["location"]).text, "report-state") == "retracted"
            missing = form_post(carol, "/ui/reports/987654/retract", people["carol"])
            assert missing.status_code == 404
        finally:
            carol.close()
            alice.close()


def test_the_reports_page_lists_by_state_with_links_to_cases(
    world: World, fake: FakeCyberTipline
) -> None:
    people, cases = world.people, world.cases
    configure_reports(world.settings, fake)
    act, other = cases["act"], cases["review"]
    confirm(world.settings, act)
    confirm(world.settings, other)
    with running_server(world.settings) as base:
        with people["carol"].client(base) as carol:
            assert form_post(carol, f"/ui/cases/{act}/report", people["carol"]).status_code == 303
            fake.fail_codes = [4000]  # a permanent refusal: the dead letter
            assert form_post(carol, f"/ui/cases/{other}/report", people["carol"]).status_code == 303
            failed_page = carol.get(f"/ui/cases/{other}").text
            assert _text(failed_page, "report-state") == "failed"
            assert "dead letter" in failed_page
            assert '<form id="report-submit"' not in failed_page

            listing = carol.get("/ui/reports")
            assert listing.status_code == 200
            assert '<a href="/ui/reports">Reports</a>' in listing.text
            rows = re.findall(
                r'<tr class="report" data-report-id="\d+" data-state="(\w+)"', listing.text
            )
            assert rows == ["failed", "finished"], "newest first"
            assert f'<a href="/ui/cases/{act}">case #{act}</a>' in listing.text
            failed = carol.get("/ui/reports", params={"state": "failed"}).text
            assert re.findall(r'data-state="(\w+)"', failed) == ["failed"]
            assert f'<a href="/ui/cases/{other}">' in failed
            assert "permanent (code 4000)" in failed
            assert "failed (1)" in failed
            assert carol.get("/ui/reports", params={"state": "nonsense"}).status_code == 400
            # a confirmed case whose content was not kept has nothing to report
            nokeep = cases["nokeep"]
            confirm(world.settings, nokeep)
            refused = form_post(carol, f"/ui/cases/{nokeep}/report", people["carol"])
            assert refused.status_code == 409
            assert "no evidence kept" in refused.text
        with people["adam"].client(base) as adam:
            page = adam.get("/ui/reports")
            assert page.status_code == 200, "an admin sees reports' states"
            case_page = adam.get(f"/ui/cases/{act}").text
            assert 'id="report-remote-id"' in case_page
            assert '<form id="report-submit"' not in case_page
            assert '<form id="report-retract"' not in case_page
        for name in ("alice", "audrey", "vera"):
            with people[name].client(base) as someone:
                assert someone.get("/ui/reports").status_code == 403
                home = someone.get("/ui/audit" if name == "audrey" else "/ui/").text
                assert '<a href="/ui/reports">' not in home
    assert ReportState.FAILED in {r.state for r in _reports(world)}


def _reports(world: World) -> list[Report]:
    with world.store() as store:
        return store.reports.list()


@pytest.fixture
def sqlite_world(tmp_path: Path) -> World:
    """SQLite only: what the UI does with a report is not the store's concern."""
    return build_world(ui_settings(f"sqlite:///{tmp_path / 'ui.db'}", tmp_path / "home"), tmp_path)


def test_a_lead_sends_a_failed_report_again_from_the_case_page(
    sqlite_world: World, fake: FakeCyberTipline
) -> None:
    world = sqlite_world
    people, act = world.people, world.cases["act"]
    configure_reports(world.settings, fake)
    confirm(world.settings, act)
    with running_server(world.settings) as base:
        carol, alice = people["carol"].client(base), people["alice"].client(base)
        try:
            fake.fail_codes = [4000]  # a permanent refusal: the dead letter
            assert form_post(carol, f"/ui/cases/{act}/report", people["carol"]).status_code == 303
            page = carol.get(f"/ui/cases/{act}").text
            assert _text(page, "report-state") == "failed"
            assert '<form id="report-retry"' in page
            with world.store() as store:
                failed = store.reports.find(act, service.SINK)
            assert failed is not None
            retry = f"/ui/reports/{failed.id}/retry"
            # a reviewer neither sees the button nor may post it; no CSRF token: refused
            assert '<form id="report-retry"' not in alice.get(f"/ui/cases/{act}").text
            assert form_post(alice, retry, people["alice"]).status_code == 403
            assert carol.post(retry).status_code == 403
            # another process holds it: refused, said so, nothing sent
            calls = len(fake.calls)
            with world.store() as store:
                now = datetime.now(UTC)
                assert store.reports.claim(
                    failed.id, "elsewhere", now=now, until=now + timedelta(minutes=5)
                )
                busy = form_post(carol, retry, people["carol"])
                assert busy.status_code == 409
                assert "another process" in busy.text
                store.reports.release(failed.id, "elsewhere")
            assert fake.calls[calls:] == []

            done = form_post(carol, retry, people["carol"])
            assert done.status_code == 303
            assert done.headers["location"] == f"/ui/cases/{act}?reported=retried"
            page = carol.get(done.headers["location"]).text
            assert "sent again" in _text(page, "report-flash")
            assert _text(page, "report-state") == "finished"
            (sent,) = fake.finished()
            assert _text(page, "report-remote-id") == str(sent.id)
            steps = re.findall(r'<tr class="report-step">(.*?)</tr>', page, re.S)
            reopen = [re.findall(r"<td>(.*?)</td>", s) for s in steps][2]
            assert reopen[1:3] == ["user:carol", "reopen"]
            assert '<form id="report-retry"' not in page
            assert [
                (actor, subject) for actor, subject, _ in audit_events(world, "report.reopened")
            ] == [("user:carol", f"report:{failed.id}")]
            again = form_post(carol, retry, people["carol"])
            assert again.status_code == 409
            assert "only a failed report is sent again" in again.text
            assert form_post(carol, "/ui/reports/987654/retry", people["carol"]).status_code == 404
        finally:
            carol.close()
            alice.close()
