"""Kept signals and retro-matching: a list entry added after a scan finds the earlier
item (exact and PDQ) without reading any other item's content, opens its case once, and
a second run adds nothing."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hashguard.cli.app import app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry
from hashguard.domain.kept import KeptPdq, NewKept
from hashguard.domain.objects import ObjectRef
from hashguard.domain.scans import ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.jobs.builtin import RETRO_MATCH, intervals
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.retro import retro_match
from hashguard.scan.sources import LocalFile
from hashguard.settings import Settings
from hashguard.store import Store

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OPTIONS = HashOptions(max_pixels=50_000_000)
EXACT = encode(generate(Kind.PHOTO, 301, 320, 240))
NEAR = encode(generate(Kind.PHOTO, 302, 320, 240))
CLEAN = encode(generate(Kind.PHOTO, 303, 320, 240))


def _flip(value: str, bits: int) -> str:
    number = int(value, 16) ^ ((1 << bits) - 1)
    return f"{number:064x}"


def test_kept_signals_store(store: Store) -> None:
    """Both engines: keyed lookup, PDQ rows, marking checked, checkpoint, retention."""
    ref = ObjectRef(bucket="b1", key="k/1.png", version_id="v1", etag='"e"')
    items = [
        NewKept(
            way="scan",
            md5="a" * 32,
            sha1="b" * 40,
            sha256="c" * 64,
            size=10,
            pdq=(KeptPdq(value="f" * 64, quality=90),),
            run_id=3,
            path="s3://b1/k/1.png",
            object=ref,
        ),
        NewKept(way="upload", md5="d" * 32, sha1="e" * 40, sha256="0" * 64, size=5),
    ]
    store.kept.add(items, at=NOW - timedelta(days=10), seq=4)
    assert store.kept.count() == 2
    ((kept_id, value, seq),) = store.kept.lookup("md5", ["A" * 32, "9" * 32])
    assert (value, seq) == ("a" * 32, 4)
    (batch,) = list(store.kept.pdq_rows())
    assert batch == [(kept_id, 4, [["f" * 64, 90]])]
    # one of three index partitions (id % 3) holds it, the others nothing
    shares = [
        [row for rows in store.kept.pdq_rows(partition=(k, 3)) for row in rows] for k in range(3)
    ]
    assert shares[kept_id % 3] == batch
    assert sum(map(len, shares)) == 1
    (kept,) = store.kept.get([kept_id])
    assert kept.object == ref
    assert kept.pdq == (KeptPdq(value="f" * 64, quality=90),)
    with store.transaction() as writes:
        writes.mark_checked([kept_id], 9)
    assert store.kept.lookup("sha1", ["b" * 40]) == [(kept_id, "b" * 40, 9)]
    assert store.kept.checkpoint() == 0
    store.kept.set_checkpoint(7, at=NOW)
    store.kept.set_checkpoint(8, at=NOW)
    assert store.kept.checkpoint() == 8
    store.kept.add([items[1]], at=NOW, seq=9)
    assert store.kept.forget_before(NOW - timedelta(days=1)) == 2
    assert store.kept.count() == 1


def test_a_list_entry_added_after_a_scan_finds_the_earlier_item(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store
    store.banks.create("known")
    store.banks.add_entries("known", [BankEntry(algorithm=Algorithm.MD5, value="1" * 32)])
    matcher = Matcher.build(store.banks)
    vault = Vault(store.evidence, MasterKey(secrets.token_bytes(32)), tmp_path / "evidence")
    pipeline = Pipeline(
        store=store,
        actor="system:test",
        matcher=matcher,
        policies=lambda: policies_of(matcher.banks),
        vault=lambda: vault,
        keep_signals=True,
        clock=lambda: NOW,
    )
    run = store.scans.create_run(
        roots=[str(tmp_path)],
        resume_key="k",
        options=ScanOptions(max_pixels=50_000_000),
        pid=1,
        host="h",
    )
    files = {"exact.png": EXACT, "near.png": NEAR, "clean.png": CLEAN}
    outputs = {}
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        output = hash_data(data, OPTIONS)
        assert output.signals is not None
        outputs[name] = output
        pipeline.process(
            str(path),
            output,
            matcher.match(output.signals),
            LocalFile(path=str(path), run_id=run.id),
        )
    assert store.kept.count() == 3
    assert store.cases.list() == []

    # the lists grow: the exact file's MD5, and a PDQ hash 6 bits from the near file's
    near_pdq = outputs["near.png"].signals.pdq[0].value  # type: ignore[union-attr]
    store.banks.add_entries(
        "known",
        [
            BankEntry(algorithm=Algorithm.MD5, value=hashlib.md5(EXACT).hexdigest()),
            BankEntry(algorithm=Algorithm.PDQ, value=_flip(near_pdq, 6)),
        ],
    )
    # the content that will not match is never read again: it is gone
    (tmp_path / "clean.png").unlink()
    matcher.refresh()

    first = retro_match(store, pipeline)
    assert (first.matched, first.cases, first.candidates) == (2, 2, 2)
    cases = store.cases.list()
    assert sorted(c.content_key for c in cases) == sorted(
        hashlib.sha256(data).hexdigest() for data in (EXACT, NEAR)
    )
    assert len(store.evidence.list()) == 2  # both still on disk: read again, verified

    second = retro_match(store, pipeline)
    assert (second.new_entries, second.matched, second.cases) == (0, 0, 0)
    assert len(store.cases.list()) == 2
    events = [e.action for e in store.audit.events()]
    assert events.count(AuditAction.RETRO_MATCHED) == 2
    assert events.count(AuditAction.RETRO_RUN) == 2
    assert events.count(AuditAction.CASE_OPENED) == 2

    # an entry the items were already checked against (re-added) finds nothing new
    store.banks.add_entries("known", [BankEntry(algorithm=Algorithm.MD5, value="2" * 32)])
    matcher.refresh()
    third = retro_match(store, pipeline)
    assert (third.new_entries, third.matched) == (1, 0)


def test_cli_retro_match_and_the_job_schedule(
    sqlite_store: Store, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload's kept hashes (its bytes were never kept) found by ``hashguard
    retro-match`` in-process: a case with no evidence, once."""
    store = sqlite_store
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", str(store.engine.url))
    monkeypatch.setenv("HASHGUARD_KEEP_SIGNALS", "true")
    store.banks.create("known")
    md5 = hashlib.md5(b"an upload").hexdigest()
    store.kept.add(
        [
            NewKept(
                way="upload",
                md5=md5,
                sha1=hashlib.sha1(b"an upload").hexdigest(),
                sha256=hashlib.sha256(b"an upload").hexdigest(),
                size=9,
                content_id="c-9",
                request_id="req-9",
            )
        ],
        # checked "now" by the clock the command reads (its retention counts from it)
        at=datetime.now(UTC),
        seq=store.banks.change_seq(),
    )
    store.banks.add_entries("known", [BankEntry(algorithm=Algorithm.MD5, value=md5)])
    runner = CliRunner()
    first = runner.invoke(app, ["retro-match", "--json", "--no-keep-evidence"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["matched"] == 1
    (case,) = store.cases.list()
    assert case.evidence_id is None
    again = runner.invoke(app, ["retro-match", "--json", "--no-keep-evidence"])
    assert json.loads(again.stdout)["matched"] == 0
    assert len(store.cases.list()) == 1
    assert RETRO_MATCH in intervals(Settings(keep_signals=True))
    assert RETRO_MATCH not in intervals(Settings(keep_signals=False))
