"""Safe decoding and the vetted hashers, in-process (isolation is tested in test_isolate)."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.scans import Outcome
from hashguard.domain.signals import DIHEDRAL_NAMES
from hashguard.hashing.decode import ImageFormat, decode, sniff
from hashguard.hashing.exact import CHUNK_BYTES, hash_bytes, hash_stream
from hashguard.hashing.kernel import HashOptions, hash_data, hash_path
from tests import hostile

OPTIONS = HashOptions(max_pixels=50_000_000)


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES * 2 + 17])
def test_exact_hashes_match_hashlib_across_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    expected = (
        hashlib.md5(data).hexdigest(),
        hashlib.sha1(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )
    for result in (hash_bytes(data), hash_stream(io.BytesIO(data[3:]), prefix=data[:3])):
        assert (result.md5, result.sha1, result.sha256) == expected
        assert result.size == size


@pytest.mark.parametrize(
    ("image_format", "expected"),
    [
        ("JPEG", ImageFormat.JPEG),
        ("PNG", ImageFormat.PNG),
        ("GIF", ImageFormat.GIF),
        ("WEBP", ImageFormat.WEBP),
        ("BMP", ImageFormat.BMP),
        ("TIFF", ImageFormat.TIFF),
        ("HEIF", ImageFormat.HEIF),
        ("AVIF", ImageFormat.AVIF),
    ],
)
def test_every_allowed_format_decodes(image_format: str, expected: ImageFormat) -> None:
    image = generate(Kind.PHOTO, seed=3, width=200, height=150)
    data = encode(image, image_format)
    assert sniff(data[:16]) is expected
    decoded = decode(data, max_pixels=10**6)
    assert decoded.image_format is expected
    assert (decoded.width, decoded.height) == (200, 150)
    assert decoded.frames[0].shape == (150, 200, 3)


def test_formats_outside_the_allowlist_are_unsupported_but_exact_hashed() -> None:
    image = generate(Kind.PHOTO, seed=3, width=64, height=64)
    for data in (encode(image, "PPM"), encode(image, "ICO"), b"%PDF-1.4 not an image", b"hello"):
        output = hash_data(data, OPTIONS)
        assert output.problem is Outcome.UNSUPPORTED
        assert output.signals is not None
        assert output.signals.md5 == hashlib.md5(data).hexdigest()
        assert output.signals.pdq == ()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("png_bomb_over_cap", "over the 50 MP cap"),
        ("bomb_81mp", "9000x9000 = 81.0 MP, over the 50 MP cap"),
        ("lying_header", "decompression bomb refused"),
        ("truncated_jpeg", "truncated"),
        ("truncated_png", "could not be decoded"),
        ("truncated_webp", "could not be decoded"),
    ],
)
def test_hostile_images_are_refused_with_a_reason(tmp_path: Path, name: str, reason: str) -> None:
    path = hostile.write_hostile_set(tmp_path)[name]
    output = hash_path(str(path), OPTIONS)
    assert output.problem is Outcome.UNDECODABLE
    assert reason in (output.reason or "")
    assert output.signals is not None
    assert output.signals.md5 == hashlib.md5(path.read_bytes()).hexdigest()


def test_the_81_megapixel_bomb_is_under_pillows_own_limit() -> None:
    assert hostile.pixel_count(hostile.png_of_zeros(9_000, 9_000)) < Image.MAX_IMAGE_PIXELS


def test_pixel_cap_is_configurable() -> None:
    data = encode(generate(Kind.PHOTO, seed=1, width=400, height=300))
    assert hash_data(data, HashOptions(max_pixels=120_000)).problem is None
    refused = hash_data(data, HashOptions(max_pixels=119_999))
    assert refused.problem is Outcome.UNDECODABLE


def test_animated_images_hash_the_first_frame_unless_asked(tmp_path: Path) -> None:
    """An animation of at most ``animation_frames`` frames is an image (one of more is
    sampled like a video: tests/test_video.py)."""
    data = hostile.gif_with_frames(3000)
    as_image = replace(OPTIONS, animation_frames=3000)
    first = hash_data(data, as_image)
    assert first.problem is None
    assert first.signals is not None
    assert [p.frame for p in first.signals.pdq] == [0]
    several = hash_data(data, replace(as_image, max_frames=5))
    assert several.signals is not None
    assert [p.frame for p in several.signals.pdq] == [0, 1, 2, 3, 4]
    assert several.signals.pdq[0] == first.signals.pdq[0]
    assert len({p.value for p in several.signals.pdq}) == 5


def test_jpeg_with_appended_zip_records_byte_and_pixel_hashes() -> None:
    jpeg = encode(generate(Kind.PHOTO, seed=8, width=300, height=200))
    polyglot = hostile.jpeg_with_zip(jpeg)
    clean, mixed = hash_data(jpeg, OPTIONS), hash_data(polyglot, OPTIONS)
    assert clean.signals is not None
    assert mixed.signals is not None
    assert mixed.problem is None
    assert mixed.signals.md5 == hashlib.md5(polyglot).hexdigest() != clean.signals.md5
    assert mixed.signals.pdq == clean.signals.pdq


def test_empty_and_special_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    output = hash_path(str(empty), OPTIONS)
    assert (output.problem, output.reason) == (Outcome.UNSUPPORTED, "empty file")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert hash_path(str(fifo), OPTIONS).problem is Outcome.UNSUPPORTED  # and does not hang
    missing = hash_path(str(tmp_path / "missing"), OPTIONS)
    assert missing.problem is Outcome.ERROR
    assert missing.signals is None


def test_low_quality_pdq_is_recorded_and_flagged() -> None:
    flat = encode(Image.new("RGB", (200, 200), (128, 128, 128)), "PNG")
    output = hash_data(flat, OPTIONS)
    assert output.signals is not None
    (pdq,) = output.signals.pdq
    assert pdq.low_quality
    assert pdq.quality < 50


def test_dihedral_variants_are_the_hashes_of_rotated_and_mirrored_pixels() -> None:
    # Large enough that PDQ's downsampling grid is symmetric (small images drift ~20-36).
    image = generate(Kind.PHOTO, seed=12, width=800, height=600)
    options = HashOptions(max_pixels=10**7, dihedral=True)
    base = hash_data(encode(image, "PNG"), options).signals
    assert base is not None
    (pdq,) = base.pdq
    assert len(pdq.dihedral) == 7
    plain = hash_data(encode(image, "PNG"), OPTIONS).signals
    assert plain is not None
    assert plain.pdq[0].value == pdq.value
    variants = (pdq.value, *pdq.dihedral)
    for transpose, name in (
        (Image.Transpose.ROTATE_90, "rotate90"),
        (Image.Transpose.ROTATE_180, "rotate180"),
        (Image.Transpose.FLIP_LEFT_RIGHT, "flip_y"),
    ):
        turned = hash_data(encode(image.transpose(transpose), "PNG"), OPTIONS).signals
        assert turned is not None
        distances = [_distance(turned.pdq[0].value, v) for v in variants]
        assert distances[DIHEDRAL_NAMES.index(name)] == min(distances) <= 4


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_pdq_input_for_palette_images_uses_colours_not_indices() -> None:
    """A deliberate difference from threatexchange, which hashes palette indices."""
    image = generate(Kind.PHOTO, seed=5, width=128, height=128).quantize(64)
    reordered = image.remap_palette(list(reversed(range(64))))
    assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(reordered.convert("RGB")))
    first = hash_data(encode(image, "PNG"), OPTIONS).signals
    second = hash_data(encode(reordered, "PNG"), OPTIONS).signals
    assert first is not None
    assert second is not None
    assert first.pdq == second.pdq
