"""The default PDQ mode finds what the reference finds on real images; the fast path's pieces."""

from __future__ import annotations

import numpy as np
import pdqhash
import pytest
from bench.realimages import TEST_PACKAGES, discover, native_samples, pick, resized_samples
from PIL import Image

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.signals import FileSignals, PdqMode
from hashguard.hashing.decode import FAST_MIN_SIDE, decode
from hashguard.hashing.fidelity import Edit, Sample, edited, evaluate
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.hashing.pdq import core_available, pdq_hash
from hashguard.hashing.pdqgrid import GRID, sample

REAL = discover(TEST_PACKAGES)
KINDS = frozenset({"icon", "line art", "screenshot", "palette", "greyscale", "artwork", "photo"})
needs_real_images = pytest.mark.skipif(
    not {image.kind for image in REAL} >= KINDS,
    reason="the real images are not installed (.ci/real-images installs them)",
)


def _real_sample() -> list[Sample]:
    """One image per (kind, band) up to 2 MP, plus the fast path's case: JPEGs from 1 MP.

    Above 2 MP only JPEGs are kept (a 2 MP PNG takes the reference path in both settings
    and costs a second per edit); Matplotlib's photo is resized to 1 MP and to 48 x 48.
    """
    chosen = [
        image
        for image in pick(REAL, per_group=1)
        if image.width * image.height < 2_000_000 or image.image_format == "JPEG"
    ]
    photos = resized_samples(REAL, (48 * 48, 1152 * 864), 1, frozenset({"photo"}))
    return native_samples(chosen) + photos


@needs_real_images
def test_the_default_mode_finds_what_the_reference_finds_on_real_images() -> None:
    samples = _real_sample()
    assert {sample.kind for sample in samples} == KINDS
    report = evaluate(samples)
    assert report.passed, report.summary()
    # The sample reaches both paths: small files and non-JPEGs take the reference path.
    paths = {item.path for item in report.measured}
    assert paths == {PdqMode.FAST, PdqMode.REFERENCE}
    assert len(report.measured) >= 20


def test_small_and_non_jpeg_files_take_the_reference_path_and_say_so() -> None:
    # Before: a 300 x 300 PNG got a fast-path hash 10+ bits from the reference, labelled fast.
    cases = [
        (encode(generate(Kind.PHOTO, 3, 300, 300), "PNG"), PdqMode.REFERENCE),
        (encode(generate(Kind.PHOTO, 4, 700, 500), "JPEG"), PdqMode.REFERENCE),
        (encode(generate(Kind.PHOTO, 5, 2400, 1800), "PNG"), PdqMode.REFERENCE),
        (encode(generate(Kind.PHOTO, 6, 1152, 864), "JPEG"), PdqMode.FAST),
    ]
    for data, path in cases:
        default = hash_data(data, HashOptions(max_pixels=50_000_000)).signals
        reference = hash_data(
            data, HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE)
        ).signals
        assert default is not None
        assert reference is not None
        (ours,) = default.pdq
        assert ours.mode is path
        assert reference.pdq[0].mode is PdqMode.REFERENCE
        if path is PdqMode.REFERENCE:
            assert ours == reference.pdq[0]


def test_a_smooth_jpeg_below_quality_100_on_the_fast_path_gets_the_reference_hash() -> None:
    # A radial gradient at 1200 x 900: the fast path's hash has quality 77 and lies 60
    # bits from the reference hash; the default mode must hash it on the reference path.
    image = Image.radial_gradient("L").resize((1200, 900))
    data = encode(image, "JPEG", quality=90)
    (default,) = _signals(data, PdqMode.FAST).pdq
    (reference,) = _signals(data, PdqMode.REFERENCE).pdq
    assert default == reference
    assert default.mode is PdqMode.REFERENCE


def _signals(data: bytes, mode: PdqMode) -> FileSignals:
    signals = hash_data(data, HashOptions(max_pixels=50_000_000, pdq_mode=mode)).signals
    assert signals is not None
    return signals


def test_a_palette_image_with_transparency_bytes_is_hashed_in_both_modes() -> None:
    # Pillow warns when such an image is converted; with warnings as errors (the test
    # suite, or a deployment that sets -W error) the file used to come out undecodable.
    image = generate(Kind.PHOTO, 8, 120, 90).convert("P")
    image.info["transparency"] = bytes(range(256))
    data = encode(image, "PNG")
    for mode in PdqMode:
        output = hash_data(data, HashOptions(max_pixels=1_000_000, pdq_mode=mode))
        assert output.problem is None, output.reason


def test_each_edit_changes_the_file_and_keeps_it_decodable() -> None:
    data = encode(generate(Kind.PHOTO, 9, 160, 120).convert("RGBA"), "PNG")
    for edit in Edit:
        changed = edited(data, edit)
        assert (changed == data) is (edit is Edit.EXACT)
        assert hash_data(changed, HashOptions(max_pixels=10_000_000)).signals is not None


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
        ((800, 600), "JPEG", None),  # not scaled by the decoder: the reference path
        ((4000, 3000), "PNG", None),  # not a JPEG: the reference path
    ],
)
def test_fast_frames_are_dct_scaled_jpegs_with_the_short_side_at_the_floor(
    size: tuple[int, int], image_format: str, expected: tuple[int, int] | None
) -> None:
    data = encode(generate(Kind.PHOTO, 1, *size), image_format)
    decoded = decode(data, max_pixels=50_000_000, mode=PdqMode.FAST)
    (frame,) = decoded.frames
    assert (decoded.width, decoded.height) == size  # the original size is reported
    assert decoded.sizes == (size,)
    if expected is None:
        assert decoded.mode is PdqMode.REFERENCE
        assert frame.shape == (size[1], size[0], 3)
        return
    assert decoded.mode is PdqMode.FAST
    assert frame.ndim == 2
    assert (frame.shape[1], frame.shape[0]) == expected
    assert min(frame.shape) >= FAST_MIN_SIDE
