"""Builds the demo folder (benign corpus, demo list), scans it the way ``hashguard scan``
does (cases opened for review, evidence kept) and makes the review demo's accounts."""

from __future__ import annotations

import csv
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from PIL import Image

from hashguard.audit import record
from hashguard.banks.importer import ImportOptions, NewBank, import_list
from hashguard.demo.clips import pan, write_clip
from hashguard.demo.corpus import (
    DIHEDRAL_EDITS,
    EDITS,
    Kind,
    edited_copy,
    encode,
    generate,
    photo_like,
)
from hashguard.demo.videos import VideoLayout, build_videos
from hashguard.demo.videos import missing as missing_video
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import ImportReport
from hashguard.domain.cases import Case
from hashguard.domain.people import Role
from hashguard.domain.policy import Action, BankPolicy
from hashguard.domain.scans import FileResult, ScanOptions, ScanRun
from hashguard.domain.signals import PdqMode
from hashguard.evidence import open_vault
from hashguard.hashing import video
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.keys import master_key_for
from hashguard.matching.matcher import Matcher, load_or_build
from hashguard.remote.service import RemoteMatching
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import OnceVault, Pipeline
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.settings import Settings
from hashguard.store import Store

KNOWN = 4
DISTRACTORS = 16
SIZE = (800, 600)


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoLayout:
    root: Path
    uploads: Path
    known_list: Path
    #: upload file name -> True when it is a copy of a known image (must be found)
    expected: dict[str, bool]
    #: the demo list's entries: made-up entry id -> algorithm -> the known image's hash
    known: dict[str, dict[str, str]]
    #: the video clips and list (None without the video extra: ``video_problem`` says why)
    videos: VideoLayout | None = None
    video_problem: str | None = None


def build(root: Path) -> DemoLayout:
    """Write ``root/uploads`` (copies of known images, edited copies, a video clip showing
    a known image when the video extra is installed, distractors, and a few files that
    are not clean images) and ``root/lists/known.csv`` (the demo bank)."""
    uploads = root / "uploads"
    lists = root / "lists"
    uploads.mkdir(parents=True, exist_ok=True)
    lists.mkdir(parents=True, exist_ok=True)
    expected: dict[str, bool] = {}
    # The list is built the way HMA builds one (full-resolution reference PDQ).
    options = HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE)
    rows = []
    known: dict[str, dict[str, str]] = {}
    for index in range(KNOWN):
        # Photo-like, not textures: on noise-like textures even a 1 % crop moves PDQ past 31.
        original = generate(Kind.PHOTO, seed=1000 + index, width=SIZE[0], height=SIZE[1])
        data = encode(original)
        signals = hash_data(data, options).signals
        assert signals is not None
        entry = f"demo-{index:03d}"
        rows.append(("md5", signals.md5, entry, "demo"))
        rows.append(("pdq", signals.pdq[0].value, entry, "demo"))
        known[entry] = {"md5": signals.md5, "pdq": signals.pdq[0].value}
        name = f"known-{index}-exact-copy.jpg"
        (uploads / name).write_bytes(data)
        expected[name] = True
        for edit in EDITS:
            name = f"known-{index}-{edit}.jpg"
            (uploads / name).write_bytes(edited_copy(original, edit))
            expected[name] = True
    for index in range(DISTRACTORS):
        kind = Kind.PHOTO if index % 2 == 0 else Kind.TEXTURE
        name = f"other-{index:02d}.{'png' if index % 4 == 3 else 'jpg'}"
        image = generate(kind, seed=5000 + index, width=SIZE[0], height=SIZE[1])
        (uploads / name).write_bytes(encode(image, "PNG" if name.endswith(".png") else "JPEG"))
        expected[name] = False
    if video.extra_missing() is None:
        name = CLIP
        clip_showing(uploads / name, generate(Kind.PHOTO, seed=1000, width=SIZE[0], height=SIZE[1]))
        expected[name] = True
    truncated = encode(generate(Kind.PHOTO, seed=9000, width=SIZE[0], height=SIZE[1]))
    (uploads / "broken-upload.jpg").write_bytes(truncated[: len(truncated) // 2])
    expected["broken-upload.jpg"] = False
    (uploads / "notes.txt").write_text("a text file: not an image, still exact-hashed\n")
    expected["notes.txt"] = False
    video_problem = missing_video()
    videos = None if video_problem else build_videos(uploads, lists, frame_clip=CLIP)
    with (lists / "known.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["algorithm", "hash", "entry_id", "category"])
        writer.writerows(rows)
    return DemoLayout(
        root=root,
        uploads=uploads,
        known_list=lists / "known.csv",
        expected=expected,
        known=known,
        videos=videos,
        video_problem=video_problem,
    )


#: a video clip that shows known image 0 for three seconds (with the video extra only)
CLIP = "known-0-in-a-clip.mp4"


def clip_showing(path: Path, known: Image.Image, *, fps: int = 10) -> Path:
    """Seven seconds at 320x240: a pan, ``known`` held for three seconds, another pan
    (found by matching its frames against the bank's PDQ hashes, with their times)."""
    size = (320, 240)
    before = pan(photo_like(7001, *SIZE), seconds=2, fps=fps, width=size[0], height=size[1])
    after = pan(photo_like(7002, *SIZE), seconds=2, fps=fps, width=size[0], height=size[1])
    held = known.resize(size, Image.Resampling.LANCZOS)
    return write_clip(path, [*before, *[held] * (3 * fps), *after], fps=fps)


#: the review demo's remote fakes (``demo.remote``): the uploads PhotoDNA and Safer
#: match (test sources), beside the demo list's own matches of them, and the distractor
#: the classifiers score high (a classifier-only case: "classifier, no list match")
REMOTE_MATCHED = ("known-1-exact-copy.jpg", "known-1-resized.jpg")
CLASSIFIER_ONLY = "other-00.jpg"


def remote_demo_hashes(layout: DemoLayout) -> tuple[set[str], set[str]]:
    """The MD5s of ``REMOTE_MATCHED`` and of ``CLASSIFIER_ONLY`` in the layout."""

    def md5(name: str) -> str:
        data = (layout.uploads / name).read_bytes()
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    return {md5(n) for n in REMOTE_MATCHED}, {md5(CLASSIFIER_ONLY)}


def needs_dihedral(name: str) -> bool:
    return any(name.endswith(f"-{edit}.jpg") for edit in DIHEDRAL_EDITS)


# -- the review demo: the scan takes `hashguard scan`'s path, cases open for review -------

#: the demo bank: exact (MD5) copies act, every PDQ match (the edited copies) goes to review
DEMO_BANK = "demo-known"
DEMO_POLICY = BankPolicy(exact_action=Action.ACT, auto_max_distance=None)
#: demo accounts and their roles (passwords are random, printed once)
DEMO_ACCOUNTS = (
    ("demo-reviewer", Role.REVIEWER),
    ("demo-lead", Role.LEAD),
    ("demo-auditor", Role.AUDITOR),  # reads the audit log, sees no content
)
DEMO_ACTOR = "system:demo"
#: the demo's only referral hotline: not a real one (the real ones take real reports)
DEMO_HOTLINE = {
    "name": "Demo hotline (not a real hotline)",
    "form_url": "https://hotline.example.test/report",
    "country": "ZZ",
    "notes": "The demo refers to no real hotline: mark the task done with any reference.",
}


def demo_settings(home: Path, **values: Any) -> Settings:
    """Settings of the demo's own installation in ``home``: its own SQLite store and
    master key, no webhooks, no quarantine and no remote matchers, whatever the
    environment or a configuration file names (``values`` change them)."""
    own: dict[str, Any] = {
        "database_url": None,
        "master_key": None,
        "master_key_file": None,
        "webhooks": (),
        "quarantine_local": False,
        "remote": {},
        "host": "127.0.0.1",
        # a made-up hotline: demo facts must never reach a real hotline's form
        "referral_hotlines": {"demo-hotline": DEMO_HOTLINE},
    }
    return Settings(home=home, **(own | values))


def import_demo_bank(store: Store, layout: DemoLayout) -> ImportReport:
    """The demo bank from the layout's known list, with DEMO_POLICY: exact copies act,
    PDQ matches go to review."""
    report = import_list(
        store.banks,
        DEMO_BANK,
        layout.known_list,
        options=ImportOptions(
            source="hashguard demo (generated images)", licence="test only", create=NewBank()
        ),
    )
    store.banks.configure(
        DEMO_BANK,
        exact_action=DEMO_POLICY.exact_action,
        auto_max_distance=DEMO_POLICY.auto_max_distance,
        review_max_distance=DEMO_POLICY.review_max_distance,
    )
    return report


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanDone:
    run: ScanRun
    #: file name -> its result
    results: dict[str, FileResult]
    #: cases that needed work after the scan, oldest first
    cases: list[Case]


def scan_like_the_cli(
    store: Store,
    settings: Settings,
    folder: Path,
    options: ScanOptions,
    *,
    actor: str = DEMO_ACTOR,
    matcher: Matcher | None = None,
    remote: RemoteMatching | None = None,
) -> ScanDone:
    """Scan ``folder`` the way ``hashguard scan`` does: decisions audited, evidence of
    what the policy acts on or reviews kept in the vault, cases opened, and the actions
    the settings configure (webhooks, quarantine) planned into the outbox. ``remote``:
    the remote matchers and classifiers each file is also put to."""
    prepared = prepare_run(store.scans, [str(folder)], options, rescan=True)
    results: dict[str, FileResult] = {}
    with HashingPool(
        workers=settings.workers,
        options=HashOptions.for_scan(options),
        timeout=settings.decode_timeout,
        video_timeout=settings.video_timeout,
        memory_mb=settings.worker_memory_mb,
    ) as pool:
        found = matcher or load_or_build(store.banks, settings.index_path)
        pipeline = Pipeline.configured(
            settings,
            store,
            actor=actor,
            matcher=found,
            policies=lambda: policies_of(found.banks),
            vault=OnceVault(lambda: open_vault(settings, store, master_key_for(settings)[0])),
            hashing=pool,
            remote=remote,
        )
        scanner = Scanner(store=store.scans, matcher=found, pool=pool, pipeline=pipeline)
        run = scanner.run(
            prepared.run, on_result=lambda r: results.__setitem__(Path(r.path).name, r)
        )
    opened = [
        case
        for case in store.cases.list(limit=10_000)
        if any(s.ref == str(run.id) for s in case.sources)
    ]
    return ScanDone(run=run, results=results, cases=opened)


def create_demo_accounts(store: Store, *, actor: str = DEMO_ACTOR) -> dict[str, str]:
    """The demo's accounts (DEMO_ACCOUNTS) with fresh random passwords: name -> password."""
    hasher = PasswordHasher()
    passwords = {}
    for name, role in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(12)
        user = store.people.create_user(name, role, password_hash=hasher.hash(password))
        record(store, actor, AuditAction.USER_CREATED, f"user:{user.name}", role=str(role))
        passwords[name] = password
    return passwords
