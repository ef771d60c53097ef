"""The one pipeline: an item's consequences (result, evidence, case, actions, audit) commit
together or not at all, whatever fails between the steps; a process killed between two
steps leaves nothing half-done; a late remote answer is recorded like an early one; and
``hashguard scan``, a scan run and ``/v1/scan`` record the same for the same file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.actions import WebhookEndpoint
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import ContentRef
from hashguard.domain.scans import ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.domain.stats import Metric
from hashguard.domain.tokens import Scope
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions, HashOutput, hash_data
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import STEPS, Pipeline
from hashguard.scan.sources import LocalFile, Upload
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from tests.api_support import assert_problem, bearer, make_token, wait_until
from tests.cli import hashguard, json_lines
from tests.fakes.arachnid import FakeArachnidShield
from tests.fakes.photodna import FakePhotoDna
from tests.server import free_port, running_server

KNOWN = encode(generate(Kind.PHOTO, 151, 320, 240))
CLEAN = encode(generate(Kind.PHOTO, 152, 320, 240))
KNOWN_MD5 = hashlib.md5(KNOWN).hexdigest()
SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#: nothing listens there: webhooks stay in the outbox
NOWHERE = "http://127.0.0.1:9/hook"
INSIDE = [step for step in STEPS if step != "commit"]


class Boom(RuntimeError):
    pass


def raise_at(step: str) -> Callable[[str], None]:
    def checkpoint(reached: str) -> None:
        if reached == step:
            raise Boom(step)

    return checkpoint


@dataclass(frozen=True)
class World:
    store: Store
    vault: Vault
    matcher: Matcher
    known: HashOutput
    clean: HashOutput

    def pipeline(self, checkpoint: Callable[[str], None] | None = None) -> Pipeline:
        extra = {"checkpoint": checkpoint} if checkpoint else {}
        return Pipeline(
            store=self.store,
            actor="system:test",
            policies=lambda: policies_of(self.matcher.banks),
            vault=lambda: self.vault,
            endpoints=(WebhookEndpoint(name="ops", url=NOWHERE, secret=SECRET),),
            quarantine_local=True,
            **extra,  # type: ignore[arg-type]
        )

    def matches(self, output: HashOutput) -> Any:
        assert output.signals is not None
        return self.matcher.match(output.signals)


@pytest.fixture
def world(store: Store, tmp_path: Path) -> World:
    store.banks.create("known")
    store.banks.add_entries(
        "known", [BankEntry(algorithm=Algorithm.MD5, value=KNOWN_MD5, entry_id="k-1")]
    )
    vault = Vault(store.evidence, MasterKey(secrets.token_bytes(32)), tmp_path / "evidence")
    options = HashOptions(max_pixels=50_000_000)
    return World(
        store=store,
        vault=vault,
        matcher=Matcher.build(store.banks),
        known=hash_data(KNOWN, options),
        clean=hash_data(CLEAN, options),
    )


def _upload(request_id: str = "req-1") -> Upload:
    return Upload(
        data=KNOWN,
        request_id=request_id,
        content_ref=ContentRef(content_id="c-1"),
        uploader_ip=None,
    )


def recorded(store: Store, blob_dir: Path | None = None) -> dict[str, Any]:
    """Everything an item can leave behind, by kind."""
    runs = store.scans.list_runs()
    return {
        "results": sum(run.total for run in runs),
        "evidence": [item.id for item in store.evidence.list()],
        "cases": [(c.id, c.evidence_id) for c in store.cases.list()],
        "actions": [(a.kind, a.event) for a in store.actions.list()],
        "audit": [e.action for e in store.audit.events() if not e.action.startswith("bank.")],
        "files": sorted(p.name for p in blob_dir.rglob("*") if p.is_file()) if blob_dir else [],
    }


NOTHING = {"results": 0, "evidence": [], "cases": [], "actions": [], "audit": [], "files": []}


def assert_complete(store: Store, blob_dir: Path | None = None, *, results: int = 0) -> None:
    got = recorded(store, blob_dir)
    (evidence_id,) = got["evidence"]
    ((_, case_evidence),) = got["cases"]
    assert case_evidence == evidence_id
    assert got["actions"] == [("webhook", "match.detected")] or sorted(got["actions"]) == [
        ("quarantine", None),
        ("webhook", "match.detected"),
    ]
    assert got["audit"] == ["scan.decision", "evidence.kept", "case.opened"]
    assert got["results"] == results
    if blob_dir is not None:
        assert got["files"] == [evidence_id]


# -- one transaction, in the store (both engines) -------------------------------------


@pytest.mark.parametrize("step", INSIDE)
def test_a_fault_between_steps_leaves_nothing_and_a_retry_records_everything(
    world: World, step: str
) -> None:
    matches = world.matches(world.known)
    with pytest.raises(Boom):
        world.pipeline(raise_at(step)).process("upload", world.known, matches, _upload())
    assert recorded(world.store, world.vault.blob_dir) == NOTHING

    done = world.pipeline().process("upload", world.known, matches, _upload())
    assert done.case is not None
    assert done.evidence_id == done.case.evidence_id
    assert_complete(world.store, world.vault.blob_dir)


def test_a_fault_after_the_commit_loses_nothing(world: World) -> None:
    matches = world.matches(world.known)
    with pytest.raises(Boom):
        world.pipeline(raise_at("commit")).process("upload", world.known, matches, _upload())
    assert_complete(world.store, world.vault.blob_dir)


def test_every_step_is_reached_in_order(world: World) -> None:
    reached: list[str] = []
    world.pipeline(reached.append).process(
        "upload", world.known, world.matches(world.known), _upload()
    )
    assert reached == list(STEPS)


def test_a_scan_batch_commits_each_result_with_its_consequences_or_nothing(
    world: World, tmp_path: Path
) -> None:
    store = world.store
    run = store.scans.create_run(
        roots=[str(tmp_path)],
        resume_key="k",
        options=ScanOptions(max_pixels=50_000_000),
        pid=1,
        host="h",
    )
    (tmp_path / "known.jpg").write_bytes(KNOWN)
    items = []
    for name, output in (("known.jpg", world.known), ("clean.jpg", world.clean)):
        path = str(tmp_path / name)
        source = LocalFile(path=path, run_id=run.id)
        pipeline = world.pipeline()
        result = pipeline.judge(path, output, world.matches(output), source)
        items.append((pipeline, result, source))

    failing = world.pipeline(raise_at("outbox"))
    with pytest.raises(Boom):
        failing.commit([failing.prepare(result, source) for _, result, source in items])
    assert recorded(store, world.vault.blob_dir) == NOTHING

    pipeline = world.pipeline()
    pipeline.commit([pipeline.prepare(result, source) for _, result, source in items])
    assert_complete(store, world.vault.blob_dir, results=2)
    kinds = sorted(str(a.kind) for a in store.actions.list())
    assert kinds == ["quarantine", "webhook"]


def test_nothing_but_its_count_is_written_for_a_clean_upload(world: World) -> None:
    done = world.pipeline().process("upload", world.clean, world.matches(world.clean), _upload())
    assert done.result.outcome == "no_match"
    assert recorded(world.store, world.vault.blob_dir) == NOTHING
    counted = world.store.stats.counts(date(2000, 1, 1), date(2999, 1, 1), [Metric.FILES_CHECKED])
    assert [(dict(c.labels), c.value) for c in counted] == [
        ({"way": "upload", "kind": "image", "outcome": "no_match"}, 1)
    ]


# -- /v1/scan in a real server process, killed between steps ------------------------------


def _with_known_bank(settings: Settings) -> None:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        store.banks.create("known")
        store.banks.add_entries(
            "known", [BankEntry(algorithm=Algorithm.MD5, value=KNOWN_MD5, entry_id="k-1")]
        )


@contextlib.contextmanager
def fault_server(
    settings: Settings, step: str, mode: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``tests.fault_server`` as a process of its own; yields its URL and the process.
    A free port can be taken by another test's server before this one binds it: the
    process then exits, and the answer without this process's nonce is not taken for
    its own; it starts again on another port."""
    env = {
        **os.environ,
        "HASHGUARD_HOME": str(settings.home),
        "HASHGUARD_DATABASE_URL": settings.resolved_database_url,
        "HASHGUARD_WORKERS": "1",
        "HASHGUARD_WEBHOOKS": json.dumps([{"name": "ops", "url": NOWHERE, "secret": SECRET}]),
    }
    for _attempt in range(5):
        port, nonce = free_port(), secrets.token_hex(8)
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fault_server", str(port), step, mode, nonce],
            env=env,
            cwd=Path(__file__).parent.parent,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    answer = httpx.get(base + "/readyz", timeout=2)
                    if answer.status_code == 200 and answer.headers.get("x-fault-nonce") == nonce:
                        break
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.1)
            else:
                continue  # it died starting (the port was taken): another port
            yield base, process
            return
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)
    raise AssertionError("the fault server did not start on any of 5 ports")


def _post_known(base: str, auth: dict[str, str]) -> httpx.Response:
    return httpx.post(
        base + "/v1/scan", content=KNOWN, headers=auth, params={"content_id": "c-1"}, timeout=60
    )


def _half_done(store: Store) -> dict[str, Any]:
    """What must never exist alone: rows of an item whose transaction did not commit."""
    got = recorded(store)
    got.pop("files")
    return got


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_server_killed_between_any_two_steps_of_an_upload_leaves_nothing_half_done(
    api_settings: Settings,
) -> None:
    _with_known_bank(api_settings)
    auth = bearer(make_token(api_settings, Scope.SCAN))
    blob_dir = api_settings.home / "evidence"
    nothing = {k: v for k, v in NOTHING.items() if k != "files"}
    for step in INSIDE:
        with fault_server(api_settings, step, "exit") as (base, process):
            with pytest.raises(httpx.TransportError):
                _post_known(base, auth)
            assert process.wait(timeout=30) == 17, step
        with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
            assert _half_done(store) == nothing, step
    # a kill right after the commit: the client heard nothing, but nothing is lost
    with fault_server(api_settings, "commit", "exit") as (base, process):
        with pytest.raises(httpx.TransportError):
            _post_known(base, auth)
        assert process.wait(timeout=30) == 17
    with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
        got = recorded(store, blob_dir)
        (evidence_id,) = got["evidence"]
        assert got["cases"][0][1] == evidence_id
        assert got["actions"] == [("webhook", "match.detected")]
        assert got["audit"] == ["scan.decision", "evidence.kept", "case.opened"]
        # files of killed transactions stay behind as orphans until the vault's sweep
        assert evidence_id in got["files"]
        assert len(got["files"]) <= 1 + len(INSIDE)
    # the caller's retry is recorded as a sighting of the same case
    with fault_server(api_settings, "none", "exit") as (base, _):
        answer = _post_known(base, auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "matched"
    assert answer.json()["case_id"] == got["cases"][0][0]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_fault_after_matching_is_a_503_with_nothing_recorded(api_settings: Settings) -> None:
    _with_known_bank(api_settings)
    auth = bearer(make_token(api_settings, Scope.SCAN))
    with fault_server(api_settings, "case", "raise") as (base, _):
        answer = _post_known(base, auth)
        assert_problem(answer, 503)
        assert answer.headers["Retry-After"]
        clean = httpx.post(base + "/v1/scan", content=CLEAN, headers=auth, timeout=60)
        assert clean.json()["outcome"] == "no_match", "a clean upload reaches no fault"
    with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
        assert recorded(store, api_settings.home / "evidence") == NOTHING


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_value_the_database_refuses_after_matching_is_never_a_500(
    api_settings: Settings,
) -> None:
    """PostgreSQL refuses NUL in text: that used to answer 500 with the match lost."""
    _with_known_bank(api_settings)
    auth = bearer(make_token(api_settings, Scope.SCAN))
    with running_server(api_settings) as base:
        answer = httpx.post(
            base + "/v1/scan",
            content=KNOWN,
            headers=auth,
            params={"content_id": "c\x00-1"},
            timeout=60,
        )
        # refused before hashing (422), or failed closed after matching (503)
        assert answer.status_code in (422, 503), answer.text
        assert _post_known(base, auth).json()["outcome"] == "matched"
    with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
        got = recorded(store, api_settings.home / "evidence")
    assert len(got["evidence"]) == len(got["cases"]) == len(got["files"]) == 1
    assert got["audit"] == ["scan.decision", "evidence.kept", "case.opened"]


# -- late remote answers ---------------------------------------------------------------------

KEY = "canary-pipeline-key-5e1d"
USER, PASSWORD = "canary-pipeline-user", "canary-pipeline-password-91c"


def test_a_late_remote_match_in_a_scan_replaces_the_result_and_opens_the_case(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "photo.jpg").write_bytes(KNOWN)
    with FakePhotoDna(KEY) as fake:
        fake.behaviour = "match"
        fake.delay_seconds = 2.0  # past the budget, well within its own timeout
        remote = {"base_url": fake.url, "allow_media": True, "retries": 0, "timeout_seconds": 10}
        monkeypatch.setenv("HASHGUARD_REMOTE", json.dumps({"photodna": remote}))
        monkeypatch.setenv(
            "HASHGUARD_REMOTE_SECRETS", json.dumps({"photodna": {"subscription_key": KEY}})
        )
        monkeypatch.setenv("HASHGUARD_REMOTE_BUDGET_SECONDS", "0.5")
        done = hashguard("scan", str(tmp_path / "up"), "--json", check=1)
    (first,), summary = json_lines(done.stdout)
    assert first["outcome"] == "not_answered"  # what was known when the budget ran out
    assert summary["counts"]["matched"] == 1
    assert summary["counts"]["not_answered"] == 0
    shown = hashguard("scans", "show", str(summary["run"]), "--json", check=None).stdout
    (stored,), _ = json_lines(shown)
    assert stored["outcome"] == "matched"
    assert stored["remote"][0]["status"] == "matched"
    (case,) = json.loads(hashguard("cases", "list", "--json").stdout)
    (item,) = json.loads(hashguard("evidence", "list", "--json").stdout)
    assert case["evidence_id"] == item["id"]
    assert item["sha256"] == hashlib.sha256(KNOWN).hexdigest()
    events = [json.loads(line) for line in hashguard("audit", "list", "--json").stdout.splitlines()]
    decisions = [e for e in events if e["action"] == "scan.decision"]
    assert [d["details"].get("late_remote_answer") for d in decisions] == [True]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_late_remote_match_of_an_upload_opens_its_case_and_keeps_it(
    api_settings: Settings,
) -> None:
    with FakeArachnidShield(USER, PASSWORD) as fake:
        fake.behaviour = "match"
        fake.delay_seconds = 2.0
        settings = api_settings.model_copy(
            update={
                "remote": {
                    "arachnid_shield": {"base_url": fake.url, "retries": 0, "timeout_seconds": 10}
                },
                "remote_secrets": {
                    "arachnid_shield": {
                        "username": SecretStr(USER),
                        "password": SecretStr(PASSWORD),
                    }
                },
                "remote_budget_seconds": 0.5,
            }
        )
        auth = bearer(make_token(settings, Scope.SCAN))
        with running_server(settings) as base, httpx.Client(base_url=base, headers=auth) as http:
            answer = http.post("/v1/scan", content=KNOWN, params={"content_id": "late-1"})
            assert answer.json()["outcome"] == "not_answered"
            assert answer.json()["case_id"] is None
            with contextlib.closing(open_store(settings.resolved_database_url)) as store:
                (case,) = wait_until(store.cases.list, bool, timeout=30)
                items = store.evidence.list()
                audit = [e for e in store.audit.events() if e.action == "scan.decision"]
    assert case.content.content_id == "late-1"
    assert [item.id for item in items] == [case.evidence_id]
    assert case.decision.bank == "remote:arachnid_shield"
    assert [e.details.get("late_remote_answer") for e in audit] == [True]


# -- one wiring: the three ways in record the same ---------------------------------------------


def _snapshot(database_url: str) -> dict[str, Any]:
    """What a matched file left in a store, without what names the way in (paths, run
    ids, request ids, actors, times)."""
    with contextlib.closing(open_store(database_url)) as store:
        runs = store.scans.list_runs()
        results = [r for run in runs for r in store.scans.results(run.id)]
        (case,) = store.cases.list()
        events = [e for e in store.audit.events() if not e.action.startswith(("bank.", "token."))]
        actions = store.actions.list()
        evidence = store.evidence.list()
    drop = {"source", "retain_until"}
    return {
        "results": [
            (r.outcome, r.reason, r.signals, r.matches, r.remote, r.decision) for r in results
        ],
        "audit": [
            (e.action, {k: v for k, v in e.details.items() if k not in drop}) for e in events
        ],
        "case": (
            case.state,
            case.banks,
            case.decision,
            case.matches,
            case.signals,
            case.evidence_id == evidence[0].id,
        ),
        "evidence": [(i.size, i.sha256, i.jurisdiction, i.summary["banks"]) for i in evidence],
        "actions": [
            (
                a.kind,
                a.event,
                {k: v for k, v in a.payload["data"].items() if k not in ("path", "scan_run")},
            )
            for a in actions
        ],
    }


def test_the_cli_a_scan_run_and_the_upload_api_record_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "known.jpg").write_bytes(KNOWN)
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    hooks = [{"name": "ops", "url": NOWHERE, "secret": SECRET}]
    homes = {way: tmp_path / way for way in ("cli", "run", "upload")}
    settings = {
        way: Settings(
            home=home,
            workers=1,
            index_refresh_seconds=0.2,
            scan_roots=(folder,),
            webhooks=hooks,  # type: ignore[arg-type]
        )
        for way, home in homes.items()
    }
    for way in homes:
        with contextlib.closing(open_store(settings[way].resolved_database_url, migrate=True)):
            pass
        _with_known_bank(settings[way])

    monkeypatch.setenv("HASHGUARD_HOME", str(homes["cli"]))
    monkeypatch.setenv("HASHGUARD_WEBHOOKS", json.dumps(hooks))
    hashguard("scan", str(folder), check=1)

    auth = bearer(make_token(settings["run"], Scope.ADMIN))
    with running_server(settings["run"]) as base, httpx.Client(base_url=base, headers=auth) as http:
        run = http.post("/v1/runs", json={"paths": [str(folder)]}).json()
        wait_until(
            lambda: http.get(f"/v1/runs/{run['id']}").json(),
            lambda got: got["status"] == "completed" and not got["active"],
        )

    auth = bearer(make_token(settings["upload"], Scope.SCAN))
    with running_server(settings["upload"]) as base:
        answer = httpx.post(base + "/v1/scan", content=KNOWN, headers=auth, timeout=60).json()
    assert answer["outcome"] == "matched"

    cli, run_, upload = (_snapshot(settings[way].resolved_database_url) for way in homes)
    assert cli["results"] == run_["results"]
    assert len(cli["results"]) == 1
    ((outcome, _, signals, _, _, decision),) = cli["results"]
    assert (outcome, decision.action) == ("matched", "act")
    assert upload["results"] == [], "an upload's result is answered, not stored"
    assert (answer["decision"]["action"], answer["signals"]["md5"]) == ("act", signals.md5)
    for way, got in (("run", run_), ("upload", upload)):
        for part in ("audit", "case", "evidence", "actions"):
            assert got[part] == cli[part], (way, part)
    assert [action for action, _ in cli["audit"]] == [
        "scan.decision",
        "evidence.kept",
        "case.opened",
    ]
    assert [(kind, event) for kind, event, _ in cli["actions"]] == [("webhook", "match.detected")]
    assert cli["case"][-1] is True, "the case names its evidence"
