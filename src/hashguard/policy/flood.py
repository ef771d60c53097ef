"""The flood guard's rule, pure: which entries a matched item counts for, and when an
entry's distinct-content count pauses it. The counting itself is ``store.flood``'s."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from hashguard.domain.flood import FloodLimit
from hashguard.domain.matches import Match


def counted(matches: Iterable[Match]) -> dict[int, Match]:
    """The entries (by ``entry_ref``) a matched item counts for: every effective match of
    a known bank (shadow banks too: a flooding entry is worth knowing before the bank
    goes live). Allow-bank and suppressed matches, and remote matches (no entry), are
    not counted."""
    found: dict[int, Match] = {}
    for match in matches:
        if match.effective and match.entry_ref is not None:
            found.setdefault(match.entry_ref, match)
    return found


def floods(distinct_items: int, limit: FloodLimit) -> bool:
    """An entry floods once it matched *more than* ``max_items`` distinct items in the
    window (the item that makes it ``max_items + 1`` is already paused)."""
    return limit.max_items is not None and distinct_items > limit.max_items


def window_start(now: datetime, limit: FloodLimit) -> datetime:
    """Items seen before this no longer count."""
    return now - limit.window


def entry_label(match: Match) -> str:
    """How the rule names an entry: the list's own id, else the store's reference
    (never the hash)."""
    if match.entry_id:
        return f"entry {match.entry_id}"
    return f"entry #{match.entry_ref}"
