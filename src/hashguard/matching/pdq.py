"""PDQ index: every live entry within its bank's Hamming-distance threshold of a query hash.

An exact range search by multi-index hashing (Norouzi, Punjani and Fleet, "Fast Exact
Search in Hamming Space with Multi-Index Hashing", 2014). The 256 bits are split into
``m`` chunks of at most 24 bits; if two hashes differ in at most ``T`` bits, some chunk
differs in at most ``T // m`` bits (pigeonhole). For each chunk the entries are kept
sorted by that chunk's value, with a table of bucket offsets, so a query enumerates the
buckets within radius ``T // m`` of its own chunk values (one bit less in some chunks:
see ``_probes_for``), gathers the (few) candidates and verifies each by its Hamming
distance. With ``m = 11`` and ``T = 31`` a query probes about 2,800 buckets and verifies
about 2,700 candidates at 10 M entries, whatever the list's size otherwise; every entry
within ``T`` is found (the tests hold it to a brute-force oracle).

Entries carry an opaque ``payload`` (the store's row id) and a bank number; thresholds
are per bank and given at query time, so changing a bank's threshold or switching it
off needs no rebuild. Additions go to a small delta searched by brute force and
removals are tombstones, so list updates take effect at once; ``compacted()`` folds
them into a fresh index. A wider query than the chunking was planned for (a bank
threshold raised since the build, or a ``fast`` hash's confirmation margin: 41 bits) is
still answered exactly, by probing ``limit // m`` bits per chunk (up to ``MAX_RADIUS``;
about 2.3 ms at 1 M entries and 3.5 ms at 10 M against 0.5 ms for 31 bits), beyond that
by a brute-force scan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
U16 = npt.NDArray[np.uint16]
I16 = npt.NDArray[np.int16]

WORDS = 4  # 256 bits as four little-endian uint64 words, word 0 least significant
MAX_CHUNK_BITS = 24  # offset tables of at most 2^24 entries per chunk
MIN_CHUNK_BITS = 16
RADIUS = 2  # bits a query probes per chunk; more radius means far more buckets
#: A wider query (a threshold above the one the chunking was planned for, e.g. the
#: confirmation margin of fast hashes) probes up to this many bits per chunk, then falls
#: back to a scan of every row.
MAX_RADIUS = 3
DEFAULT_THRESHOLD = 31
#: Below this many entries a brute-force scan (about 1 ms) beats building the structure.
FLAT_BELOW = 65_536


def pack(values: Sequence[str]) -> U64:
    """Hex PDQ hashes to an (N, 4) array of uint64 words, vectorised."""
    if not values:
        return np.empty((0, WORDS), np.uint64)
    raw = np.frombuffer(bytes.fromhex("".join(values)), dtype=np.uint8).reshape(-1, 32)
    return np.ascontiguousarray(raw[:, ::-1]).view("<u8").astype(np.uint64)


def unpack(words: U64) -> str:
    return words.astype("<u8").tobytes()[::-1].hex()


@dataclass(frozen=True, slots=True)
class Layout:
    """How the 256 bits are chunked for an index that answers thresholds up to ``threshold``."""

    threshold: int
    widths: tuple[int, ...]

    @classmethod
    def plan(cls, threshold: int, count: int) -> Layout:
        """Chunks about as wide as log2(count) bits (one entry per bucket on average),
        and enough of them that each is probed within ``RADIUS`` bits; no chunks at all
        (brute force) for small indexes."""
        if count < FLAT_BELOW:
            return cls(threshold, ())
        bits = min(MAX_CHUNK_BITS, max(MIN_CHUNK_BITS, math.ceil(math.log2(count))))
        chunks = max(math.ceil(256 / bits), math.ceil((threshold + 1) / (RADIUS + 1)))
        base, extra = divmod(256, chunks)
        return cls(threshold, tuple(base + (1 if i < extra else 0) for i in range(chunks)))

    @property
    def radius(self) -> int:
        return self.threshold // len(self.widths) if self.widths else 0

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(sum(self.widths[:index]) for index in range(len(self.widths)))


def _chunk_values(hashes: U64, offset: int, width: int) -> npt.NDArray[np.uint32]:
    word, bit = divmod(offset, 64)
    values = hashes[:, word] >> np.uint64(bit)
    if bit + width > 64:
        values |= hashes[:, word + 1] << np.uint64(64 - bit)
    return (values & np.uint64((1 << width) - 1)).astype(np.uint32)


def _flip_masks(width: int, radius: int) -> npt.NDArray[np.uint32]:
    if radius < 0:
        return np.empty(0, dtype=np.uint32)
    masks = [0]
    for bits in range(1, radius + 1):
        masks.extend(sum(1 << b for b in chosen) for chosen in combinations(range(width), bits))
    return np.asarray(masks, dtype=np.uint32)


def _distances(candidates: U64, query: U64) -> I16:
    distances: I16 = np.bitwise_count(candidates ^ query).sum(axis=1, dtype=np.int16)
    return distances


@dataclass(frozen=True, kw_only=True, slots=True)
class _Probes:
    masks: npt.NDArray[np.uint32]
    chunk: npt.NDArray[np.intp]
    base: I64


@dataclass(frozen=True, kw_only=True, slots=True)
class Hits:
    """Matches of one query: parallel arrays, one element per matching live entry."""

    payloads: I64
    banks: U16
    distances: I16

    def __len__(self) -> int:
        return len(self.payloads)


class PdqIndex:
    """Exact range search over PDQ hashes; see the module docstring."""

    def __init__(
        self,
        hashes: U64,
        payloads: I64,
        banks: U16,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        structure: Mapping[str, npt.NDArray[Any]] | None = None,
    ) -> None:
        """Index ``hashes`` ((N, 4) words from ``pack``) with their payloads and banks.

        ``structure`` is the per-chunk order/offset arrays of a saved index (see
        ``arrays``), which skips the sort; it is checked, never trusted.
        """
        if not (len(hashes) == len(payloads) == len(banks)) or hashes.shape[1:] != (WORDS,):
            raise ValueError("hashes, payloads and banks must be parallel; hashes (N, 4) uint64")
        order = np.argsort(payloads, kind="stable")
        if structure is None and not np.all(order == np.arange(len(order))):
            hashes, payloads, banks = hashes[order], payloads[order], banks[order]
        if len(payloads) > 1 and not np.all(payloads[1:] > payloads[:-1]):
            raise ValueError("payloads must be unique")
        self.layout = Layout.plan(threshold, len(payloads))
        self._hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self._payloads = np.ascontiguousarray(payloads, dtype=np.int64)
        self._banks = np.ascontiguousarray(banks, dtype=np.uint16)
        self._alive = np.ones(len(payloads), dtype=bool)
        sizes = [(1 << w) + 1 for w in self.layout.widths]
        self._table_base = np.cumsum([0, *sizes], dtype=np.int64)[:-1]
        self._probes: dict[int, _Probes] = {}
        # ``order``: for each chunk in turn, the rows sorted by that chunk's value;
        # ``starts``: for each chunk in turn, where each bucket begins in ``order``.
        positions = len(payloads) * len(self.layout.widths)
        self._position_type = np.uint32 if positions < 2**32 else np.uint64
        if structure is None:
            self._order, self._starts = self._build()
        else:
            self._order, self._starts = self._adopt(structure, sizes)
        self._delta_hashes = np.empty((0, WORDS), np.uint64)
        self._delta_payloads = np.empty(0, np.int64)
        self._delta_banks = np.empty(0, np.uint16)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]], threshold: int) -> PdqIndex:
        """An index saved with ``arrays()``; its structure is validated, not trusted."""
        return cls(
            arrays["hashes"],
            arrays["payloads"],
            arrays["banks"],
            threshold=threshold,
            structure=arrays,
        )

    @classmethod
    def empty(cls, threshold: int = DEFAULT_THRESHOLD) -> PdqIndex:
        return cls(
            np.empty((0, WORDS), np.uint64),
            np.empty(0, np.int64),
            np.empty(0, np.uint16),
            threshold=threshold,
        )

    def _build(self) -> tuple[npt.NDArray[np.unsignedinteger], npt.NDArray[np.unsignedinteger]]:
        count = len(self._payloads)
        orders, starts = [], []
        for chunk, (offset, width) in enumerate(
            zip(self.layout.offsets, self.layout.widths, strict=True)
        ):
            values = _chunk_values(self._hashes, offset, width)
            orders.append(np.argsort(values, kind="stable").astype(np.uint32))
            table = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(np.bincount(values, minlength=1 << width), out=table[1:])
            starts.append((table + chunk * count).astype(self._position_type))
        empty = np.empty(0, self._position_type)
        return np.concatenate([np.empty(0, np.uint32), *orders]), np.concatenate([empty, *starts])

    def _adopt(
        self, structure: Mapping[str, npt.NDArray[Any]], sizes: list[int]
    ) -> tuple[npt.NDArray[np.unsignedinteger], npt.NDArray[np.unsignedinteger]]:
        count, chunks = len(self._payloads), len(sizes)
        order, starts = structure["order"], structure["starts"]
        if order.dtype != np.uint32 or order.shape != (count * chunks,):
            raise ValueError("order array has the wrong type or length")
        if starts.dtype != self._position_type or starts.shape != (sum(sizes),):
            raise ValueError("offset table has the wrong type or length for this layout")
        if order.size and int(order.max()) >= count:
            raise ValueError("order array points outside the index")
        for chunk, base in enumerate(self._table_base.tolist()):
            table = starts[base : base + sizes[chunk]]
            if table[0] != chunk * count or table[-1] != (chunk + 1) * count:
                raise ValueError(f"chunk {chunk}: offset table is not a valid partition")
            if np.any(table[1:] < table[:-1]):
                raise ValueError(f"chunk {chunk}: offset table is not a valid partition")
        return order, starts

    # -- size and contents -------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._alive.sum()) + len(self._delta_payloads)

    @property
    def pending(self) -> int:
        """Changes not yet folded into the multi-index (delta additions + tombstones)."""
        return len(self._delta_payloads) + int((~self._alive).sum())

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """Everything a snapshot needs; call on a compacted index (no pending changes)."""
        if self.pending:
            raise ValueError("compact the index before saving it")
        return {
            "hashes": self._hashes,
            "payloads": self._payloads,
            "banks": self._banks,
            "order": self._order,
            "starts": self._starts,
        }

    # -- updates -----------------------------------------------------------------------

    def add(self, hashes: U64, payloads: I64, banks: U16) -> None:
        """Make new entries searchable at once (they join a brute-force delta)."""
        if len(payloads) == 0:
            return
        self._delta_hashes = np.concatenate([self._delta_hashes, hashes.astype(np.uint64)])
        self._delta_payloads = np.concatenate([self._delta_payloads, payloads.astype(np.int64)])
        self._delta_banks = np.concatenate([self._delta_banks, banks.astype(np.uint16)])

    def remove(self, payloads: I64) -> int:
        """Tombstone entries by payload; returns how many live entries were removed."""
        if len(payloads) == 0:
            return 0
        removed = 0
        positions = np.searchsorted(self._payloads, payloads)
        found = positions < len(self._payloads)
        found[found] = self._payloads[positions[found]] == payloads[found]
        hit = positions[found]
        removed += int(self._alive[hit].sum())
        self._alive[hit] = False
        keep = ~np.isin(self._delta_payloads, payloads)
        removed += int((~keep).sum())
        if not keep.all():
            self._delta_hashes = self._delta_hashes[keep]
            self._delta_payloads = self._delta_payloads[keep]
            self._delta_banks = self._delta_banks[keep]
        return removed

    def compacted(self, threshold: int | None = None) -> PdqIndex:
        """A fresh index of the live entries, with the delta folded in."""
        alive = self._alive
        return PdqIndex(
            np.concatenate([self._hashes[alive], self._delta_hashes]),
            np.concatenate([self._payloads[alive], self._delta_payloads]),
            np.concatenate([self._banks[alive], self._delta_banks]),
            threshold=self.layout.threshold if threshold is None else threshold,
        )

    # -- search ------------------------------------------------------------------------

    def search(self, query: U64, thresholds: I16) -> Hits:
        """Live entries with distance <= ``thresholds[bank]``; a negative threshold
        switches a bank off. ``query`` is one packed hash (4 words)."""
        if len(thresholds) == 0:
            return _no_hits()
        limit = int(thresholds.max())
        if not self.layout.widths or limit // len(self.layout.widths) > MAX_RADIUS:
            # Small index, or a radius too wide to probe: every live row is a candidate.
            rows = np.flatnonzero(self._alive)
        else:
            rows = self._candidates(query, limit)
        # np.take: a gather several times faster than fancy indexing of the (N, 4) array
        distances = _distances(np.take(self._hashes, rows, axis=0), query)
        keep = (distances <= thresholds[np.take(self._banks, rows)]) & np.take(self._alive, rows)
        rows, distances = rows[keep], distances[keep]
        if len(rows) > 1:
            rows, first = np.unique(rows, return_index=True)
            distances = distances[first]
        hits = Hits(payloads=self._payloads[rows], banks=self._banks[rows], distances=distances)
        if len(self._delta_payloads):
            hits = _merge(hits, self._search_delta(query, thresholds))
        return hits

    def search_many(
        self, queries: U64, limits: I16, *, batch: int = 32
    ) -> tuple[npt.NDArray[np.intp], I64, I16]:
        """Many queries at once, each with its own limit (retro-matching: the queries are
        new bank entries, each with its bank's threshold; the entries' banks are not
        consulted). Returns parallel arrays ``(query position, payload, distance)`` of
        every live entry within its query's limit. Vectorised over ``batch`` queries at a
        time: the per-query Python overhead of ``search`` is paid once per batch (32: the
        batch's temporaries stay in the L2 cache; 256 was 1.3x slower)."""
        found: list[tuple[npt.NDArray[np.intp], I64, I16]] = []
        for start in range(0, len(queries), batch):
            found.append(self._search_batch(queries[start : start + batch], limits, start))
        if len(self._delta_payloads):
            for position, query in enumerate(queries):
                distances = _distances(self._delta_hashes, query)
                keep = distances <= limits[position]
                found.append(
                    (
                        np.full(int(keep.sum()), position, dtype=np.intp),
                        self._delta_payloads[keep],
                        distances[keep],
                    )
                )
        if not found:
            return np.empty(0, np.intp), np.empty(0, np.int64), np.empty(0, np.int16)
        return (
            np.concatenate([f[0] for f in found]),
            np.concatenate([f[1] for f in found]),
            np.concatenate([f[2] for f in found]),
        )

    def _search_batch(
        self, queries: U64, limits: I16, first: int
    ) -> tuple[npt.NDArray[np.intp], I64, I16]:
        own = limits[first : first + len(queries)]
        limit = int(own.max()) if len(own) else 0
        if not self.layout.widths or limit // len(self.layout.widths) > MAX_RADIUS:
            # small index or a radius too wide to probe: every query against every row
            rows = np.flatnonzero(self._alive)
            which = np.repeat(np.arange(len(queries)), len(rows))
            rows = np.tile(rows, len(queries))
            distances = np.bitwise_count(np.take(self._hashes, rows, axis=0) ^ queries[which])
            distances = distances.sum(axis=1, dtype=np.int16)
        else:
            rows, which = self._batch_candidates(queries, limit)
            # Two steps: the first 128 bits of every candidate (two 1-D gathers from the
            # row-major words), then the full distance of the few within the limit on
            # those alone. Random pairs differ in about 64 of 128 bits, so the second step
            # sees almost only true hits.
            flat = self._hashes.reshape(-1)
            word = rows * WORDS
            near = np.bitwise_count(np.take(flat, word) ^ np.take(queries[:, 0], which))
            near += np.bitwise_count(np.take(flat, word + 1) ^ np.take(queries[:, 1], which))
            close = np.flatnonzero(near <= np.take(own, which))
            rows, which = rows[close], which[close]
            distances = np.bitwise_count(np.take(self._hashes, rows, axis=0) ^ queries[which]).sum(
                axis=1, dtype=np.int16
            )
        keep = (distances <= own[which]) & np.take(self._alive, rows)
        rows, which, distances = rows[keep], which[keep], distances[keep]
        if len(rows) > 1:
            _, first_seen = np.unique(
                which.astype(np.int64) * len(self._payloads) + rows, return_index=True
            )
            rows, which, distances = rows[first_seen], which[first_seen], distances[first_seen]
        return (which + first).astype(np.intp), self._payloads[rows], distances

    def _batch_candidates(self, queries: U64, limit: int) -> tuple[I64, npt.NDArray[np.intp]]:
        """Rows in a probed bucket of each query: ``(rows, query position)``."""
        values = np.stack(
            [
                _chunk_values(queries, offset, width)
                for offset, width in zip(self.layout.offsets, self.layout.widths, strict=True)
            ],
            axis=1,
        )
        probes = self._probes_for(limit)
        keys = (probes.masks[None, :] ^ values[:, probes.chunk]).astype(np.int64)
        keys += probes.base[None, :]
        keys = keys.reshape(-1)
        begin = np.take(self._starts, keys)
        lengths = np.take(self._starts, keys + 1) - begin
        # about a third of the buckets are empty at one row per bucket: drop them first
        filled = np.flatnonzero(lengths)
        begin = begin[filled].astype(np.int64)
        lengths = lengths[filled].astype(np.int64)
        # the concatenation of order[begin[i] : begin[i] + lengths[i]] over every probe
        total = int(lengths.sum())
        positions = np.repeat(begin - (np.cumsum(lengths) - lengths), lengths)
        positions += np.arange(total)
        rows = np.take(self._order, positions).astype(np.int64)
        which = np.repeat(filled // len(probes.masks), lengths)
        return rows, which

    def _probes_for(self, limit: int) -> _Probes:
        """Every chunk's flip masks for a search within ``limit`` bits, in one array (a
        query is one vectorised pass), with the chunk and table base of each; built once
        per limit.

        The refined pigeonhole of Norouzi et al. (2014, Proposition 2): with ``m`` chunks
        and ``limit = m * r + a``, two hashes within ``limit`` bits differ in at most ``r``
        bits in one of any ``a + 1`` chunks or in at most ``r - 1`` bits in one of the
        others (else they would differ in ``(a + 1)(r + 1) + (m - a - 1) r = limit + 1``).
        At 31 bits and 11 chunks one chunk is probed within 1 bit instead of 2: about a
        tenth fewer probes and candidates."""
        probes = self._probes.get(limit)
        if probes is None:
            widths = self.layout.widths
            radius, extra = divmod(limit, len(widths))
            # the narrowest chunks (the last ones) keep the full radius: fewer flips
            lower = len(widths) - extra - 1
            masks = [
                _flip_masks(w, radius - 1 if index < lower else radius)
                for index, w in enumerate(widths)
            ]
            chunk = np.repeat(np.arange(len(masks)), [len(m) for m in masks])
            probes = _Probes(
                masks=np.concatenate([np.empty(0, np.uint32), *masks]),
                chunk=chunk,
                base=self._table_base[chunk],
            )
            self._probes[limit] = probes
        return probes

    def _candidates(self, query: U64, limit: int) -> npt.NDArray[np.intp]:
        number = int.from_bytes(query.astype("<u8").tobytes(), "little")
        chunks = np.array(
            [
                (number >> offset) & ((1 << width) - 1)
                for offset, width in zip(self.layout.offsets, self.layout.widths, strict=True)
            ],
            dtype=np.uint32,
        )
        probes = self._probes_for(limit)
        keys = (probes.masks ^ chunks[probes.chunk]).astype(np.int64) + probes.base
        begin = self._starts[keys].astype(np.int64)
        lengths = self._starts[keys + 1].astype(np.int64) - begin
        total = int(lengths.sum())
        if not total:
            return np.empty(0, dtype=np.intp)
        # The concatenation of order[begin[i] : begin[i] + lengths[i]] over every probe.
        shift = np.repeat(begin - (np.cumsum(lengths) - lengths), lengths)
        return self._order[shift + np.arange(total)].astype(np.intp)

    def _search_delta(self, query: U64, thresholds: I16) -> Hits:
        distances = _distances(self._delta_hashes, query)
        keep = distances <= thresholds[self._delta_banks]
        return Hits(
            payloads=self._delta_payloads[keep],
            banks=self._delta_banks[keep],
            distances=distances[keep],
        )


def _no_hits() -> Hits:
    return Hits(
        payloads=np.empty(0, np.int64),
        banks=np.empty(0, np.uint16),
        distances=np.empty(0, np.int16),
    )


def _merge(first: Hits, second: Hits) -> Hits:
    return Hits(
        payloads=np.concatenate([first.payloads, second.payloads]),
        banks=np.concatenate([first.banks, second.banks]),
        distances=np.concatenate([first.distances, second.distances]),
    )
