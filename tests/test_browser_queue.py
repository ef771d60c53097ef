"""The review queue by priority in a real browser (Debian's Chromium, Playwright) under a
seeded mix of cases: an exact list match, PDQ matches, a remote near match (Safer and
PhotoDNA through the review demo's fakes) and a classifier-only case (Content Safety:
VERY_HIGH, no list match). The "by priority" switch orders them as ``review.priority``
documents, each with its reason; the classifier-only case comes last, waits for review
and shows its signal's source and level. Skipped without /usr/bin/chromium unless
HASHGUARD_REQUIRE_BROWSER=1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser_support import ReviewWorld, build_review_world, chromium_or_skip, launched
from tests.server import running_server

TIMEOUT_MS = 10_000
#: image name -> how the bank knows it (None: not in the bank)
MIX: dict[str, str | None] = {
    "pdq-a": "pdq",
    "exact": "md5",
    "pdq-b": "pdq",
    "remote": None,
    "scored": None,
    "clean": None,
}


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with launched(chromium) as (_, opened):
        yield opened


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> ReviewWorld:
    root = tmp_path_factory.mktemp("queue")
    return build_review_world(
        root / "home", root / "uploads", names=MIX, remote_matched=["remote"], scored=["scored"]
    )


@pytest.fixture(scope="module")
def base(world: ReviewWorld) -> Iterator[str]:
    with running_server(world.settings) as url:
        yield url


def test_the_queue_by_priority_under_a_seeded_mix(
    world: ReviewWorld, base: str, browser: Browser
) -> None:
    with world.store() as store:
        created = {name: store.cases.get(i).created_at for name, i in world.cases.items()}
    near = sorted(["pdq-a", "pdq-b"], key=lambda n: (created[n], world.cases[n]))
    expected = [world.cases[n] for n in ["exact", *near, "remote", "scored"]]

    context = world.signed_in(browser, base, "alice")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{base}/ui/")
        expect(page.locator("table#queue")).to_be_visible()
        page.get_by_label("by priority").check()
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**order=priority**")
        expect(page.locator("p.count")).to_contain_text("By priority")
        rows = page.locator("#queue tr.case")
        listed = [int(v) for v in rows.evaluate_all("rows => rows.map(r => r.dataset.caseId)")]
        assert listed == expected
        reasons = dict(
            zip(listed, page.locator("#queue td.priority").all_inner_texts(), strict=True)
        )
        assert reasons[world.cases["exact"]].startswith("exact match (known")
        assert reasons[world.cases["pdq-a"]] == "PDQ distance 0"
        assert reasons[world.cases["remote"]] == "near match, distance 2 (safer)"
        assert reasons[world.cases["scored"]].endswith("no list match")

        # the classifier-only case: waiting for review, its signal's source and level shown
        page.locator(f'#queue tr[data-case-id="{world.cases["scored"]}"] a.case-link').click()
        page.wait_for_url(f"{base}/ui/cases/{world.cases['scored']}")
        expect(page.locator("#matches-title + p")).to_contain_text("review")
        expect(page.locator("#matches-title + p")).to_contain_text("classifier, no list match")
        expect(page.locator("#remote")).to_contain_text("content_safety: VERY_HIGH")

        # Safer's and PhotoDNA's matches on the remote case's page
        page.goto(f"{base}/ui/cases/{world.cases['remote']}")
        remote = page.locator("#remote")
        expect(remote).to_contain_text("safer")
        expect(remote).to_contain_text("photodna")
        expect(remote).to_contain_text("test:demo-source-")
    finally:
        context.close()

    with world.store() as store:
        case = store.cases.get(world.cases["scored"])
        assert not case.decision.acts, "a classifier-only case is never acted on"
        assert store.reports.list() == []
