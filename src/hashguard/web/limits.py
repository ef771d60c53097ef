"""Refusing work early: bounded hashing admission, per-token limits, lookup rate limits.

Under overload a request is refused at once (503 or 429 with Retry-After) instead of
queueing until every request is slow: the accepted ones keep their latency.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from hashguard.web.problems import ProblemError


class Admission:
    """At most ``capacity`` hashing requests at once, and ``per_token`` for any one token."""

    def __init__(self, capacity: int, per_token: int, *, on_refusal: Callable[[str], None]) -> None:
        self.capacity = capacity
        self.per_token = per_token
        self._on_refusal = on_refusal
        self._lock = threading.Lock()
        self._total = 0
        self._by_token: defaultdict[int, int] = defaultdict(int)

    @property
    def in_flight(self) -> int:
        return self._total

    def acquire(self, token_id: int) -> None:
        """Take a slot for ``token_id`` or raise the 503/429 problem; ``release`` it."""
        with self._lock:
            if self._total >= self.capacity:
                self._on_refusal("overload")
                raise ProblemError(
                    503,
                    "Overloaded",
                    f"all {self.capacity} hashing slots are busy; retry shortly",
                    {"Retry-After": "1"},
                )
            if self._by_token[token_id] >= self.per_token:
                self._on_refusal("token_limit")
                raise ProblemError(
                    429,
                    "Too many requests for this token",
                    f"this token already has {self.per_token} uploads in flight",
                    {"Retry-After": "1"},
                )
            self._total += 1
            self._by_token[token_id] += 1

    def release(self, token_id: int) -> None:
        with self._lock:
            self._total -= 1
            self._by_token[token_id] -= 1


class LookupLimiter:
    """A token bucket per token: ``per_minute`` hashes a minute, bursts up to ``burst``
    (at least the largest batch, so that every allowed call can eventually pass).

    Looking up hashes is how a list could be enumerated by brute force; this bounds it.
    """

    def __init__(self, per_minute: int, *, burst: int, on_refusal: Callable[[str], None]) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self._on_refusal = on_refusal
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[float, float]] = {}  # token -> (tokens, updated)

    def take(self, token_id: int, count: int) -> None:
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, updated = self._buckets.get(token_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - updated) * rate)
            if count > tokens:
                self._buckets[token_id] = (tokens, now)
                self._on_refusal("token_limit")
                wait = math.ceil((count - tokens) / rate)
                raise ProblemError(
                    429,
                    "Too many requests for this token",
                    f"lookup rate limit: {self.per_minute} hashes a minute per token",
                    {"Retry-After": str(wait)},
                )
            self._buckets[token_id] = (tokens - count, now)
