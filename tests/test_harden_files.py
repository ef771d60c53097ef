"""Files that change under us (issue 19, items 2, 8 and 11): quarantine moves only the
matched bytes and restores through no symlink; a confined scan follows no symlink
swapped in after its walk, and evidence keeps only the bytes that were hashed; orphans
left by a killed process are counted and swept after a grace period. Benign generated
bytes and images only."""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hashguard.actions.dispatcher import Dispatcher
from hashguard.actions.outbox import plan_for_decision, quarantine_action
from hashguard.actions.quarantine import (
    MatchedFile,
    NothingMoved,
    QuarantineDeliverer,
    RestoreRefused,
    move_matched,
    open_matched,
    quarantine_name,
    restore,
)
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.actions import (
    ActionKind,
    QuarantineRecord,
    QuarantineState,
    WebhookEndpoint,
)
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankKind
from hashguard.domain.cases import CaseSource, SourceKind
from hashguard.domain.evidence import EvidenceEvent, EvidenceState, RetentionPolicy
from hashguard.domain.matches import Match
from hashguard.domain.policy import Action, Decision
from hashguard.domain.scans import FileResult, Outcome, ScanOptions
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.evidence import Vault, audited, count_orphans, run_retention
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_path
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.safefs import OutsideRoots, SymlinkInPath, open_nofollow, open_resolved
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.scan.sources import LocalFile
from hashguard.scan.walk import walk
from hashguard.store import Store
from tests.cli import hashguard

#: a fixed instant for the evidence clock (tests never depend on the day they run)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACT = Decision(action=Action.ACT, rule="act: exact md5", bank="known")
MATCHED = b"benign bytes standing in for matched content\n" * 40
BENIGN = b"a different benign file put in its place\n" * 40
ENDPOINT = WebhookEndpoint(name="ops", url="http://127.0.0.1:9/", secret="whsec_" + "A" * 44)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _result(path: Path, data: bytes) -> FileResult:
    """A matched file's result, with the SHA-256 of ``data`` as its content's."""
    return FileResult(
        path=str(path),
        outcome=Outcome.MATCHED,
        signals=FileSignals(
            size=len(data),
            md5=hashlib.md5(data).hexdigest(),
            sha1=hashlib.sha1(data).hexdigest(),
            sha256=_sha(data),
        ),
        matches=(
            Match(
                bank="known",
                bank_kind=BankKind.KNOWN,
                algorithm=Algorithm.MD5,
                distance=0,
                entry_id="e-1",
                category=None,
            ),
        ),
        decision=ACT,
    )


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _replace_with(path: Path, data: bytes) -> None:
    """Put a new file (a new inode) at ``path``, as an uploader replacing it would."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


# -- quarantine (item 2) ---------------------------------------------------------------


def _enqueue(store: Store, path: Path, data: bytes) -> int:
    (action,) = plan_for_decision(
        _result(path, data), endpoints=[], quarantine_local=True, key=f"scan:1:{path}"
    )
    return store.actions.enqueue(action)


def _dispatch(store: Store, qdir: Path) -> Dispatcher:
    return Dispatcher(
        store.actions,
        {ActionKind.QUARANTINE: QuarantineDeliverer(store.actions, qdir, {})},
        rng=random.Random(1),
    )


def _moving_record(action_id: int, checked: MatchedFile, dest: Path) -> QuarantineRecord:
    facts = checked.facts
    return QuarantineRecord(
        action_id=action_id,
        state=QuarantineState.MOVING,
        original_path=os.fsdecode(checked.real_path),
        original_path_raw=checked.real_path,
        quarantine_path=str(dest),
        sha256=facts.sha256,
        size=facts.size,
        mode=facts.mode,
        uid=facts.uid,
        gid=facts.gid,
        created_at=T0,
    )


def _quarantined_files(qdir: Path) -> list[str]:
    return sorted(os.listdir(qdir)) if qdir.exists() else []


def test_a_file_replaced_before_dispatch_is_a_dead_letter_and_left_alone(
    store: Store, tmp_path: Path
) -> None:
    original = _write(tmp_path / "uploads" / "a.png", MATCHED)
    action_id = _enqueue(store, original, MATCHED)
    assert store.actions.get(action_id).payload["sha256"] == _sha(MATCHED)
    _replace_with(original, BENIGN)
    qdir = tmp_path / "quarantine"
    report = _dispatch(store, qdir).run_once()
    assert action_id in report.dead
    assert "not the one that matched" in (store.actions.get(action_id).last_error or "")
    assert original.read_bytes() == BENIGN  # the benign file stays where it was
    assert _quarantined_files(qdir) == []
    assert store.actions.quarantine_record(action_id) is None


def test_a_file_written_to_in_place_before_dispatch_is_left_alone(
    store: Store, tmp_path: Path
) -> None:
    original = _write(tmp_path / "uploads" / "b.png", MATCHED)
    action_id = _enqueue(store, original, MATCHED)
    original.write_bytes(BENIGN)  # same inode, new bytes
    report = _dispatch(store, tmp_path / "quarantine").run_once()
    assert action_id in report.dead
    assert original.read_bytes() == BENIGN


def test_a_folder_swapped_for_a_symlink_before_dispatch_is_not_followed(
    store: Store, tmp_path: Path
) -> None:
    original = _write(tmp_path / "uploads" / "c.png", MATCHED)
    action_id = _enqueue(store, original, MATCHED)
    elsewhere = _write(tmp_path / "elsewhere" / "c.png", BENIGN)
    (tmp_path / "uploads").rename(tmp_path / "uploads-old")
    (tmp_path / "uploads").symlink_to(tmp_path / "elsewhere")
    qdir = tmp_path / "quarantine"
    report = _dispatch(store, qdir).run_once()
    assert action_id in report.dead
    assert elsewhere.read_bytes() == BENIGN
    assert _quarantined_files(qdir) == []


def test_a_symlink_at_the_path_is_not_followed(store: Store, tmp_path: Path) -> None:
    original = _write(tmp_path / "uploads" / "d.png", MATCHED)
    action_id = _enqueue(store, original, MATCHED)
    target = _write(tmp_path / "elsewhere" / "same-bytes.png", MATCHED)
    original.unlink()
    original.symlink_to(target)
    report = _dispatch(store, tmp_path / "quarantine").run_once()
    assert action_id in report.dead
    assert "symlink" in (store.actions.get(action_id).last_error or "")
    assert target.read_bytes() == MATCHED
    assert original.is_symlink()


def test_an_action_without_a_sha256_moves_nothing(store: Store, tmp_path: Path) -> None:
    """Actions enqueued by an older version carry only the path: a dead letter, since
    moving whatever is at the path now is the very fault."""
    original = _write(tmp_path / "uploads" / "e.png", MATCHED)
    old = quarantine_action(str(original), key="scan:1:old")
    old = replace(old, payload={k: v for k, v in old.payload.items() if k != "sha256"})
    action_id = store.actions.enqueue(old)
    report = _dispatch(store, tmp_path / "quarantine").run_once()
    assert action_id in report.dead
    assert "no SHA-256" in (store.actions.get(action_id).last_error or "")
    assert original.read_bytes() == MATCHED


def test_a_file_replaced_between_the_check_and_the_move_is_put_back(tmp_path: Path) -> None:
    original = _write(tmp_path / "uploads" / "f.png", MATCHED)
    qdir = tmp_path / "quarantine"
    checked = open_matched(os.fsencode(original), _sha(MATCHED))
    try:
        _replace_with(original, BENIGN)  # after the check, before the rename
        with pytest.raises(NothingMoved, match="replaced"):
            move_matched(checked, qdir, quarantine_name(1))
    finally:
        checked.close()
    assert original.read_bytes() == BENIGN
    assert _quarantined_files(qdir) == []


def test_a_file_written_to_during_the_move_is_put_back(tmp_path: Path) -> None:
    original = _write(tmp_path / "uploads" / "g.png", MATCHED)
    qdir = tmp_path / "quarantine"
    checked = open_matched(os.fsencode(original), _sha(MATCHED))
    try:
        with open(original, "ab") as handle:  # same inode, written after the check
            handle.write(b"more")
        os.utime(original, ns=(0, checked.info.st_mtime_ns + 10**9))
        with pytest.raises(NothingMoved, match="put back"):
            move_matched(checked, qdir, quarantine_name(2))
    finally:
        checked.close()
    assert original.read_bytes() == MATCHED + b"more"
    assert _quarantined_files(qdir) == []


def test_a_crash_after_the_copy_across_filesystems_is_finished(
    store: Store, tmp_path: Path
) -> None:
    """Killed after the copy was renamed into quarantine but before the original was
    unlinked: the next attempt unlinks the original only if it still holds the matched
    bytes, and a file replaced meanwhile is left alone."""
    qdir = tmp_path / "quarantine"
    for name, replaced in (("i.png", False), ("j.png", True)):
        original = _write(tmp_path / "uploads" / name, MATCHED)
        action_id = _enqueue(store, original, MATCHED)
        checked = open_matched(os.fsencode(original), _sha(MATCHED))
        try:
            store.actions.begin_quarantine(
                _moving_record(action_id, checked, qdir / quarantine_name(action_id))
            )
        finally:
            checked.close()
        _write(qdir / quarantine_name(action_id), MATCHED)  # the copy made before the crash
        if replaced:
            _replace_with(original, BENIGN)
        assert action_id in _dispatch(store, qdir).run_once().delivered
        if replaced:
            assert original.read_bytes() == BENIGN
        else:
            assert not original.exists()


def test_restore_refuses_a_folder_that_became_a_symlink(store: Store, tmp_path: Path) -> None:
    original = _write(tmp_path / "site" / "uploads" / "h.png", MATCHED)
    action_id = _enqueue(store, original, MATCHED)
    qdir = tmp_path / "quarantine"
    assert action_id in _dispatch(store, qdir).run_once().delivered
    assert not original.exists()
    record = store.actions.quarantine_record(action_id)
    assert record is not None
    assert record.state is QuarantineState.QUARANTINED
    # a component on the way (not only the last folder) is replaced by a symlink
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "uploads").mkdir(parents=True)
    (tmp_path / "site").rename(tmp_path / "site-old")
    (tmp_path / "site").symlink_to(elsewhere)
    with pytest.raises(RestoreRefused, match="symlink"):
        restore(store.actions, action_id, actor="cli:test")
    assert os.listdir(elsewhere / "uploads") == []  # nothing written through the link
    assert _quarantined_files(qdir) == [quarantine_name(action_id)]
    record = store.actions.quarantine_record(action_id)
    assert record is not None
    assert record.state is QuarantineState.QUARANTINED
    # the real folder back: restored
    (tmp_path / "site").unlink()
    (tmp_path / "site-old").rename(tmp_path / "site")
    restore(store.actions, action_id, actor="cli:test")
    assert original.read_bytes() == MATCHED


# -- a confined scan (item 8) ----------------------------------------------------------


def test_open_nofollow_refuses_every_symlink_on_the_way(tmp_path: Path) -> None:
    _write(tmp_path / "real" / "file", b"benign")
    (tmp_path / "link-dir").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "link-file").symlink_to(tmp_path / "real" / "file")
    os.close(open_nofollow(tmp_path / "real" / "file"))
    with pytest.raises(SymlinkInPath):
        open_nofollow(tmp_path / "link-dir" / "file")
    with pytest.raises(SymlinkInPath):
        open_nofollow(tmp_path / "real" / "link-file")
    # resolved once, then opened without following anything; confined to the roots
    os.close(open_resolved(tmp_path / "link-dir" / "file", confine=[str(tmp_path / "real")]))
    with pytest.raises(OutsideRoots):
        open_resolved(tmp_path / "link-dir" / "file", confine=[str(tmp_path / "other")])


def test_the_kernel_refuses_a_path_that_leads_out_of_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    image = encode(generate(Kind.PHOTO, 5, 64, 48))
    _write(root / "in.jpg", image)
    _write(tmp_path / "outside" / "secret.jpg", image)
    (root / "link-in.jpg").symlink_to(root / "in.jpg")
    (root / "link-out.jpg").symlink_to(tmp_path / "outside" / "secret.jpg")
    options = HashOptions.for_scan(ScanOptions(max_pixels=10**6), confine=[str(root)])
    inside = hash_path(str(root / "link-in.jpg"), options)
    assert inside.signals is not None
    assert inside.signals.sha256 == _sha(image)
    out = hash_path(str(root / "link-out.jpg"), options)
    assert (out.signals, out.problem) == (None, Outcome.UNSUPPORTED)
    assert "outside the scan roots" in (out.reason or "")


def test_a_racing_swap_never_gets_a_file_outside_the_roots_hashed(tmp_path: Path) -> None:
    """A thread flips a file between itself and a symlink out of the root while the
    kernel hashes it, for two seconds: the outside bytes are never read."""
    root = tmp_path / "root"
    inside_bytes = b"benign inside " * 64
    outside = _write(tmp_path / "outside" / "secret.bin", b"benign outside " * 64)
    target = _write(root / "sub" / "x.bin", inside_bytes)
    spare = _write(root / "spare.bin", inside_bytes)
    link = root / "link.bin"
    link.symlink_to(outside)
    options = HashOptions(max_pixels=10**6, confine=(str(root),))
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            os.rename(link, target)  # the symlink out of the root takes the file's place
            os.rename(target, link)
            os.link(spare, root / "sub" / "x.tmp")
            os.rename(root / "sub" / "x.tmp", target)

    racer = threading.Thread(target=flip)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # let the threads interleave between system calls
    racer.start()
    seen: set[str | None] = set()
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            output = hash_path(str(target), options)
            seen.add(output.signals.sha256 if output.signals else None)
    finally:
        stop.set()
        racer.join()
        sys.setswitchinterval(interval)
    assert _sha(outside.read_bytes()) not in seen
    assert _sha(inside_bytes) in seen


def test_a_confined_walk_never_lists_a_folder_swapped_in_outside(tmp_path: Path) -> None:
    """A thread flips a folder between itself and a symlink to a folder outside the
    root while the walk runs, for two seconds: no outside name is ever listed."""
    root = tmp_path / "root"
    _write(root / "d" / "inside.bin", b"benign")
    _write(tmp_path / "outside" / "outside-name.bin", b"benign")
    (root / "away").symlink_to(tmp_path / "outside")
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            os.rename(root / "d", root / "d-real")
            os.rename(root / "away", root / "d")  # the symlink out takes the folder's place
            os.rename(root / "d", root / "away")
            os.rename(root / "d-real", root / "d")

    racer = threading.Thread(target=flip)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # let the threads interleave between system calls
    racer.start()
    names: set[str] = set()
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            names.update(Path(i.path).name for i in walk([str(root)], confine=[str(root)]))
    finally:
        stop.set()
        racer.join()
        sys.setswitchinterval(interval)
    assert "outside-name.bin" not in names
    assert "inside.bin" in names


def test_a_symlink_swapped_in_between_walk_and_hash_is_not_followed(
    tmp_path: Path, sqlite_store: Store
) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    secret = encode(generate(Kind.PHOTO, 11, 64, 48))
    _write(root / "a.jpg", encode(generate(Kind.PHOTO, 12, 64, 48)))
    _write(root / "sub" / "b.jpg", encode(generate(Kind.PHOTO, 13, 64, 48)))
    _write(outside / "secret.jpg", secret)
    _write(outside / "dir" / "b.jpg", secret)
    options = ScanOptions(max_pixels=10**6)
    confine = [os.path.realpath(root)]
    prepared = prepare_run(sqlite_store.scans, [str(root)], options)

    def swap(_total: int, _done: int) -> None:
        """After the walk, before any file is hashed: a file and a folder replaced by
        symlinks that lead out of the root."""
        (root / "a.jpg").unlink()
        (root / "a.jpg").symlink_to(outside / "secret.jpg")
        (root / "sub").rename(tmp_path / "sub-away")
        (root / "sub").symlink_to(outside / "dir")

    results: list[FileResult] = []
    with HashingPool(
        workers=1,
        options=HashOptions.for_scan(options, confine=confine),
        timeout=30,
        memory_mb=2048,
    ) as pool:
        scanner = Scanner(
            store=sqlite_store.scans,
            matcher=Matcher.build(sqlite_store.banks),
            pool=pool,
            confine=confine,
        )
        scanner.run(prepared.run, on_planned=swap, on_result=results.append)
    by_name = {Path(r.path).name: r for r in results}
    assert sorted(by_name) == ["a.jpg", "b.jpg"]
    for result in results:
        assert result.signals is None, "a file outside the root was read"
        assert result.outcome is Outcome.ERROR  # not read: never no_match
        assert "outside the scan roots" in (result.reason or "")


# -- evidence from the bytes that matched (item 8) ------------------------------------


def _vault(store: Store, tmp_path: Path, clock: list[datetime] | None = None) -> Vault:
    now = clock or [T0]
    return Vault(
        store.evidence,
        MasterKey(secrets.token_bytes(32)),
        tmp_path / "evidence",
        lambda: now[0],
        retention=RetentionPolicy(default_days=365),
        on_event=audited(store),
    )


def test_evidence_is_kept_only_from_the_bytes_that_matched(store: Store, tmp_path: Path) -> None:
    vault = _vault(store, tmp_path)
    pipeline = Pipeline(store=store, actor="system:scan", policies=dict, vault=lambda: vault)
    matched = _write(tmp_path / "up" / "m.png", MATCHED)
    run = prepare_run(store.scans, [str(matched.parent)], ScanOptions(max_pixels=10**6)).run
    source = LocalFile(path=str(matched), run_id=run.id)
    result = _result(matched, MATCHED)

    def keep() -> str | None:
        (done,) = pipeline.commit([pipeline.prepare(result, source)])
        return done.evidence_id

    _replace_with(matched, BENIGN)  # changed after it was hashed
    assert keep() is None
    assert store.evidence.list() == []
    (refused,) = [e for e in store.audit.events() if e.action == AuditAction.EVIDENCE_NOT_KEPT]
    assert refused.subject == f"content:{_sha(MATCHED)}"
    assert "changed" in refused.details["reason"]
    # a symlink to a file with other bytes is not kept either
    other = _write(tmp_path / "elsewhere" / "x.png", BENIGN)
    matched.unlink()
    matched.symlink_to(other)
    assert pipeline.prepare(result, source).evidence is None
    # the matched bytes at the path: kept
    matched.unlink()
    _write(matched, MATCHED)
    again = prepare_run(store.scans, [str(matched.parent)], run.options, rescan=True).run
    (done,) = pipeline.commit(
        [pipeline.prepare(result, LocalFile(path=str(matched), run_id=again.id))]
    )
    assert done.evidence_id is not None
    data, _context = vault.get(done.evidence_id, actor="cli:test")
    assert data == MATCHED


# -- orphans (item 11) ----------------------------------------------------------------


def _open_case(store: Store, sha256: str, evidence_id: str | None) -> None:
    store.cases.open_or_update(
        content_key=sha256,
        source=CaseSource(kind=SourceKind.SCAN, ref="1", path="/x"),
        signals=None,
        matches=(),
        remote=(),
        decision=ACT,
        actor="system:test",
        evidence_id=evidence_id,
    )


def _context() -> dict[str, object]:
    return {"source": "scan", "matches": [{"bank": "known", "algorithm": "md5"}]}


def test_orphans_are_counted_and_swept_after_the_grace_period(store: Store, tmp_path: Path) -> None:
    clock = [T0]
    events: list[EvidenceEvent] = []
    vault = _vault(store, tmp_path, clock)
    vault._on_event = events.append
    blobs = tmp_path / "evidence"
    orphan = vault.put(b"benign orphan " * 10, _context(), jurisdiction="US")  # no case
    with_case = vault.put(b"benign with case " * 10, _context(), jurisdiction="US")
    _open_case(store, with_case.sha256, with_case.id)
    held = vault.put(b"benign held " * 10, _context(), jurisdiction="US")  # no case, held
    vault.hold(held.id, "request 7")
    # a second sighting of a case's content: the case names the first item only
    first = vault.put(b"benign seen twice " * 10, _context(), jurisdiction="US")
    _open_case(store, first.sha256, first.id)
    again = vault.put(b"benign seen twice " * 10, _context(), jurisdiction="US")
    stray = _write(blobs / "ab" / str(uuid.uuid4()), b"sealed bytes of no item")
    os.utime(stray, (T0.timestamp(), T0.timestamp()))
    live_blobs = [vault.blob_path(i.id) for i in (orphan, with_case, held, first, again)]
    for path in live_blobs:
        os.utime(path, (T0.timestamp(), T0.timestamp()))

    within_grace = count_orphans(store.evidence, blobs, T0 + timedelta(minutes=59))
    assert (within_grace.items, within_grace.held, within_grace.files) == (0, 0, 0)
    later = T0 + timedelta(hours=2)
    found = count_orphans(store.evidence, blobs, later)
    assert (found.items, found.held, found.files) == (1, 1, 1)

    dry = run_retention(vault, later, dry_run=True, store=store.evidence)
    assert (dry.orphan_items, dry.orphan_items_held, dry.orphans_removed) == (
        (orphan.id,),
        (held.id,),
        1,
    )
    assert stray.exists()
    assert vault.item(orphan.id).state is EvidenceState.KEPT

    clock[0] = later
    report = run_retention(vault, later, store=store.evidence)
    assert report.orphan_items == (orphan.id,)
    assert report.orphan_items_held == (held.id,)
    assert report.orphans_removed == 1
    gone = vault.item(orphan.id)
    assert gone.state is EvidenceState.DESTROYED
    assert gone.destroyed_by == "system:retention"
    assert store.evidence.sealed(orphan.id) == (None, None)  # crypto-erased
    assert not vault.blob_path(orphan.id).exists()
    assert not stray.exists()
    for kept in (with_case, held, first, again):
        assert vault.item(kept.id).destroyed_at is None
        assert vault.blob_path(kept.id).exists()
    assert [(e.action, e.subject) for e in events if e.action == "evidence.destroyed"] == [
        ("evidence.destroyed", orphan.id)
    ]
    after = count_orphans(store.evidence, blobs, later)
    assert (after.items, after.held, after.files) == (0, 1, 0)


def test_an_orphan_that_gets_its_case_or_a_hold_is_not_destroyed(
    store: Store, tmp_path: Path
) -> None:
    vault = _vault(store, tmp_path)
    cutoff = T0 + timedelta(hours=1)
    a = vault.put(b"benign a " * 10, _context(), jurisdiction="US")
    b = vault.put(b"benign b " * 10, _context(), jurisdiction="US")
    assert {i.id for i in store.evidence.orphaned(cutoff)} == {a.id, b.id}
    # listed as orphans, then a case opens for one and the other is held
    _open_case(store, a.sha256, a.id)
    vault.hold(b.id, "request 8")
    for item in (a, b):
        assert not store.evidence.destroy_orphan(
            item.id, created_before=cutoff, at=cutoff, actor="system:retention", reason="test"
        )
        assert vault.item(item.id).destroyed_at is None


def test_the_orphans_command_counts_without_the_master_key(home: Path) -> None:
    shown = json.loads(hashguard("evidence", "orphans", "--json").stdout)
    assert shown == {"items": 0, "held": 0, "files": 0}
