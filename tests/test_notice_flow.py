"""A hotline's notice end to end, on SQLite and PostgreSQL, with kill -9 between steps.

``POST /v1/notices`` on a real server on loopback (a token bound to the configured
hotline) → the platform's signed callback (a loopback platform answering with the bytes
of a benign image that is in the demo bank, and of one that is in no bank) → the one
pipeline → a case per item (the match acted on per the demo bank's policy, the other a
notice-only review case) → two people's final decisions over the API → statements of
reasons → the Transparency Database (loopback fake) and the platform's webhooks (the
notifier's answers, the uploader's statements) through the outbox.

The resolver, the statements filing and the outbox dispatcher each run as a real
``hashguard`` subprocess that is killed with SIGKILL: the first two at the checkpoints
the code offers (``Resolver.checkpoint`` after an item's pipeline commit,
``Filer.checkpoint`` after a batch was sent and before its answer was recorded), the
dispatcher while the platform is still taking a delivery. Each is run again (in
process, the clock moved past the dead process's lease) and the end state holds one
case per item, one statement per decision, one Database record per puid and one
applied webhook per message, each step audited once and the audit chain intact.

Time: the test process runs on a clock it moves forward (``time_machine``, ticking);
the subprocesses get the same offset, so every lease is judged on one timeline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
from typer.testing import CliRunner

from hashguard.audit import verify
from hashguard.cli.app import app as cli_app
from hashguard.demo.receiver import new_secret
from hashguard.demo.run import DEMO_BANK, DemoLayout, build, import_demo_bank
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import SourceKind
from hashguard.domain.notices import ItemState, NoticeState
from hashguard.domain.people import Role
from hashguard.domain.policy import Action
from hashguard.domain.statements import AutomatedDecision, FilingState, StatementKind
from hashguard.domain.tokens import Scope
from hashguard.keys import MasterKey
from hashguard.notices.resolve import LEASE as NOTICE_LEASE
from hashguard.notices.resolve import NO_MATCH_RULE
from hashguard.statements import service as statements
from hashguard.statements.filing import LEASE as STATEMENT_LEASE
from hashguard.store import Store, open_store
from tests.conftest import _copied_sqlite, _fresh_postgres_database
from tests.fakes.platform import Platform
from tests.fakes.tdb import FakeTransparencyDatabase
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.server import running_server

pytestmark = pytest.mark.slow

CALLBACK_SECRET = "whsec_" + base64.b64encode(b"notice-flow-callback-secret-0123").decode()
WRONG_SECRET = "whsec_" + base64.b64encode(b"not-the-platform-secret-abcdefgh").decode()
ACTIONS_LEASE_SECONDS = 30
STOPLINE = {"name": "BEE SECURE Stopline", "kind": "hotline", "tokens": ["stopline"]}
#: what the platform wants to hear of
EVENTS = ["notice.received", "notice.decided", "statement.issued"]

#: A hashguard command as a subprocess on the test's timeline (``offset`` seconds ahead),
#: killed with SIGKILL at the ``nth`` call of the checkpoint ``step`` (``step#nth``)
#: of the resolver or the statements filer it builds; the command itself is the real one.
CHILD = """
import functools, os, signal, sys
from datetime import UTC, datetime, timedelta
import time_machine
offset, stop, *args = sys.argv[1:]
time_machine.travel(datetime.now(UTC) + timedelta(seconds=float(offset)), tick=True).start()
if stop:
    step, _, nth = stop.partition("#")
    seen = []
    def die(name):
        if name == step:
            seen.append(name)
            if len(seen) == int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)
    from hashguard.cli import statements as statements_cli
    from hashguard.notices import service as notices_service
    from hashguard.notices.resolve import Resolver
    from hashguard.statements.filing import Filer
    notices_service.Resolver = functools.partial(Resolver, checkpoint=die)
    statements_cli.Filer = functools.partial(Filer, checkpoint=die)
from hashguard.cli.app import app
app(args, prog_name="hashguard")
"""


class HoldingReceiver(WebhookReceiver):
    """The platform's webhook endpoint; the first delivery of ``hold_type`` is held (the
    sender waits for its answer) until ``release``, then applied."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.hold_type: str | None = None
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.held_done = threading.Event()

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[str, int]:
        held = False
        if self.hold_type is not None and not self.arrived.is_set():
            with contextlib.suppress(ValueError):
                held = json.loads(body).get("type") == self.hold_type
        if not held:
            return super().receive(headers, body)
        self.arrived.set()
        self.release.wait(60)
        try:
            return super().receive(headers, body)
        finally:
            self.held_done.set()

    def applied_of(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for p in self.applied.values() if p and p.get("type") == event]


class Timeline:
    """The test process's clock, moved forward on demand; subprocesses get ``offset``."""

    def __init__(self) -> None:
        self._travel = time_machine.travel(datetime.now(UTC), tick=True)
        self.offset = timedelta(0)

    def __enter__(self) -> Timeline:
        self._coordinates = self._travel.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._travel.stop()

    def shift(self, delta: timedelta) -> None:
        self._coordinates.shift(delta)
        self.offset += delta


@dataclass
class Flow:
    url: str
    home: Path
    env: dict[str, str]
    base: str
    layout: DemoLayout
    platform: Platform
    receiver: HoldingReceiver
    tdb: FakeTransparencyDatabase
    timeline: Timeline
    tokens: dict[str, str]
    store: Store

    def child(
        self, *args: str, stop: str = "", timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``hashguard ARGS`` in a subprocess on the timeline, killed at ``stop``."""
        return subprocess.run(
            [sys.executable, "-c", CHILD, str(self.timeline.offset.total_seconds()), stop, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(self.timeline.offset.total_seconds()), "", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def hashguard(self, *args: str) -> str:
        """``hashguard ARGS`` in this process (a restart after a kill)."""
        done = CliRunner().invoke(cli_app, list(args), env=self.env)
        assert done.exit_code == 0, (done.exit_code, done.output)
        return done.output

    def audit(self, action: str, subject: str | None = None) -> list[dict[str, Any]]:
        return [
            dict(e.details)
            for e in self.store.audit.events()
            if e.action == action and (subject is None or e.subject == subject)
        ]


@pytest.fixture(scope="module")
def layout() -> Iterator[DemoLayout]:
    """The demo's benign corpus and demo bank list (generated once for both engines)."""
    root = Path(tempfile.mkdtemp(prefix="hashguard-flow-demo-"))
    try:
        yield build(root)
    finally:
        import shutil  # noqa: PLC0415

        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def flow(request: pytest.FixtureRequest, layout: DemoLayout) -> Iterator[Flow]:
    home = Path(tempfile.mkdtemp(prefix="hashguard-flow-"))
    if request.param == "sqlite":
        url = _copied_sqlite(request.getfixturevalue("_migrated_sqlite"), home)
    else:
        url = _fresh_postgres_database(
            str(request.getfixturevalue("postgres_server")),
            request.getfixturevalue("_migrated_postgres"),
        )
    key = secrets.token_bytes(32)
    hook_secret = new_secret()
    with (
        pytest.MonkeyPatch.context() as patch,
        Platform(CALLBACK_SECRET, wrong_secret=WRONG_SECRET) as platform,
        HoldingReceiver(hook_secret) as receiver,
        FakeTransparencyDatabase() as tdb,
        Timeline() as timeline,
    ):
        for name in list(os.environ):
            if name.startswith("HASHGUARD_"):
                patch.delenv(name)
        values = {
            "HASHGUARD_HOME": str(home / "home"),
            "HASHGUARD_DATABASE_URL": url,
            "HASHGUARD_MASTER_KEY": base64.b64encode(key).decode(),
            "HASHGUARD_WORKERS": "1",
            "HASHGUARD_NOTICES_CALLBACK_URL": platform.url,
            "HASHGUARD_NOTICES_CALLBACK_SECRET": CALLBACK_SECRET,
            "HASHGUARD_NOTICE_NOTIFIERS": json.dumps({"stopline": STOPLINE}),
            "HASHGUARD_WEBHOOKS": json.dumps(
                [{"name": "platform", "url": receiver.url, "secret": hook_secret, "events": EVENTS}]
            ),
            "HASHGUARD_ACTIONS_LEASE_SECONDS": str(ACTIONS_LEASE_SECONDS),
            "HASHGUARD_ACTIONS_POLL_SECONDS": "0.1",
            "HASHGUARD_WEBHOOK_TIMEOUT_SECONDS": "20",
            "HASHGUARD_NOTICES_RUN_MINUTES": "0",
            "HASHGUARD_STATEMENTS_RUN_MINUTES": "0",
            "HASHGUARD_REPORTS_RUN_MINUTES": "0",
            "HASHGUARD_EXCHANGE_SYNC_MINUTES": "0",
            "HASHGUARD_RETENTION_RUN_HOURS": "0",
        }
        for name, value in values.items():
            patch.setenv(name, value)
        from hashguard.settings import Settings  # noqa: PLC0415

        settings = Settings()
        store = open_store(url)
        try:
            import_demo_bank(store, layout)
            statements.change_settings(
                store,
                lambda: MasterKey(key),
                statements={"issue": True, "territorial_scope": ["LU", "DE", "NL"]},
                sink_settings={"sandbox_url": tdb.base_url, "requests_per_second": 200},
                token=tdb.token,
                actor="cli:lead",
                at=datetime.now(UTC),
                tdb=True,
            )
            tokens = {"stopline": store.tokens.create("stopline", [Scope.NOTICES])[1]}
            for name, role in (("rita", Role.REVIEWER), ("lena", Role.LEAD)):
                token, secret = store.tokens.create(name, [Scope.CASES_REVIEW, Scope.CASES_READ])
                person = store.people.create_user(name, role)
                store.people.set_token_owner(token.id, person.id)
                tokens[name] = secret
            with running_server(settings, background=False) as base:
                yield Flow(
                    url=url, home=home, env=dict(os.environ), base=base, layout=layout,
                    platform=platform, receiver=receiver, tdb=tdb, timeline=timeline,
                    tokens=tokens, store=store,
                )  # fmt: skip
        finally:
            store.close()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_hotline_notice_reaches_a_decision_statements_the_database_and_the_notifier(
    flow: Flow,
) -> None:
    store = flow.store
    known = (flow.layout.uploads / "known-0-exact-copy.jpg").read_bytes()
    clean = (flow.layout.uploads / "other-00.jpg").read_bytes()
    urls = [f"https://files.example.test/u/{secrets.token_hex(4)}" for _ in range(2)]
    flow.platform.content.update({urls[0]: ("bytes", known), urls[1]: ("bytes", clean)})

    # 1. the hotline's notice through the API: 202, its acknowledgement queued
    answer = httpx.post(
        f"{flow.base}/v1/notices",
        json={
            "urls": urls,
            "category": "child_sexual_abuse",
            "explanation": "assessed by the hotline's analyst",
            "notifier": {"kind": "hotline", "reference": "SL-2026-0042"},
        },
        headers=_bearer(flow.tokens["stopline"]),
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    notice_id = answer.json()["notice_id"]
    subject = f"notice:{notice_id}"
    (received,) = flow.audit(AuditAction.NOTICE_RECEIVED, subject)
    assert (received["notifier_kind"], received["configured"]) == ("hotline", "stopline")

    # 2. the resolver, killed -9 after the first item's pipeline commit (not yet saved)
    killed = flow.child("notices", "resolve", stop="committed#1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    cut = store.notices.get(notice_id)
    assert cut.state is NoticeState.RESOLVING
    assert [i.state for i in cut.items] == [ItemState.PENDING, ItemState.PENDING]
    assert len(store.cases.list()) == 1
    # its lease keeps another resolver off until it runs out; then it is taken again
    assert store.notices.due(datetime.now(UTC)) == []
    flow.timeline.shift(NOTICE_LEASE + timedelta(minutes=1))
    flow.hashguard("notices", "resolve", "--json")
    notice = store.notices.get(notice_id)
    assert notice.state is NoticeState.RESOLVED
    assert [i.outcome for i in notice.items] == ["matched", "no_match"]
    assert [(u, p) for u, p in flow.platform.asked.items() if u in urls] == [
        (urls[0], 2), (urls[1], 1),
    ]  # fmt: skip
    matched, clean_case = (store.cases.get(c) for c in notice.case_ids)
    assert matched.banks == (DEMO_BANK,)
    assert matched.decision.action is Action.ACT  # the demo bank acts on exact copies
    assert clean_case.matches == ()
    assert (clean_case.decision.action, clean_case.decision.rule) == (Action.REVIEW, NO_MATCH_RULE)
    for case in (matched, clean_case):
        assert [(s.kind, s.ref) for s in case.sources] == [(SourceKind.NOTICE, str(notice_id))]
    assert sorted(c.id for c in store.cases.list()) == sorted(notice.case_ids)
    assert len(flow.audit(AuditAction.CASE_OPENED)) == 2
    assert len(flow.audit(AuditAction.NOTICE_RESOLVING, subject)) == 1
    assert len(flow.audit(AuditAction.NOTICE_RESOLVED, subject)) == 1
    # the automatic act has its statement and its answer to the notifier, once
    (automated,) = store.statements.for_case(matched.id)
    assert automated.reasons.kind is StatementKind.AUTOMATED
    assert len(flow.audit(AuditAction.NOTICE_DECIDED, subject)) == 1

    # 3. two people's final decisions over the API (the two-person rule): both confirmed
    with httpx.Client(base_url=flow.base, timeout=30) as http:
        for case in (clean_case, matched):
            for person in ("rita", "lena"):
                done = http.post(
                    f"/v1/cases/{case.id}/decisions",
                    json={"verdict": "confirm", "reason": "seen by a person"},
                    headers=_bearer(flow.tokens[person]),
                )
                assert done.status_code == 200, done.text
            assert done.json()["state"] == "confirmed"
    confirmations = flow.audit(AuditAction.CASE_CONFIRMED)
    assert len(confirmations) == 4  # two people, two cases
    (confirmed,) = store.statements.for_case(clean_case.id)
    assert confirmed.reasons.kind is StatementKind.CONFIRMED
    assert confirmed.reasons.automated_detection is False
    assert confirmed.reasons.automated_decision is AutomatedDecision.NOT_AUTOMATED
    assert store.statements.for_case(matched.id) == [automated]  # no second statement
    assert len(flow.audit(AuditAction.STATEMENT_ISSUED)) == 2
    decided = flow.audit(AuditAction.NOTICE_DECIDED, subject)
    assert sorted(d["case"] for d in decided) == sorted(notice.case_ids)

    # 4. the statements' filing, killed -9 after the batch was sent, before its answer
    killed = flow.child("statements", "submit", stop="sent#1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    puids = {automated.puid, confirmed.puid}
    assert set(flow.tdb.stored) == puids
    assert store.statements.count_by_state() == {FilingState.SENDING: 2}
    flow.timeline.shift(STATEMENT_LEASE + timedelta(minutes=1))
    filed = json.loads(flow.hashguard("statements", "submit").splitlines()[-1])
    assert filed["filed"] == 2, filed
    assert store.statements.count_by_state() == {FilingState.FILED: 2}
    assert flow.tdb.stores == Counter(dict.fromkeys(puids, 1))  # one record per puid
    assert {flow.tdb.stored[p]["source_type"] for p in puids} == {"SOURCE_ARTICLE_16"}
    assert sum(len(e["puids"]) for e in flow.audit(AuditAction.STATEMENTS_FILED)) == 2

    # 5. the outbox, its dispatcher killed -9 while the platform takes a notifier answer
    flow.receiver.hold_type = "notice.decided"
    dispatcher = flow.popen("actions", "dispatch")
    try:
        assert flow.receiver.arrived.wait(60), "no notice.decided was delivered"
        dispatcher.send_signal(signal.SIGKILL)
        assert dispatcher.wait(timeout=30) == -signal.SIGKILL
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
            dispatcher.wait()
    flow.receiver.release.set()
    assert flow.receiver.held_done.wait(30)
    flow.timeline.shift(timedelta(seconds=ACTIONS_LEASE_SECONDS + 1))
    flow.hashguard("actions", "dispatch", "--once")
    assert store.actions.list(limit=1000)
    assert {str(a.state) for a in store.actions.list(limit=1000)} == {"delivered"}
    receiver = flow.receiver
    assert set(receiver.effects.values()) == {1}  # nothing applied twice
    assert all(d.verified for d in receiver.deliveries)
    assert len(receiver.deliveries) == len(receiver.applied) + 1  # the held one, again
    (ack,) = receiver.applied_of("notice.received")
    assert ack["data"]["notice_id"] == notice_id
    answers = receiver.applied_of("notice.decided")
    assert sorted(a["data"]["case"] for a in answers) == sorted(notice.case_ids)
    assert {a["data"]["outcome"] for a in answers} == {"restricted"}
    assert {a["data"]["statement_puid"] for a in answers} == puids
    shown = receiver.applied_of("statement.issued")
    assert {s["data"]["puid"] for s in shown} == puids
    assert all(s["data"]["text"].startswith("Statement of reasons") for s in shown)

    # every step is in the audit log once, and the chain is intact
    assert verify(store.audit.events(), recorded_head=store.audit.head()).ok
