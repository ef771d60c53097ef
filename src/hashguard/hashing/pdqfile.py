"""PDQ of an image file's bytes: the pdq hasher's work, along the fast or the reference path.

The file is decoded once in the mode asked for (``decode`` takes the fast path only
where it holds); a fast hash of quality below ``FAST_QUALITY`` is made again on the
reference path; reference copies are added when ``also_reference`` asks for them (see
the README, "Which PDQ hashes leave hashguard").
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hashguard.domain.signals import FileSignals, PdqHash, PdqMode
from hashguard.hashing import animation
from hashguard.hashing.decode import Decoded, decode
from hashguard.hashing.pdq import pdq_hash
from hashguard.hashing.pdqgrid import sample

if TYPE_CHECKING:
    from hashguard.hashing.kernel import HashOptions

#: A fast-path hash of lower quality is recomputed on the reference path. On real JPEGs
#: from 768 px, every file that drifted 40 bits or more had a quality below 100, and
#: photos (the files the fast path is for) score 100.
FAST_QUALITY = 100


def add_pdq(data: bytes, signals: FileSignals, options: HashOptions) -> FileSignals:
    """``signals`` with the PDQ hashes of ``data``'s frames, its format and size.
    Raises what ``decode.decode`` raises, and whatever PDQ raises on odd pixels. An
    animated GIF/WebP of more than ``options.animation_frames`` frames is hashed like a
    video instead (``hashing.animation``)."""
    if animation.is_video_like(data, options):
        return animation.add_frames(data, signals, options)
    decoded = _decode(data, options, options.pdq_mode)
    pdq = _pdq(decoded, options)
    if any(frame.quality < FAST_QUALITY for frame in pdq if frame.mode is PdqMode.FAST):
        # Smooth pictures (gradients, plain fields) are where any preprocessing but
        # the reference flips many bits; PDQ marks them with a quality below 100.
        decoded = _decode(data, options, PdqMode.REFERENCE)
        pdq = _pdq(decoded, options)
    return dataclasses.replace(
        signals,
        pdq=pdq,
        image_format=str(decoded.image_format),
        width=decoded.width,
        height=decoded.height,
        pdq_reference=_reference_too(data, options, pdq),
    )


def _decode(data: bytes, options: HashOptions, mode: PdqMode) -> Decoded:
    return decode(data, max_pixels=options.max_pixels, max_frames=options.max_frames, mode=mode)


def _pdq(decoded: Decoded, options: HashOptions) -> tuple[PdqHash, ...]:
    frames = decoded.frames
    if decoded.mode is PdqMode.FAST:
        frames = tuple(
            sample(frame, *size) for frame, size in zip(frames, decoded.sizes, strict=True)
        )
    # Labelled with the path taken: a file asked for in fast mode that took the
    # reference path (see ``decode.fast_applies``) has a reference hash.
    return tuple(
        pdq_hash(frame, frame=index, dihedral=options.dihedral, mode=decoded.mode)
        for index, frame in enumerate(frames)
    )


def _reference_too(
    data: bytes, options: HashOptions, pdq: tuple[PdqHash, ...]
) -> tuple[PdqHash, ...]:
    """Reference-mode hashes of every frame when ``also_reference`` asks for them and
    some frame's hash is not one; empty when decoding for them fails (the exits then
    carry no PDQ hash of this file; its outcome is as the first decode made it)."""
    if not options.also_reference or all(p.mode is PdqMode.REFERENCE for p in pdq):
        return ()
    try:
        decoded = _decode(data, options, PdqMode.REFERENCE)
        return tuple(
            pdq_hash(frame, frame=index, mode=PdqMode.REFERENCE)
            for index, frame in enumerate(decoded.frames)
        )
    except Exception:  # noqa: BLE001 - a decode or PDQ failure here costs these hashes only
        return ()
