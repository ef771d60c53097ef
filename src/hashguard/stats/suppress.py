"""Small-number suppression of a table of counts with a published total.

The rules, for one table (its cells and its total, the only linear relation among the
published numbers: a feed publishes no subtotals and no cell twice):

1. *Primary*: a cell with ``0 < value < k`` is suppressed. A zero is published (it
   discloses no case and no person).
2. *Total*: a total with ``0 < total < k`` is suppressed (and then every non-zero cell
   is below k, so suppressed too).
3. *Complementary*: with a published total, the suppressed cells' sum ``R`` is known
   (``total - published``), and a reader knows each suppressed cell is at least 1. So
   while fewer than two cells are suppressed or ``R - (m - 1) < k`` (some suppressed
   cell could be pinned below k), the smallest published non-zero cell is suppressed
   as well; if none is left, the total is suppressed instead. Afterwards each
   suppressed cell could be anything from 1 to ``R - m + 1 >= k``: no suppressed value
   can be recomputed or bounded below k.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")

DEFAULT_K = 10


@dataclass(frozen=True, kw_only=True, slots=True)
class Suppressed(Generic[K]):
    """The published view of a table: ``None`` for a suppressed cell or total."""

    cells: Mapping[K, int | None]
    total: int | None


def suppress(
    cells: Mapping[K, int],
    *,
    k: int = DEFAULT_K,
    total: bool = True,
    forced: Collection[K] = (),
) -> Suppressed[K]:
    """``cells`` (with their sum as the total) as they may be published under ``k``.
    Without ``total`` (cells that do not add up to anything meaningful, e.g. a report
    counted once filed and again acknowledged) no total is published and only the
    primary rule applies. ``forced`` cells (non-zero) are suppressed whatever their
    value, like a primary suppression (e.g. a cell only one tenant contributed to)."""
    if k < 1:
        raise ValueError("k is at least 1")
    if any(v < 0 for v in cells.values()):
        raise ValueError("counts are never negative")
    whole = sum(cells.values())
    hidden = {key for key, value in cells.items() if 0 < value < k or (value and key in forced)}
    total_hidden = not total or 0 < whole < k
    if hidden and not total_hidden:
        order: Sequence[K] = sorted(
            (key for key, value in cells.items() if value > 0 and key not in hidden),
            key=lambda key: (cells[key], repr(key)),
        )
        candidates = list(order)
        while len(hidden) < 2 or sum(cells[h] for h in hidden) - (len(hidden) - 1) < k:
            if not candidates:
                total_hidden = True
                break
            hidden.add(candidates.pop(0))
    return Suppressed(
        cells={key: None if key in hidden else value for key, value in cells.items()},
        total=None if total_hidden else whole,
    )
