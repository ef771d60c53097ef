"""Builds the demo folder (benign corpus, demo list) and checks what a scan of it finds."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from hashguard.demo.corpus import DIHEDRAL_EDITS, EDITS, Kind, edited_copy, encode, generate
from hashguard.domain.signals import PdqMode
from hashguard.hashing.kernel import HashOptions, hash_data

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


def build(root: Path) -> DemoLayout:
    """Write ``root/uploads`` (copies of known images, edited copies, distractors, and a
    few files that are not clean images) and ``root/lists/known.csv`` (the demo bank)."""
    uploads = root / "uploads"
    lists = root / "lists"
    uploads.mkdir(parents=True, exist_ok=True)
    lists.mkdir(parents=True, exist_ok=True)
    expected: dict[str, bool] = {}
    # The list is built the way HMA builds one (full-resolution reference PDQ).
    options = HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE)
    rows = []
    for index in range(KNOWN):
        # Photo-like, not textures: on noise-like textures even a 1 % crop moves PDQ past 31.
        original = generate(Kind.PHOTO, seed=1000 + index, width=SIZE[0], height=SIZE[1])
        data = encode(original)
        signals = hash_data(data, options).signals
        assert signals is not None
        entry = f"demo-{index:03d}"
        rows.append(("md5", signals.md5, entry, "demo"))
        rows.append(("pdq", signals.pdq[0].value, entry, "demo"))
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
    truncated = encode(generate(Kind.PHOTO, seed=9000, width=SIZE[0], height=SIZE[1]))
    (uploads / "broken-upload.jpg").write_bytes(truncated[: len(truncated) // 2])
    expected["broken-upload.jpg"] = False
    (uploads / "notes.txt").write_text("a text file: not an image, still exact-hashed\n")
    expected["notes.txt"] = False
    with (lists / "known.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["algorithm", "hash", "entry_id", "category"])
        writer.writerows(rows)
    return DemoLayout(root=root, uploads=uploads, known_list=lists / "known.csv", expected=expected)


def needs_dihedral(name: str) -> bool:
    return any(name.endswith(f"-{edit}.jpg") for edit in DIHEDRAL_EDITS)
