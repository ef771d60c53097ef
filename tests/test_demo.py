"""``hashguard demo`` finds every copy of a known image and no distractor, offline; its
scan opens cases for review with their evidence kept; ``--serve`` is the review demo."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from hashguard.classify.signals import is_classifier_decision
from hashguard.demo.exchange import EXCHANGE, MEMBER_ID
from hashguard.demo.run import (
    CLASSIFIER_ONLY,
    CLIP,
    DEMO_ACCOUNTS,
    DEMO_BANK,
    DEMO_POLICY,
    REMOTE_MATCHED,
    demo_settings,
)
from hashguard.demo.videos import VIDEO_BANK
from hashguard.domain.cases import CaseState
from hashguard.domain.policy import Action
from hashguard.domain.reports import ReportState
from hashguard.domain.signals import Algorithm
from hashguard.store import open_store
from hashguard.web.ui.session import COOKIE
from tests.cli import command, hashguard
from tests.fakes.cybertipline import XSD
from tests.server import free_port


def one_line(text: str) -> str:
    """Rich wraps long lines at 80 columns off a terminal."""
    return " ".join(text.split())


@pytest.mark.usefixtures("home")
def test_demo_finds_edited_copies_and_no_distractors(tmp_path: Path) -> None:
    done = hashguard("demo", "--dir", str(tmp_path / "demo"))
    assert "25/25 copies of known images found" in done.stderr
    assert "0 distractors matched" in done.stderr
    assert (tmp_path / "demo" / "lists" / "known.csv").is_file()
    assert (
        "26 cases opened (4 exact copies to act on, 22 edited copies or clips for review), "
        "evidence kept for 26"
    ) in one_line(done.stderr)
    # done means (issue 15): the clip showing a known image for 3 s is found by frame
    # matching, a re-encoded copy of a listed clip by vPDQ, another clip not at all
    assert "videos: 3/3 clips as expected" in one_line(done.stderr)
    assert (tmp_path / "demo" / "lists" / "videos.csv").is_file()

    settings = demo_settings(tmp_path / "demo" / "home")
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        assert store.banks.get(DEMO_BANK).policy == DEMO_POLICY
        cases = store.cases.list(limit=100)
        assert len(cases) == 26
        # the re-encoded copy of a clip listed by its vPDQ: found by vPDQ, with the
        # percentages and the times of its frames that matched
        (copy,) = [
            c
            for c in cases
            if Path(c.sources[0].path or "").name == "video-known-clip-reencoded.mkv"
        ]
        (vpdq,) = copy.matches
        assert (vpdq.algorithm, vpdq.bank) == (Algorithm.VPDQ, VIDEO_BANK)
        assert vpdq.query_percent is not None
        assert vpdq.query_percent >= 80
        assert vpdq.timestamps
        assert all(case.state is CaseState.OPEN and case.evidence_id for case in cases)
        acted = {
            Path(c.sources[0].path or "").name for c in cases if c.decision.action is Action.ACT
        }
        assert acted == {f"known-{i}-exact-copy.jpg" for i in range(4)}
        # the clip showing known image 0 for three seconds: found by its frames, with
        # the matched frame's time (its case shows a contact sheet)
        (clip,) = [c for c in cases if Path(c.sources[0].path or "").name == CLIP]
        assert clip.signals is not None
        assert clip.signals.video is not None
        (found,) = [m for m in clip.matches if m.effective]
        assert (found.algorithm, found.entry_id) == (Algorithm.PDQ, "demo-000")
        assert found.timestamp is not None
        assert 2.0 <= found.timestamp < 5.0
        assert not store.people.list_users(), "accounts only with --serve"
        # the same path as `hashguard scan`: each matched file's decision is audited
        decided = [e for e in store.audit.events() if e.action == "scan.decision"]
        assert len(decided) == 26
    # without --serve nothing is planned: no quarantine, the files stay
    assert (tmp_path / "demo" / "uploads" / "known-0-exact-copy.jpg").is_file()


def wait_for(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def sign_in(http: httpx.Client, name: str, password: str) -> dict[str, str]:
    """Sign in through the form, as a browser would; the session cookie header."""
    form = http.get("/ui/login")
    login_token = form.cookies["hashguard_login"]
    assert f'value="{login_token}"' in form.text
    signed = http.post(
        "/ui/login",
        data={"login_token": login_token, "next": "/ui/", "username": name, "password": password},
        headers={"cookie": f"hashguard_login={login_token}"},
    )
    assert signed.status_code == 303, signed.text
    # plain http on 127.0.0.1: not Secure, which some browsers would drop there
    session_cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in session_cookie
    assert "secure" not in session_cookie
    return {"cookie": f"{COOKIE}={signed.cookies[COOKIE]}"}


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def post_form(
    http: httpx.Client, cookie: dict[str, str], case_id: int, action: str, form: dict[str, str]
) -> httpx.Response:
    """Post ``form`` to ``action`` from the case's page (its CSRF token), as a browser
    would; the answer must be a redirect."""
    page = http.get(f"/ui/cases/{case_id}", headers=cookie)
    answer = http.post(action, data={"csrf_token": csrf(page), **form}, headers=cookie)
    assert answer.status_code == 303, answer.text
    return answer


def decide(http: httpx.Client, cookie: dict[str, str], case_id: int, verdict: str) -> None:
    """Decide the case from its page, as a browser would."""
    page = http.get(f"/ui/cases/{case_id}", headers=cookie)
    version = re.search(r'name="version" value="([0-9]+)"', page.text)
    assert version is not None
    answer = http.post(
        f"/ui/cases/{case_id}/decide",
        data={
            "csrf_token": csrf(page),
            "version": version.group(1),
            "verdict": verdict,
            "reason": "a generated test image",
        },
        headers=cookie,
    )
    assert answer.status_code == 303, answer.text


@pytest.mark.usefixtures("home")
def test_review_demo_serves_the_cases_and_shows_every_effect(tmp_path: Path) -> None:
    directory, port = tmp_path / "demo", free_port()
    process = subprocess.Popen(
        command(
            "demo",
            "--dir",
            str(directory),
            "--serve",
            "--port",
            str(port),
            "--ncmec-xsd",
            str(XSD),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    base = f"http://127.0.0.1:{port}"

    def said() -> str:
        return one_line("".join(lines))

    try:
        wait_for(lambda: "Ctrl-C stops" in said(), "the demo to print its accounts", 120)
        passwords = dict(re.findall(r"(demo-[a-z]+) password (\S+)", said()))
        assert set(passwords) == {name for name, _ in DEMO_ACCOUNTS}
        assert f"sign in at {base}/ui/login" in said()
        # the demo list arrived through an exchange with feedback on
        assert f"entries synced from exchange {EXCHANGE}" in said()

        def ready() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            return False

        wait_for(ready, "the server")
        # the exact copies acted on: quarantined by the server's dispatcher, webhooks printed
        quarantine = directory / "home" / "quarantine"
        wait_for(lambda: len(list(quarantine.glob("*"))) == 4, "four quarantined files")
        wait_for(lambda: said().count("webhook content.quarantined") == 4, "webhooks")
        assert said().count("webhook match.detected") == 4
        exact = directory / "uploads" / "known-0-exact-copy.jpg"
        assert not exact.exists()

        settings = demo_settings(directory / "home")
        with contextlib.closing(open_store(settings.resolved_database_url)) as store:
            for name, role in DEMO_ACCOUNTS:
                user = store.people.find_user(name)
                assert user is not None
                assert user.role is role
            (case,) = [c for c in store.cases.list(limit=100) if c.sources[0].path == str(exact)]

        # the lead signs in with the printed password (the form, as a browser would; the
        # cookies are sent by hand, as each is scoped to its own path) and calls the case
        # a false positive: the file comes back, the hashes go to the allow bank, the
        # webhook is printed, the decision is audited
        with httpx.Client(base_url=base, headers={"origin": base}) as http:
            lead = sign_in(http, "demo-lead", passwords["demo-lead"])
            page = http.get(f"/ui/cases/{case.id}", headers=lead)
            assert page.status_code == 200
            assert 'id="preview"' in page.text
            decide(http, lead, case.id, "false_positive")
        assert exact.is_file(), "restored from quarantine"
        wait_for(lambda: "webhook case.false_positive" in said(), "the case's webhook")
        # ... and the list is told: negative, with the reason the exchange is set to
        wait_for(
            lambda: (
                f"({EXCHANGE}): negative (Not CSAM) on MD5 of entry {MEMBER_ID}:demo-000" in said()
            ),
            "the false positive's feedback",
        )
        with contextlib.closing(open_store(settings.resolved_database_url)) as store:
            assert store.cases.get(case.id).state is CaseState.FALSE_POSITIVE
            allow = store.banks.get(settings.review_allow_bank)
            assert store.banks.stats(allow.name).total_active > 0
            actions = {e.action for e in store.audit.events()}
            assert {"user.created", "scan.decision", "login"} <= actions
            assert any(a.startswith("case.") for a in actions), actions
            edited = next(
                c
                for c in store.cases.list(limit=100)
                if c.decision.action is not Action.ACT
                and not is_classifier_decision(c.decision)
                and c.signals
                and not c.signals.video
            )
            (clip,) = [
                c for c in store.cases.list(limit=100) if Path(c.sources[0].path or "").name == CLIP
            ]
            by_name = {Path(c.sources[0].path or "").name: c for c in store.cases.list(limit=100)}
            signal_only = by_name[CLASSIFIER_ONLY]
            assert signal_only.decision.action is Action.REVIEW
            assert is_classifier_decision(signal_only.decision)
        assert (directory / "uploads" / CLASSIFIER_ONLY).is_file(), "never acted on"

        # Safer's and PhotoDNA's matches beside the list's on the case page; the
        # classifier-only case shows its source and level, and sits after every list
        # match in the queue by priority
        with httpx.Client(base_url=base, headers={"origin": base}) as http:
            for name in REMOTE_MATCHED:
                page = http.get(f"/ui/cases/{by_name[name].id}", headers=lead).text
                remote_table = page.partition('id="remote"')[2].split("</table>")[0]
                assert "photodna" in remote_table
                assert "safer" in remote_table
                assert DEMO_BANK in page.partition('id="matches"')[2].split("</table>")[0]
                assert f"/ui/cases/{by_name[name].id}" in said()
            page = http.get(f"/ui/cases/{signal_only.id}", headers=lead).text
            assert "content_safety: VERY_HIGH" in page
            assert "classifier, no list match" in page
            queue = http.get("/ui/?order=priority", headers=lead).text
            order = [int(i) for i in re.findall(r'data-case-id="([0-9]+)"', queue)]
            assert order[-1] == signal_only.id, order
        assert f"classifier only: {CLASSIFIER_ONLY}" in said()

        # the walkthrough: the edited copy's case confirmed by the reviewer, then the
        # lead; the list gets affirmative feedback (the case page shows it delivered);
        # a referral task is opened and marked done; meanwhile the reports job files the
        # report against the fake CyberTipline, the evidence is held, report.filed
        # arrives; the case page and the audit log show it all
        assert f"1. as demo-reviewer, open case #{edited.id}" in said()
        assert "5. feedback: the lead's confirmation sends affirmative feedback" in said()
        assert "6. a referral" in said()
        (entry,) = {m.entry_id for m in edited.matches if m.effective}
        assert entry is not None
        with (
            httpx.Client(base_url=base, headers={"origin": base}) as http,
            httpx.Client(base_url=base, headers={"origin": base}) as other,
        ):
            reviewer = sign_in(http, "demo-reviewer", passwords["demo-reviewer"])
            # the clip's case: a contact sheet of blurred frames, the matched one marked
            assert f"a video: case #{clip.id}" in said()
            sheet = http.get(f"/ui/cases/{clip.id}", headers=reviewer).text
            assert 'id="contact-sheet"' in sheet
            assert '<li class="frame matched"' in sheet
            decide(http, reviewer, edited.id, "confirm")
            decide(http, lead, edited.id, "confirm")
            # signing in takes a while (Argon2): done while the report is being filed
            auditor = sign_in(other, "demo-auditor", passwords["demo-auditor"])
            wait_for(
                lambda: f"({EXCHANGE}): affirmative on PDQ of entry {entry}" in said(),
                "the confirmation's feedback",
            )

            def feedback_list() -> str:
                page = http.get(f"/ui/cases/{edited.id}", headers=reviewer).text
                _, _, shown = page.partition('id="feedback-list"')
                return shown.split("</table>")[0]

            wait_for(lambda: "delivered" in feedback_list(), "the feedback shown delivered")
            feedback = feedback_list()
            assert EXCHANGE in feedback
            assert entry in feedback
            assert "confirmed" in feedback

            # a referral task for the demo hotline, opened and marked done from the page
            post_form(
                http,
                reviewer,
                edited.id,
                f"/ui/cases/{edited.id}/referrals",
                {"hotline": "demo-hotline"},
            )
            page = http.get(f"/ui/cases/{edited.id}", headers=reviewer).text
            task = re.search(r'data-referral-id="([0-9]+)"', page)
            assert task is not None
            post_form(
                http,
                reviewer,
                edited.id,
                f"/ui/referrals/{task.group(1)}/done",
                {"reference": "DEMO-1"},
            )
            page = http.get(f"/ui/cases/{edited.id}", headers=reviewer).text
            assert '<strong class="referral-reference">DEMO-1</strong>' in page

            wait_for(lambda: "webhook report.filed" in said(), "the report to be filed", 60)
            assert f"case #{edited.id} reported to NCMEC (test), report id" in said()
            assert "legal hold" in http.get(f"/ui/cases/{edited.id}", headers=reviewer).text
            # the report's id and receipt: for those who see reports (the lead)
            page = http.get(f"/ui/cases/{edited.id}", headers=lead).text
            assert 'id="report-remote-id"' in page
            assert 'id="report-receipt"' in page
            audit_page = other.get("/ui/audit", headers=auditor).text
        walked = {
            "case.confirmed",
            "report.submitted",
            "report.finished",
            "evidence.preserved",
            "exchange.feedback_sent",
            "referral.opened",
            "referral.done",
        }
        assert all(action in audit_page for action in walked)
        with contextlib.closing(open_store(settings.resolved_database_url)) as store:
            (report,) = store.reports.list()
            assert (report.case_id, report.state) == (edited.id, ReportState.FINISHED)
            assert edited.evidence_id is not None
            assert store.evidence.get(edited.evidence_id).legal_hold
            events = list(store.audit.events())
            assert walked <= {e.action for e in events}
            sent = [e for e in events if e.action == "exchange.feedback_sent"]
            assert {(e.details["verdict"], e.details["case"]) for e in sent} >= {
                ("confirmed", edited.id),
                ("false_positive", case.id),
            }
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        reader.join(timeout=5)
        process.stderr.close()
    assert code == 0, said()[-2000:]
