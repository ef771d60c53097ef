"""Video: safe probing (allowlist, caps), vPDQ as Meta's reference, hostile files typed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import av
import pytest
import vpdq
from PIL import Image
from threatexchange.extensions.vpdq.vpdq_brute_matcher import match_VPDQ_hash_brute
from threatexchange.extensions.vpdq.vpdq_util import VpdqCompactFeature
from typer.testing import CliRunner

from hashguard.cli.app import app
from hashguard.demo.clips import benign_clip, pan, write_clip
from hashguard.demo.corpus import photo_like
from hashguard.domain import BankEntry
from hashguard.domain.matches import match_from_json, match_to_json
from hashguard.domain.scans import Outcome
from hashguard.domain.signals import Algorithm, PdqMode, signals_from_json, signals_to_json
from hashguard.domain.video import VpdqFrame
from hashguard.hashing import animation, video
from hashguard.hashing.decode import DecodeError, UnsupportedFormat
from hashguard.hashing.hasher import BUILTIN_HASHERS, VpdqHasher, VpdqSettings
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_path
from hashguard.matching.matcher import Matcher
from hashguard.matching.vpdq import VpdqIndex, VpdqThresholds
from hashguard.store import Store

VPDQ = VpdqHasher(VpdqSettings(), {})
#: the built-in hashers include vpdq (one frame a second)
OPTIONS = HashOptions(max_pixels=50_000_000)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    made = {
        "mp4": benign_clip(d / "pan.mp4", 1),
        "mkv": benign_clip(d / "pan.mkv", 2, seconds=3),
        "avi": benign_clip(d / "pan.avi", 3, seconds=3),
    }
    small = photo_like(4, 64, 48)
    ts = d / "pan.ts"
    write_clip(ts, [small] * 20, fps=10, codec="mpeg2video")
    made["ts"] = ts
    made["ffv1"] = write_clip(d / "lossless.mkv", [small] * 5, fps=5, codec="ffv1")
    data = made["mp4"].read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    made["truncated"] = d / "truncated.mp4"
    (d / "empty.mp4").write_bytes(b"")
    made["empty"] = d / "empty.mp4"
    (d / "garbage.mp4").write_bytes(bytes(range(256)) * 40)
    made["garbage"] = d / "garbage.mp4"
    (d / "fake.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 4000)
    made["fake_mkv"] = d / "fake.mkv"
    many = d / "many.mp4"
    with av.open(str(many), "w") as out:
        streams = []
        for _ in range(20):
            s = out.add_stream("mpeg4", rate=5)
            s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
            streams.append(s)
        frame = av.VideoFrame.from_image(photo_like(5, 32, 32))
        for s in streams:
            for packet in [*s.encode(frame), *s.encode()]:
                out.mux(packet)
    made["many"] = many
    return made


def test_sniff_names_each_allowed_container(clips: dict[str, Path]) -> None:
    for key, expected in [
        ("mp4", video.VideoContainer.MP4),
        ("mkv", video.VideoContainer.MATROSKA),
        ("avi", video.VideoContainer.AVI),
        ("ts", video.VideoContainer.MPEGTS),
    ]:
        assert video.sniff_video(clips[key].read_bytes()[:192]) is expected
    assert video.sniff_video(clips["garbage"].read_bytes()[:192]) is None
    # a HEIF still image is an image, not a video
    assert video.sniff_video(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 180) is None


def test_vpdq_is_the_reference_hash(clips: dict[str, Path]) -> None:
    for key in ("mp4", "mkv", "avi"):
        output = hash_path(str(clips[key]), OPTIONS)
        assert output.problem is None, output.reason
        assert output.signals is not None
        reference = vpdq.computeHash(str(clips[key]), seconds_per_hash=1.0)
        assert [f.value for f in output.signals.vpdq] == [f.hex for f in reference]
        assert [f.timestamp for f in output.signals.vpdq] == [f.timestamp for f in reference]
        assert [f.quality for f in output.signals.vpdq] == [f.quality for f in reference]
        assert output.signals.pdq == ()  # a video is not an image
    mp4 = hash_path(str(clips["mp4"]), OPTIONS).signals
    assert mp4 is not None
    assert mp4.video is not None
    assert mp4.video.codec == "mpeg4"
    assert mp4.video.container == "mp4"
    assert mp4.video.duration == pytest.approx(5.0, abs=0.2)
    assert len(mp4.vpdq) == 5
    assert VPDQ.values(mp4) == tuple(f.value for f in mp4.vpdq)
    assert signals_from_json(signals_to_json(mp4)) == mp4
    assert Algorithm.VPDQ.hex_length == 64
    assert not Algorithm.VPDQ.is_exact


def test_sampling_rate_is_configurable(clips: dict[str, Path]) -> None:
    every_half = VpdqHasher(VpdqSettings(seconds_per_hash=0.5), {})
    options = HashOptions(max_pixels=50_000_000, hashers=(*BUILTIN_HASHERS[:4], every_half))
    signals = hash_path(str(clips["mp4"]), options).signals
    assert signals is not None
    reference = vpdq.computeHash(str(clips["mp4"]), seconds_per_hash=0.5)
    assert [f.value for f in signals.vpdq] == [f.hex for f in reference]
    assert len(signals.vpdq) == 10


def test_caps_are_checked_from_the_headers(clips: dict[str, Path]) -> None:
    path, container = str(clips["mp4"]), video.VideoContainer.MP4
    info = video.probe(path, container, video.VideoLimits())
    assert (info.codec, info.fps) == ("mpeg4", 10.0)
    with pytest.raises(DecodeError, match="over the cap"):
        video.probe(path, container, video.VideoLimits(max_pixels=320 * 200))
    with pytest.raises(DecodeError, match="px a side"):
        video.probe(path, container, video.VideoLimits(max_side=300))
    with pytest.raises(DecodeError, match="lasts"):
        video.probe(path, container, video.VideoLimits(max_seconds=2))
    with pytest.raises(DecodeError, match="frames"):
        video.probe(path, container, video.VideoLimits(max_frames=20))
    with pytest.raises(UnsupportedFormat, match="codec 'ffv1'"):
        video.probe(str(clips["ffv1"]), video.VideoContainer.MATROSKA, video.VideoLimits())
    ts = video.probe(str(clips["ts"]), video.VideoContainer.MPEGTS, video.VideoLimits())
    assert ts.codec == "mpeg2video"


def test_hostile_videos_each_cost_one_file_the_batch_going_on(clips: dict[str, Path]) -> None:
    names = ["truncated", "empty", "garbage", "fake_mkv", "many", "ffv1", "ts", "mp4"]
    with HashingPool(workers=1, options=OPTIONS, timeout=30, memory_mb=1024) as pool:
        futures = pool.submit_batch([str(clips[n]) for n in names])
        outputs = dict(zip(names, [f.result() for f in futures], strict=True))
    expected = {
        "truncated": (Outcome.UNDECODABLE, "could not be opened"),
        "empty": (Outcome.UNSUPPORTED, "empty file"),
        "garbage": (Outcome.UNSUPPORTED, "not an image or video format"),
        "fake_mkv": (Outcome.UNDECODABLE, "could not be opened"),
        "many": (Outcome.UNDECODABLE, "20 streams"),
        "ffv1": (Outcome.UNSUPPORTED, "not on the allowlist"),
    }
    for name, (outcome, reason) in expected.items():
        output = outputs[name]
        assert output.problem is outcome, (name, output.reason)
        assert reason in (output.reason or ""), (name, output.reason)
        assert output.signals is not None  # exact hashes still matched against lists
    assert outputs["ts"].problem is None, outputs["ts"].reason
    assert outputs["mp4"].problem is None
    assert outputs["mp4"].signals is not None
    assert len(outputs["mp4"].signals.vpdq) == 5


def test_a_known_image_inside_a_video_is_found_with_its_timestamp(
    tmp_path: Path, sqlite_store: Store
) -> None:
    """Done means: a clip showing a known benign image for three seconds is found by
    frame matching against a PDQ (image) bank, with the frame's time in the match."""
    known = photo_like(7, 320, 240)
    known_png = tmp_path / "known.png"
    known.save(known_png)
    image = hash_path(str(known_png), OPTIONS).signals
    assert image is not None
    before = pan(photo_like(8, 800, 600), seconds=2, fps=10, width=320, height=240)
    after = pan(photo_like(9, 800, 600), seconds=2, fps=10, width=320, height=240)
    clip = write_clip(tmp_path / "holiday.mp4", [*before, *[known] * 30, *after], fps=10)
    entry = BankEntry(algorithm=Algorithm.PDQ, value=image.pdq[0].value, entry_id="k1")
    sqlite_store.banks.create("images")
    sqlite_store.banks.replace_entries("images", [entry], version=None, filename="t", rows=1)
    matcher = Matcher.build(sqlite_store.banks)
    signals = hash_path(str(clip), OPTIONS).signals
    assert signals is not None
    (found,) = matcher.match(signals)
    assert (found.bank, found.entry_id, found.algorithm) == ("images", "k1", Algorithm.PDQ)
    assert found.timestamp is not None
    assert 2.0 <= found.timestamp < 5.0
    assert found.frame == round(found.timestamp * 10)
    assert match_from_json(match_to_json(found)) == found
    # another clip without the image matches nothing
    other = hash_path(str(benign_clip(tmp_path / "other.mp4", 10)), OPTIONS).signals
    assert other is not None
    assert matcher.match(other) == ()


def _compact(frames: tuple[VpdqFrame, ...]) -> list[VpdqCompactFeature]:
    return [VpdqCompactFeature(f.value, f.quality, f.timestamp) for f in frames]


def test_vpdq_matching_has_the_reference_percentages(tmp_path: Path) -> None:
    """A re-encoded (smaller, lower bitrate), trimmed copy of a listed clip is found
    with the percentages threatexchange's brute-force matcher computes."""
    original = benign_clip(tmp_path / "listed.mp4", 11, seconds=8)
    frames = list(pan(photo_like(11, 800, 600), seconds=8, fps=10, width=320, height=240))
    copy = tmp_path / "copy.avi"
    write_clip(copy, [f.resize((240, 180)) for f in frames[10:70]], fps=10)
    unrelated = benign_clip(tmp_path / "unrelated.mp4", 12, seconds=4)
    hashed = {}
    for path in (original, copy, unrelated):
        signals = hash_path(str(path), OPTIONS).signals
        assert signals is not None
        hashed[path.name] = signals.vpdq
    index = VpdqIndex(
        {"listed": hashed["listed.mp4"], "unrelated": hashed["unrelated.mp4"]}, VpdqThresholds()
    )
    (found,) = index.search(hashed["copy.avi"])
    reference = match_VPDQ_hash_brute(
        _compact(hashed["copy.avi"]), _compact(hashed["listed.mp4"]), 50, 31
    )
    assert found.video == "listed"
    assert found.query_percent == pytest.approx(reference.query_match_percent)
    assert found.compared_percent == pytest.approx(reference.compared_match_percent)
    assert found.query_percent >= 80
    assert found.timestamps[0] == 0.0
    # per-bank thresholds: asking that most of the listed video be present refuses a
    # trimmed copy (6 of its 8 seconds)
    strict = VpdqIndex({"listed": hashed["listed.mp4"]}, VpdqThresholds(compared_percent=90))
    assert strict.search(hashed["copy.avi"]) == []
    assert index.search(()) == []


def test_hash_command_prints_a_videos_signals(clips: dict[str, Path], home: Path) -> None:
    """``hashguard hash clip.mp4``: exact hashes, vPDQ frames with quality and
    timestamps, the codec and the duration (vpdq is a built-in hasher: enabled)."""
    done = CliRunner().invoke(app, ["hash", str(clips["mp4"])])
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    assert shown["md5"] == hashlib.md5(clips["mp4"].read_bytes()).hexdigest()
    assert shown["vpdq_frames"] == 5
    assert [f["timestamp"] for f in shown["vpdq"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert {f["quality"] for f in shown["vpdq"]} == {100}
    assert shown["video"]["codec"] == "mpeg4"
    assert shown["video"]["duration"] == pytest.approx(5.0, abs=0.2)
    assert "problem" not in shown


# -- the video time limit ---------------------------------------------------------------


def test_a_video_over_its_time_limit_is_stopped_the_batch_going_on(tmp_path: Path) -> None:
    """A video has a wall-time limit of its own (``video_timeout``). One that takes
    longer (3000 frames to decode, against a limit of a millisecond: no clock luck) is
    stopped in its worker and is ``undecodable`` with the reason and its exact hashes,
    never ``no_match``; the images of the batch are hashed under their own limit, and
    the pool goes on."""
    pictures = [photo_like(seed, 64, 64) for seed in range(4)]
    slow = write_clip(tmp_path / "slow.mp4", [pictures[i % 4] for i in range(3000)], fps=100)
    image = tmp_path / "image.png"
    photo_like(5, 320, 240).save(image)
    text = tmp_path / "notes.txt"
    text.write_text("not media")
    paths = [str(slow), str(image), str(text)]
    with HashingPool(
        workers=1, options=OPTIONS, timeout=60, video_timeout=0.001, memory_mb=1024
    ) as pool:
        batch = [f.result() for f in pool.submit_batch(paths)]
        one = pool.submit(str(slow)).result()
        upload = pool.submit_data(slow.read_bytes()).result()
        assert pool.ready
        assert pool.hash(str(image)).problem is None  # the pool recovered
    for output in (batch[0], one, upload):
        assert output.problem is Outcome.UNDECODABLE, output.reason
        assert "took longer than" in (output.reason or "")
        assert "for a video" in (output.reason or "")
        assert output.signals is not None
        assert output.signals.md5 == hashlib.md5(slow.read_bytes()).hexdigest()
    assert batch[1].problem is None
    assert batch[1].signals is not None
    assert batch[1].signals.pdq
    assert batch[2].problem is Outcome.UNSUPPORTED
    # the clip itself is fine: without the limit it hashes (30 s at 100 fps: 30 frames)
    unlimited = hash_path(str(slow), OPTIONS)
    assert unlimited.problem is None
    assert unlimited.signals is not None
    assert len(unlimited.signals.vpdq) == 30


# -- animated GIF and WebP ----------------------------------------------------------------


def _animation(path: Path, frames: list[Image.Image], durations: list[int]) -> Path:
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


@pytest.mark.parametrize("suffix", ["gif", "webp"])
def test_an_animation_of_few_frames_stays_an_image(tmp_path: Path, suffix: str) -> None:
    frames = [photo_like(seed, 160, 120) for seed in range(10)]
    path = _animation(tmp_path / f"short.{suffix}", frames, [200] * 10)
    signals = hash_path(str(path), OPTIONS).signals
    assert signals is not None
    assert len(signals.pdq) == 1  # the first frame, as before
    assert signals.pdq[0].timestamp is None
    assert signals.video is None


@pytest.mark.parametrize("suffix", ["gif", "webp"])
def test_an_animation_of_many_frames_is_sampled_like_a_video(tmp_path: Path, suffix: str) -> None:
    """Beyond ``animation_frames`` frames: the frame shown at each second of display
    time (by the frames' durations; 0 ms counts as 100 ms, as browsers show it) is
    hashed once, with the time it is first shown; no vPDQ (see ``hashing.animation``)."""
    frames = [photo_like(seed % 6 + 1, 160, 120) for seed in range(30)]
    path = _animation(tmp_path / f"long.{suffix}", frames, [100] * 10 + [500] * 10 + [0] * 10)
    signals = hash_path(str(path), OPTIONS).signals
    assert signals is not None
    assert [(p.frame, p.timestamp) for p in signals.pdq] == [
        (0, 0.0), (10, 1.0), (12, 2.0), (14, 3.0), (16, 4.0), (18, 5.0), (20, 6.0)
    ]  # fmt: skip
    assert {p.mode for p in signals.pdq} == {PdqMode.REFERENCE}
    assert signals.vpdq == ()
    assert signals.video is not None
    assert (signals.video.container, signals.video.frames) == (suffix, 30)
    assert signals.video.duration == pytest.approx(7.0)
    assert signals_from_json(signals_to_json(signals)) == signals
    # the first frame's hash is the image path's
    image = hash_path(str(path), replace(OPTIONS, animation_frames=30)).signals
    assert image is not None
    assert image.pdq[0].value == signals.pdq[0].value


def test_a_known_image_inside_an_animated_gif_is_found_with_its_timestamp(
    tmp_path: Path, sqlite_store: Store
) -> None:
    known = photo_like(7, 160, 120)
    known_png = tmp_path / "known.png"
    known.save(known_png)
    image = hash_path(str(known_png), OPTIONS).signals
    assert image is not None
    others = [photo_like(20 + i, 160, 120) for i in range(20)]
    frames = [*others[:10], *[known] * 3, *others[10:]]
    path = _animation(tmp_path / "holiday.gif", frames, [250] * len(frames))
    entry = BankEntry(algorithm=Algorithm.PDQ, value=image.pdq[0].value, entry_id="k1")
    sqlite_store.banks.create("images")
    sqlite_store.banks.replace_entries("images", [entry], version=None, filename="t", rows=1)
    signals = hash_path(str(path), OPTIONS).signals
    assert signals is not None
    (found,) = Matcher.build(sqlite_store.banks).match(signals)
    assert (found.entry_id, found.algorithm) == ("k1", Algorithm.PDQ)
    # Pillow stores the three equal frames as one of 750 ms: frame 10, shown 2.5-3.25 s
    assert (found.frame, found.timestamp) == (10, 2.5)


def _crafted_gif(width: int, height: int, frames: int) -> bytes:
    """A GIF89a declaring a ``width`` x ``height`` canvas with ``frames`` frames of one
    pixel each: a few bytes a frame, each composited onto the whole canvas."""
    screen = b"GIF89a" + width.to_bytes(2, "little") + height.to_bytes(2, "little")
    screen += b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"  # 2-colour global table
    frame = (
        b"\x21\xf9\x04\x00\x04\x00\x00\x00"  # 40 ms
        + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # a 1 x 1 image at 0,0
        + b"\x02\x02\x44\x01\x00"  # LZW: clear, pixel 0, end
    )
    return screen + frame * frames + b"\x3b"


def test_animation_bombs_are_refused_from_the_headers_the_batch_going_on(tmp_path: Path) -> None:
    """A GIF of a few KB whose frames would decode to more pixels than the cap, or that
    has more frames than the cap, is ``undecodable`` before a frame is decoded; the
    batch goes on."""
    bomb = tmp_path / "bomb.gif"
    bomb.write_bytes(_crafted_gif(5000, 5000, 60))  # 60 x 25 MP = 1.5 Gpx
    many = tmp_path / "many.gif"
    many.write_bytes(_crafted_gif(2, 2, animation.MAX_FRAMES + 1))
    fine = _animation(
        tmp_path / "fine.gif", [photo_like(s % 3 + 1, 64, 48) for s in range(20)], [500] * 20
    )
    with HashingPool(workers=1, options=OPTIONS, timeout=60, memory_mb=1024) as pool:
        outputs = [f.result() for f in pool.submit_batch([str(bomb), str(many), str(fine)])]
    assert outputs[0].problem is Outcome.UNDECODABLE
    assert "decompression bomb refused" in (outputs[0].reason or "")
    assert outputs[1].problem is Outcome.UNDECODABLE
    assert "frames, over the cap" in (outputs[1].reason or "")
    assert all(o.signals is not None for o in outputs)
    assert outputs[2].problem is None
    assert outputs[2].signals is not None
    assert len(outputs[2].signals.pdq) == 10
