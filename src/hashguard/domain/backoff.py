"""The one rule for waiting before trying again, shared by everything that retries
(webhook and quarantine actions, CyberTipline reports, Transparency Database batches,
notice callbacks, hashing-pool rebuilds, index loads)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    """``first`` after the first failure, doubled after each further one, never more than
    ``longest``; ``give_up_after`` (where the caller gives up at all) is how long after
    the first try a failure is final."""

    first: timedelta
    longest: timedelta
    give_up_after: timedelta | None = None

    def delay(self, failures: int) -> timedelta:
        """The wait after ``failures`` failed tries in a row (1 for the first)."""
        grown: timedelta = self.first * 2 ** min(max(failures - 1, 0), 40)
        return min(grown, self.longest)

    def jittered(self, failures: int, rng: random.Random) -> timedelta:
        """A wait drawn evenly below ``delay(failures)`` ("full jitter"), so that many
        retriers that failed together do not all try again together."""
        return timedelta(seconds=rng.uniform(0, self.delay(failures).total_seconds()))
