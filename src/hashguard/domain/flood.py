"""The flood guard's values: per-bank limits, flags on list entries, and their counts.

A list entry *floods* when it matches more than ``max_items`` distinct content items
(distinct SHA-256) within ``window``: a stock photo, a logo or a near-blank frame that
found its way onto a list. Its automatic actions then pause (its matches go to review)
until a lead releases it or tombstones it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

#: Distinct items one entry may match in the window before it pauses. A listed image
#: re-encoded, resized or cropped across one service rarely shows up in more than a few
#: dozen distinct byte versions a day; a stock photo or a blank frame on a list matches
#: hundreds to thousands (the Dutch HashCheckService incident). Pausing never loses a
#: match (it goes to review), so a false trip costs reviewer time, not a miss: the
#: limit can sit well below the thousands and well above normal re-encodes.
DEFAULT_FLOOD_MAX_ITEMS = 100
#: A day: long enough to see a flood across a daily upload cycle and a nightly bulk
#: scan, short enough that a slowly spreading real item does not add up over months.
DEFAULT_FLOOD_WINDOW = timedelta(hours=24)
#: The longest window a bank may set (counters older than the window are pruned).
MAX_FLOOD_WINDOW = timedelta(days=90)


class InvalidFloodLimit(ValueError):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class FloodLimit:
    """An entry of the bank pauses once it matched more than ``max_items`` distinct
    items within ``window``. ``max_items`` ``None``: the guard is off for the bank."""

    max_items: int | None = DEFAULT_FLOOD_MAX_ITEMS
    window: timedelta = DEFAULT_FLOOD_WINDOW

    def __post_init__(self) -> None:
        if self.max_items is not None and not 1 <= self.max_items <= 10_000_000:
            raise InvalidFloodLimit("max_items must be between 1 and 10000000 (or off)")
        if not timedelta(minutes=1) <= self.window <= MAX_FLOOD_WINDOW:
            raise InvalidFloodLimit(
                f"the window must be between 1 minute and {MAX_FLOOD_WINDOW.days} days"
            )

    @property
    def enabled(self) -> bool:
        return self.max_items is not None

    def describe(self) -> str:
        if self.max_items is None:
            return "off"
        return (
            f"pause an entry after more than {self.max_items} distinct items "
            f"in {_span(self.window)}"
        )

    def short(self) -> str:
        """``> 100 in 1d``, or ``off``."""
        if self.max_items is None:
            return "off"
        return f"> {self.max_items} in {_span(self.window).replace(' ', '')}"


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


class FloodState(StrEnum):
    """Where a flag stands. Persisted names, never renamed.

    ``flagged``: the entry is paused. ``released``: a lead let it act again (its
    counter restarted). ``tombstoned``: a lead removed the entry from its bank; it stays
    paused should a later import bring it back, until a lead releases it.
    """

    FLAGGED = "flagged"
    RELEASED = "released"
    TOMBSTONED = "tombstoned"

    @property
    def pauses(self) -> bool:
        return self is not FloodState.RELEASED


@dataclass(frozen=True, kw_only=True, slots=True)
class FloodFlag:
    """One flood of one entry, from its flag to a lead's release or tombstone.

    ``entry_ref`` is the store's reference to the entry (not the hash; the hash is never
    shown); ``entry_id`` is the list's own id for it, if it has one. ``paused_matches``
    counts matched items whose automatic actions the flag turned into review.
    """

    id: int
    entry_ref: int
    bank: str
    entry_id: str | None
    category: str | None
    state: FloodState
    flagged_at: datetime
    distinct_items: int
    limit: FloodLimit
    paused_matches: int
    last_paused_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None

    @property
    def pauses(self) -> bool:
        return self.state.pauses


@dataclass(frozen=True, kw_only=True, slots=True)
class FloodObservation:
    """What observing one matched item found: the entries (``entry_ref``) whose automatic
    actions are paused for it, and the flags this observation raised."""

    paused: frozenset[int] = frozenset()
    flagged: tuple[FloodFlag, ...] = ()


#: Nothing paused, nothing flagged.
NOTHING_PAUSED = FloodObservation()


@dataclass(frozen=True, kw_only=True, slots=True)
class FloodCounts:
    """The flood guard in numbers, for statistics: flags raised, released and
    tombstoned, flags still pausing, and matched items whose actions were paused."""

    flagged: int
    released: int
    tombstoned: int
    paused_now: int
    paused_matches: int
