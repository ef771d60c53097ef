"""A ``fast`` PDQ hash near a list entry is confirmed with the reference hash, which decides.

The default mode's hash of a large JPEG differs from the reference hash by a few bits.
Lists are built from reference hashes, so a file the reference finds at distance 31 is
at 31 + drift from the fast hash: without confirmation the default would miss it, and
would match an entry only the drift brings within 31. Each way in (the matcher, the
scanner behind ``hashguard scan``, ``/v1/scan``) decides such files as the reference does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
from pathlib import Path

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.banks import BankEntry
from hashguard.domain.signals import (
    FAST_CONFIRM_MARGIN,
    Algorithm,
    FileSignals,
    PdqHash,
    PdqMode,
)
from hashguard.domain.tokens import Scope
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.matching.matcher import Matcher
from hashguard.scan.confirm import screened
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from tests.api_support import bearer, make_token
from tests.cli import hashguard, json_lines
from tests.server import running_server

OPTIONS = HashOptions(max_pixels=50_000_000)
THRESHOLD = 31
#: a textured 1024x768 JPEG: the default mode takes its fast path (drift 4 bits)
IMAGE = encode(generate(Kind.PHOTO, 11, 1024, 768))


def _flip(value: str, count: int, *, keep_from: str, seed: int) -> str:
    """``value`` with ``count`` bits flipped, chosen among the bits where it agrees with
    ``keep_from`` (so the distance to ``keep_from`` grows by ``count`` as well)."""
    a, b = int(value, 16), int(keep_from, 16)
    agree = [bit for bit in range(256) if not ((a ^ b) >> bit) & 1]
    for bit in random.Random(seed).sample(agree, count):
        a ^= 1 << bit
    return f"{a:064x}"


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@pytest.fixture(scope="module")
def hashes() -> tuple[FileSignals, PdqHash, PdqHash]:
    signals = hash_data(IMAGE, OPTIONS).signals
    again = hash_data(IMAGE, HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE))
    assert signals is not None
    assert again.signals is not None
    (fast,), (reference,) = signals.pdq, again.signals.pdq
    assert fast.mode is PdqMode.FAST
    assert 0 < _distance(fast.value, reference.value) <= FAST_CONFIRM_MARGIN
    return signals, fast, reference


def _entries(fast: PdqHash, reference: PdqHash) -> dict[str, str]:
    """``listed``: 31 bits from the reference hash (a match the fast hash alone misses);
    ``drifted``: 31 bits from the fast hash only (no match for the reference)."""
    listed = _flip(reference.value, THRESHOLD, keep_from=fast.value, seed=1)
    drifted = _flip(fast.value, THRESHOLD, keep_from=reference.value, seed=2)
    assert _distance(listed, fast.value) > THRESHOLD >= _distance(listed, reference.value)
    assert _distance(drifted, reference.value) > THRESHOLD >= _distance(drifted, fast.value)
    return {"listed": listed, "drifted": drifted}


def _banks(store: Store, entries: dict[str, str]) -> None:
    for name, value in entries.items():
        store.banks.create(name)
        store.banks.add_entries(
            name, [BankEntry(algorithm=Algorithm.PDQ, value=value, entry_id=f"{name}-1")]
        )


def test_screen_asks_for_confirmation_only_for_fast_hashes_near_an_entry(
    store: Store, hashes: tuple[FileSignals, PdqHash, PdqHash]
) -> None:
    signals, fast, reference = hashes
    _banks(
        store,
        {
            "far": _flip(
                fast.value, THRESHOLD + FAST_CONFIRM_MARGIN + 1, keep_from=fast.value, seed=3
            )
        },
    )
    matcher = Matcher.build(store.banks)
    assert matcher.screen(signals).confirm is False, "beyond the margin: nothing to confirm"
    _banks(store, _entries(fast, reference))
    matcher.refresh()
    near = matcher.screen(signals)
    assert near.confirm is True
    assert [m.bank for m in near.matches] == ["drifted"], "what the fast hash alone matches"
    decided = matcher.screen(dataclasses.replace(signals, pdq=(reference,)))
    assert decided.confirm is False, "a reference hash is never confirmed again"
    assert [(m.bank, m.distance) for m in decided.matches] == [("listed", THRESHOLD)]


def test_the_reference_decides_and_its_hashes_are_what_the_item_carries(
    store: Store, hashes: tuple[FileSignals, PdqHash, PdqHash], tmp_path: Path
) -> None:
    _, fast, reference = hashes
    _banks(store, _entries(fast, reference))
    matcher = Matcher.build(store.banks)
    path = tmp_path / "upload.jpg"
    path.write_bytes(IMAGE)
    with HashingPool(workers=1, options=OPTIONS, timeout=30, memory_mb=1024) as pool:
        output = pool.submit(str(path)).result()
        for content in ({"data": IMAGE}, {"path": str(path)}):
            confirmed, matches = screened(matcher, output, pool=pool, **content)  # type: ignore[arg-type]
            assert [(m.bank, m.distance) for m in matches] == [("listed", THRESHOLD)]
            assert confirmed.signals is not None
            assert confirmed.signals.pdq == (reference,)
            assert not confirmed.signals.needs_reference
        # the file changed since it was hashed: the fast hash's matches stand (logged)
        path.write_bytes(encode(generate(Kind.PHOTO, 12, 1024, 768)))
        kept, matches = screened(matcher, output, pool=pool, path=str(path))
        assert kept is output
        assert [m.bank for m in matches] == ["drifted"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_hashguard_scan_and_the_upload_api_decide_as_the_reference(
    api_settings: Settings,
    hashes: tuple[FileSignals, PdqHash, PdqHash],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, fast, reference = hashes
    with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
        _banks(store, _entries(fast, reference))
    auth = bearer(make_token(api_settings, Scope.SCAN))
    with running_server(api_settings) as base:
        answer = httpx.post(base + "/v1/scan", content=IMAGE, headers=auth, timeout=60).json()
    assert answer["outcome"] == "matched"
    assert [(m["bank"], m["distance"]) for m in answer["matches"]] == [("listed", THRESHOLD)]

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(IMAGE)
    monkeypatch.setenv("HASHGUARD_HOME", str(api_settings.home))
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", api_settings.resolved_database_url)
    out = hashguard("scan", str(folder), "--json", check=None).stdout
    (line,), _ = json_lines(out)
    assert [(m["bank"], m["distance"]) for m in line["matches"]] == [("listed", THRESHOLD)]
    assert [(p["hash"], p["mode"]) for p in line["pdq"]] == [(reference.value, "reference")]
    assert json.dumps(line).count(fast.value) == 0, "the fast hash is not what the item carries"
