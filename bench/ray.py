"""The Ray engine's CPU cost per object against the local scanner's, on the same objects
(same run), and the memory of a hashing actor with the bank index loaded.

Selected with ``BENCH_ONLY=ray`` (needs the bulk extra). The objects are files in a
local folder (the page cache serves them far faster than they hash), so hashing, not
the store, dominates; both engines read the same files the same way (by path, in their
isolated hashing workers), so the difference is the engine's own overhead: Ray's
scheduling, the rows' serialisation, the driver's hand-off.

**What is counted** (``TreeCpu``): this process (the driver) and the hashing processes:
the local pool's workers, or Ray's hashing actors and their workers, sampled every
0.2 s so that processes that exit during a run (a dataset's actors) are counted too.
Ray's own daemons (raylet, GCS, agents) are reported apart (``ray_daemons_cpu_*``). Fixed costs
(Ray's actors starting, the index loaded, pools started) are removed by scanning N and
then 2N objects with each engine: the per-object cost is ``(CPU(2N) - CPU(N)) / N``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.report import FAIL, INFO, PASS, Row
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.scans import ScanOptions
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.matching.matcher import Matcher
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.store import Store, open_store

#: PDQ entries in the index whose actor memory is measured
INDEX_ENTRIES = int(os.environ.get("BENCH_RAY_INDEX", "1000000"))
#: objects in the smaller run (the larger has twice as many), distinct images
OBJECTS = int(os.environ.get("BENCH_RAY_OBJECTS", "1200"))
DISTINCT = 120
TARGET = 1.10
_TICK = os.sysconf("SC_CLK_TCK")


def _tree() -> dict[int, tuple[int, float]]:
    """Live processes: parent and own CPU seconds (not their children's)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the name: state(0) ppid(1) ... utime(11) stime(12)
        found[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read(200).decode(errors="replace")
    except OSError:
        return ""


def _below(table: dict[int, tuple[int, float]], roots: set[int]) -> set[int]:
    found = set(roots)
    grown = True
    while grown:
        more = {pid for pid, (parent, _cpu) in table.items() if parent in found} - found
        grown = bool(more)
        found |= more
    return found


class TreeCpu:
    """CPU seconds the scan's own processes use while it runs: this process (the
    driver), and the hashing processes below it: the local pool's workers, or Ray's
    hashing actors (``HashActor``) and their workers; Ray's own daemons (raylet, GCS,
    idle workers) are left out. Sampled every ``interval`` seconds, each process
    counted up to its last sample (a process that exits loses at most its last
    interval: Ray's raylet reaps its workers without adding their time to its own)."""

    def __init__(self, *, ray: bool, interval: float = 0.2) -> None:
        self._ray, self._interval = ray, interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._counted: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _sample(self, *, initial: bool = False) -> None:
        table = _tree()
        mine = _below(table, {os.getpid()})
        if self._ray:
            actors = {pid for pid in mine if "HashActor" in _command(pid)}
            self._counted |= _below(table, actors) | {os.getpid()}
        else:
            self._counted |= mine
        for pid in mine:
            cpu = table[pid][1]
            # a process started during the run is counted from zero
            self._first.setdefault(pid, cpu if initial else 0.0)
            self._last[pid] = cpu

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> TreeCpu:
        self._sample(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self._last[pid] - self._first[pid] for pid in self._counted)

    @property
    def others(self) -> float:
        """What the processes below this one that are not counted used (Ray's own)."""
        return sum(self._last[p] - self._first[p] for p in self._last if p not in self._counted)


def _folder(root: Path, count: int, images: list[bytes]) -> Path:
    folder = root / f"objects-{count}"
    folder.mkdir()
    for i in range(count):
        (folder / f"{i:06d}.jpg").write_bytes(images[i % len(images)])
    return folder


def _local(store: Store, matcher: Matcher, folder: Path) -> int:
    options = ScanOptions(max_pixels=10**8)
    run = prepare_run(store.scans, [str(folder)], options, rescan=True).run
    with HashingPool(
        workers=2, options=HashOptions.for_scan(options), timeout=30, memory_mb=1024
    ) as pool:
        done = Scanner(store=store.scans, matcher=matcher, pool=pool).run(run)
    return done.total


def _on_ray(store: Store, matcher: Matcher, folder: Path, engine: Any, shipment: Any) -> int:
    from hashguard.scan.rayengine import RayScanner  # noqa: PLC0415

    options = ScanOptions(max_pixels=10**8)
    run = prepare_run(store.scans, [str(folder)], options, rescan=True, scope={"ray": 1}).run
    with HashingPool(
        workers=1, options=HashOptions.for_scan(options), timeout=30, memory_mb=1024
    ) as pool:
        scanner = RayScanner(
            engine=engine,
            shipment=shipment,
            store=store.scans,
            matcher=matcher,
            pool=pool,
            batch=64,
        )
        done = scanner.run(run)
    return done.total


def _measured(run: Callable[[], int], expected: int, *, ray: bool) -> tuple[float, float]:
    with TreeCpu(ray=ray) as cpu:
        total = run()
    assert total == expected, (total, expected)
    return cpu.seconds, cpu.others


def ray_rows(say: Callable[[str], None]) -> list[Row]:
    from hashguard.scan.rayactor import Shipment, ship_index  # noqa: PLC0415
    from hashguard.scan.rayengine import RayEngine, RaySettings  # noqa: PLC0415

    images = [
        encode(generate(Kind.PHOTO if i % 2 else Kind.TEXTURE, seed=i, width=320, height=240))
        for i in range(DISTINCT)
    ]
    root = Path(tempfile.mkdtemp(prefix="hashguard-bench-ray-"))
    try:
        small, large = _folder(root, OBJECTS, images), _folder(root, 2 * OBJECTS, images)
        store = open_store(f"sqlite:///{root / 'bench.db'}")
        matcher = Matcher.build(store.banks)
        shipment = Shipment(
            options=HashOptions.for_scan(ScanOptions(max_pixels=10**8)),
            timeout=30,
            memory_mb=1024,
            index=ship_index(matcher),
            banks=matcher.banks,
            store_id=matcher.store_id,
            seq=matcher.seq,
        )
        with RayEngine(RaySettings(cpus=2, actors=2, progress=False)) as engine:
            say(f"ray: local pool vs Ray engine, {OBJECTS:,} and {2 * OBJECTS:,} objects")
            # warm: files in the page cache; Ray's idle workers started (as they are
            # after a run), so both measured runs start alike
            _local(store, matcher, small)
            _on_ray(store, matcher, small, engine, shipment)
            cpu: dict[str, list[float]] = {"local": [], "ray": [], "daemons": []}
            for folder, count in ((small, OBJECTS), (large, 2 * OBJECTS)):
                local_cpu, _ = _measured(partial(_local, store, matcher, folder), count, ray=False)
                ray_cpu, daemons = _measured(
                    partial(_on_ray, store, matcher, folder, engine, shipment), count, ray=True
                )
                cpu["local"].append(local_cpu)
                cpu["ray"].append(ray_cpu)
                cpu["daemons"].append(daemons)
            say(f"ray: a hashing actor's memory, index of {INDEX_ENTRIES:,} PDQ entries")
            memory = _actor_memory(_big_shipment(shipment))
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    local = (cpu["local"][1] - cpu["local"][0]) / OBJECTS
    ray = (cpu["ray"][1] - cpu["ray"][0]) / OBJECTS
    ratio = ray / local
    return [
        Row(
            figure="Ray engine: CPU per object (driver + hashing, marginal)",
            value=ray * 1000,
            unit="ms",
            baseline=local * 1000,
            ratio=ratio,
            target=f"<= {TARGET:.2f} x local pool",
            verdict=PASS if ratio <= TARGET else FAIL,
            details={
                "local_cpu_n": cpu["local"][0],
                "local_cpu_2n": cpu["local"][1],
                "ray_cpu_n": cpu["ray"][0],
                "ray_cpu_2n": cpu["ray"][1],
                "ray_daemons_cpu_n": cpu["daemons"][0],
                "ray_daemons_cpu_2n": cpu["daemons"][1],
                "objects_n": OBJECTS,
            },
        ),
        Row(
            figure="Ray hashing actor with the index loaded: PSS",
            value=memory.get("pss", 0) / 2**20,
            unit="MiB",
            target="info",
            verdict=INFO,
            details={k: v / 2**20 for k, v in memory.items()},
        ),
    ]


def _big_shipment(shipment: Any) -> Any:
    """``shipment`` with an index of ``INDEX_ENTRIES`` random PDQ hashes in one bank."""
    import dataclasses  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from hashguard.domain.banks import Bank, BankKind  # noqa: PLC0415
    from hashguard.matching.exact import ExactIndex  # noqa: PLC0415
    from hashguard.matching.pdq import PdqIndex  # noqa: PLC0415
    from hashguard.scan.rayactor import ShippedSource, ship_index  # noqa: PLC0415

    bank = Bank(
        id=1,
        name="bench",
        kind=BankKind.KNOWN,
        enabled=True,
        pdq_threshold=31,
        source=None,
        licence=None,
        version=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        imported_at=None,
    )

    rng = np.random.default_rng(7)
    count = INDEX_ENTRIES
    pdq = PdqIndex(
        rng.integers(0, 2**63, (count, 4), dtype=np.uint64),
        np.arange(count, dtype=np.int64),
        np.zeros(count, np.uint16),
    )
    shipped = dataclasses.replace(shipment, banks=(bank,), store_id="bench", seq=1)
    matcher = Matcher(
        ShippedSource(shipped),
        store_id="bench",
        seq=1,
        bank_ids=[1],
        exact=ExactIndex.empty(),
        pdq=pdq,
    )
    return dataclasses.replace(shipped, index=ship_index(matcher))


def _actor_memory(shipment: Any) -> dict[str, int]:
    """PSS and RSS of one hashing actor (index loaded, its pool started) plus its
    hashing worker."""
    from hashguard.scan.rayengine import need_ray  # noqa: PLC0415

    ray = need_ray()  # connected by ``engine``
    remote = ray.remote(num_cpus=1)(_Probe).remote([ray.put(shipment)])
    try:
        figures: dict[str, int] = ray.get(remote.memory.remote())
    finally:
        ray.kill(remote)
    return figures


class _Probe:
    """A hashing actor as Ray Data builds one, asked for its memory once it has hashed."""

    def __init__(self, shipment: Any) -> None:
        from hashguard.scan.rayactor import HashActor  # noqa: PLC0415

        self._actor = HashActor(shipment)

    def memory(self) -> dict[str, int]:
        from hashguard.scan.rayactor import memory_of_actor  # noqa: PLC0415

        image = encode(generate(Kind.PHOTO, seed=1, width=320, height=240))
        folder = Path(tempfile.mkdtemp(prefix="hashguard-probe-"))
        try:
            (folder / "a.jpg").write_bytes(image)
            list(self._actor.hash_items([str(folder / "a.jpg")], [""]))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return memory_of_actor()
