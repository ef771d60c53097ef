"""The long-running matcher of a server: shared by request threads, refreshed in the background."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
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
    Screened,
    load_or_build,
)

log = logging.getLogger("hashguard.matching")
#: tries to load the index at start-up, waiting LOAD_FIRST_WAIT * 2**n s in between
LOAD_ATTEMPTS = 6
LOAD_FIRST_WAIT = 0.25


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

    def __init__(
        self,
        source: EntrySource,
        snapshot: Path,
        *,
        attempts: int = LOAD_ATTEMPTS,
        first_wait: float = LOAD_FIRST_WAIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._source = source
        self._snapshot = snapshot
        self._attempts = attempts
        self._first_wait = first_wait
        self._sleep = sleep
        #: why the last attempt to load the index failed (None once loaded)
        self.load_problem: str | None = None
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._matcher: Matcher | None = None
        self._checked = 0.0

    def load(self) -> None:
        """Load (or build) the matcher; blocking, call it from a thread at start-up.

        A failure (the store not answering yet, the snapshot folder briefly unusable) is
        logged and tried again after 0.25, 0.5, 1, ... s; the last one is raised."""
        for attempt in range(1, self._attempts + 1):
            try:
                matcher = load_or_build(self._source, self._snapshot)
                break
            except Exception as exc:
                self.load_problem = str(exc)
                if attempt == self._attempts:
                    raise
                wait = self._first_wait * 2 ** (attempt - 1)
                log.warning(
                    "loading the match index failed (attempt %d of %d, again in %.2g s): %s",
                    attempt,
                    self._attempts,
                    wait,
                    exc,
                )
                self._sleep(wait)
        with self._lock:
            self._matcher = matcher
            self._checked = time.monotonic()
        self.load_problem = None

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

    def screen(self, signals: FileSignals) -> Screened:
        with self._lock:
            return self._current().screen(signals)

    def lookup(self, queries: Sequence[tuple[Algorithm, str]]) -> list[tuple[Match, ...]]:
        with self._lock:
            return self._current().lookup(queries)

    def versioned_lookup(
        self, queries: Sequence[tuple[Algorithm, str]]
    ) -> tuple[int, tuple[Bank, ...], list[tuple[Match, ...]]]:
        """``lookup`` with the index's change sequence number and enabled banks it was
        answered from (read together: an answer names the list version it came from)."""
        with self._lock:
            matcher = self._current()
            return matcher.seq, matcher.banks, matcher.lookup(queries)

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

    def sizes(self) -> tuple[int, dict[Algorithm, int]]:
        """The change sequence number the index has applied, and its live entries by
        algorithm (counted: call it for a status page, not per request)."""
        with self._lock:
            matcher = self._current()
            return matcher.seq, matcher.sizes()

    def _current(self) -> Matcher:
        if self._matcher is None:
            raise NotLoaded("the match index is still loading")
        return self._matcher
