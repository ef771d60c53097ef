"""The fast PDQ path passes the fidelity gate on a small corpus; its hashes match the wrapper's."""

from __future__ import annotations

import numpy as np
import pdqhash
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.signals import PdqMode
from hashguard.hashing.decode import FAST_MIN_SIDE, decode
from hashguard.hashing.fidelity import evaluate
from hashguard.hashing.pdq import core_available, pdq_hash
from hashguard.hashing.pdqgrid import GRID, sample


def _samples(
    width: int, height: int, photos: int, textures: int, seed: int
) -> list[tuple[str, bytes]]:
    kinds = [Kind.PHOTO] * photos + [Kind.TEXTURE] * textures
    return [
        (
            str(kind),
            encode(generate(kind, seed + index, width, height), "JPEG", quality=85 + index % 8),
        )
        for index, kind in enumerate(kinds)
    ]


@pytest.mark.slow
def test_fast_path_passes_the_gate_at_1_and_12_megapixels() -> None:
    samples = _samples(1152, 864, photos=12, textures=4, seed=300)
    samples += _samples(4000, 3000, photos=2, textures=1, seed=400)
    report = evaluate(samples)
    assert report.passed, report.summary()


@pytest.mark.slow
def test_fast_path_passes_the_gate_between_and_around_those_sizes() -> None:
    # Sizes the gate's two do not cover: no DCT scaling (640 x 480, 720p), 16:9 at 1/2
    # (1080p and its portrait twin), where a filter tuned to 4:3 would show its drift.
    samples = []
    for index, (width, height) in enumerate([(640, 480), (1280, 720), (1920, 1080), (1080, 1920)]):
        samples += _samples(width, height, photos=3, textures=2, seed=500 + 10 * index)
    report = evaluate(samples)
    assert report.passed, report.summary()


def test_the_grid_is_pdqs_own_decimation_when_pdq_would_not_blur() -> None:
    # Up to 128 px a side PDQ's blur window is 1: it keeps GRID x GRID of the pixels as
    # they are, and so must the grid, whatever the aspect ratio (and upwards too).
    rng = np.random.default_rng(11)
    for height, width in [(100, 80), (64, 64), (48, 128), (7, 5)]:
        luma = rng.integers(0, 256, (height, width), dtype=np.uint8)
        grid = sample(luma, width, height)
        assert grid.shape == (GRID, GRID)
        rows = ((np.arange(GRID) + 0.5) * height / GRID).astype(int)
        cols = ((np.arange(GRID) + 0.5) * width / GRID).astype(int)
        np.testing.assert_array_equal(grid, luma[np.ix_(rows, cols)])
        assert pdq_hash(grid, dihedral=True, mode=PdqMode.FAST) == pdq_hash(
            luma, dihedral=True, mode=PdqMode.FAST
        )


def test_the_grid_of_a_reduced_frame_follows_the_original_size() -> None:
    luma = np.asarray(generate(Kind.PHOTO, 5, 1152, 864).convert("L"))
    half = np.asarray(generate(Kind.PHOTO, 5, 1152, 864).convert("L").reduce(2))
    full_grid, half_grid = sample(luma, 1152, 864), sample(half, 1152, 864)
    # The same picture at half the pixels comes to (almost) the same 64 x 64 frame.
    assert np.abs(full_grid.astype(int) - half_grid.astype(int)).mean() < 2.0
    tiny = luma[:4, :100]
    assert sample(tiny, 100, 4) is tiny  # PDQ's "unhashable" case is left to PDQ


def test_the_c_core_and_the_wrapper_agree_bit_for_bit() -> None:
    assert core_available(), "pdqhash's C++ entry points were not found or disagreed"
    rng = np.random.default_rng(7)
    for shape in [(432, 576), (31, 17), (750, 1000)]:
        grey = generate(Kind.PHOTO, int(rng.integers(1000)), shape[1], shape[0]).convert("L")
        pixels = np.asarray(grey)
        ours = pdq_hash(pixels, dihedral=True, mode=PdqMode.REFERENCE)
        vectors, quality = pdqhash.compute_dihedral(np.stack([pixels] * 3, axis=2))
        wrapper = [np.packbits(v.astype(np.uint8)).tobytes().hex() for v in vectors]
        assert [ours.value, *ours.dihedral] == wrapper
        assert ours.quality == quality


@pytest.mark.parametrize(
    ("size", "image_format", "expected"),
    [
        ((1152, 864), "JPEG", (576, 432)),  # DCT scale 1/2
        ((4000, 3000), "JPEG", (1000, 750)),  # DCT scale 1/4
        ((800, 600), "JPEG", (800, 600)),  # already small
        ((4000, 3000), "PNG", (572, 429)),  # box-reduced by 7 after decoding
    ],
)
def test_fast_frames_keep_the_short_side_at_the_floor(
    size: tuple[int, int], image_format: str, expected: tuple[int, int]
) -> None:
    data = encode(generate(Kind.PHOTO, 1, *size), image_format)
    decoded = decode(data, max_pixels=50_000_000, mode=PdqMode.FAST)
    (frame,) = decoded.frames
    assert frame.ndim == 2
    assert (frame.shape[1], frame.shape[0]) == expected
    assert min(frame.shape) >= FAST_MIN_SIDE
    assert (decoded.width, decoded.height) == size  # the original size is reported
    assert decoded.sizes == (size,)
