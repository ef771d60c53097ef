"""The notices queue and a notice's page in the review UI, and the statements of reasons
on the case page, over real loopback HTTP. Notices come in through the intake, are
resolved through a loopback platform callback (benign generated images) and the one
pipeline, and are decided through the case page's form; the time to decision is
checked against set times on the pure ``notices.progress``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hashguard.domain.cases import CaseEvent, CaseEventKind, CaseState
from hashguard.domain.notices import NoticeCategory, NoticeChannel, NoticeState, Notifier
from hashguard.domain.notices import NotifierKind as Kind
from hashguard.domain.people import Role
from hashguard.domain.scans import ScanOptions
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.notices.intake import NoticeRequest, receive
from hashguard.notices.progress import Outcome, progress
from hashguard.settings import Settings
from hashguard.statements import service
from hashguard.store import Store, open_store
from hashguard.web.ui.notices import duration
from hashguard.web.ui.session import COOKIE
from tests.fakes.platform import Platform
from tests.server import running_server
from tests.test_notices import CLEAN, KNOWN, OTHER_SECRET, SECRET, STOPLINE, Clock, _resolver, _url

OPTIONS = ScanOptions(max_pixels=10**7)
EMAIL = "person@example.test"


@dataclass(frozen=True)
class Person:
    secret: str
    csrf: str

    def client(self, base: str) -> httpx.Client:
        return httpx.Client(
            base_url=base, cookies={COOKIE: self.secret}, follow_redirects=False, timeout=30
        )


@dataclass(frozen=True)
class World:
    settings: Settings
    #: notice ids: user (a non-match, to review), hotline (a match, acted on), gone (not
    #: on the platform), broken (the callback fails)
    notices: dict[str, int]
    #: case ids of the resolved notices
    cases: dict[str, int]
    people: dict[str, Person]

    def store(self) -> contextlib.closing[Store]:
        return contextlib.closing(open_store(self.settings.resolved_database_url))


def _send(store: Store, url: str, notifier: Notifier, *, token: str | None = None) -> int:
    return receive(
        store,
        NoticeRequest(
            urls=(url,),
            category=NoticeCategory.CHILD_SEXUAL_ABUSE,
            explanation="seen on the site; the analyst assessed it",
            notifier=notifier,
        ),
        actor="system:test",
        channel=NoticeChannel.FORM if token is None else NoticeChannel.API,
        at=datetime.now(UTC),
        notifiers={"stopline": STOPLINE},
        token_name=token,
    ).notice.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    home = tmp_path_factory.mktemp("ui-notices")
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'hashguard.db'}",
        workers=1,
        ui_secure_cookies=False,
        notices_run_minutes=0,
        statements_run_minutes=0,
        reports_run_minutes=0,
    )
    platform = Platform(SECRET, wrong_secret=OTHER_SECRET)
    try:
        with (
            contextlib.closing(open_store(settings.resolved_database_url, migrate=True)) as store,
            HashingPool(
                workers=1, options=HashOptions.for_scan(OPTIONS), timeout=60, memory_mb=2048
            ) as pool,
        ):
            service.change_settings(
                store,
                lambda: pytest.fail("no secret is sealed here"),
                statements={"issue": True},
                sink_settings={},
                token=None,
                actor="cli:test",
                at=datetime.now(UTC),
            )
            user = Notifier(kind=Kind.USER, name="A Person", email=EMAIL, reference="my-ref")
            notices = {
                "user": _send(store, _url(platform, "bytes", CLEAN), user),
                "hotline": _send(
                    store,
                    _url(platform, "bytes", KNOWN),
                    Notifier(kind=Kind.HOTLINE, reference="SL-2026-0042"),
                    token="sl",
                ),
                "gone": _send(store, _url(platform, "gone", 0), Notifier(kind=Kind.USER)),
                "broken": _send(store, _url(platform, "status", 500), Notifier(kind=Kind.USER)),
            }
            clock = Clock()
            clock.now = datetime.now(UTC)
            _resolver(store, pool, platform, home, clock).resolve_due()
            cases = {
                name: store.notices.get(notice_id).case_ids[0]
                for name, notice_id in notices.items()
                if name in ("user", "hotline")
            }
            people = {}
            for name, role in (
                ("vera", Role.VIEWER),
                ("alice", Role.REVIEWER),
                ("carol", Role.LEAD),
            ):
                person = store.people.create_user(name, role)
                session, secret = store.people.create_session(person.id, method="password", ip=None)
                people[name] = Person(secret, session.csrf_token)
    finally:
        platform.close()
    return World(settings=settings, notices=notices, cases=cases, people=people)


@pytest.fixture(scope="module")
def base(world: World) -> Iterator[str]:
    with running_server(world.settings) as url:
        yield url


def listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="notice[^"]*" data-notice-id="(\d+)"', html)]


def row(html: str, notice_id: int) -> str:
    return html.split(f'data-notice-id="{notice_id}"', 1)[1].split("</tr>", 1)[0]


def test_the_queue_orders_marks_and_filters_notices(world: World, base: str) -> None:
    n = world.notices
    with world.people["vera"].client(base) as vera:
        queue = vera.get("/ui/notices")
        assert queue.status_code == 200
        assert '<a href="/ui/notices">Notices</a>' in queue.text
        # undecided by default: a notice in review and one whose callback failed
        assert listed(queue.text) == [n["user"], n["broken"]]
        everything = vera.get("/ui/notices", params={"state": "all"}).text
        # the configured hotline's notice first though it came later; then oldest first
        assert listed(everything) == [n["hotline"], n["user"], n["gone"], n["broken"]]
        hotline = row(everything, n["hotline"])
        assert 'class="notice configured"' in everything
        assert '<span class="badge"' in hotline
        assert "BEE SECURE Stopline" in hotline
        assert "SL-2026-0042" in hotline
        assert f'href="/ui/cases/{world.cases["hotline"]}"' in hotline
        assert "restricted" in hotline
        assert "so far" not in hotline
        user = row(everything, n["user"])
        assert "A Person" in user
        assert "my-ref" in user
        assert "in review" in user
        assert "so far" in user
        assert "not on the platform" in row(everything, n["gone"])
        assert "not resolved yet" in row(everything, n["broken"])
        assert listed(vera.get("/ui/notices", params={"state": "failed"}).text) == [n["broken"]]
        decided = vera.get("/ui/notices", params={"state": "decided"}).text
        assert listed(decided) == [n["hotline"], n["gone"]]
        assert vera.get("/ui/notices", params={"state": "nonsense"}).status_code == 400
        for page in (everything, vera.get(f"/ui/notices/{n['user']}").text):
            assert EMAIL not in page  # the notifier's address is not shown
            assert KNOWN.hex()[:64] not in page


def test_a_notice_page_shows_its_items_cases_and_decision(world: World, base: str) -> None:
    n, cases = world.notices, world.cases
    with world.people["vera"].client(base) as vera:
        hotline = vera.get(f"/ui/notices/{n['hotline']}")
        assert hotline.status_code == 200
        html = hotline.text
        assert "configured (stopline)" in html
        assert "seen on the site; the analyst assessed it" in html
        assert "https://files.example.test/u/" in html  # the notice's own URL
        assert f'<a class="case-link" href="/ui/cases/{cases["hotline"]}">' in html
        assert "restricted, " in html
        assert "by automated means" in html
        assert "(decided " in html
        user = vera.get(f"/ui/notices/{n['user']}").text
        assert "given (not shown here)" in user
        assert "so far (undecided)" in user
        broken = vera.get(f"/ui/notices/{n['broken']}").text
        assert "HTTP 500" in broken
        assert vera.get("/ui/notices/987654").status_code == 404
        # the case page links back to its notice
        case = vera.get(f"/ui/cases/{cases['hotline']}").text
        assert f'<a class="notice-link" href="/ui/notices/{n["hotline"]}">' in case
    with httpx.Client(base_url=base, follow_redirects=False) as anonymous:
        refused = anonymous.get(f"/ui/notices/{n['hotline']}")
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/ui/login?next=")


def _section(html: str) -> str:
    return html.split('<section id="statements"', 1)[1].split("</section>", 1)[0]


def test_the_case_page_shows_each_statement_as_the_uploader_reads_it(
    world: World, base: str
) -> None:
    cases, people = world.cases, world.people
    with people["vera"].client(base) as vera:
        acted = _section(vera.get(f"/ui/cases/{cases['hotline']}").text)
    assert acted.count('<article class="statement"') == 1
    assert "Automated decision" in acted
    assert "fully automated" in acted
    assert "yes (hash matching)" in acted
    assert "access disabled" in acted
    assert "reported to the host by a trusted flagger" not in acted  # a hotline: Art. 16
    assert "reported to the host in a notice (Article 16 DSA)" in acted
    assert "Article 5 of Directive 2011/93/EU" in acted
    assert "internal complaint-handling system" in acted
    assert "not filed: the sink is off" in acted
    with world.store() as store:
        (statement,) = store.statements.for_case(cases["hotline"])
    assert statement.puid in acted
    # the text as the uploader reads it, escaped for HTML
    assert statement.text.splitlines()[0] in acted
    assert '<pre class="statement-text">Statement of reasons (Article 17' in acted

    # the notice in review: no statement until people decide
    with people["alice"].client(base) as alice:
        before = alice.get(f"/ui/cases/{cases['user']}").text
        assert 'id="statements-none"' in _section(before)
        version = re.search(r'id="case-version">(\d+)<', before)
        assert version is not None
        confirm = {"verdict": "confirm", "reason": "it is", "csrf_token": people["alice"].csrf}
        sent = alice.post(
            f"/ui/cases/{cases['user']}/decide", data={**confirm, "version": version[1]}
        )
        assert sent.status_code == 303
    with people["carol"].client(base) as carol:
        page = carol.get(f"/ui/cases/{cases['user']}").text
        version = re.search(r'id="case-version">(\d+)<', page)
        assert version is not None
        final = {**confirm, "csrf_token": people["carol"].csrf, "version": version[1]}
        assert carol.post(f"/ui/cases/{cases['user']}/decide", data=final).status_code == 303
        confirmed = _section(carol.get(f"/ui/cases/{cases['user']}").text)
        assert "Confirmed by people" in confirmed
        assert "not automated: decided by people" in confirmed
        assert "content removed" in confirmed
        assert "The content was not detected by automated means." in confirmed
        # the notice is decided now: restricted, by people
        decided = carol.get("/ui/notices", params={"state": "decided"}).text
        assert world.notices["user"] in listed(decided)
        assert "restricted" in row(decided, world.notices["user"])
        notice = carol.get(f"/ui/notices/{world.notices['user']}").text
        assert "by people" in notice


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _event(
    case_id: int, minutes: int, kind: CaseEventKind, to: CaseState | None, **src: str
) -> CaseEvent:
    details = {"source": {"kind": "notice", **src}} if src else {}
    return CaseEvent(
        case_id=case_id,
        at=T0 + timedelta(minutes=minutes),
        actor="t",
        kind=kind,
        from_state=None,
        to_state=to,
        reason=None,
        details=details,
    )


def test_time_to_decision_from_set_times(world: World) -> None:
    with world.store() as store:
        user_notice = store.notices.get(world.notices["user"])
        hotline_notice = store.notices.get(world.notices["hotline"])
        gone_notice = store.notices.get(world.notices["gone"])
        broken_notice = store.notices.get(world.notices["broken"])
        acted = store.cases.get(world.cases["hotline"])
        reviewed = store.cases.get(world.cases["user"])
    received = replace(user_notice, received_at=T0)
    opened = _event(reviewed.id, 1, CaseEventKind.OPENED, CaseState.OPEN, ref=str(received.id))
    once = _event(reviewed.id, 90, CaseEventKind.CONFIRMED, CaseState.CONFIRMED_ONCE)
    final = _event(reviewed.id, 125, CaseEventKind.CONFIRMED, CaseState.CONFIRMED)
    undecided = replace(reviewed, state=CaseState.CONFIRMED_ONCE)
    now = T0 + timedelta(hours=5)
    # in review: its age so far
    waiting = progress(received, {reviewed.id: (undecided, [opened, once])}, now=now)
    assert (waiting.outcome, waiting.decided_at, waiting.elapsed) == (
        Outcome.IN_REVIEW,
        None,
        timedelta(hours=5),
    )
    # decided by people: received → the final confirmation (not the first one)
    done = progress(received, {reviewed.id: (reviewed, [opened, once, final])}, now=now)
    assert (done.outcome, done.elapsed) == (Outcome.RESTRICTED, timedelta(minutes=125))
    assert not done.cases[0].automated
    # an automated act on the notice's own sighting decides it when it happened
    auto = replace(hotline_notice, received_at=T0)
    seen = _event(acted.id, 3, CaseEventKind.SEEN_AGAIN, None, ref=str(auto.id))
    other = _event(acted.id, 1, CaseEventKind.OPENED, CaseState.OPEN, ref="999")
    fast = progress(auto, {acted.id: (acted, [other, seen])}, now=now)
    assert (fast.outcome, fast.elapsed, fast.cases[0].automated) == (
        Outcome.RESTRICTED,
        timedelta(minutes=3),
        True,
    )
    # a false positive: not restricted; a case that is gone: undecided
    wrong = replace(reviewed, state=CaseState.FALSE_POSITIVE)
    fp = _event(reviewed.id, 30, CaseEventKind.FALSE_POSITIVE, CaseState.FALSE_POSITIVE)
    assert progress(received, {reviewed.id: (wrong, [opened, fp])}, now=now).outcome is (
        Outcome.NOT_RESTRICTED
    )
    assert progress(received, {reviewed.id: None}, now=now).outcome is Outcome.IN_REVIEW
    # not on the platform: decided when resolved; failed: open, its age
    gone = replace(gone_notice, received_at=T0, resolved_at=T0 + timedelta(seconds=40))
    assert progress(gone, {}, now=now).elapsed == timedelta(seconds=40)
    assert broken_notice.state is NoticeState.FAILED
    stuck = progress(replace(broken_notice, received_at=T0), {}, now=now)
    assert (stuck.outcome, stuck.elapsed) == (Outcome.OPEN, timedelta(hours=5))
    assert [duration(timedelta(seconds=s)) for s in (5, 125, 3 * 3600 + 60, 2 * 86400 + 7200)] == [
        "5 s",
        "2 min",
        "3 h 1 min",
        "2 d 2 h",
    ]
