"""Actions: the transactional outbox, signed webhooks delivered at least once and applied
exactly once, backoff and dead letters on a frozen clock, a dispatcher killed with
SIGKILL mid-delivery, and quarantine of local files (benign generated files only)."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks.exceptions import WebhookVerificationError

from hashguard.actions.delivery import Delivered
from hashguard.actions.dispatcher import Dispatcher
from hashguard.actions.objquarantine import object_quarantine_action
from hashguard.actions.outbox import (
    derived_key,
    enqueue_for_decision,
    plan_for_decision,
    quarantine_action,
    webhook_actions,
)
from hashguard.actions.quarantine import (
    DIR_MODE,
    FILE_MODE,
    QuarantineDeliverer,
    QuarantineError,
    RestoreRefused,
    copy_to_new,
    file_facts,
    quarantine_name,
    restore,
)
from hashguard.actions.webhooks import WebhookDeliverer, body_bytes, signed_headers, verify
from hashguard.domain.actions import (
    ActionKind,
    ActionState,
    EventType,
    QuarantineState,
    WebhookEndpoint,
)
from hashguard.domain.backoff import Backoff
from hashguard.domain.banks import BankKind
from hashguard.domain.matches import Match
from hashguard.domain.objects import ObjectRef
from hashguard.domain.policy import Action, Decision
from hashguard.domain.scans import FileResult, Outcome
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.settings import Settings
from hashguard.store import Store
from hashguard.store.actions import NotDead
from tests.cli import command, hashguard
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"hashguard-test-secret-32-bytes!!").decode()
#: a fixed instant near the wall clock the outbox uses when it is given none: tests do not
#: depend on the day they run (the suite also runs with the clock a year ahead)
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
ACT = Decision(action=Action.ACT, rule="act: exact md5", bank="known")


def _result(path: str, n: int = 0, decision: Decision = ACT) -> FileResult:
    """A matched file's result (made-up hashes of a benign file)."""
    return FileResult(
        path=path,
        outcome=Outcome.MATCHED,
        signals=FileSignals(size=100 + n, md5=f"{n:032x}", sha1=f"{n:040x}", sha256=f"{n:064x}"),
        matches=(
            Match(
                bank="known",
                bank_kind=BankKind.KNOWN,
                algorithm=Algorithm.MD5,
                distance=0,
                entry_id="e-1",
                category=None,
            ),
        ),
        decision=decision,
    )


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as running:
        yield running


def _endpoint(url: str, name: str = "ops") -> WebhookEndpoint:
    return WebhookEndpoint(name=name, url=url, secret=SECRET)


def _dispatcher(store: Store, endpoint: WebhookEndpoint, **kw: object) -> Dispatcher:
    deliverer = WebhookDeliverer({endpoint.name: endpoint}, timeout=5)
    return Dispatcher(
        store.actions,
        {ActionKind.WEBHOOK: deliverer},
        rng=random.Random(1),
        **kw,  # type: ignore[arg-type]
    )


def _enqueue_matches(store: Store, endpoint: WebhookEndpoint, count: int) -> list[str]:
    """Enqueue ``count`` decisions' webhooks in one transaction, as the scanner would."""
    with store.actions.transaction(at=T0) as outbox:
        for n in range(count):
            enqueue_for_decision(
                outbox,
                _result(f"/srv/uploads/{n}.png", n),
                endpoints=[endpoint],
                quarantine_local=False,
                key=f"scan:1:/srv/uploads/{n}.png",
                scan_run=1,
                at=T0,
            )
    return [a.idempotency_key for a in store.actions.list()]


def test_enqueue_is_idempotent_and_only_acts(store: Store) -> None:
    endpoint = _endpoint("http://127.0.0.1:9/hooks")
    planned = plan_for_decision(
        _result("/a.png"), endpoints=[endpoint], quarantine_local=True, key="scan:1:/a.png"
    )
    assert [(a.kind, a.event) for a in planned] == [
        (ActionKind.WEBHOOK, EventType.MATCH_DETECTED),
        (ActionKind.QUARANTINE, None),
    ]
    first = [store.actions.enqueue(a) for a in planned]
    again = [store.actions.enqueue(a) for a in planned]
    assert first == again
    assert len(store.actions.list()) == 2
    for decision in (
        Decision(action=Action.REVIEW, rule="review"),
        Decision(action=Action.ACT, rule="act", shadow=True),
        Decision(action=Action.IGNORE, rule="ignore"),
    ):
        assert not plan_for_decision(
            _result("/b.png", decision=decision),
            endpoints=[endpoint],
            quarantine_local=True,
            key="k",
        )
    only_cases = WebhookEndpoint(
        name="cases", url="http://x", secret=SECRET, events=frozenset({EventType.CASE_CONFIRMED})
    )
    assert not plan_for_decision(
        _result("/c.png"), endpoints=[only_cases], quarantine_local=False, key="k"
    )
    # the payload holds the content's own hashes and the bank, never the list's entry
    data = planned[0].payload["data"]
    assert data["content"]["sha256"] == "0" * 64
    assert "entry_id" not in json.dumps(data)


def test_outbox_rolls_back_with_the_decision(store: Store) -> None:
    endpoint = _endpoint("http://127.0.0.1:9/hooks")

    def decide_and_fail() -> None:
        with store.actions.transaction() as outbox:
            enqueue_for_decision(
                outbox, _result("/a.png"), endpoints=[endpoint], quarantine_local=False, key="k"
            )
            raise RuntimeError("the decision's transaction failed")

    with pytest.raises(RuntimeError):
        decide_and_fail()
    assert store.actions.list() == []


def test_every_event_delivered_and_applied_once_through_failures(
    store: Store, receiver: WebhookReceiver
) -> None:
    endpoint = _endpoint(receiver.url)
    keys = _enqueue_matches(store, endpoint, 5)
    receiver.script = ["fail", "fail", "drop", "apply_drop", "fail", "apply_drop", "drop"]
    dispatcher = _dispatcher(
        store,
        endpoint,
        backoff=Backoff(
            first=timedelta(seconds=1),
            longest=timedelta(minutes=1),
            give_up_after=timedelta(hours=24),
        ),
    )
    now = T0
    for _ in range(20):
        dispatcher.run_once(now)
        if store.actions.counts()[ActionState.PENDING] == 0:
            break
        now += timedelta(minutes=2)
    assert store.actions.counts() == {
        ActionState.PENDING: 0,
        ActionState.DELIVERED: 5,
        ActionState.DEAD: 0,
    }
    assert sorted(receiver.applied) == sorted(keys)
    assert set(receiver.effects.values()) == {1}  # exactly once, thanks to webhook-id
    assert len(receiver.deliveries) == 5 + 7  # every scripted failure was retried
    assert all(d.verified for d in receiver.deliveries)
    assert receiver.refused == 0
    for action in store.actions.list():
        assert receiver.applied[action.idempotency_key] == dict(action.payload)
        assert action.payload["type"] == "match.detected"
    retried = [k for k in keys if receiver.count(k) > 1]
    assert retried, "some events were delivered more than once"


def test_tampered_body_is_refused(receiver: WebhookReceiver) -> None:
    endpoint = _endpoint(receiver.url)
    body = body_bytes({"type": "match.detected", "data": {"path": "/a.png"}})
    headers = signed_headers(endpoint, "msg_1", body, datetime.now(UTC))
    assert verify(SECRET, body, headers)["type"] == "match.detected"
    tampered = body.replace(b"/a.png", b"/b.png")
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, tampered, headers)
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + base64.b64encode(b"another secret").decode(), body, headers)
    answer = httpx.post(receiver.url, content=tampered, headers=headers)
    assert answer.status_code == 401
    assert receiver.applied == {}
    assert receiver.refused == 1
    assert httpx.post(receiver.url, content=body, headers=headers).status_code == 204
    assert list(receiver.applied) == ["msg_1"]


def test_secrets_stay_hidden() -> None:
    endpoint = _endpoint("http://x")
    assert SECRET not in repr(endpoint)
    settings = Settings(webhooks=[{"name": "ops", "url": "http://x", "secret": SECRET}])  # type: ignore[list-item]
    assert SECRET not in repr(settings)
    assert SECRET not in json.dumps(settings.masked())


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def test_backoff_with_jitter_then_dead_letter_then_retry(
    store: Store, receiver: WebhookReceiver
) -> None:
    down = _endpoint(_closed_port_url())
    backoff = Backoff(
        first=timedelta(seconds=10), longest=timedelta(hours=1), give_up_after=timedelta(hours=24)
    )
    dispatcher = _dispatcher(store, down, backoff=backoff)
    (action_id,) = [
        store.actions.enqueue(a, at=T0)
        for a in webhook_actions(EventType.CASE_CONFIRMED, {"case": 1}, [down], key="case:1")
    ]
    now, waits = T0, []
    while True:
        report = dispatcher.run_once(now)
        action = store.actions.get(action_id)
        if action.state is ActionState.DEAD:
            assert report.dead == [action_id]
            break
        assert report.retried == [action_id]
        wait = action.next_attempt_at - now
        ceiling = backoff.delay(action.attempts)
        assert timedelta(0) <= wait <= ceiling
        waits.append(wait)
        assert dispatcher.run_once(action.next_attempt_at - timedelta(seconds=1)).handled == 0
        now = action.next_attempt_at
    # retried for at least the 24 hour horizon, then given up, with jittered waits
    assert now - T0 >= timedelta(hours=24)
    assert now - T0 < timedelta(hours=24) + backoff.longest
    assert len(set(waits)) == len(waits)
    assert action.attempts == len(waits) + 1
    assert action.dead_at == now
    assert "ConnectError" in (action.last_error or "")
    assert [a.id for a in store.actions.dead_letters()] == [action_id]
    # the operator fixes the endpoint and puts the dead letter back
    pending = store.actions.enqueue(
        webhook_actions(EventType.CASE_CONFIRMED, {}, [down], key="case:2")[0], at=now
    )
    with pytest.raises(NotDead):
        store.actions.retry(pending, actor="cli:test")
    later = now + timedelta(days=1)
    assert store.actions.retry(action_id, actor="cli:test", at=later).state is ActionState.PENDING
    fixed = _dispatcher(store, _endpoint(receiver.url))
    assert sorted(fixed.run_once(later).delivered) == [action_id, pending]
    assert store.actions.get(action_id).idempotency_key in receiver.applied
    assert store.actions.dead_letters() == []
    assert [e.action for e in store.audit.events()][-1] == "action.retried"


def test_dead_letters_on_the_command_line(
    store: Store, db_url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = WebhookEndpoint(name="gone", url="http://127.0.0.1:9/", secret=SECRET)
    (action,) = webhook_actions(EventType.MATCH_DETECTED, {"path": "/a"}, [gone], key="k")
    action_id = store.actions.enqueue(action)
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", db_url)
    # "gone" is not configured: retrying cannot help, so it is dead at once
    once = hashguard("actions", "dispatch", "--once")
    assert json.loads(once.stdout) == {"delivered": 0, "retried": 0, "dead": 1, "lost": 0}
    listed = hashguard("actions", "dead", "--json")
    (shown,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (shown["id"], shown["state"], shown["target"]) == (action_id, "dead", "gone")
    assert "no webhook endpoint" in shown["last_error"]
    assert SECRET not in listed.stdout + listed.stderr
    hashguard("actions", "retry", str(action_id))
    assert store.actions.get(action_id).state is ActionState.PENDING
    assert hashguard("actions", "retry", str(action_id), check=2).returncode == 2


def _wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_dispatcher_killed_mid_delivery_loses_nothing(
    store: Store, db_url: str, home: Path, receiver: WebhookReceiver
) -> None:
    endpoint = _endpoint(receiver.url)
    keys = _enqueue_matches(store, endpoint, 4)
    receiver.delay_seconds = 2.0
    env = {
        **os.environ,
        "HASHGUARD_DATABASE_URL": db_url,
        "HASHGUARD_WEBHOOKS": json.dumps([{"name": "ops", "url": receiver.url, "secret": SECRET}]),
        "HASHGUARD_WEBHOOK_TIMEOUT_SECONDS": "4",
        "HASHGUARD_ACTIONS_LEASE_SECONDS": "5",
        "HASHGUARD_ACTIONS_POLL_SECONDS": "0.1",
        "HASHGUARD_ACTIONS_BACKOFF_BASE_SECONDS": "0.1",
        "HASHGUARD_ACTIONS_BACKOFF_MAX_SECONDS": "0.5",
    }
    first = subprocess.Popen(command("actions", "dispatch"), env=env, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: len(receiver.deliveries) >= 1)
        first.send_signal(signal.SIGKILL)  # mid-delivery: the receiver is still working
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        assert first.stderr is not None
        first.stderr.close()
    in_flight = receiver.deliveries[0].headers["webhook-id"]
    assert store.actions.find_by_key(in_flight).state is ActionState.PENDING  # type: ignore[union-attr]
    _wait_for(lambda: in_flight in receiver.applied)  # applied; the answer went nowhere
    receiver.delay_seconds = 0.0
    second = subprocess.Popen(command("actions", "dispatch"), env=env, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: store.actions.counts()[ActionState.DELIVERED] == 4)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    finally:
        if second.poll() is None:
            second.kill()
        assert second.stderr is not None
        second.stderr.close()
    assert sorted(receiver.applied) == sorted(keys)  # nothing lost
    assert set(receiver.effects.values()) == {1}  # nothing applied twice
    assert receiver.count(in_flight) == 2  # redelivered after the restart, ignored
    assert all(d.verified for d in receiver.deliveries)


# -- quarantine -----------------------------------------------------------------------


def _benign_file(path: Path, text: str = "a benign generated test file\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text * 50)
    path.chmod(0o644)
    return path


def _quarantine_dispatcher(
    store: Store, qdir: Path, endpoint: WebhookEndpoint, **kw: object
) -> Dispatcher:
    endpoints = {endpoint.name: endpoint}
    return Dispatcher(
        store.actions,
        {
            ActionKind.WEBHOOK: WebhookDeliverer(endpoints, timeout=5),
            ActionKind.QUARANTINE: QuarantineDeliverer(store.actions, qdir, endpoints),
        },
        rng=random.Random(1),
        **kw,  # type: ignore[arg-type]
    )


def _enqueue_quarantine(store: Store, path: Path, endpoint: WebhookEndpoint) -> int:
    """Quarantine of ``path``, whose current bytes are the matched ones."""
    result = _result(str(path))
    assert result.signals is not None
    signals = replace(result.signals, sha256=file_facts(path).sha256)
    planned = plan_for_decision(
        replace(result, signals=signals),
        endpoints=[endpoint],
        quarantine_local=True,
        key=f"scan:1:{path}",
    )
    ids = [store.actions.enqueue(a, at=T0) for a in planned]
    return ids[-1]


def test_quarantine_moves_records_notifies_and_restores(
    store: Store, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    endpoint = _endpoint(receiver.url)
    original = _benign_file(tmp_path / "uploads" / "photo.png")
    content = original.read_bytes()
    qdir = tmp_path / "quarantine"
    action_id = _enqueue_quarantine(store, original, endpoint)
    dispatcher = _quarantine_dispatcher(store, qdir, endpoint)
    dispatcher.run_once()
    dispatcher.run_once()  # the content.quarantined webhook enqueued by the first round

    assert not original.exists()  # moved, no copy left behind
    moved = qdir / quarantine_name(action_id)
    assert os.listdir(qdir) == [moved.name]
    assert stat.S_IMODE(qdir.stat().st_mode) == DIR_MODE
    assert stat.S_IMODE(moved.stat().st_mode) == FILE_MODE
    assert moved.read_bytes() == content
    record = store.actions.quarantine_record(action_id)
    assert record is not None
    assert record.state is QuarantineState.QUARANTINED
    assert record.original_path == str(original)
    assert record.quarantine_path == str(moved)
    assert (record.size, record.mode, record.uid) == (len(content), 0o644, os.getuid())
    assert record.sha256 == file_facts(moved).sha256
    events = [p["type"] for p in receiver.applied.values()]
    assert sorted(events) == ["content.quarantined", "match.detected"]
    (notice,) = [p for p in receiver.applied.values() if p["type"] == "content.quarantined"]
    assert notice["data"]["sha256"] == record.sha256
    assert "content.quarantined" in [e.action for e in store.audit.events()]

    restored = restore(store.actions, action_id, actor="cli:test")
    assert restored.state is QuarantineState.RESTORED
    assert restored.restored_by == "cli:test"
    assert original.read_bytes() == content
    assert stat.S_IMODE(original.stat().st_mode) == 0o644
    assert os.listdir(qdir) == []
    with pytest.raises(RestoreRefused):
        restore(store.actions, action_id, actor="cli:test")


def test_restore_never_overwrites(store: Store, tmp_path: Path) -> None:
    endpoint = _endpoint("http://127.0.0.1:9/")
    original = _benign_file(tmp_path / "uploads" / "a.png")
    qdir = tmp_path / "quarantine"
    action_id = _enqueue_quarantine(store, original, endpoint)
    _quarantine_dispatcher(store, qdir, endpoint).run_once()
    assert not original.exists()
    original.write_text("a new file uploaded since")
    with pytest.raises(RestoreRefused):
        restore(store.actions, action_id, actor="cli:test")
    assert original.read_text() == "a new file uploaded since"
    assert (qdir / quarantine_name(action_id)).exists()
    record = store.actions.quarantine_record(action_id)
    assert record is not None
    assert record.state is QuarantineState.QUARANTINED


def test_quarantine_across_filesystems(store: Store, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem (/dev/shm)")
    endpoint = _endpoint("http://127.0.0.1:9/")
    original = _benign_file(shm / f"hashguard-test-{os.getpid()}-{id(tmp_path)}" / "b.png")
    try:
        content = original.read_bytes()
        qdir = tmp_path / "quarantine"
        action_id = _enqueue_quarantine(store, original, endpoint)
        _quarantine_dispatcher(store, qdir, endpoint).run_once()
        moved = qdir / quarantine_name(action_id)
        assert not original.exists()
        assert os.listdir(qdir) == [moved.name]
        assert moved.read_bytes() == content
        assert stat.S_IMODE(moved.stat().st_mode) == FILE_MODE
        restore(store.actions, action_id, actor="cli:test")
        assert original.read_bytes() == content
        assert os.listdir(qdir) == []
    finally:
        for leftover in original.parent.glob("*"):
            leftover.unlink()
        original.parent.rmdir()


def test_a_copy_across_filesystems_is_checked(tmp_path: Path) -> None:
    src = _benign_file(tmp_path / "src.bin")
    (tmp_path / "q").mkdir()
    fd_in = os.open(src, os.O_RDONLY)
    dir_fd = os.open(tmp_path / "q", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(QuarantineError, match="changed"):
            copy_to_new(fd_in, "x", dir_fd, "0" * 64)
        assert os.listdir(tmp_path / "q") == []
        copy_to_new(fd_in, "x", dir_fd, file_facts(src).sha256)
        with pytest.raises(FileExistsError):
            copy_to_new(fd_in, "x", dir_fd, file_facts(src).sha256)
    finally:
        os.close(fd_in)
        os.close(dir_fd)
    assert (tmp_path / "q" / "x").read_bytes() == src.read_bytes()
    assert stat.S_IMODE((tmp_path / "q" / "x").stat().st_mode) == FILE_MODE


def test_quarantine_resumes_after_a_crash_between_move_and_record(
    store: Store, tmp_path: Path
) -> None:
    endpoint = _endpoint("http://127.0.0.1:9/")
    original = _benign_file(tmp_path / "uploads" / "c.png")
    qdir = tmp_path / "quarantine"
    action_id = _enqueue_quarantine(store, original, endpoint)
    # a dispatcher took the action and moved the file, then died before recording it
    (claimed,) = [
        a
        for a in store.actions.claim_due("dead-one", T0 + timedelta(days=1), lease=timedelta(1))
        if a.kind is ActionKind.QUARANTINE
    ]
    deliverer = QuarantineDeliverer(store.actions, qdir, {endpoint.name: endpoint})
    assert isinstance(deliverer.deliver(claimed), Delivered)
    assert not original.exists()
    record = store.actions.quarantine_record(action_id)
    assert record is not None
    assert record.state is QuarantineState.MOVING
    # its lease runs out; another dispatcher finishes the job without moving anything
    later = T0 + timedelta(days=3)
    report = _quarantine_dispatcher(store, qdir, endpoint).run_once(later)
    assert action_id in report.delivered
    record = store.actions.quarantine_record(action_id)
    assert record is not None
    assert record.state is QuarantineState.QUARANTINED
    assert record.mode == 0o644  # the facts recorded before the move
    assert os.listdir(qdir) == [quarantine_name(action_id)]


def test_a_vanished_file_is_a_dead_letter(store: Store, tmp_path: Path) -> None:
    endpoint = _endpoint("http://127.0.0.1:9/")
    original = _benign_file(tmp_path / "uploads" / "d.png")
    action_id = _enqueue_quarantine(store, original, endpoint)
    original.unlink()
    report = _quarantine_dispatcher(store, tmp_path / "q", endpoint).run_once()
    assert action_id in report.dead
    assert "no longer" in (store.actions.get(action_id).last_error or "")


def test_derived_keys_are_standard_webhook_ids() -> None:
    key = derived_key("scan:1:/a.png", "match.detected", "ops")
    assert key.startswith("msg_")
    assert len(key) == 36
    assert key == derived_key("scan:1:/a.png", "match.detected", "ops")


def test_leases_keep_dispatchers_apart_and_expire(store: Store) -> None:
    endpoint = _endpoint("http://127.0.0.1:9/hooks")
    _enqueue_matches(store, endpoint, 6)
    lease = timedelta(seconds=60)
    mine = store.actions.claim_due("a", T0, limit=4, lease=lease)
    theirs = store.actions.claim_due("b", T0, limit=4, lease=lease)
    assert len(mine) == 4
    assert len(theirs) == 2
    assert not {a.id for a in mine} & {a.id for a in theirs}
    assert store.actions.claim_due("c", T0 + timedelta(seconds=30), lease=lease) == []
    # "a" died: after its lease, "c" takes its entries; "a" can no longer settle them
    taken = store.actions.claim_due("c", T0 + timedelta(seconds=61), limit=4, lease=lease)
    assert sorted(a.id for a in taken) == sorted(a.id for a in mine)
    assert not store.actions.mark_delivered(mine[0].id, "a", T0)
    assert store.actions.mark_delivered(mine[0].id, "c", T0)
    assert store.actions.get(mine[0].id).state is ActionState.DELIVERED


def test_pending_entries_of_a_kind_and_of_a_content(store: Store) -> None:
    """What a reversal on appeal cancels: the pending quarantines of a content, found by
    the SHA-256 their payload carries (held by a dispatcher or not), never one settled."""
    mine, theirs = "a" * 64, "b" * 64
    first = store.actions.enqueue(quarantine_action("/x.png", key="k:1", sha256=mine), at=T0)
    other = store.actions.enqueue(quarantine_action("/y.png", key="k:2", sha256=theirs), at=T0)
    cancelled = store.actions.enqueue(quarantine_action("/z.png", key="k:3", sha256=mine), at=T0)
    assert store.actions.cancel(cancelled, error="reversed", at=T0)
    ref = ObjectRef(bucket="bkt", key="photos/a.jpg", version_id="v1", etag="e1")
    held = store.actions.enqueue(object_quarantine_action(ref, key="k:4", sha256=mine), at=T0)
    _enqueue_matches(store, _endpoint("http://127.0.0.1:9/hooks"), 1)
    (leased,) = store.actions.claim_due("busy", T0, limit=1, lease=timedelta(seconds=60))
    assert leased.id == first
    assert [a.id for a in store.actions.pending(ActionKind.QUARANTINE)] == [first, other]
    assert [a.id for a in store.actions.pending(ActionKind.QUARANTINE, sha256=mine)] == [first]
    (found,) = store.actions.pending(ActionKind.OBJECT_QUARANTINE, sha256=mine)
    assert (found.id, found.payload["uri"]) == (held, ref.uri)
    assert store.actions.pending(ActionKind.OBJECT_QUARANTINE, sha256=theirs) == []
    assert len(store.actions.pending(ActionKind.WEBHOOK)) == 1


def test_quarantine_keeps_names_that_are_not_utf8(store: Store, tmp_path: Path) -> None:
    endpoint = _endpoint("http://127.0.0.1:9/")
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    with open(raw, "wb") as handle:
        handle.write(b"a benign generated test file\n")
    name = os.fsdecode(raw)
    action_id = _enqueue_quarantine(store, Path(name), endpoint)
    _quarantine_dispatcher(store, tmp_path / "q", endpoint).run_once()
    assert not os.path.lexists(raw)
    record = store.actions.quarantine_record(action_id)
    assert record is not None
    assert record.original_path_raw == raw
    assert record.original_path.endswith("caf\\xe9.png")
    restore(store.actions, action_id, actor="cli:test")
    assert os.path.exists(raw)
