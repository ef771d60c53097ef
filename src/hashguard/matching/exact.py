"""Exact-hash index: MD5, SHA-1 and SHA-256 digests of every bank, in one sorted array.

Entries are sorted by the first eight bytes of their digest; a lookup is a binary search
on that prefix, then a check of the algorithm and the whole digest. At 10 M entries it
takes about 0.5 GiB (a Python set of the digests alone takes 0.87 GiB) and one file's
three digests are looked up in one call. Additions go to a dict and removals are
tombstones, so list updates take effect at once; ``compacted()`` folds them in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from hashguard.domain.signals import EXACT_ALGORITHMS, Algorithm

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]

DIGEST_BYTES = 32
#: Persisted codes of the exact algorithms in index arrays.
CODES: dict[Algorithm, int] = {
    algorithm: code for code, algorithm in enumerate(EXACT_ALGORITHMS, 1)
}


def digests(values: Sequence[str]) -> U8:
    """Hex digests to an (N, 32) uint8 array, zero-padded on the right."""
    out = np.zeros((len(values), DIGEST_BYTES), dtype=np.uint8)
    for row, value in enumerate(values):
        raw = bytes.fromhex(value)
        out[row, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


def _prefixes(digest_rows: U8) -> npt.NDArray[np.uint64]:
    return np.ascontiguousarray(digest_rows[:, :8]).view(">u8").reshape(-1).astype(np.uint64)


def _view(array: npt.NDArray[Any], fmt: Literal["B", "H", "I", "q", "Q"]) -> memoryview[int]:
    """A flat memoryview of ``array`` read as ``fmt`` (empty arrays included)."""
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return (raw.data if raw.size else memoryview(b"")).cast(fmt)


@dataclass(frozen=True, kw_only=True, slots=True)
class ExactHit:
    payload: int
    bank: int
    algorithm: Algorithm


class ExactIndex:
    def __init__(self, algorithms: U8, digest_rows: U8, payloads: I64, banks: U16) -> None:
        if not (len(algorithms) == len(digest_rows) == len(payloads) == len(banks)):
            raise ValueError("algorithms, digests, payloads and banks must be parallel")
        if digest_rows.shape[1:] != (DIGEST_BYTES,):
            raise ValueError("digests must be (N, 32) uint8")
        prefixes = _prefixes(digest_rows)
        order = np.argsort(prefixes, kind="stable")
        self._prefixes = prefixes[order]
        self._algorithms = np.ascontiguousarray(algorithms[order], dtype=np.uint8)
        self._digests = np.ascontiguousarray(digest_rows[order], dtype=np.uint8)
        self._payloads = np.ascontiguousarray(payloads[order], dtype=np.int64)
        self._banks = np.ascontiguousarray(banks[order], dtype=np.uint16)
        self._by_payload = np.argsort(self._payloads, kind="stable")
        self._alive = np.ones(len(order), dtype=bool)
        # Memoryviews give plain Python ints and bytes per element, which the lookup
        # loop compares far faster than numpy scalars.
        self._prefix_view = _view(self._prefixes, "Q")
        # Bucket table over the top bits of the prefix (about one entry per bucket): a
        # lookup is two list reads and a short scan, with no numpy call at all.
        self._shift = 64 - max(1, min(24, len(order).bit_length()))
        buckets = np.zeros((1 << (64 - self._shift)) + 1, dtype=np.int64)
        np.cumsum(
            np.bincount(self._prefixes >> np.uint64(self._shift), minlength=len(buckets) - 1),
            out=buckets[1:],
        )
        self._bucket_view = _view(buckets.astype(np.uint32), "I")
        self._digest_view = _view(self._digests, "B")
        self._code_view = _view(self._algorithms, "B")
        self._alive_view = _view(self._alive, "B")
        self._payload_view = _view(self._payloads, "q")
        self._bank_view = _view(self._banks, "H")
        self._delta: defaultdict[tuple[int, bytes], list[tuple[int, int]]] = defaultdict(list)

    @classmethod
    def empty(cls) -> ExactIndex:
        return cls(
            np.empty(0, np.uint8),
            np.empty((0, DIGEST_BYTES), np.uint8),
            np.empty(0, np.int64),
            np.empty(0, np.uint16),
        )

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> ExactIndex:
        return cls(arrays["algorithms"], arrays["digests"], arrays["payloads"], arrays["banks"])

    def __len__(self) -> int:
        return int(self._alive.sum()) + sum(len(v) for v in self._delta.values())

    @property
    def pending(self) -> int:
        return sum(len(v) for v in self._delta.values()) + int((~self._alive).sum())

    def count(self, code: int) -> int:
        """Live entries of one algorithm (by its ``CODES`` number)."""
        main = int((self._alive & (self._algorithms == code)).sum())
        return main + sum(len(v) for (c, _), v in self._delta.items() if c == code)

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        if self.pending:
            raise ValueError("compact the index before saving it")
        return {
            "algorithms": self._algorithms,
            "digests": self._digests,
            "payloads": self._payloads,
            "banks": self._banks,
        }

    def add(self, algorithms: U8, digest_rows: U8, payloads: I64, banks: U16) -> None:
        for code, digest, payload, bank in zip(
            algorithms, digest_rows, payloads, banks, strict=True
        ):
            self._delta[(int(code), digest.tobytes())].append((int(payload), int(bank)))

    def remove(self, payloads: I64) -> int:
        removed = 0
        if len(self._payloads) and len(payloads):
            sorted_payloads = self._payloads[self._by_payload]
            where = np.searchsorted(sorted_payloads, payloads)
            found = where < len(sorted_payloads)
            found[found] = sorted_payloads[where[found]] == payloads[found]
            rows = self._by_payload[where[found]]
            removed += int(self._alive[rows].sum())
            self._alive[rows] = False
        gone = set(payloads.tolist())
        for key, entries in list(self._delta.items()):
            kept = [entry for entry in entries if entry[0] not in gone]
            removed += len(entries) - len(kept)
            if kept:
                self._delta[key] = kept
            else:
                del self._delta[key]
        return removed

    def compacted(self) -> ExactIndex:
        alive = self._alive
        keys = list(self._delta.items())
        flat = [(code, digest, payload, bank) for (code, digest), v in keys for payload, bank in v]
        extra_digests = np.frombuffer(b"".join(d for _, d, _, _ in flat), dtype=np.uint8)
        return ExactIndex(
            np.concatenate([self._algorithms[alive], np.array([c for c, *_ in flat], np.uint8)]),
            np.concatenate([self._digests[alive], extra_digests.reshape(-1, DIGEST_BYTES)]),
            np.concatenate([self._payloads[alive], np.array([p for *_, p, _ in flat], np.int64)]),
            np.concatenate([self._banks[alive], np.array([b for *_, b in flat], np.uint16)]),
        )

    def lookup(self, queries: Sequence[tuple[Algorithm, str]]) -> list[ExactHit]:
        """Every live entry equal to one of the (algorithm, hex digest) queries."""
        hits: list[ExactHit] = []
        for algorithm, value in queries:
            code = CODES[algorithm]
            raw = bytes.fromhex(value).ljust(DIGEST_BYTES, b"\0")
            key = int(value[:16], 16)
            bucket = key >> self._shift
            for position in range(self._bucket_view[bucket], self._bucket_view[bucket + 1]):
                if self._prefix_view[position] != key:
                    continue
                start = position * DIGEST_BYTES
                if (
                    self._alive_view[position]
                    and self._code_view[position] == code
                    and self._digest_view[start : start + DIGEST_BYTES] == raw
                ):
                    hits.append(
                        ExactHit(
                            payload=self._payload_view[position],
                            bank=self._bank_view[position],
                            algorithm=algorithm,
                        )
                    )
            for payload, bank in self._delta.get((code, raw), ()):
                hits.append(ExactHit(payload=payload, bank=bank, algorithm=algorithm))
        return hits
