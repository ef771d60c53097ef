"""The Matcher over a real store: matches, suppression, dihedral, live updates, snapshots."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hashguard.domain import Algorithm, BankEntry, BankKind
from hashguard.domain.signals import FileSignals, PdqHash, PdqMode
from hashguard.matching import snapshot
from hashguard.matching.matcher import Matcher, load_or_build
from hashguard.store import Store, open_store

rng = random.Random(11)


def random_pdq() -> str:
    return f"{rng.getrandbits(256):064x}"


def flip(value: str, bits: int) -> str:
    number = int(value, 16)
    for position in rng.sample(range(256), bits):
        number ^= 1 << position
    return f"{number:064x}"


def pdq(value: str, **kw: int) -> BankEntry:
    return BankEntry(algorithm=Algorithm.PDQ, value=value, **kw)  # type: ignore[arg-type]


def md5(value: str, **kw: str) -> BankEntry:
    return BankEntry(algorithm=Algorithm.MD5, value=value, **kw)  # type: ignore[arg-type]


def signals(md5_value: str = "0" * 32, frames: tuple[PdqHash, ...] = ()) -> FileSignals:
    return FileSignals(size=1, md5=md5_value, sha1="1" * 40, sha256="2" * 64, pdq=frames)


def load(store: Store, name: str, entries: list[BankEntry], **kw: object) -> None:
    if store.banks.find(name) is None:
        store.banks.create(name, **kw)  # type: ignore[arg-type]
    store.banks.replace_entries(name, entries, version=None, filename="test", rows=len(entries))


def test_matches_name_bank_entry_and_distance(store: Store) -> None:
    known = random_pdq()
    load(store, "ngo", [pdq(known, entry_id="n1", category="A1"), md5("a" * 32, entry_id="n2")])
    load(store, "off", [md5("a" * 32)], enabled=False)
    load(store, "strict", [pdq(known, entry_id="s1")], pdq_threshold=5)
    matcher = Matcher.build(store.banks)
    near = flip(known, 12)
    found = matcher.match(
        signals("a" * 32, (PdqHash(value=near, quality=90, mode=PdqMode.REFERENCE),))
    )
    assert [(m.bank, m.algorithm, m.distance, m.entry_id, m.category) for m in found] == [
        ("ngo", Algorithm.MD5, 0, "n2", None),
        ("ngo", Algorithm.PDQ, 12, "n1", "A1"),
    ]
    assert all(m.effective for m in found)
    assert (
        matcher.match(signals(frames=(PdqHash(value=known, quality=40, mode=PdqMode.REFERENCE),)))
        == ()
    )
    assert [b.name for b in matcher.banks] == ["ngo", "strict"]


def test_allow_banks_suppress_matches_of_the_same_content(store: Store) -> None:
    stock = random_pdq()
    load(store, "national", [pdq(stock), md5("b" * 32)])
    load(store, "stock-photos", [pdq(stock), md5("c" * 32)], kind=BankKind.ALLOW, pdq_threshold=10)
    matcher = Matcher.build(store.banks)
    close = (PdqHash(value=flip(stock, 4), quality=100, mode=PdqMode.REFERENCE),)
    suppressed = matcher.match(signals(frames=close))
    assert not any(m.effective for m in suppressed)
    assert {m.suppressed_by for m in suppressed if m.bank_kind is BankKind.KNOWN} == {
        "stock-photos"
    }
    # The exact bytes are on the known list: looking like an allowed image is no excuse.
    assert [m.algorithm for m in matcher.match(signals("b" * 32, close)) if m.effective] == [
        Algorithm.MD5
    ]
    # The exact bytes are on the allow list: every match of the file is suppressed.
    assert not any(m.effective for m in matcher.match(signals("c" * 32, close)))
    # Beyond the allow bank's own threshold nothing is suppressed.
    far = (PdqHash(value=flip(stock, 20), quality=100, mode=PdqMode.REFERENCE),)
    assert [m.bank for m in matcher.match(signals(frames=far)) if m.effective] == ["national"]


def test_dihedral_variants_find_rotated_copies(store: Store) -> None:
    original = random_pdq()
    load(store, "b", [pdq(original)])
    matcher = Matcher.build(store.banks)
    variants = [random_pdq() for _ in range(7)]
    variants[2] = flip(original, 3)  # the file, turned by 270 degrees, is the listed image
    frame = PdqHash(
        value=random_pdq(), quality=100, dihedral=tuple(variants), mode=PdqMode.REFERENCE
    )
    (match,) = matcher.match(signals(frames=(frame,)))
    assert (match.distance, match.transform) == (3, "rotate270")


def test_bank_changes_reach_a_live_matcher_without_a_rebuild(store: Store) -> None:
    first, second = random_pdq(), random_pdq()
    load(store, "list", [pdq(first, entry_id="v1")])
    matcher = Matcher.build(store.banks)
    look_first = signals(frames=(PdqHash(value=first, quality=100, mode=PdqMode.REFERENCE),))
    look_second = signals(
        frames=(PdqHash(value=flip(second, 20), quality=100, mode=PdqMode.REFERENCE),)
    )
    assert len(matcher.match(look_first)) == 1
    load(store, "list", [pdq(second, entry_id="v2")])  # new version: first removed
    load(store, "late", [md5("d" * 32)])  # a bank created after the matcher
    assert matcher.refresh() == 3  # one removed, two added
    assert matcher.match(look_first) == ()
    assert [m.entry_id for m in matcher.match(look_second)] == ["v2"]
    assert [m.bank for m in matcher.match(signals("d" * 32))] == ["late"]
    store.banks.configure("list", pdq_threshold=10)  # settings apply at query time
    matcher.refresh()
    assert matcher.match(look_second) == ()
    load(store, "list", [pdq(first, entry_id="v1"), pdq(second, entry_id="v2")])  # restored
    matcher.refresh()
    assert [m.entry_id for m in matcher.match(look_first)] == ["v1"]
    store.banks.delete("late")
    matcher.refresh()
    assert matcher.match(signals("d" * 32)) == ()


def test_snapshots_load_catch_up_and_belong_to_one_store(store: Store, tmp_path: Path) -> None:
    value = random_pdq()
    load(store, "list", [pdq(value, entry_id="e1")])
    path = tmp_path / "matcher.snapshot"
    built = load_or_build(store.banks, path)
    assert path.is_file()
    look = signals(frames=(PdqHash(value=value, quality=100, mode=PdqMode.REFERENCE),))
    assert [m.entry_id for m in Matcher.load(path, store.banks).match(look)] == ["e1"]
    load(store, "list", [])  # removed after the snapshot was saved
    assert Matcher.load(path, store.banks).match(look) == ()
    assert built.refresh() == 1
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 1
    path.write_bytes(damaged)
    with pytest.raises(snapshot.SnapshotError):
        Matcher.load(path, store.banks)
    assert load_or_build(store.banks, path).match(look) == ()  # rebuilt and saved again
    Matcher.load(path, store.banks)


def test_a_snapshot_of_another_store_is_refused(tmp_path: Path, store: Store) -> None:
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    load(other, "other", [pdq(random_pdq())])
    path = tmp_path / "m.snapshot"
    Matcher.build(other.banks).save(path)
    other.close()
    with pytest.raises(snapshot.SnapshotError, match="another store"):
        Matcher.load(path, store.banks)
