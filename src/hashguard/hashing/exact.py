"""MD5, SHA-1 and SHA-256 of a file's exact bytes, all three in one pass over the same buffer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, kw_only=True, slots=True)
class ExactHashes:
    size: int
    md5: str
    sha1: str
    sha256: str


class _Hashers:
    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self.md5.update(chunk)
        self.sha1.update(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)

    def result(self) -> ExactHashes:
        return ExactHashes(
            size=self.size,
            md5=self.md5.hexdigest(),
            sha1=self.sha1.hexdigest(),
            sha256=self.sha256.hexdigest(),
        )


def hash_bytes(data: bytes | memoryview) -> ExactHashes:
    hashers = _Hashers()
    hashers.update(data)
    return hashers.result()


def hash_stream(stream: BinaryIO, *, prefix: bytes = b"") -> ExactHashes:
    """Hash ``prefix`` followed by the rest of ``stream``, reading it once in 1 MiB chunks."""
    hashers = _Hashers()
    if prefix:
        hashers.update(prefix)
    while chunk := stream.read(CHUNK_BYTES):
        hashers.update(chunk)
    return hashers.result()
