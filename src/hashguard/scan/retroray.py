"""Retro-matching past one machine: the kept-signal PDQ index partitioned across Ray actors.

Ray is the ``bulk`` extra and is imported only here, only when a run asks for more than
one partition (``hashguard retro-match --partitions N``).

Each actor (``KeptPartition``) loads its share of the kept signals from the store once
(``id % N == k``: the store answers with an indexed filter, no actor reads the others'
rows) and builds the same ``KeptIndex`` the single-process run builds over all of them.
The new entries are put in Ray's object store once and every actor searches them (a
broadcast); the hits come back as small arrays and are merged in (new entry, kept id)
order, so ``scan.retro`` sends exactly the pairs the single-process search would have
found through the same decision path (policy, case, evidence, actions, audit).

Memory per partition is the index over its share: about 130 bytes a kept PDQ hash (or
a kept video's distinct frame) at 10 M rows (``docs/architecture.md``, "Retro-matching at scale").
"""

from __future__ import annotations

import functools
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hashguard.matching.kept import KeptHits, KeptIndex
from hashguard.matching.pdq import DEFAULT_THRESHOLD

#: the name of the actors' class in Ray's state (and in ``ray list actors``)
ACTOR_NAME = "KeptPartition"


class NeedsBulkExtra(RuntimeError):
    """Ray is not installed; the message names the extra."""


def need_ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - the bulk extra, only for --partitions > 1
    except ImportError:
        raise NeedsBulkExtra(
            "--partitions needs the bulk extra: pip install 'hashguard[bulk]'"
        ) from None
    return ray


@dataclass(frozen=True, kw_only=True, slots=True)
class PartitionStats:
    """What one partition holds and what loading it cost."""

    partition: int
    rows: int
    index_bytes: int
    rss_bytes: int
    load_s: float
    load_cpu_s: float
    pid: int


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load_from_store(url: str, partition: int, partitions: int) -> KeptIndex:
    """Partition ``partition`` of ``partitions`` of the kept signals in the store at
    ``url`` (read only: the schema must be current)."""
    from hashguard.store import open_store  # noqa: PLC0415 - only inside an actor

    store = open_store(url, migrate=False)
    try:
        rows = store.kept.pdq_rows(partition=(partition, partitions))
        return KeptIndex.from_rows(rows, threshold=DEFAULT_THRESHOLD)
    finally:
        store.close()


class KeptPartition:
    """One partition of the kept-signal index, loaded once, searched with every batch
    of new entries (a Ray actor's class; also usable in-process)."""

    def __init__(self, partition: int, load: Callable[[], KeptIndex]) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        before = _rss()
        self._index = load()
        self._stats = PartitionStats(
            partition=partition,
            rows=len(self._index),
            index_bytes=self._index.nbytes,
            rss_bytes=max(_rss() - before, 0),
            load_s=time.perf_counter() - start,
            load_cpu_s=time.process_time() - cpu,
            pid=os.getpid(),
        )

    def stats(self) -> PartitionStats:
        return self._stats

    def peak_rss(self) -> int:
        """This process's peak resident memory (bytes), loading included."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def search(
        self, queries: npt.NDArray[np.uint64], thresholds: npt.NDArray[np.int16]
    ) -> tuple[KeptHits, float]:
        """The hits of the new entries in this partition, and the CPU seconds it took."""
        cpu = time.process_time()
        found = self._index.search_packed(queries, thresholds)
        return found, time.process_time() - cpu


@dataclass(frozen=True, kw_only=True, slots=True)
class RetroTiming:
    """The last search across the partitions: wall time at the driver, CPU per actor."""

    wall_s: float
    cpu_s: tuple[float, ...]


class PartitionedSearch:
    """``scan.retro.PdqSearch`` across ``len(actors)`` partitions on a Ray cluster."""

    def __init__(self, ray: Any, actors: list[Any]) -> None:
        self._ray = ray
        self._actors = actors
        self.stats: list[PartitionStats] = ray.get([a.stats.remote() for a in actors])
        self.last: RetroTiming | None = None

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.stats)

    def peak_rss(self) -> list[int]:
        return list(self._ray.get([a.peak_rss.remote() for a in self._actors]))

    def __call__(
        self, queries: npt.NDArray[np.uint64], thresholds: npt.NDArray[np.int16]
    ) -> tuple[KeptHits, int]:
        start = time.perf_counter()
        # one copy in the object store, read by every actor (zero-copy on each node)
        shared_queries = self._ray.put(queries)
        shared_thresholds = self._ray.put(thresholds)
        answers = self._ray.get(
            [a.search.remote(shared_queries, shared_thresholds) for a in self._actors]
        )
        merged = KeptHits.merged(found for found, _cpu in answers)
        self.last = RetroTiming(
            wall_s=time.perf_counter() - start, cpu_s=tuple(cpu for _found, cpu in answers)
        )
        return merged, self.rows


def _actor_cpus(ray: Any, partitions: int) -> float:
    """A whole CPU per actor when the cluster has enough, else an equal share (four
    partitions on a 2-CPU machine: half a CPU each)."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    return min(1.0, cpus / partitions)


@contextmanager
def partitioned(
    partitions: int,
    load: Callable[[int], Callable[[], KeptIndex]],
    *,
    address: str | None = None,
    cpus: int | None = None,
) -> Iterator[PartitionedSearch]:
    """``partitions`` actors, actor ``k`` holding ``load(k)()``, spread over the
    cluster at ``address`` (``None``: the Ray this process already joined, else one
    started here with ``cpus`` CPUs; ``auto``: this machine's cluster). The actors are
    stopped on exit, and a Ray started here is shut down."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    ray = need_ray()
    started = False
    if not ray.is_initialized():
        if address is None:
            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        started = True
    actors: list[Any] = []
    try:
        remote = ray.remote(KeptPartition).options(
            num_cpus=_actor_cpus(ray, partitions), scheduling_strategy="SPREAD"
        )
        actors = [remote.remote(k, load(k)) for k in range(partitions)]
        yield PartitionedSearch(ray, actors)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def store_partitions(url: str, partitions: int) -> Callable[[int], Callable[[], KeptIndex]]:
    """Each partition loads its share from the store at ``url``."""
    return lambda k: functools.partial(load_from_store, url, k, partitions)
