"""Matching a hashed item, with ``fast`` PDQ hashes near a list entry confirmed by the reference.

The default PDQ mode hashes large JPEGs from pixels decoded at reduced size; its hash of
a file differs from the reference hash (what list holders and HMA compute) by a few
bits. A file whose fast hash is farther than a bank's threshold from every entry but
whose reference hash is within it would be missed, and one within the threshold only
thanks to the drift would be a match the reference does not make. So when a fast hash
comes within threshold + ``FAST_CONFIRM_MARGIN`` of any entry (``Matcher.screen``),
the file is hashed again in reference mode, in the same isolated workers, and the
reference hashes decide its matches; they are also what its evidence, webhooks and
allow-bank entries carry. Files far from every entry (nearly all) cost nothing more.

``Pipeline.match`` calls ``screened`` for every way in (``/v1/scan``, ``hashguard scan``,
scan runs).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from hashguard.domain.matches import Match
from hashguard.domain.signals import FileSignals
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, HashOutput
from hashguard.hashing.reference import confirmed
from hashguard.matching.matcher import Screened


class Screens(Protocol):
    def screen(self, signals: FileSignals) -> Screened: ...


def screened(
    matcher: Screens,
    output: HashOutput,
    *,
    pool: HashingPool,
    options: HashOptions | None = None,
    data: bytes | None = None,
    path: str | None = None,
) -> tuple[HashOutput, tuple[Match, ...]]:
    """The item's output and its matches. ``options`` are those it was hashed with
    (default: the pool's); ``data`` or ``path`` is the content, read again only when a
    fast hash must be confirmed. When the content changed or no longer decodes, the fast
    hash's matches stand (logged). Raises ``PoolStopped`` as the pool does."""
    if output.signals is None:
        return output, ()
    first = matcher.screen(output.signals)
    if not first.confirm:
        return output, first.matches
    signals = confirmed(
        output.signals, options=options or pool.options, pool=pool, data=data, path=path
    )
    if signals is None:
        return output, first.matches
    return dataclasses.replace(output, signals=signals), matcher.screen(signals).matches
