"""Retro-matching of videos: a kept signal keeps a video's vPDQ frames, and a listed
video (vPDQ entry) added after the scan finds the earlier video through the kept
PDQ-frame index, the matcher deciding with the bank's percentages; a case opens once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hashguard.demo.clips import benign_clip, pan, write_clip
from hashguard.demo.corpus import photo_like
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry
from hashguard.domain.kept import KeptPdq, NewKept
from hashguard.domain.scans import ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.domain.video import VpdqFrame, vpdq_digest
from hashguard.hashing.kernel import HashOptions, HashOutput, hash_path
from hashguard.matching.matcher import Matcher
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.retro import retro_match
from hashguard.scan.sources import LocalFile
from hashguard.store import Store

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OPTIONS = HashOptions(max_pixels=50_000_000)
SECONDS, FPS = 8, 10


def _frame(value: str, number: int, quality: int = 90) -> VpdqFrame:
    return VpdqFrame(value=value, quality=quality, frame=number, timestamp=number / 10)


def test_kept_signals_keep_a_videos_frames(store: Store) -> None:
    """Both engines: the frames round-trip; the index rows hold a video's distinct frame
    hashes (the index leaves out low-quality ones); ``videos`` names the kept videos."""
    frames = (_frame("a" * 64, 0), _frame("a" * 64, 3), _frame("b" * 64, 6, quality=20))
    items = [
        NewKept(way="scan", md5="1" * 32, sha1="1" * 40, sha256="1" * 64, size=9, vpdq=frames),
        NewKept(
            way="scan",
            md5="2" * 32,
            sha1="2" * 40,
            sha256="2" * 64,
            size=9,
            pdq=(KeptPdq(value="c" * 64, quality=80),),
        ),
        NewKept(way="scan", md5="3" * 32, sha1="3" * 40, sha256="3" * 64, size=9),
    ]
    store.kept.add(items, at=NOW, seq=2)
    video, image, plain = (k.id for k in store.kept.get(range(1, 10)))
    assert store.kept.get([video])[0].vpdq == frames
    assert store.kept.get([image])[0].vpdq == ()
    rows = [row for batch in store.kept.pdq_rows() for row in batch]
    assert rows == [
        (video, 2, [["a" * 64, 90], ["b" * 64, 20]]),
        (image, 2, [["c" * 64, 80]]),
    ]
    assert store.kept.videos([video, image, plain]) == {video}


@dataclass(frozen=True)
class Clips:
    listed: Path
    other: Path
    captioned: tuple[VpdqFrame, ...]
    unseen: tuple[VpdqFrame, ...]


def _frames(path: Path) -> tuple[VpdqFrame, ...]:
    signals = hash_path(str(path), OPTIONS).signals
    assert signals is not None
    assert signals.vpdq
    return signals.vpdq


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    """Two scanned clips; a captioned copy of the first and a clip never scanned (their
    frames only: what a list would carry)."""
    pytest.importorskip("vpdq")
    d = tmp_path_factory.mktemp("retrovpdq")
    frames = list(pan(photo_like(21, 800, 600), seconds=SECONDS, fps=FPS, width=320, height=240))
    for image in frames:
        # a caption bar over the bottom thirtieth (tests/test_video_banks.py)
        image.paste((20, 20, 20), (0, image.height - image.height // 30, image.width, image.height))
    return Clips(
        listed=benign_clip(d / "listed.mp4", 21, seconds=SECONDS, fps=FPS),
        other=benign_clip(d / "other.mp4", 22, seconds=5, fps=FPS),
        captioned=_frames(write_clip(d / "caption.mp4", frames, fps=FPS)),
        unseen=_frames(benign_clip(d / "unseen.mp4", 23, seconds=5, fps=FPS)),
    )


def _listed(store: Store, bank: str, frames: tuple[VpdqFrame, ...]) -> None:
    entry = BankEntry(
        algorithm=Algorithm.VPDQ, value=vpdq_digest(frames), entry_id=f"{bank}-1", frames=frames
    )
    store.banks.add_entries(bank, [entry])


def test_a_listed_video_added_after_a_scan_finds_the_earlier_video(
    sqlite_store: Store, clips: Clips, tmp_path: Path
) -> None:
    store = sqlite_store
    store.banks.create("videos")
    store.banks.create("halves")
    matcher = Matcher.build(store.banks)
    pipeline = Pipeline(
        store=store,
        actor="system:test",
        matcher=matcher,
        policies=lambda: policies_of(matcher.banks),
        keep_signals=True,
        clock=lambda: NOW,
    )
    run = store.scans.create_run(
        roots=[str(clips.listed.parent)],
        resume_key="k",
        options=ScanOptions(max_pixels=50_000_000),
        pid=1,
        host="h",
    )
    outputs: dict[str, HashOutput] = {}
    for path in (clips.listed, clips.other):
        output = hash_path(str(path), OPTIONS)
        assert output.signals is not None
        outputs[path.name] = output
        pipeline.process(
            str(path),
            output,
            matcher.match(output.signals),
            LocalFile(path=str(path), run_id=run.id),
        )
    assert store.cases.list() == []
    kept = {k.path: k for k in store.kept.get(range(1, 10))}
    listed = outputs[clips.listed.name].signals
    assert listed is not None
    assert kept[str(clips.listed)].vpdq == listed.vpdq  # as the pipeline computed them

    # a listed video holding only the first quarter of the clip's frames: a candidate
    # (its frames are the clip's), but under 80 % of the clip's frames match it
    _listed(store, "halves", listed.vpdq[: len(listed.vpdq) // 4])
    matcher.refresh()
    partial = retro_match(store, pipeline)
    assert (partial.new_entries, partial.candidates, partial.matched, partial.cases) == (1, 1, 0, 0)

    # a captioned copy of the clip is listed: the clip is found, the other clip is not
    _listed(store, "videos", clips.captioned)
    matcher.refresh()
    first = retro_match(store, pipeline)
    assert (first.new_entries, first.candidates, first.matched, first.cases) == (1, 1, 1, 1)
    (case,) = store.cases.list()
    assert case.content_key == hashlib.sha256(clips.listed.read_bytes()).hexdigest()
    (match,) = case.matches
    assert (match.algorithm, match.bank, match.entry_id) == (Algorithm.VPDQ, "videos", "videos-1")
    assert match.query_percent >= 80

    second = retro_match(store, pipeline)
    assert (second.new_entries, second.candidates, second.matched) == (0, 0, 0)
    assert len(store.cases.list()) == 1
    events = [e.action for e in store.audit.events()]
    assert events.count(AuditAction.CASE_OPENED) == 1

    # a clip never scanned, listed: no kept video comes near it
    _listed(store, "videos", clips.unseen)
    matcher.refresh()
    third = retro_match(store, pipeline)
    assert (third.new_entries, third.candidates, third.matched) == (1, 0, 0)
    assert len(store.cases.list()) == 1

    # a PDQ entry (an image) listing one frame of the other clip: the matcher compares a
    # video's frames with PDQ entries, so the kept frames find that clip too
    other = outputs[clips.other.name].signals
    assert other is not None
    store.banks.add_entries(
        "videos", [BankEntry(algorithm=Algorithm.PDQ, value=other.vpdq[2].value)]
    )
    matcher.refresh()
    fourth = retro_match(store, pipeline)
    assert (fourth.candidates, fourth.matched, fourth.cases) == (1, 1, 1)
    assert {c.content_key for c in store.cases.list()} == {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (clips.listed, clips.other)
    }
