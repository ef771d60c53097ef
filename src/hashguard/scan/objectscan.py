"""Object-storage scan runs: what a listing selects (filters before any download), the
estimate of a dry run, and the scanner that reads selected objects into the one pipeline.

An object is named in its run by its URI (``s3://bucket/key``, ``?versionId=…`` for a
version): the run's resume key, like a local file's path. Its result also records the
identity read, ``(bucket, key, version_id, etag)`` (``domain.objects.ObjectRef``).
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from hashguard.domain.objects import ListedObject, ObjectRef
from hashguard.domain.scans import Outcome
from hashguard.hashing.kernel import HashOutput
from hashguard.scan.pipeline import bank_seq
from hashguard.scan.scanner import Scanner
from hashguard.scan.sources import StoredObject
from hashguard.scan.walk import WalkItem
from hashguard.store.scans import path_key

#: Measured hashing cost on this project's 2-core reference machine (``python -m bench``
#: section ``objects``, "hashing cost"): CPU seconds per object (decode set-up, exact
#: hashes, PDQ of a small image) and per MB of content (decoding and hashing large
#: images). A dry run's CPU-hours are ``objects * PER_OBJECT + MB * PER_MB``.
CPU_SECONDS_PER_OBJECT = 0.0063
CPU_SECONDS_PER_MB = 0.011

#: objects listed per LIST request (S3's page)
KEYS_PER_LIST = 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectFilter:
    """What a scan selects before anything is downloaded: key extensions (``None``:
    any), Content-Type patterns (``image/*``; a HEAD request each), and a size cap (an
    object over it gets ``unsupported``, without a GET)."""

    extensions: frozenset[str] | None = None
    content_types: tuple[str, ...] = ()
    max_size: int | None = None
    #: every version of each key (``--versions all``), or the current ones
    all_versions: bool = False

    def selects_key(self, item: ListedObject) -> bool:
        if not self.all_versions and not item.is_latest:
            return False
        if self.extensions is None:
            return True
        return os.path.splitext(item.ref.key)[1].lower().lstrip(".") in self.extensions

    def selects_type(self, content_type: str | None) -> bool:
        if not self.content_types:
            return True
        value = (content_type or "").split(";")[0].strip().lower()
        return any(fnmatch.fnmatchcase(value, pattern) for pattern in self.content_types)

    def too_large(self, item: ListedObject) -> bool:
        return self.max_size is not None and item.size > self.max_size

    def as_json(self) -> dict[str, Any]:
        return {
            "extensions": sorted(self.extensions) if self.extensions is not None else None,
            "content_types": list(self.content_types),
            "max_size": self.max_size,
            "versions": "all" if self.all_versions else "latest",
        }


def uri_of(ref: ObjectRef) -> str:
    return ref.uri


@dataclass(frozen=True, kw_only=True, slots=True)
class Estimate:
    """What a scan would cost, from the listing alone (nothing downloaded)."""

    listed: int
    selected: int
    selected_bytes: int
    too_large: int
    list_requests: int
    head_requests: int
    get_requests: int
    cpu_hours: float

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "estimate",
            "objects_listed": self.listed,
            "objects": self.selected,
            "bytes": self.selected_bytes,
            "over_size_cap": self.too_large,
            "requests": {
                "list": self.list_requests,
                "head": self.head_requests,
                "get": self.get_requests,
            },
            "cpu_hours": round(self.cpu_hours, 6),
            "cpu_seconds": round(self.cpu_hours * 3600, 3),
            "cpu_model": {
                "seconds_per_object": CPU_SECONDS_PER_OBJECT,
                "seconds_per_mb": CPU_SECONDS_PER_MB,
            },
        }


def estimate(
    listing: Iterable[ListedObject],
    chosen: ObjectFilter,
    *,
    listing_requests: Callable[[int], int] | None = None,
) -> Estimate:
    """Objects, bytes, requests and CPU-hours of a scan over ``listing``: LIST pages
    (``listing_requests(listed)`` when the listing counts its own, e.g. an inventory's
    files), one HEAD per key-selected object when Content-Type filters apply (an upper
    bound on what is then read), one GET per selected object."""
    listed = selected = size = too_large = 0
    for item in listing:
        listed += 1
        if not chosen.selects_key(item):
            continue
        if chosen.too_large(item):
            too_large += 1
            continue
        selected += 1
        size += item.size
    if listing_requests is not None:
        lists = listing_requests(listed)
    else:
        lists = max(1, math.ceil(listed / KEYS_PER_LIST))
    seconds = selected * CPU_SECONDS_PER_OBJECT + size / 1e6 * CPU_SECONDS_PER_MB
    return Estimate(
        listed=listed,
        selected=selected,
        selected_bytes=size,
        too_large=too_large,
        list_requests=lists,
        head_requests=selected + too_large if chosen.content_types else 0,
        get_requests=selected,
        cpu_hours=seconds / 3600,
    )


class Objects(Protocol):
    """What the scanner needs of a store (``scan.objects.ObjectStore``)."""

    def content_type(self, ref: ObjectRef) -> str | None: ...

    def get(self, ref: ObjectRef) -> tuple[bytes, ObjectRef]: ...

    def fetch(self, ref: ObjectRef) -> bytes: ...


class ObjectListingFailed(RuntimeError):
    """The listing or the inventory could not be read: no object is to blame, so none
    gets an outcome (the run resumes once the listing can be read)."""


@dataclass
class Planned:
    """A run's selection: the objects to read, by URI, and what was left out."""

    objects: dict[str, ObjectRef] = field(default_factory=dict)
    oversize: dict[str, ListedObject] = field(default_factory=dict)
    filtered: int = 0
    #: already checked against the same bank versions (an incremental rescan)
    skipped: int = 0


#: which of these objects were checked against the banks at this change sequence or
#: later (``store.kept.KeptStore.checked_objects``)
AlreadyChecked = Callable[[Sequence[ObjectRef], int], set[ObjectRef]]


class ObjectScanner(Scanner):
    """A scan run over object storage: the local scanner's batching, commits, resume
    and remote matching, with objects read by ``fetchers`` threads and hashed from
    memory in the same isolated workers (so decoding bombs and undecodable objects get
    the outcomes local files get). An object that cannot be read is ``error`` with the
    reason, never ``no_match``.

    ``listing`` is called once per run; with Content-Type filters, the selected keys are
    checked with HEAD requests (``fetchers`` at a time) before any GET. With
    ``already_checked`` (an incremental rescan), objects whose ``(bucket, key, version,
    etag)`` was checked against the banks' current versions are left out before any
    request about them; the run records how many (``ScanRun.skipped``).
    """

    def __init__(
        self,
        *,
        objects: Objects,
        listing: Callable[[], Iterable[ListedObject]],
        chosen: ObjectFilter,
        fetchers: int = 16,
        already_checked: AlreadyChecked | None = None,
        **scanner: Any,
    ) -> None:
        super().__init__(**scanner)
        self._already_checked = already_checked
        self.skipped = 0
        self._objects = objects
        self._listing = listing
        self._chosen = chosen
        self._fetchers = ThreadPoolExecutor(fetchers, thread_name_prefix="s3-get")
        self._fetcher_count = fetchers
        self._refs: dict[str, ObjectRef] = {}
        #: bytes of the objects in flight, until their result is recorded
        self._held: dict[str, bytes] = {}
        self.filtered = 0

    def close(self) -> None:
        self._fetchers.shutdown(wait=True, cancel_futures=True)

    def plan(self, done: set[str]) -> Planned:
        planned = Planned()
        typed: list[tuple[str, ObjectRef]] = []
        for item in self._listed():
            uri = uri_of(item.ref)
            if path_key(uri) in done or uri in planned.objects or uri in planned.oversize:
                continue
            if not self._chosen.selects_key(item):
                planned.filtered += 1
            elif self._chosen.too_large(item):
                planned.oversize[uri] = item
            elif self._chosen.content_types:
                typed.append((uri, item.ref))
            else:
                planned.objects[uri] = item.ref
        typed = self._skip_checked(planned, typed)
        if typed:  # HEAD requests, nothing downloaded
            with ThreadPoolExecutor(self._fetcher_count) as heads:
                kinds = heads.map(self._type_of, [ref for _uri, ref in typed])
                for (uri, ref), kind in zip(typed, kinds, strict=True):
                    if kind is None or self._chosen.selects_type(kind):
                        planned.objects[uri] = ref  # the GET says why it cannot be read
                    else:
                        planned.filtered += 1
        return planned

    def _skip_checked(
        self, planned: Planned, typed: list[tuple[str, ObjectRef]]
    ) -> list[tuple[str, ObjectRef]]:
        """Leave out what was checked against the current bank versions already."""
        if self._already_checked is None:
            return typed
        refs = [*planned.objects.values(), *(ref for _uri, ref in typed)]
        seen = self._already_checked(refs, bank_seq(self._matcher)) if refs else set()
        if not seen:
            return typed
        kept = {uri: ref for uri, ref in planned.objects.items() if ref not in seen}
        still = [(uri, ref) for uri, ref in typed if ref not in seen]
        planned.skipped = len(planned.objects) + len(typed) - len(kept) - len(still)
        planned.objects = kept
        return still

    def _listed(self) -> Iterator[ListedObject]:
        try:
            yield from self._listing()
        except Exception as exc:
            raise ObjectListingFailed(str(exc)) from exc

    def _type_of(self, ref: ObjectRef) -> str | None:
        """The Content-Type (``None``: unknown, or the HEAD failed: the GET says why)."""
        try:
            return self._objects.content_type(ref)
        except OSError:
            return None

    def _unfinished(self, run: Any) -> list[WalkItem]:
        planned = self.plan(self._store.done_paths(run.id))
        self.filtered = planned.filtered
        if self._already_checked is not None:
            self.skipped = planned.skipped
            self._store.set_skipped(run.id, planned.skipped)
        self._refs = {**planned.objects, **{u: i.ref for u, i in planned.oversize.items()}}
        items = [
            WalkItem(
                path=uri,
                problem=Outcome.UNSUPPORTED,
                reason=f"{item.size} bytes: over the size cap ({self._chosen.max_size} bytes)",
            )
            for uri, item in planned.oversize.items()
        ]
        return items + [WalkItem(path=uri) for uri in planned.objects]

    def _source(self, path: str) -> StoredObject:
        return StoredObject(
            ref=self._refs[path],
            run_id=self._run_id,
            fetch=self._objects.fetch,
            data=self._held.get(path),
        )

    def _prepare(self, result: Any) -> Any:
        prepared = super()._prepare(result)
        self._held.pop(result.path, None)
        return prepared

    def _submit(self, paths: list[str]) -> None:
        for path in paths:
            outer: Future[HashOutput] = Future()
            outer.add_done_callback(partial(self._done, path))
            self._fetchers.submit(self._read_and_hash, path, outer)

    def _read_and_hash(self, path: str, outer: Future[HashOutput]) -> None:
        try:
            data, read = self._objects.get(self._refs[path])
        except OSError as exc:
            outer.set_result(HashOutput(signals=None, problem=Outcome.ERROR, reason=str(exc)))
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the scan's thread
            outer.set_exception(exc)
            return
        self._refs[path] = read
        self._held[path] = data
        try:
            inner = self._pool.submit_data(data)
        except BaseException as exc:  # noqa: BLE001 - a stopped pool stops the scan
            outer.set_exception(exc)
            return
        inner.add_done_callback(lambda done: _copy(done, outer))


def _copy(done: Future[HashOutput], outer: Future[HashOutput]) -> None:
    error = done.exception()
    if error is not None:
        outer.set_exception(error)
    else:
        outer.set_result(done.result())


def listing_of(
    store: Any,
    roots: Sequence[str],
    *,
    inventory: str | None,
    all_versions: bool,
) -> Callable[[], Iterator[ListedObject]]:
    """The objects under ``roots`` (``s3://bucket/prefix``), from LIST calls or from the
    inventory manifest ``inventory`` (whose rows are kept to the roots' buckets and
    prefixes)."""
    from hashguard.scan.objects import split_uri  # noqa: PLC0415 - imports no boto3 itself

    scopes = [split_uri(root) for root in roots]

    def objects() -> Iterator[ListedObject]:
        if inventory is not None:
            for item in store.inventory(inventory):
                if any(item.ref.bucket == b and item.ref.key.startswith(p) for b, p in scopes):
                    yield item
            return
        for bucket, prefix in scopes:
            yield from store.list(bucket, prefix, versions=all_versions)

    return objects
