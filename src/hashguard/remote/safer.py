"""The Thorn Safer adapter, through Hive's Combined CSAM Detection API (synchronous).

Safer hashes the media itself (SaferHash, MD5, scene-level video hashes): there is no
hash-only lookup, so the adapter refuses settings without ``allow_media = true``. One
``POST /api/v2/task/sync`` (multipart ``media``, header ``Authorization: Token <key>``)
per file. Hash matching runs first; when nothing matched, Thorn's classifier answers
with a prediction. A classifier prediction is **never** a match: it is carried on the
``no_match`` result as ``classifier_score`` (``hashguard.classify`` turns it into a
signal that can only order or open review).

The combined endpoint takes images only. Videos (mp4/mov) go to the older matching
endpoint, which lives in another Hive project with its own key: they are sent only when
the optional ``video_api_key`` credential is given, else they are ``not_answered``.

A ``hashSet`` of ``test`` marks Hive's test content: such a match is classified
``test``; in ``test_mode`` (on by default) every match is labelled ``test``. Timeouts,
refusals (401/403), rate limits (429, after the Retry-After retries) and 5xx are
``not_answered``. Asynchronous submission with a signed callback (for bulk scans) is
not built yet.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import httpx
from pydantic import BaseModel, Field, SecretStr, model_validator

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals
from hashguard.httpclient import RetryPolicy, ServiceClient, ServiceError, redact
from hashguard.remote.base import RemoteMatcher, RemoteSettings

log = logging.getLogger(__name__)

SYNC_PATH = "/api/v2/task/sync"
TEST = "test"
#: Safer's match types, most severe first, and the classification each gives
MATCH_TYPES: Mapping[str, str] = {"CSAM": "csam", "SE": "sexual_exploitation"}
NO_MEDIA = "Safer hashes the media itself: set allow_media = true to use it"
NO_VIDEO_KEY = (
    "videos go to Safer's matching endpoint, which needs the video_api_key credential "
    "(the combined endpoint takes images only)"
)
_SNIPPET = 200


class SaferSettings(RemoteSettings):
    base_url: str = "https://api.thehive.ai"
    #: required and must be true: Safer has no hash-only lookup
    allow_media: bool
    #: a classifier prediction at or above this opens a review case ("classifier, no
    #: list match"); None (the default): classifier signals only order the queue
    classifier_review_threshold: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _media_allowed(self) -> Self:
        if not self.allow_media:
            raise ValueError(NO_MEDIA)
        return self


@dataclass(frozen=True, kw_only=True, slots=True)
class _Match:
    classification: str
    match_type: str
    distance: int | None
    source: str | None
    severity: int


class SaferMatcher(RemoteMatcher):
    """Thorn Safer hash matching (and its classifier's prediction) through Hive."""

    name: ClassVar[str] = "safer"
    description: ClassVar[str] = (
        "Thorn Safer through Hive's combined CSAM endpoint: the media (allow_media) "
        "matched by SaferHash and MD5; the classifier's prediction as a signal only"
    )
    Settings: ClassVar[type[BaseModel]] = SaferSettings
    secrets: ClassVar[tuple[str, ...]] = ("api_key",)
    optional_secrets: ClassVar[tuple[str, ...]] = ("video_api_key",)
    terms: ClassVar[str] = (
        "Needs a contract with Hive and Thorn; each Hive project has its own API key. "
        "Sends the media itself; Hive bills videos per second."
    )

    def __init__(
        self,
        settings: BaseModel,
        secrets: Mapping[str, SecretStr],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(settings, secrets)
        options = self.safer
        self._key = self.credentials["api_key"].get_secret_value()
        video = self.credentials.get("video_api_key")
        self._video_key = video.get_secret_value() if video is not None else None
        self._secret_values = tuple(v for v in (self._key, self._video_key) if v)
        self._client = ServiceClient(
            options.base_url,
            service=self.label,
            timeout=options.timeout_seconds,
            retry=RetryPolicy(attempts=options.retries + 1, base_seconds=options.backoff_seconds),
            per_second=options.requests_per_second,
            transport=transport,
        )

    @property
    def safer(self) -> SaferSettings:
        assert isinstance(self.settings, SaferSettings)
        return self.settings

    def match(self, data: bytes, signals: FileSignals) -> RemoteResult:
        if signals.image_format is not None:
            result = self._call(data, self._key, f"image.{signals.image_format}")
        elif is_video(data):
            if self._video_key is None:
                result = self._not_answered(NO_VIDEO_KEY)
            else:
                result = self._call(data, self._video_key, "video.mp4")
        else:
            result = self._not_answered("Safer takes images and mp4/mov videos only")
        if result.status is RemoteStatus.NOT_ANSWERED:
            log.warning("safer did not answer: %s", result.reason)
        return result

    def review_threshold(self) -> float | None:
        return self.safer.classifier_review_threshold

    def close(self) -> None:
        self._client.close()

    def _call(self, data: bytes, key: str, filename: str) -> RemoteResult:
        started = time.monotonic()
        try:
            response = self._client.request(
                "POST",
                SYNC_PATH,
                files={"media": (filename, data, "application/octet-stream")},
                headers={"Authorization": f"Token {key}"},
            )
            result = self._read(response, time.monotonic() - started)
        except ServiceError as exc:
            result = self._not_answered(str(exc), time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - a remote matcher never raises
            result = self._not_answered(
                f"safer: call failed ({type(exc).__name__})", time.monotonic() - started
            )
        return result

    def _read(self, response: httpx.Response, seconds: float) -> RemoteResult:
        status = response.status_code
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        if status in (401, 403):
            return self._not_answered(f"safer: the API key was refused (HTTP {status})", seconds)
        if not 200 <= status < 300:
            return self._not_answered(f"safer: HTTP {status}", seconds)
        output = _output(body)
        if isinstance(output, str):
            return self._not_answered(output, seconds)
        hashes = output.get("hashes")
        file = output.get("file")
        if not isinstance(hashes, list) or not isinstance(file, dict):
            return self._not_answered("safer: the answer has no file or hashes", seconds)
        matches = [m for entry in hashes for m in _matches(entry)]
        if not matches:
            return RemoteResult(
                service=self.label,
                status=RemoteStatus.NO_MATCH,
                method="media",
                classifier_score=_score(file.get("classifierPrediction")),
                seconds=seconds,
            )
        best = min(matches, key=lambda m: (m.severity, m.distance or 0))
        classification = best.classification
        if self.safer.test_mode and classification != TEST:
            log.warning("safer: test mode is on but a match said %s", classification)
            classification = TEST
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.MATCHED,
            method="media",
            classification=classification,
            match_type=best.match_type,
            distance=best.distance,
            source=best.source,
            raw=redact(response.text, self._secret_values),
            seconds=seconds,
        )

    def _not_answered(self, reason: str, seconds: float = 0.0) -> RemoteResult:
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.NOT_ANSWERED,
            method="media",
            reason=redact(reason, self._secret_values)[:_SNIPPET],
            seconds=seconds,
        )


def is_video(data: bytes) -> bool:
    """An ISO base media file (mp4, mov): the ``ftyp`` box first."""
    return data[4:8] == b"ftyp"


def _output(body: Any) -> dict[str, Any] | str:
    """``status[0].response.output`` (an object, or a list holding one), or a problem."""
    try:
        first = body["status"][0]
        code = first["status"]["code"]
        output = first["response"]["output"]
    except (KeyError, IndexError, TypeError):
        return "safer: the answer is not Hive's task format"
    if code != 200:
        return f"safer: the task failed (code {str(code)[:_SNIPPET]})"
    if isinstance(output, list) and len(output) == 1:
        output = output[0]
    if not isinstance(output, dict):
        return "safer: the answer's output is not an object"
    return output


def _matches(entry: Any) -> list[_Match]:
    """The matches of one hash (an image's, or one video scene's)."""
    if not isinstance(entry, dict):
        return []
    types = [t for t in entry.get("matchTypes") or [] if t in MATCH_TYPES]
    hash_type = entry.get("hashType")
    scene = _scene(entry)
    found = []
    for source in entry.get("sources") or []:
        if not isinstance(source, dict):
            continue
        hash_set = str(source.get("hashSet") or "")
        for match in source.get("matches") or []:
            if not isinstance(match, dict):
                continue
            distance = match.get("matchDistance")
            distance = (
                distance if isinstance(distance, int) and not isinstance(distance, bool) else None
            )
            if hash_set == TEST:
                classification, severity = TEST, len(MATCH_TYPES)
            elif types:
                severity = min(list(MATCH_TYPES).index(t) for t in types)
                classification = list(MATCH_TYPES.values())[severity]
            else:
                continue  # a match of no known type is not taken for one
            exact = hash_type == "md5" or distance == 0
            found.append(
                _Match(
                    classification=classification,
                    match_type="exact" if exact else "near",
                    distance=distance,
                    source=f"{hash_set}:{match.get('sourceId')}{scene}",
                    severity=severity,
                )
            )
    return found


def _scene(entry: dict[str, Any]) -> str:
    start, end = entry.get("startTimestamp"), entry.get("endTimestamp")
    if isinstance(start, int | float) and isinstance(end, int | float):
        return f"@{start:g}-{end:g}s"
    return ""


def _score(prediction: Any) -> float | None:
    """The classifier's CSAM score: a number, or ``{"csam": score, ...}``."""
    if isinstance(prediction, dict):
        prediction = prediction.get("csam")
    if isinstance(prediction, int | float) and not isinstance(prediction, bool):
        return float(prediction)
    return None
