"""Kept signals and the retro-matcher's checkpoint: hashes of checked items, never content."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, delete, func, insert, select, update

from hashguard.domain.kept import KeptPdq, KeptSignal, NewKept
from hashguard.domain.objects import ObjectRef
from hashguard.domain.video import VpdqFrame
from hashguard.store._util import chunked, stamp, utc
from hashguard.store.schema import kept_signals, retro_state

#: the exact-hash columns a keyed lookup may use
EXACT_COLUMNS = ("md5", "sha1", "sha256")


def _row_values(item: NewKept, *, at: datetime, seq: int) -> dict[str, Any]:
    ref = item.object
    return {
        "way": item.way,
        "checked_at": at,
        "checked_seq": seq,
        "run_id": item.run_id,
        "path": item.path,
        "object_bucket": ref.bucket if ref else None,
        "object_key": ref.key if ref else None,
        "object_version": ref.version_id if ref else None,
        "object_etag": ref.etag if ref else None,
        "content_id": item.content_id,
        "request_id": item.request_id,
        "size": item.size,
        "md5": item.md5,
        "sha1": item.sha1,
        "sha256": item.sha256,
        "pdq": [[p.value, p.quality] for p in item.pdq],
        "vpdq": [[f.value, f.quality, f.timestamp, f.frame] for f in item.vpdq] or None,
    }


def _frames(stored: list[Any] | None) -> tuple[VpdqFrame, ...]:
    """Kept ``[[hex, quality, timestamp, frame], ...]`` as vPDQ frames."""
    return tuple(
        VpdqFrame(value=str(v), quality=int(q), timestamp=float(t), frame=int(n))
        for v, q, t, n in stored or ()
    )


def _hashes(pdq: list[Any] | None, vpdq: list[Any] | None) -> list[Any]:
    """A kept signal's PDQ hashes, then its video frames' distinct hashes not among them."""
    hashes = list(pdq or ())
    seen = {str(value) for value, _quality in hashes}
    for value, quality, *_rest in vpdq or ():
        if value not in seen:
            seen.add(value)
            hashes.append([value, quality])
    return hashes


def _same_object(ref: ObjectRef) -> Any:
    k = kept_signals.c
    version = (
        k.object_version.is_(None)
        if ref.version_id is None
        else (k.object_version == ref.version_id)
    )
    etag = k.object_etag.is_(None) if ref.etag is None else k.object_etag == ref.etag
    return and_(k.object_bucket == ref.bucket, k.object_key == ref.key, version, etag)


def insert_kept(conn: Connection, items: Sequence[NewKept], *, at: datetime, seq: int) -> None:
    """Keep ``items``' signals, checked at ``at`` against the banks at change ``seq``
    (inside the caller's transaction). An object keeps one kept signal per identity
    ``(bucket, key, version, etag)``: checked again, its row is brought up to date."""
    fresh = []
    for item in items:
        if item.object is None:
            fresh.append(item)
            continue
        done = conn.execute(
            update(kept_signals)
            .where(_same_object(item.object))
            .values(_row_values(item, at=at, seq=seq))
        )
        if not done.rowcount:
            fresh.append(item)
    if fresh:
        conn.execute(insert(kept_signals), [_row_values(i, at=at, seq=seq) for i in fresh])


def mark_checked(conn: Connection, ids: Sequence[int], seq: int) -> None:
    """Kept signals ``ids`` were matched again, against the banks at ``seq``."""
    for chunk in chunked(list(ids)):
        conn.execute(
            update(kept_signals)
            .where(kept_signals.c.id.in_(chunk), kept_signals.c.checked_seq < seq)
            .values(checked_seq=seq)
        )


def _kept(row: Row[Any]) -> KeptSignal:
    ref = None
    if row.object_bucket is not None:
        ref = ObjectRef(
            bucket=row.object_bucket,
            key=row.object_key,
            version_id=row.object_version,
            etag=row.object_etag,
        )
    return KeptSignal(
        id=int(row.id),
        way=row.way,
        checked_at=stamp(row.checked_at),
        checked_seq=int(row.checked_seq),
        md5=row.md5,
        sha1=row.sha1,
        sha256=row.sha256,
        size=int(row.size),
        pdq=tuple(KeptPdq(value=str(v), quality=int(q)) for v, q in row.pdq or ()),
        vpdq=_frames(row.vpdq),
        run_id=row.run_id,
        path=row.path,
        object=ref,
        content_id=row.content_id,
        request_id=row.request_id,
    )


class KeptStore:
    """Kept signals: keyed lookups by exact hash, PDQ rows for an index, retention."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, items: Sequence[NewKept], *, at: datetime, seq: int) -> None:
        with self._engine.begin() as conn:
            insert_kept(conn, items, at=at, seq=seq)

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(kept_signals)).scalar_one())

    def get(self, ids: Iterable[int]) -> list[KeptSignal]:
        wanted = sorted(set(ids))
        found: list[KeptSignal] = []
        with self._engine.connect() as conn:
            for chunk in chunked(wanted):
                rows = conn.execute(select(kept_signals).where(kept_signals.c.id.in_(chunk)))
                found.extend(_kept(row) for row in rows)
        return sorted(found, key=lambda k: k.id)

    def lookup(self, column: str, values: Iterable[str]) -> list[tuple[int, str, int]]:
        """``(kept id, value, checked_seq)`` of every kept signal whose ``column`` (md5,
        sha1, sha256) is one of ``values``: a keyed lookup, never a scan."""
        if column not in EXACT_COLUMNS:
            raise ValueError(f"not an exact-hash column: {column}")
        col = kept_signals.c[column]
        found: list[tuple[int, str, int]] = []
        with self._engine.connect() as conn:
            for chunk in chunked(sorted({v.lower() for v in values})):
                rows = conn.execute(
                    select(kept_signals.c.id, col, kept_signals.c.checked_seq).where(col.in_(chunk))
                )
                found.extend((int(i), str(v), int(s)) for i, v, s in rows)
        return found

    def videos(self, ids: Iterable[int]) -> set[int]:
        """Which of kept signals ``ids`` keep a video's vPDQ frames (a keyed lookup)."""
        found: set[int] = set()
        with self._engine.connect() as conn:
            for chunk in chunked(sorted(set(ids))):
                rows = conn.execute(
                    select(kept_signals.c.id).where(
                        kept_signals.c.id.in_(chunk), kept_signals.c.vpdq.is_not(None)
                    )
                )
                found.update(int(i) for (i,) in rows)
        return found

    def checked_objects(self, refs: Sequence[ObjectRef], seq: int) -> set[ObjectRef]:
        """Which of ``refs`` (by ``(bucket, key, version, etag)``) were already checked
        against the banks at change ``seq`` or later: an incremental rescan skips them.
        Keyed lookups by bucket and key, never a scan."""
        wanted = {(r.bucket, r.key, r.version_id, r.etag): r for r in refs}
        by_bucket: dict[str, list[str]] = {}
        for bucket, key, _version, _etag in wanted:
            by_bucket.setdefault(bucket, []).append(key)
        k = kept_signals.c
        found: set[ObjectRef] = set()
        with self._engine.connect() as conn:
            for bucket, keys in by_bucket.items():
                for chunk in chunked(sorted(set(keys))):
                    rows = conn.execute(
                        select(k.object_key, k.object_version, k.object_etag).where(
                            k.object_bucket == bucket,
                            k.object_key.in_(chunk),
                            k.checked_seq >= seq,
                        )
                    )
                    for key, version, etag in rows:
                        ref = wanted.get((bucket, key, version, etag))
                        if ref is not None:
                            found.add(ref)
                        # a listing of current objects names no version: the ETag says
                        # whether the version read then holds the same content
                        unversioned = wanted.get((bucket, key, None, etag))
                        if unversioned is not None and etag is not None:
                            found.add(unversioned)
        return found

    def pdq_rows(
        self, batch: int = 100_000, *, partition: tuple[int, int] | None = None
    ) -> Iterator[list[tuple[int, int, list[Any]]]]:
        """``(kept id, checked_seq, [[hex, quality], ...])`` of every kept signal with a
        PDQ hash or vPDQ frames, in id order and in batches: the retro-matcher's index
        input. A video's frames follow its PDQ hashes, each distinct hash once (a frame
        is a PDQ hash: the matcher compares a video's frames with PDQ entries and with
        listed videos' frames). ``partition=(k, n)``: only the kept signals with
        ``id % n == k`` (one of ``n`` index partitions, each loaded by its own process)."""
        k = kept_signals.c
        query = select(k.id, k.checked_seq, k.pdq, k.vpdq)
        if partition is not None:
            part, parts = partition
            if not 0 <= part < parts:
                raise ValueError(f"no partition {part} of {parts}")
            query = query.where(kept_signals.c.id % parts == part)
        query = query.order_by(kept_signals.c.id).execution_options(yield_per=batch)
        with self._engine.connect() as conn:
            for rows in conn.execute(query).partitions():
                found = ((int(i), int(s), _hashes(p, v)) for i, s, p, v in rows)
                yield [row for row in found if row[2]]

    def forget_before(self, cutoff: datetime) -> int:
        """Forget kept signals checked before ``cutoff`` (the retention limit)."""
        with self._engine.begin() as conn:
            result = conn.execute(
                delete(kept_signals).where(kept_signals.c.checked_at < utc(cutoff))
            )
            return int(result.rowcount or 0)

    def checkpoint(self) -> int:
        """Bank entries up to this change sequence were retro-matched (0: never)."""
        with self._engine.connect() as conn:
            seq = conn.execute(select(retro_state.c.seq).where(retro_state.c.id == 1))
            return int(seq.scalar_one_or_none() or 0)

    def set_checkpoint(self, seq: int, *, at: datetime) -> None:
        with self._engine.begin() as conn:
            set_checkpoint(conn, seq, at=at)


def set_checkpoint(conn: Connection, seq: int, *, at: datetime) -> None:
    done = conn.execute(update(retro_state).where(retro_state.c.id == 1).values(seq=seq, at=at))
    if not done.rowcount:
        conn.execute(insert(retro_state).values(id=1, seq=seq, at=at))
