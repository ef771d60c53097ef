"""Retro-matching: the entries banks gained since the last run against every kept signal.

Only the new entries are matched (the banks' change sequence since the checkpoint):
exact hashes by a keyed lookup of the kept signals, PDQ hashes by an index built over
the kept signals' reference hashes (``matching.kept``) queried with the new entries.
A kept video's vPDQ frames are rows of the same index, keyed to the kept signal (a
frame is a PDQ hash: the matcher compares a video's frames with PDQ entries too), and a
new vPDQ entry (a listed video) queries it with its distinct frames: the kept videos
one of them comes near are candidates, and the matcher decides with the bank's
query and compared percentages. A
pair counts only if the entry is newer than the bank versions the item was checked
against (``checked_seq``): what the item was already matched with is not matched again.
A kept signal that a new entry found is matched in full by the pipeline's matcher (every
bank, allow-list suppression) and goes through the pipeline's decision: policy, case,
evidence (read again only for a match, only if still the content hashed), actions, with
a ``retro.matched`` audit event, and is marked checked at the current sequence in the
same transaction. The checkpoint moves after every hit is committed: a run killed
midway runs again over the same entries, and what it committed is not matched twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import Bank, BankKind
from hashguard.domain.kept import KeptSignal
from hashguard.domain.objects import ObjectRef
from hashguard.domain.signals import Algorithm, FileSignals, PdqHash, PdqMode
from hashguard.hashing.kernel import HashOutput
from hashguard.matching.kept import KeptHits, KeptIndex
from hashguard.matching.pdq import DEFAULT_THRESHOLD, pack
from hashguard.scan.pipeline import Pipeline, RetroHit
from hashguard.scan.sources import KeptItem
from hashguard.store import Store

#: kept signals matched and committed per batch
BATCH = 200
_EXACT = {Algorithm.MD5: "md5", Algorithm.SHA1: "sha1", Algorithm.SHA256: "sha256"}


@dataclass(frozen=True, kw_only=True, slots=True)
class RetroSummary:
    """What one run did: counts only, never hashes."""

    since: int
    seq: int
    new_entries: int
    kept_pdq: int
    candidates: int
    matched: int
    cases: int
    forgotten: int = 0


def _signals(kept: KeptSignal) -> FileSignals:
    return FileSignals(
        size=kept.size,
        md5=kept.md5,
        sha1=kept.sha1,
        sha256=kept.sha256,
        pdq=tuple(
            PdqHash(value=p.value, quality=p.quality, mode=PdqMode.REFERENCE, frame=frame)
            for frame, p in enumerate(kept.pdq)
        ),
        vpdq=kept.vpdq,
    )


#: Searches every kept signal's PDQ hashes with packed new entries, each within its
#: threshold: ``(hits, kept PDQ rows searched)``. In this process (``local_pdq_search``)
#: or across index partitions on a Ray cluster (``scan.retroray``).
PdqSearch = Callable[[npt.NDArray[np.uint64], npt.NDArray[np.int16]], tuple[KeptHits, int]]


def local_pdq_search(store: Store) -> PdqSearch:
    """One index over every kept signal, built in this process for this run."""

    def search(
        queries: npt.NDArray[np.uint64], thresholds: npt.NDArray[np.int16]
    ) -> tuple[KeptHits, int]:
        limit = max(DEFAULT_THRESHOLD, int(thresholds.max()) if len(thresholds) else 0)
        index = KeptIndex.from_rows(store.kept.pdq_rows(), threshold=limit)
        return index.search_packed(queries, thresholds), len(index)

    return search


def candidates(
    store: Store, since: int, banks: dict[int, Bank], pdq_search: PdqSearch | None = None
) -> tuple[list[int], int, int, int]:
    """Kept signals near entries added after ``since``: ``(kept ids, new entries, PDQ
    rows indexed (video frames included), the change sequence read)``. Only pairs whose
    entry is newer than the kept signal's check count, in an enabled bank that is not an
    allow list.
    ``pdq_search``: where the kept PDQ hashes are searched (default: this process)."""
    changes = store.banks.changes_since(since)
    live = changes.live
    usable = [
        i
        for i in range(len(live))
        if (bank := banks.get(live.bank_ids[i])) is not None
        and bank.enabled
        and bank.kind is not BankKind.ALLOW
    ]
    pairs: list[tuple[int, int, int]] = []  # (kept id, kept checked_seq, entry row id)
    by_algorithm: dict[Algorithm, dict[str, list[int]]] = {}
    pdq_rows: list[int] = []
    video_rows: list[int] = []
    for i in usable:
        algorithm = live.algorithms[i]
        if algorithm in _EXACT:
            by_algorithm.setdefault(algorithm, {}).setdefault(live.values[i].lower(), []).append(
                live.ids[i]
            )
        elif algorithm is Algorithm.PDQ:
            pdq_rows.append(i)
        elif algorithm is Algorithm.VPDQ:
            video_rows.append(i)
    for algorithm, wanted in by_algorithm.items():
        for kept_id, value, checked in store.kept.lookup(_EXACT[algorithm], wanted):
            pairs.extend((kept_id, checked, entry) for entry in wanted[value])
    # one search of the kept index: the new PDQ entries, then every new vPDQ entry's
    # distinct usable frames (query i is entry ``entries[i]``)
    values = [live.values[i] for i in pdq_rows]
    entries = [live.ids[i] for i in pdq_rows]
    limits = [banks[live.bank_ids[i]].pdq_threshold for i in pdq_rows]
    video_entries: set[int] = set()
    if video_rows:
        frames = store.banks.vpdq_frames(live.ids[i] for i in video_rows)
        for i in video_rows:
            distinct = {f.value for f in frames.get(live.ids[i], ()) if not f.low_quality}
            values.extend(sorted(distinct))
            entries.extend([live.ids[i]] * len(distinct))
            limits.extend([banks[live.bank_ids[i]].pdq_threshold] * len(distinct))
            video_entries.add(live.ids[i])
    indexed = 0
    if values:
        search = pdq_search or local_pdq_search(store)
        near, indexed = search(pack(values), np.asarray(limits, dtype=np.int16))
        close = {(hit.kept_id, hit.checked_seq, entries[hit.query]) for hit in near.hits()}
        # a listed video matches only a video's frames (``Matcher._video_matches``): a
        # kept image near one of its frames is no candidate
        videos = store.kept.videos({k for k, _, entry in close if entry in video_entries})
        pairs.extend(p for p in close if p[2] not in video_entries or p[0] in videos)
    seqs = store.banks.entry_seqs({entry for _, _, entry in pairs})
    found = {kept_id for kept_id, checked, entry in pairs if seqs.get(entry, 0) > checked}
    return sorted(found), len(usable), indexed, changes.seq


def retro_match(
    store: Store,
    pipeline: Pipeline,
    *,
    fetch_object: Callable[[ObjectRef], bytes] | None = None,
    keep_days: int | None = None,
    now: Callable[[], datetime] | None = None,
    pdq_search: PdqSearch | None = None,
) -> RetroSummary:
    """Match the entries banks gained since the last run against every kept signal and
    send each hit through ``pipeline``'s decision; see the module docstring. The
    pipeline's matcher must be current (it matches each hit in full). ``keep_days``
    first forgets kept signals past the retention limit. ``pdq_search`` searches the kept
    PDQ hashes elsewhere (``scan.retroray``: partitions on a Ray cluster); whatever
    searched them, the hits take the same path from here."""
    clock = now or pipeline.clock
    forgotten = 0
    if keep_days is not None:
        forgotten = store.kept.forget_before(clock() - timedelta(days=keep_days))
        if forgotten:
            record(store, pipeline.actor, AuditAction.RETRO_FORGOTTEN, None, count=forgotten)
    assert pipeline.matcher is not None, "retro-matching needs the pipeline's matcher"
    since = store.kept.checkpoint()
    banks = {bank.id: bank for bank in store.banks.list()}
    ids, new_entries, indexed, seq = candidates(store, since, banks, pdq_search)
    quiet = replace(pipeline, counting=False, keep_signals=False)
    matched = cases = 0
    for start in range(0, len(ids), BATCH):
        prepared = []
        for kept in store.kept.get(ids[start : start + BATCH]):
            signals = _signals(kept)
            matches = pipeline.matcher.screen(signals).matches
            path = kept.path or (kept.object.uri if kept.object else f"kept:{kept.id}")
            result = quiet.classify(path, HashOutput(signals=signals), matches, ())
            details = {
                "kept_signal": kept.id,
                "way": kept.way,
                "checked_at": kept.checked_at.isoformat(),
                "checked_seq": kept.checked_seq,
                "seq": seq,
                "banks": sorted({m.bank for m in matches}),
            }
            source = KeptItem(kept=kept, fetch=fetch_object)
            prepared.append(
                replace(
                    quiet.prepare(result, source),
                    retro=RetroHit(kept_id=kept.id, seq=seq, details=details),
                )
            )
            matched += bool(matches)
        for done in quiet.commit(prepared):
            cases += done.case is not None
    with store.atomic() as unit:
        unit.kept.set_checkpoint(seq, at=clock())
        record(
            unit,
            pipeline.actor,
            AuditAction.RETRO_RUN,
            None,
            since=since,
            seq=seq,
            new_entries=new_entries,
            kept_pdq=indexed,
            candidates=len(ids),
            matched=matched,
        )
    return RetroSummary(
        since=since,
        seq=seq,
        new_entries=new_entries,
        kept_pdq=indexed,
        candidates=len(ids),
        matched=matched,
        cases=cases,
        forgotten=forgotten,
    )
