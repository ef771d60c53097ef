"""The PDQ and exact-hash indexes against brute-force oracles; updates; safe snapshots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from hashguard.domain.signals import FAST_CONFIRM_MARGIN, Algorithm
from hashguard.matching import snapshot
from hashguard.matching.exact import CODES, ExactIndex, digests
from hashguard.matching.pdq import FLAT_BELOW, PdqIndex, pack, unpack

rng = np.random.default_rng(2026)


def random_hashes(count: int) -> np.ndarray:
    return rng.integers(0, 2**64 - 1, size=(count, 4), dtype=np.uint64, endpoint=True)


def clustered_hashes(count: int, families: int) -> np.ndarray:
    """Near-duplicate families, as real lists have: each member a few bits from its root."""
    roots = random_hashes(families)
    members = roots[rng.integers(0, families, count)].copy()
    flips = rng.integers(0, 2, size=members.shape, dtype=np.uint64) & rng.integers(
        0, 2, size=members.shape, dtype=np.uint64
    )
    bits = rng.integers(0, 64, size=members.shape, dtype=np.uint64)
    return members ^ (flips << bits)


def near(hashes: np.ndarray, count: int, max_bits: int) -> list[np.ndarray]:
    queries = []
    for row in rng.integers(0, len(hashes), count):
        raw = hashes[row].copy().view(np.uint8).copy()
        for bit in rng.choice(256, size=int(rng.integers(0, max_bits + 1)), replace=False):
            raw[bit // 8] ^= 1 << (bit % 8)
        queries.append(raw.view(np.uint64))
    return queries + list(random_hashes(count // 4))


def oracle(hashes, payloads, banks, alive, query, thresholds) -> set[tuple[int, int]]:
    distances = np.bitwise_count(hashes ^ query).sum(axis=1)
    keep = (distances <= thresholds[banks]) & alive
    return set(zip(payloads[keep].tolist(), distances[keep].tolist(), strict=True))


def found(index: PdqIndex, query, thresholds) -> set[tuple[int, int]]:
    hits = index.search(query, thresholds)
    pairs = list(zip(hits.payloads.tolist(), hits.distances.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)), "an entry was reported twice"
    return set(pairs)


@pytest.mark.parametrize(
    ("count", "layout"),
    [(5_000, "random"), (FLAT_BELOW + 20_000, "random"), (FLAT_BELOW + 20_000, "clustered")],
)
def test_pdq_index_returns_exactly_the_oracle_set(count: int, layout: str) -> None:
    hashes = random_hashes(count) if layout == "random" else clustered_hashes(count, count // 50)
    payloads = rng.permutation(count * 3)[:count].astype(np.int64)
    banks = rng.integers(0, 3, count).astype(np.uint16)
    index = PdqIndex(hashes, payloads, banks)
    assert (count >= FLAT_BELOW) == bool(index.layout.widths)
    thresholds = np.array([31, 12, -1], dtype=np.int16)  # bank 2 is switched off
    alive = np.ones(count, dtype=bool)
    for query in near(hashes, 120, 40):
        assert found(index, query, thresholds) == oracle(
            hashes, payloads, banks, alive, query, thresholds
        )


def test_pdq_updates_take_effect_at_once_and_survive_compaction() -> None:
    count = FLAT_BELOW + 5_000
    hashes, payloads = random_hashes(count), np.arange(count, dtype=np.int64) * 2
    banks = np.zeros(count, np.uint16)
    index = PdqIndex(hashes, payloads, banks)
    extra = random_hashes(1_000)
    index.add(extra, np.arange(1_000, dtype=np.int64) * 2 + 1, np.zeros(1_000, np.uint16))
    gone = payloads[:500]
    assert index.remove(np.concatenate([gone, [1, 10**12]])) == 501  # one delta entry too
    everything = np.concatenate([hashes, extra])
    every_payload = np.concatenate([payloads, np.arange(1_000, dtype=np.int64) * 2 + 1])
    alive = ~np.isin(every_payload, np.concatenate([gone, [1]]))
    every_bank = np.zeros(len(everything), np.uint16)
    thresholds = np.array([31], dtype=np.int16)
    queries = near(everything, 80, 35)
    for candidate in (index, index.compacted()):
        assert len(candidate) == int(alive.sum())
        for query in queries:
            want = oracle(everything, every_payload, every_bank, alive, query, thresholds)
            assert found(candidate, query, thresholds) == want
    assert index.compacted().pending == 0


@pytest.mark.parametrize("limit", [FAST_CONFIRM_MARGIN + 31, 60])
def test_pdq_threshold_beyond_the_layout_is_still_exact(limit: int) -> None:
    """A fast hash's confirmation margin (probed at a wider radius per chunk) and a
    threshold too wide to probe (a scan of every row) both return the oracle set."""
    count = FLAT_BELOW + 1_000
    hashes, payloads = clustered_hashes(count, count // 50), np.arange(count, dtype=np.int64)
    banks = np.zeros(count, np.uint16)
    index = PdqIndex(hashes, payloads, banks, threshold=31)
    wide = np.array([limit, 31], dtype=np.int16)
    alive = np.ones(count, dtype=bool)
    for query in near(hashes, 40, limit):
        assert found(index, query, wide) == oracle(hashes, payloads, banks, alive, query, wide)


def test_pack_round_trips() -> None:
    values = [f"{int(v):064x}" for v in rng.integers(0, 2**62, 10)]
    assert [unpack(row) for row in pack(values)] == values


def test_exact_index_lookups_updates_and_algorithms() -> None:
    values = [hashlib.md5(bytes([i, j])).hexdigest() for i in range(50) for j in range(40)]
    sha = hashlib.sha256(b"x").hexdigest()
    codes = np.array([CODES[Algorithm.MD5]] * len(values) + [CODES[Algorithm.SHA256]], np.uint8)
    index = ExactIndex(
        codes,
        digests([*values, sha]),
        np.arange(len(values) + 1, dtype=np.int64),
        np.ones(len(values) + 1, np.uint16),
    )
    (hit,) = index.lookup([(Algorithm.MD5, values[7]), (Algorithm.SHA1, values[7] + "0" * 8)])
    assert (hit.payload, hit.bank, hit.algorithm) == (7, 1, Algorithm.MD5)
    assert index.lookup([(Algorithm.SHA256, sha)])[0].payload == len(values)
    assert index.lookup([(Algorithm.MD5, sha[:32])]) == []
    assert index.remove(np.array([7], np.int64)) == 1
    assert index.lookup([(Algorithm.MD5, values[7])]) == []
    index.add(
        np.array([CODES[Algorithm.MD5]], np.uint8),
        digests([values[7]]),
        np.array([99], np.int64),
        np.array([4], np.uint16),
    )
    assert [(h.payload, h.bank) for h in index.lookup([(Algorithm.MD5, values[7])])] == [(99, 4)]
    compact = index.compacted()
    assert [(h.payload, h.bank) for h in compact.lookup([(Algorithm.MD5, values[7])])] == [(99, 4)]
    assert len(compact) == len(values) + 1


def test_snapshots_round_trip_and_refuse_tampering(tmp_path: Path) -> None:
    count = FLAT_BELOW + 2_000
    hashes, payloads = random_hashes(count), np.arange(count, dtype=np.int64)
    banks = np.zeros(count, np.uint16)
    index = PdqIndex(hashes, payloads, banks)
    path = tmp_path / "index.snapshot"
    snapshot.write(path, index.arrays(), {"threshold": 31})
    arrays, meta = snapshot.read(path)
    loaded = PdqIndex.from_arrays(arrays, threshold=meta["threshold"])
    thresholds = np.array([31], np.int16)
    for query in near(hashes, 30, 35):
        assert found(loaded, query, thresholds) == found(index, query, thresholds)
    original = path.read_bytes()
    for position in (3, 40, len(original) // 2, len(original) - 1):
        damaged = bytearray(original)
        damaged[position] ^= 0x01
        path.write_bytes(damaged)
        with pytest.raises(snapshot.SnapshotError):
            snapshot.read(path)
    path.write_bytes(original[: len(original) // 3])
    with pytest.raises(snapshot.SnapshotError):
        snapshot.read(path)
    # A structurally wrong snapshot with a valid digest is refused by the index itself.
    bad = dict(index.arrays())
    bad["starts"] = bad["starts"].copy()
    bad["starts"][5] = 10**9
    snapshot.write(path, bad, {"threshold": 31})
    arrays, _ = snapshot.read(path)
    with pytest.raises(ValueError, match="offset table"):
        PdqIndex.from_arrays(arrays, threshold=31)


def test_snapshots_never_unpickle(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        snapshot.write(tmp_path / "x", {"objects": np.array([object()])}, {})


@pytest.mark.parametrize("count", [1_000, 200_000])
def test_search_many_equals_one_query_at_a_time(count: int) -> None:
    """The batched search (retro-matching) finds exactly what ``search`` finds, each
    query with its own limit."""
    hashes = random_hashes(count)
    index = PdqIndex(
        hashes, np.arange(count, dtype=np.int64), np.zeros(count, np.uint16), threshold=31
    )
    queries = np.concatenate([q[None, :] for q in near(hashes, 300, 40)])
    limits = np.asarray([31 if i % 2 else 12 for i in range(len(queries))], dtype=np.int16)
    which, payloads, distances = index.search_many(queries, limits, batch=64)
    got = sorted(zip(which.tolist(), payloads.tolist(), distances.tolist(), strict=True))
    expected = []
    for position, query in enumerate(queries):
        hits = index.search(query, limits[position : position + 1])
        expected += [
            (position, p, d)
            for p, d in zip(hits.payloads.tolist(), hits.distances.tolist(), strict=True)
        ]
    assert got == sorted(expected)
    assert got  # the near copies within each limit are found


@pytest.mark.parametrize("limit", [31, 23, 40])
def test_flips_spread_evenly_over_the_chunks_are_found_at_the_limit(limit: int) -> None:
    """The hardest queries for the (refined) pigeonhole: exactly ``limit`` bits flipped,
    as evenly as the chunks allow, the chunks with fewer flips placed at random. Each
    is found by ``search`` and by ``search_many``; one bit more is not."""
    count = 100_000
    hashes = random_hashes(count)
    index = PdqIndex(
        hashes, np.arange(count, dtype=np.int64), np.zeros(count, np.uint16), threshold=31
    )
    widths, offsets = index.layout.widths, index.layout.offsets
    queries, rows = [], rng.integers(0, count, 60)
    for number, row in enumerate(rows):
        bits = limit + (number % 2)  # odd queries: one bit past the limit
        base, extra = divmod(bits, len(widths))
        flips = [base + 1] * extra + [base] * (len(widths) - extra)
        rng.shuffle(flips)
        value = int.from_bytes(hashes[row].astype("<u8").tobytes(), "little")
        for offset, width, many in zip(offsets, widths, flips, strict=True):
            for bit in rng.choice(width, size=many, replace=False):
                value ^= 1 << (offset + int(bit))
        queries.append(np.frombuffer(value.to_bytes(32, "little"), dtype="<u8").astype(np.uint64))
    limits = np.full(len(queries), limit, dtype=np.int16)
    which, payloads, distances = index.search_many(np.stack(queries), limits)
    pairs = zip(payloads.tolist(), distances.tolist(), strict=True)
    found = dict(zip(which.tolist(), pairs, strict=True))
    for number, query in enumerate(queries):
        one = index.search(query, limits[:1])
        if number % 2:
            assert number not in found
            assert int(rows[number]) not in one.payloads.tolist()
        else:
            assert found[number] == (int(rows[number]), limit)
            assert one.payloads.tolist() == [int(rows[number])]
