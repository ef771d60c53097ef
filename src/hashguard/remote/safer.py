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
``not_answered``.

With ``callback_base_url`` set (bulk scans), each file goes to Hive's asynchronous
endpoint (``POST /api/v2/task/async``) with a signed callback URL (``safer_callback``)
instead: the file's answer is ``not_answered`` ("awaiting Safer's callback", with Hive's
task id as ``tracking_id``) until the callback arrives on the server, which joins the
answer to the scan items of that content (``hashguard.remote.callbacks``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import httpx
from pydantic import BaseModel, Field, SecretStr, model_validator

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals
from hashguard.httpclient import ServiceError, redact
from hashguard.plugins import PluginError
from hashguard.remote.base import RemoteMatcher, RemoteSettings
from hashguard.remote.safer_callback import PENDING, CallbackRefused, callback_url, check

log = logging.getLogger(__name__)

SYNC_PATH = "/api/v2/task/sync"
ASYNC_PATH = "/api/v2/task/async"
#: the multipart field of the asynchronous endpoint that names the callback URL
CALLBACK_FIELD = "callback_url"
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
    #: our server's base URL as Hive reaches it: when set, files go to the asynchronous
    #: endpoint with a signed callback (bulk scans); needs the ``callback_secret``
    callback_base_url: str | None = None
    #: how long after submission a callback is accepted
    callback_seconds: float = Field(default=6 * 3600, gt=0, le=7 * 24 * 3600)

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
    optional_secrets: ClassVar[tuple[str, ...]] = ("video_api_key", "callback_secret")
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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(settings, secrets)
        options = self.safer
        self._key = self.credentials["api_key"].get_secret_value()
        video = self.credentials.get("video_api_key")
        self._video_key = video.get_secret_value() if video is not None else None
        callback = self.credentials.get("callback_secret")
        self._callback_secret = callback.get_secret_value() if callback is not None else None
        if options.callback_base_url is not None and not self._callback_secret:
            raise PluginError("safer: callback_base_url needs the callback_secret credential")
        self._clock = clock
        self._secret_values = tuple(
            v for v in (self._key, self._video_key, self._callback_secret) if v
        )
        self._client = options.client(self.label, transport)

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

    def check_callback(self, sha256: str, expires: int, sig: str, body: bytes) -> RemoteResult:
        """The answer a callback carries for the file ``sha256``, once its signed URL
        checks out (``safer_callback.check``: ``CallbackRefused`` otherwise, and for a
        body that is not Hive's answer). Its ``tracking_id`` is Hive's task id."""
        if self._callback_secret is None:
            raise CallbackRefused(404, f"{self.label} takes no callbacks")
        check(self._callback_secret, self.label, sha256, expires, sig, now=self._clock())
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            raise CallbackRefused(400, "the callback's body is not JSON") from None
        task = parsed.get("id") if isinstance(parsed, dict) else None
        result = self._interpret(parsed, body.decode("utf-8", "replace"), 0.0)
        if not isinstance(task, str) or result.status is RemoteStatus.NOT_ANSWERED:
            raise CallbackRefused(400, "the callback's body is not Hive's answer")
        return replace(result, tracking_id=task)

    def close(self) -> None:
        self._client.close()

    def _call(self, data: bytes, key: str, filename: str) -> RemoteResult:
        started = time.monotonic()
        base = self.safer.callback_base_url
        try:
            if base is not None:
                return self._submit(data, key, filename, base, started)
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

    def _submit(
        self, data: bytes, key: str, filename: str, base: str, started: float
    ) -> RemoteResult:
        """Hand the file to the asynchronous endpoint: ``not_answered`` (pending, with
        Hive's task id) when Hive took it, else why not."""
        sha256 = hashlib.sha256(data).hexdigest()
        expires = int(self._clock().timestamp() + self.safer.callback_seconds)
        assert self._callback_secret is not None
        url = callback_url(base, self._callback_secret, self.label, sha256, expires)
        response = self._client.request(
            "POST",
            ASYNC_PATH,
            files={"media": (filename, data, "application/octet-stream")},
            data={CALLBACK_FIELD: url},
            headers={"Authorization": f"Token {key}"},
        )
        seconds = time.monotonic() - started
        status = response.status_code
        if status in (401, 403):
            return self._not_answered(f"safer: the API key was refused (HTTP {status})", seconds)
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        task = body.get("id") if isinstance(body, dict) else None
        if not 200 <= status < 300 or not isinstance(task, str):
            return self._not_answered(f"safer: the submission was not taken (HTTP {status})")
        return replace(
            self._not_answered(f"{PENDING} (task {task[:_SNIPPET]})", seconds),
            tracking_id=task[:_SNIPPET],
        )

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
        return self._interpret(body, response.text, seconds)

    def _interpret(self, body: Any, text: str, seconds: float) -> RemoteResult:
        """Hive's task answer (the synchronous reply, or a callback's body)."""
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
            raw=redact(text, self._secret_values),
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
