"""Driving Debian's Chromium with Playwright against a live hashguard server holding real
cases (benign generated images scanned the way ``hashguard scan`` scans them)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Playwright, ViewportSize, sync_playwright

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.demo.remote import DemoRemote
from hashguard.demo.run import DEMO_POLICY, demo_settings, scan_like_the_cli
from hashguard.domain.banks import BankEntry
from hashguard.domain.people import Role
from hashguard.domain.scans import ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.remote.service import RemoteMatching
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.web.ui.session import COOKIE

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "HASHGUARD_REQUIRE_BROWSER"
#: the launch arguments verified for this Chromium (playwright adds --no-sandbox itself
#: too; never `playwright install`: the browser is Debian's)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
OPTIONS = ScanOptions(max_pixels=10**7)


def chromium_or_skip() -> Path:
    """Debian's Chromium; without it the browser tests skip, or fail when required."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{CHROMIUM} is missing and {REQUIRE_ENV}=1: browser tests are required")
    pytest.skip(f"no {CHROMIUM} (apt-get install chromium)")


@contextlib.contextmanager
def launched(executable: Path = CHROMIUM) -> Iterator[tuple[Playwright, Browser]]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=ARGS)
        try:
            yield playwright, browser
        finally:
            browser.close()


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: Role
    user_id: int
    password: str


@dataclass(frozen=True)
class ReviewWorld:
    settings: Settings
    #: case ids by image name
    cases: dict[str, int]
    #: the original bytes of each scanned image by name
    images: dict[str, bytes]
    people: dict[str, Reviewer]

    def store(self) -> contextlib.closing[Store]:
        return contextlib.closing(open_store(self.settings.resolved_database_url))

    def signed_in(self, browser: Browser, base: str, name: str, **options: Any) -> BrowserContext:
        """A browser context with a session of ``name`` made in the store directly (its
        cookie as the server sets it), for tests that are not about the sign-in form."""
        with self.store() as store:
            _, secret = store.people.create_session(
                self.people[name].user_id, method="password", ip=None
            )
        context = browser.new_context(viewport=VIEWPORT, **options)
        context.add_cookies(
            [
                {
                    "name": COOKIE,
                    "value": secret,
                    "url": f"{base}/ui",
                    "httpOnly": True,
                    "secure": self.settings.ui_secure_cookies,
                    "sameSite": "Strict",
                }
            ]
        )
        return context


#: image name -> how the bank knows it: "exact" (MD5: the policy acts), "edited" (PDQ
#: of the image, which goes to review), None (not in the bank: no case)
IMAGES: dict[str, str | None] = {
    "exact": "md5",
    "edited": "pdq",
    "spare": "md5",
    "another": "pdq",
    "clean": None,
}
PEOPLE = {"alice": Role.REVIEWER, "carol": Role.LEAD, "vera": Role.VIEWER}


def build_review_world(
    home: Path,
    uploads: Path,
    *,
    names: dict[str, str | None] | None = None,
    remote_matched: Collection[str] = (),
    scored: Collection[str] = (),
    **settings: Any,
) -> ReviewWorld:
    """Benign photo-like images in ``uploads``, a bank built from them with the demo's
    review band (exact copies act, PDQ matches go to review), one scan that opens their
    cases with evidence kept, and people with passwords. With ``remote_matched`` or
    ``scored`` (image names), the scan also asks the review demo's remote fakes
    (``demo.remote``: PhotoDNA and Safer match the first, the classifiers score the
    second high, Content Safety opening a classifier-only case)."""
    names = IMAGES if names is None else names
    config = demo_settings(home, workers=1, index_refresh_seconds=0.2, **settings)
    uploads.mkdir(parents=True, exist_ok=True)
    images = {
        name: encode(generate(Kind.PHOTO, seed, 320, 240))
        for seed, name in enumerate(names, start=301)
    }
    hashes = HashOptions.for_scan(OPTIONS)
    entries = []
    for name, data in images.items():
        (uploads / f"{name}.jpg").write_bytes(data)
        how = names[name]
        if how is None:
            continue
        signals = hash_data(data, hashes).signals
        assert signals is not None
        value = signals.md5 if how == "md5" else signals.pdq[0].value
        algorithm = Algorithm.MD5 if how == "md5" else Algorithm.PDQ
        entries.append(BankEntry(algorithm=algorithm, value=value, entry_id=f"e-{name}"))
    hasher = PasswordHasher()
    with contextlib.closing(open_store(config.resolved_database_url, migrate=True)) as store:
        store.banks.create(
            "known", source="generated test images", licence="tests only", policy=DEMO_POLICY
        )
        store.banks.add_entries("known", entries)
        if remote_matched or scored:

            def md5(name: str) -> str:
                return hashlib.md5(images[name], usedforsecurity=False).hexdigest()

            fake = DemoRemote({md5(n) for n in remote_matched}, {md5(n) for n in scored})
            with fake, RemoteMatching(fake.matchers(), config.remote_budget_seconds) as asked:
                done = scan_like_the_cli(store, config, uploads, OPTIONS, remote=asked)
                asked.settle()
        else:
            done = scan_like_the_cli(store, config, uploads, OPTIONS)
        cases = {Path(c.sources[0].path or "").stem: c.id for c in done.cases}
        people = {}
        for name, role in PEOPLE.items():
            password = f"{name}-pass-{role}"
            user = store.people.create_user(name, role, password_hash=hasher.hash(password))
            people[name] = Reviewer(name, role, user.id, password)
    expected = {name for name, how in names.items() if how is not None}
    expected |= {*remote_matched, *scored}
    assert set(cases) == expected, cases
    return ReviewWorld(settings=config, cases=cases, images=images, people=people)
