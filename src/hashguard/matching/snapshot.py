"""A safe file format for index snapshots: raw arrays, a JSON manifest, one SHA-256 trailer.

Layout: ``HGSNAP1\\n``, the header length (8 bytes, little-endian), the JSON header
(metadata and, per array, name, dtype, shape and offset), the arrays (64-byte aligned,
little-endian, a few allowed dtypes), then the SHA-256 of everything before it. No
pickle and nothing executable; a truncated or altered file (header, data or padding)
fails the digest and raises ``SnapshotError`` instead of loading. Writes go to a
temporary file with a unique name (``mkstemp``, mode 0600) renamed into place, so a
crash never leaves half a snapshot and two servers saving at once never write into one
file; the folder is created 0700 (a snapshot holds list hashes).

The digest detects damage and tampering by anyone who does not recompute it; a
snapshot is a cache of the store, so anyone able to rewrite it could rewrite the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hashguard.permissions import private_dir

MAGIC = b"HGSNAP1\n"
ALIGN = 64
DIGEST = 32
ALLOWED_DTYPES = frozenset({"|b1", "|u1", "<u2", "<u4", "<u8", "<i2", "<i8"})
MAX_HEADER = 1 << 20


class SnapshotError(ValueError):
    """The snapshot is missing, truncated, tampered with or of an unknown layout."""


def _aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def write(path: Path, arrays: Mapping[str, npt.NDArray[Any]], meta: Mapping[str, Any]) -> None:
    entries, blobs, offset = [], [], 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        if data.dtype.str not in ALLOWED_DTYPES:
            raise ValueError(f"array {name!r} has dtype {array.dtype}, not allowed in a snapshot")
        entries.append(
            {"name": name, "dtype": data.dtype.str, "shape": list(data.shape), "offset": offset}
        )
        blobs.append((offset, data))
        offset = _aligned(offset + data.nbytes)
    header = json.dumps({"meta": dict(meta), "arrays": entries}).encode()
    head = MAGIC + len(header).to_bytes(8, "little") + header
    head += b"\0" * (_aligned(len(head)) - len(head))
    end = blobs[-1][0] + blobs[-1][1].nbytes if blobs else 0
    digest = hashlib.sha256(head)
    private_dir(path.parent)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    partial = Path(name)
    try:
        _write_body(fd, head, blobs, digest, end)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _forget_stale_partials(path)


#: a temporary snapshot file this old was left by a writer that was killed
STALE_PARTIAL_SECONDS = 3600


def _forget_stale_partials(path: Path) -> None:
    """Remove temporary files left by killed writers (by the file system's clock: the
    age is measured from the snapshot just written)."""
    cutoff = path.stat().st_mtime - STALE_PARTIAL_SECONDS
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        with suppress(OSError):  # another writer's, finished or removed meanwhile
            if stale.stat().st_mtime < cutoff:
                stale.unlink()


def _write_body(
    fd: int,
    head: bytes,
    blobs: list[tuple[int, npt.NDArray[Any]]],
    digest: Any,
    end: int,
) -> None:
    with os.fdopen(fd, "wb") as stream:
        stream.write(head)
        written = 0
        for start, data in blobs:
            gap = b"\0" * (start - written)
            raw = (
                data.reshape(-1).view(np.uint8).tobytes() if data.size == 0 else data.data.cast("B")
            )
            for piece in (gap, raw):
                stream.write(piece)
                digest.update(piece)
            written = start + data.nbytes
        assert written == end
        stream.write(digest.digest())
        stream.flush()
        os.fsync(stream.fileno())


def read(path: Path) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """The arrays and metadata of a snapshot whose trailer digest checks out."""
    try:
        with path.open("rb") as stream:
            content = bytearray(os.fstat(stream.fileno()).st_size)
            if stream.readinto(content) != len(content):
                raise SnapshotError(f"{path} changed while being read")
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror}") from exc
    view = memoryview(content)
    prefix = len(MAGIC) + 8
    if len(content) < prefix + DIGEST or not content.startswith(MAGIC):
        raise SnapshotError(f"{path} is not a hashguard snapshot")
    if hashlib.sha256(view[:-DIGEST]).digest() != view[-DIGEST:]:
        raise SnapshotError(f"{path} fails its SHA-256 check (truncated or altered)")
    length = int.from_bytes(view[len(MAGIC) : prefix], "little")
    if length > MAX_HEADER or prefix + length > len(content) - DIGEST:
        raise SnapshotError(f"{path} has an implausible header")
    try:
        manifest = json.loads(bytes(view[prefix : prefix + length]))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path} has a corrupt header") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), list):
        raise SnapshotError(f"{path} has a malformed header")
    meta = manifest.get("meta")
    if not isinstance(meta, dict):
        raise SnapshotError(f"{path} has no metadata")
    body = view[_aligned(prefix + length) : -DIGEST]
    arrays = dict(_array(entry, body, path) for entry in manifest["arrays"])
    return arrays, meta


def _array(entry: Any, body: memoryview, path: Path) -> tuple[str, npt.NDArray[Any]]:
    try:
        name, dtype, offset = str(entry["name"]), str(entry["dtype"]), int(entry["offset"])
        shape = tuple(int(n) for n in entry["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"{path}: malformed array entry") from exc
    if dtype not in ALLOWED_DTYPES or any(n < 0 for n in shape):
        raise SnapshotError(f"{path}: array {name!r} has a forbidden dtype or shape")
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if offset < 0 or offset + nbytes > len(body):
        raise SnapshotError(f"{path}: array {name!r} lies outside the file")
    return name, np.frombuffer(body[offset : offset + nbytes], dtype=dtype).reshape(shape)
