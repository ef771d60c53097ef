"""Hostile but benign files: bombs, lying headers, truncations, frame floods, polyglots."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from hashguard.demo.corpus import Kind, encode, generate


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid greyscale PNG of ``width`` x ``height`` zero pixels, built without allocating
    the image: its IDAT is the zlib stream of all-zero scanlines, compressed in pieces."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def png_lying_header(width: int = 65535, height: int = 65535) -> bytes:
    """A tiny PNG whose header declares a huge image."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def truncated(image_format: str) -> bytes:
    data = encode(generate(Kind.PHOTO, seed=77, width=320, height=240), image_format)
    return data[: len(data) // 2]


def gif_with_frames(frames: int, size: int = 32) -> bytes:
    images = [
        generate(Kind.TEXTURE, seed=index, width=size, height=size).convert("P")
        for index in range(min(frames, 16))
    ]
    sequence = [images[index % len(images)] for index in range(frames)]
    buffer = io.BytesIO()
    sequence[0].save(buffer, "GIF", save_all=True, append_images=sequence[1:], duration=20, loop=0)
    return buffer.getvalue()


def jpeg_with_zip(jpeg: bytes) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("readme.txt", "a benign appended archive")
    return jpeg + archive.getvalue()


def write_hostile_set(folder: Path) -> dict[str, Path]:
    """Every hostile input of the foundation issue, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "png_bomb_over_cap": png_of_zeros(12_000, 10_000),  # 120 MP
        "bomb_81mp": png_of_zeros(9_000, 9_000),  # under Pillow's own 89 MP limit
        "lying_header": png_lying_header(),
        "truncated_jpeg": truncated("JPEG"),
        "truncated_png": truncated("PNG"),
        "truncated_webp": truncated("WEBP"),
        "frame_flood_gif": gif_with_frames(3000),
        "empty": b"",
    }
    suffix = {
        "truncated_jpeg": ".jpg",
        "truncated_webp": ".webp",
        "frame_flood_gif": ".gif",
        "empty": ".jpg",
    }
    paths = {}
    for name, data in files.items():
        path = folder / f"{name}{suffix.get(name, '.png')}"
        path.write_bytes(data)
        paths[name] = path
    return paths


def pixel_count(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return image.width * image.height
