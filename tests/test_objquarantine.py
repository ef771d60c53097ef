"""Object storage beyond scanning: quarantine in a bucket (Object Lock legal hold where the
store has it, verified by SHA-256, idempotent on retry, restored on a false positive),
incremental rescans, server scan runs of s3://, and a list update finding an old object
through retro-matching without reading the bucket again. The moto S3 server on loopback
behind the logging proxy (real HTTP)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner, Result

from hashguard.actions.delivery import Delivered, Permanent
from hashguard.actions.dispatcher import Dispatcher, object_deliverers
from hashguard.actions.objquarantine import (
    TAG_KEY,
    ObjectQuarantineDeliverer,
    bucket_readiness,
    object_quarantine_action,
    quarantine_key,
)
from hashguard.cli.app import app as cli_app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.actions import (
    ActionKind,
    ActionState,
    HoldKind,
    OriginalFate,
    QuarantineState,
)
from hashguard.domain.appeals import Outcome, Restoration
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import Case, CaseState
from hashguard.domain.kept import NewKept
from hashguard.domain.objects import ObjectRef
from hashguard.domain.policy import Action
from hashguard.domain.scans import ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.matching.matcher import Matcher
from hashguard.review import appeals
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import StoredObject
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from tests.api_support import assert_problem, bearer, make_token, wait_until
from tests.cli import json_lines, write_known_list
from tests.s3_proxy import Proxy, s3_proxy
from tests.server import running_server
from tests.test_appeals import T0, World

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
IMAGES = {f"photos/{i}.jpg": encode(generate(Kind.PHOTO, 700 + i, 160, 120)) for i in range(3)}
TARGET = "photos/1.jpg"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def proxy(moto_url: str) -> Iterator[Proxy]:
    with s3_proxy(moto_url) as running:
        yield running


@pytest.fixture(scope="module")
def s3(moto_url: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")


def _cli(*args: str, check: int | None = 0) -> Result:
    result = CliRunner().invoke(cli_app, list(args))
    if check is not None:
        assert result.exit_code == check, (result.exit_code, result.stdout, result.stderr)
    return result


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(s3: Any, bucket: str, key: str, version: str | None = None) -> bytes:
    args = {"Bucket": bucket, "Key": key} | ({"VersionId": version} if version else {})
    data: bytes = s3.get_object(**args)["Body"].read()
    return data


def _object_gets(proxy: Proxy, bucket: str) -> list[str]:
    """GetObject requests on ``bucket`` (listings are GETs of the bucket itself)."""
    return [p.split("?")[0] for p in proxy.requests("GET", f"/{bucket}/") if "list-type" not in p]


def _listings(proxy: Proxy, bucket: str) -> list[str]:
    return [p for p in proxy.requests("GET", f"/{bucket}") if "list-type" in p or "versions" in p]


def _summary(result: Result) -> dict[str, Any]:
    return json_lines(result.stdout)[1]


@pytest.mark.usefixtures("home")
def test_a_list_update_finds_an_old_object_without_reading_the_bucket_and_quarantines_it(
    s3: Any, proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Done means (issue 18): from a clean start a bucket is scanned (nothing known); a
    rescan skips what was checked; a list update finds the old object by retro-matching
    with no request to the bucket but the one GET of the hit's evidence; its case opens
    once; the object moves to the Object Lock quarantine bucket under a legal hold; the
    reviewer's false positive puts it back, through the outbox each time."""
    s3.create_bucket(Bucket="uploads")
    s3.put_bucket_versioning(Bucket="uploads", VersioningConfiguration={"Status": "Enabled"})
    for key, data in IMAGES.items():
        s3.put_object(Bucket="uploads", Key=key, Body=data, ContentType="image/jpeg")
    s3.create_bucket(Bucket="held", ObjectLockEnabledForBucket=True)
    for name, value in {
        "KEEP_SIGNALS": "true",
        "QUARANTINE_OBJECTS": "true",
        "QUARANTINE_BUCKET": "held",
        "S3_ENDPOINT_URL": proxy.url,
        "MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }.items():
        monkeypatch.setenv(f"HASHGUARD_{name}", value)
    scan = ("scan", "s3://uploads/photos/", "--endpoint-url", proxy.url, "--json")

    proxy.log.clear()
    first = _summary(_cli(*scan, "--workers", "1"))
    assert first["counts"]["no_match"] == 3
    assert first["skipped"] == 0
    assert sorted(_object_gets(proxy, "uploads")) == sorted(f"/uploads/{k}" for k in IMAGES)

    # a rescan against the same bank versions reads nothing: listed, skipped, counted
    proxy.log.clear()
    again = _summary(_cli(*scan, "--workers", "1", "--rescan"))
    assert again["skipped"] == 3
    assert again["total"] == 0
    assert again["counts"]["no_match"] == 0
    assert _object_gets(proxy, "uploads") == []

    # the list grows: the old object is found by its kept hashes alone
    listing = write_known_list(
        tmp_path / "known.csv", [("md5", hashlib.md5(IMAGES[TARGET]).hexdigest(), "k-1")]
    )
    _cli("banks", "import", "known", str(listing), "--source", "tests", "--licence", "test only")
    proxy.log.clear()
    retro = json.loads(_cli("retro-match", "--endpoint-url", proxy.url, "--json").stdout)
    assert (retro["matched"], retro["cases"]) == (1, 1)
    assert _listings(proxy, "uploads") == []  # no LIST: the bucket is not walked again
    assert _object_gets(proxy, "uploads") == [f"/uploads/{TARGET}"]  # the evidence, once
    assert json.loads(_cli("retro-match", "--json").stdout)["matched"] == 0

    settings = Settings()
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        (case,) = store.cases.list()
        assert case.content_key == _sha256(IMAGES[TARGET])
        assert case.evidence_id is not None
        (pending,) = [a for a in store.actions.list() if a.kind == "object_quarantine"]
        assert pending.payload["sha256"] == _sha256(IMAGES[TARGET])

    _cli("actions", "dispatch", "--once")
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        (record,) = store.actions.object_quarantines()
        events = [e for e in store.audit.events() if e.action == AuditAction.CONTENT_QUARANTINED]
    assert record.state is QuarantineState.QUARANTINED
    assert (record.lock, record.lock_note) == (HoldKind.LEGAL_HOLD, None)
    assert record.original is OriginalFate.DELETE
    copy = _read(s3, "held", record.quarantine_key, record.quarantine_version_id)
    assert _sha256(copy) == record.sha256
    hold = s3.get_object_legal_hold(
        Bucket="held", Key=record.quarantine_key, VersionId=record.quarantine_version_id
    )
    assert hold["LegalHold"]["Status"] == "ON"
    left = s3.list_object_versions(Bucket="uploads", Prefix=TARGET).get("Versions", [])
    assert left == []  # the matched version itself is deleted, not hidden by a marker
    (event,) = events
    (listed,) = [
        json.loads(line) for line in _cli("actions", "quarantined", "--json").stdout.splitlines()
    ]
    assert (listed["state"], listed["hold"]) == ("quarantined", "legal_hold")
    assert event.details["object"].startswith(f"s3://uploads/{TARGET}?versionId=")
    assert event.details["hold"] == "legal_hold"

    # a reviewer says false positive: the restore goes through the outbox too
    fp = _cli("cases", "false-positive", str(case.id), "--reason", "a benign test image")
    assert "restore from s3://held/" in fp.stderr
    _cli("actions", "dispatch", "--once")
    assert _read(s3, "uploads", TARGET) == IMAGES[TARGET]
    assert s3.list_object_versions(Bucket="held").get("Versions", []) == []
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        (record,) = store.actions.object_quarantines()
        restored = [e for e in store.audit.events() if e.action == AuditAction.CONTENT_RESTORED]
    assert record.state is QuarantineState.RESTORED
    assert len(restored) == 1

    # the allow bank changed the banks: every object is eligible again
    proxy.log.clear()
    after = _summary(_cli(*scan, "--workers", "1", "--rescan"))
    assert after["skipped"] == 0
    assert after["counts"]["no_match"] == 3  # the restored one is on the allow list now
    assert len(_object_gets(proxy, "uploads")) == 3


def _deliverer(
    store: Store, s3: Any, *, bucket: str, fate: OriginalFate, cleared: bool = False
) -> Any:
    return ObjectQuarantineDeliverer(
        store.actions,
        lambda: s3,
        bucket=bucket,
        prefix="q/",
        original=fate,
        legal_hold=True,
        endpoints={},
        clock=lambda: datetime(2026, 12, 4, tzinfo=UTC),
        cleared=lambda _sha256: cleared,
    )


def test_without_object_lock_the_record_says_why_tag_mode_and_retries_are_idempotent(
    s3: Any, sqlite_store: Store
) -> None:
    image = IMAGES["photos/0.jpg"]
    s3.create_bucket(Bucket="plain-src")
    s3.create_bucket(Bucket="plain-q")
    s3.put_object(Bucket="plain-src", Key="a.jpg", Body=image)
    s3.put_object(Bucket="plain-src", Key="b.jpg", Body=image)
    etag = hashlib.md5(image).hexdigest()
    store = sqlite_store
    deliverer = _deliverer(store, s3, bucket="plain-q", fate=OriginalFate.TAG)

    ref = ObjectRef(bucket="plain-src", key="a.jpg", etag=etag)
    action_id = store.actions.enqueue(
        object_quarantine_action(ref, key="t:a", sha256=_sha256(image))
    )
    action = store.actions.get(action_id)
    assert isinstance(deliverer.deliver(action), Delivered)
    record = store.actions.object_quarantine(action_id)
    assert record is not None
    assert record.lock is HoldKind.NONE
    assert record.lock_note is not None
    assert "no Object Lock" in record.lock_note
    tags = s3.get_object_tagging(Bucket="plain-src", Key="a.jpg")["TagSet"]
    assert tags == [{"Key": TAG_KEY, "Value": str(action_id)}]
    # delivered again (the dispatcher died before recording it): nothing is written twice
    assert isinstance(deliverer.deliver(action), Delivered)
    copies = s3.list_object_versions(Bucket="plain-q").get("Versions", [])
    assert [c["Key"] for c in copies] == [record.quarantine_key]

    # an object replaced since the scan is not the matched content: nothing moves
    s3.put_object(Bucket="plain-src", Key="b.jpg", Body=image + b"changed")
    changed = ObjectRef(bucket="plain-src", key="b.jpg", etag=etag)
    other = store.actions.enqueue(
        object_quarantine_action(changed, key="t:b", sha256=_sha256(image))
    )
    outcome = deliverer.deliver(store.actions.get(other))
    assert isinstance(outcome, Permanent)
    assert "changed since it was scanned" in outcome.error
    assert store.actions.object_quarantine(other) is None
    assert len(s3.list_object_versions(Bucket="plain-q").get("Versions", [])) == 1

    # decided a false positive while the action waited: nothing moves either
    s3.put_object(Bucket="plain-src", Key="c.jpg", Body=image)
    waiting = store.actions.enqueue(
        object_quarantine_action(
            ObjectRef(bucket="plain-src", key="c.jpg", etag=etag), key="t:c", sha256=_sha256(image)
        )
    )
    cleared = _deliverer(store, s3, bucket="plain-q", fate=OriginalFate.TAG, cleared=True)
    outcome = cleared.deliver(store.actions.get(waiting))
    assert isinstance(outcome, Permanent)
    assert "false positive" in outcome.error
    assert s3.get_object_tagging(Bucket="plain-src", Key="c.jpg")["TagSet"] == []


def test_doctor_says_whether_the_quarantine_bucket_holds_copies(
    s3: Any, proxy: Proxy, tmp_path: Path
) -> None:
    s3.create_bucket(Bucket="doc-locked", ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="doc-plain")

    def check(bucket: str | None, on: bool = True) -> tuple[bool | None, str]:
        return bucket_readiness(
            Settings(
                home=tmp_path,
                quarantine_objects=on,
                quarantine_bucket=bucket,
                s3_endpoint_url=proxy.url,
            )
        )

    assert check("doc-locked") == (True, "doc-locked: Object Lock on, copies get a legal hold")
    plain = check("doc-plain")
    assert plain[0] is None
    assert "no Object Lock" in plain[1]
    assert check("doc-missing")[0] is False
    assert check(None)[0] is False
    assert check(None, on=False)[0] is True


def test_server_scan_runs_read_only_the_buckets_they_are_allowed(
    s3: Any, proxy: Proxy, tmp_path: Path
) -> None:
    s3.create_bucket(Bucket="served")
    s3.create_bucket(Bucket="private")
    for key, data in IMAGES.items():
        s3.put_object(Bucket="served", Key=key, Body=data)
    settings = Settings(
        home=tmp_path / "home",
        workers=1,
        run_workers=1,
        s3_endpoint_url=proxy.url,
        scan_buckets=("s3://served/photos/",),
    )
    with contextlib.closing(open_store(settings.resolved_database_url, migrate=True)):
        pass
    auth = bearer(make_token(settings, Scope.ADMIN))
    proxy.log.clear()
    with (
        running_server(settings, background=False) as base,
        httpx.Client(base_url=base, headers=auth, timeout=60) as http,
    ):
        refused = http.post("/v1/runs", json={"paths": ["s3://private/"]})
        assert "not under a bucket" in assert_problem(refused, 403)["detail"]
        outside = http.post("/v1/runs", json={"paths": ["s3://served/other/"]})
        assert_problem(outside, 403)
        mixed = http.post("/v1/runs", json={"paths": ["s3://served/photos/", str(tmp_path)]})
        assert "not both" in assert_problem(mixed, 403)["detail"]
        run = http.post("/v1/runs", json={"paths": ["s3://served/photos/"]})
        assert run.status_code == 202, run.text
        done = wait_until(
            lambda: http.get(f"/v1/runs/{run.json()['id']}").json(),
            lambda got: got["status"] == "completed" and not got["active"],
            timeout=60,
        )
    assert done["counts"]["no_match"] == 3
    assert done["roots"] == ["s3://served/photos/"]
    assert proxy.requests("GET", "/private") == []
    assert len(_object_gets(proxy, "served")) == 3


def test_kept_objects_one_row_per_identity_and_which_were_checked(store: Store) -> None:
    """Store level, both engines: an object checked again updates its kept signal; the
    incremental skip finds what was checked at a bank change sequence or later (a
    listing without a version matches on the ETag)."""
    versioned = ObjectRef(bucket="b1", key="k/a.jpg", version_id="v1", etag="e1")
    plain = ObjectRef(bucket="b1", key="k/b.jpg", etag="e2")

    def kept(ref: ObjectRef) -> NewKept:
        return NewKept(way="scan", md5="0" * 32, sha1="0" * 40, sha256="0" * 64, size=1, object=ref)

    at = datetime(2026, 12, 4, tzinfo=UTC)
    store.kept.add([kept(versioned), kept(plain)], at=at, seq=3)
    store.kept.add([kept(versioned)], at=at, seq=5)
    assert store.kept.count() == 2
    listed_latest = ObjectRef(bucket="b1", key="k/a.jpg", etag="e1")
    changed = ObjectRef(bucket="b1", key="k/b.jpg", etag="e3")
    other = ObjectRef(bucket="b2", key="k/a.jpg", version_id="v1", etag="e1")
    refs = [versioned, plain, listed_latest, changed, other]
    assert store.kept.checked_objects(refs, 3) == {versioned, plain, listed_latest}
    assert store.kept.checked_objects(refs, 5) == {versioned, listed_latest}
    assert store.kept.checked_objects(refs, 6) == set()


# -- a decision reversed on appeal puts the objects back ----------------------------------


@pytest.fixture
def appeal_world(sqlite_store: Store, tmp_path: Path) -> World:
    made = World(store=sqlite_store, tmp=tmp_path)
    made.statements_on()
    return made


def _appeal_buckets(s3: Any) -> None:
    for name in ("appeal-src", "appeal-held"):
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=name == "appeal-held")
    s3.put_bucket_versioning(Bucket="appeal-src", VersioningConfiguration={"Status": "Enabled"})


def _object_case(world: World, s3: Any, key: str, seed: int) -> tuple[Case, bytes]:
    """The case a scan of ``s3://appeal-src/`` opens for a benign image at ``key`` that a
    bank acts on (an automated restriction, the object's quarantine queued with it)."""
    data = encode(generate(Kind.PHOTO, seed, 64, 48))
    put = s3.put_object(Bucket="appeal-src", Key=key, Body=data)
    ref = ObjectRef(
        bucket="appeal-src", key=key, version_id=put["VersionId"], etag=put["ETag"].strip('"')
    )
    output = hash_data(data, HashOptions(max_pixels=50_000_000))
    assert output.signals is not None
    store = world.store
    if store.banks.find("known") is None:
        store.banks.create("known")
        store.banks.configure("known", exact_action=Action.ACT)
    store.banks.add_entries("known", [BankEntry(algorithm=Algorithm.MD5, value=output.signals.md5)])
    matcher = Matcher.build(store.banks)
    run = store.scans.create_run(
        roots=["s3://appeal-src/"],
        resume_key=f"appeal-{seed}",
        options=ScanOptions(max_pixels=50_000_000),
        pid=1,
        host="h",
    )
    source = StoredObject(ref=ref, run_id=run.id, fetch=lambda _ref: data, data=data)
    done = Pipeline(
        store=store,
        actor="system:test",
        policies=lambda: policies_of(matcher.banks),
        clock=world.clock,
    ).process(ref.uri, output, matcher.match(output.signals), source)
    assert done.case is not None
    assert done.result.decision.acts
    # the quarantine the scan queues with an acting decision (``quarantine_objects``),
    # under the same key, stamped with the test's clock (the pipeline stamps the wall's)
    action = object_quarantine_action(
        ref,
        key=source.action_key(done.result),
        sha256=output.signals.sha256,
        subject=f"scan:{run.id}",
    )
    store.actions.enqueue(action, at=world.clock())
    return store.cases.get(done.case.id), data


def _dispatcher(world: World, moto_url: str, tmp_path: Path) -> Dispatcher:
    """The dispatcher's object deliverers as the settings configure them."""
    settings = Settings(
        home=tmp_path / "home",
        s3_endpoint_url=moto_url,
        quarantine_objects=True,
        quarantine_bucket="appeal-held",
    )
    return Dispatcher(
        world.store.actions,
        object_deliverers(settings, world.store, {}),
        rng=random.Random(1),
        clock=world.clock,
    )


def _gone(s3: Any, key: str) -> bool:
    return "Contents" not in s3.list_objects_v2(Bucket="appeal-src", Prefix=key)


def test_a_reversed_appeal_puts_the_quarantined_object_back_once(
    s3: Any, moto_url: str, appeal_world: World, tmp_path: Path
) -> None:
    """A matched object quarantined, the case confirmed, the appeal reversed: the
    object's restore is queued once however often the restoration runs, the dispatcher
    puts it back, and the restores job then records the appeal ``restored``."""
    world, store = appeal_world, appeal_world.store
    _appeal_buckets(s3)
    key = "photos/appealed.jpg"
    case, data = _object_case(world, s3, key, 41)
    dispatcher = _dispatcher(world, moto_url, tmp_path)
    dispatcher.run_once()
    (held,) = store.actions.object_quarantines(sha256=case.content_key)
    assert held.state is QuarantineState.QUARANTINED
    assert _gone(s3, key)
    case = world.confirm(case)
    appeal = world.appeal(case).appeal

    world.now[0] = T0 + timedelta(days=2)
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert decided.case.state is CaseState.FALSE_POSITIVE
    assert decided.appeal.restoration is Restoration.PENDING  # queued, not carried out yet
    (note,) = decided.notes
    assert note.startswith(f"{held.uri}: restore from {held.quarantine_uri} queued")
    assert decided.appeal.restore_after == world.clock() + appeals.RESTORE_BACKOFF.delay(1)

    # running the restoration again queues nothing more
    again, notes = appeals.restore_content(store, appeal.id, actor="cli:ops", at=world.clock())
    assert again.restoration is Restoration.PENDING
    assert "not carried out yet" in notes[0]
    restores = [a for a in store.actions.list() if a.kind is ActionKind.OBJECT_RESTORE]
    assert len(restores) == 1
    assert restores[0].payload["by"] == "user:carol"

    dispatcher.run_once()
    assert _read(s3, "appeal-src", key) == data  # back at its key, the same bytes
    assert s3.list_object_versions(Bucket="appeal-held").get("Versions", []) == []
    (done,) = appeals.restore_due(store, actor="system:appeals", at=again.restore_after)
    assert done.restoration is Restoration.RESTORED
    assert done.restoration_notes == (f"{held.uri}: restored",)
    assert done.restore_after is None
    assert appeals.restore_due(store, actor="system:appeals", at=T0 + timedelta(days=30)) == []

    audited = [
        (d["restoration"], d["objects"], d["pending"]) for d in world.audit("appeal.restored")
    ]
    assert audited == [("pending", 1, 1), ("pending", 1, 1), ("restored", 1, 0)]
    assert [d["state"] for d in world.audit("appeal.decided")] == ["reversed"]
    (quarantined,) = world.audit(AuditAction.CONTENT_QUARANTINED)
    (restored,) = world.audit(AuditAction.CONTENT_RESTORED)
    assert restored["object"] == quarantined["object"] == held.uri
    assert restored["by"] == "user:carol"


def test_a_reversal_cancels_the_object_quarantine_still_pending(
    s3: Any, moto_url: str, appeal_world: World, tmp_path: Path
) -> None:
    world, store = appeal_world, appeal_world.store
    _appeal_buckets(s3)
    key = "photos/queued.jpg"
    case, data = _object_case(world, s3, key, 42)  # the dispatcher has not run yet
    appeal = world.appeal(case).appeal
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert decided.appeal.restoration is Restoration.NONE  # nothing was moved
    (action,) = [a for a in store.actions.list() if a.kind is ActionKind.OBJECT_QUARANTINE]
    assert action.state is ActionState.DEAD
    assert f"reversed on appeal #{appeal.id}" in (action.last_error or "")
    assert store.actions.pending(ActionKind.OBJECT_QUARANTINE) == []

    _dispatcher(world, moto_url, tmp_path).run_once()  # it comes round after the reversal
    assert _read(s3, "appeal-src", key) == data
    assert store.actions.object_quarantines(sha256=case.content_key) == []
    prefix = quarantine_key(Settings(home=tmp_path).quarantine_prefix, action.id)
    assert "Contents" not in s3.list_objects_v2(Bucket="appeal-held", Prefix=prefix)
    assert world.audit(AuditAction.CONTENT_QUARANTINED) == []


def test_a_quarantine_in_flight_at_reversal_ends_refused_and_the_appeal_says_so(
    s3: Any, moto_url: str, appeal_world: World, tmp_path: Path
) -> None:
    """A dispatcher held the object's quarantine when the decision was reversed: it is
    not cancelled under the dispatcher; the appeal stays ``pending`` until it ends (the
    content now a false positive, it moves nothing) and then says ``none``."""
    world, store = appeal_world, appeal_world.store
    _appeal_buckets(s3)
    key = "photos/in-flight.jpg"
    case, data = _object_case(world, s3, key, 43)
    appeal = world.appeal(case).appeal
    (held,) = store.actions.claim_due("busy", world.clock(), limit=10, lease=timedelta(minutes=1))
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert decided.appeal.restoration is Restoration.PENDING
    (note,) = decided.notes
    assert note.endswith("its quarantine is still being carried out")
    assert store.actions.get(held.id).state is ActionState.PENDING

    # the lease runs out; the next dispatcher finds the content cleared and moves nothing
    world.now[0] = T0 + timedelta(minutes=5)
    _dispatcher(world, moto_url, tmp_path).run_once()
    assert store.actions.get(held.id).state is ActionState.DEAD
    assert _read(s3, "appeal-src", key) == data
    (done,) = appeals.restore_due(store, actor="system:appeals", at=world.clock())
    assert (done.restoration, done.restoration_notes) == (Restoration.NONE, ())


def test_an_object_restore_refused_is_a_failed_restoration_until_an_operator_retries(
    s3: Any, moto_url: str, appeal_world: World, tmp_path: Path
) -> None:
    world, store = appeal_world, appeal_world.store
    _appeal_buckets(s3)
    key = "photos/taken.jpg"
    case, data = _object_case(world, s3, key, 44)
    dispatcher = _dispatcher(world, moto_url, tmp_path)
    dispatcher.run_once()
    (held,) = store.actions.object_quarantines(sha256=case.content_key)
    appeal = world.appeal(case).appeal
    decided = world.decide(appeal.id, Outcome.REVERSE)
    assert decided.appeal.restoration is Restoration.PENDING
    s3.put_object(Bucket="appeal-src", Key=key, Body=b"uploaded since")  # never overwritten
    dispatcher.run_once()
    (restore,) = [a for a in store.actions.list() if a.kind is ActionKind.OBJECT_RESTORE]
    assert restore.state is ActionState.DEAD
    (failed,) = appeals.restore_due(store, actor="system:appeals", at=decided.appeal.restore_after)
    assert failed.restoration is Restoration.FAILED
    (note,) = failed.restoration_notes
    assert note.startswith(f"{held.uri}: not restored: an object now exists at")
    assert f"hashguard actions retry {restore.id}" in note
    assert _read(s3, "appeal-src", key) == b"uploaded since"

    s3.delete_object(Bucket="appeal-src", Key=key)  # the operator cleared the way
    store.actions.retry(restore.id, actor="cli:ops", at=world.clock())
    dispatcher.run_once()
    assert _read(s3, "appeal-src", key) == data
    (done,) = appeals.restore_due(store, actor="system:appeals", at=failed.restore_after)
    assert done.restoration is Restoration.RESTORED
    restores = [a for a in store.actions.list() if a.kind is ActionKind.OBJECT_RESTORE]
    assert len(restores) == 1
