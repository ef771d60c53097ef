"""The fidelity gate: how far the fast PDQ path drifts from the reference hash of the same file.

The fast path may be the default only while it passes this gate on a benign corpus of
photo-like and texture-like images at 1 MP and 12 MP (the test suite checks a small
corpus, ``make bench`` a large one). Reading of the gate, as in the performance notes
it comes from: over photo-like images the 95th percentile Hamming distance is at most
12 and the maximum at most 24; over every image, textures included, none exceeds 31
(the default match threshold), so a reference-built list still matches an exact copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from hashguard.domain.signals import PdqMode
from hashguard.hashing.kernel import HashOptions, hash_data

P95_LIMIT = 12
MAX_LIMIT = 24
CEILING = 31
PHOTO = "photo"


@dataclass(frozen=True, kw_only=True, slots=True)
class GateReport:
    """Drift (fast vs reference) by image kind; ``passed`` applies the gate."""

    distances: dict[str, tuple[int, ...]]

    @property
    def photo_p95(self) -> float:
        return float(np.percentile(self.distances.get(PHOTO, (0,)), 95))

    @property
    def photo_max(self) -> int:
        return max(self.distances.get(PHOTO, (0,)))

    @property
    def overall_max(self) -> int:
        return max((max(v) for v in self.distances.values() if v), default=0)

    @property
    def passed(self) -> bool:
        return (
            self.photo_p95 <= P95_LIMIT
            and self.photo_max <= MAX_LIMIT
            and self.overall_max <= CEILING
        )

    def summary(self) -> str:
        parts = [
            f"{kind}: n={len(v)} p95={np.percentile(v, 95):.0f} max={max(v)}"
            for kind, v in sorted(self.distances.items())
            if v
        ]
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict} ({'; '.join(parts)})"


def drift(data: bytes, *, max_pixels: int = 200_000_000) -> int:
    """Hamming distance between the fast and the reference PDQ hash of one image file."""
    hashes = []
    for mode in (PdqMode.FAST, PdqMode.REFERENCE):
        signals = hash_data(data, HashOptions(max_pixels=max_pixels, pdq_mode=mode)).signals
        if signals is None or not signals.pdq:
            raise ValueError("not a decodable image")
        hashes.append(int(signals.pdq[0].value, 16))
    return (hashes[0] ^ hashes[1]).bit_count()


def evaluate(samples: Iterable[tuple[str, bytes]]) -> GateReport:
    """Apply the gate to (kind, file bytes) samples; kind is ``photo`` or anything else."""
    distances: dict[str, list[int]] = {}
    for kind, data in samples:
        distances.setdefault(kind, []).append(drift(data))
    return GateReport(distances={kind: tuple(v) for kind, v in distances.items()})
