"""Google's Content Safety API: a classifier whose review priority orders the queue.

One ``POST /v1beta1/images:classify`` per image (the API key in the
``x-goog-api-key`` header, which Google APIs take as they take ``?key=``: a key in the
URL would land in HTTP logs and proxies' access logs), body
``{"images": [<base64 of the image>]}``; the answer is ``{"reviewPriorities":
[<level>], "modelVersion": ...}`` with one level per image, ``VERY_LOW`` to
``VERY_HIGH`` (services.md §1, from roostorg/coop's client). Google's terms allow the
priority only for ordering human review, never for automated action: the adapter is of
kind ``classifier`` (``classify.base``), its answers are never matches.

Each level is ranked as a score (``LEVELS``) so that it sorts beside other classifiers'
scores in the queue and can meet a threshold; the level itself is kept and shown. The
image itself is sent (base64), so ``allow_media = true`` is required. Anything but an
image, a refused key (400/401/403), a rate limit (429, after the Retry-After retries),
a 5xx, a timeout or an answer that is not the documented one is ``not_answered``.

The service has no sandbox: ``test_mode`` (on by default) changes nothing in the call
and only says, in ``hashguard doctor`` and ``plugins list``, that the host has not yet
declared the classifier live.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import httpx
from pydantic import BaseModel, SecretStr, model_validator

from hashguard.classify.base import Classifier, ClassifierSettings
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals
from hashguard.httpclient import ServiceError, redact

log = logging.getLogger(__name__)

CLASSIFY_PATH = "/v1beta1/images:classify"
#: each review priority ranked as a score in [0, 1] (hashguard's ranking of the levels,
#: not a probability): the level is what the service said
LEVELS: Mapping[str, float] = {
    "VERY_LOW": 0.1,
    "LOW": 0.3,
    "MEDIUM": 0.5,
    "HIGH": 0.7,
    "VERY_HIGH": 0.9,
}
NO_MEDIA = "the Content Safety API classifies the image itself: set allow_media = true"
_SNIPPET = 200

Level = Literal["VERY_LOW", "LOW", "MEDIUM", "HIGH", "VERY_HIGH"]


class ContentSafetySettings(ClassifierSettings):
    base_url: str = "https://contentsafety.googleapis.com"
    #: required and must be true: the API takes the image, not a hash
    allow_media: bool
    #: the review priority at or above which an image no list matched opens a review
    #: case ("classifier, no list match"); None (the default): priorities only order
    #: the queue. ``classifier_review_threshold`` (a score) is the other way to say it.
    review_priority: Level | None = None

    @model_validator(mode="after")
    def _media_allowed(self) -> Self:
        if not self.allow_media:
            raise ValueError(NO_MEDIA)
        if self.review_priority is not None and self.classifier_review_threshold is not None:
            raise ValueError("give review_priority or classifier_review_threshold, not both")
        return self


class ContentSafetyClassifier(Classifier):
    """Google's Content Safety API: a review priority for an image, a signal only."""

    name: ClassVar[str] = "content_safety"
    description: ClassVar[str] = (
        "Google Content Safety API: a review priority (VERY_LOW..VERY_HIGH) for an image "
        "(allow_media); orders the review queue, never a match, never acts"
    )
    Settings: ClassVar[type[BaseModel]] = ContentSafetySettings
    secrets: ClassVar[tuple[str, ...]] = ("api_key",)
    terms: ClassVar[str] = (
        "Needs Google's approval and terms; the priority may only order human review, "
        "never drive automated action. Sends the image itself."
    )

    def __init__(
        self,
        settings: BaseModel,
        secrets: Mapping[str, SecretStr],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(settings, secrets)
        options = self.content_safety
        self._key = self.credentials["api_key"].get_secret_value()
        self._client = options.client(self.label, transport)

    @property
    def content_safety(self) -> ContentSafetySettings:
        assert isinstance(self.settings, ContentSafetySettings)
        return self.settings

    def review_threshold(self) -> float | None:
        level = self.content_safety.review_priority
        return LEVELS[level] if level is not None else super().review_threshold()

    def classify(self, data: bytes, signals: FileSignals) -> RemoteResult:
        if signals.image_format is None:
            return self._not_answered("the Content Safety API classifies images only")
        started = time.monotonic()
        try:
            response = self._client.request(
                "POST",
                CLASSIFY_PATH,
                headers={"x-goog-api-key": self._key},
                json={"images": [base64.b64encode(data).decode("ascii")]},
            )
            result = self._read(response, time.monotonic() - started)
        except ServiceError as exc:
            result = self._not_answered(str(exc), time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - a classifier never raises
            result = self._not_answered(
                f"content_safety: call failed ({type(exc).__name__})", time.monotonic() - started
            )
        if result.status is RemoteStatus.NOT_ANSWERED:
            log.warning("content_safety did not answer: %s", result.reason)
        return result

    def close(self) -> None:
        self._client.close()

    def _read(self, response: httpx.Response, seconds: float) -> RemoteResult:
        status = response.status_code
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        if status in (400, 401, 403):
            said = _google_status(body)
            return self._not_answered(
                f"content_safety: the request or the API key was refused (HTTP {status}{said})",
                seconds,
            )
        if not 200 <= status < 300:
            return self._not_answered(f"content_safety: HTTP {status}", seconds)
        levels = body.get("reviewPriorities") if isinstance(body, dict) else None
        if not isinstance(levels, list) or len(levels) != 1 or levels[0] not in LEVELS:
            return self._not_answered(
                "content_safety: the answer has no review priority for the image", seconds
            )
        level = str(levels[0])
        version = body.get("modelVersion")
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.NO_MATCH,
            method="media",
            classifier_score=LEVELS[level],
            classifier_level=level,
            list_version=str(version)[:_SNIPPET] if version is not None else None,
            seconds=seconds,
        )

    def _not_answered(self, reason: str, seconds: float = 0.0) -> RemoteResult:
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.NOT_ANSWERED,
            method="media",
            reason=redact(reason, (self._key,))[:_SNIPPET],
            seconds=seconds,
        )


def _google_status(body: Any) -> str:
    """Google's error status (``PERMISSION_DENIED``), when the body names one."""
    try:
        said = body["error"]["status"]
    except (KeyError, TypeError):
        return ""
    return f", {str(said)[:40]}" if isinstance(said, str) else ""
