"""Retro-matching with the kept-signal index partitioned across Ray actors: the same
kept signals found, the same cases opened, as the single-process run.

One local Ray cluster (2 CPUs, loopback, no dashboard) for the module; the store is a
SQLite file the actors read. Kept signals: random PDQ hashes plus the real PDQ hashes
of benign generated images; the banks gain entries near some of both.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hashguard.cli.app import app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.banks import BankEntry
from hashguard.domain.kept import KeptPdq, NewKept
from hashguard.domain.signals import Algorithm
from hashguard.domain.video import VpdqFrame, vpdq_digest
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.scan.retro import candidates
from hashguard.scan.retroray import partitioned, store_partitions
from hashguard.store import Store, open_store

pytestmark = pytest.mark.ray

KEPT = 3_000
#: checked "now" by the clock the command reads (its retention counts from it)
CHECKED = datetime.now(UTC)
rng = np.random.default_rng(18)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def _hex(bits: int) -> str:
    return bytes(rng.integers(0, 256, bits // 8, dtype=np.uint8)).hex()


def _flip(value: str, bits: int) -> str:
    number = int(value, 16)
    for bit in rng.choice(256, size=bits, replace=False):
        number ^= 1 << int(bit)
    return f"{number:064x}"


def _kept(pdq: str, number: int) -> NewKept:
    return NewKept(
        way="upload",
        md5=_hex(128),
        sha1=_hex(160),
        sha256=_hex(256),
        size=100 + number,
        pdq=(KeptPdq(value=pdq, quality=90),),
        content_id=f"c-{number}",
        request_id=f"r-{number}",
    )


@pytest.fixture(scope="module")
def kept_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose banks gained entries after its kept signals were checked."""
    path = tmp_path_factory.mktemp("retro") / "hashguard.db"
    store = open_store(f"sqlite:///{path}")
    try:
        images = [
            encode(generate(kind, seed, 320, 240))
            for kind, seed in [(Kind.PHOTO, 1801), (Kind.PHOTO, 1802), (Kind.TEXTURE, 1803)]
        ]
        real = []
        for data in images:
            output = hash_data(data, HashOptions(max_pixels=50_000_000))
            assert output.signals is not None
            real.append(output.signals.pdq[0].value)
        randoms = [_hex(256) for _ in range(KEPT)]
        store.banks.create("known")
        store.kept.add(
            [_kept(value, n) for n, value in enumerate([*randoms, *real])],
            at=CHECKED,
            seq=store.banks.change_seq(),
        )
        new = [_flip(value, 5 + n % 20) for n, value in enumerate(randoms[:40] + real[:2])]
        new += [_hex(256) for _ in range(200)]  # far from every kept signal
        store.banks.add_entries(
            "known", [BankEntry(algorithm=Algorithm.PDQ, value=value) for value in new]
        )
    finally:
        store.close()
    return path


def _kept_ids(store: Store) -> dict[int, str]:
    return {k.id: k.pdq[0].value for k in store.kept.get(range(1, KEPT + 10))}


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("partitions", [2, 3])
def test_partitioned_candidates_equal_the_single_process_ones(
    kept_db: Path, partitions: int
) -> None:
    url = f"sqlite:///{kept_db}"
    store = open_store(url)
    try:
        banks = {bank.id: bank for bank in store.banks.list()}
        single = candidates(store, 0, banks)
        with partitioned(partitions, store_partitions(url, partitions)) as search:
            assert len(search.stats) == partitions
            assert sum(s.rows for s in search.stats) == KEPT + 3
            assert len({s.pid for s in search.stats}) == partitions  # one process each
            split = candidates(store, 0, banks, search)
        assert split == single
        ids, new_entries, indexed, _seq = single
        assert (new_entries, indexed) == (242, KEPT + 3)
        # 40 random kept signals and the two real images' hashes, each found once
        kept = _kept_ids(store)
        assert len(ids) == 42
        assert {KEPT + 1, KEPT + 2} <= set(ids)
        assert all(kept[i] for i in ids)
    finally:
        store.close()


@pytest.mark.usefixtures("ray_cluster", "home")
def test_cli_partitions_open_the_cases_the_single_process_run_opens(
    kept_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hashguard retro-match --partitions 2`` and ``retro-match`` on copies of one
    store: the same summary and the same cases; a second run adds nothing."""
    monkeypatch.setenv("HASHGUARD_KEEP_SIGNALS", "true")
    monkeypatch.setenv("HASHGUARD_KEEP_SIGNALS_DAYS", "3650")
    outcomes = {}
    for partitions in (1, 2):
        copy = tmp_path / f"p{partitions}.db"
        shutil.copy(kept_db, copy)
        monkeypatch.setenv("HASHGUARD_DATABASE_URL", f"sqlite:///{copy}")
        args = ["retro-match", "--json", "--no-keep-evidence", "--partitions", str(partitions)]
        first = CliRunner().invoke(app, args)
        assert first.exit_code == 0, first.output
        again = CliRunner().invoke(app, args)
        assert again.exit_code == 0, again.output
        store = open_store(f"sqlite:///{copy}")
        try:
            cases = sorted(
                (c.content_key, c.state.value, c.decision.action.value, len(c.matches))
                for c in store.cases.list()
            )
            hashes = hashlib.sha256(json.dumps(cases).encode()).hexdigest()
        finally:
            store.close()
        summary = json.loads(first.stdout)
        assert summary.pop("partitions") == partitions
        assert json.loads(again.stdout)["matched"] == 0
        outcomes[partitions] = (summary, len(cases), hashes)
    assert outcomes[1] == outcomes[2]
    assert outcomes[1][0]["matched"] == 42
    assert outcomes[1][1] == 42


@pytest.mark.usefixtures("home")
def test_address_without_partitions_is_refused() -> None:
    result = CliRunner().invoke(app, ["retro-match", "--address", "auto"])
    assert result.exit_code == 2
    assert "--partitions" in result.stderr


@pytest.mark.usefixtures("ray_cluster")
def test_partitioned_candidates_find_kept_videos_by_new_vpdq_entries(tmp_path: Path) -> None:
    """Kept videos' frames are rows of each partition's index: a listed video (a vPDQ
    entry) finds the same kept videos partitioned as in one process, and no kept image."""
    url = f"sqlite:///{tmp_path / 'videos.db'}"
    store = open_store(url)
    try:
        videos = [[_hex(256) for _ in range(12)] for _ in range(6)]
        images = [_hex(256) for _ in range(20)]
        store.banks.create("videos")
        store.kept.add(
            [
                replace(
                    _kept(_hex(256), n),
                    pdq=(),
                    vpdq=tuple(
                        VpdqFrame(value=v, quality=90, frame=f, timestamp=float(f))
                        for f, v in enumerate(frames)
                    ),
                )
                for n, frames in enumerate(videos)
            ]
            + [_kept(value, 10 + n) for n, value in enumerate(images)],
            at=CHECKED,
            seq=store.banks.change_seq(),
        )
        listed = [
            [_flip(v, 6) for v in videos[1]],
            [_flip(v, 4) for v in videos[4][:6]],
            # no kept video: a listed video matches videos only, not a kept image near
            # one of its frames
            [_flip(images[0], 3), *(_hex(256) for _ in range(11))],
        ]
        store.banks.add_entries(
            "videos",
            [
                BankEntry(
                    algorithm=Algorithm.VPDQ,
                    value=vpdq_digest(frames),
                    frames=frames,
                    entry_id=f"v-{n}",
                )
                for n, values in enumerate(listed)
                for frames in [
                    tuple(
                        VpdqFrame(value=v, quality=90, frame=f, timestamp=float(f))
                        for f, v in enumerate(values)
                    )
                ]
            ],
        )
        banks = {bank.id: bank for bank in store.banks.list()}
        single = candidates(store, 0, banks)
        with partitioned(2, store_partitions(url, 2)) as search:
            split = candidates(store, 0, banks, search)
        assert split == single
        ids, new_entries, indexed, _seq = single
        assert (new_entries, indexed) == (3, 6 * 12 + 20)
        assert ids == [2, 5]
    finally:
        store.close()
