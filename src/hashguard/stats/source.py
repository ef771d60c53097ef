"""Where the views read the numbers: the store's rollups (``store.stats``)."""

from __future__ import annotations

from typing import cast

from hashguard.domain.stats import StatsReader


class StatsUnavailable(RuntimeError):
    """This store records no statistics (a store of a version without rollups)."""


def reader_of(store: object) -> StatsReader:
    """The store's ``StatsReader``. Read through ``getattr`` so the views do not depend on
    the store's layout beyond the ``StatsReader`` protocol."""
    found = getattr(store, "stats", None)
    if found is None or not callable(getattr(found, "counts", None)):
        raise StatsUnavailable("this store keeps no statistics rollups")
    return cast(StatsReader, found)
