"""What a CyberTipline report says: the uploader's details from a loopback platform
that answers the signed additional-information request (its answer's signature
checked; an unsigned, wrongly signed, late, unbound, malformed or missing answer
refuses the draft and stores nothing), kept only sealed; the reviewers' file
annotations and industry classification (sent only with the MOU) — every document
validated against NCMEC's XSD, on SQLite and PostgreSQL, with generated benign images."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select, text
from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import CaseEventKind
from hashguard.domain.reports import FileAnnotation, IndustryClassification, Reporter
from hashguard.domain.reports import ReportState as S
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions
from hashguard.keys import MasterKey
from hashguard.plugins import GROUP, PluginError, Registry
from hashguard.reports import service
from hashguard.reports.documents import ReportKeys
from hashguard.reports.uploader import UploaderInfoSettings, UploaderLookup
from hashguard.review import cases as review
from hashguard.store import Store
from hashguard.store.schema import metadata
from tests.fakes.cybertipline import XSD, FakeCyberTipline, schema
from tests.fakes.loopback import LoopbackServer
from tests.test_reports import _case

pytestmark = pytest.mark.skipif(not XSD.exists(), reason=f"NCMEC's XSD is not at {XSD}")

REPORTER = Reporter(
    first_name="Test",
    last_name="Reporter",
    email="trust-safety@example.test",
    legal_url="https://example.test/legal",
    platform="ExampleHost Files",
)
IMAGE = encode(generate(Kind.PHOTO, 1401, 320, 240))
T0 = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"platform-shared-secret-0123456789").decode()
POINT = EntryPoint(
    name="cybertipline", value="hashguard.reports.ncmec:CyberTiplineSink", group=GROUP
)
#: what the platform says of the uploader: none of it may rest in a row, a log or audit
SCREEN_NAME = "screen-7c41e9"
EMAIL = "uploader-5d2a@mail.example.test"
DISPLAY_NAME = "Display Name 83f0"
ESP_USER_ID = "esp-user-91b77"
LOGIN_IP = "198.51.100.23"
UPLOAD_IP = "2001:db8::7:1"
UPLOADED_AT = "2026-01-15T11:07:13Z"


def _answer(sha256: str) -> dict[str, Any]:
    return {
        "esp_user_id": ESP_USER_ID,
        "screen_name": SCREEN_NAME,
        "display_names": [DISPLAY_NAME],
        "emails": [EMAIL],
        "ip_captures": [{"ip": LOGIN_IP, "event": "Login", "at": "2026-01-15T10:00:00Z"}],
        "files": [
            {
                "sha256": sha256,
                "uploaded_at": UPLOADED_AT,
                "upload_ip": {"ip": UPLOAD_IP, "event": "Upload", "at": UPLOADED_AT},
            }
        ],
    }


# -- the platform's side of the request --------------------------------------------------


@dataclass
class Asked:
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool


class Platform(LoopbackServer):
    """A platform answering the additional-information request. ``behaviour``: ``ok``
    (signed answer), ``unsigned``, ``wrong_secret``, ``late`` (signed 10 minutes ago),
    ``other_id`` (signed under another message id), ``malformed`` (signed, an IP that
    is not one), ``extra`` (signed, a field hashguard does not take), ``slow`` (answers
    after ``delay`` seconds), ``error`` (HTTP 500)."""

    def __init__(self, secret: str = SECRET) -> None:
        super().__init__()
        self.secret = secret
        self.behaviour = "ok"
        self.delay = 2.0
        self.asked: list[Asked] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base_url}/hashguard/uploader-info"

    def answer(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            Webhook(self.secret).verify(raw, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        request = json.loads(raw)
        with self._lock:
            self.asked.append(Asked(headers=headers, body=request, verified=verified))
        if not verified:
            return 401, {}, b""
        behaviour = self.behaviour
        if behaviour == "error":
            return 500, {}, b""
        if behaviour == "slow":
            self._stopping.wait(self.delay)
        data = _answer(request["content_sha256"])
        if behaviour == "malformed":
            data["ip_captures"][0]["ip"] = "not-an-address"
        if behaviour == "extra":
            data["phone"] = "+1 555 0100"
        body = json.dumps(data).encode()
        if behaviour == "unsigned":
            return 200, {"content-type": "application/json"}, body
        msg_id = "msg_other" if behaviour == "other_id" else headers["webhook-id"]
        when = datetime.now(UTC) - (timedelta(minutes=10) if behaviour == "late" else timedelta())
        key = "whsec_" + base64.b64encode(b"not-the-shared-secret").decode()
        signer = Webhook(key if behaviour == "wrong_secret" else self.secret)
        signed = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signer.sign(msg_id, when, body.decode()),
        }
        return 200, signed, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, body = platform.answer(headers, raw)
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # hashguard gave up waiting

            def log_message(self, *_args: object) -> None:
                pass

        return Handler


# -- a world with a confirmed case ------------------------------------------------------


@dataclass
class World:
    store: Store
    vault: Vault
    key: MasterKey
    fake: FakeCyberTipline
    platform: Platform
    now: list[datetime] = field(default_factory=lambda: [T0])

    def settings(self, **sink: Any) -> None:
        service.change_settings(
            self.store,
            lambda: self.key,
            reporter={},
            sink_settings=sink,
            secrets={},
            actor="cli:lead",
            at=T0,
        )

    def reporting(self, *, timeout: float = 5.0) -> service.Reporting:
        sink = service.open_sink(self.store, Registry.load(points=[POINT]), lambda: self.key)
        opened = service.open_uploader(self.store, lambda: self.key)
        assert opened is not None
        uploader = UploaderLookup(
            UploaderInfoSettings(url=opened.settings.url, timeout_seconds=timeout), SECRET
        )
        opened.close()
        return service.Reporting(
            store=self.store,
            sink=sink,
            keys=ReportKeys(self.store.reports, self.key),
            evidence=lambda i: self.vault.get(i, actor="system:reports", reason="report")[0],
            limits=HashOptions(max_pixels=50_000_000),
            clock=lambda: self.now[0],
            uploader=uploader,
        )

    def confirmed(self, name: str = "a", data: bytes = IMAGE) -> int:
        case_id = _case(self.store, self.vault, data, name)
        for who in ("user:alice", "user:bob"):
            review.confirm(self.store, case_id, actor=who, reason="seen", second_confirmation=True)
        return case_id


@pytest.fixture
def world(store: Store, tmp_path: Path) -> Iterator[World]:
    store.banks.create("known")
    key = MasterKey(secrets.token_bytes(32))
    with FakeCyberTipline() as fake, Platform() as platform:
        service.change_settings(
            store,
            lambda: key,
            reporter={k: getattr(REPORTER, k) for k in service.REPORTER_FIELDS},
            sink_settings={
                "test_url": fake.base_url,
                "schema_file": str(XSD),
                "requests_per_second": 1000,
            },
            secrets={
                "username": "esp-user",
                "password": "esp-pass",
                service.UPLOADER_SECRET: SECRET,
            },
            uploader_info={"url": platform.url},
            actor="cli:lead",
            at=T0,
        )
        yield World(
            store=store,
            vault=Vault(store.evidence, key, tmp_path / "evidence"),
            key=key,
            fake=fake,
            platform=platform,
        )


def _valid(document: bytes) -> ET.Element:
    errors = list(schema().iter_errors(ET.fromstring(document)))
    assert not errors, errors[0]
    return ET.fromstring(document)


def _sent(world: World, case_id: int) -> tuple[ET.Element, ET.Element]:
    with world.reporting() as reporting:
        report = reporting.submit(case_id, actor="cli:lead")
    assert report.state is S.FINISHED, world.store.reports.steps(report.id)
    (sent,) = world.fake.finished()
    (details,) = sent.details.values()
    return _valid(sent.document), _valid(details)


def _dump(store: Store) -> bytes:
    """Every value of every row (and for SQLite the database files themselves)."""
    parts: list[bytes] = []
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    parts.append(bytes(value) if isinstance(value, bytes | memoryview) else b"")
                    parts.append(repr(value).encode())
        if conn.dialect.name == "sqlite":
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    database = store.engine.url.database
    if store.engine.dialect.name == "sqlite" and database:
        for suffix in ("", "-wal"):
            file = Path(database + suffix)
            if file.exists():
                parts.append(file.read_bytes())
    return b"\n".join(parts)


PERSONAL = (SCREEN_NAME, EMAIL, DISPLAY_NAME, ESP_USER_ID, LOGIN_IP, UPLOAD_IP, "2001:db8")


# -- the uploader's details --------------------------------------------------------------


def test_the_platforms_signed_answer_goes_into_the_report(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    case_id = world.confirmed()
    case = world.store.cases.get(case_id)
    document, details = _sent(world, case_id)

    # the request: signed, and saying only which case and content it is about
    (asked,) = world.platform.asked
    assert asked.verified
    assert set(asked.body) == {"type", "case_id", "content_sha256", "uploader_id", "url", "seen_at"}
    assert asked.body["content_sha256"] == case.content_key
    assert asked.body["uploader_id"] == "user-0001"
    assert asked.body["seen_at"] == [case.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")]

    user = document.find("personOrUserReported")
    assert user is not None
    assert [c.tag for c in user] == [
        "personOrUserReportedPerson",
        "espIdentifier",
        "espService",
        "screenName",
        "displayName",
        "ipCaptureEvent",
    ]
    assert user.findtext("personOrUserReportedPerson/email") == EMAIL
    assert user.findtext("espIdentifier") == ESP_USER_ID
    assert user.findtext("screenName") == SCREEN_NAME
    assert user.findtext("displayName") == DISPLAY_NAME
    assert user.findtext("ipCaptureEvent/ipAddress") == LOGIN_IP
    assert user.findtext("ipCaptureEvent/eventName") == "Login"
    assert user.findtext("ipCaptureEvent/dateTime") == "2026-01-15T10:00:00Z"

    assert details.findtext("uploadedToEspTimestamp") == UPLOADED_AT
    assert details.findtext("ipCaptureEvent/ipAddress") == UPLOAD_IP
    assert details.findtext("ipCaptureEvent/eventName") == "Upload"

    # kept only sealed: never in a row, an audit event or a log line
    dump = _dump(world.store)
    for value in (*PERSONAL, UPLOADED_AT, UPLOADED_AT.replace("Z", "+00:00")):
        assert value.encode() not in dump, value
        assert value not in caplog.text
    requested = [
        e for e in world.store.audit.events() if e.action == AuditAction.REPORT_UPLOADER_REQUESTED
    ]
    assert [(e.subject, e.details) for e in requested] == [(f"case:{case_id}", {"outcome": "ok"})]


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("unsigned", "not signed"),
        ("wrong_secret", "does not verify"),
        ("late", "too old"),
        ("other_id", "not signed for this request"),
        ("malformed", "ip_captures.0.ip"),
        ("extra", "phone: extra_forbidden"),
        ("error", "HTTP 500"),
        ("slow", "did not answer"),
    ],
)
def test_an_answer_that_does_not_verify_refuses_the_draft(
    world: World, behaviour: str, reason: str
) -> None:
    case_id = world.confirmed()
    world.platform.behaviour = behaviour
    with (
        world.reporting(timeout=0.5) as reporting,
        pytest.raises(service.UploaderUnavailable, match=reason) as refused,
    ):
        reporting.draft(case_id, actor="cli:lead")
    assert refused.value.retryable
    assert "try again later" in str(refused.value)
    assert world.store.reports.list() == []
    assert world.fake.calls == []
    for value in PERSONAL:
        assert value not in str(refused.value)
    (event,) = [
        e for e in world.store.audit.events() if e.action == AuditAction.REPORT_UPLOADER_REQUESTED
    ]
    assert event.details["outcome"] != "ok"
    # the platform answers again: the same case is drafted then
    world.platform.behaviour = "ok"
    with world.reporting() as reporting:
        report, created = reporting.draft(case_id, actor="cli:lead")
    assert created
    assert report.state is S.DRAFT


def test_no_request_when_switched_off(world: World) -> None:
    case_id = world.confirmed()
    world.store.cases.get(case_id)
    # switched off: no request, and the report still names the case's uploader id
    service.change_settings(
        world.store,
        lambda: world.key,
        reporter={},
        sink_settings={},
        secrets={},
        uploader_info={"url": ""},
        actor="cli:lead",
        at=T0,
    )
    assert service.open_uploader(world.store, lambda: world.key) is None
    sink = service.open_sink(world.store, Registry.load(points=[POINT]), lambda: world.key)
    with service.Reporting(
        store=world.store,
        sink=sink,
        keys=ReportKeys(world.store.reports, world.key),
        evidence=lambda i: world.vault.get(i, actor="system:reports", reason="report")[0],
        limits=HashOptions(max_pixels=50_000_000),
        clock=lambda: T0,
    ) as reporting:
        report = reporting.submit(case_id, actor="cli:lead")
    assert report.state is S.FINISHED
    assert world.platform.asked == []
    (sent,) = world.fake.finished()
    user = _valid(sent.document).find("personOrUserReported")
    assert user is not None
    assert user.findtext("espIdentifier") == "user-0001"
    assert user.find("screenName") is None


def test_configured_without_its_secret_is_refused(world: World) -> None:
    case_id = world.confirmed()
    sink = service.open_sink(world.store, Registry.load(points=[POINT]), lambda: world.key)
    try:
        with pytest.raises(service.UploaderUnavailable, match="secret is missing"):
            service.draft(
                world.store,
                sink,
                ReportKeys(world.store.reports, world.key),
                case_id,
                data=lambda i: world.vault.get(i, actor="system:reports", reason="r")[0],
                limits=HashOptions(max_pixels=50_000_000),
                actor="cli:lead",
                at=T0,
            )
    finally:
        sink.close()
    assert world.store.reports.list() == []
    assert world.platform.asked == []


def test_the_uploader_secret_is_sealed_and_never_given_to_the_sink(world: World) -> None:
    raw = SECRET.removeprefix("whsec_")
    assert raw.encode() not in _dump(world.store)
    sink = service.open_sink(world.store, Registry.load(points=[POINT]), lambda: world.key)
    assert set(sink.credentials) == {"username", "password"}
    sink.close()
    with pytest.raises(ValueError, match="uploader_info_secret is not a Standard Webhooks"):
        service.change_settings(
            world.store,
            lambda: world.key,
            reporter={},
            sink_settings={},
            secrets={service.UPLOADER_SECRET: "not base64 !"},
            actor="cli:lead",
            at=T0,
        )
    with pytest.raises(ValueError, match="uploader_info_url"):
        service.change_settings(
            world.store,
            lambda: world.key,
            reporter={},
            sink_settings={},
            secrets={},
            uploader_info={"url": "http://platform.example.test/info"},
            actor="cli:lead",
            at=T0,
        )


def test_a_url_without_its_secret_does_not_open(world: World) -> None:
    world.store.reports.put_settings(
        service.SINK,
        world.store.reports.settings(service.SINK)[0],
        {},
        changed=["credentials"],
        actor="cli:lead",
        at=T0,
    )
    with pytest.raises(PluginError, match="secret is not"):
        service.open_uploader(world.store, lambda: world.key)


@pytest.mark.parametrize("stop", ["intent:fileinfo:1", "recorded:uploaded", "expired"])
def test_resumed_or_reopened_reports_keep_the_sealed_details(world: World, stop: str) -> None:
    case_id = world.confirmed()
    review.annotate(world.store, case_id, actor="user:bob", annotations=[FileAnnotation.VIRAL])
    stops: list[str] = []

    def checkpoint(step: str) -> None:
        if stop == "expired" and step == "recorded:upload" and not stops:
            stops.append(step)
            world.fake.reports.clear()  # NCMEC cancelled the unfinished report
        elif step == stop and not stops:
            stops.append(step)
            raise KeyboardInterrupt

    with world.reporting() as reporting:
        report, _ = reporting.draft(case_id, actor="cli:lead")
        runner = reporting.runner("cli:lead")
        runner.checkpoint = checkpoint
        if stop != "expired":
            with pytest.raises(KeyboardInterrupt):
                runner.run(report.id)
            runner = reporting.runner("cli:lead")  # another process
        assert runner.run(report.id).state is S.FINISHED
    assert stops
    (sent,) = world.fake.finished()
    (details,) = sent.details.values()
    tree = _valid(details)
    assert [t.tag for t in tree.find("fileAnnotations") or ()] == ["viral"]
    assert tree.findtext("ipCaptureEvent/ipAddress") == UPLOAD_IP
    assert len(world.platform.asked) == 1, "asked once, at draft time"


# -- the reviewers' annotations and classification -----------------------------------------


def test_annotations_and_classification_with_the_mou(world: World) -> None:
    case_id = world.confirmed()
    review.annotate(
        world.store,
        case_id,
        actor="user:alice",
        annotations=[FileAnnotation.VIRAL, FileAnnotation.POTENTIAL_MEME],
    )
    review.annotate(
        world.store,
        case_id,
        actor="user:alice",
        annotations=[FileAnnotation.GENERATIVE_AI, FileAnnotation.VIRAL],
        reason="the latest set wins",
    )
    review.set_classification(world.store, case_id, IndustryClassification.B2, actor="user:bob")
    world.settings(industry_classification_mou=True)
    _, details = _sent(world, case_id)
    tags = details.find("fileAnnotations")
    assert tags is not None
    assert sorted(t.tag for t in tags) == ["generativeAi", "viral"]
    assert {t.text for t in tags} == {"true"}
    assert details.findtext("industryClassification") == "B2"
    order = [c.tag for c in details]
    assert order.index("fileAnnotations") < order.index("industryClassification")
    assert order.index("industryClassification") < order.index("originalFileHash")
    # the case's history and the audit log say who set what
    kinds = [e.kind for e in world.store.cases.history(case_id)]
    assert kinds.count(CaseEventKind.ANNOTATED) == 2
    assert kinds.count(CaseEventKind.CLASSIFIED) == 1
    actions = [e.action for e in world.store.audit.events()]
    assert actions.count(AuditAction.CASE_ANNOTATED) == 2
    assert actions.count(AuditAction.CASE_CLASSIFIED) == 1
    # the labels rest sealed with the report, not in its file's row
    (row,) = world.store.reports.list()[0].files
    assert row.file.annotations == ()
    assert row.file.classification is None


def test_no_classification_without_the_mou(world: World) -> None:
    case_id = world.confirmed()
    review.set_classification(world.store, case_id, IndustryClassification.A1, actor="user:bob")
    review.annotate(world.store, case_id, actor="user:bob", annotations=[FileAnnotation.INFANT])
    _, details = _sent(world, case_id)
    assert details.find("industryClassification") is None
    assert [t.tag for t in details.find("fileAnnotations") or ()] == ["infant"]


def test_cleared_labels_and_a_false_positive(world: World) -> None:
    case_id = world.confirmed()
    review.annotate(world.store, case_id, actor="user:bob", annotations=[FileAnnotation.VIRAL])
    review.annotate(world.store, case_id, actor="user:bob", annotations=[])
    review.set_classification(world.store, case_id, IndustryClassification.A2, actor="user:bob")
    review.set_classification(world.store, case_id, None, actor="user:bob")
    world.settings(industry_classification_mou=True)
    _, details = _sent(world, case_id)
    assert details.find("fileAnnotations") is None
    assert details.find("industryClassification") is None

    other = _case(world.store, world.vault, encode(generate(Kind.PHOTO, 1402, 64, 64)), "b")
    review.mark_false_positive(
        world.store, other, actor="user:alice", reason="benign", allow_bank="allowed"
    )
    with pytest.raises(review.InvalidTransition):
        review.annotate(world.store, other, actor="user:alice", annotations=[])
    with pytest.raises(review.StaleCase):
        review.annotate(
            world.store,
            case_id,
            actor="user:alice",
            annotations=[FileAnnotation.VIRAL],
            version=1,
        )


def test_cli_end_to_end(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings, annotate and classify by the CLI; ``reports submit`` asks the platform
    (``Reporting.open`` opens the sealed secret) and sends it all; a bad answer refuses
    the draft with exit 2."""
    from hashguard.evidence import open_vault  # noqa: PLC0415
    from hashguard.keys import master_key_for  # noqa: PLC0415
    from hashguard.settings import Settings  # noqa: PLC0415
    from hashguard.store import open_store  # noqa: PLC0415
    from tests.cli import hashguard  # noqa: PLC0415
    from tests.test_reports import _with_entry_point  # noqa: PLC0415

    _with_entry_point(tmp_path, monkeypatch)
    settings = Settings()
    store = open_store(settings.resolved_database_url)
    with FakeCyberTipline() as fake, Platform() as platform:
        try:
            store.banks.create("known")
            key = master_key_for(settings)[0]
            w = World(
                store=store,
                vault=open_vault(settings, store, key),
                key=key,
                fake=fake,
                platform=platform,
            )
            first, second = (
                w.confirmed("a"),
                w.confirmed("b", encode(generate(Kind.PHOTO, 9, 96, 64))),
            )
        finally:
            store.close()
        monkeypatch.setenv("NCMEC_USER", "esp-user")
        monkeypatch.setenv("NCMEC_PW", "esp-pass")
        monkeypatch.setenv("PLATFORM_SECRET", SECRET)
        done = hashguard(
            "reports", "settings", "--first-name", "Test", "--last-name", "Reporter",
            "--email", "trust-safety@example.test", "--test-url", fake.base_url,
            "--schema-file", str(XSD), "--username", "env:NCMEC_USER", "--password", "env:NCMEC_PW",
            "--uploader-info-url", platform.url, "--uploader-info-secret", "env:PLATFORM_SECRET",
            "--industry-classification-mou", "--json",
        )  # fmt: skip
        assert SECRET.removeprefix("whsec_") not in done.stdout + done.stderr
        shown = json.loads(done.stdout)
        assert shown["uploader_info"] == {"url": platform.url}
        assert shown["sink"]["industry_classification_mou"] is True
        assert service.UPLOADER_SECRET in shown["credentials"]
        hashguard(
            "cases", "annotate", str(first), "--annotation", "generative_ai",
            "--annotation", "viral",
        )  # fmt: skip
        hashguard("cases", "classify", str(first), "a1")
        submitted = json.loads(hashguard("reports", "submit", str(first)).stdout)
        assert submitted["state"] == "finished"
        (sent,) = fake.finished()
        (details,) = sent.details.values()
        tree = _valid(details)
        assert sorted(t.tag for t in tree.find("fileAnnotations") or ()) == [
            "generativeAi",
            "viral",
        ]
        assert tree.findtext("industryClassification") == "A1"
        assert tree.findtext("ipCaptureEvent/ipAddress") == UPLOAD_IP
        assert _valid(sent.document).findtext("personOrUserReported/screenName") == SCREEN_NAME
        noted = hashguard("cases", "annotate", str(first), "--clear").stderr
        assert "already has report" in noted

        platform.behaviour = "wrong_secret"
        refused = hashguard("reports", "draft", str(second), check=2)
        assert "does not verify" in refused.stderr
        assert "try again later" in refused.stderr
        assert len(fake.reports) == 1

    # what the CLI refuses
    refused = hashguard(
        "reports", "settings", "--uploader-info-url", "http://platform.example.test/", check=2
    )  # fmt: skip
    assert "https" in refused.stderr
    assert "A1, A2, B1, B2" in hashguard("cases", "classify", "1", "C3", check=2).stderr
    assert "--annotation" in hashguard("cases", "annotate", "1", check=2).stderr
    assert "no case #77" in hashguard("cases", "classify", "77", "A1", check=2).stderr
