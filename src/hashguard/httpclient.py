"""One HTTP client for every vetted service, list sources and remote matchers alike:
timeouts, retries with backoff on 429 and 5xx (honouring Retry-After), a client-side
rate limit, and errors that never carry a credential (only the method, the path, the
status and the exception's type)."""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

#: statuses worth retrying: the service asked us to slow down, or failed on its side
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 30.0


class ServiceError(Exception):
    """The call did not get a usable answer. ``status`` is the last HTTP status, if any;
    ``retryable`` says whether trying later may help."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class RateLimiter:
    """At most ``per_second`` calls a second, spaced evenly (thread-safe)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    base_seconds: float = 0.5


class ServiceClient:
    """Calls to one service. ``auth``/``headers`` hold the credentials: they go on the
    wire and nowhere else (not in exceptions, not in logs)."""

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        timeout: float,
        retry: RetryPolicy,
        per_second: float,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.service = service
        self._retry = retry
        self._limiter = RateLimiter(per_second)
        self._client = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            headers=dict(headers or {}),
            auth=auth,
            transport=transport,
            follow_redirects=False,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The first response that is not retryable (any 2xx, 3xx or 4xx but 408/425/429),
        or ``ServiceError`` once the retries are spent."""
        last: ServiceError | None = None
        for attempt in range(self._retry.attempts):
            if attempt:
                time.sleep(self._backoff(attempt, last))
            self._limiter.wait()
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TimeoutException:
                last = ServiceError(f"{self.service}: {method} {path} timed out", retryable=True)
                continue
            except httpx.HTTPError as exc:
                last = ServiceError(
                    f"{self.service}: {method} {path} failed ({type(exc).__name__})",
                    retryable=True,
                )
                continue
            if response.status_code not in RETRYABLE:
                return response
            last = ServiceError(
                f"{self.service}: {method} {path} answered {response.status_code}",
                status=response.status_code,
                retryable=True,
                retry_after=_retry_after(response),
            )
        assert last is not None
        raise last

    def _backoff(self, attempt: int, last: ServiceError | None) -> float:
        if last is not None and last.retry_after is not None:
            return min(last.retry_after, MAX_BACKOFF_SECONDS)
        ceiling = min(self._retry.base_seconds * 2**attempt, MAX_BACKOFF_SECONDS)
        return random.uniform(ceiling / 2, ceiling)

    def close(self) -> None:
        self._client.close()


def check_base_url(value: str) -> str:
    """A base URL that credentials may be sent to: https, or plain http to a loopback
    address (a local fake or proxy); no credentials, query or fragment in it."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials (they are secrets)")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or a fragment")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError("must use https (plain http only on loopback: credentials go with it)")
    return value.rstrip("/")


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value blanked (for a service's echo of our request)."""
    for value in secrets:
        if value:
            text = text.replace(value, "[redacted]")
    return text


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None
