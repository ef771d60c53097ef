"""The benign JPEG corpora the scan figures read, generated once and cached per scale."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.config import CACHE_DIR, Scale
from hashguard.demo.corpus import Kind, encode, generate

#: Image sizes: about 1 megapixel (a typical upload) and 12 megapixels (a phone camera).
#: (The fidelity gate reads real images instead: ``bench.realimages``.)
SIZES = {"1 MP": (1152, 864), "12 MP": (4000, 3000)}
_SEEDS = {label: 100_000 * (index + 1) for index, label in enumerate(SIZES)}


@dataclass(frozen=True, kw_only=True, slots=True)
class Corpus:
    label: str
    directory: Path
    files: tuple[Path, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Image:
    """One file to generate: every fifth a texture, JPEG quality cycling over 85-92."""

    path: Path
    kind: Kind
    seed: int
    width: int
    height: int
    quality: int


def _plan(label: str, count: int, directory: Path) -> list[_Image]:
    width, height = SIZES[label]
    planned = []
    for index in range(count):
        kind = Kind.TEXTURE if index % 5 == 4 else Kind.PHOTO
        quality = 85 + index % 8
        path = directory / f"{index:04d}-{kind}-q{quality}.jpg"
        seed = _SEEDS[label] + index
        planned.append(
            _Image(path=path, kind=kind, seed=seed, width=width, height=height, quality=quality)
        )
    return planned


def _make(image: _Image) -> None:
    data = encode(
        generate(image.kind, image.seed, image.width, image.height), "JPEG", quality=image.quality
    )
    # Written beside the corpus folder, then renamed in: a scan never sees a partial file.
    partial = image.path.parent.parent / f".{image.path.parent.name}-{image.path.name}.part"
    partial.write_bytes(data)
    partial.replace(image.path)


def _prepare(directory: Path, wanted: list[_Image]) -> list[_Image]:
    """Make ``directory`` hold only the wanted files; return the ones still to generate."""
    directory.mkdir(parents=True, exist_ok=True)
    names = {image.path.name for image in wanted}
    for stray in directory.iterdir():
        if stray.name not in names:
            shutil.rmtree(stray) if stray.is_dir() else stray.unlink()
    return [image for image in wanted if not image.path.exists()]


def build_corpora(scale: Scale) -> list[Corpus]:
    """The 1 MP and 12 MP corpora of this scale, generating whatever the cache lacks."""
    counts = {"1 MP": scale.files_1mp, "12 MP": scale.files_12mp}
    corpora, missing = [], []
    for label, count in counts.items():
        directory = CACHE_DIR / scale.name / label.replace(" ", "").lower()
        planned = _plan(label, count, directory)
        missing += _prepare(directory, planned)
        corpora.append(
            Corpus(label=label, directory=directory, files=tuple(image.path for image in planned))
        )
    if missing:
        # A 12 MP image takes about 1 GB to generate: bound the parallelism.
        with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 8)) as pool:
            list(pool.map(_make, missing))
    return corpora


def startup_dirs() -> tuple[Path, Path]:
    """An empty folder, and one holding a single tiny image (enough to start the workers)."""
    empty = CACHE_DIR / "startup-empty"
    one = CACHE_DIR / "startup-one"
    _prepare(empty, [])
    tiny = _Image(path=one / "tiny.jpg", kind=Kind.PHOTO, seed=1, width=64, height=48, quality=90)
    for image in _prepare(one, [tiny]):
        _make(image)
    return empty, one


def warm_page_cache(files: tuple[Path, ...]) -> None:
    for path in files:
        path.read_bytes()
