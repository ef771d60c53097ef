"""Exchanges end to end: the local-file adapter's contract, the sync engine on both
engines (checkpoints, lease, failures), a sync killed with SIGKILL and resumed, and the
``hashguard exchanges`` commands with sealed credentials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from hashguard.banks.exchanges.base import ExchangeError, ListSource
from hashguard.banks.exchanges.localfile import LocalFileExchange
from hashguard.banks.exchanges.sync import build_source, seal_credentials, sync_exchange
from hashguard.domain.exchanges import Exchange, SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.keys import MasterKey, MasterKeyError, generate
from hashguard.plugins import GROUP, Registry
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.testing import ListSourceContract
from tests.api_support import bearer, make_token, metric, wait_until
from tests.cli import command, hashguard
from tests.server import running_server


def _md5(n: int) -> str:
    return f"{n:032x}"


def write_feed(path: Path, upserts: range, deletes: range = range(0), bad: int = 1) -> Path:
    lines = [json.dumps({"algorithm": "md5", "hash": _md5(n), "id": f"e{n}"}) for n in upserts]
    lines += ['{"algorithm": "md5", "hash": "not hex"}'] * bad
    lines += [json.dumps({"op": "delete", "algorithm": "md5", "hash": _md5(n)}) for n in deletes]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def live(store: Store, bank: str) -> set[tuple[Algorithm, str]]:
    bank_id = store.banks.get(bank).id
    found = set()
    for rows in store.banks.index_rows():
        for owner, algorithm, value in zip(
            rows.bank_ids, rows.algorithms, rows.values, strict=True
        ):
            if owner == bank_id:
                found.add((algorithm, value))
    return found


class TestLocalFileContract(ListSourceContract):
    @pytest.fixture(autouse=True)
    def _feed(self, tmp_path: Path) -> None:
        self.path = write_feed(tmp_path / "feed.jsonl", range(1, 26), deletes=range(3, 8))

    def source(self) -> ListSource:
        source = LocalFileExchange.configure({"path": str(self.path), "batch_size": 7}, {})
        assert isinstance(source, ListSource)
        return source


def test_a_line_still_being_written_waits_for_the_next_sync(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text(json.dumps({"algorithm": "md5", "hash": _md5(1)}) + "\n" + '{"algor')
    source = LocalFileExchange.configure({"path": str(path)}, {})
    (batch,) = list(source.fetch(None))
    assert [e.value for e in batch.upserts] == [_md5(1)]
    assert not batch.skipped
    with path.open("a") as feed:
        feed.write('ithm": "md5", "hash": "' + _md5(2) + '"}\n')
    (batch,) = list(source.fetch(batch.checkpoint))
    assert [e.value for e in batch.upserts] == [_md5(2)]


def _exchange(store: Store, path: Path, name: str = "feed", batch: int = 10) -> Exchange:
    if store.banks.find(name) is None:
        store.banks.create(name)
    return store.exchanges.create(
        name,
        adapter="local_file",
        bank=name,
        settings={"path": str(path), "batch_size": batch},
        credential_names=(),
        credentials=None,
    )


def _source(exchange: Exchange) -> LocalFileExchange:
    source = LocalFileExchange.configure(exchange.settings, {})
    assert isinstance(source, LocalFileExchange)
    return source


def test_sync_stores_batches_then_checkpoints_and_resumes(store: Store, tmp_path: Path) -> None:
    path = write_feed(tmp_path / "feed.jsonl", range(1, 31), deletes=range(1, 6))
    exchange = _exchange(store, path)
    report = sync_exchange(store, exchange, _source(exchange))
    assert report.ok, report
    assert (report.upserted, report.removed, report.skipped) == (30, 5, 1)
    assert report.skipped_reasons == ("line 31: md5 hash is not hexadecimal",)
    assert live(store, "feed") == {(Algorithm.MD5, _md5(n)) for n in range(6, 31)}
    state = store.exchanges.state("feed")
    assert state.last_success_at is not None
    assert state.last_error is None
    assert store.banks.stats("feed").removed == 5

    again = sync_exchange(store, exchange, _source(exchange))
    assert (again.batches, again.upserted) == (0, 0), "nothing new: nothing read again"
    with path.open("a") as feed:
        feed.write(json.dumps({"algorithm": "md5", "hash": _md5(99)}) + "\n")
    assert sync_exchange(store, exchange, _source(exchange)).upserted == 1


class _Failing(LocalFileExchange):
    """The local feed, failing after ``after`` batches (an exchange that went away)."""

    after = 2

    def fetch(self, checkpoint: str | None) -> Iterator[SyncBatch]:
        for number, batch in enumerate(super().fetch(checkpoint)):
            if number == self.after:
                raise ExchangeError("the exchange answered 503 (three times)")
            yield batch


def test_a_failed_sync_keeps_what_it_stored_and_resumes_after_it(
    store: Store, tmp_path: Path
) -> None:
    path = write_feed(tmp_path / "feed.jsonl", range(1, 51), bad=0)
    exchange = _exchange(store, path)
    failing = _Failing.configure(exchange.settings, {})
    report = sync_exchange(store, exchange, failing)
    assert report.error == "the exchange answered 503 (three times)"
    assert report.upserted == 20
    assert store.exchanges.state("feed").last_error == report.error
    assert store.exchanges.lease_owner("feed") is None, "a failed sync releases its lease"
    resumed = sync_exchange(store, exchange, _source(exchange))
    assert resumed.ok
    assert resumed.upserted == 30
    assert len(live(store, "feed")) == 50


def test_one_sync_at_a_time(store: Store, tmp_path: Path) -> None:
    exchange = _exchange(store, write_feed(tmp_path / "feed.jsonl", range(1, 5)))
    assert store.exchanges.acquire_lease("feed", "elsewhere:1", 60)
    report = sync_exchange(store, exchange, _source(exchange))
    assert report.error == "another process is syncing this exchange"
    assert not live(store, "feed")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sync_killed_with_sigkill_resumes_to_the_same_bank_as_a_clean_sync(
    db_url: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", db_url)
    path = write_feed(tmp_path / "feed.jsonl", range(1, 40_001), deletes=range(1, 40_001, 7))
    hashguard("exchanges", "add", "killed", "--adapter", "local_file",
              "--setting", f"path={path}", "--setting", "batch_size=250")  # fmt: skip
    hashguard("exchanges", "add", "clean", "--adapter", "local_file",
              "--setting", f"path={path}", "--setting", "batch_size=5000")  # fmt: skip
    syncing = subprocess.Popen(command("exchanges", "sync", "killed"), stderr=subprocess.DEVNULL)
    store = open_store(db_url)
    try:
        deadline = time.monotonic() + 60
        while store.exchanges.state("killed").upserted < 2_000:
            assert syncing.poll() is None, "the sync ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(syncing.pid, signal.SIGKILL)
        syncing.wait()
        interrupted = store.exchanges.state("killed")
        assert interrupted.last_success_at is None
        assert store.exchanges.lease_owner("killed") is not None, "the dead sync's lease"

        hashguard("exchanges", "sync", "killed")  # takes over the dead process's lease
        hashguard("exchanges", "sync", "clean")
        assert live(store, "killed") == live(store, "clean")
        assert len(live(store, "killed")) == 40_000 - len(range(1, 40_001, 7))
        killed, clean = store.banks.stats("killed"), store.banks.stats("clean")
        assert (killed.total_active, killed.removed) == (clean.total_active, clean.removed)
    finally:
        store.close()


CANARY = "canary-password-3f9a1c"


class _WithPassword(LocalFileExchange):
    name = "local_file"
    secrets = ("password",)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_exchange_commands_and_sealed_credentials(
    db_url: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", db_url)
    path = write_feed(tmp_path / "feed.jsonl", range(1, 11))
    added = hashguard("exchanges", "add", "feed", "--adapter", "local_file", "--setting",
                      f"path={path}")  # fmt: skip
    assert "syncs into bank 'feed'" in added.stderr
    assert not (home / "master.key").exists(), "no credentials: no key needed"
    refused = hashguard("exchanges", "add", "again", "--adapter", "local_file", "--bank", "feed",
                        "--setting", f"path={path}", check=2)  # fmt: skip
    assert "already has entries or an exchange" in refused.stderr
    wrong = hashguard("exchanges", "add", "x", "--adapter", "md5", check=2)
    assert "no list_source adapter named 'md5'" in wrong.stderr
    bad = hashguard("exchanges", "add", "y", "--adapter", "local_file", "--setting", "size=1",
                    check=2)  # fmt: skip
    assert "invalid settings" in bad.stderr

    synced = json.loads(hashguard("exchanges", "sync", "--json").stdout)
    assert synced == [
        {
            "exchange": "feed",
            "ok": True,
            "batches": 1,
            "upserted": 10,
            "removed": 0,
            "skipped": 1,
            "skipped_reasons": ["line 11: md5 hash is not hexadecimal"],
            "error": None,
        }
    ]
    (listed,) = json.loads(hashguard("exchanges", "list", "--json").stdout)
    assert (listed["name"], listed["bank"], listed["upserted"]) == ("feed", "feed", 10)
    hashguard("exchanges", "disable", "feed")
    assert json.loads(hashguard("exchanges", "sync", "--json").stdout) == []
    path.unlink()
    failed = hashguard("exchanges", "sync", "feed", check=1)
    assert "cannot read" in failed.stderr
    hashguard("exchanges", "remove", "feed")
    assert json.loads(hashguard("exchanges", "list", "--json").stdout) == []
    assert "feed" in hashguard("banks", "list").stdout, "the bank keeps its entries"


def test_credentials_are_sealed_in_the_store_and_bound_to_their_exchange(
    store: Store, tmp_path: Path
) -> None:

    key = MasterKey.load(value=generate(), file=None, default_file=tmp_path / "unused")[0]
    path = write_feed(tmp_path / "feed.jsonl", range(1, 3))
    for name in ("a", "b"):
        store.banks.create(name)
        store.exchanges.create(
            name,
            adapter="local_file",
            bank=name,
            settings={"path": str(path)},
            credential_names=("password",),
            credentials=seal_credentials(key, name, {"password": CANARY + name}),
        )
    with store.engine.connect() as conn:
        dumped = repr(list(conn.exec_driver_sql("SELECT * FROM exchanges")))
    assert CANARY not in dumped
    registry = Registry.load(
        ["local_file"],
        points=[EntryPoint(name="local_file", value=f"{__name__}:_WithPassword", group=GROUP)],
    )
    source = build_source(registry, store, key, store.exchanges.get("a"))
    assert source.credentials["password"].get_secret_value() == CANARY + "a"
    assert CANARY not in repr(source.credentials)

    sealed_a = store.exchanges.sealed_credentials("a")
    with store.engine.begin() as conn:  # an attacker swaps b's credentials for a's
        conn.execute(
            text("UPDATE exchanges SET credentials = :sealed WHERE name = 'b'"),
            {"sealed": sealed_a},
        )
    with pytest.raises(MasterKeyError, match="belongs to another record"):
        build_source(registry, store, key, store.exchanges.get("b"))


def test_a_server_syncs_its_exchanges_and_matches_what_they_bring(
    api_settings: Settings, tmp_path: Path
) -> None:
    path = write_feed(tmp_path / "feed.jsonl", range(1, 4))
    store = open_store(api_settings.resolved_database_url)
    try:
        _exchange(store, path)
    finally:
        store.close()
    settings = api_settings.model_copy(update={"exchange_sync_minutes": 0.005})
    auth = bearer(make_token(settings, Scope.LOOKUP))
    scraper = bearer(make_token(settings, Scope.STATS, name="prometheus"))
    query = {"hashes": [{"algorithm": "md5", "hash": _md5(2)}]}
    with running_server(settings) as base, httpx.Client(base_url=base, headers=auth) as http:
        found = wait_until(
            lambda: http.post("/v1/lookup", json=query).json()["results"][0]["matches"],
            bool,
        )
        assert found[0]["bank"] == "feed"
        assert found[0]["entry_id"] == "e2"
        wait_until(  # the metric counts a sync once it has finished
            lambda: metric(
                http.get("/metrics", headers=scraper).text,
                "hashguard_exchange_syncs_total",
                exchange="feed",
                result="ok",
            ),
            lambda syncs: syncs >= 1,
        )
