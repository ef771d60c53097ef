"""Matching: the indexes return exactly the oracle's set; allow banks suppress; dihedral."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from hashguard.domain import Algorithm, Bank, BankEntry, BankKind
from hashguard.domain.signals import FileSignals, PdqHash
from hashguard.matching.matcher import Matcher
from hashguard.matching.pdq import PdqIndex

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def bank(
    bank_id: int,
    name: str,
    *,
    kind: BankKind = BankKind.KNOWN,
    threshold: int = 31,
    enabled: bool = True,
) -> Bank:
    return Bank(
        id=bank_id,
        name=name,
        kind=kind,
        enabled=enabled,
        pdq_threshold=threshold,
        source=None,
        licence=None,
        version=None,
        created_at=NOW,
        imported_at=None,
    )


def flip(value: str, bits: int, rng: random.Random) -> str:
    number = int(value, 16)
    for position in rng.sample(range(256), bits):
        number ^= 1 << position
    return f"{number:064x}"


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@pytest.mark.parametrize("seed", range(5))
def test_pdq_index_returns_exactly_the_brute_force_set(seed: int) -> None:
    rng = random.Random(seed)
    entries = [(f"{rng.getrandbits(256):064x}", rng.choice([0, 10, 31, 40])) for _ in range(2000)]
    planted = [flip(entries[rng.randrange(2000)][0], rng.randrange(0, 45), rng) for _ in range(50)]
    queries = planted + [f"{rng.getrandbits(256):064x}" for _ in range(20)]
    index = PdqIndex()
    for ref, (value, threshold) in enumerate(entries):
        index.add(value, threshold=threshold, ref=ref)
    for query in queries:
        oracle = {
            (ref, distance(query, value))
            for ref, (value, threshold) in enumerate(entries)
            if distance(query, value) <= threshold
        }
        assert set(index.search(query)) == oracle


def signals(md5: str = "0" * 32, pdq: tuple[PdqHash, ...] = ()) -> FileSignals:
    return FileSignals(size=1, md5=md5, sha1="1" * 40, sha256="2" * 64, pdq=pdq)


def test_matches_carry_bank_entry_and_distance_and_skip_disabled_banks() -> None:
    rng = random.Random(1)
    known_pdq = f"{rng.getrandbits(256):064x}"
    banks = [bank(1, "ngo"), bank(2, "off", enabled=False), bank(3, "strict", threshold=5)]
    entries = {
        1: [
            BankEntry(algorithm=Algorithm.PDQ, value=known_pdq, entry_id="n1", category="A1"),
            BankEntry(algorithm=Algorithm.MD5, value="a" * 32, entry_id="n2"),
        ],
        2: [BankEntry(algorithm=Algorithm.MD5, value="a" * 32)],
        3: [BankEntry(algorithm=Algorithm.PDQ, value=known_pdq, entry_id="s1")],
    }
    matcher = Matcher.build(banks, lambda bank_id: entries[bank_id])
    near = flip(known_pdq, 12, rng)
    found = matcher.match(signals("a" * 32, (PdqHash(value=near, quality=90),)))
    assert [(m.bank, m.algorithm, m.distance, m.entry_id) for m in found] == [
        ("ngo", Algorithm.MD5, 0, "n2"),
        ("ngo", Algorithm.PDQ, 12, "n1"),
    ]
    assert found[1].category == "A1"
    assert all(m.effective for m in found)
    low = matcher.match(signals(pdq=(PdqHash(value=known_pdq, quality=40),)))
    assert low == ()


def test_allow_banks_suppress_matches_of_the_same_content() -> None:
    rng = random.Random(2)
    stock = f"{rng.getrandbits(256):064x}"
    banks = [bank(1, "national"), bank(2, "stock-photos", kind=BankKind.ALLOW, threshold=10)]
    entries = {
        1: [
            BankEntry(algorithm=Algorithm.PDQ, value=stock),
            BankEntry(algorithm=Algorithm.MD5, value="b" * 32),
        ],
        2: [
            BankEntry(algorithm=Algorithm.PDQ, value=stock),
            BankEntry(algorithm=Algorithm.MD5, value="c" * 32),
        ],
    }
    matcher = Matcher.build(banks, lambda bank_id: entries[bank_id])
    near = (PdqHash(value=flip(stock, 4, rng), quality=100),)
    suppressed = matcher.match(signals(pdq=near))
    assert not any(m.effective for m in suppressed)
    assert {m.suppressed_by for m in suppressed if m.bank_kind is BankKind.KNOWN} == {
        "stock-photos"
    }
    # The exact bytes are on the known list: a PDQ-similar allow entry does not excuse them.
    exact_known = matcher.match(signals("b" * 32, near))
    assert [m.algorithm for m in exact_known if m.effective] == [Algorithm.MD5]
    # The exact bytes are on the allow list: every match of the file is suppressed.
    exact_allowed = matcher.match(signals("c" * 32, near))
    assert not any(m.effective for m in exact_allowed)
    # Beyond the allow bank's own threshold, nothing is suppressed.
    far = (PdqHash(value=flip(stock, 20, rng), quality=100),)
    assert [m.bank for m in matcher.match(signals(pdq=far)) if m.effective] == ["national"]


def test_dihedral_variants_find_rotated_copies_and_name_the_transform() -> None:
    rng = random.Random(3)
    original = f"{rng.getrandbits(256):064x}"
    matcher = Matcher.build(
        [bank(1, "b")], lambda _: [BankEntry(algorithm=Algorithm.PDQ, value=original)]
    )
    variants = tuple(f"{rng.getrandbits(256):064x}" for _ in range(7))
    rotated = (*variants[:2], flip(original, 3, rng), *variants[3:])
    (match,) = matcher.match(
        signals(pdq=(PdqHash(value=variants[0], quality=100, dihedral=rotated),))
    )
    assert (match.distance, match.transform) == (3, "rotate270")
