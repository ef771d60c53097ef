"""Hotline referrals: the settings that switch hotlines on, the tasks in the store (both
engines), the service's rules, the facts (the content's own hashes, never a list's), the
CLI, and the review UI's section and list over real loopback HTTP, route by role.

Cases are opened directly in the store from made-up benign bytes: no image is needed to
refer a case, and nothing here fetches anything from a hotline."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner, Result

from hashguard.audit import verify
from hashguard.cli.app import app as cli_app
from hashguard.domain.banks import BankEntry, BankKind
from hashguard.domain.cases import CaseSource, CaseState, ContentRef, SourceKind
from hashguard.domain.matches import Match
from hashguard.domain.people import ROLE_PERMISSIONS, Permission, Role
from hashguard.domain.policy import Action, Decision
from hashguard.domain.referrals import (
    KNOWN_HOTLINES,
    ReferralState,
    clean_reference,
    facts_to_json,
)
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.review import cases as review
from hashguard.review import referrals as service
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.store.schema import referral_tasks
from hashguard.web.app import create_app
from hashguard.web.ui.session import COOKIE
from tests.browser_support import VIEWPORT, chromium_or_skip, launched
from tests.cli import hashguard
from tests.server import running_server
from tests.test_ui_roles import gate_of, ui_routes

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
HOTLINES = dict(KNOWN_HOTLINES)
#: a listed PDQ hash (made up): it must never reach a referral's facts
LISTED_PDQ = "f" * 32 + "0" * 32
URL = "https://files.example.test/u/abc123"


def _signals(data: bytes) -> FileSignals:
    return FileSignals(
        size=len(data),
        md5=hashlib.md5(data).hexdigest(),
        sha1=hashlib.sha1(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _case(store: Store, name: str, *, url: str | None = URL, confirmations: int = 2) -> int:
    """A case for made-up benign bytes that matched an exact list, a PDQ list, an allow
    bank (suppressed) and a remote service; confirmed ``confirmations`` times."""
    data = f"benign test bytes {name}".encode()
    signals = _signals(data)
    matches = [
        Match(
            bank="known",
            bank_kind=BankKind.KNOWN,
            algorithm=Algorithm.MD5,
            distance=0,
            entry_id="k-secret-entry",
            category="A1",
        ),
        Match(
            bank="soft",
            bank_kind=BankKind.KNOWN,
            algorithm=Algorithm.PDQ,
            distance=12,
            entry_id="s-secret-entry",
            category="B2",
        ),
        Match(
            bank="stock-photos",
            bank_kind=BankKind.KNOWN,
            algorithm=Algorithm.PDQ,
            distance=3,
            entry_id="x-1",
            category="Z9",
            suppressed_by="false-positives",
        ),
    ]
    remote = [
        RemoteResult(
            service="arachnid",
            status=RemoteStatus.MATCHED,
            method="hash",
            classification="csam",
            source="C3P",
            tracking_id="trk-1",
        )
    ]
    with store.transaction() as writes:
        case, _ = writes.open_case(
            content_key=signals.sha256,
            source=CaseSource(kind=SourceKind.UPLOAD, ref=name),
            signals=signals,
            matches=matches,
            remote=remote,
            decision=Decision(action=Action.ACT, rule="test: known"),
            actor="system:test",
            content=ContentRef(content_id=name, uploader_id="user-0001", url=url),
        )
    for who in ("user:alice", "user:carol")[:confirmations]:
        review.confirm(store, case.id, actor=who, reason="seen", second_confirmation=True)
    return case.id


def _events(store: Store, prefix: str = "referral.") -> list[tuple[str, str, str | None, Any]]:
    return [
        (e.action, e.actor, e.subject, dict(e.details))
        for e in store.audit.events()
        if e.action.startswith(prefix)
    ]


# -- settings -----------------------------------------------------------------------------


def test_a_host_switches_built_in_hotlines_on_by_name(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().referral_hotlines == {}, "none by default: nothing is implied"
    chosen = Settings(referral_hotlines=["iwf", "eokm", "bee-secure"]).referral_hotlines
    assert list(chosen) == ["iwf", "eokm", "bee-secure"]
    assert chosen["iwf"].form_url == "https://report.iwf.org.uk/"
    assert chosen["eokm"].form_url == "https://www.meldpunt-kinderporno.nl/"
    assert chosen["bee-secure"].form_url == "https://stopline.bee-secure.lu/"
    assert [h.country for h in chosen.values()] == ["GB", "NL", "LU"]

    # a built-in's fields may be overridden, another hotline added with all its fields
    given = Settings(
        referral_hotlines={
            "iwf": {"notes": "our member contact: T&S"},
            "other": {
                "name": "Other",
                "form_url": "https://hotline.example.test/",
                "country": "DE",
            },
        }
    ).referral_hotlines
    assert given["iwf"].notes == "our member contact: T&S"
    assert given["iwf"].form_url == "https://report.iwf.org.uk/"
    assert service.hotlines_of(Settings(referral_hotlines=given))["other"].country == "DE"

    monkeypatch.setenv("HASHGUARD_REFERRAL_HOTLINES", '["bee-secure"]')
    assert list(Settings().referral_hotlines) == ["bee-secure"]
    monkeypatch.delenv("HASHGUARD_REFERRAL_HOTLINES")

    for bad in (
        ["nope"],  # not built in, no fields
        ["Bad Name"],
        [{"iwf": 1}],
        {"x": {"name": "X", "form_url": "http://plain.example.test/", "country": "DE"}},
        {"x": {"name": "X", "form_url": "https://x.example.test/", "country": "Germany"}},
    ):
        with pytest.raises(ValueError, match=r"referral_hotlines|hotline"):
            Settings(referral_hotlines=bad)


# -- the store and the service (both engines) -----------------------------------------------


def test_opening_is_idempotent_and_audited(store: Store) -> None:
    case_id = _case(store, "a")
    task, created = service.open_referral(
        store, case_id, "iwf", hotlines=HOTLINES, actor="user:carol", at=T0
    )
    assert created
    assert (task.case_id, task.hotline, task.state) == (case_id, "iwf", ReferralState.OPEN)
    assert task.form_url == "https://report.iwf.org.uk/"
    assert (task.created_at, task.created_by) == (T0, "user:carol")
    assert task.reference is None
    assert task.closed_at is None

    again, created_again = service.open_referral(
        store, case_id, "iwf", hotlines=HOTLINES, actor="user:bob", at=T0 + timedelta(hours=1)
    )
    assert not created_again
    assert again == task
    assert store.referrals.get(task.id) == task
    other, _ = service.open_referral(
        store, case_id, "eokm", hotlines=HOTLINES, actor="user:carol", at=T0
    )
    assert other.id != task.id
    assert [t.id for t in store.referrals.list(case_id=case_id)] == [task.id, other.id]
    assert _events(store) == [
        (
            "referral.opened",
            "user:carol",
            f"referral:{task.id}",
            {"case": case_id, "hotline": "iwf", "form_url": "https://report.iwf.org.uk/"},
        ),
        (
            "referral.opened",
            "user:carol",
            f"referral:{other.id}",
            {
                "case": case_id,
                "hotline": "eokm",
                "form_url": "https://www.meldpunt-kinderporno.nl/",
            },
        ),
    ]
    assert verify(store.audit.events(), recorded_head=store.audit.head()).ok


def test_done_needs_the_hotlines_reference_and_happens_once(store: Store) -> None:
    case_id = _case(store, "b")
    task, _ = service.open_referral(
        store, case_id, "bee-secure", hotlines=HOTLINES, actor="user:carol", at=T0
    )
    for bad in ("", "   ", "two\nlines", "tab\there", "x" * 201, "\ud800"):
        with pytest.raises(service.InvalidReference):
            service.mark_done(store, task.id, bad, actor="user:carol", at=T0)
    assert store.referrals.get(task.id).state is ReferralState.OPEN
    assert _events(store, "referral.done") == []

    done = service.mark_done(
        store, task.id, "  SL-2026/0042 \n", actor="user:alice", at=T0 + timedelta(minutes=5)
    )
    assert (done.state, done.reference) == (ReferralState.DONE, "SL-2026/0042")
    assert (done.closed_at, done.closed_by) == (T0 + timedelta(minutes=5), "user:alice")
    assert store.referrals.get(task.id) == done
    with pytest.raises(service.ReferralClosed):
        service.mark_done(store, task.id, "SL-other", actor="user:carol", at=T0)
    with pytest.raises(service.ReferralClosed):
        service.cancel(store, task.id, "changed my mind", actor="user:carol", at=T0)
    with pytest.raises(service.AlreadyReferred, match="SL-2026/0042"):
        service.open_referral(
            store, case_id, "bee-secure", hotlines=HOTLINES, actor="user:carol", at=T0
        )
    assert _events(store, "referral.done") == [
        (
            "referral.done",
            "user:alice",
            f"referral:{task.id}",
            {"case": case_id, "hotline": "bee-secure", "reference": "SL-2026/0042"},
        )
    ]
    with pytest.raises(service.UnknownReferral):
        service.mark_done(store, 987654, "R-1", actor="user:carol", at=T0)
    with pytest.raises(service.UnknownReferral):
        service.cancel(store, 987654, "why", actor="user:carol", at=T0)


def test_a_cancelled_task_may_be_followed_by_a_new_one(store: Store) -> None:
    case_id = _case(store, "c")
    task, _ = service.open_referral(
        store, case_id, "eokm", hotlines=HOTLINES, actor="user:carol", at=T0
    )
    for bad in ("", "  ", "a\x00b", "x" * 4001):
        with pytest.raises(service.ReasonRequired):
            service.cancel(store, task.id, bad, actor="user:carol", at=T0)
    cancelled = service.cancel(
        store, task.id, " the URL is gone ", actor="user:carol", at=T0 + timedelta(days=1)
    )
    assert (cancelled.state, cancelled.cancel_reason) == (
        ReferralState.CANCELLED,
        "the URL is gone",
    )
    assert cancelled.reference is None
    again, created = service.open_referral(
        store, case_id, "eokm", hotlines=HOTLINES, actor="user:carol", at=T0
    )
    assert created
    assert again.id != task.id
    assert [t.id for t in store.referrals.list(state=ReferralState.OPEN)] == [again.id]
    assert [t.id for t in store.referrals.list(state=ReferralState.CANCELLED)] == [task.id]
    assert [e[0] for e in _events(store)] == [
        "referral.opened",
        "referral.cancelled",
        "referral.opened",
    ]
    assert _events(store, "referral.cancelled")[0][3]["reason"] == "the URL is gone"


def test_only_a_confirmed_case_is_referred(store: Store) -> None:
    open_case = _case(store, "open", confirmations=0)
    once = _case(store, "once", confirmations=1)
    assert store.cases.get(once).state is CaseState.CONFIRMED_ONCE
    for case_id in (open_case, once):
        with pytest.raises(service.NotReferable, match="confirmed"):
            service.open_referral(
                store, case_id, "iwf", hotlines=HOTLINES, actor="user:carol", at=T0
            )
    wrong = _case(store, "fp", confirmations=0)
    review.mark_false_positive(
        store, wrong, actor="user:alice", reason="a stock photo", allow_bank="false-positives"
    )
    with pytest.raises(service.NotReferable):
        service.open_referral(store, wrong, "iwf", hotlines=HOTLINES, actor="user:carol", at=T0)
    confirmed = _case(store, "ok")
    with pytest.raises(service.UnknownHotline, match="iwf"):
        service.open_referral(
            store, confirmed, "ncmec", hotlines=HOTLINES, actor="user:carol", at=T0
        )
    with pytest.raises(service.UnknownHotline, match="none: set referral_hotlines"):
        service.open_referral(store, confirmed, "iwf", hotlines={}, actor="user:carol", at=T0)
    with pytest.raises(service.UnknownCase):
        service.open_referral(store, 987654, "iwf", hotlines=HOTLINES, actor="user:carol", at=T0)
    assert store.referrals.list() == []
    assert _events(store) == []


def test_one_live_task_per_case_and_hotline_even_when_two_people_open_at_once(
    store: Store,
) -> None:
    case_id = _case(store, "race")
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(4)

    def open_it(who: str) -> None:
        barrier.wait()
        task, created = service.open_referral(
            store, case_id, "iwf", hotlines=HOTLINES, actor=who, at=T0
        )
        results.append((task.id, created))

    threads = [threading.Thread(target=open_it, args=(f"user:p{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({task_id for task_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(_events(store)) == 1
    # and the database itself refuses a second live row (the partial unique index)
    (task,) = store.referrals.list()
    row = {
        "case_id": case_id,
        "hotline": "iwf",
        "form_url": task.form_url,
        "facts": facts_to_json(task.facts),
        "created_at": T0,
        "created_by": "user:x",
    }
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(referral_tasks).values(state="done", **row))
    with store.engine.begin() as conn:  # a cancelled one does not hold the place
        conn.execute(insert(referral_tasks).values(state="cancelled", **row))


# -- the facts ----------------------------------------------------------------------------


def test_the_facts_hold_the_contents_own_hashes_never_a_lists(store: Store) -> None:
    store.banks.create("soft")
    store.banks.add_entries(
        "soft", [BankEntry(algorithm=Algorithm.PDQ, value=LISTED_PDQ, entry_id="s-secret-entry")]
    )
    case_id = _case(store, "facts")
    case = store.cases.get(case_id)
    assert case.signals is not None
    task, _ = service.open_referral(
        store, case_id, "iwf", hotlines=HOTLINES, actor="user:carol", at=T0
    )
    facts = task.facts
    assert facts == service.facts_of(case)
    assert (facts.url, facts.sha256, facts.md5) == (URL, case.content_key, case.signals.md5)
    assert facts.first_seen == case.created_at
    assert facts.confirmations == 2
    assert [(m.name, m.categories, m.algorithms) for m in facts.lists] == [
        ("known", ("A1",), ("md5",)),
        ("soft", ("B2",), ("pdq",)),
        ("arachnid (C3P)", ("csam",), ()),
    ]
    text = facts.as_text()
    assert text.splitlines()[:4] == [
        f"URL: {URL}",
        f"First seen: {case.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
        "Matched: known (categories: A1); soft (categories: B2); arachnid (C3P) (categories: csam)",
        f"SHA-256: {case.content_key}",
    ]
    assert f"MD5: {case.signals.md5}" in text
    everything = json.dumps(facts_to_json(facts)) + text
    for never in (
        LISTED_PDQ,  # a list's hash
        "secret-entry",  # list entry ids
        "stock-photos",  # a suppressed match is not what the content matched
        "Z9",
        case.signals.sha1,  # only the hashes a hotline form asks for
        "user-0001",  # the uploader is the platform's to give, not a hotline's
        "benign test bytes",  # never the content
        "trk-1",
    ):
        assert never not in everything, never

    bare = store.cases.get(_case(store, "nourl", url=None))
    assert service.facts_of(bare).as_text().startswith("URL: not known\n")


def test_references_are_one_line_of_printable_text() -> None:
    assert clean_reference(" IWF #12345 ") == "IWF #12345"
    assert clean_reference("Meldingnummer 2026-000123") == "Meldingnummer 2026-000123"
    assert clean_reference("référence ü") == "référence ü"
    for bad in ("", " ", "a\rb", "a\u2028b", "\x7f", "x" * 201):
        assert clean_reference(bad) is None


# -- the CLI -----------------------------------------------------------------------------


def _cli(*args: str, check: int = 0) -> Result:
    """The real ``hashguard`` application, in this process (one import for many runs);
    the command's registration is checked once as an operator runs it."""
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == check, (result.exit_code, result.stdout, result.stderr)
    return result


def test_cli_open_show_list_done_cancel(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHGUARD_REFERRAL_HOTLINES", '["iwf", "eokm"]')
    with contextlib.closing(open_store(Settings().resolved_database_url)) as store:
        confirmed = _case(store, "cli")
        unconfirmed = _case(store, "cli-open", confirmations=0)

    listed = json.loads(hashguard("referrals", "hotlines", "--json").stdout)
    assert [h["key"] for h in listed] == ["iwf", "eokm"]

    opened = json.loads(
        _cli("referrals", "open", str(confirmed), "--hotline", "iwf", "--json").stdout
    )
    assert (opened["created"], opened["state"], opened["hotline"]) == (True, "open", "iwf")
    assert opened["form_url"] == "https://report.iwf.org.uk/"
    assert f"URL: {URL}" in opened["facts_text"]
    task_id = opened["id"]
    again = _cli("referrals", "open", str(confirmed), "--hotline", "iwf")
    assert f"referral task {task_id} was already open" in again.stderr

    shown = _cli("referrals", "show", str(task_id))
    assert "https://report.iwf.org.uk/" in shown.stdout
    assert f"SHA-256: {opened['facts']['sha256']}" in shown.stdout

    refused = _cli("referrals", "done", str(task_id), "--reference", " ", check=2)
    assert "reference is required" in refused.stderr
    refused = _cli("referrals", "open", str(unconfirmed), "--hotline", "bee-secure", check=2)
    assert "not a hotline this host refers to" in refused.stderr
    refused = _cli("referrals", "open", str(unconfirmed), "--hotline", "iwf", check=2)
    assert "only a confirmed case" in refused.stderr
    assert "no referral task #987654" in _cli("referrals", "show", "987654", check=2).stderr

    _cli("referrals", "done", str(task_id), "--reference", "IWF-0042")
    tasks = json.loads(_cli("referrals", "list", "--json").stdout)
    assert [(t["id"], t["state"], t["reference"]) for t in tasks] == [(task_id, "done", "IWF-0042")]
    assert json.loads(_cli("referrals", "list", "--state", "open", "--json").stdout) == []
    with contextlib.closing(open_store(Settings().resolved_database_url)) as store:
        actors = {actor for _, actor, _, _ in _events(store)}
        assert [e[0] for e in _events(store)] == ["referral.opened", "referral.done"]
        other, _ = service.open_referral(
            store, confirmed, "eokm", hotlines=HOTLINES, actor="user:carol", at=T0
        )
    assert len(actors) == 1
    assert actors.pop().startswith("cli:")
    assert "cancelled" in _cli("referrals", "cancel", str(other.id), "--reason", "dup").stderr
    assert "IWF-0042" in _cli("referrals", "list").stdout


# -- the review UI ---------------------------------------------------------------------------

ROLES = {
    "vera": Role.VIEWER,
    "alice": Role.REVIEWER,
    "carol": Role.LEAD,
    "adam": Role.ADMIN,
    "audrey": Role.AUDITOR,
}


class UiWorld:
    def __init__(self, settings: Settings, cases: dict[str, int], people: dict[str, Any]) -> None:
        self.settings, self.cases, self.people = settings, cases, people

    def client(self, base: str, name: str) -> httpx.Client:
        return httpx.Client(
            base_url=base,
            cookies={COOKIE: self.people[name][0]},
            follow_redirects=False,
            timeout=30,
        )

    def post(self, http: httpx.Client, name: str, path: str, **fields: str) -> httpx.Response:
        return http.post(path, data={"csrf_token": self.people[name][1], **fields})

    def store(self) -> contextlib.closing[Store]:
        return contextlib.closing(open_store(self.settings.resolved_database_url))


def ui_world(db_url: str, tmp_path: Path) -> UiWorld:
    """A confirmed case (with a URL), an open one, and a signed-in person per role."""
    opened = open_store(db_url, migrate=True)
    try:
        cases = {
            "confirmed": _case(opened, "ui-confirmed"),
            "open": _case(opened, "ui-open", confirmations=0),
        }
        people = {}
        for name, role in ROLES.items():
            user = opened.people.create_user(name, role)
            session, secret = opened.people.create_session(user.id, method="password", ip=None)
            people[name] = (secret, session.csrf_token)
    finally:
        opened.close()
    settings = Settings(
        home=tmp_path / "home",
        database_url=db_url,
        workers=1,
        index_refresh_seconds=0.2,
        ui_secure_cookies=False,
        referral_hotlines=["iwf", "eokm", "bee-secure"],
    )
    return UiWorld(settings, cases, people)


@pytest.fixture
def ui(db_url: str, tmp_path: Path) -> UiWorld:
    return ui_world(db_url, tmp_path)


def _options(html: str) -> list[str]:
    form = html.split('id="referral-open"', 1)
    if len(form) == 1:
        return []
    return re.findall(r'<option value="([^"]+)"', form[1].split("</form>", 1)[0])


def test_the_case_page_opens_and_closes_referrals(ui: UiWorld) -> None:
    case_id = ui.cases["confirmed"]
    page = f"/ui/cases/{case_id}"
    with running_server(ui.settings) as base, ui.client(base, "carol") as carol:
        html = carol.get(page).text
        assert '<section id="referrals"' in html
        assert _options(html) == ["iwf", "eokm", "bee-secure"]
        assert '<a href="/ui/referrals">Referrals</a>' in html

        without_csrf = carol.post(f"{page}/referrals", data={"hotline": "iwf"})
        assert without_csrf.status_code == 403
        answer = ui.post(carol, "carol", f"{page}/referrals", hotline="iwf")
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{page}?referral=opened#referrals"
        html = carol.get(f"{page}?referral=opened").text
        assert 'id="referral-flash"' in html
        (task_id,) = map(int, re.findall(r'class="referral" id="referral-(\d+)"', html))
        assert f'<textarea id="facts-{task_id}" class="referral-facts"' in html
        assert f"URL: {URL}" in html
        assert f'data-copy="facts-{task_id}"' in html
        assert (
            '<a class="button" href="https://report.iwf.org.uk/" target="_blank" '
            'rel="noopener noreferrer">' in html
        )
        assert '<script src="/ui/static/referrals.js" defer></script>' in html
        assert f'<form method="post" action="/ui/referrals/{task_id}/done"' in html
        assert _options(html) == ["eokm", "bee-secure"], "one task per hotline"
        # opening again (a second tab) shows the same task
        assert ui.post(carol, "carol", f"{page}/referrals", hotline="iwf").status_code == 303

        listed = carol.get("/ui/referrals").text
        assert re.findall(r'<tr class="referral-task" data-referral-id="(\d+)"', listed) == [
            str(task_id)
        ]
        assert f'href="/ui/cases/{case_id}#referrals"' in listed

        empty = ui.post(carol, "carol", f"/ui/referrals/{task_id}/done", reference="")
        assert empty.status_code == 400
        done = ui.post(carol, "carol", f"/ui/referrals/{task_id}/done", reference="IWF-77")
        assert done.status_code == 303
        assert done.headers["location"] == f"{page}?referral=done#referrals"
        again = ui.post(carol, "carol", f"/ui/referrals/{task_id}/done", reference="IWF-78")
        assert again.status_code == 409
        html = carol.get(page).text
        assert '<strong class="referral-reference">IWF-77</strong>' in html
        assert "Facts as filed" in html
        assert f'action="/ui/referrals/{task_id}/done"' not in html
        assert carol.get("/ui/referrals").text.count('class="referral-task"') == 0
        assert "IWF-77" in carol.get("/ui/referrals", params={"state": "done"}).text
        assert carol.get("/ui/referrals", params={"state": "nonsense"}).status_code == 400

        # the list's own form goes back to the list; cancelling asks for a reason
        ui.post(carol, "carol", f"{page}/referrals", hotline="eokm")
        with ui.store() as store:
            (eokm,) = store.referrals.list(state=ReferralState.OPEN)
        from_list = ui.post(
            carol, "carol", f"/ui/referrals/{eokm.id}/cancel", reason="", back="list"
        )
        assert from_list.status_code == 400
        from_list = ui.post(
            carol, "carol", f"/ui/referrals/{eokm.id}/cancel", reason="wrong hotline", back="list"
        )
        assert from_list.status_code == 303
        assert from_list.headers["location"] == "/ui/referrals?done=cancelled"

        assert ui.post(carol, "carol", f"{page}/referrals", hotline="ncmec").status_code == 400
        assert (
            ui.post(carol, "carol", "/ui/cases/987654/referrals", hotline="iwf").status_code == 404
        )
        assert (
            ui.post(carol, "carol", "/ui/referrals/987654/done", reference="R").status_code == 404
        )
        unconfirmed = f"/ui/cases/{ui.cases['open']}"
        html = carol.get(unconfirmed).text
        assert 'id="referrals-not-yet"' in html
        assert _options(html) == []
        assert ui.post(carol, "carol", f"{unconfirmed}/referrals", hotline="iwf").status_code == 409

        script = carol.get("/ui/static/referrals.js")
        assert script.status_code == 200
        assert "navigator.clipboard" in script.text

        with ui.client(base, "vera") as vera:
            html = vera.get(page).text
            assert '<strong class="referral-reference">IWF-77</strong>' in html, "seen by all"
            assert 'id="referral-open"' not in html
            assert "/ui/referrals" not in html
            refused = ui.post(vera, "vera", f"{page}/referrals", hotline="bee-secure")
            assert refused.status_code == 403

    with ui.store() as store:
        events = _events(store)
        assert [(a, actor) for a, actor, _, _ in events] == [
            ("referral.opened", "user:carol"),
            ("referral.done", "user:carol"),
            ("referral.opened", "user:carol"),
            ("referral.cancelled", "user:carol"),
        ]
        assert events[1][3]["reference"] == "IWF-77"
        assert verify(store.audit.events(), recorded_head=store.audit.head()).ok


def test_no_hotline_configured_says_so(db_url: str, tmp_path: Path) -> None:
    world_settings = {"home": tmp_path / "home", "ui_secure_cookies": False, "workers": 1}
    opened = open_store(db_url, migrate=True)
    try:
        case_id = _case(opened, "none")
        user = opened.people.create_user("carol", Role.LEAD)
        _, secret = opened.people.create_session(user.id, method="password", ip=None)
    finally:
        opened.close()
    settings = Settings(database_url=db_url, **world_settings)  # type: ignore[arg-type]
    with running_server(settings) as base:
        html = httpx.get(f"{base}/ui/cases/{case_id}", cookies={COOKIE: secret}).text
    assert 'id="referrals-none"' in html
    assert 'id="referral-open"' not in html


MINE = re.compile(r"^/ui/(referrals|cases/\{case_id\}/referrals)")


def test_referral_routes_by_role_over_http(ui: UiWorld) -> None:
    """Every referral route needs ``referrals.manage``, which reviewers and leads have:
    allowed roles pass the gate (a missing id gives 404 or 400, nothing changes), others
    get 403 and anonymous requests go to sign-in."""
    assert {r for r in Role if Permission.REFERRALS_MANAGE in ROLE_PERMISSIONS[r]} == {
        Role.REVIEWER,
        Role.LEAD,
    }
    routes = [(m, p, r) for m, p, r in ui_routes(create_app(ui.settings)) if MINE.match(p)]
    assert {(m, p) for m, p, _ in routes} == {
        ("GET", "/ui/referrals"),
        ("POST", "/ui/cases/{case_id}/referrals"),
        ("POST", "/ui/referrals/{task_id}/done"),
        ("POST", "/ui/referrals/{task_id}/cancel"),
    }
    failures = []
    with running_server(ui.settings) as base:
        for method, path, route in routes:
            assert gate_of(route) == frozenset({Permission.REFERRALS_MANAGE})
            url = re.sub(r"\{[^}]+\}", "987654", path)
            answer = httpx.request(method, base + url, follow_redirects=False)
            if answer.status_code != (303 if method == "GET" else 401):
                failures.append(("anonymous", method, path, answer.status_code))
            for name, role in ROLES.items():
                with ui.client(base, name) as http:
                    data = {"csrf_token": ui.people[name][1]} if method == "POST" else None
                    status = http.request(method, url, data=data).status_code
                allowed = Permission.REFERRALS_MANAGE in ROLE_PERMISSIONS[role]
                if allowed and (status in (401, 403) or status >= 500):
                    failures.append((role, method, path, status))
                if not allowed and status != 403:
                    failures.append((role, method, path, status))
    assert failures == []
    with ui.store() as store:
        assert store.referrals.list() == []


def test_a_lead_refers_a_case_in_a_real_browser(tmp_path: Path) -> None:
    """Debian's Chromium: open a task from the case page, copy the facts with the button
    (the clipboard then holds exactly the facts), mark it done with the reference."""
    executable = chromium_or_skip()
    ui = ui_world(f"sqlite:///{tmp_path / 'browser.db'}", tmp_path)
    case_id = ui.cases["confirmed"]
    with running_server(ui.settings) as base, launched(executable) as (_, browser):
        context = browser.new_context(viewport=VIEWPORT)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        context.add_cookies(
            [{"name": COOKIE, "value": ui.people["carol"][0], "url": base + "/ui/"}]
        )
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{base}/ui/cases/{case_id}")
        page.select_option("#referral-hotline", "bee-secure")
        page.get_by_role("button", name="Open a referral task").click()
        expect(page.locator("#referral-flash")).to_be_visible()
        facts = page.locator("textarea.referral-facts")
        expect(facts).to_have_value(re.compile(f"^URL: {re.escape(URL)}\n"))
        page.get_by_role("button", name="Copy the facts").click()
        expect(page.locator("span.copied")).to_have_text("Copied.")
        assert page.evaluate("navigator.clipboard.readText()") == facts.input_value()
        link = page.get_by_role("link", name="Open the hotline's form")
        assert link.get_attribute("href") == "https://stopline.bee-secure.lu/"
        page.get_by_label("The hotline's reference").fill("SL-2026-0099")
        page.get_by_role("button", name="Mark done").click()
        expect(page.locator("strong.referral-reference")).to_have_text("SL-2026-0099")
        context.close()
    with ui.store() as store:
        assert [(t.hotline, t.reference) for t in store.referrals.list()] == [
            ("bee-secure", "SL-2026-0099")
        ]
