"""Exact-hash index: MD5, SHA-1 and SHA-256 values to the bank entries that carry them."""

from __future__ import annotations

from collections import defaultdict

from hashguard.domain.signals import Algorithm


class ExactIndex:
    """Maps (algorithm, raw digest bytes) to entry references (opaque ints)."""

    def __init__(self) -> None:
        self._entries: defaultdict[tuple[Algorithm, bytes], list[int]] = defaultdict(list)

    def __len__(self) -> int:
        return sum(len(refs) for refs in self._entries.values())

    def add(self, algorithm: Algorithm, value: str, ref: int) -> None:
        self._entries[(algorithm, bytes.fromhex(value))].append(ref)

    def lookup(self, algorithm: Algorithm, value: str) -> list[int]:
        return self._entries.get((algorithm, bytes.fromhex(value)), [])
