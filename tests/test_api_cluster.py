"""Two `hashguard serve` processes on one PostgreSQL: bank changes made through one
server reach the other's matching within seconds (the refresh contract of `serve`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from tests.server import free_port

pytestmark = pytest.mark.postgres

#: The most a bank change may take to reach another server (refresh interval: 1 s).
PROPAGATION_LIMIT = 5.0
START_LIMIT = 60.0
STOP_LIMIT = 30.0


def _environment(database_url: str, home: Path) -> dict[str, str]:
    """The test's environment without any HASHGUARD_* setting, plus this server's own."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("HASHGUARD_")}
    env |= {
        "HASHGUARD_DATABASE_URL": database_url,
        "HASHGUARD_HOME": str(home),
        "HASHGUARD_INDEX_REFRESH_SECONDS": "1",
        "HASHGUARD_WORKERS": "1",  # two servers share two cores
    }
    return env


def _hashguard(*args: str, env: dict[str, str]) -> str:
    """Run the CLI to completion; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "hashguard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"hashguard {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@dataclass
class Server:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path
    #: processes the server started (hashing workers) still alive after it exited
    leftovers: set[int] = field(default_factory=set)
    killed: bool = False

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            direct = {int(child) for child in children.read_text().split()}
        except OSError:  # the thread or process ended meanwhile
            continue
        for child in direct - found:
            found |= {child} | _descendants(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@contextmanager
def serving(name: str, env: dict[str, str], log: Path) -> Iterator[Server]:
    """A `hashguard serve` subprocess on a free loopback port, ready to scan.

    Always stopped on exit, failing test or not: SIGTERM, then a wait (SIGKILL only if
    it does not stop within STOP_LIMIT). Its exit code is left in ``process.returncode``.
    """
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hashguard",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(name=name, base=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(server)


def _stop(server: Server) -> None:
    """SIGTERM and wait; SIGKILL (noted in ``killed``) only past STOP_LIMIT. Then give
    the server's own children a moment to go, note the ones left and kill them."""
    process = server.process
    children = _descendants(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            server.killed = True
            process.kill()
            process.wait()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.leftovers = {pid for pid in children if _alive(pid)}
    for pid in server.leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_LIMIT
    while True:
        try:
            if httpx.get(server.base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server {server.name} did not become ready:\n{server.output()}")
        time.sleep(0.1)


def _until(
    what: str, probe: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]
) -> float:
    """Seconds until ``done(probe())`` holds; fails past PROPAGATION_LIMIT."""
    started = time.monotonic()
    while True:
        answer = probe()
        elapsed = time.monotonic() - started
        if done(answer):
            return elapsed
        if elapsed > PROPAGATION_LIMIT:
            raise AssertionError(f"{what}: not within {PROPAGATION_LIMIT} s; last answer {answer}")
        time.sleep(0.05)


def _flip_bits(pdq: str, count: int) -> str:
    """``pdq`` with ``count`` bits flipped, spread over the 256 (Hamming distance ``count``)."""
    value = int(pdq, 16)
    for bit in range(count):
        value ^= 1 << (bit * 256 // count)
    return f"{value:064x}"


def test_bank_changes_made_through_one_server_reach_another_within_seconds(
    postgres_database: str, tmp_path: Path
) -> None:
    env_a = _environment(postgres_database, tmp_path / "home-a")
    env_b = _environment(postgres_database, tmp_path / "home-b")
    _hashguard("db", "upgrade", env=env_a)  # servers never migrate PostgreSQL
    secret = _hashguard("tokens", "create", "cluster-test", "--scope", "admin", env=env_a).strip()
    auth = {"Authorization": f"Bearer {secret}"}
    photo = encode(generate(Kind.PHOTO, 11, 640, 480))
    servers: list[Server] = []
    timings: dict[str, float] = {}

    with ExitStack() as stack:
        a = stack.enter_context(serving("A", env_a, tmp_path / "a.log"))
        b = stack.enter_context(serving("B", env_b, tmp_path / "b.log"))
        servers += [a, b]
        to_a = stack.enter_context(httpx.Client(base_url=a.base, headers=auth, timeout=30))
        to_b = stack.enter_context(httpx.Client(base_url=b.base, headers=auth, timeout=30))

        def scan_on_b() -> dict[str, Any]:
            answer = to_b.post("/v1/scan", files={"file": ("photo.jpg", photo)})
            assert answer.status_code == 200, answer.text
            result: dict[str, Any] = answer.json()
            return result

        def matched(answer: dict[str, Any]) -> bool:
            return bool(answer["outcome"] == "matched")

        def not_matched(answer: dict[str, Any]) -> bool:
            return bool(answer["outcome"] == "no_match")

        first = scan_on_b()
        assert first["outcome"] == "no_match"
        md5 = first["signals"]["md5"]
        (pdq,) = first["signals"]["pdq"]
        assert not pdq["low_quality"]

        created = to_a.post("/v1/banks", json={"name": "cluster"})
        assert created.status_code == 201, created.text
        added = to_a.post(
            "/v1/banks/cluster/entries",
            json={"entries": [{"algorithm": "md5", "hash": md5, "entry_id": "e-md5"}]},
        )
        assert added.status_code == 200, added.text
        assert added.json()["added"] == 1
        timings["md5 added"] = _until("B matches the md5 added on A", scan_on_b, matched)
        hit = scan_on_b()
        assert [(m["bank"], m["algorithm"], m["entry_id"]) for m in hit["matches"]] == [
            ("cluster", "md5", "e-md5")
        ]

        removed = to_a.post(
            "/v1/banks/cluster/entries/remove",
            json={"entries": [{"algorithm": "md5", "hash": md5}]},
        )
        assert removed.status_code == 200, removed.text
        assert removed.json()["removed"] == 1
        timings["md5 removed"] = _until(
            "B stops matching the md5 removed on A", scan_on_b, not_matched
        )

        near = _flip_bits(pdq["hash"], 20)
        added = to_a.post(
            "/v1/banks/cluster/entries",
            json={"entries": [{"algorithm": "pdq", "hash": near, "entry_id": "e-pdq"}]},
        )
        assert added.status_code == 200, added.text
        timings["pdq added (threshold 31)"] = _until(
            "B matches the PDQ hash 20 bits away at threshold 31", scan_on_b, matched
        )
        hit = scan_on_b()
        assert [(m["algorithm"], m["entry_id"], m["distance"]) for m in hit["matches"]] == [
            ("pdq", "e-pdq", 20)
        ]

        def configure(**changes: object) -> None:
            answer = to_a.patch("/v1/banks/cluster", json=changes)
            assert answer.status_code == 200, answer.text
            for key, value in changes.items():
                assert answer.json()[key] == value

        configure(pdq_threshold=10)
        timings["threshold 31 -> 10"] = _until("B applies threshold 10", scan_on_b, not_matched)
        configure(pdq_threshold=31)
        timings["threshold 10 -> 31"] = _until("B applies threshold 31", scan_on_b, matched)
        configure(enabled=False)
        timings["bank disabled"] = _until(
            "B stops matching a disabled bank", scan_on_b, not_matched
        )
        configure(enabled=True)
        timings["bank enabled"] = _until("B matches the re-enabled bank", scan_on_b, matched)

    print("propagation to B (s):", {what: round(took, 2) for what, took in timings.items()})
    for server in servers:
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: -SIGTERM
        stopped = (server.process.returncode in (0, -signal.SIGTERM)) and not server.killed
        assert stopped, f"{server.name} exit {server.process.returncode}:\n{server.output()}"
        assert not server.leftovers, f"{server.name} left processes {server.leftovers} running"
        assert "Traceback" not in server.output(), server.output()
