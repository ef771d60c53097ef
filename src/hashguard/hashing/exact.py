"""The exact hashes of a file's bytes: every exact hasher fed in one pass over the same chunks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.hashing.hasher import BUILTIN_HASHERS, ExactHasher, Hasher

CHUNK_BYTES = 1 << 20


def exact_hashers(hashers: Sequence[Hasher]) -> tuple[ExactHasher, ...]:
    return tuple(h for h in hashers if isinstance(h, ExactHasher))


_BUILTIN_EXACT = exact_hashers(BUILTIN_HASHERS)


def hash_chunks(
    chunks: Iterable[bytes | memoryview], hashers: Sequence[ExactHasher] = _BUILTIN_EXACT
) -> FileSignals:
    """The exact hashes of the concatenated ``chunks``, as ``FileSignals`` holding only
    them (``hashers`` must cover md5, sha1 and sha256: ``hasher.checked``)."""
    digests = [(h.algorithm, h.digest()) for h in hashers]
    size = 0
    for chunk in chunks:
        for _, digest in digests:
            digest.update(chunk)
        size += len(chunk)
    values = {algorithm: digest.hexdigest() for algorithm, digest in digests}
    return FileSignals(
        size=size,
        md5=values[Algorithm.MD5],
        sha1=values[Algorithm.SHA1],
        sha256=values[Algorithm.SHA256],
    )


def hash_bytes(
    data: bytes | memoryview, hashers: Sequence[ExactHasher] = _BUILTIN_EXACT
) -> FileSignals:
    return hash_chunks((data,), hashers)


def hash_stream(
    stream: BinaryIO, *, prefix: bytes = b"", hashers: Sequence[ExactHasher] = _BUILTIN_EXACT
) -> FileSignals:
    """Hash ``prefix`` followed by the rest of ``stream``, reading it once in 1 MiB chunks."""
    return hash_chunks(_chunks(stream, prefix), hashers)


def _chunks(stream: BinaryIO, prefix: bytes) -> Iterator[bytes]:
    if prefix:
        yield prefix
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk
