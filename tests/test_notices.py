"""DSA Art. 16 notices: intake through the API (validation, scope, role, priority, the
acknowledgement webhook) and the public form (CSRF, rate limit, size, no open redirect,
a browser submitting it); resolution through a loopback platform callback answering
signed content (benign generated images) and the one pipeline: a match opens a case
with the match, a non-match a notice-only review case, undecodable bytes a typed state
and a case; a callback error, timeout or bad signature is ``failed`` and retried, never
"no match"; a resolver killed between steps loses nothing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hashguard.cli.app import app as cli_app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.audit import AuditAction
from hashguard.domain.backoff import Backoff
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import SourceKind
from hashguard.domain.notices import (
    PRIORITY_CONFIGURED,
    ItemState,
    Notice,
    NoticeCategory,
    NoticeChannel,
    NoticeState,
    Notifier,
    NotifierKind,
)
from hashguard.domain.people import Role
from hashguard.domain.policy import Action
from hashguard.domain.scans import ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.evidence.vault import Vault
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.jobs.builtin import NOTICES, builtin_jobs
from hashguard.jobs.runner import JobRunner
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.notices.callback import PlatformCallback
from hashguard.notices.intake import NEXT_STEPS, NoticeRequest, receive
from hashguard.notices.resolve import NO_MATCH_RULE, UNDECODABLE_RULE, Resolver
from hashguard.plugins import Registry
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.settings import NotifierSettings, Settings
from hashguard.store import Store, open_store
from hashguard.store.notices import NoticeBusy
from hashguard.web.ui.notice import FORM_COOKIE, FORM_FIELD, FormLimiter
from tests.api_support import assert_problem, bearer
from tests.browser_support import VIEWPORT, chromium_or_skip, launched
from tests.fakes.platform import Platform
from tests.server import running_server

KNOWN = encode(generate(Kind.PHOTO, 1401, 320, 240))
CLEAN = encode(generate(Kind.PHOTO, 1402, 320, 240))
SECRET = "whsec_" + base64.b64encode(b"notices-test-secret-0123456789ab").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-platform-secret-abcdefgh").decode()
NOWHERE = "http://127.0.0.1:9/hook"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPTIONS = ScanOptions(max_pixels=10**7)
STOPLINE = NotifierSettings(name="BEE SECURE Stopline", kind=NotifierKind.HOTLINE, tokens=("sl",))


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    served = Platform(SECRET, wrong_secret=OTHER_SECRET)
    yield served
    served.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[HashingPool]:
    with HashingPool(
        workers=1, options=HashOptions.for_scan(OPTIONS), timeout=60, memory_mb=2048
    ) as opened:
        yield opened


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _resolver(
    store: Store,
    pool: HashingPool,
    platform: Platform,
    tmp_path: Path,
    clock: Clock,
    *,
    checkpoint: Callable[[str], None] | None = None,
    roots: tuple[str, ...] = (),
) -> Resolver:
    if not store.banks.list():
        store.banks.create("known")
        store.banks.add_entries(
            "known",
            [BankEntry(algorithm=Algorithm.MD5, value=hashlib.md5(KNOWN).hexdigest())],
        )
    matcher = Matcher.build(store.banks)
    vault = Vault(store.evidence, MasterKey(secrets.token_bytes(32)), tmp_path / "evidence")
    pipeline = Pipeline(
        store=store,
        actor="system:notices",
        policies=lambda: policies_of(matcher.banks),
        matcher=matcher,
        hashing=pool,
        vault=lambda: vault,
    )
    callback = PlatformCallback(
        url=platform.url, secret=SECRET, timeout=0.5, max_bytes=1024 * 1024, roots=roots
    )
    extra = {"checkpoint": checkpoint} if checkpoint else {}
    return Resolver(
        store=store,
        pipeline=pipeline,
        callback=callback,
        backoff=Backoff(first=timedelta(seconds=60), longest=timedelta(seconds=600)),
        clock=clock,
        **extra,  # type: ignore[arg-type]
    )


def _notice(store: Store, *urls: str, at: datetime = T0, token: str | None = None) -> int:
    ack = receive(
        store,
        NoticeRequest(
            urls=urls,
            category=NoticeCategory.CHILD_SEXUAL_ABUSE,
            explanation="reported by a hotline",
            notifier=Notifier(kind=NotifierKind.HOTLINE, reference="SL-1"),
        ),
        actor="system:test",
        channel=NoticeChannel.API,
        at=at,
        notifiers={"stopline": STOPLINE},
        token_name=token,
    )
    return ack.notice.id


def _url(platform: Platform, kind: str, value: Any) -> str:
    url = f"https://files.example.test/u/{secrets.token_hex(4)}"
    platform.content[url] = (kind, value)
    return url


def _audit(store: Store, notice_id: int) -> list[str]:
    return [e.action for e in store.audit.events() if e.subject == f"notice:{notice_id}"]


# -- resolution (SQLite and PostgreSQL) -------------------------------------------------


def test_a_match_opens_a_case_with_it_and_a_non_match_a_notice_only_review_case(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    clock = Clock()
    resolver = _resolver(store, pool, platform, tmp_path, clock)
    notice_id = _notice(store, _url(platform, "bytes", KNOWN), _url(platform, "bytes", CLEAN))
    notice = resolver.resolve_due()[0]
    assert notice.id == notice_id
    assert notice.state is NoticeState.RESOLVED
    matched, clean = (store.cases.get(i.case_id) for i in notice.items if i.case_id)
    assert [i.outcome for i in notice.items] == ["matched", "no_match"]
    assert matched.banks == ("known",)
    assert matched.decision.action is Action.ACT
    assert matched.evidence_id is not None
    assert clean.matches == ()
    assert clean.decision.action is Action.REVIEW
    assert clean.decision.rule == NO_MATCH_RULE
    assert clean.evidence_id is None
    for case in (matched, clean):
        assert [(s.kind, s.ref) for s in case.sources] == [(SourceKind.NOTICE, str(notice_id))]
    assert _audit(store, notice_id) == [
        AuditAction.NOTICE_RECEIVED,
        AuditAction.NOTICE_RESOLVING,
        # the matched item's automatic act is a decision the notifier is told of
        AuditAction.NOTICE_DECIDED,
        AuditAction.NOTICE_RESOLVED,
    ]
    assert resolver.resolve_due() == []  # nothing is due twice


def test_not_found_failed_retried_and_never_no_match(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    clock = Clock()
    resolver = _resolver(store, pool, platform, tmp_path, clock)
    missing = _notice(store, _url(platform, "gone", 0))
    broken_url = _url(platform, "status", 500)
    broken = _notice(store, broken_url)
    slow = _notice(store, _url(platform, "slow", 0))
    forged = _notice(store, _url(platform, "badsig", KNOWN))
    done = {n.id: n for n in resolver.resolve_due()}
    assert done[missing].state is NoticeState.NOT_FOUND
    assert not done[missing].case_ids
    for notice_id, why in ((broken, "HTTP 500"), (slow, "ReadTimeout"), (forged, "not signed")):
        notice = done[notice_id]
        assert notice.state is NoticeState.FAILED, notice
        assert notice.items[0].state is ItemState.FAILED
        assert notice.items[0].outcome is None
        assert why in (notice.last_error or "")
        assert notice.attempts == 1
        assert notice.next_attempt_at == T0 + timedelta(seconds=60)
        assert AuditAction.NOTICE_FAILED in _audit(store, notice_id)
    assert store.cases.list() == []
    # not due again before the backoff; then retried, and this time the platform answers
    assert store.notices.due(T0 + timedelta(seconds=59)) == []
    platform.content[broken_url] = ("bytes", CLEAN)
    clock.now = T0 + timedelta(seconds=60)
    again = {n.id: n for n in resolver.resolve_due()}
    assert set(again) == {broken, slow, forged}
    assert again[broken].state is NoticeState.RESOLVED
    assert again[forged].attempts == 2
    assert again[forged].next_attempt_at == clock.now + timedelta(seconds=120)


def test_undecodable_content_is_a_typed_state_with_a_case(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    resolver = _resolver(store, pool, platform, tmp_path, Clock())
    notice_id = _notice(store, _url(platform, "bytes", b"\xff\xd8\xff\xe0 not really a jpeg"))
    notice = resolver.resolve(notice_id)
    assert notice.state is NoticeState.UNDECODABLE
    (item,) = notice.items
    assert item.state is ItemState.UNDECODABLE
    assert item.outcome == "undecodable"
    case = store.cases.get(item.case_id or 0)
    assert case.decision.rule == UNDECODABLE_RULE
    assert case.decision.action is Action.REVIEW


def test_a_resolver_killed_between_steps_loses_nothing(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    class Killed(BaseException):
        pass

    def kill(step: str) -> None:
        if step == "committed":
            raise Killed

    notice_id = _notice(store, _url(platform, "bytes", KNOWN), _url(platform, "bytes", CLEAN))
    with pytest.raises(Killed):
        _resolver(store, pool, platform, tmp_path, Clock(), checkpoint=kill).resolve_due()
    cut = store.notices.get(notice_id)
    assert cut.state is NoticeState.RESOLVING  # still due: taken again
    assert [i.state for i in cut.items] == [ItemState.PENDING, ItemState.PENDING]
    assert len(store.cases.list()) == 1  # the first item's commit happened
    (notice,) = _resolver(store, pool, platform, tmp_path, Clock()).resolve_due()
    assert notice.state is NoticeState.RESOLVED
    cases = store.cases.list()
    assert sorted(c.id for c in cases) == sorted(notice.case_ids)
    opened = [e for e in store.audit.events() if e.action == AuditAction.CASE_OPENED]
    assert len(opened) == 2  # the first item done again changed nothing


def test_every_unusable_callback_answer_is_failed_and_retried_never_no_match(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    """The platform unreachable, or an answer hashguard cannot use (no content, not
    base64, no boolean ``found``, larger than the limit): ``failed`` with why, no case,
    no outcome, due again after the backoff and listed as open meanwhile."""
    clock = Clock()
    resolver = _resolver(store, pool, platform, tmp_path, clock)
    answers: dict[str, Any] = {
        "neither 'data' nor 'location'": {"found": True, "content_id": "c-1"},
        "not base64": {"found": True, "data": "%%% not base64 %%%"},
        "no boolean 'found'": {"found": "yes"},
        "larger than the limit": {
            "found": True,
            "data": base64.b64encode(b"\0" * (2 * 1024 * 1024)).decode(),
        },
    }
    notices = {_notice(store, _url(platform, "answer", body)): why for why, body in answers.items()}
    done = {n.id: n for n in resolver.resolve_due()}
    assert resolver.callback is not None
    # nothing listens on the discard port
    down = replace(resolver, callback=replace(resolver.callback, url="http://127.0.0.1:9/resolve"))
    unreachable = _notice(store, "https://files.example.test/u/down")
    done[unreachable] = down.resolve(unreachable)
    notices[unreachable] = "did not answer: ConnectError"
    for notice_id, why in notices.items():
        notice = done[notice_id]
        assert notice.state is NoticeState.FAILED, notice
        (item,) = notice.items
        assert (item.state, item.outcome, item.case_id) == (ItemState.FAILED, None, None)
        assert why in (notice.last_error or ""), (why, notice.last_error)
        assert notice.next_attempt_at == T0 + timedelta(seconds=60)
    assert store.cases.list() == []
    still_open = {n.id for n in store.notices.list(states=[s for s in NoticeState if s.open])}
    assert still_open == set(notices)
    assert set(store.notices.due(T0 + timedelta(seconds=60))) == set(notices)


def test_a_failed_item_is_retried_alone_and_the_found_ones_keep_their_cases(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    clock = Clock()
    resolver = _resolver(store, pool, platform, tmp_path, clock)
    found, broken = _url(platform, "bytes", KNOWN), _url(platform, "status", 503)
    notice_id = _notice(store, found, broken)
    (notice,) = resolver.resolve_due()
    assert notice.state is NoticeState.FAILED
    assert [i.state for i in notice.items] == [ItemState.RESOLVED, ItemState.FAILED]
    (case_id,) = notice.case_ids
    platform.content[broken] = ("bytes", CLEAN)
    clock.now += timedelta(seconds=60)
    (notice,) = resolver.resolve_due()
    assert notice.id == notice_id
    assert notice.state is NoticeState.RESOLVED
    assert [i.outcome for i in notice.items] == ["matched", "no_match"]
    assert notice.case_ids[0] == case_id
    assert (platform.asked[found], platform.asked[broken]) == (1, 2)  # the found one, once
    assert sorted(c.id for c in store.cases.list()) == sorted(notice.case_ids)


def test_two_resolvers_never_resolve_one_notice_and_neither_is_locked_out(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    """Two resolvers, each with its own store (as two processes), on one database: the
    one holding a notice's lease resolves it alone; the other goes on with the rest."""
    other = open_store(store.engine.url.render_as_string(hide_password=False))
    try:
        clock = Clock()
        first = _resolver(store, pool, platform, tmp_path / "a", clock)
        assert first.callback is not None
        first = replace(first, callback=replace(first.callback, timeout=30))  # it is held
        second = _resolver(other, pool, platform, tmp_path / "b", clock)
        held_url, free_url = _url(platform, "hold", KNOWN), _url(platform, "bytes", CLEAN)
        held, free = _notice(store, held_url), _notice(store, free_url)
        platform.arrived.clear()
        platform.release.clear()
        results: list[Notice] = []
        thread = threading.Thread(target=lambda: results.extend(first.resolve_due()))
        thread.start()
        try:
            assert platform.arrived.wait(30), "the first resolver did not ask the platform"
            assert other.notices.get(held).lease_owner == first.owner
            assert other.notices.due(T0) == [free]
            assert [n.id for n in second.resolve_due()] == [free]
            with pytest.raises(NoticeBusy):
                second.resolve(held)
        finally:
            platform.release.set()
            thread.join(60)
            platform.release.clear()
        assert {n.id: n.state for n in results} == {
            held: NoticeState.RESOLVED, free: NoticeState.RESOLVED,
        }  # fmt: skip
        assert (platform.asked[held_url], platform.asked[free_url]) == (1, 1)
        for notice_id in (held, free):
            assert len([a for a in _audit(store, notice_id) if a == "notice.resolving"]) == 1
            assert store.notices.get(notice_id).lease_owner is None
        assert len(store.cases.list()) == 2
        # a lease is taken by exactly one; a dead holder's notice is due again after it
        third = _notice(store, "https://files.example.test/u/third")
        later = T0 + timedelta(minutes=10)
        assert store.notices.claim(third, "a", now=T0, until=later)
        assert not other.notices.claim(third, "b", now=T0, until=later)
        assert third not in other.notices.due(T0)
        assert third in other.notices.due(later)
        assert other.notices.claim(third, "b", now=later, until=later + timedelta(minutes=10))
    finally:
        other.close()


def test_an_unexpected_error_fails_one_notice_not_the_queue(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    errors = [RuntimeError("the store hiccupped")]

    def once(step: str) -> None:
        if step == "committed" and errors:
            raise errors.pop()

    clock = Clock()
    resolver = _resolver(store, pool, platform, tmp_path, clock, checkpoint=once)
    first = _notice(store, _url(platform, "bytes", KNOWN))
    second = _notice(store, _url(platform, "bytes", CLEAN))
    done = {n.id: n for n in resolver.resolve_due()}
    assert done[first].state is NoticeState.FAILED
    assert "RuntimeError" in (done[first].last_error or "")
    assert done[second].state is NoticeState.RESOLVED
    clock.now += timedelta(seconds=60)
    (again,) = resolver.resolve_due()
    assert again.id == first
    assert again.state is NoticeState.RESOLVED
    assert len(again.case_ids) == 1


def test_a_location_is_read_only_under_the_content_roots(
    store: Store, pool: HashingPool, platform: Platform, tmp_path: Path
) -> None:
    roots = tmp_path / "storage"
    roots.mkdir()
    (roots / "known.jpg").write_bytes(KNOWN)
    (tmp_path / "outside.jpg").write_bytes(KNOWN)
    resolver = _resolver(store, pool, platform, tmp_path, Clock(), roots=(str(roots.resolve()),))
    inside = _notice(store, _url(platform, "location", str(roots / "known.jpg")))
    outside = _notice(store, _url(platform, "location", str(roots / ".." / "outside.jpg")))
    done = {n.id: n for n in resolver.resolve_due()}
    assert done[inside].state is NoticeState.RESOLVED
    assert done[outside].state is NoticeState.FAILED
    assert "outside" in (done[outside].last_error or "")


def test_configured_notifiers_go_first(store: Store) -> None:
    first = _notice(store, "https://files.example.test/u/1")
    trusted = _notice(store, "https://files.example.test/u/2", at=T0 + timedelta(1), token="sl")
    last = _notice(store, "https://files.example.test/u/3", at=T0 + timedelta(2))
    assert store.notices.due(T0 + timedelta(3)) == [trusted, first, last]
    notice = store.notices.get(trusted)
    assert notice.priority == PRIORITY_CONFIGURED
    assert notice.notifier.kind is NotifierKind.HOTLINE
    assert notice.notifier.name == "BEE SECURE Stopline"
    assert notice.notifier.configured == "stopline"
    assert store.notices.get(first).notifier.configured is None


def test_the_cli_lists_shows_and_resolves_notices(
    home: Path, sqlite_store: Store, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", str(sqlite_store.engine.url))
    notice_id = _notice(sqlite_store, _url(platform, "bytes", CLEAN))
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["notices", "list", "--state", "open", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [n["id"] for n in json.loads(listed.output)] == [notice_id]
    shown = runner.invoke(cli_app, ["notices", "show", str(notice_id)])
    assert shown.exit_code == 0
    assert "received" in shown.output
    assert runner.invoke(cli_app, ["notices", "show", "999"]).exit_code != 0
    assert runner.invoke(cli_app, ["notices", "resolve"]).exit_code != 0  # no callback
    monkeypatch.setenv("HASHGUARD_NOTICES_CALLBACK_URL", platform.url)
    monkeypatch.setenv("HASHGUARD_NOTICES_CALLBACK_SECRET", SECRET)
    resolved = runner.invoke(cli_app, ["notices", "resolve", "--json"])
    assert resolved.exit_code == 0, resolved.output
    (notice,) = json.loads(resolved.output)
    assert notice["state"] == "resolved"
    assert len(notice["case_ids"]) == 1


def test_the_notices_job_resolves_due_notices(
    home: Path, sqlite_store: Store, platform: Platform
) -> None:
    settings = Settings(
        home=home,
        database_url=str(sqlite_store.engine.url),
        notices_run_minutes=1,
        notices_callback_url=platform.url,
        notices_callback_secret=SECRET,  # type: ignore[arg-type]
    )
    now = [T0]
    jobs = [j for j in builtin_jobs(settings, sqlite_store, Registry.load()) if j.name == NOTICES]
    runner = JobRunner(sqlite_store.leases, jobs, clock=lambda: now[0])
    sqlite_store.leases.ensure(NOTICES, at=now[0])
    now[0] += timedelta(minutes=1, seconds=1)
    assert runner.run_due()[0] == [NOTICES]  # nothing due: no hashing pool is started
    notice_id = _notice(sqlite_store, _url(platform, "bytes", CLEAN))
    now[0] += timedelta(minutes=1, seconds=1)
    assert runner.run_due()[0] == [NOTICES]
    assert sqlite_store.notices.get(notice_id).state is NoticeState.RESOLVED


def test_the_form_rate_limit_counts_a_minute_and_a_day() -> None:
    now = [0.0]
    limiter = FormLimiter(2, 3, clock=lambda: now[0])
    assert [limiter.allow("a"), limiter.allow("a"), limiter.allow("a")] == [True, True, False]
    assert limiter.allow("b")  # per address
    now[0] = 61
    assert limiter.allow("a")
    assert not limiter.allow("a")
    now[0] = 86_401
    assert limiter.allow("a")


# -- the API and the public form on a live server (SQLite) ----------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    home = tmp_path_factory.mktemp("notices-server")
    url = f"sqlite:///{home / 'hashguard.db'}"
    open_store(url, migrate=True).close()
    settings = Settings(
        home=home,
        database_url=url,
        workers=1,
        notice_notifiers={"stopline": STOPLINE},
        # the form's tests share this server's per-address limit (its own test has its own)
        notices_form_per_minute=100,
        notices_form_per_day=1000,
        notices_run_minutes=0,
        ui_secure_cookies=False,  # httpx sends no Secure cookie over http
        webhooks=(
            {"name": "platform", "url": NOWHERE, "secret": SECRET, "events": ["notice.received"]},
        ),  # type: ignore[arg-type]
    )
    with running_server(settings) as base:
        yield base, settings


def _token(settings: Settings, name: str, scope: Scope, role: Role | None = None) -> str:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        token, secret = store.tokens.create(name, [scope])
        if role is not None:
            person = store.people.create_user(f"{name}-person", role)
            store.people.set_token_owner(token.id, person.id)
    return secret


CSAM = {
    "urls": ["https://files.example.test/u/abc"],
    "category": "child_sexual_abuse",
    "explanation": "a hotline's analyst assessed it",
    "notifier": {"kind": "hotline", "name": "BEE SECURE Stopline", "reference": "SL-2026-0042"},
}
OTHER = {
    "content_ids": ["c-1"],
    "category": "scams_and_fraud",
    "explanation": "a fake shop",
    "notifier": {"name": "A Person", "email": "person@example.test"},
    "good_faith": True,
}


def test_the_api_takes_a_notice_and_refuses_what_art_16_does_not_allow(
    served: tuple[str, Settings],
) -> None:
    base, settings = served
    token = bearer(_token(settings, "api-notices", Scope.NOTICES))
    with httpx.Client(base_url=base, timeout=30) as http:
        answer = http.post("/v1/notices", json=CSAM, headers=token)
        assert answer.status_code == 202, answer.text
        ack = answer.json()
        assert ack["state"] == "received"
        assert ack["priority"] == 1
        assert ack["items"] == 1
        assert ack["next_steps"]
        assert http.post("/v1/notices", json=OTHER, headers=token).status_code == 202
        bad: list[dict[str, Any]] = [
            {**CSAM, "urls": []},
            {**CSAM, "urls": [f"https://x.test/{n}" for n in range(101)]},
            {**CSAM, "urls": ["ftp://x.test/a"]},
            {**CSAM, "explanation": "a\x00b"},
            {**CSAM, "explanation": "x" * 5001},
            {**CSAM, "explanation": "   "},
            {**CSAM, "category": "nonsense"},
            {**CSAM, "surprise": 1},
            {**OTHER, "good_faith": False},
            {**OTHER, "notifier": None},
            {**OTHER, "notifier": {"name": "A Person"}},
            {**OTHER, "good_faith": "yes"},
            {**OTHER, "good_faith": 1},
        ]
        for body in bad:
            assert_problem(http.post("/v1/notices", json=body, headers=token), 422)
        surrogate = json.dumps(CSAM).replace("a hotline", "a \\ud800 hotline")
        refused = http.post(
            "/v1/notices",
            content=surrogate,
            headers={**token, "content-type": "application/json"},
        )
        assert_problem(refused, 422)
        # scope and role: another scope, no token, a reviewer's token
        scan = bearer(_token(settings, "api-scan", Scope.SCAN))
        assert_problem(http.post("/v1/notices", json=CSAM, headers=scan), 403)
        assert_problem(http.post("/v1/notices", json=CSAM), 401)
        reviewer = bearer(_token(settings, "api-reviewer", Scope.NOTICES, Role.REVIEWER))
        assert_problem(http.post("/v1/notices", json=CSAM, headers=reviewer), 403)
        lead = bearer(_token(settings, "api-lead", Scope.NOTICES, Role.LEAD))
        assert http.post("/v1/notices", json=CSAM, headers=lead).status_code == 202
        # a token bound to a configured hotline: its notices go first, as that hotline
        stopline = bearer(_token(settings, "sl", Scope.NOTICES))
        trusted = http.post("/v1/notices", json={**CSAM, "notifier": None}, headers=stopline)
        assert trusted.status_code == 202
        assert trusted.json()["priority"] == PRIORITY_CONFIGURED
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        notice = store.notices.get(ack["notice_id"])
        assert notice.notifier.reference == "SL-2026-0042"
        assert notice.notifier.configured is None
        first = store.notices.due(datetime.now(UTC) + timedelta(1))[0]
        assert first == trusted.json()["notice_id"]
        hooks = [a for a in store.actions.list() if a.subject == f"notice:{ack['notice_id']}"]
        assert [(h.event, h.target) for h in hooks] == [("notice.received", "platform")]
        assert hooks[0].payload["data"]["notice_id"] == ack["notice_id"]


def _form_page(http: httpx.Client) -> str:
    page = http.get("/notice")
    assert page.status_code == 200
    assert FORM_COOKIE in http.cookies
    token = page.text.split(f'name="{FORM_FIELD}" value="', 1)[1].split('"', 1)[0]
    return token


def test_the_public_form_checks_csrf_size_and_redirects_only_to_its_own_page(
    served: tuple[str, Settings],
) -> None:
    base, _ = served
    form = {
        "urls": "https://files.example.test/u/form\n",
        "category": "child_sexual_abuse",
        "explanation": "seen on the site",
        "next": "https://evil.example/",
    }
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as http:
        token = _form_page(http)
        sent = http.post("/notice", data={**form, FORM_FIELD: token})
        assert sent.status_code == 303
        location = sent.headers["location"]
        assert location.startswith("/notice/received/")
        assert location.split("/")[-1].isdigit()
        thanks = http.get(location)
        assert thanks.status_code == 200
        assert "received" in thanks.text
        # CSRF: no token, a token without its cookie, another site's origin
        assert http.post("/notice", data=form).status_code == 403
        with httpx.Client(base_url=base, timeout=30) as stranger:
            assert stranger.post("/notice", data={**form, FORM_FIELD: token}).status_code == 403
        evil = http.post(
            "/notice",
            data={**form, FORM_FIELD: token},
            headers={"origin": "https://evil.example"},
        )
        assert evil.status_code == 403
        # size and text: too large a body, a NUL, a non-CSAM notice without its notifier
        # (a refused form is shown again with a new token)
        token = _form_page(http)
        huge = http.post("/notice", data={**form, FORM_FIELD: token, "explanation": "x" * 300_000})
        assert huge.status_code == 413
        nul = http.post("/notice", data={**form, FORM_FIELD: token, "explanation": "a\x00b"})
        assert nul.status_code == 422
        token = _form_page(http)
        other = http.post("/notice", data={**form, FORM_FIELD: token, "category": "other"})
        assert other.status_code == 422
        assert "name and e-mail" in other.text


FORM = {
    "urls": "https://files.example.test/u/limits",
    "category": "child_sexual_abuse",
    "explanation": "seen on the site",
}


def _stored(settings: Settings) -> int:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        return len(store.notices.list(limit=100_000))


def test_the_public_form_refuses_each_field_over_its_limit_and_stores_nothing(
    served: tuple[str, Settings],
) -> None:
    base, settings = served
    before = _stored(settings)
    refused = [
        ("urls", "\n".join(f"https://x.test/{n}" for n in range(101)), "at most 100 URLs"),
        ("urls", "https://x.test/" + "a" * 2000, "at most 2000 characters"),
        ("urls", "javascript:alert(1)", "http(s) URL"),
        ("urls", "", "at least one URL"),
        ("explanation", "x" * 5001, "at most 5000 characters"),
        ("name", "n" * 201, "at most 200 characters"),
        ("reference", "r" * 201, "at most 200 characters"),
        ("email", "not-an-address", "does not look like one"),
        ("category", "nope", "choose what kind"),
    ]
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as http:
        for name, value, said in refused:
            answer = http.post("/notice", data={**FORM, FORM_FIELD: _form_page(http), name: value})
            assert answer.status_code == 422, name
            assert said in answer.text, name
        # the form comes back with what was sent, escaped
        again = http.post(
            "/notice",
            data={**FORM, FORM_FIELD: _form_page(http), "category": "other", "name": "<b>N</b>"},
        )
        assert again.status_code == 422
        assert "&lt;b&gt;N&lt;/b&gt;" in again.text
        assert "<b>N</b>" not in again.text
        # a body streamed without a length is cut at the limit as well
        token = _form_page(http)

        def chunks() -> Iterator[bytes]:
            yield f"{FORM_FIELD}={token}&urls=https://x.test/a&explanation=".encode()
            for _ in range(40):
                yield b"x" * 8192

        streamed = http.post(
            "/notice",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413
        assert "content-length" not in streamed.request.headers
        many = {**FORM, FORM_FIELD: _form_page(http), **{f"f{n}": "1" for n in range(25)}}
        assert http.post("/notice", data=many).status_code == 400
    assert _stored(settings) == before


def test_the_public_form_csrf_cookie_and_no_redirect_off_site(
    served: tuple[str, Settings],
) -> None:
    base, settings = served
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as http:
        page = http.get("/notice")
        cookie = page.headers["set-cookie"].lower()
        for part in ("httponly", "samesite=strict", "path=/notice", "max-age=3600"):
            assert part in cookie
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "form-action 'self'" in page.headers["content-security-policy"]
        before = _stored(settings)
        token = _form_page(http)
        # the cookie's token and another in the form; a browser's opaque origin
        other = http.post("/notice", data={**FORM, FORM_FIELD: token[:-2] + "xx"})
        assert other.status_code == 403
        token = _form_page(http)
        null = http.post("/notice", data={**FORM, FORM_FIELD: token}, headers={"origin": "null"})
        assert null.status_code == 403
        assert _stored(settings) == before
        # a sent notice goes to a path on this site, whatever the Host or the form say
        token = _form_page(http)
        sent = http.post(
            "/notice",
            data={**FORM, FORM_FIELD: token, "next": "//evil.example/", "redirect": "https://e.x"},
            headers={"host": "evil.example"},
        )
        assert sent.status_code == 303
        assert re.fullmatch(r"/notice/received/\d+", sent.headers["location"])
        # the slash-ended paths redirect to paths, never to a URL built from the Host
        spoofed = {"host": "evil.example"}
        for path, target in (
            ("/notice/", "/notice"),
            (sent.headers["location"] + "/", sent.headers["location"]),
        ):
            moved = http.get(path, headers=spoofed)
            assert moved.status_code == 308, path
            assert moved.headers["location"] == target
        assert http.post("/notice/", headers=spoofed).headers["location"] == "/notice"
        for path in ("/notice/received/abc", "/notice/received/0"):
            answer = http.get(path, headers=spoofed)
            assert answer.status_code in (404, 422), path
            assert "location" not in answer.headers
        # the thank-you page shows the number and nothing of the notice
        thanks = http.get(sent.headers["location"]).text
        assert FORM["urls"] not in thanks
        assert FORM["explanation"] not in thanks


def test_the_public_form_is_rate_limited_per_address(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hashguard.db'}"
    settings = Settings(
        home=tmp_path,
        database_url=url,
        workers=1,
        notices_form_per_minute=2,
        ui_secure_cookies=False,
    )
    with (
        running_server(settings, ready=False) as base,
        httpx.Client(base_url=base, timeout=30, follow_redirects=False) as http,
    ):
        token = _form_page(http)
        form = {"urls": "https://x.test/a", "category": "child_sexual_abuse", "explanation": "e"}
        codes = [http.post("/notice", data={**form, FORM_FIELD: token}).status_code for _ in "abc"]
        assert codes == [303, 303, 429]
        over = http.post("/notice", data={**form, FORM_FIELD: token})
        assert over.headers["retry-after"] == "60"
        assert "Too many notices" in over.text
        # counted before anything is read or checked: no token, a huge body, all 429
        assert http.post("/notice", data=form).status_code == 429
        assert http.post("/notice", content=b"x" * 300_000).status_code == 429
        assert http.get("/notice").status_code == 200  # the form itself is not limited
    with contextlib.closing(open_store(url)) as store:
        assert len(store.notices.list()) == 2


def test_a_browser_sends_the_public_form(served: tuple[str, Settings]) -> None:
    base, settings = served
    with launched(chromium_or_skip()) as (_, browser):
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(10_000)
        page.goto(base + "/notice")
        page.fill("#urls", "https://files.example.test/u/browser")
        page.select_option("#category", "scams_and_fraud")
        page.fill("#explanation", "seen while browsing")
        # a notice of this category needs the notifier: refused, the form kept as filled
        with page.expect_response(lambda r: r.request.method == "POST") as refused:
            page.click("button[type=submit]")
        assert refused.value.status == 422
        assert "name and e-mail" in page.inner_text("p.error[role=alert]")
        assert page.input_value("#urls") == "https://files.example.test/u/browser"
        assert page.input_value("#explanation") == "seen while browsing"
        page.fill("#name", "A Person")
        page.fill("#email", "person@example.test")
        page.fill("#reference", "my-ref-7")
        page.check("#good_faith")
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/notice/received/\d+$"))
        notice_id = int(page.inner_text("#notice-id"))
        acknowledgement = page.inner_text("main")
        assert f"notice {notice_id} received" in acknowledgement
        assert NEXT_STEPS in acknowledgement
        assert "person@example.test" not in page.content()
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        notice = store.notices.get(notice_id)
        hooks = [a for a in store.actions.list() if a.subject == f"notice:{notice_id}"]
    assert notice.channel is NoticeChannel.FORM
    assert notice.items[0].url == "https://files.example.test/u/browser"
    assert notice.category is NoticeCategory.SCAMS_AND_FRAUD
    assert (notice.notifier.name, notice.notifier.reference) == ("A Person", "my-ref-7")
    assert notice.good_faith
    # the acknowledgement by e-mail is the platform's, through its webhook
    assert [h.event for h in hooks] == ["notice.received"]
