"""What runs on a Ray worker for a bulk scan: the hashing actor (the one kernel, in its own
isolated pool) and the bank index shipped to it once.

Imports nothing of Ray: Ray Data calls ``HashActor`` (``map_batches(HashActor, …)``),
constructed once per actor with the ``Shipment``; the index is loaded then, not per
batch. Each batch's items are read (objects: a GET pinned to the listed version and
ETag, as ``ObjectScanner`` reads them; local files: by path), hashed in the actor's
``HashingPool`` (the memory and time limits, the typed outcomes of decoding bombs and
broken files), and screened against the index (``scan.confirm.screened``: a ``fast``
PDQ hash near an entry is hashed again in reference mode from the bytes in hand).
An object that cannot be read is ``error`` with the reason, never ``no_match``.

What leaves the actor per item is ``Hashed``: its output, whether the index found
anything (the driver then describes the rare hit with the store's entry ids and
decides it through the one pipeline), and the identity read.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hashguard.domain.banks import Bank, EntryChanges, IndexRows
from hashguard.domain.objects import ObjectRef, object_from_json
from hashguard.domain.scans import Outcome
from hashguard.domain.video import VpdqFrame
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, HashOutput
from hashguard.matching.matcher import Matcher
from hashguard.scan.confirm import screened

#: objects read at once by one actor (GETs wait on the network, hashing on its pool)
READS_PER_ACTOR = 8


@dataclass(frozen=True, kw_only=True, slots=True)
class Hashed:
    """One item as the actor hands it back."""

    output: HashOutput
    #: the index found a match (described and decided on the driver)
    hit: bool
    #: the identity read (version and ETag from the GET), for an object
    read: ObjectRef | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Shipment:
    """What every actor is built from: the hashing options and limits, the bank index
    (a matcher snapshot's bytes and the banks it was saved with), and how to reach the
    object store. ``rate`` is this actor's share of the scan's request cap."""

    options: HashOptions
    timeout: float
    memory_mb: int
    index: bytes
    banks: tuple[Bank, ...]
    store_id: str
    seq: int
    endpoint_url: str | None = None
    rate: float | None = None
    #: a video's time limit (by default ``timeout``)
    video_timeout: float | None = None
    #: the listed videos' frames by payload (``Matcher.video_frames``): the snapshot
    #: names the listed videos, the store holds their frames
    vpdq_frames: dict[int, tuple[VpdqFrame, ...]] = field(default_factory=dict)


class ShippedSource:
    """The entry source of a shipped index: nothing changes after it was saved; matches
    are described (entry id, category) on the driver, from the store."""

    def __init__(self, shipment: Shipment) -> None:
        self._shipment = shipment

    def list(self) -> list[Bank]:
        return list(self._shipment.banks)

    def store_id(self) -> str:
        return self._shipment.store_id

    def change_seq(self) -> int:
        return self._shipment.seq

    def index_rows(self, batch: int = 0) -> Iterator[IndexRows]:
        return iter(())

    def changes_since(self, seq: int) -> EntryChanges:
        return EntryChanges(
            seq=self._shipment.seq,
            live=IndexRows(ids=(), bank_ids=(), algorithms=(), values=()),
            removed=(),
        )

    def describe(self, ids: Iterable[int]) -> dict[int, tuple[str | None, str | None]]:
        return {}

    def vpdq_frames(self, ids: Iterable[int]) -> dict[int, tuple[VpdqFrame, ...]]:
        shipped = self._shipment.vpdq_frames
        return {i: shipped[i] for i in ids if i in shipped}


def ship_index(matcher: Matcher) -> bytes:
    """``matcher``'s index as snapshot bytes (what ``load_shipped`` reads back)."""
    with tempfile.TemporaryDirectory(prefix="hashguard-ship-") as folder:
        path = Path(folder) / "index"
        matcher.save(path)
        return path.read_bytes()


def load_shipped(shipment: Shipment) -> Matcher:
    with tempfile.TemporaryDirectory(prefix="hashguard-index-") as folder:
        path = Path(folder) / "index"
        path.write_bytes(shipment.index)
        return Matcher.load(path, ShippedSource(shipment))


class HashActor:
    """A Ray Data actor (``map_batches(HashActor, fn_constructor_kwargs=…)``): columns
    ``path`` and ``ref`` (an object's identity as JSON, ``""`` for a local file) in,
    ``path`` and ``hashed`` (a pickled ``Hashed``) out."""

    def __init__(self, shipment: Any) -> None:
        if isinstance(shipment, list):  # [ObjectRef]: put once, fetched by each actor
            import ray  # noqa: PLC0415 - only ever constructed on a Ray worker

            shipment = ray.get(shipment[0])
        assert isinstance(shipment, Shipment)
        self._matcher = load_shipped(shipment)
        self._pool = HashingPool(
            workers=1,
            options=shipment.options,
            timeout=shipment.timeout,
            video_timeout=shipment.video_timeout,
            memory_mb=shipment.memory_mb,
        )
        self._reads = ThreadPoolExecutor(READS_PER_ACTOR, thread_name_prefix="ray-get")
        self._shipment = shipment
        self._objects: Any = None

    def _store(self) -> Any:
        if self._objects is None:
            from hashguard.scan.objects import ObjectStore  # noqa: PLC0415 - boto3, if needed

            self._objects = ObjectStore(
                endpoint_url=self._shipment.endpoint_url,
                rate=self._shipment.rate,
                connections=READS_PER_ACTOR,
            )
        return self._objects

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        paths = [str(p) for p in batch["path"]]
        refs = [str(r) for r in batch["ref"]]
        hashed = list(self.hash_items(paths, refs))
        return {
            "path": np.array(paths, dtype=object),
            "hashed": np.array([pickle.dumps(h) for h in hashed], dtype=object),
        }

    def hash_items(self, paths: Sequence[str], refs: Sequence[str]) -> Iterator[Hashed]:
        if not any(refs):
            futures = self._pool.submit_batch(list(paths))
            for path, future in zip(paths, futures, strict=True):
                yield self._screened(future.result(), path=path)
            return
        reads = [self._reads.submit(self._read, _ref_of(ref)) for ref in refs]
        for read in reads:
            data, ref, future = read.result()
            output = future.result()
            if data is None:
                yield Hashed(output=output, hit=False, read=ref)
            else:
                yield self._screened(output, data=data, read=ref)

    def _read(self, ref: ObjectRef) -> tuple[bytes | None, ObjectRef, Future[HashOutput]]:
        try:
            data, read = self._store().get(ref)
        except OSError as exc:
            failed: Future[HashOutput] = Future()
            failed.set_result(HashOutput(signals=None, problem=Outcome.ERROR, reason=str(exc)))
            return None, ref, failed
        return data, read, self._pool.submit_data(data)

    def _screened(
        self,
        output: HashOutput,
        *,
        path: str | None = None,
        data: bytes | None = None,
        read: ObjectRef | None = None,
    ) -> Hashed:
        output, matches = screened(self._matcher, output, pool=self._pool, data=data, path=path)
        return Hashed(output=output, hit=bool(matches), read=read)

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close(wait=False)


def _ref_of(text: str) -> ObjectRef:
    return object_from_json(json.loads(text))


def memory_of_actor() -> dict[str, int]:
    """This actor's PSS and RSS and its hashing workers' PSS, in bytes (Linux
    ``smaps_rollup``), for sizing a cluster."""
    own = _memory(os.getpid())
    workers = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _parent(int(entry)) == os.getpid():
            workers += _memory(int(entry)).get("pss", 0)
    return {**own, "workers_pss": workers}


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _memory(pid: int) -> dict[str, int]:
    figures: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in ("Pss", "Rss"):
                    figures[name.lower()] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return figures
