"""The Ray Data engine for bulk scans (``hashguard scan … --engine ray``): a second engine
under the one scanner, not a second pipeline.

Ray is the ``bulk`` extra and is imported only here, only when a scan asks for it.

**What runs where.** The driver (``hashguard scan``) plans the run as the local scanner
does (the listing or the walk, filters, what the scan record already holds), then hands
the items left to hash to a Ray Data pipeline: ``from_items`` → ``map_batches(HashActor,
concurrency=N)`` (``scan.rayactor``), an actor pool in which each actor loads the bank
index once, reads its items, hashes them in its own isolated pool and screens them. The
rows come back to the driver's ``Scanner`` loop exactly where the local pool's futures
come in: remote matchers, the policy, evidence, cases and actions go through the same
``Pipeline`` calls and the same batched commits.

**Resuming and duplicates.** The scan record is the checkpoint: every committed result
is keyed by ``(run, path)``, the path being the object's URI (bucket, key, version; the
ETag read is recorded with it), and the run's resume key includes the banks' change
sequence, so the results of one run are always against one set of bank versions. A
driver killed at any moment loses only the uncommitted batch; the next ``hashguard scan``
with the same arguments resumes the run and sends Ray only what the record does not
hold. A worker killed mid-batch is restarted by Ray and its batch run again; a row Ray
delivers twice (ray-project/ray#55008) is dropped on the driver before it is recorded,
and the unique key refuses it anyway. Rows that never come back fail the run visibly
(``RayEngineFailed``), never a silent gap.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from hashguard.domain.matches import Match
from hashguard.domain.objects import object_to_json
from hashguard.domain.scans import ScanRun
from hashguard.hashing.kernel import HashOutput
from hashguard.scan.objectscan import ObjectScanner
from hashguard.scan.rayactor import HashActor, Hashed, Shipment
from hashguard.scan.scanner import Scanner
from hashguard.scan.walk import WalkItem

#: rows per actor call, and per block of the input (a block is Ray's unit of retry)
BATCH_ROWS = 16
BLOCK_ROWS = 256


class NeedsBulkExtra(RuntimeError):
    """Ray is not installed; the message names the extra."""


class RayEngineFailed(RuntimeError):
    """The Ray pipeline stopped or lost rows: the run is saved as far as it got and
    resumes with the same command."""


def need_ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - the bulk extra, only for --engine ray
    except ImportError:
        raise NeedsBulkExtra(
            "--engine ray needs the bulk extra: pip install 'hashguard[bulk]'"
        ) from None
    return ray


@dataclass(frozen=True, kw_only=True, slots=True)
class RaySettings:
    """Where and how wide: ``address`` (``None``: a Ray started here, with ``cpus``;
    ``auto``: the cluster this machine belongs to; ``ray://host:10001``: a remote one),
    ``actors`` hashing actors (default: the cluster's CPUs)."""

    address: str | None = None
    actors: int | None = None
    cpus: int | None = None
    batch_rows: int = BATCH_ROWS
    block_rows: int = BLOCK_ROWS
    progress: bool = True


class RayEngine:
    """A connection to Ray and the pipeline over one run's items."""

    def __init__(self, settings: RaySettings) -> None:
        self._settings = settings
        self._ray = need_ray()
        self._started = False

    def __enter__(self) -> RayEngine:
        ray = self._ray
        if not ray.is_initialized():
            if self._settings.address is None:
                ray.init(
                    num_cpus=self._settings.cpus,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                ray.init(address=self._settings.address, log_to_driver=False)
            self._started = True
        from ray.data import DataContext  # noqa: PLC0415

        context = DataContext.get_current()
        context.enable_progress_bars = self._settings.progress
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._started:
            self._ray.shutdown()

    def actors(self) -> int:
        if self._settings.actors:
            return self._settings.actors
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def rows(
        self, items: Sequence[tuple[str, str]], shipment: Shipment
    ) -> Iterator[tuple[str, Hashed]]:
        """Every item hashed and screened, in the order Ray finishes them (possibly
        one twice: see the module's docstring)."""
        if not items:
            return
        ray = self._ray
        actors = min(self.actors(), len(items))
        shipped = [ray.put(shipment)]
        # enough blocks to keep every actor busy; a block is what a killed actor redoes
        blocks = min(len(items), max(2 * actors, -(-len(items) // self._settings.block_rows)))
        dataset = ray.data.from_items(
            [{"path": path, "ref": ref} for path, ref in items], override_num_blocks=blocks
        )
        hashed = dataset.map_batches(
            HashActor,
            fn_constructor_kwargs={"shipment": shipped},
            batch_size=self._settings.batch_rows,
            batch_format="numpy",
            # Ray Data's defaults restart a killed actor and run its batch again
            # (max_restarts=-1, max_task_retries=-1)
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        for batch in hashed.iter_batches(batch_size=None, batch_format="numpy"):
            for path, payload in zip(batch["path"], batch["hashed"], strict=True):
                yield str(path), pickle.loads(payload)  # noqa: S301 - our own actors' rows


class _RayFed:
    """What turns a scanner into a Ray-fed one: the items left to hash go to Ray once
    the run is planned; each row comes back as a finished future where the pool's
    would (at most as many as the scanner has asked for: ``_submit`` gives credit)."""

    _engine: RayEngine
    _shipment: Shipment

    def _start_ray(self, items: list[WalkItem], ref_of: Any) -> None:
        self._credit = threading.Semaphore(0)
        self._stop = threading.Event()
        self._hits: dict[str, bool] = {}
        todo = [(item.path, ref_of(item.path)) for item in items if item.problem is None]
        self._feeder = threading.Thread(
            target=self._feed, args=(todo,), name="ray-rows", daemon=True
        )
        self._feeder.start()

    def _feed(self, todo: list[tuple[str, str]]) -> None:
        wanted = {path for path, _ref in todo}
        delivered: set[str] = set()
        try:
            for path, hashed in self._engine.rows(todo, self._shipment):
                if path in delivered or path not in wanted:
                    continue  # delivered twice (ray#55008): recorded once
                delivered.add(path)
                while not self._credit.acquire(timeout=0.5):
                    if self._stop.is_set():
                        return
                self._arrived(path, hashed)
                done: Future[Any] = Future()
                done.set_result(hashed.output)
                self._done(path, done)  # type: ignore[attr-defined]
            _all_came(delivered, wanted)
        except BaseException as exc:  # noqa: BLE001 - handed to the scan's thread
            if self._stop.is_set():
                return
            failed: Future[Any] = Future()
            failed.set_exception(
                exc if isinstance(exc, RayEngineFailed) else RayEngineFailed(f"{exc}")
            )
            self._done("", failed)  # type: ignore[attr-defined]

    def _arrived(self, path: str, hashed: Hashed) -> None:
        self._hits[path] = hashed.hit

    def _given(self, paths: list[str]) -> None:
        for _ in paths:
            self._credit.release()

    def _stopped(self) -> None:
        self._stop.set()

    def _described(self, path: str, output: HashOutput, matcher: Any) -> tuple[Match, ...]:
        """The actor's hit described with the store's entry ids: the driver's index
        screens the signals the actor confirmed (a rare call: only items that matched)."""
        if not self._hits.pop(path, False) or output.signals is None:
            return ()
        matches: tuple[Match, ...] = matcher.screen(output.signals).matches
        return matches


def _all_came(delivered: set[str], wanted: set[str]) -> None:
    if len(delivered) != len(wanted):
        raise RayEngineFailed(
            f"Ray returned {len(delivered)} of {len(wanted)} items; "
            "run the same command again to resume"
        )


class RayScanner(_RayFed, Scanner):
    """The local scanner over files and folders, hashed on Ray (the cluster must see
    the same paths: one machine, or a shared file system)."""

    def __init__(self, *, engine: RayEngine, shipment: Shipment, **scanner: Any) -> None:
        super().__init__(**scanner)
        self._engine, self._shipment = engine, shipment

    def run(self, run: ScanRun, **callbacks: Any) -> ScanRun:
        try:
            return super().run(run, **callbacks)
        finally:
            self._stopped()

    def _unfinished(self, run: ScanRun) -> list[WalkItem]:
        items = super()._unfinished(run)
        self._start_ray(items, lambda _path: "")
        return items

    def _submit(self, paths: list[str]) -> None:
        self._given(paths)

    def _match(self, path: str, output: HashOutput) -> tuple[HashOutput, tuple[Match, ...]]:
        return output, self._described(path, output, self._matcher)


class RayObjectScanner(_RayFed, ObjectScanner):
    """The object scanner (listing, filters, identity, evidence read again pinned to
    the version and ETag) with objects read and hashed on Ray."""

    def __init__(self, *, engine: RayEngine, shipment: Shipment, **scanner: Any) -> None:
        super().__init__(**scanner)
        self._engine, self._shipment = engine, shipment

    def run(self, run: ScanRun, **callbacks: Any) -> ScanRun:
        try:
            return super().run(run, **callbacks)
        finally:
            self._stopped()

    def _unfinished(self, run: ScanRun) -> list[WalkItem]:
        items = super()._unfinished(run)
        self._start_ray(items, lambda path: json.dumps(object_to_json(self._refs[path])))
        return items

    def _submit(self, paths: list[str]) -> None:
        self._given(paths)

    def _arrived(self, path: str, hashed: Hashed) -> None:
        super()._arrived(path, hashed)
        if hashed.read is not None:
            self._refs[path] = hashed.read

    def _match(self, path: str, output: HashOutput) -> tuple[HashOutput, tuple[Match, ...]]:
        return output, self._described(path, output, self._matcher)
