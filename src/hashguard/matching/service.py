"""The long-running matcher of a server: shared by request threads, refreshed in the background."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hashguard.domain.banks import Bank
from hashguard.domain.matches import Match
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.matching.matcher import (
    COMPACT_MIN,
    COMPACT_SHARE,
    EntrySource,
    Matcher,
    load_or_build,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexState:
    entries: int
    pending: int
    seq: int
    banks: int
    #: seconds since the store was last checked for changes
    age: float


class NotLoaded(RuntimeError):
    pass


class MatcherService:
    """One ``Matcher`` shared by request threads.

    Searches and the in-memory part of a refresh take a lock; the store queries of a
    refresh and the rebuild of a compaction happen outside it, so a refresh never
    blocks requests for longer than applying the changes.
    """

    def __init__(self, source: EntrySource, snapshot: Path) -> None:
        self._source = source
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._matcher: Matcher | None = None
        self._checked = 0.0

    def load(self) -> None:
        """Load (or build) the matcher; blocking, call it from a thread at start-up."""
        matcher = load_or_build(self._source, self._snapshot)
        with self._lock:
            self._matcher = matcher
            self._checked = time.monotonic()

    def refresh(self) -> int:
        """Catch up with the store; returns the number of entries changed."""
        with self._refreshing:
            matcher = self._current()
            changes, banks = matcher.pull()
            with self._lock:
                changed = matcher.apply(changes, banks)
                self._checked = time.monotonic()
            if matcher.pending > max(COMPACT_MIN, COMPACT_SHARE * len(matcher)):
                fresh = matcher.compacted()  # only this thread changes the matcher
                with self._lock:
                    self._matcher = fresh
                fresh.save(self._snapshot)
            return changed

    def match(self, signals: FileSignals) -> tuple[Match, ...]:
        with self._lock:
            return self._current().match(signals)

    def lookup(self, queries: Sequence[tuple[Algorithm, str]]) -> list[tuple[Match, ...]]:
        with self._lock:
            return self._current().lookup(queries)

    @property
    def banks(self) -> tuple[Bank, ...]:
        """The enabled banks as of the last refresh (their policies decide on matches)."""
        with self._lock:
            return self._current().banks

    @property
    def loaded(self) -> bool:
        return self._matcher is not None

    def state(self) -> IndexState:
        with self._lock:
            matcher = self._current()
            return IndexState(
                entries=len(matcher),
                pending=matcher.pending,
                seq=matcher.seq,
                banks=len(matcher.banks),
                age=time.monotonic() - self._checked,
            )

    def _current(self) -> Matcher:
        if self._matcher is None:
            raise NotLoaded("the match index is still loading")
        return self._matcher
