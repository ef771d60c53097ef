"""Refusing work early: bounded receiving and hashing admission, per-token limits,
lookup rate limits.

Under overload a request is refused at once (503 or 429 with Retry-After) instead of
queueing until every request is slow: the accepted ones keep their latency. An upload
holds a hashing slot only once its whole body is in memory; while it arrives it holds
a share of a separate, small budget for bodies being received, so clients that send
headers and stall cannot hold the hashing slots. No token gets more than
``TOKEN_SHARE`` of either.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from hashguard.web.problems import ProblemError

#: the most of the hashing slots, or of the receive budget, that one token may hold
TOKEN_SHARE = 0.5


def token_cap(capacity: int, configured: int | None = None) -> int:
    """What one token may hold of ``capacity``: at most ``TOKEN_SHARE`` of it (at least
    one), and at most ``configured``."""
    share = max(1, int(capacity * TOKEN_SHARE))
    return share if configured is None else min(configured, share)


def _overloaded(detail: str) -> ProblemError:
    return ProblemError(503, "Overloaded", detail, {"Retry-After": "1"})


def _token_limited(detail: str) -> ProblemError:
    return ProblemError(429, "Too many requests for this token", detail, {"Retry-After": "1"})


class Admission:
    """At most ``capacity`` hashing requests at once, and for any one token the smaller
    of ``per_token`` and ``TOKEN_SHARE`` of the capacity (so no token can take it all)."""

    def __init__(self, capacity: int, per_token: int, *, on_refusal: Callable[[str], None]) -> None:
        self.capacity = capacity
        self.per_token = token_cap(capacity, per_token)
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
                raise _overloaded(f"all {self.capacity} hashing slots are busy; retry shortly")
            if self._by_token[token_id] >= self.per_token:
                self._on_refusal("token_limit")
                raise _token_limited(f"this token already has {self.per_token} uploads in flight")
            self._total += 1
            self._by_token[token_id] += 1

    def release(self, token_id: int) -> None:
        with self._lock:
            self._total -= 1
            self._by_token[token_id] -= 1


class Receiving:
    """Upload bodies being received, before they may ask for a hashing slot: at most
    ``max_bodies`` and ``max_bytes`` at once (a declared length counts from the start),
    and ``TOKEN_SHARE`` of each for any one token. One body is always let in when
    nothing else is being received (for the same token, or at all)."""

    def __init__(
        self, max_bodies: int, max_bytes: int, *, on_refusal: Callable[[str], None]
    ) -> None:
        self.max_bodies = max_bodies
        self.max_bytes = max_bytes
        self.token_bodies = token_cap(max_bodies)
        self.token_bytes = token_cap(max_bytes)
        self._on_refusal = on_refusal
        self._lock = threading.Lock()
        self._bodies = 0
        self._bytes = 0
        self._by_token: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])

    @property
    def in_flight(self) -> int:
        return self._bodies

    def reserve(self, token_id: int, size: int) -> Reservation:
        """Room for a body of ``size`` bytes (0 if unknown; ``grow`` as it arrives), or
        the 503/429 problem; ``release`` the reservation once the body is in."""
        with self._lock:
            mine = self._by_token[token_id]
            if self._bodies >= self.max_bodies or (
                self._bodies and self._bytes + size > self.max_bytes
            ):
                self._on_refusal("overload")
                raise _overloaded("too many uploads are being received; retry shortly")
            if mine[0] >= self.token_bodies or (mine[0] and mine[1] + size > self.token_bytes):
                self._on_refusal("token_limit")
                raise _token_limited("this token already has too many uploads being received")
            self._bodies += 1
            self._bytes += size
            mine[0] += 1
            mine[1] += size
        return Reservation(self, token_id, size)

    def adjust(self, token_id: int, bodies: int, size: int) -> None:
        """Count ``bodies`` more bodies and ``size`` more bytes for ``token_id``."""
        with self._lock:
            mine = self._by_token[token_id]
            self._bodies += bodies
            self._bytes += size
            mine[0] += bodies
            mine[1] += size
            if mine == [0, 0]:
                del self._by_token[token_id]


class Reservation:
    """One body's share of the receive budget."""

    def __init__(self, budget: Receiving, token_id: int, size: int) -> None:
        self._budget = budget
        self._token_id = token_id
        self.size = size
        self._held = True

    def grow(self, size: int) -> None:
        """The body turned out larger than reserved (no declared length): count it."""
        if self._held and size > self.size:
            self._budget.adjust(self._token_id, 0, size - self.size)
            self.size = size

    def release(self) -> None:
        if self._held:
            self._held = False
            self._budget.adjust(self._token_id, -1, -self.size)


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


class TenantLimiter:
    """A token bucket per tenant of the hash check service, at the tenant's own rate
    (hashes a second, shared by all its tokens), bursting up to ``burst`` hashes (at
    least one full batch). On top of each token's ``LookupLimiter``: a tenant cannot
    multiply its rate by making tokens."""

    def __init__(
        self,
        *,
        burst: int,
        on_refusal: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self._on_refusal = on_refusal
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[float, float]] = {}  # tenant -> (tokens, updated)

    def take(self, tenant_id: int, rate_per_second: float, count: int) -> None:
        """Take ``count`` hashes from the tenant's bucket, or raise the 429 problem."""
        burst = max(float(self.burst), rate_per_second)
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(tenant_id, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - updated) * rate_per_second)
            if count > tokens:
                self._buckets[tenant_id] = (tokens, now)
                self._on_refusal("tenant_limit")
                wait = max(1, math.ceil((count - tokens) / rate_per_second))
                raise ProblemError(
                    429,
                    "Too many requests for this tenant",
                    f"lookup rate limit: {rate_per_second:g} hashes a second for this tenant",
                    {"Retry-After": str(wait)},
                )
            self._buckets[tenant_id] = (tokens - count, now)
