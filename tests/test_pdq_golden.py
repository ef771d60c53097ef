"""Golden test: our PDQ is bit-identical to threatexchange's PdqSignal (what HMA uses)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.signals import PdqMode
from hashguard.hashing.kernel import HashOptions, hash_path

pdq_signal = pytest.importorskip("threatexchange.signal_type.pdq.signal")

# (format, Pillow mode) combinations threatexchange handles without converting colours.
CASES = [
    ("JPEG", "RGB"),
    ("JPEG", "L"),
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "L"),
    ("PNG", "LA"),
    ("WEBP", "RGB"),
    ("WEBP", "RGBA"),
    ("BMP", "RGB"),
    ("TIFF", "RGB"),
]


def _images(folder: Path) -> list[Path]:
    paths = []
    for index in range(60):
        image_format, mode = CASES[index % len(CASES)]
        kind = Kind.TEXTURE if index % 5 == 4 else Kind.PHOTO
        width, height = 96 + (index * 37) % 700, 80 + (index * 53) % 500
        image = generate(kind, seed=index, width=width, height=height)
        if mode in ("RGBA", "LA"):
            image = image.convert(mode)
            image.putalpha(Image.linear_gradient("L").resize(image.size))
        else:
            image = image.convert(mode)
        path = folder / f"golden-{index:02d}.{image_format.lower()}"
        path.write_bytes(encode(image, image_format))
        paths.append(path)
    return paths


def test_pdq_is_bit_identical_to_threatexchange_on_60_generated_images(tmp_path: Path) -> None:
    options = HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE)
    paths = _images(tmp_path)
    assert len(paths) >= 50
    for path in paths:
        expected = pdq_signal.PdqSignal.hash_from_file(path)
        output = hash_path(str(path), options)
        assert output.problem is None, path
        assert output.signals is not None
        ours = output.signals.pdq[0]
        # PdqSignal returns "" for quality below its threshold; compare only real hashes.
        if expected:
            assert ours.value == expected, path.name
        else:
            assert ours.low_quality, path.name
