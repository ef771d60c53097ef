"""Video banks: vPDQ entries imported in python-threatexchange's serialisation, stored per
video, matched by the scan's matcher with per-bank thresholds, suppressed by allow banks."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from threatexchange.extensions.vpdq.vpdq_util import VpdqCompactFeature, vpdq_to_json

from hashguard.banks.exchanges.localfile import LocalFileExchange
from hashguard.banks.exchanges.sync import sync_exchange
from hashguard.banks.formats import ListFormat, parse_list, parse_signal
from hashguard.banks.importer import ImportOptions, import_list
from hashguard.demo.clips import benign_clip, pan, write_clip
from hashguard.demo.corpus import photo_like
from hashguard.domain import BankEntry
from hashguard.domain.banks import BankKind, bank_stats_to_json
from hashguard.domain.matches import Match, match_from_json, match_to_json
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.domain.tokens import Scope
from hashguard.domain.video import VpdqFrame, vpdq_digest, vpdq_signal
from hashguard.hashing.kernel import HashOptions, hash_path
from hashguard.matching.matcher import Matcher, load_or_build
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from tests.server import running_server

OPTIONS = HashOptions(max_pixels=50_000_000)
SECONDS, FPS = 8, 10


def _frames(path: Path) -> tuple[VpdqFrame, ...]:
    signals = hash_path(str(path), OPTIONS).signals
    assert signals is not None
    return signals.vpdq


def _te_signal(frames: tuple[VpdqFrame, ...]) -> str:
    """The listed video as python-threatexchange's vpdq signal type serialises it."""
    return vpdq_to_json([VpdqCompactFeature(f.value, f.quality, f.timestamp) for f in frames])


def _captioned(image: Image.Image) -> Image.Image:
    """A caption bar over the bottom thirtieth (measured: a bar of an eighth, or a crop
    of 4 % a side, puts most frames beyond the reference's 31 bits on these clips)."""
    out = image.copy()
    out.paste((20, 20, 20), (0, out.height - out.height // 30, out.width, out.height))
    return out


@dataclass(frozen=True)
class Corpus:
    listed: tuple[VpdqFrame, ...]
    variants: dict[str, tuple[VpdqFrame, ...]]
    unrelated: tuple[VpdqFrame, ...]
    paths: dict[str, Path]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """A listed clip, ordinary edits of it, and a clip of another picture."""
    d = tmp_path_factory.mktemp("vbanks")
    listed = benign_clip(d / "listed.mp4", 21, seconds=SECONDS, fps=FPS)
    frames = list(pan(photo_like(21, 800, 600), seconds=SECONDS, fps=FPS, width=320, height=240))
    edits = {
        # other container and codec, smaller, lower bitrate
        "reencoded": write_clip(
            d / "re.mkv", [f.resize((240, 180)) for f in frames], fps=FPS, codec="mpeg2video"
        ),
        "trimmed": write_clip(d / "trim.mp4", frames[10:70], fps=FPS),
        "cropped": write_clip(
            d / "crop.mp4", [f.crop((3, 2, 317, 238)).resize((320, 240)) for f in frames], fps=FPS
        ),
        "captioned": write_clip(d / "caption.mp4", [_captioned(f) for f in frames], fps=FPS),
    }
    return Corpus(
        listed=_frames(listed),
        variants={name: _frames(path) for name, path in edits.items()},
        unrelated=_frames(benign_clip(d / "other.mp4", 22, seconds=5, fps=FPS)),
        paths={"listed": listed, **edits},
    )


def _scan(matcher: Matcher, frames: tuple[VpdqFrame, ...]) -> tuple[Match, ...]:
    """The matches of a video with these frames (its exact hashes listed nowhere)."""
    signals = FileSignals(size=1, md5="0" * 32, sha1="0" * 40, sha256="0" * 64, vpdq=frames)
    return matcher.match(signals)


# -- import ------------------------------------------------------------------------------


def test_vpdq_rows_in_every_format_read_threatexchanges_serialisation(
    tmp_path: Path, corpus: Corpus
) -> None:
    signal = _te_signal(corpus.listed)
    quoted = signal.replace('"', '""')
    (tmp_path / "l.csv").write_text(f'algorithm,hash,entry_id\nvpdq,"{quoted}",v1\n')
    (tmp_path / "l.jsonl").write_text(
        json.dumps({"algorithm": "vpdq", "hash": json.loads(signal), "entry_id": "v1"})
        + "\n"
        + json.dumps({"signal_type": "vpdq", "signal": signal, "entry_id": "v1b"})
        + "\n"
    )
    (tmp_path / "l.txt").write_text(f"vpdq {signal}\n{signal}\n")
    csv = parse_list(tmp_path / "l.csv", ListFormat.CSV)
    jsonl = parse_list(tmp_path / "l.jsonl", ListFormat.JSONL)
    plain = parse_list(tmp_path / "l.txt", ListFormat.PLAIN, algorithm=Algorithm.VPDQ)
    assert not csv.errors
    assert not jsonl.errors
    assert not plain.errors
    (entry,) = csv.entries.values()
    assert entry.algorithm is Algorithm.VPDQ
    assert entry.value == vpdq_digest(entry.frames)
    assert [(f.value, f.quality) for f in entry.frames] == [
        (f.value, f.quality) for f in corpus.listed
    ]
    assert [f.timestamp for f in entry.frames] == pytest.approx(
        [f.timestamp for f in corpus.listed]
    )
    # the same video in each form is one entry (a repeat is a duplicate)
    assert list(jsonl.entries) == list(csv.entries) == list(plain.entries)
    assert jsonl.duplicates == plain.duplicates == 1
    # our own serialisation reads back in threatexchange's parser
    from threatexchange.extensions.vpdq.vpdq_util import json_to_vpdq  # noqa: PLC0415

    assert [(f.pdq_hex, f.quality) for f in json_to_vpdq(vpdq_signal(entry.frames))] == [
        (f.value, f.quality) for f in corpus.listed
    ]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("not json", "not a JSON list"),
        ("[]", "no frames"),
        ('["abc,100,0.0"]', "not 64 hex digits"),
        ('["' + "a" * 64 + ',100"]', "hash,quality,timestamp"),
        ('["' + "a" * 64 + ',101,0.0"]', "out of range"),
        ('["' + "a" * 64 + ',20,0.0"]', "quality 50 or more"),
    ],
)
def test_bad_vpdq_rows_are_refused_with_a_reason(tmp_path: Path, cell: str, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"algorithm": "vpdq", "hash": cell}) + "\n")
    parsed = parse_list(path, ListFormat.JSONL)
    (error,) = parsed.errors
    assert reason in error.reason


def test_a_vpdq_entry_is_stored_per_video_and_counted(
    tmp_path: Path, store: Store, corpus: Corpus
) -> None:
    """Store-level, on both engines: the frames come back as imported; stats count
    videos; a re-import is unchanged; the threshold settings persist."""
    path = tmp_path / "videos.jsonl"
    path.write_text(
        json.dumps({"algorithm": "vpdq", "hash": _te_signal(corpus.listed), "entry_id": "v1"})
        + "\n"
        + json.dumps({"algorithm": "md5", "hash": "ab" * 16})
        + "\n"
    )
    store.banks.create("videos")
    report = import_list(store.banks, "videos", path)
    assert report.added == 2
    assert import_list(store.banks, "videos", path).unchanged == 2
    stats = bank_stats_to_json(store.banks.stats("videos"))
    assert stats["entries"] == {"md5": 1, "vpdq": 1}
    assert stats["vpdq_query_percent"] == 80.0
    assert stats["vpdq_compared_percent"] == 0.0
    (rows,) = list(store.banks.index_rows())
    (video_id,) = [i for i, a in zip(rows.ids, rows.algorithms, strict=True) if a == "vpdq"]
    (frames,) = store.banks.vpdq_frames(rows.ids).values()
    assert [f.value for f in frames] == [f.value for f in corpus.listed]
    assert list(store.banks.vpdq_frames(rows.ids)) == [video_id]
    bank = store.banks.configure("videos", vpdq_query_percent=60, vpdq_compared_percent=50)
    assert (bank.vpdq_query_percent, bank.vpdq_compared_percent) == (60.0, 50.0)


# -- matching ----------------------------------------------------------------------------


def _bank(store: Store, name: str, frames: tuple[VpdqFrame, ...], kind: BankKind) -> None:
    store.banks.create(name, kind=kind)
    entry = BankEntry(
        algorithm=Algorithm.VPDQ, value=vpdq_digest(frames), entry_id=f"{name}-1", frames=frames
    )
    store.banks.replace_entries(name, [entry], version=None, filename="t", rows=1)


def test_edited_copies_of_a_listed_clip_are_found_by_vpdq(
    sqlite_store: Store, corpus: Corpus
) -> None:
    """Recall over re-encoded, trimmed, cropped and captioned copies; a clip of another
    picture is not found; the match carries both percentages and the timestamps."""
    _bank(sqlite_store, "videos", corpus.listed, BankKind.KNOWN)
    matcher = Matcher.build(sqlite_store.banks)
    found = {}
    for name, frames in corpus.variants.items():
        matches = _scan(matcher, frames)
        if matches:
            (found[name],) = matches
    assert set(found) == set(corpus.variants), f"recall {len(found)}/{len(corpus.variants)}"
    for match in found.values():
        assert match.algorithm is Algorithm.VPDQ
        assert match.entry_id == "videos-1"
        assert match.query_percent >= 80
        assert match.timestamps
        assert match.timestamp == match.timestamps[0]
        assert match_from_json(match_to_json(match)) == match
    trimmed = found["trimmed"]
    assert trimmed.compared_percent < 100
    assert _scan(matcher, corpus.unrelated) == ()
    # per-bank thresholds: asking that all of the listed video be present refuses the trim
    sqlite_store.banks.configure("videos", vpdq_compared_percent=95)
    matcher.refresh()
    assert _scan(matcher, corpus.variants["trimmed"]) == ()
    assert _scan(matcher, corpus.variants["reencoded"]) != ()
    # a listed video removed is no longer found
    sqlite_store.banks.replace_entries("videos", [], version=None, filename="t", rows=0)
    matcher.refresh()
    assert _scan(matcher, corpus.variants["reencoded"]) == ()


def test_an_allowed_video_suppresses_its_vpdq_matches(sqlite_store: Store, corpus: Corpus) -> None:
    _bank(sqlite_store, "videos", corpus.listed, BankKind.KNOWN)
    _bank(sqlite_store, "vetted", corpus.listed, BankKind.ALLOW)
    matches = _scan(Matcher.build(sqlite_store.banks), corpus.variants["reencoded"])
    (known,) = [m for m in matches if m.bank == "videos"]
    assert known.suppressed_by == "vetted"
    assert not known.effective


def test_listed_videos_survive_a_snapshot(
    tmp_path: Path, sqlite_store: Store, corpus: Corpus
) -> None:
    _bank(sqlite_store, "videos", corpus.listed, BankKind.KNOWN)
    snapshot = tmp_path / "index.snap"
    load_or_build(sqlite_store.banks, snapshot)
    loaded = load_or_build(sqlite_store.banks, snapshot)
    assert len(_scan(loaded, corpus.variants["cropped"])) == 1
    # a vPDQ entry is never looked up as a bare hash
    assert loaded.lookup([(Algorithm.VPDQ, vpdq_digest(corpus.listed))]) == [()]


def test_a_plain_file_of_signals_imports_with_algorithm_vpdq(
    tmp_path: Path, sqlite_store: Store, corpus: Corpus
) -> None:
    path = tmp_path / "signals.txt"
    path.write_text(_te_signal(corpus.listed) + "\n")
    sqlite_store.banks.create("new")
    report = import_list(
        sqlite_store.banks, "new", path, options=ImportOptions(algorithm=Algorithm.VPDQ)
    )
    assert (report.added, report.errors) == (1, ())


def test_an_exchange_feed_delivers_and_withdraws_a_listed_video(
    tmp_path: Path, sqlite_store: Store, corpus: Corpus
) -> None:
    """The local-file exchange carries vpdq upserts, and deletions by the video's digest:
    the matcher finds the video after the sync and not after the withdrawal."""
    feed = tmp_path / "feed.jsonl"
    signal = _te_signal(corpus.listed)
    feed.write_text(json.dumps({"algorithm": "vpdq", "hash": signal, "id": "v-9"}) + "\n")
    sqlite_store.banks.create("feed")
    exchange = sqlite_store.exchanges.create(
        "feed",
        adapter="local_file",
        bank="feed",
        settings={"path": str(feed)},
        credential_names=(),
        credentials=None,
    )
    source = LocalFileExchange.configure(exchange.settings, {})
    assert sync_exchange(sqlite_store, exchange, source).upserted == 1
    matcher = Matcher.build(sqlite_store.banks)
    (found,) = _scan(matcher, corpus.variants["reencoded"])
    assert (found.bank, found.entry_id) == ("feed", "v-9")
    digest = vpdq_digest(parse_list_signal(signal))
    with feed.open("a") as more:
        more.write(json.dumps({"op": "delete", "algorithm": "vpdq", "hash": digest}) + "\n")
    source = LocalFileExchange.configure(exchange.settings, {})
    assert sync_exchange(sqlite_store, exchange, source).removed == 1
    matcher.refresh()
    assert _scan(matcher, corpus.variants["reencoded"]) == ()


def parse_list_signal(signal: str) -> tuple[VpdqFrame, ...]:
    return parse_signal(Algorithm.VPDQ, signal)[1]


def test_the_scan_api_shows_vpdq_matches_with_percentages_and_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corpus: Corpus
) -> None:
    """Over real loopback HTTP: a listed video added through /v1/banks/…/entries in
    threatexchange's serialisation; an edited copy posted to /v1/scan is matched by vPDQ
    (percentages and timestamps in the answer), and the video's probe is shown."""
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'hashguard.db'}"
    store = open_store(url, migrate=True)
    _, secret = store.tokens.create("t", [Scope.ADMIN])
    store.close()
    settings = Settings(
        home=tmp_path / "home", database_url=url, workers=1, index_refresh_seconds=0.2
    )
    features = json.loads(_te_signal(corpus.listed))
    auth = {"Authorization": f"Bearer {secret}"}
    with running_server(settings) as base, httpx.Client(base_url=base, headers=auth) as http:
        assert http.post("/v1/banks", json={"name": "videos"}).status_code == 201
        bad = http.post(
            "/v1/banks/videos/entries", json={"entries": [{"algorithm": "vpdq", "hash": ["x"]}]}
        )
        assert bad.status_code == 422
        added = http.post(
            "/v1/banks/videos/entries",
            json={"entries": [{"algorithm": "vpdq", "hash": features, "entry_id": "v1"}]},
        )
        assert added.json()["added"] == 1
        assert http.get("/v1/banks/videos").json()["entries"] == {"vpdq": 1}
        patched = http.patch("/v1/banks/videos", json={"vpdq_compared_percent": 50})
        assert patched.json()["vpdq_compared_percent"] == 50.0
        assert http.patch("/v1/banks/videos", json={"vpdq_query_percent": 101}).status_code == 422
        clip = corpus.paths["reencoded"].read_bytes()
        deadline = time.monotonic() + 10
        while True:
            answer = http.post("/v1/scan", files={"file": ("clip.mkv", clip)}).json()
            if answer["outcome"] == "matched" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        removed = http.post(
            "/v1/banks/videos/entries/remove",
            json={"entries": [{"algorithm": "vpdq", "hash": vpdq_digest(corpus.listed)}]},
        )
        assert removed.json()["removed"] == 1
    assert answer["outcome"] == "matched", answer
    (match,) = answer["matches"]
    assert (match["bank"], match["algorithm"], match["entry_id"]) == ("videos", "vpdq", "v1")
    assert match["query_percent"] >= 80
    assert match["compared_percent"] > 0
    assert match["timestamps"][0] == match["timestamp"] == 0.0
    assert answer["signals"]["video"]["codec"] == "mpeg2video"
    assert answer["signals"]["vpdq_frames"] == len(corpus.variants["reencoded"])
