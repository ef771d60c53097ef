"""``hashguard worker`` as an operator runs it (a subprocess, on SQLite and PostgreSQL):
it delivers a queued webhook to a loopback receiver and exits cleanly on SIGTERM; a
``serve --no-background`` leaves the outbox to it; and a worker killed with SIGKILL
mid-job has its job taken over by another once the lease has run out."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hashguard.actions.outbox import webhook_actions
from hashguard.domain.actions import ActionState, EventType, WebhookEndpoint
from hashguard.domain.leases import Lease
from hashguard.jobs.builtin import EXCHANGE_SYNC
from hashguard.store import Store
from tests.cli import command
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.server import free_port

SECRET = "whsec_" + base64.b64encode(b"hashguard-worker-secret-32bytes!").decode()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as running:
        yield running


def _wait_for(condition: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _env(db_url: str, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "HASHGUARD_DATABASE_URL": db_url,
        "HASHGUARD_ACTIONS_POLL_SECONDS": "0.1",
        **{f"HASHGUARD_{name.upper()}": value for name, value in settings.items()},
    }


def _webhooks(receiver: WebhookReceiver) -> str:
    return json.dumps([{"name": "ops", "url": receiver.url, "secret": SECRET}])


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A hashguard command in the background; killed if the block leaves it running."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(command(*args), env=env, stdout=sink, stderr=sink)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _terminate(proc: subprocess.Popen[bytes], log: Path, *, codes: tuple[int, ...] = (0,)) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) in codes, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def _queue_webhook(store: Store, receiver: WebhookReceiver, key: str) -> int:
    endpoint = WebhookEndpoint(name="ops", url=receiver.url, secret=SECRET)
    (action,) = webhook_actions(
        EventType.MATCH_DETECTED, {"path": "/srv/a.png"}, [endpoint], key=key
    )
    return store.actions.enqueue(action)


def _holder(store: Store, name: str) -> str | None:
    lease = store.leases.get(name)
    return None if lease is None else lease.holder


def _of(proc: subprocess.Popen[bytes]) -> Callable[[str | None], bool]:
    """Whether a holder id names ``proc`` (host:pid:random)."""
    return lambda holder: holder is not None and f":{proc.pid}:" in holder


def test_a_worker_delivers_a_queued_webhook_and_stops_on_sigterm(
    store: Store, db_url: str, home: Path, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    action_id = _queue_webhook(store, receiver, "worker-1")
    log = tmp_path / "worker.log"
    env = _env(db_url, webhooks=_webhooks(receiver))
    with _process(["worker"], env, log) as worker:
        _wait_for(lambda: store.actions.get(action_id).state is ActionState.DELIVERED)
        _wait_for(lambda: store.leases.get("housekeeping") is not None)  # its jobs run too
        _terminate(worker, log)
    assert list(receiver.applied) == [store.actions.get(action_id).idempotency_key]
    assert all(d.verified for d in receiver.deliveries)
    assert [lease.holder for lease in store.leases.list()] == [None] * len(store.leases.list())
    text = log.read_text()
    assert "hashguard worker: the outbox dispatcher, jobs: housekeeping" in text
    assert "hashguard worker: stopped" in text
    assert SECRET not in text


def test_serve_no_background_leaves_the_outbox_to_a_worker(
    store: Store, db_url: str, home: Path, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    env = _env(db_url, webhooks=_webhooks(receiver))
    port = free_port()
    serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
    args = ["serve", "--no-background", "--host", "127.0.0.1", "--port", str(port)]
    with _process(args, env, serve_log) as server:

        def ready() -> bool:
            assert server.poll() is None, serve_log.read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(ready)
        action_id = _queue_webhook(store, receiver, "serve-1")
        # twenty of the server's would-be dispatch rounds: nothing is sent, no job runs
        time.sleep(2.0)
        assert store.actions.get(action_id).state is ActionState.PENDING
        assert receiver.deliveries == []
        assert store.leases.list() == []
        with _process(["worker"], env, worker_log) as worker:
            _wait_for(lambda: store.actions.get(action_id).state is ActionState.DELIVERED)
            _wait_for(lambda: store.leases.get("housekeeping") is not None)  # its jobs run
            _terminate(worker, worker_log)
        assert len(receiver.deliveries) == 1
        # uvicorn shuts down gracefully, then re-raises the signal
        _terminate(server, serve_log, codes=(0, -signal.SIGTERM))
    assert "background jobs left to workers" in serve_log.read_text()


def _feed(count: int) -> bytes:
    lines = (
        json.dumps({"algorithm": "md5", "hash": f"{n:032x}", "id": f"e{n}"}) for n in range(count)
    )
    return "".join(line + "\n" for line in lines).encode()


@pytest.mark.slow
def test_a_killed_workers_job_is_taken_over_after_its_lease_expires(
    store: Store, db_url: str, home: Path, tmp_path: Path
) -> None:
    # the exchange's feed is a named pipe: a sync opening it waits until the test writes,
    # so a worker is caught mid-job, holding the job's lease, for as long as the test likes
    fifo = tmp_path / "feed.pipe"
    os.mkfifo(fifo)
    store.banks.create("feed")
    store.exchanges.create(
        "feed",
        adapter="local_file",
        bank="feed",
        settings={"path": str(fifo)},
        credential_names=(),
        credentials=None,
    )
    store.leases.ensure(EXCHANGE_SYNC, at=datetime.now(UTC) - timedelta(days=1))  # overdue
    env = _env(db_url, exchange_sync_minutes="60", jobs_lease_seconds="2")
    with _process(["worker"], env, tmp_path / "first.log") as first:
        _wait_for(lambda: _of(first)(_holder(store, EXCHANGE_SYNC)))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    dead = store.leases.get(EXCHANGE_SYNC)
    assert dead is not None
    assert _of(first)(dead.holder)  # the dead worker's lease, until it expires
    assert dead.expires_at is not None
    second_log = tmp_path / "second.log"
    with _process(["worker"], env, second_log) as second:
        _wait_for(lambda: _of(second)(_holder(store, EXCHANGE_SYNC)))
        taken = store.leases.get(EXCHANGE_SYNC)
        assert taken is not None
        assert taken.acquired_at is not None
        assert taken.acquired_at >= dead.expires_at  # only once the dead one's had run out
        writer = threading.Thread(target=fifo.write_bytes, args=(_feed(5),), daemon=True)
        writer.start()  # the second worker's sync reads the feed and finishes
        writer.join(timeout=60)
        assert not writer.is_alive()

        def completed() -> Lease | None:
            lease = store.leases.get(EXCHANGE_SYNC)
            return lease if lease is not None and lease.completed_at is not None else None

        _wait_for(completed)
        _terminate(second, second_log)
    done = store.leases.get(EXCHANGE_SYNC)
    assert done is not None
    assert (done.holder, _of(second)(done.completed_by)) == (None, True)
    assert store.banks.stats("feed").total_active == 5
    assert store.exchanges.state("feed").last_error is None
