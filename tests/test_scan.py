"""``hashguard scan`` end to end: typed outcomes for hostile input, outputs, exit codes, resume."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from hashguard.demo.corpus import Kind, edited_copy, encode, generate
from hashguard.domain.scans import Outcome, ScanOptions
from hashguard.domain.signals import PdqMode
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.matching.matcher import Matcher
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.store import Store
from hashguard.store.schema import scan_results
from tests import hostile
from tests.cli import command, hashguard, json_lines, write_known_list


def _known(tmp_path: Path) -> tuple[bytes, Path]:
    """A known image and a list (md5 + pdq of it) imported into bank ``known``."""
    original = generate(Kind.PHOTO, seed=42, width=640, height=480)
    data = encode(original)
    # Built as HMA would build the list: reference PDQ of the full image.
    signals = hash_data(data, HashOptions(max_pixels=10**8, pdq_mode=PdqMode.REFERENCE)).signals
    assert signals is not None
    listing = write_known_list(
        tmp_path / "known.csv",
        [("md5", signals.md5, "k-md5"), ("pdq", signals.pdq[0].value, "k-pdq")],
    )
    hashguard(
        "banks", "import", "known", str(listing), "--source", "tests", "--licence", "test only"
    )
    return data, listing


@pytest.mark.usefixtures("home")
def test_hostile_batch_every_file_gets_its_typed_outcome(tmp_path: Path) -> None:
    data, _ = _known(tmp_path)
    original = generate(Kind.PHOTO, seed=42, width=640, height=480)
    uploads = tmp_path / "uploads"
    paths = hostile.write_hostile_set(uploads)
    (uploads / "copy.jpg").write_bytes(data)
    (uploads / "resized.jpg").write_bytes(edited_copy(original, "resized"))
    (uploads / "with-zip.jpg").write_bytes(hostile.jpeg_with_zip(data))
    (uploads / "other.jpg").write_bytes(encode(generate(Kind.PHOTO, seed=7, width=640, height=480)))
    (uploads / "readme.txt").write_text("not an image")
    (uploads / "sub").mkdir()
    (uploads / "sub" / "loop").symlink_to(uploads)
    (uploads / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    locked = uploads / "locked.jpg"
    locked.write_bytes(encode(generate(Kind.PHOTO, seed=9, width=64, height=64)))
    locked.chmod(0)

    done = hashguard(
        "scan", str(uploads), "--json", "--workers", "2", check=1, as_unprivileged_root=True
    )
    files, summary = json_lines(done.stdout)
    outcome = {Path(f["path"]).name: f["outcome"] for f in files}
    assert len(files) == len(outcome)  # each file once
    expected = {
        **{
            path.name: "undecodable"
            for name, path in paths.items()
            if name not in ("empty", "frame_flood_gif")
        },
        "empty.jpg": "unsupported",
        "frame_flood_gif.gif": "no_match",
        "copy.jpg": "matched",
        "resized.jpg": "matched",
        "with-zip.jpg": "matched",
        "other.jpg": "no_match",
        "readme.txt": "unsupported",
        "loop": "unsupported",
        "dangling.jpg": "error",
        "locked.jpg": "error",
    }
    assert outcome == expected
    by_name = {Path(f["path"]).name: f for f in files}
    copy_matches = by_name["copy.jpg"]["matches"]
    assert [m["algorithm"] for m in copy_matches] == ["md5", "pdq"]
    polyglot = by_name["with-zip.jpg"]
    # The same pixels as the copy, so the same PDQ (the fast mode's, a few bits from the list's).
    assert [(m["algorithm"], m["distance"]) for m in polyglot["matches"]] == [
        ("pdq", copy_matches[1]["distance"])
    ]
    assert polyglot["md5"] != by_name["copy.jpg"]["md5"]
    assert "Permission denied" in by_name["locked.jpg"]["reason"]
    assert "symlink loop" in by_name["loop"]["reason"]
    assert summary["counts"] == {
        "matched": 3,
        "no_match": 2,
        "undecodable": 6,
        "unsupported": 3,
        "error": 2,
        "not_answered": 0,
    }
    assert summary["exit_code"] == 1
    assert summary["status"] == "completed"


@pytest.mark.usefixtures("home")
def test_exit_codes_and_csv(tmp_path: Path) -> None:
    _known(tmp_path)
    clean = tmp_path / "clean"
    clean.mkdir()
    for seed in range(3):
        (clean / f"{seed}.png").write_bytes(encode(generate(Kind.TEXTURE, seed, 200, 150), "PNG"))
    done = hashguard("scan", str(clean), "--csv", check=0)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["outcome"] for r in rows] == ["no_match"] * 3
    assert all(len(r["pdq"]) == 64 and r["pdq_quality"] for r in rows)
    (clean / "broken.jpg").write_bytes(hostile.truncated("JPEG"))
    hashguard("scan", str(clean), check=2)
    listing = hashguard("scans", "list", "--json").stdout
    assert '"exit_code": 2' in listing


def _slow_corpus(folder: Path, count: int) -> None:
    """Files large enough (2 MP) that scanning them takes seconds; copies share content."""
    folder.mkdir()
    images = [encode(generate(Kind.PHOTO, seed, 1600, 1200)) for seed in range(10)]
    for index in range(count):
        (folder / f"{index:03d}.jpg").write_bytes(images[index % 10])


def _recorded(home: Path) -> int:
    engine = create_engine(f"sqlite:///{home / 'hashguard.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(scan_results)).scalar_one())
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return 0
    finally:
        engine.dispose()


def _start_scan_and_wait(uploads: Path, home: Path, results: int) -> subprocess.Popen[bytes]:
    scan = subprocess.Popen(
        command("scan", str(uploads), "--json", "--workers", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while _recorded(home) < results and time.monotonic() < deadline:
        time.sleep(0.05)
    return scan


@pytest.mark.usefixtures("home")
def test_kill_9_then_resume_gives_every_file_exactly_one_outcome(
    tmp_path: Path, home: Path
) -> None:
    uploads = tmp_path / "uploads"
    count = 200
    _slow_corpus(uploads, count)
    scan = _start_scan_and_wait(uploads, home, 40)
    os.killpg(scan.pid, signal.SIGKILL)  # the scanner and its workers, without warning
    scan.wait()
    assert 40 <= _recorded(home) < count

    done = hashguard("scan", str(uploads), "--json", "--workers", "2", check=0)
    files, summary = json_lines(done.stdout)
    assert summary["resumed"] is True
    assert summary["total"] == count
    assert sorted(Path(f["path"]).name for f in files) == sorted(p.name for p in uploads.iterdir())
    assert _recorded(home) == count
    assert "resuming scan" in done.stderr
    # A completed run is not resumed: the next scan is a new run, --rescan forces one too.
    again = json_lines(hashguard("scan", str(uploads), "--json", "--rescan", check=0).stdout)[1]
    assert (again["run"], again["resumed"]) == (summary["run"] + 1, False)


@pytest.mark.usefixtures("home")
def test_sigterm_saves_finished_work_and_stops_the_workers(tmp_path: Path, home: Path) -> None:
    uploads = tmp_path / "uploads"
    _slow_corpus(uploads, 200)
    scan = _start_scan_and_wait(uploads, home, 20)
    scan.send_signal(signal.SIGTERM)  # the scanner only: it must stop its own workers
    assert scan.wait(timeout=60) == 130
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited workers are reaped shortly after
        try:
            os.killpg(scan.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("worker processes outlived the interrupted scan")
    listed = json.loads(hashguard("scans", "list", "--json").stdout)
    assert [(r["status"], r["total"] == _recorded(home)) for r in listed] == [("interrupted", True)]
    assert 20 <= listed[0]["total"] < 200


@pytest.mark.usefixtures("home")
def test_scans_show_and_list(tmp_path: Path) -> None:
    data, _ = _known(tmp_path)
    uploads = tmp_path / "u"
    uploads.mkdir()
    (uploads / "a.jpg").write_bytes(data)
    hashguard("scan", str(uploads), check=1)
    shown = hashguard("scans", "show", "1").stdout
    assert "a.jpg" in shown
    assert "known md5 d=0" in shown
    files, summary = json_lines(hashguard("scans", "show", "1", "--json").stdout)
    assert [f["outcome"] for f in files] == ["matched"]
    assert summary["counts"]["matched"] == 1
    assert "completed" in hashguard("scans", "list").stdout
    hashguard("scans", "show", "99", check=2)


def test_every_walked_file_gets_one_outcome_whatever_the_batching(
    tmp_path: Path, sqlite_store: Store
) -> None:
    """More files than the in-flight window, batches that do not divide it, and walk-settled
    items in between: nothing may be lost or recorded twice."""
    folder = tmp_path / "many"
    folder.mkdir()
    image = encode(generate(Kind.PHOTO, 3, 64, 48))
    for index in range(61):
        (folder / f"{index:02d}.jpg").write_bytes(image)
        if index % 10 == 0:
            (folder / f"{index:02d}-loop").symlink_to(folder)
    options = ScanOptions(max_pixels=10**6)
    prepared = prepare_run(sqlite_store.scans, [str(folder)], options)
    matcher = Matcher.build(sqlite_store.banks)
    seen: list[str] = []
    with HashingPool(
        workers=1, options=HashOptions.for_scan(options), timeout=30, memory_mb=2048
    ) as pool:
        scanner = Scanner(
            store=sqlite_store.scans, matcher=matcher, pool=pool, batch=4, flush_rows=7
        )
        run = scanner.run(prepared.run, on_result=lambda r: seen.append(Path(r.path).name))
    expected = sorted(p.name for p in folder.iterdir())
    assert sorted(seen) == expected
    assert run.total == len(expected) == 68
    assert run.counts[Outcome.UNSUPPORTED] == 7  # the walk settled the loops
