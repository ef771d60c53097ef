"""Repeating measurements round-robin, so slow drift of the machine hits every figure alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def round_robin(
    measures: Mapping[K, Callable[[], T]],
    repeats: int,
    on_round: Callable[[int], None] = lambda index: None,
) -> dict[K, list[T]]:
    """Run every measure once per round, ``repeats`` rounds; return each one's results."""
    samples: dict[K, list[T]] = {key: [] for key in measures}
    for index in range(repeats):
        on_round(index)
        for key, measure in measures.items():
            samples[key].append(measure())
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def timed(work: Callable[[], object]) -> float:
    """Seconds one call of ``work`` takes."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start
