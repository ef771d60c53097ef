"""A small host scanning through a hotline's hashguard: two hashguard processes on
loopback (``hashguard serve`` with a bank of benign generated images and three tenants
with a lookup token each; a client with nothing but a tenant's token), a recording
proxy between them.

What must hold: the known files are found; only hashes cross the wire (no content, no
fast-mode PDQ hash); a service that refuses or stalls leaves the files ``not_answered``
(exit 2, never "no match"), and a scan after it recovers completes them; a tenant over
its quota or its rate gets ``not_answered`` files (exit 2), another tenant is not
touched, no tenant's token reads another's use or the service's statistics, and the
hotline sees which tenants found matches and how many."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hashguard.cli.app import app
from hashguard.domain.banks import BankEntry
from hashguard.domain.signals import Algorithm, PdqMode
from hashguard.domain.tokens import Scope
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.services.tenants import add_tenant
from hashguard.services.tokens import create_token
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.api_support import bearer, wait_until
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
    # a file no hasher decodes (unsupported): its exact hashes are still looked up
    "notes.txt": b"minutes of the benign test meeting\n",
}
MATCHED = {"known.png", "near.jpg", "notes.txt"}
#: the hotline's tenants: (quota of hashes a day, rate of hashes a second)
TENANTS = {
    "small-host-42": (100_000, None),
    "tiny-host": (1, None),  # less than one file's hashes: every call is over the quota
    "slow-host": (100_000, 0.001),  # one batch of burst, then (almost) nothing
}
#: the service's lookup_max_batch (also a tenant's burst) and the clients' batch_size
BATCH = 8


@dataclass(frozen=True)
class Hotline:
    base: str
    home: Path
    #: a lookup token per tenant
    tokens: dict[str, str]

    def __getitem__(self, index: int) -> str:  # (base, token) as the first tests read it
        return (self.base, self.tokens["small-host-42"])[index]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hotline]:
    """``hashguard serve`` as its own process, with a bank and a token per tenant."""
    home = tmp_path_factory.mktemp("hotline")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    port = free_port()
    env |= {
        "HASHGUARD_HOME": str(home),
        "HASHGUARD_PORT": str(port),
        "HASHGUARD_WORKERS": "1",
        "HASHGUARD_INDEX_REFRESH_SECONDS": "0.2",
        "HASHGUARD_LOOKUP_MAX_BATCH": str(BATCH),
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
                BankEntry(
                    algorithm=Algorithm.SHA256,
                    value=signals_of(FOLDER["notes.txt"]).sha256,
                    entry_id="k-3",
                ),
            ],
        )
        tokens = {}
        for name, (quota, rate) in TENANTS.items():
            add_tenant(
                store, "cli:hotline", name, contact=f"ops@{name}.test", quota_per_day=quota,
                rate_per_second=rate,
            )  # fmt: skip
            tokens[name] = create_token(
                store, "cli:hotline", f"{name}-scan", [Scope.LOOKUP], tenant=name
            )[1]
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
        yield Hotline(base=base, home=home, tokens=tokens)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def proxy(service: Hotline) -> Iterator[HashguardProxy]:
    with HashguardProxy(service.base) as running:
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
    home: Path, proxy: HashguardProxy, service: Hotline, monkeypatch: pytest.MonkeyPatch
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
            "--setting",
            f"batch_size={BATCH}",
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
    client: Path, folder: Path, proxy: HashguardProxy, service: Hotline
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


def _as_tenant(runner: CliRunner, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's hotline token replaced by another tenant's (sealed in its store)."""
    monkeypatch.setenv("HOTLINE_TOKEN", token)
    done = runner.invoke(
        app, ["remote", "set-secret", "hotline", "token", "--from", "env:HOTLINE_TOKEN"]
    )
    assert done.exit_code == 0, done.output


def test_tenants_quota_rate_and_isolation_as_the_client_sees_them(
    client: Path,
    folder: Path,
    service: Hotline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    expected = {name: "matched" if name in MATCHED else "no_match" for name in FOLDER}
    # a tenant over its daily quota: nothing answered, never "no match"
    _as_tenant(runner, service.tokens["tiny-host"], monkeypatch)
    over = runner.invoke(app, ["scan", str(folder), "--json"])
    assert over.exit_code == 2, over.output
    outcomes, summary = _outcomes(over.stdout)
    assert set(outcomes.values()) == {"not_answered"}, outcomes
    assert summary["counts"]["no_match"] == 0  # type: ignore[index]
    # a tenant over its rate: the first batch is answered, the rest is not
    _as_tenant(runner, service.tokens["slow-host"], monkeypatch)
    slow = runner.invoke(app, ["scan", str(folder), "--json"])
    outcomes, _ = _outcomes(slow.stdout)
    assert "not_answered" in outcomes.values(), outcomes
    assert all(o in (expected[n], "not_answered") for n, o in outcomes.items()), outcomes
    # a match found is never hidden behind the files not answered (exit 1), else 2
    assert slow.exit_code == (1 if "matched" in outcomes.values() else 2), slow.output
    # the other tenants are not touched
    _as_tenant(runner, service.tokens["small-host-42"], monkeypatch)
    fine = runner.invoke(app, ["scan", str(folder), "--json"])
    assert fine.exit_code == 1, fine.output
    assert _outcomes(fine.stdout)[0] == expected

    # isolation, straight at the service: a tenant reads its own use only
    with httpx.Client(base_url=service.base) as http:
        mine = bearer(service.tokens["small-host-42"])
        assert http.get("/v1/tenant", headers=mine).json()["name"] == "small-host-42"
        for other in ("tiny-host", "slow-host"):
            assert http.get(f"/v1/tenants/{other}", headers=mine).status_code == 404
        for path in ("/v1/stats", "/v1/cases", "/v1/runs", "/v1/banks"):
            assert http.get(path, headers=mine).status_code == 403, path
        tiny = http.get("/v1/tenant", headers=bearer(service.tokens["tiny-host"])).json()
        assert all(d["hashes"] == 0 for d in tiny["days"]), tiny  # refused calls count nothing

    # the hotline: which tenants found matches and how many, no file names or hashes
    hotline = runner.invoke(
        app,
        ["tenants", "list", "--matches", "--json"],
        env={"HASHGUARD_HOME": str(service.home)},
    )
    assert hotline.exit_code == 0, hotline.output
    listed = {t["name"]: t["matched"] for t in json.loads(hotline.stdout)}
    assert listed.get("small-host-42", 0) >= len(MATCHED)
    assert "tiny-host" not in listed
    for name in FOLDER:
        assert name not in hotline.stdout
