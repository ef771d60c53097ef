"""A small host scanning through a hotline's hashguard: two hashguard processes on
loopback (``hashguard serve`` with a bank of benign generated images and one lookup
token; a client with nothing but the token), a recording proxy between them.

What must hold: the known files are found; only hashes cross the wire (no content, no
fast-mode PDQ hash); a service that refuses or stalls leaves the files ``not_answered``
(exit 2, never "no match"), and a scan after it recovers completes them."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hashguard.cli.app import app
from hashguard.domain.banks import BankEntry
from hashguard.domain.signals import Algorithm, PdqMode
from hashguard.domain.tokens import Scope
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.api_support import make_token, wait_until
from tests.cli import hashguard, json_lines
from tests.fakes import benign_image, signals_of
from tests.fakes.hashguard_proxy import HashguardProxy
from tests.server import free_port
from tests.test_remote_hashguard import jpeg

KNOWN = benign_image(seed=7)
NEAR = benign_image(seed=11)
#: the host's folder: an exact copy and a re-encoded copy of listed images, two others
FOLDER = {
    "known.png": KNOWN,
    "near.jpg": jpeg(NEAR),
    "holiday.png": benign_image(seed=41),
}
MATCHED = {"known.png", "near.jpg"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``hashguard serve`` as its own process, with a bank and a lookup token."""
    home = tmp_path_factory.mktemp("hotline")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    port = free_port()
    env |= {
        "HASHGUARD_HOME": str(home),
        "HASHGUARD_PORT": str(port),
        "HASHGUARD_WORKERS": "1",
        "HASHGUARD_INDEX_REFRESH_SECONDS": "0.2",
    }
    settings = Settings(home=home)
    with contextlib.closing(open_store(settings.resolved_database_url, migrate=True)) as store:
        store.banks.create("known", source="test hotline", licence="tests only")
        store.banks.add_entries(
            "known",
            [
                BankEntry(algorithm=Algorithm.MD5, value=signals_of(KNOWN).md5, entry_id="k-1"),
                BankEntry(
                    algorithm=Algorithm.PDQ, value=signals_of(NEAR).pdq[0].value, entry_id="k-2"
                ),
            ],
        )
    token = make_token(settings, Scope.LOOKUP, name="small-host-42-scan")
    process = subprocess.Popen(
        [sys.executable, "-m", "hashguard", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> int:
        try:
            return httpx.get(base + "/readyz", timeout=2).status_code
        except httpx.TransportError:
            return 0

    try:
        wait_until(ready, lambda status: status == 200, timeout=60)
        yield base, token
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def proxy(service: tuple[str, str]) -> Iterator[HashguardProxy]:
    with HashguardProxy(service[0]) as running:
        yield running


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "uploads"
    root.mkdir()
    for name, data in FOLDER.items():
        (root / name).write_bytes(data)
    return root


@pytest.fixture
def client(
    home: Path, proxy: HashguardProxy, service: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A client home with the hotline added, as the README says."""
    monkeypatch.setenv("HOTLINE_TOKEN", service[1])
    monkeypatch.setenv("HASHGUARD_REMOTE_BUDGET_SECONDS", "3")
    done = CliRunner().invoke(
        app,
        [
            "remote",
            "add",
            "hotline",
            "--adapter",
            "hashguard",
            "--setting",
            f"base_url={proxy.url}",
            "--setting",
            "timeout_seconds=0.5",
            "--setting",
            "retries=1",
            "--setting",
            "backoff_seconds=0.05",
            "--credential",
            "token=env:HOTLINE_TOKEN",
        ],
    )
    assert done.exit_code == 0, done.output
    assert service[1] not in (home / "hashguard.toml").read_text()
    return home


def _outcomes(stdout: str) -> tuple[dict[str, str], dict[str, object]]:
    files, summary = json_lines(stdout)
    return {Path(f["path"]).name: f["outcome"] for f in files}, summary


def test_a_small_host_finds_known_files_sending_hashes_only(
    client: Path, folder: Path, proxy: HashguardProxy, service: tuple[str, str]
) -> None:
    done = hashguard("scan", str(folder), "--json", check=1)
    outcomes, _ = _outcomes(done.stdout)
    assert outcomes == {name: "matched" if name in MATCHED else "no_match" for name in FOLDER}, (
        done.stderr
    )
    assert service[1] not in done.stdout + done.stderr
    # on the wire: lookups of hashes, nothing else
    sent: set[tuple[str, str]] = set()
    for request in proxy.requests:
        assert (request.method, request.path) == ("POST", "/v1/lookup")
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.body)
        assert set(body) == {"hashes"}
        sent |= {(h["algorithm"], h["hash"]) for h in body["hashes"]}
        for data in FOLDER.values():
            assert data[:64] not in request.body
    exact = {
        (str(a), signals_of(d).exact(a))
        for d in FOLDER.values()
        for a in (Algorithm.MD5, Algorithm.SHA1, Algorithm.SHA256)
    }
    reference = {("pdq", p.value) for d in FOLDER.values() for p in signals_of(d).pdq}
    assert sent <= exact | reference
    assert exact <= sent
    fast = {
        ("pdq", p.value)
        for d in FOLDER.values()
        if (out := hash_data(d, HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.FAST)))
        and out.signals is not None
        for p in out.signals.pdq
    }
    assert not (fast - reference) & sent, "a fast-mode hash left"


@pytest.mark.parametrize("failure", ["refuse", "timeout"])
def test_a_service_down_or_slow_leaves_files_not_answered_until_it_recovers(
    client: Path, folder: Path, proxy: HashguardProxy, failure: str
) -> None:
    proxy.behaviour = failure
    runner = CliRunner()
    down = runner.invoke(app, ["scan", str(folder), "--json"])
    assert down.exit_code == 2, down.output
    outcomes, summary = _outcomes(down.stdout)
    assert set(outcomes.values()) == {"not_answered"}, outcomes
    assert summary["counts"]["no_match"] == 0  # type: ignore[index]
    proxy.behaviour = "forward"
    again = runner.invoke(app, ["scan", str(folder), "--json"])
    assert again.exit_code == 1, again.output
    outcomes, _ = _outcomes(again.stdout)
    assert outcomes == {name: "matched" if name in MATCHED else "no_match" for name in FOLDER}
