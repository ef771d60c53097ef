"""Fault injection against a running server on its own PostgreSQL: every hashing worker
killed, clients that stall, the database stopped as a crash stops it and started again.

Through all of it no request is answered 500, no answer says ``no_match`` for listed
content (a listed upload is matched, or refused with 503/429: never passed as clean), a
clean upload is never matched, and every match answered 200 is recorded: its case is
in the store once the database is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.banks import BankEntry
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.conftest import REQUIRE_ENV, _fresh_postgres_database
from tests.postgres import Cluster, find_bin
from tests.server import running_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: benign generated images: the first three are put on the list, the others are not
LISTED = [encode(generate(Kind.PHOTO, seed=300 + n, width=320, height=240)) for n in range(3)]
CLEAN = [encode(generate(Kind.PHOTO, seed=400 + n, width=320, height=240)) for n in range(3)]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bindir = find_bin()
    if bindir is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail("PostgreSQL binaries not found and PostgreSQL tests are required")
        pytest.skip("no PostgreSQL binaries on this machine")
    own = Cluster(bindir)
    try:
        own.start()
        yield own
    finally:
        own.remove()


def _children(pid: int | str) -> list[int]:
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(FileNotFoundError):
            found += [int(child) for child in listing.read_text().split()]
    return found


def _kill_every_worker() -> int:
    """kill -9 the forkserver's children: every hashing worker of this process."""
    killed = 0
    for pid in _children("self"):
        with contextlib.suppress(FileNotFoundError):
            if b"forkserver" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
        for worker in _children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
                killed += 1
    return killed


@contextlib.contextmanager
def _stalled(base: str, secret: str, count: int) -> Iterator[None]:
    """``count`` connections that send an upload's headers and then nothing."""
    host, port = base.removeprefix("http://").split(":")
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.sendall(
                f"POST /v1/scan HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}\r\n"
                "Content-Length: 1000000\r\n\r\n".encode()
            )
            socks.append(sock)
        yield
    finally:
        for sock in socks:
            sock.close()


def _until(probe: httpx.Client, path: str, status: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if probe.get(path).status_code == status:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{path} never answered {status}"
        time.sleep(0.1)


def test_no_answer_passes_listed_content_and_no_match_is_lost(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = _fresh_postgres_database(cluster.url)
    with contextlib.closing(open_store(url, migrate=True)) as store:
        store.banks.create("listed")
        store.banks.add_entries(
            "listed",
            [
                BankEntry(algorithm=Algorithm.MD5, value=hashlib.md5(data).hexdigest())
                for data in LISTED
            ],
        )
        _, scanner = store.tokens.create("uploads", [Scope.SCAN])
        _, staller = store.tokens.create("staller", [Scope.SCAN])
    settings = Settings(
        home=tmp_path / "home",
        database_url=url,
        workers=2,
        index_refresh_seconds=0.2,
        upload_read_timeout=3.0,
    )
    answers: list[tuple[bool, str, httpx.Response]] = []

    def round_of(http: httpx.Client, phase: str) -> None:
        for n, data in enumerate(LISTED + CLEAN):
            answer = http.post("/v1/scan", content=data, params={"content_id": f"{phase}-{n}"})
            answers.append((n < len(LISTED), phase, answer))

    auth = {"Authorization": f"Bearer {scanner}"}
    with (
        running_server(settings) as base,
        httpx.Client(base_url=base, headers=auth, timeout=60) as http,
    ):
        round_of(http, "before")
        assert _kill_every_worker() > 0
        round_of(http, "workers killed")
        with _stalled(base, staller, 16):
            round_of(http, "clients stalled")
        cluster.stop()
        round_of(http, "database down")
        _until(http, "/readyz", 503)
        cluster.start()
        _until(http, "/readyz", 200)
        round_of(http, "database back")

    problems = []
    matched_cases = []
    for listed, phase, answer in answers:
        what = f"{phase}: {'listed' if listed else 'clean'} upload answered {answer.status_code}"
        if answer.status_code not in (200, 429, 503):
            problems.append(f"{what}: {answer.text[:300]}")
            continue
        if answer.status_code != 200:
            continue
        body = answer.json()
        if listed and body["outcome"] != "matched":
            problems.append(f"{what} {body['outcome']}: listed content passed")
        if not listed and body["outcome"] != "no_match":
            problems.append(f"{what} {body['outcome']}")
        if listed:
            matched_cases.append((what, body["case_id"]))
    assert not problems, "\n".join(problems)
    # what was answered in every phase but the database's outage was checked for real
    for phase in ("before", "workers killed", "clients stalled", "database back"):
        assert [a.status_code for _, p, a in answers if p == phase] == [200] * 6, phase
    with contextlib.closing(open_store(url)) as store:
        for what, case_id in matched_cases:
            assert case_id is not None, f"{what}: matched without a case"
            assert store.cases.get(case_id).content_key, what
