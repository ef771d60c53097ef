"""The fidelity gate: the default (fast) PDQ mode against the reference on real images and edits.

The default mode may stay the default only while, on real images of every kind and
size (``bench.realimages``: icons, clip art, line art, screenshots, greyscale and palette
images, artwork and photos, 32 x 32 px to 50 MP), it finds on every edit at least what
the reference finds. For each image the gate measures:

- drift: the Hamming distance between the fast-setting and the reference hash of the
  file, and whether PDQ's quality lands on different sides of 50 (a *quality flip*: a
  hash that is matched in one mode and ignored in the other);
- recall: a list holds the reference hash of the original (what HMA and list holders
  compute; originals of quality below 50 are not listed), and each edit of it
  (``Edit``) is hashed in both settings; it is *found* when its hash has quality 50 or
  more and is within ``THRESHOLD`` of the listed hash (rotations and mirrors: any of the
  eight dihedral hashes, as a ``--dihedral`` scan compares them). The default setting
  decides as the scan does: a fast-path hash within ``THRESHOLD + FAST_CONFIRM_MARGIN``
  of the listed hash is confirmed with the reference hash, which decides.

It passes when, for every edit, in every size band and every kind, the fast setting
finds at least the reference's count less ``RECALL_SLACK`` of the originals; no file
drifts beyond ``CEILING``; photos drift at most ``P95_LIMIT`` at the 95th percentile
and ``MAX_LIMIT`` at most; and no quality flips.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from hashguard.domain.signals import FAST_CONFIRM_MARGIN, PDQ_MIN_QUALITY, PdqHash, PdqMode
from hashguard.hashing.kernel import HashOptions, hash_data

P95_LIMIT = 12
MAX_LIMIT = 24
CEILING = 31
#: The default PDQ match threshold.
THRESHOLD = 31
#: The fast setting may find this fraction of the originals fewer than the reference.
RECALL_SLACK = 0.005
PHOTO = "photo"
_MAX_PIXELS = 200_000_000


class Edit(StrEnum):
    """What is done to a listed image before it is scanned."""

    EXACT = "exact copy"
    JPEG_Q50 = "JPEG q50"
    BRIGHTNESS = "brightness +15 %"
    PNG = "PNG re-save"
    CAPTION = "caption bar"
    HALF = "half size"
    WEBP = "WebP q75"
    ROTATE = "rotate 90 (dihedral)"
    MIRROR = "mirror (dihedral)"


DIHEDRAL_EDITS = frozenset({Edit.ROTATE, Edit.MIRROR})


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    """One real image: its kind (``photo``, ``icon``, ...), size band and file bytes."""

    name: str
    kind: str
    band: str
    data: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Measured:
    """The gate's figures for one original."""

    name: str
    kind: str
    band: str
    distance: int
    fast_quality: int
    reference_quality: int
    #: The path the fast setting took for the original (``fast`` or ``reference``).
    path: PdqMode
    #: Per edit, (found by the fast setting, found by the reference); empty when the
    #: original is not listable (reference quality below 50).
    found: dict[Edit, tuple[bool, bool]] = field(default_factory=dict)

    @property
    def quality_flip(self) -> bool:
        return (self.fast_quality >= PDQ_MIN_QUALITY) != (self.reference_quality >= PDQ_MIN_QUALITY)


def _hash(data: bytes, mode: PdqMode, *, dihedral: bool = False) -> PdqHash:
    options = HashOptions(max_pixels=_MAX_PIXELS, pdq_mode=mode, dihedral=dihedral)
    signals = hash_data(data, options).signals
    if signals is None or not signals.pdq:
        raise ValueError("not a decodable image")
    return signals.pdq[0]


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def drift(data: bytes) -> int:
    """Hamming distance between the fast-setting and the reference hash of one file."""
    return _distance(_hash(data, PdqMode.FAST).value, _hash(data, PdqMode.REFERENCE).value)


def _encode(image: Image.Image, image_format: str, **params: int) -> bytes:
    if image_format in ("JPEG", "WEBP") and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, image_format, **params)
    return out.getvalue()


def edited(data: bytes, edit: Edit) -> bytes:
    """``data`` (an image file) after ``edit``; lossless edits of a JPEG stay JPEG (q95)."""
    if edit is Edit.EXACT:
        return data
    with Image.open(io.BytesIO(data)) as source:
        source.load()
        image_format = source.format
        alpha = source.mode in ("RGBA", "LA", "PA") or "transparency" in source.info
        if edit is Edit.PNG:
            return _encode(source, "PNG", compress_level=1)
        image = source.convert("RGBA" if alpha else "RGB")

    def save(result: Image.Image) -> bytes:
        if image_format == "JPEG":
            return _encode(result, "JPEG", quality=95)
        return _encode(result, "PNG", compress_level=1)

    width, height = image.size
    if edit is Edit.JPEG_Q50:
        return _encode(image, "JPEG", quality=50)
    if edit is Edit.WEBP:
        return _encode(image, "WEBP", quality=75)
    if edit is Edit.BRIGHTNESS:
        return save(ImageEnhance.Brightness(image).enhance(1.15))
    if edit is Edit.CAPTION:
        draw = ImageDraw.Draw(image)
        bar = max(1, height // 8)
        draw.rectangle((0, height - bar, width, height), fill=(0, 0, 0, 255))
        draw.text((4, height - bar + 1), "caption text", fill=(255, 255, 255, 255))
        return save(image)
    if edit is Edit.HALF:
        size = (max(1, width // 2), max(1, height // 2))
        return save(image.resize(size, Image.Resampling.LANCZOS))
    if edit is Edit.ROTATE:
        return save(image.transpose(Image.Transpose.ROTATE_90))
    return save(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def _within(listed: str, probe: PdqHash, threshold: int) -> bool:
    if probe.low_quality:
        return False
    return min(_distance(listed, value) for value in (probe.value, *probe.dihedral)) <= threshold


def _default_finds(listed: str, probe: PdqHash, reference: PdqHash) -> bool:
    """Whether the default setting finds the edit: its hash within ``THRESHOLD``, or, for
    a fast-path hash near the listed one, the reference hash within ``THRESHOLD`` (the
    matcher's confirmation)."""
    if probe.mode is PdqMode.FAST and _within(listed, probe, THRESHOLD + FAST_CONFIRM_MARGIN):
        return _within(listed, reference, THRESHOLD)
    return _within(listed, probe, THRESHOLD)


def _both(data: bytes, *, dihedral: bool, reuse: bool) -> tuple[PdqHash, PdqHash]:
    """The default setting's hash of ``data`` and the reference setting's. With ``reuse``,
    a default-setting hash made on the reference path stands for the reference's (the
    same decode and the same call; the test suite checks they are equal)."""
    fast = _hash(data, PdqMode.FAST, dihedral=dihedral)
    if reuse and fast.mode is PdqMode.REFERENCE:
        return fast, fast
    return fast, _hash(data, PdqMode.REFERENCE, dihedral=dihedral)


def measure(
    sample: Sample, edits: Iterable[Edit] = tuple(Edit), *, reuse: bool = False
) -> Measured:
    """Drift of one original and, if it is listable, recall of each edit in both settings."""
    fast, reference = _both(sample.data, dihedral=False, reuse=reuse)
    if fast.mode is PdqMode.REFERENCE and fast != reference:
        raise AssertionError(f"{sample.name}: the reference path differs from the reference")
    found: dict[Edit, tuple[bool, bool]] = {}
    if reference.quality >= PDQ_MIN_QUALITY:
        for edit in edits:
            probes = _both(edited(sample.data, edit), dihedral=edit in DIHEDRAL_EDITS, reuse=reuse)
            found[edit] = (
                _default_finds(reference.value, *probes),
                _within(reference.value, probes[1], THRESHOLD),
            )
    return Measured(
        name=sample.name,
        kind=sample.kind,
        band=sample.band,
        distance=_distance(fast.value, reference.value),
        fast_quality=fast.quality,
        reference_quality=reference.quality,
        path=fast.mode,
        found=found,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Drift:
    count: int
    p50: float
    p95: float
    max: int
    flips: int
    fast_path: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Recall:
    count: int
    fast: int
    reference: int

    @property
    def holds(self) -> bool:
        return self.fast >= self.reference - RECALL_SLACK * self.count

    def __str__(self) -> str:
        if not self.count:
            return "-"
        return f"{self.fast / self.count:.3f} / {self.reference / self.count:.3f}"


@dataclass(frozen=True, kw_only=True, slots=True)
class GateReport:
    measured: tuple[Measured, ...]

    def groups(self, by: Callable[[Measured], str]) -> dict[str, tuple[Measured, ...]]:
        grouped: dict[str, list[Measured]] = {}
        for item in self.measured:
            grouped.setdefault(by(item), []).append(item)
        return {key: tuple(items) for key, items in grouped.items()}

    @staticmethod
    def drift(items: Iterable[Measured]) -> Drift:
        chosen = tuple(items)
        distances = [item.distance for item in chosen] or [0]
        return Drift(
            count=len(chosen),
            p50=float(np.percentile(distances, 50)),
            p95=float(np.percentile(distances, 95)),
            max=max(distances),
            flips=sum(item.quality_flip for item in chosen),
            fast_path=sum(item.path is PdqMode.FAST for item in chosen),
        )

    @staticmethod
    def recall(items: Iterable[Measured], edit: Edit) -> Recall:
        pairs = [item.found[edit] for item in items if edit in item.found]
        return Recall(
            count=len(pairs),
            fast=sum(fast for fast, _ in pairs),
            reference=sum(reference for _, reference in pairs),
        )

    def failures(self) -> list[str]:
        problems = []
        edits = sorted({edit for item in self.measured for edit in item.found})
        scopes = {"all": self.measured}
        scopes |= {f"band {b}": v for b, v in self.groups(lambda m: m.band).items()}
        scopes |= {f"kind {k}": v for k, v in self.groups(lambda m: m.kind).items()}
        for scope, items in scopes.items():
            for edit in edits:
                recall = self.recall(items, edit)
                if not recall.holds:
                    problems.append(f"{scope}, {edit}: fast/reference {recall}")
        photos = self.drift(m for m in self.measured if m.kind == PHOTO)
        if photos.p95 > P95_LIMIT or photos.max > MAX_LIMIT:
            problems.append(f"photo drift p95 {photos.p95:g} / max {photos.max}")
        for item in self.measured:
            if item.distance > CEILING:
                problems.append(f"{item.name}: drift {item.distance} > {CEILING}")
            if item.quality_flip:
                problems.append(
                    f"{item.name}: quality {item.fast_quality} fast, {item.reference_quality} ref"
                )
        return problems

    @property
    def passed(self) -> bool:
        return not self.failures()

    def summary(self) -> str:
        verdict = "pass" if self.passed else "FAIL: " + "; ".join(self.failures()[:10])
        overall = self.drift(self.measured)
        return f"{verdict} (n={overall.count}, drift p95 {overall.p95:g}, max {overall.max})"


def evaluate(
    samples: Iterable[Sample], edits: Iterable[Edit] = tuple(Edit), *, reuse: bool = False
) -> GateReport:
    chosen = tuple(edits)
    return GateReport(measured=tuple(measure(sample, chosen, reuse=reuse) for sample in samples))
