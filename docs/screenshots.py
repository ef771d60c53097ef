"""Screenshots of the review UI for the README: ``make screenshots``.

Builds the demo (benign generated images only) in a temporary folder, scans it the way
``hashguard demo`` does, serves it on a free loopback port, signs in through the form
in Debian's Chromium and writes docs/img/review-queue.png, docs/img/review-case.png
(a case page with its blurred preview, before any reveal) docs/img/review-notices.png
(the notices queue: a few notices resolved by the real resolver, the platform's
callback answered in process with the demo's own files) and docs/img/review-stats.png
(the statistics dashboard, signed in as a lead); with the video extra also
docs/img/review-video.png (the demo clip's case: its contact sheet of blurred frames).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
from argon2 import PasswordHasher
from playwright.sync_api import Page, ViewportSize, sync_playwright
from pydantic import SecretStr
from standardwebhooks import Webhook

from hashguard.demo.run import (
    CLIP,
    DemoLayout,
    build,
    demo_settings,
    import_demo_bank,
    scan_like_the_cli,
)
from hashguard.domain.notices import NoticeCategory, NoticeChannel, Notifier, NotifierKind
from hashguard.domain.people import Role
from hashguard.domain.scans import ScanOptions
from hashguard.keys import master_key_for
from hashguard.notices.intake import NoticeRequest, receive
from hashguard.notices.service import configured_resolver
from hashguard.plugins import Registry
from hashguard.review.cases import assign
from hashguard.review.decide import Verdict, apply_verdict
from hashguard.settings import NotifierSettings, Settings
from hashguard.store import Store, open_store
from hashguard.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUT = Path(__file__).resolve().parent / "img"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
#: the case shown: an edited (rotated) copy, found by PDQ, waiting for review
SHOWN = "known-1-rotated.jpg"
NAME, PASSWORD = "demo-reviewer", "screenshots-only"
#: the statistics are for leads, admins and auditors
LEAD = "demo-lead"
MAX_BYTES = 300_000


def prepare(root: Path) -> tuple[Settings, int, int | None]:
    """The demo's data, a reviewer, and a little history in the queue; the case shown,
    and the clip's case (with the video extra)."""
    settings = demo_settings(root / "home", workers=1, index_refresh_seconds=0.5)
    layout = build(root / "demo")
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        import_demo_bank(store, layout)
        done = scan_like_the_cli(
            store, settings, layout.uploads, ScanOptions(max_pixels=10**8, dihedral=True)
        )
        store.people.create_user(NAME, Role.REVIEWER, password_hash=PasswordHasher().hash(PASSWORD))
        store.people.create_user(LEAD, Role.LEAD, password_hash=PasswordHasher().hash(PASSWORD))
        by_name = {Path(c.sources[0].path or "").name: c for c in done.cases}
        # near the top of the queue (newest first): one confirmed once, one assigned
        clip = by_name[CLIP].id if CLIP in by_name else None
        newest = sorted(
            (c.id for c in done.cases if c.id not in (by_name[SHOWN].id, clip)), reverse=True
        )
        apply_verdict(
            store,
            newest[1],
            Verdict.CONFIRM,
            actor="user:demo-lead",
            reason="the crop shows the listed image",
            second_confirmation=settings.review_second_confirmation,
            allow_bank=settings.review_allow_bank,
            endpoints=(),
        )
        assign(store, newest[3], NAME, actor="user:demo-lead", reason=None)
        add_notices(settings, store, layout)
        return settings, by_name[SHOWN].id, clip


#: the demo's notifiers: a configured hotline and a trusted flagger (made up)
NOTIFIERS = {
    "demo-hotline": NotifierSettings(
        name="Demo Hotline", kind=NotifierKind.HOTLINE, tokens=("demo-hotline",)
    ),
    "demo-flagger": NotifierSettings(
        name="Demo Trusted Flagger", kind=NotifierKind.TRUSTED_FLAGGER, tokens=("demo-flagger",)
    ),
}
SITE = "https://files.example.test/u/"


def add_notices(settings: Settings, store: Store, layout: DemoLayout) -> None:
    """Notices for some demo files (and one URL the platform does not have), resolved by
    the real resolver; one more is left waiting."""
    secret = "whsec_" + base64.b64encode(b"screenshots-only-callback-secret").decode()
    files = {SITE + p.name: p for p in layout.uploads.iterdir()}

    def platform(request: httpx.Request) -> httpx.Response:
        path = files.get(json.loads(request.content)["data"]["url"])
        found = {"found": False}
        if path is not None:
            data = base64.b64encode(path.read_bytes()).decode()
            found = {"found": True, "content_id": path.stem, "data": data}  # type: ignore[dict-item]
        raw, msg, now = json.dumps(found), request.headers["webhook-id"], datetime.now(UTC)
        return httpx.Response(
            200,
            content=raw,
            headers={
                "content-type": "application/json",
                "webhook-id": msg,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(secret).sign(msg, now, raw),
            },
        )

    def send(name: str, notifier: Notifier, token: str | None = None) -> None:
        receive(
            store,
            NoticeRequest(
                urls=(SITE + name,),
                category=NoticeCategory.CHILD_SEXUAL_ABUSE,
                explanation="Assessed as child sexual abuse material (demo notice).",
                notifier=notifier,
            ),
            actor="system:demo",
            channel=NoticeChannel.FORM if token is None else NoticeChannel.API,
            at=datetime.now(UTC),
            notifiers=NOTIFIERS,
            token_name=token,
        )

    user = Notifier(kind=NotifierKind.USER)
    send("other-00.jpg", user)
    send(
        "known-0-exact-copy.jpg",
        Notifier(kind=NotifierKind.HOTLINE, reference="DH-2026-0042"),
        "demo-hotline",
    )
    send("removed-long-ago.jpg", user)
    send(
        "known-1-cropped.jpg",
        Notifier(kind=NotifierKind.TRUSTED_FLAGGER, reference="TF-118"),
        "demo-flagger",
    )
    configured = settings.model_copy(
        update={"notices_callback_url": "https://platform.example/resolve",
                "notices_callback_secret": SecretStr(secret)}
    )  # fmt: skip
    key = master_key_for(settings)[0]
    with configured_resolver(configured, store, Registry.load(), lambda: key) as resolver:
        assert resolver.callback is not None
        callback = dataclasses.replace(resolver.callback, transport=httpx.MockTransport(platform))
        dataclasses.replace(resolver, callback=callback).resolve_due()
    send("other-02.jpg", Notifier(kind=NotifierKind.USER, name="A Person", reference="my report"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.1)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sign_in(page: Page, base: str, name: str = NAME) -> None:
    """Through the sign-in form, as a person would."""
    page.goto(f"{base}/ui/login")
    page.fill("form#login input[name=username]", name)
    page.fill("form#login input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")
    page.wait_for_url(f"{base}/ui/")


def shoot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=False)
    size = path.stat().st_size
    print(f"{path}: {size // 1024} KB")
    if size >= MAX_BYTES:
        raise SystemExit(f"{path} is {size} bytes, over {MAX_BYTES}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hashguard-shots-") as tmp:
        settings, case_id, clip_id = prepare(Path(tmp))
        with serving(settings) as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                page = context.new_page()
                sign_in(page, base)
                page.wait_for_selector("table#queue")
                shoot(page, OUT / "review-queue.png")
                page.goto(f"{base}/ui/cases/{case_id}")
                page.wait_for_function(
                    "() => { const i = document.getElementById('preview');"
                    " return i && i.complete && i.naturalWidth > 0; }"
                )
                assert page.locator("img#original").count() == 0, "before any reveal"
                shoot(page, OUT / "review-case.png")
                if clip_id is not None:
                    page.goto(f"{base}/ui/cases/{clip_id}")
                    page.wait_for_function(
                        "() => { const s = document.querySelectorAll('img.frame-preview');"
                        " return s.length > 0 && Array.from(s).every("
                        "i => i.complete && i.naturalWidth > 0); }"
                    )
                    assert page.locator("video").count() == 0, "never played"
                    shoot(page, OUT / "review-video.png")
                page.goto(f"{base}/ui/notices?state=all")
                page.wait_for_selector("table#notices")
                shoot(page, OUT / "review-notices.png")
                lead = browser.new_context(viewport=VIEWPORT, device_scale_factor=1).new_page()
                sign_in(lead, base, LEAD)
                lead.goto(f"{base}/ui/stats")
                lead.wait_for_selector("#lists-table")
                # the charts are drawn at the page's width: half size shows several at once
                lead.evaluate("document.body.style.zoom = '0.5'")
                shoot(lead, OUT / "review-stats.png")
            finally:
                browser.close()


if __name__ == "__main__":
    main()
