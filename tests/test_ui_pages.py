"""The review pages over real loopback HTTP: the queue, the case page, blurred previews,
audited reveals, break reminders, decisions, assignment, CSRF, dead letters, exposure
and the audit log. Cases come from scanning benign generated images against banks built
from them, with their evidence kept in the real vault."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image
from sqlalchemy import create_engine, text

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.actions import ActionKind, EventType, NewAction
from hashguard.domain.banks import BankEntry, BankKind
from hashguard.domain.cases import CaseState
from hashguard.domain.people import Role
from hashguard.domain.policy import BankPolicy
from hashguard.domain.scans import ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.evidence import Vault, open_vault
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.keys import master_key_for
from hashguard.matching.matcher import Matcher
from hashguard.review import derivatives
from hashguard.review.exposure import BreakRule, reveal_open
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import OnceVault, Pipeline
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.web.app import create_app
from hashguard.web.ui import pages
from hashguard.web.ui.session import COOKIE, UiError
from tests.server import free_port, running_server

OPTIONS = ScanOptions(max_pixels=10**7)


def now() -> datetime:
    return datetime.now(UTC)


SYSTEM = "system:test"
ROLES = {
    "vera": Role.VIEWER,
    "alice": Role.REVIEWER,
    "bob": Role.REVIEWER,
    "carol": Role.LEAD,
    "adam": Role.ADMIN,
    "audrey": Role.AUDITOR,
}


@dataclass(frozen=True)
class Person:
    name: str
    user_id: int
    secret: str
    csrf: str

    def client(self, base: str, **headers: str) -> httpx.Client:
        return httpx.Client(
            base_url=base,
            cookies={COOKIE: self.secret},
            headers=headers,
            follow_redirects=False,
            timeout=30,
        )


@dataclass(frozen=True)
class World:
    settings: Settings
    #: case ids by image name: act (exact, acted on), review (PDQ review band),
    #: broken (a truncated JPEG on an exact list), nokeep (no evidence kept)
    cases: dict[str, int]
    images: dict[str, bytes]
    people: dict[str, Person]

    def store(self) -> contextlib.closing[Store]:
        return contextlib.closing(open_store(self.settings.resolved_database_url))


def ui_settings(db_url: str, home: Path, **overrides: object) -> Settings:
    opened = open_store(db_url, migrate=True)
    opened.close()
    values: dict[str, object] = {
        "home": home,
        "database_url": db_url,
        "workers": 1,
        "index_refresh_seconds": 0.2,
        "ui_secure_cookies": False,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _scan(store: Store, folder: Path, vault: Callable[[], Vault] | None) -> None:
    prepared = prepare_run(store.scans, [str(folder)], OPTIONS)
    matcher = Matcher.build(store.banks)
    pipeline = Pipeline(
        store=store, actor=SYSTEM, policies=lambda: policies_of(matcher.banks), vault=vault
    )
    with HashingPool(
        workers=1, options=HashOptions.for_scan(OPTIONS), timeout=60, memory_mb=2048
    ) as pool:
        Scanner(store=store.scans, matcher=matcher, pool=pool, pipeline=pipeline).run(prepared.run)


def build_world(settings: Settings, tmp_path: Path) -> World:
    """Benign images, banks made from them, two scans (one keeping evidence), people."""
    jpeg = {
        name: encode(generate(Kind.PHOTO, seed, 320, 240))
        for seed, name in enumerate(["act", "review", "broken", "clean", "nokeep"], 61)
    }
    images = {**jpeg, "broken": jpeg["broken"][: len(jpeg["broken"]) // 2]}
    kept, other = tmp_path / "kept", tmp_path / "other"
    kept.mkdir()
    other.mkdir()
    for name in ("act", "review", "broken", "clean"):
        (kept / f"{name}.jpg").write_bytes(images[name])
    (other / "nokeep.jpg").write_bytes(images["nokeep"])

    hashes = HashOptions.for_scan(OPTIONS)
    review_signals = hash_data(images["review"], hashes).signals
    assert review_signals is not None
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        store.banks.create("known", source="test hotline", licence="tests only")
        store.banks.add_entries(
            "known",
            [
                BankEntry(
                    algorithm=Algorithm.MD5,
                    value=hashlib.md5(images[name]).hexdigest(),
                    entry_id=f"k-{name}",
                    category="A1",
                )
                for name in ("act", "broken", "nokeep")
            ],
        )
        # PDQ never acts on its own here: every PDQ match goes to review
        store.banks.create("soft", source="test ngo", policy=BankPolicy(auto_max_distance=None))
        store.banks.add_entries(
            "soft",
            [
                BankEntry(
                    algorithm=Algorithm.PDQ,
                    value=review_signals.pdq[0].value,
                    entry_id="s-1",
                    category="B2",
                )
            ],
        )
        key = master_key_for(settings)[0]
        _scan(store, kept, OnceVault(lambda: open_vault(settings, store, key)))
        _scan(store, other, None)
        cases = {Path(c.sources[0].path or "").stem: c.id for c in store.cases.list(limit=100)}
        people = {}
        for name, role in ROLES.items():
            user = store.people.create_user(name, role)
            session, secret = store.people.create_session(user.id, method="password", ip=None)
            people[name] = Person(name, user.id, secret, session.csrf_token)
    assert set(cases) == {"act", "review", "broken", "nokeep"}
    return World(settings=settings, cases=cases, images=images, people=people)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    return build_world(
        ui_settings(db_url, tmp_path / "home", review_break_after_reveals=3), tmp_path
    )


def ids(html: str, element: str = "tr", cls: str = "case") -> list[int]:
    return [
        int(found) for found in re.findall(rf'<{element} class="{cls}" data-case-id="(\d+)"', html)
    ]


def form_post(client: httpx.Client, path: str, person: Person, **fields: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": person.csrf, **fields})


def audit_events(world: World, action: str) -> list[tuple[str, str | None, dict[str, object]]]:
    with world.store() as store:
        return [
            (e.actor, e.subject, dict(e.details))
            for e in store.audit.events()
            if e.action == action
        ]


def sharpness(image: Image.Image) -> float:
    """Variance of the Laplacian: how much fine detail an image holds."""
    a = np.asarray(image.convert("L"), dtype=np.float64)
    laplacian = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(laplacian.var())


# -- the queue and the case page --------------------------------------------------------


def test_queue_and_case_page(world: World) -> None:
    cases, people = world.cases, world.people
    with running_server(world.settings) as base, people["alice"].client(base) as alice:
        queue = alice.get("/ui/")
        assert queue.status_code == 200
        assert "default-src 'none'" in queue.headers["content-security-policy"]
        assert queue.headers["cache-control"] == "no-store"
        # with no-referrer, browsers send "Origin: null" on form posts, which the CSRF
        # check refuses: pages ask for same-origin (referrers never leave the site)
        assert '<meta name="referrer" content="same-origin">' in queue.text
        listed = ids(queue.text)
        assert listed == sorted(cases.values(), reverse=True), "needing work, newest first"
        assert f'<a class="case-link" href="/ui/cases/{cases["act"]}">' in queue.text
        assert 'table id="queue"' in queue.text
        assert ids(alice.get("/ui/", params={"state": "confirmed"}).text) == []
        assert alice.get("/ui/", params={"state": "nonsense"}).status_code == 400
        assert ids(alice.get("/ui/", params={"mine": "1"}).text) == []
        ranked = alice.get("/ui/", params={"order": "priority"})
        assert sorted(ids(ranked.text)) == sorted(cases.values())
        assert 'class="priority"' in ranked.text
        assert "By priority" in ranked.text

        page = alice.get(f"/ui/cases/{cases['act']}")
        assert page.status_code == 200
        html = page.text
        assert f'<img id="preview" src="/ui/cases/{cases["act"]}/preview"' in html
        assert 'table id="matches"' in html
        for shown in ("known", "md5", "k-act", "A1", "test hotline", "tests only"):
            assert shown in html
        assert 'id="exposure"' in html
        assert '<form id="reveal"' in html
        assert '<form id="decide"' in html
        assert 'name="reason"' in html
        assert 'value="confirm"' in html, "a first confirmation needs no lead"
        assert 'id="needs-lead"' not in html
        assert '<form id="take"' in html
        assert '<form id="assign"' not in html, "a reviewer does not give cases to others"
        assert 'id="original"' not in html
        assert world.images["act"].hex()[:64] not in html

        review = alice.get(f"/ui/cases/{cases['review']}").text
        for shown in ("soft", "pdq", "s-1", "B2", "test ngo"):
            assert shown in review
        assert "review" in review

        nokeep = alice.get(f"/ui/cases/{cases['nokeep']}").text
        assert 'id="preview"' not in nokeep
        assert "No content was kept" in nokeep
        assert '<form id="reveal"' not in nokeep
        assert alice.get("/ui/cases/999999").status_code == 404

        with people["vera"].client(base) as vera:
            html = vera.get(f"/ui/cases/{cases['act']}").text
            assert 'id="preview"' in html
            for absent in ('<form id="reveal"', '<form id="decide"', '<form id="take"'):
                assert absent not in html
            assert "Dead letters" not in html


# -- derivatives --------------------------------------------------------------------------


def test_the_preview_is_small_grey_blurred_and_never_the_original(world: World) -> None:
    cases, images = world.cases, world.images
    with running_server(world.settings) as base, world.people["vera"].client(base) as vera:
        answer = vera.get(f"/ui/cases/{cases['act']}/preview")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/png"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-preview"] == "blurred"
        assert answer.content != images["act"]
        assert images["act"][:1000] not in answer.content
        preview = Image.open(io.BytesIO(answer.content))
        assert preview.format == "PNG"
        assert preview.mode == "L"
        assert max(preview.size) <= 256
        original = Image.open(io.BytesIO(images["act"]))
        assert preview.size[0] / preview.size[1] == pytest.approx(
            original.size[0] / original.size[1], rel=0.02
        )
        reference = original.convert("L")
        reference.thumbnail(preview.size)
        assert sharpness(preview) < sharpness(reference) / 20, "nothing recognisable"
        assert not preview.info.get("exif")

        broken = vera.get(f"/ui/cases/{cases['broken']}/preview")
        assert broken.status_code == 200
        assert broken.headers["x-preview"] == "placeholder"
        assert Image.open(io.BytesIO(broken.content)).mode == "L"
        assert images["broken"][:1000] not in broken.content
        assert "not a decodable image" in vera.get(f"/ui/cases/{cases['broken']}").text

        assert vera.get(f"/ui/cases/{cases['nokeep']}/preview").status_code == 404
        assert vera.get("/ui/cases/999999/preview").status_code == 404
    # a preview is not a reveal: nothing of it is audited
    assert audit_events(world, "evidence.revealed") == []
    assert audit_events(world, "content.revealed") == []


# -- reveals ------------------------------------------------------------------------------


def test_the_original_only_after_an_audited_reveal_in_this_session(world: World) -> None:
    case_id, alice = world.cases["act"], world.people["alice"]
    original = f"/ui/cases/{case_id}/original"
    with running_server(world.settings) as base, alice.client(base) as http:
        refused = http.get(original)
        assert refused.status_code == 403
        assert world.images["act"][:100] not in refused.content

        revealed = form_post(http, f"/ui/cases/{case_id}/reveal", alice)
        assert revealed.status_code == 303
        assert revealed.headers["location"] == f"/ui/cases/{case_id}"
        ((actor, subject, details),) = audit_events(world, "content.revealed")
        assert (actor, subject) == ("user:alice", f"case:{case_id}")
        assert details["reveals_in_window"] == 1
        assert len(str(details["session"])) == 12
        assert details["evidence"]

        shown = http.get(original)
        assert shown.status_code == 200
        assert shown.content == world.images["act"]
        assert shown.headers["content-type"] == "image/jpeg"
        assert shown.headers["content-disposition"].startswith("inline")
        assert shown.headers["cache-control"] == "no-store"
        assert shown.headers["x-content-type-options"] == "nosniff"
        (fetch,) = audit_events(world, "evidence.revealed")
        assert fetch[0] == "user:alice"
        page = http.get(f"/ui/cases/{case_id}").text
        assert f'<img id="original" src="{original}"' in page
        assert re.search(r'id="exposure">You revealed <strong>1</strong> original\s', page)

        # another session of the same person has not revealed it
        with world.store() as store:
            _, other = store.people.create_session(alice.user_id, method="password", ip=None)
        with httpx.Client(base_url=base, cookies={COOKIE: other}) as second:
            assert second.get(original).status_code == 403
        # a reveal older than review_reveal_seconds no longer opens the original
        with world.store() as store:
            session, stale = store.people.create_session(alice.user_id, method="password", ip=None)
            store.people.record_reveal(
                alice.user_id, case_id, session_id=session.id, at=now() - timedelta(minutes=6)
            )
        with httpx.Client(base_url=base, cookies={COOKIE: stale}) as late:
            assert late.get(original).status_code == 403
        # a viewer may not reveal at all
        with world.people["vera"].client(base) as vera:
            assert (
                form_post(vera, f"/ui/cases/{case_id}/reveal", world.people["vera"]).status_code
                == 403
            )
            assert vera.get(original).status_code == 403
        assert len(audit_events(world, "content.revealed")) == 1


def test_a_break_reminder_after_n_reveals_in_the_window(world: World) -> None:
    case_id, alice = world.cases["review"], world.people["alice"]
    reveal = f"/ui/cases/{case_id}/reveal"
    with running_server(world.settings) as base, alice.client(base) as http:
        for _ in range(3):
            assert form_post(http, reveal, alice).status_code == 303
        reminded = form_post(http, reveal, alice)
        assert reminded.status_code == 200
        assert 'section id="break-reminder"' in reminded.text
        assert 'name="acknowledge_break" value="1"' in reminded.text
        ((actor, subject, details),) = audit_events(world, "review.break_reminded")
        assert (actor, subject, details["reveals"]) == ("user:alice", f"case:{case_id}", 3)
        assert len(audit_events(world, "content.revealed")) == 3, "nothing revealed meanwhile"

        went_on = form_post(http, reveal, alice, acknowledge_break="1")
        assert went_on.status_code == 303
        last = audit_events(world, "content.revealed")[-1][2]
        assert (last["reveals_in_window"], last["after_break_reminder"]) == (4, True)
        # the next one goes through: the next reminder comes at 6
        assert form_post(http, reveal, alice).status_code == 303

        with world.people["carol"].client(base) as carol:
            exposure = carol.get("/ui/exposure")
            assert exposure.status_code == 200
            row = re.search(r'data-name="alice">(.*?)</tr>', exposure.text, re.S)
            assert row is not None
            assert re.findall(r'class="(?:window|today|week)">(\d+)<', row.group(1)) == [
                "5",
                "5",
                "5",
            ]
        assert http.get("/ui/exposure").status_code == 403, "a reviewer does not see others'"


def test_the_exposure_limit_refuses_reveals_until_a_lead_grants_more(world: World) -> None:
    case_id, alice = world.cases["review"], world.people["alice"]
    limit = world.settings.review_reveal_limit
    assert limit == 20, "on by default"
    oldest = now() - timedelta(minutes=50)
    with world.store() as store:  # the limit reached, the first reveal 50 minutes ago
        for n in range(limit):
            store.people.record_reveal(
                alice.user_id, case_id, session_id=None, at=oldest + timedelta(seconds=n)
            )
    reveal = f"/ui/cases/{case_id}/reveal"
    with running_server(world.settings) as base, alice.client(base) as http:
        refused = form_post(http, reveal, alice, acknowledge_break="1")
        assert refused.status_code == 429
        assert 'section id="reveal-refused"' in refused.text
        assert f"You revealed <strong>{limit}</strong> originals" in refused.text
        assert 540 <= int(refused.headers["retry-after"]) <= 600, "until the oldest leaves"
        until = re.search(r'id="refused-until">([^<]+)<', refused.text)
        assert until is not None
        assert until.group(1) == (oldest + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
        ((actor, subject, details),) = audit_events(world, "review.reveal_refused")
        assert (actor, subject, details["reveals"]) == ("user:alice", f"case:{case_id}", limit)
        assert audit_events(world, "content.revealed") == []

        with world.people["carol"].client(base) as carol:
            person = world.people["carol"]
            page = carol.get("/ui/exposure").text
            assert 'form id="grant-form"' in page
            row = re.search(r'data-name="alice">(.*?)</tr>', page, re.S)
            assert row is not None
            assert f"{limit} of {limit}" in row.group(1)
            assert "refused until" in row.group(1)
            own = form_post(carol, "/ui/exposure/grant", person, name="carol", extra="5",
                            reason="mine")  # fmt: skip
            assert own.status_code == 403, "another lead grants a lead's own reveals"
            bad = form_post(carol, "/ui/exposure/grant", person, name="alice", extra="0",
                            reason="x")  # fmt: skip
            assert bad.status_code == 400
            granted = form_post(carol, "/ui/exposure/grant", person, name="alice", extra="1",
                                reason="a report is due")  # fmt: skip
            assert granted.status_code == 303
            assert granted.headers["location"] == "/ui/exposure?done=granted"
            page = carol.get("/ui/exposure?done=granted").text
            assert "+1 by user:carol until" in page
        with world.people["adam"].client(base) as adam:
            assert 'form id="grant-form"' not in adam.get("/ui/exposure").text, "admin: no"
        ((actor, subject, details),) = audit_events(world, "review.reveals_granted")
        assert (actor, subject, details["extra"]) == ("user:carol", "user:alice", 1)

        assert form_post(http, reveal, alice).status_code == 303, "the granted reveal"
        assert form_post(http, reveal, alice).status_code == 429, "and no more"
        assert len(audit_events(world, "content.revealed")) == 1


# -- decisions and assignment --------------------------------------------------------------


def _case(world: World, name: str) -> tuple[CaseState, int, tuple[str, ...]]:
    with world.store() as store:
        case = store.cases.get(world.cases[name])
    return case.state, case.version, case.confirmers


def test_decisions_move_the_case_and_the_final_confirmation_needs_a_lead(world: World) -> None:
    people = world.people
    act = world.cases["act"]
    decide = f"/ui/cases/{act}/decide"
    with running_server(world.settings) as base:
        alice, bob, carol = (people[n].client(base) for n in ("alice", "bob", "carol"))
        state, version, _ = _case(world, "act")
        assert (
            form_post(
                alice, decide, people["alice"], verdict="confirm", version=str(version)
            ).status_code
            == 400
        ), "no reason"
        done = form_post(
            alice, decide, people["alice"], verdict="confirm", reason="seen", version=str(version)
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/cases/{act}?done=confirm"
        assert 'class="flash"' in alice.get(done.headers["location"]).text
        state, version, confirmers = _case(world, "act")
        assert (state, confirmers) == (CaseState.CONFIRMED_ONCE, ("alice",))

        # stale: the form's version is the one before
        stale = form_post(
            bob, decide, people["bob"], verdict="escalate", reason="x", version=str(version - 1)
        )
        assert stale.status_code == 409

        page = bob.get(f"/ui/cases/{act}").text
        assert 'id="needs-lead"' in page
        assert 'value="confirm"' not in page, "a reviewer cannot give the final confirmation"
        refused = form_post(
            bob, decide, people["bob"], verdict="confirm", reason="seen", version=str(version)
        )
        assert refused.status_code == 403
        assert _case(world, "act")[1] == version, "nothing changed"

        assert 'value="confirm"' in carol.get(f"/ui/cases/{act}").text
        final = form_post(
            carol, decide, people["carol"], verdict="confirm", reason="agreed", version=str(version)
        )
        assert final.status_code == 303
        assert _case(world, "act")[0] is CaseState.CONFIRMED
        closed = form_post(
            carol, decide, people["carol"], verdict="escalate", reason="x", version=str(version + 1)
        )
        assert closed.status_code == 409

        # a false positive feeds the allow bank; only a lead names another one
        review = world.cases["review"]
        version = _case(world, "review")[1]
        other_bank = form_post(
            bob,
            f"/ui/cases/{review}/decide",
            people["bob"],
            verdict="false_positive",
            reason="a landscape",
            version=str(version),
            allow_bank="elsewhere",
        )
        assert other_bank.status_code == 403
        bad_name = form_post(
            carol,
            f"/ui/cases/{review}/decide",
            people["carol"],
            verdict="false_positive",
            reason="a landscape",
            version=str(version),
            allow_bank="Not A Name",
        )
        assert bad_name.status_code == 400
        fp = form_post(
            bob,
            f"/ui/cases/{review}/decide",
            people["bob"],
            verdict="false_positive",
            reason="a landscape",
            version=str(version),
        )
        assert fp.status_code == 303
        assert _case(world, "review")[0] is CaseState.FALSE_POSITIVE

        broken = world.cases["broken"]
        escalated = form_post(
            alice,
            f"/ui/cases/{broken}/decide",
            people["alice"],
            verdict="escalate",
            reason="unsure",
            version=str(_case(world, "broken")[1]),
        )
        assert escalated.status_code == 303
        assert _case(world, "broken")[0] is CaseState.ESCALATED
        for client in (alice, bob, carol):
            client.close()
    with world.store() as store:
        allow = store.banks.stats(world.settings.review_allow_bank)
        assert allow.bank.kind is BankKind.ALLOW
        assert sum(allow.active.values()) >= 3
        assert store.banks.find("elsewhere") is None
        actors = [e.actor for e in store.cases.history(act)]
        assert actors[-2:] == ["user:alice", "user:carol"]


def test_assignment(world: World) -> None:
    people, case_id = world.people, world.cases["act"]
    assign = f"/ui/cases/{case_id}/assign"

    def version() -> str:
        return str(_case(world, "act")[1])

    with running_server(world.settings) as base:
        alice, adam, vera = (people[n].client(base) for n in ("alice", "adam", "vera"))
        took = form_post(alice, assign, people["alice"], assignee="alice", version=version())
        assert took.status_code == 303
        assert ids(alice.get("/ui/", params={"mine": "1"}).text) == [case_id]
        assert '<form id="release"' in alice.get(f"/ui/cases/{case_id}").text
        assert (
            form_post(alice, assign, people["alice"], assignee="bob", version=version()).status_code
            == 403
        ), "a reviewer takes cases, does not give them"
        assert (
            form_post(vera, assign, people["vera"], assignee="vera", version=version()).status_code
            == 403
        )
        assert (
            form_post(adam, assign, people["adam"], assignee="vera", version=version()).status_code
            == 400
        ), "a viewer does not review"
        assert (
            form_post(adam, assign, people["adam"], assignee="adam", version=version()).status_code
            == 403
        ), "an admin gives cases to reviewers, does not review them"
        assert '<form id="assign"' in adam.get(f"/ui/cases/{case_id}").text
        given = form_post(adam, assign, people["adam"], assignee="bob", version=version())
        assert given.status_code == 303
        with world.store() as store:
            assert store.cases.get(case_id).assignee == "bob"
        assert (
            form_post(adam, assign, people["adam"], assignee="carol", version="1").status_code
            == 409
        )
        released = form_post(adam, assign, people["adam"], assignee="", version=version())
        assert released.status_code == 303
        for client in (alice, adam, vera):
            client.close()
    with world.store() as store:
        assert store.cases.get(case_id).assignee is None
    assert [d["assignee"] for _, _, d in audit_events(world, "case.assigned")] == [
        "alice",
        "bob",
        None,
    ]


# -- CSRF and sign-in -----------------------------------------------------------------------


def test_csrf_and_origin_are_checked_and_anonymous_requests_sign_in(world: World) -> None:
    alice, case_id = world.people["alice"], world.cases["act"]
    decide = f"/ui/cases/{case_id}/decide"
    version = str(_case(world, "act")[1])
    form = {"verdict": "escalate", "reason": "x", "version": version}
    with running_server(world.settings) as base, alice.client(base) as http:
        assert http.post(decide, data=form).status_code == 403
        assert http.post(decide, data={**form, "csrf_token": "forged"}).status_code == 403
        foreign = http.post(
            decide,
            data={**form, "csrf_token": alice.csrf},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        assert http.post(f"/ui/cases/{case_id}/reveal", data={}).status_code == 403
        assert _case(world, "act")[:2] == (CaseState.OPEN, int(version)), "nothing changed"
        assert audit_events(world, "content.revealed") == []

        same_origin = http.post(
            decide, data={**form, "csrf_token": alice.csrf}, headers={"Origin": base}
        )
        assert same_origin.status_code == 303
        assert _case(world, "act")[0] is CaseState.ESCALATED

        with httpx.Client(base_url=base) as anonymous:
            page = anonymous.get(f"/ui/cases/{case_id}")
            assert page.status_code == 303
            assert page.headers["location"] == f"/ui/login?next=/ui/cases/{case_id}"
            assert anonymous.post(decide, data=form).status_code == 401
            assert anonymous.get(f"/ui/cases/{case_id}/preview").status_code == 303
        with httpx.Client(base_url=base, cookies={COOKIE: "not-a-session"}) as unknown:
            assert unknown.get("/ui/").status_code == 303


# -- dead letters, the audit log -------------------------------------------------------------


def _dead_letter(world: World) -> int:
    with world.store() as store:
        store.actions.enqueue(
            NewAction(
                kind=ActionKind.WEBHOOK,
                idempotency_key="ui-test-1",
                payload={"case": 1},
                event=EventType.CASE_CONFIRMED,
                target="gone",
                subject=f"case:{world.cases['act']}",
            )
        )
        (claimed,) = store.actions.claim_due("test", now(), lease=timedelta(minutes=5))
        assert store.actions.mark_dead(claimed.id, "test", "HTTP 410 Gone", now())
        return claimed.id


def test_dead_letters_can_be_retried(world: World) -> None:
    action_id = _dead_letter(world)
    with running_server(world.settings) as base, world.people["carol"].client(base) as carol:
        listed = carol.get("/ui/dead-letters")
        assert listed.status_code == 200
        assert 'table id="dead-letters"' in listed.text
        assert f'data-action-id="{action_id}"' in listed.text
        assert "HTTP 410 Gone" in listed.text
        retry = f"/ui/dead-letters/{action_id}/retry"
        assert carol.post(retry).status_code == 403, "no CSRF token"
        done = form_post(carol, retry, world.people["carol"])
        assert done.status_code == 303
        assert done.headers["location"] == "/ui/dead-letters?done=retried"
        assert form_post(carol, retry, world.people["carol"]).status_code in (409, 303)
        assert (
            form_post(carol, "/ui/dead-letters/999999/retry", world.people["carol"]).status_code
            == 404
        )
    (retried, *_) = audit_events(world, "action.retried")
    assert retried[:2] == ("user:carol", str(action_id))


def test_audit_page_latest_first_paged_and_verified(world: World) -> None:
    with world.store() as store:
        for n in range(60):
            store.audit.append("cli:test", "test.filler", f"n:{n}", {"n": n})
        head = store.audit.head().seq
    with running_server(world.settings) as base, world.people["audrey"].client(base) as audrey:
        first = audrey.get("/ui/audit")
        assert first.status_code == 200
        assert 'table id="audit"' in first.text
        assert 'data-ok="true"' in first.text
        seqs = [int(s) for s in re.findall(r'class="event" data-seq="(\d+)"', first.text)]
        assert seqs == list(range(head, head - 50, -1))
        older = re.search(r'href="/ui/audit\?before=(\d+)">Older', first.text)
        assert older is not None
        second = audrey.get("/ui/audit", params={"before": older.group(1)}).text
        more = [int(s) for s in re.findall(r'class="event" data-seq="(\d+)"', second)]
        assert more == list(range(head - 50, max(0, head - 100), -1))
        assert "Newer" in second
        assert audrey.get("/ui/").status_code == 403, "an auditor sees no cases"
    engine = create_engine(world.settings.resolved_database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'cli:mallory' WHERE seq = 3"))
    engine.dispose()
    with running_server(world.settings) as base, world.people["audrey"].client(base) as audrey:
        broken = audrey.get("/ui/audit").text
        assert 'data-ok="false"' in broken
        assert "entry 3" in broken


# -- errors as pages ------------------------------------------------------------------------


@contextlib.contextmanager
def serving_with_install(settings: Settings) -> Iterator[str]:
    """The app with ``pages.install`` (a no-op once ``create_app`` installs it)."""
    app = create_app(settings)
    if UiError not in app.exception_handlers:
        pages.install(app)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        assert time.monotonic() < deadline
        assert thread.is_alive()
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_unknown_ui_paths_are_pages_and_the_api_keeps_problems(
    tmp_path: Path,
) -> None:
    settings = ui_settings(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "home")
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        user = store.people.create_user("alice", Role.REVIEWER)
        _, secret = store.people.create_session(user.id, method="password", ip=None)
    with (
        serving_with_install(settings) as base,
        httpx.Client(base_url=base, cookies={COOKIE: secret}) as http,
    ):
        for path, status in (("/ui/nowhere", 404), ("/ui/cases/abc", 404), ("/ui/cases/0", 404)):
            answer = http.get(path)
            assert answer.status_code == status, path
            assert answer.headers["content-type"].startswith("text/html"), path
        wrong = http.get("/ui/cases/1/reveal")
        assert wrong.status_code == 405
        assert wrong.headers["content-type"].startswith("text/html")
        assert "POST" in wrong.headers["allow"]
        api = http.get("/v1/nowhere")
        assert api.headers["content-type"].startswith("application/problem+json")


# -- the pure parts: derivatives and the break rule --------------------------------------


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_derivatives_of_other_modes_sizes_and_refusals() -> None:
    photo = generate(Kind.PHOTO, 71, 1200, 400)
    for source in (photo.convert("RGBA"), photo.convert("P"), photo.convert("L")):
        made = derivatives.preview(_png(source), max_pixels=10**7)
        assert made.placeholder is None
        image = Image.open(io.BytesIO(made.png))
        assert (image.mode, image.size) == ("L", (256, 85))
    tiny = derivatives.preview(_png(photo.resize((12, 9))), max_pixels=10**7)
    assert Image.open(io.BytesIO(tiny.png)).size == (12, 9)

    over_cap = derivatives.preview(encode(photo), max_pixels=1000)
    assert over_cap.placeholder is not None
    assert "cap" in over_cap.placeholder
    not_an_image = derivatives.preview(b"%PDF-1.7 not an image", max_pixels=10**7)
    assert not_an_image.placeholder == "not an image format that is previewed"
    for made in (over_cap, not_an_image):
        assert Image.open(io.BytesIO(made.png)).size == derivatives.PLACEHOLDER_SIZE

    assert derivatives.media_type(encode(photo)) == "image/jpeg"
    assert derivatives.media_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None


def test_break_rule() -> None:
    rule = BreakRule(after=3, window=timedelta(minutes=60))
    assert [n for n in range(10) if rule.due(n)] == [3, 6, 9]
    assert not any(BreakRule(after=0, window=timedelta(minutes=1)).due(n) for n in range(5))
    at = now()
    assert reveal_open(at - timedelta(seconds=299), at, seconds=300)
    assert not reveal_open(at - timedelta(seconds=301), at, seconds=300)
    assert not reveal_open(None, at, seconds=300)
