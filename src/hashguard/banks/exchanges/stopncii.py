"""The StopNCII.org exchange: adult non-consensual intimate imagery (NCII) hashes.

StopNCII's hashes are submitted by adults about their own intimate images. They are
**not CSAM** (minors' images go through NCMEC's Take It Down, via the NPO list), so
the adapter's audience is ``adult_ncii`` and its bank is kept apart from CSAM banks.

API (public contract, see ``reference/services.md`` and python-threatexchange's
``exchanges/clients/stopncii/api.py``): ``GET /v1/FetchHashes?startTimestamp&pageSize
&nextPageToken`` with the headers ``Ocp-Apim-Subscription-Key`` (every call) and
``x-functions-key`` (one key per endpoint). Each record is the current snapshot of one
hash: ``ImagePDQ`` becomes a ``pdq`` entry, ``VideoMD5`` an ``md5`` entry with
``media=video``; other signal types (``VideoTMK``, ``Text``, ``URL``) are skipped and
counted. A ``Withdrawn`` or ``Deleted`` status is a tombstone.

We call the API through our own ``ServiceClient`` rather than python-threatexchange's
``StopNCIIAPI``: that client logs every response (hash values included) at DEBUG on the
root logger, uses ``requests`` (no ``httpx`` transport seam, no client-side rate limit)
and never applies Withdrawn/Deleted (its fetch compares ``hashValue``, not
``hashStatus``, with the status names).

Checkpoint: JSON ``{"startTimestamp": int, "nextPageToken": str | null}``. Mid-listing
it keeps the listing's start and the token of the next page; once ``hasMoreRecords``
is false it moves to ``nextSetTimestamp`` with no token. A page token is a cursor that
does not live long: if the service refuses a stored token (HTTP 400), the listing is
read again from its start time, which applies the same snapshots again (harmless).

Credentials: ``subscription_key`` and ``fetch_function_key`` are required;
``feedback_function_key`` (``optional_secrets``) is needed only for feedback, which is
refused with ``FeedbackUnsupported`` without it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hashguard.banks.exchanges.base import ExchangeError, FeedbackUnsupported, ListSource
from hashguard.banks.formats import (
    InvalidRow,
    check_depth,
    check_storable,
    normalise_hash,
    parse_json,
)
from hashguard.domain.banks import BankEntry
from hashguard.domain.exchanges import Feedback, FeedbackVerdict, SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.httpclient import RetryPolicy, ServiceClient, ServiceError, check_base_url

log = logging.getLogger("hashguard.exchanges.stopncii")

DEFAULT_BASE_URL = "https://api.stopncii.org"
FETCH_PATH = "/v1/FetchHashes"
FEEDBACK_PATH = "/v1/SubmitFeedback"

#: StopNCII signal type -> (algorithm, media)
_SIGNAL_TYPES = {
    "ImagePDQ": (Algorithm.PDQ, "image"),
    "VideoMD5": (Algorithm.MD5, "video"),
}
#: statuses after which the hash must no longer be used
_REMOVED = frozenset({"Withdrawn", "Deleted"})
_FEEDBACK_VALUES = {
    FeedbackVerdict.CONFIRMED: "Blocked",
    FeedbackVerdict.FALSE_POSITIVE: "NotBlocked",
}


class StopNciiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = DEFAULT_BASE_URL
    #: where a first sync starts (epoch seconds); python-threatexchange also uses 10
    start_timestamp: int = Field(default=10, ge=0)
    page_size: int = Field(default=800, ge=1, le=10_000)
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    #: retries after a timeout, a 429 or a 5xx (Retry-After honoured)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0, le=30)
    requests_per_second: float = Field(default=5.0, gt=0)

    _url = field_validator("base_url")(check_base_url)


class StopNciiExchange(ListSource):
    name = "stopncii"
    description = "StopNCII.org hashes of adult non-consensual intimate imagery (not CSAM)"
    terms = (
        "StopNCII.org partnership; adult NCII only, kept in its own bank; "
        "hashes are confidential under the partnership terms"
    )
    Settings: ClassVar[type[BaseModel]] = StopNciiSettings
    secrets = ("subscription_key", "fetch_function_key")
    #: credentials used when given: feedback needs the SubmitFeedback function key
    optional_secrets: ClassVar[tuple[str, ...]] = ("feedback_function_key",)
    algorithms = frozenset({Algorithm.PDQ, Algorithm.MD5})
    audience = "adult_ncii"

    _http: ServiceClient | None = None

    @property
    def options(self) -> StopNciiSettings:
        assert isinstance(self.settings, StopNciiSettings)
        return self.settings

    def _client(self) -> ServiceClient:
        if self._http is None:
            options = self.options
            self._http = ServiceClient(
                options.base_url,
                service=self.name,
                timeout=options.timeout_seconds,
                retry=RetryPolicy(
                    attempts=options.retries + 1, base_seconds=options.backoff_seconds
                ),
                per_second=options.requests_per_second,
                headers={"Ocp-Apim-Subscription-Key": self._secret("subscription_key")},
            )
        return self._http

    def _secret(self, name: str) -> str:
        return self.credentials[name].get_secret_value()

    def fetch(self, checkpoint: str | None) -> Iterator[SyncBatch]:
        start, token = _resume(checkpoint, self.options.start_timestamp)
        from_checkpoint = token is not None
        counter = 0
        while True:
            params: dict[str, str | int] = {
                "startTimestamp": start,
                "pageSize": self.options.page_size,
            }
            if token:
                params["nextPageToken"] = token
            try:
                page = self._call("GET", FETCH_PATH, "fetch_function_key", params=params)
            except _StaleCursor:
                if not from_checkpoint:
                    raise ExchangeError(
                        f"{self.name}: FetchHashes refused its own page token (400)"
                    ) from None
                log.info("%s: stored page token refused; reading again from its start", self.name)
                from_checkpoint, token = False, None
                continue
            from_checkpoint = False
            records, more, next_token, next_start = _page(page, self.name)
            upserts, removals, skipped = _records(records, counter)
            counter += len(records)
            if more:
                if not next_token:
                    raise ExchangeError(f"{self.name}: hasMoreRecords without a nextPageToken")
                if next_token == token:
                    raise ExchangeError(f"{self.name}: FetchHashes repeated its page token")
                token = next_token
                saved = _checkpoint(start, token)
            else:
                saved = _checkpoint(start if next_start is None else next_start, None)
            log.debug(
                "%s: page of %d records (%d upserts, %d removals, %d skipped)",
                self.name,
                len(records),
                len(upserts),
                len(removals),
                len(skipped),
            )
            if records or saved != checkpoint:
                yield SyncBatch(
                    upserts=tuple(upserts),
                    removals=tuple(removals),
                    skipped=tuple(skipped),
                    checkpoint=saved,
                )
            if not more:
                return

    def send_feedback(self, feedback: Feedback) -> None:
        """``Blocked`` for a confirmed match, ``NotBlocked`` for a false positive, sent
        with ``SubmitFeedback``. Tags come from ``feedback.metadata["tags"]`` (a list of
        strings) only: a reviewer's free-text ``reason`` stays with us."""
        if "feedback_function_key" not in self.credentials:
            raise FeedbackUnsupported(
                f"{self.name}: no feedback_function_key credential, so no feedback is sent"
            )
        if feedback.algorithm not in self.algorithms:
            raise FeedbackUnsupported(f"{self.name} holds no {feedback.algorithm} hashes")
        body = {
            "count": 1,
            "hashFeedbacks": [
                {
                    "hashValue": feedback.value,
                    "feedbackValue": _FEEDBACK_VALUES[feedback.verdict],
                    "tags": _tags(feedback.metadata.get("tags")),
                }
            ],
        }
        self._call("POST", FEEDBACK_PATH, "feedback_function_key", json=body, expect_json=False)

    def _call(
        self, method: str, path: str, key: str, *, expect_json: bool = True, **kwargs: Any
    ) -> Any:
        headers = {"x-functions-key": self._secret(key)}
        try:
            response = self._client().request(method, path, headers=headers, **kwargs)
        except ServiceError as exc:
            raise ExchangeError(str(exc)) from None
        return _answer(self.name, method, path, response, expect_json=expect_json, key=key)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class _StaleCursor(ExchangeError):
    """The service refused a page token (it expired, or the listing changed)."""


def _answer(
    service: str,
    method: str,
    path: str,
    response: httpx.Response,
    *,
    expect_json: bool,
    key: str,
) -> Any:
    status = response.status_code
    if status in (401, 403):
        raise ExchangeError(
            f"{service}: {method} {path} refused the credentials ({status}); "
            f"check subscription_key and {key}"
        )
    if status == 400 and "nextPageToken" in response.request.url.params:
        raise _StaleCursor(f"{service}: {method} {path} answered 400")
    if not 200 <= status < 300:
        raise ExchangeError(f"{service}: {method} {path} answered {status}")
    if not expect_json:
        return None
    try:
        return parse_json(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ExchangeError(f"{service}: {method} {path} answered malformed JSON") from None


def _resume(checkpoint: str | None, default_start: int) -> tuple[int, str | None]:
    if checkpoint is None:
        return default_start, None
    try:
        saved = json.loads(checkpoint)
        start = saved["startTimestamp"]
        token = saved.get("nextPageToken")
    except (json.JSONDecodeError, TypeError, KeyError):
        raise ExchangeError("stopncii: the stored checkpoint is not this adapter's") from None
    if not isinstance(start, int) or not (token is None or isinstance(token, str)):
        raise ExchangeError("stopncii: the stored checkpoint is not this adapter's")
    return start, token


def _checkpoint(start: int, token: str | None) -> str:
    return json.dumps({"startTimestamp": start, "nextPageToken": token})


def _page(body: Any, service: str) -> tuple[list[Any], bool, str | None, int | None]:
    """A page's records, whether more follow, the next token, and the next start."""
    if not isinstance(body, dict):
        raise ExchangeError(f"{service}: FetchHashes answered something other than an object")
    records = body.get("hashRecords")
    more = body.get("hasMoreRecords")
    token = body.get("nextPageToken")
    next_start = body.get("nextSetTimestamp")
    if not isinstance(records, list) or not isinstance(more, bool):
        raise ExchangeError(f"{service}: FetchHashes answered without hashRecords/hasMoreRecords")
    if token is not None and not isinstance(token, str):
        raise ExchangeError(f"{service}: FetchHashes answered a nextPageToken that is not text")
    if next_start is not None and (
        not isinstance(next_start, int) or isinstance(next_start, bool) or next_start < 0
    ):
        raise ExchangeError(f"{service}: FetchHashes answered a malformed nextSetTimestamp")
    return records, more, token, next_start


def _records(
    records: list[Any], counter: int
) -> tuple[list[BankEntry], list[tuple[Algorithm, str]], list[str]]:
    upserts: list[BankEntry] = []
    removals: list[tuple[Algorithm, str]] = []
    skipped: list[str] = []
    for number, record in enumerate(records, start=counter + 1):
        try:
            removed, entry = _record(record)
        except InvalidRow as exc:
            # a reason names the record's position, never its hash (lists are confidential)
            skipped.append(f"record {number}: {exc}")
            continue
        if removed:
            removals.append((entry.algorithm, entry.value))
        else:
            upserts.append(entry)
    return upserts, removals, skipped


def _record(record: Any) -> tuple[bool, BankEntry]:
    if not isinstance(record, dict):
        raise InvalidRow("not a JSON object")
    check_depth(record)  # a value nested too deeply to parse is cut there: skipped
    signal, value, status = (record.get(k) for k in ("signalType", "hashValue", "hashStatus"))
    if not isinstance(signal, str) or not isinstance(value, str) or not isinstance(status, str):
        raise InvalidRow("signalType, hashValue and hashStatus must be strings")
    if signal not in _SIGNAL_TYPES:
        raise InvalidRow(f"unsupported signal type {signal[:40]!r}")
    algorithm, media = _SIGNAL_TYPES[signal]
    metadata: dict[str, Any] = {"signal_type": signal, "media": media, "status": status[:40]}
    modified = record.get("lastModtimestamp")
    if isinstance(modified, int) and not isinstance(modified, bool):
        metadata["last_modified"] = modified
    cases = record.get("caseNumbers")
    if isinstance(cases, Mapping | list):
        metadata["cases"] = len(cases)
    opinions = _feedback_counts(record.get("CSPFeedbacks"))
    if opinions:
        metadata["csp_feedback"] = opinions
    entry = BankEntry(
        algorithm=algorithm, value=normalise_hash(algorithm, value), metadata=metadata
    )
    check_storable(entry.metadata)
    return status in _REMOVED, entry


def _feedback_counts(feedbacks: Any) -> dict[str, int]:
    """How many platforms said what about the hash (their names are not kept)."""
    counts: dict[str, int] = {}
    if isinstance(feedbacks, list):
        for item in feedbacks:
            value = item.get("feedbackValue") if isinstance(item, dict) else None
            if isinstance(value, str):
                counts[value[:40]] = counts.get(value[:40], 0) + 1
    return counts


def _tags(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [tag for tag in value if isinstance(tag, str)]
    return []
