"""The review UI in a real browser (Debian's Chromium driven by Playwright) against a live
server whose cases come from scanning benign generated images: signing in through the
form, the queue, the blurred preview's bytes, an audited reveal, decisions, CSRF, and the
keyboard shortcuts. Skipped without /usr/bin/chromium unless HASHGUARD_REQUIRE_BROWSER=1.

The session cookie keeps its Secure flag here (ui_secure_cookies=True, the default):
Chromium stores and sends Secure cookies over plain http on 127.0.0.1, a potentially
trustworthy origin.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Dialog, Page, expect

from hashguard.domain.cases import CaseState
from hashguard.domain.tokens import Scope
from hashguard.web.ui.session import COOKIE
from tests.browser_support import (
    IMAGES,
    VIEWPORT,
    ReviewWorld,
    build_review_world,
    chromium_or_skip,
    launched,
)
from tests.fakes.cybertipline import FakeCyberTipline
from tests.server import running_server
from tests.test_ui_reports import configure_reports, confirm, xsd_or_skip

TIMEOUT_MS = 10_000


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    """Checked first, before any world is built: skip (or fail) without Chromium."""
    return chromium_or_skip()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with launched(chromium) as (_, opened):
        yield opened


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> ReviewWorld:
    root = tmp_path_factory.mktemp("browser")
    # "reported": a case of its own for the report test, whichever tests run before it
    return build_review_world(root / "home", root / "uploads", names={**IMAGES, "reported": "md5"})


@pytest.fixture(scope="module")
def base(world: ReviewWorld) -> Iterator[str]:
    with running_server(world.settings) as url:
        yield url


def accept_dialogs(page: Page) -> None:
    """Every decision and reveal asks first (window.confirm): say yes."""

    def accept(dialog: Dialog) -> None:
        dialog.accept()

    page.on("dialog", accept)


def case_state(world: ReviewWorld, name: str) -> tuple[CaseState, int]:
    with world.store() as store:
        case = store.cases.get(world.cases[name])
    return case.state, case.version


def queue_ids(page: Page) -> list[int]:
    return [
        int(value)
        for value in page.locator("#queue tr.case").evaluate_all(
            "rows => rows.map(r => r.dataset.caseId)"
        )
    ]


# -- signing in -------------------------------------------------------------------------


def test_sign_in_through_the_form_and_out_again(
    world: ReviewWorld, base: str, browser: Browser
) -> None:
    case_id = world.cases["another"]
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        # a page behind the sign-in sends the browser to the form, remembering where to
        page.goto(f"{base}/ui/cases/{case_id}")
        page.wait_for_url(re.compile(r"/ui/login\?next="))
        form = page.locator("form#login")
        expect(form).to_be_visible()
        expect(page.locator("#oidc-login")).to_have_count(0)  # no OIDC configured

        alice = world.people["alice"]
        form.locator("input[name=username]").fill(alice.name)
        form.locator("input[name=password]").fill("not her password")
        with page.expect_response(lambda r: r.request.method == "POST") as refused:
            form.locator("button[type=submit]").click()
        assert refused.value.status == 401
        expect(page.locator("p.error")).to_have_text("Wrong name or password.")
        assert not [c for c in context.cookies() if c["name"] == COOKIE]

        form = page.locator("form#login")
        form.locator("input[name=username]").fill(alice.name)
        form.locator("input[name=password]").fill(alice.password)
        form.locator("button[type=submit]").click()
        page.wait_for_url(f"{base}/ui/cases/{case_id}")
        expect(page.locator("img#preview")).to_be_visible()
        # the Secure cookie set over plain http: Chromium keeps and sends it to 127.0.0.1
        (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE]
        assert cookie["secure"] is True
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/ui"

        page.locator("header a", has_text="Queue").click()
        page.wait_for_url(f"{base}/ui/")
        expect(page.locator("table#queue")).to_be_visible()
        assert case_id in queue_ids(page)

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/ui/login"))
        assert not [c for c in context.cookies() if c["name"] == COOKIE]
        # the ended session is dead on the server too, not only forgotten by the browser
        stale = page.request.get(
            f"{base}/ui/", headers={"Cookie": f"{COOKIE}={cookie['value']}"}, max_redirects=0
        )
        assert stale.status == 303
        assert "/ui/login" in stale.headers["location"]
        with world.store() as store:
            actions = [(e.action, e.actor) for e in store.audit.events()]
        assert ("login.failed", "anon:127.0.0.1") in actions
        assert ("login", "user:alice") in actions
        assert ("session.ended", "user:alice") in actions
    finally:
        context.close()


# -- the queue and the keyboard ---------------------------------------------------------


def test_the_queue_and_its_keyboard_shortcuts(
    world: ReviewWorld, base: str, browser: Browser
) -> None:
    context = world.signed_in(browser, base, "alice")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{base}/ui/")
        expect(page.locator("table#queue")).to_be_visible()
        listed = queue_ids(page)
        for name in ("exact", "spare", "another"):  # no test here decides these
            assert world.cases[name] in listed
        assert listed == sorted(listed, reverse=True), "newest first"

        help_overlay = page.locator("#help")
        expect(help_overlay).to_be_hidden()
        page.keyboard.press("?")
        expect(help_overlay).to_be_visible()
        expect(help_overlay).to_contain_text("Keyboard shortcuts")
        page.keyboard.press("Escape")
        expect(help_overlay).to_be_hidden()

        rows = page.locator("#queue tr.case")
        page.keyboard.press("j")
        expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
        page.keyboard.press("j")
        expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
        expect(rows.nth(0)).not_to_have_class(re.compile(r"\bselected\b"))
        page.keyboard.press("k")
        expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/ui/cases/{listed[0]}")
        expect(page.locator("img#preview")).to_be_visible()
        page.keyboard.press("u")
        page.wait_for_url(f"{base}/ui/")
    finally:
        context.close()


# -- the case page: preview, reveal ----------------------------------------------------


def test_the_case_page_shows_only_a_blurred_preview(
    world: ReviewWorld, base: str, browser: Browser
) -> None:
    case_id = world.cases["exact"]
    context = world.signed_in(browser, base, "vera")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        with page.expect_response(re.compile(rf"/ui/cases/{case_id}/preview$")) as shown:
            page.goto(f"{base}/ui/cases/{case_id}")
        answer = shown.value
        assert answer.status == 200
        assert answer.headers["content-type"] == "image/png"
        body = answer.body()
        original = world.images["exact"]
        assert body != original
        assert original[:1000] not in body
        preview = Image.open(io.BytesIO(body))
        assert preview.format == "PNG"
        assert preview.mode == "L"
        assert max(preview.size) <= 256
        # the browser decoded and laid it out
        preview_img = page.locator("img#preview")
        expect(preview_img).to_be_visible()
        assert preview_img.evaluate("img => img.complete && img.naturalWidth") == preview.width
        expect(page.locator("table#matches")).to_contain_text("md5")
        # a viewer neither reveals nor decides
        expect(page.locator("form#reveal")).to_have_count(0)
        expect(page.locator("form#decide")).to_have_count(0)
        expect(page.locator("img#original")).to_have_count(0)
    finally:
        context.close()


def test_reveal_shows_the_original_and_is_audited(
    world: ReviewWorld, base: str, browser: Browser
) -> None:
    case_id = world.cases["exact"]
    context = world.signed_in(browser, base, "alice")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    accept_dialogs(page)
    try:
        page.goto(f"{base}/ui/cases/{case_id}")
        expect(page.locator("img#original")).to_have_count(0)
        with page.expect_response(re.compile(rf"/ui/cases/{case_id}/original$")) as shown:
            page.locator("form#reveal button[type=submit]").click()
        answer = shown.value
        assert answer.status == 200
        assert answer.body() == world.images["exact"]
        assert "no-store" in answer.headers["cache-control"]
        expect(page.locator("img#original")).to_be_visible()
        assert page.url == f"{base}/ui/cases/{case_id}"
        with world.store() as store:
            revealed = [
                e
                for e in store.audit.events()
                if e.action == "content.revealed" and e.subject == f"case:{case_id}"
            ]
        assert [e.actor for e in revealed] == ["user:alice"]
        # "Hide" takes the original off the page
        page.locator("#hide-original").click()
        expect(page.locator("img#original")).to_have_count(0)
    finally:
        context.close()


# -- decisions ----------------------------------------------------------------------------


def decide(page: Page, verdict: str, reason: str) -> None:
    form = page.locator("form#decide")
    form.locator("textarea[name=reason]").fill(reason)
    form.locator(f"button[name=verdict][value={verdict}]").click()
    expect(page.locator("p.flash")).to_be_visible()


def test_decisions_move_the_case_and_a_final_one_leaves_the_queue(
    world: ReviewWorld, base: str, browser: Browser
) -> None:
    case_id = world.cases["edited"]
    assert case_state(world, "edited")[0] is CaseState.OPEN
    alice = world.signed_in(browser, base, "alice")
    carol = world.signed_in(browser, base, "carol")
    try:
        page = alice.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        accept_dialogs(page)
        page.goto(f"{base}/ui/cases/{case_id}")
        expect(page.locator("table#matches")).to_contain_text("pdq")
        decide(page, "confirm", "the edited copy shows the listed image")
        assert page.url.startswith(f"{base}/ui/cases/{case_id}")
        assert case_state(world, "edited")[0] is CaseState.CONFIRMED_ONCE
        page.goto(f"{base}/ui/")
        assert case_id in queue_ids(page), "a first confirmation still needs work"

        lead = carol.new_page()
        lead.set_default_timeout(TIMEOUT_MS)
        accept_dialogs(lead)
        lead.goto(f"{base}/ui/cases/{case_id}")
        decide(lead, "confirm", "second look: agreed")
        assert case_state(world, "edited")[0] is CaseState.CONFIRMED
        lead.goto(f"{base}/ui/")
        assert case_id not in queue_ids(lead), "a final decision leaves the queue"
        lead.goto(f"{base}/ui/?state=confirmed")
        assert case_id in queue_ids(lead)
        with world.store() as store:
            history = [(e.actor, e.to_state) for e in store.cases.history(case_id)]
        assert ("user:alice", CaseState.CONFIRMED_ONCE) in history
        assert ("user:carol", CaseState.CONFIRMED) in history
    finally:
        alice.close()
        carol.close()


def test_a_post_without_the_csrf_token_is_refused(
    world: ReviewWorld, base: str, browser: Browser
) -> None:
    case_id = world.cases["spare"]
    before = case_state(world, "spare")
    context = world.signed_in(browser, base, "alice")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{base}/ui/cases/{case_id}")
        fields: dict[str, str | float | bool] = {
            "verdict": "escalate",
            "reason": "forged",
            "version": str(before[1]),
        }
        refused = page.request.post(
            f"{base}/ui/cases/{case_id}/decide",
            form=fields,
            headers={"Origin": base},
            max_redirects=0,
        )
        assert refused.status == 403
        assert case_state(world, "spare") == before

        # the same request with the page's token goes through: the token was what was missing
        token = page.locator("form#decide input[name=csrf_token]").input_value()
        accepted = page.request.post(
            f"{base}/ui/cases/{case_id}/decide",
            form={**fields, "csrf_token": token},
            headers={"Origin": base},
            max_redirects=0,
        )
        assert accepted.status == 303
        assert case_state(world, "spare")[0] is CaseState.ESCALATED
    finally:
        context.close()


# -- reports ------------------------------------------------------------------------------


def test_the_lead_submits_the_report_from_the_case_page_and_sees_its_id(
    world: ReviewWorld, base: str, browser: Browser
) -> None:
    xsd_or_skip()
    case_id = world.cases["reported"]
    confirm(world.settings, case_id)
    context = world.signed_in(browser, base, "carol")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    accept_dialogs(page)
    try:
        with FakeCyberTipline() as fake:
            configure_reports(world.settings, fake)
            page.goto(f"{base}/ui/cases/{case_id}")
            expect(page.locator("#report-state")).to_contain_text("Not reported")
            page.locator("form#report-submit button[type=submit]").click()
            expect(page.locator("#report-flash")).to_be_visible()
            (sent,) = fake.finished()
            expect(page.locator("#report-remote-id")).to_have_text(str(sent.id))
            expect(page.locator("#report-state")).to_have_text("finished")
            expect(page.locator("form#report-submit")).to_have_count(0)
            page.locator("nav a", has_text="Reports").click()
            listed = page.locator(f"#reports tr[data-state=finished] a[href='/ui/cases/{case_id}']")
            expect(listed).to_have_count(1)
    finally:
        context.close()


def test_the_statistics_dashboard_shows_the_apis_numbers_under_the_strict_csp(
    browser: Browser, world: ReviewWorld, base: str
) -> None:
    span = {"since": "2000-01-01", "until": "2099-12-31"}  # whatever day the scan ran
    with world.store() as store:
        _, secret = store.tokens.create("stats-browser", [Scope.STATS])
    api = httpx.get(
        f"{base}/v1/stats",
        params={**span, "by": "bank,band"},
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert api.status_code == 200, api.text
    expected = {
        (row["key"]["bank"], row["key"]["band"]): row["counts"] for row in api.json()["rows"]
    }
    assert sum(c["matches"] for c in expected.values()) > 0, "the scan recorded matches"
    context = world.signed_in(browser, base, "carol")  # a lead
    try:
        page = context.new_page()
        refused: list[str] = []
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )
        answer = page.goto(f"{base}/ui/stats?since={span['since']}&until={span['until']}")
        assert answer is not None
        assert answer.status == 200
        csp = answer.headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        # the charts: server-rendered SVG, one per chart, each drawn with some marks
        charts = page.locator("main svg")
        assert charts.count() >= 5
        for index in range(charts.count()):
            assert charts.nth(index).bounding_box() is not None
        shown = {}
        for row in page.locator("#lists-table tr.list-row").all():
            cells = [c.inner_text() for c in row.locator("td").all()]
            key = (row.get_attribute("data-bank") or "", row.get_attribute("data-band") or "")
            shown[key] = [int(cells[i]) for i in (2, 3, 4, 5)]
        assert shown == {
            key: [c["matches"], c["cases_opened"], c["confirmed"], c["false_positive"]]
            for key, c in expected.items()
        }
        assert not refused, refused
    finally:
        context.close()
