"""The ``hashguard`` adapter: another hashguard (a hotline's hash check service) asked
through ``POST /v1/lookup``, with hashes only.

A small host holds no list: it hashes its files, sends the hashes to the service that
holds the lists, and acts on and records the answers locally. What leaves is a file's
MD5, SHA-1 and SHA-256 and its **reference-mode** PDQ hashes of good quality (the
hashing computes them for every file when this matcher is configured: ``sends_pdq``);
never the content (``allow_media`` is refused) and never a fast-mode PDQ hash
(``leaving`` guards the exit). A file whose PDQ hashes are all fast-mode ones and
whose exact hashes matched nothing is ``not_answered``: half a check is not "no match".

Files asked about at the same time share one call: the first waits ``gather_seconds``
for others, then one ``POST /v1/lookup`` carries all their hashes (at most
``batch_size`` a call, the service's ``lookup_max_batch``; more go in several calls).
A call that fails, times out or is refused leaves every file in it ``not_answered``.

Nothing is cached: each file is asked afresh, so no answer outlives the list version
(``index_version``) it came from. A match carries the lists' source, category and
version (``RemoteResult.list_version`` is the service's ``index_version``; ``raw``
holds the matched entries' banks, sources, categories and list versions).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import Algorithm, FileSignals, leaving
from hashguard.httpclient import (
    RetryPolicy,
    ServiceClient,
    ServiceError,
    check_base_url,
    redact,
)
from hashguard.remote.base import RemoteMatcher, RemoteSettings

log = logging.getLogger(__name__)

LOOKUP_PATH = "/v1/lookup"
WHOAMI_PATH = "/v1/whoami"
NO_REFERENCE = (
    "only fast-mode PDQ hashes were computed and they never leave hashguard, and the "
    "exact hashes matched nothing: the file is not fully checked"
)
_SNIPPET = 200

Query = tuple[str, str]


class HashguardSettings(RemoteSettings):
    """``base_url``: the service, https (plain http only on loopback)."""

    #: hashes one call carries at most: the service's lookup_max_batch
    batch_size: int = Field(default=1_000, ge=1, le=100_000)
    #: how long the first of several files asked about at once waits for the others'
    #: hashes to go in the same call
    gather_seconds: float = Field(default=0.005, ge=0, le=1)
    #: calls a second; each carries the hashes of several files
    requests_per_second: float = Field(default=20.0, gt=0)
    #: the service's answers are real matches (no sandbox to label)
    test_mode: bool = False

    _url = field_validator("base_url")(check_base_url)

    @field_validator("allow_media")
    @classmethod
    def _hashes_only(cls, value: bool) -> bool:
        if value:
            raise ValueError("the hashguard service takes hashes only: media never leaves")
        return value


@dataclass(kw_only=True, slots=True, eq=False)
class _Ask:
    """One file's hashes waiting for a call, and then its answer."""

    queries: tuple[Query, ...]
    done: bool = False
    #: (algorithm, hash) -> the service's result for it
    results: dict[Query, dict[str, Any]] = field(default_factory=dict)
    version: int | None = None
    problem: str | None = None


class _Batcher:
    """Gathers the hashes of files asked about at once into shared calls. The caller
    whose file finds nobody gathering gathers (for ``gather`` seconds, or until
    ``limit`` hashes wait), takes the waiting files and makes the call for them all;
    the others wait for their answer (or gather the next call)."""

    def __init__(self, matcher: HashguardMatcher, limit: int, gather: float) -> None:
        self._matcher = matcher
        self._limit = limit
        self._gather = gather
        self._cond = threading.Condition()
        self._pending: list[_Ask] = []
        self._gathering = False

    def ask(self, queries: tuple[Query, ...]) -> _Ask:
        mine = _Ask(queries=queries)
        with self._cond:
            self._pending.append(mine)
            self._cond.notify_all()
            while not mine.done:
                if self._gathering or not self._pending:
                    self._cond.wait()
                    continue
                self._gathering = True
                deadline = time.monotonic() + self._gather
                while self._waiting() < self._limit:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._take()
                self._gathering = False
                self._cond.notify_all()  # someone else may gather the next call now
                self._cond.release()
                try:
                    self._matcher.send(batch)
                finally:
                    self._cond.acquire()
                for ask in batch:
                    ask.done = True
                self._cond.notify_all()
        return mine

    def _waiting(self) -> int:
        return sum(len(ask.queries) for ask in self._pending)

    def _take(self) -> list[_Ask]:
        """The waiting files whose hashes fit in ``limit`` (at least one)."""
        taken: list[_Ask] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0].queries) <= self._limit):
            ask = self._pending.pop(0)
            taken.append(ask)
            size += len(ask.queries)
        return taken


class HashguardMatcher(RemoteMatcher):
    """A hashguard hash check service's ``/v1/lookup``, with a ``lookup``-scoped token."""

    name: ClassVar[str] = "hashguard"
    description: ClassVar[str] = (
        "Another hashguard (a hotline's hash check service): sends MD5, SHA-1, SHA-256 and "
        "reference PDQ hashes only, never content"
    )
    Settings: ClassVar[type[BaseModel]] = HashguardSettings
    sends_pdq: ClassVar[bool] = True
    #: files asked about at once share calls: let many wait together
    concurrency: ClassVar[int] = 16
    secrets: ClassVar[tuple[str, ...]] = ("token",)
    terms: ClassVar[str] = (
        "A token (scope lookup) from the service's operator. Sends hashes only; the "
        "operator sees which hashes were looked up and which matched."
    )

    def __init__(
        self,
        settings: BaseModel,
        secrets: Mapping[str, SecretStr],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(settings, secrets)
        options = self.hashguard
        token = self.credentials["token"].get_secret_value()
        self._secret_values = (token,) if token else ()
        self._client = options.client(
            self.name, transport, headers={"Authorization": f"Bearer {token}"}
        )
        self._batcher = _Batcher(self, options.batch_size, options.gather_seconds)
        self._transport = transport

    @property
    def hashguard(self) -> HashguardSettings:
        assert isinstance(self.settings, HashguardSettings)
        return self.settings

    def match(self, data: bytes, signals: FileSignals) -> RemoteResult:
        """``data`` is never used: only ``signals``' hashes leave."""
        started = time.monotonic()
        try:
            queries = hashes_of(signals)
            ask = self._batcher.ask(queries)
            result = self._result(signals, ask, time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - a remote matcher never raises
            result = self._not_answered(
                f"{self.name}: call failed ({type(exc).__name__})", time.monotonic() - started
            )
        if result.status is RemoteStatus.NOT_ANSWERED:
            log.warning("%s did not answer: %s", self.label, result.reason)
        return result

    def probe(self) -> str:
        """``/v1/whoami`` with the token: ``WhoamiError`` when it is refused."""
        me = whoami(
            self.hashguard.base_url,
            self.credentials["token"].get_secret_value(),
            timeout=self.hashguard.timeout_seconds,
            transport=self._transport,
        )
        return f"token {me.get('name')!r} accepted (scopes: {', '.join(me.get('scopes', []))})"

    def close(self) -> None:
        self._client.close()

    # -- the call (made by the batcher for several files) -------------------------------

    def send(self, batch: Sequence[_Ask]) -> None:
        """Ask about every hash of ``batch`` (each once), ``batch_size`` a call, and hand
        each file its results; a failure is every file's problem. Never raises."""
        wanted = list(dict.fromkeys(q for ask in batch for q in ask.queries))
        limit = self.hashguard.batch_size
        results: dict[Query, dict[str, Any]] = {}
        version: int | None = None
        problem: str | None = None
        try:
            for start in range(0, len(wanted), limit):
                chunk = wanted[start : start + limit]
                found, version = self._lookup(chunk)
                results |= found
        except ServiceError as exc:
            problem = str(exc)
        except _Refused as exc:
            problem = str(exc)
        except Exception as exc:  # noqa: BLE001 - every file in the call is told
            problem = f"{self.name}: call failed ({type(exc).__name__})"
        for ask in batch:
            if problem is not None:
                ask.problem = problem
            else:
                ask.results = {q: results[q] for q in ask.queries}
                ask.version = version

    def _lookup(self, chunk: Sequence[Query]) -> tuple[dict[Query, dict[str, Any]], int | None]:
        body = {"hashes": [{"algorithm": a, "hash": h} for a, h in chunk]}
        response = self._client.request("POST", LOOKUP_PATH, json=body)
        status = response.status_code
        try:
            answer: Any = json.loads(response.content)
        except ValueError:
            answer = None
        if status in (401, 403):
            raise _Refused(f"{self.name}: the token was refused (HTTP {status}){_detail(answer)}")
        if status == 413:
            raise _Refused(
                f"{self.name}: the service takes fewer hashes a call (HTTP 413){_detail(answer)}:"
                " lower batch_size"
            )
        if not 200 <= status < 300:
            raise _Refused(f"{self.name}: HTTP {status}{_detail(answer)}")
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise _Refused(f"{self.name}: the answer has no results")
        results = answer["results"]
        if len(results) != len(chunk):
            raise _Refused(f"{self.name}: the answer has {len(results)} results for {len(chunk)}")
        found: dict[Query, dict[str, Any]] = {}
        for query, result in zip(chunk, results, strict=True):
            if not isinstance(result, dict) or not isinstance(result.get("matches"), list):
                raise _Refused(f"{self.name}: a result is not an object with matches")
            if result.get("algorithm") != query[0] or result.get("hash") != query[1]:
                raise _Refused(f"{self.name}: the results are not in the order asked")
            found[query] = result
        version = answer.get("index_version")
        return found, version if isinstance(version, int) else None

    # -- one file's answer ----------------------------------------------------------------

    def _result(self, signals: FileSignals, ask: _Ask, seconds: float) -> RemoteResult:
        if ask.problem is not None:
            return self._not_answered(ask.problem, seconds)
        invalid = [r for r in ask.results.values() if not r.get("valid", False)]
        matched = [
            (query, m)
            for query, result in ask.results.items()
            for m in result["matches"]
            if isinstance(m, dict) and m.get("bank_kind") == "known" and not m.get("suppressed_by")
        ]
        version = None if ask.version is None else str(ask.version)
        if matched:
            return self._matched(matched, version, seconds)
        if invalid:
            reason = str(invalid[0].get("reason") or "invalid")[:_SNIPPET]
            return self._not_answered(f"{self.name}: the service refused a hash: {reason}", seconds)
        if signals.needs_reference:
            return self._not_answered(NO_REFERENCE, seconds)
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.NO_MATCH,
            method="hash",
            list_version=version,
            seconds=seconds,
        )

    def _matched(
        self, matched: Sequence[tuple[Query, dict[str, Any]]], version: str | None, seconds: float
    ) -> RemoteResult:
        categories = _each(str(m.get("category") or "unspecified") for _, m in matched)
        sources = _each(str(m.get("source") or m.get("bank") or "") for _, m in matched)
        exact = any(Algorithm(q[0]).is_exact for q, _ in matched)
        distances = [
            m["distance"]
            for _, m in matched
            if isinstance(m.get("distance"), int) and not isinstance(m["distance"], bool)
        ]
        entries = [
            {
                "algorithm": query[0],
                **{
                    key: m.get(key)
                    for key in ("bank", "category", "source", "list_version", "distance")
                },
            }
            for query, m in matched
        ]
        classification = "test" if self.hashguard.test_mode else ",".join(categories)
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.MATCHED,
            method="hash",
            classification=classification,
            match_type="exact" if exact else "near",
            distance=min(distances) if distances else None,
            source=",".join(s for s in sources if s) or None,
            list_version=version,
            raw=self._redact(json.dumps({"index_version": version, "matches": entries})),
            seconds=seconds,
        )

    def _redact(self, text: str) -> str:
        return redact(text, self._secret_values)

    def _not_answered(self, reason: str, seconds: float = 0.0) -> RemoteResult:
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.NOT_ANSWERED,
            method="hash",
            reason=self._redact(reason),
            seconds=seconds,
        )


class _Refused(Exception):
    """The service answered, but not with results."""


def hashes_of(signals: FileSignals) -> tuple[Query, ...]:
    """What leaves for one file: its exact hashes and its reference-mode PDQ hashes of
    good quality, each once (``leaving`` refuses a fast-mode hash outright)."""
    queries: list[Query] = [
        (str(Algorithm.MD5), signals.md5),
        (str(Algorithm.SHA1), signals.sha1),
        (str(Algorithm.SHA256), signals.sha256),
    ]
    queries += [
        (str(Algorithm.PDQ), pdq.value.lower())
        for pdq in leaving(signals.reference_pdq)
        if not pdq.low_quality
    ]
    return tuple(dict.fromkeys((a, h.lower()) for a, h in queries))


def _each(values: Any) -> list[str]:
    return list(dict.fromkeys(values))


def _detail(body: Any) -> str:
    """The problem's ``detail``, short."""
    detail = body.get("detail") if isinstance(body, dict) else None
    return ": " + detail[:_SNIPPET] if isinstance(detail, str) else ""


class WhoamiError(Exception):
    """The service did not confirm the token (the message never holds it)."""


def whoami(
    base_url: str,
    token: str,
    *,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """What the service at ``base_url`` says the token is (``GET /v1/whoami``): its name,
    scopes, person and lookup limits. ``WhoamiError`` when the URL is not one a token may
    go to, the service does not answer, refuses the token, or the token may not look
    hashes up."""
    try:
        base = check_base_url(base_url)
    except ValueError as exc:
        raise WhoamiError(f"{base_url}: {exc}") from None
    client = ServiceClient(
        base,
        service="hashguard",
        timeout=timeout,
        retry=RetryPolicy(attempts=2, base_seconds=0.5),
        per_second=10.0,
        headers={"Authorization": f"Bearer {token}"},
        transport=transport,
    )
    try:
        response = client.request("GET", WHOAMI_PATH)
    except ServiceError as exc:
        raise WhoamiError(redact(str(exc), [token])) from None
    finally:
        client.close()
    try:
        body: Any = json.loads(response.content)
    except ValueError:
        body = None
    if response.status_code in (401, 403):
        raise WhoamiError(
            f"the service refused the token (HTTP {response.status_code})"
            + redact(_detail(body), [token])
        )
    if response.status_code != 200 or not isinstance(body, dict):
        raise WhoamiError(
            f"{base}{WHOAMI_PATH} answered HTTP {response.status_code}: is it a hashguard service?"
        )
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not {"lookup", "admin"} & set(scopes):
        raise WhoamiError(
            f"token {body.get('name')!r} may not look hashes up (its scopes: {scopes}): "
            "ask the service for a token with the lookup scope"
        )
    return body
