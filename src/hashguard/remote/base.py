"""The remote-matcher adapter kind: a vetted service asked about one file."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from hashguard.domain.remote import RemoteResult
from hashguard.domain.signals import FileSignals
from hashguard.httpclient import RetryPolicy, ServiceClient
from hashguard.plugins import Adapter, AdapterKind


class RemoteSettings(BaseModel):
    """Settings every remote matcher has; adapters extend them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    #: whether the user's media may be sent to the service at all (hash-only otherwise)
    allow_media: bool = False
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=2, ge=0, le=10)
    #: first retry waits about this long (doubling, jittered) unless Retry-After says
    backoff_seconds: float = Field(default=0.5, ge=0, le=30)
    #: client-side quota, matching the service's
    requests_per_second: float = Field(default=5.0, gt=0)
    #: test mode: the service's test source or sandbox, on by default
    test_mode: bool = True

    def client(
        self,
        service: str,
        transport: httpx.BaseTransport | None,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> ServiceClient:
        """The HTTP client these settings describe: base URL, time limit, retries with
        backoff, client-side quota; ``headers``/``auth`` carry the credentials."""
        return ServiceClient(
            self.base_url,
            service=service,
            timeout=self.timeout_seconds,
            retry=RetryPolicy(attempts=self.retries + 1, base_seconds=self.backoff_seconds),
            per_second=self.requests_per_second,
            headers=headers,
            auth=auth,
            transport=transport,
        )


class RemoteMatcher(Adapter):
    """A service that matches a file against lists we cannot hold.

    Every call ends in a ``RemoteResult``; a timeout, a refusal or an error is
    ``not_answered`` (never ``no_match``), and nothing raises. ``match`` prefers a
    hash-only lookup (no user content leaves the platform) and sends the media only
    when the operator allowed it with ``allow_media``.
    """

    kind: ClassVar[AdapterKind] = AdapterKind.REMOTE_MATCHER
    Settings: ClassVar[type[BaseModel]] = RemoteSettings
    #: the matcher sends files' PDQ hashes: hashing must then compute reference-mode
    #: hashes for every file (``HashOptions(also_reference=True)``)
    sends_pdq: ClassVar[bool] = False
    #: files one matcher may be asked about at once (calls past the budget included)
    concurrency: ClassVar[int] = 4
    #: the name it is configured under when not its adapter's (``remote.<label>`` with
    #: ``adapter = "<name>"`` in the settings): its answers carry it
    _label: str | None = None

    @property
    def label(self) -> str:
        """The name its answers carry: the configured name, else the adapter's."""
        return self._label or self.name

    def labelled(self, label: str) -> RemoteMatcher:
        self._label = None if label == self.name else label
        return self

    @property
    def options(self) -> RemoteSettings:
        assert isinstance(self.settings, RemoteSettings)
        return self.settings

    @abstractmethod
    def match(self, data: bytes, signals: FileSignals) -> RemoteResult: ...

    def review_threshold(self) -> float | None:
        """The classifier score at or above which a file this matcher did not match goes
        to review ("classifier, no list match"); None: its scores only order the queue
        (and a matcher without a classifier has none)."""
        return None

    def probe(self) -> str | None:
        """Check the service and the credentials with a call that carries no file's data
        (``hashguard doctor``): what it said, or None when the adapter has no such call.
        Raises with a message (never a secret) when the check fails."""
        return None

    def close(self) -> None:
        """Release connections."""


def sends_pdq(matchers: Iterable[RemoteMatcher]) -> bool:
    """Whether any of ``matchers`` sends files' PDQ hashes: then hash every file with
    ``HashOptions(also_reference=True)`` (``HashOptions.for_scan(..., also_reference=)``)."""
    return any(matcher.sends_pdq for matcher in matchers)
