"""The Microsoft PhotoDNA Cloud adapter: one image sent to ``/photodna/v1.0/Match``.

PhotoDNA is computed server-side, so this adapter always sends the media: it refuses
(``not_answered``, no network call) unless the operator set ``allow_media``, and it
refuses images outside PhotoDNA's documented limits before they leave the platform.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, Field, SecretStr

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals
from hashguard.httpclient import ServiceError, redact
from hashguard.remote.base import RemoteMatcher, RemoteSettings

log = logging.getLogger(__name__)

MATCH_PATH = "/photodna/v1.0/Match"
#: the only status code PhotoDNA uses for a completed match call
STATUS_OK = 3000
#: documented input limits: at least 160x160 px, at most 4 MB, these formats
MIN_SIDE = 160
MAX_BYTES = 4 * 1024 * 1024
MIME_TYPES: Mapping[str, str] = {
    "gif": "image/gif",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
NO_MEDIA = "media may not leave the platform (allow_media is off)"
_SNIPPET = 200


class PhotoDnaSettings(RemoteSettings):
    base_url: str = "https://api.microsoftmoderator.com"
    requests_per_second: float = Field(default=5.0, gt=0)
    #: PhotoDNA's ``enhance`` query parameter; left out of the call unless set
    enhance: bool | None = None


class PhotoDnaMatcher(RemoteMatcher):
    """PhotoDNA Cloud's Match call. ``test_mode`` labels every match ``test``: outside
    production only Microsoft's sample images (source ``Test``) should match."""

    name: ClassVar[str] = "photodna"
    description: ClassVar[str] = (
        "Microsoft PhotoDNA Cloud: sends the image (allow_media) to match it against "
        "NCMEC and industry lists"
    )
    Settings: ClassVar[type[BaseModel]] = PhotoDnaSettings
    secrets: ClassVar[tuple[str, ...]] = ("subscription_key",)
    terms: ClassVar[str] = (
        "Vetted organisations only; subscription key from myphotodna.microsoftmoderator.com. "
        "Sends the image to Microsoft."
    )

    def __init__(
        self,
        settings: BaseModel,
        secrets: Mapping[str, SecretStr],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(settings, secrets)
        options = self.photodna
        self._secret_values = tuple(
            value for s in self.credentials.values() if (value := s.get_secret_value())
        )
        self._client = options.client(
            self.label,
            transport,
            headers={
                "Ocp-Apim-Subscription-Key": self.credentials["subscription_key"].get_secret_value()
            },
        )

    @property
    def photodna(self) -> PhotoDnaSettings:
        assert isinstance(self.settings, PhotoDnaSettings)
        return self.settings

    def match(self, data: bytes, signals: FileSignals) -> RemoteResult:
        refused = self._refusal(data, signals)
        if refused is not None:
            return self._not_answered(refused)
        assert signals.image_format is not None
        started = time.monotonic()
        try:
            response = self._client.request(
                "POST",
                MATCH_PATH,
                content=data,
                headers={"Content-Type": MIME_TYPES[signals.image_format]},
                params=self._params(),
            )
            result = self._interpret(response, started)
        except ServiceError as exc:
            result = self._not_answered(str(exc), started)
        except Exception as exc:  # noqa: BLE001 - a remote matcher never raises
            result = self._not_answered(f"photodna: call failed ({type(exc).__name__})", started)
        if result.status is RemoteStatus.NOT_ANSWERED:
            log.warning("photodna did not answer: %s", result.reason)
        else:
            log.debug("photodna: %s in %.3f s", result.status, result.seconds)
        return result

    def close(self) -> None:
        self._client.close()

    # -- before the call ------------------------------------------------------------

    def _refusal(self, data: bytes, signals: FileSignals) -> str | None:
        """Why this file may not or cannot be sent, or None when it can."""
        if not self.photodna.allow_media:
            return NO_MEDIA
        if signals.image_format not in MIME_TYPES:
            shown = signals.image_format or "not an image"
            return f"PhotoDNA takes gif, jpeg, png, bmp or tiff images only (this file: {shown})"
        if signals.width is None or signals.height is None:
            return "image dimensions unknown; PhotoDNA needs at least 160x160 px"
        if signals.width < MIN_SIDE or signals.height < MIN_SIDE:
            return (
                f"image of {signals.width}x{signals.height} px is under PhotoDNA's "
                f"minimum of {MIN_SIDE}x{MIN_SIDE} px"
            )
        if len(data) > MAX_BYTES:
            return f"image of {len(data)} bytes is over PhotoDNA's limit of {MAX_BYTES} bytes"
        return None

    def _params(self) -> dict[str, str]:
        enhance = self.photodna.enhance
        return {} if enhance is None else {"enhance": "true" if enhance else "false"}

    # -- after the call -------------------------------------------------------------

    def _interpret(self, response: httpx.Response, started: float) -> RemoteResult:
        status = response.status_code
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        if status in (401, 403):
            return self._not_answered(
                f"photodna: the subscription key was refused (HTTP {status})" + self._message(body),
                started,
            )
        operation = _operation_status(body)
        if not 200 <= status < 300:
            if operation is not None:
                code, description = operation
                return self._not_answered(
                    f"photodna: HTTP {status}, status {code}: {description}", started
                )
            return self._not_answered(f"photodna: HTTP {status}" + self._message(body), started)
        if not isinstance(body, dict):
            return self._not_answered("photodna: the answer is not JSON", started)
        if operation is None:
            return self._not_answered("photodna: the answer has no Status.Code", started)
        code, description = operation
        if code != STATUS_OK:
            return self._not_answered(f"photodna: status {code}: {description}", started)
        is_match = body.get("IsMatch")
        if not isinstance(is_match, bool):
            return self._not_answered("photodna: the answer has no IsMatch", started)
        tracking = body.get("TrackingId")
        tracking_id = tracking if isinstance(tracking, str) else None
        if not is_match:
            return RemoteResult(
                service=self.label,
                status=RemoteStatus.NO_MATCH,
                method="media",
                tracking_id=tracking_id,
                seconds=time.monotonic() - started,
            )
        sources, violations = _flags(body)
        source = ",".join(sources) or None
        if self.photodna.test_mode or any(s.lower() == "test" for s in sources):
            classification = "test"
            if (
                self.photodna.test_mode
                and sources
                and not all(s.lower() == "test" for s in sources)
            ):
                log.warning("photodna: test mode is on but a match came from source %s", source)
        else:
            classification = ",".join(violations) or "unspecified"
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.MATCHED,
            method="media",
            classification=classification,
            source=source,
            tracking_id=tracking_id,
            raw=self._redact(response.text),
            seconds=time.monotonic() - started,
        )

    def _message(self, body: Any) -> str:
        """The gateway's own words (APIM answers ``{"statusCode", "message"}``), short."""
        if isinstance(body, dict):
            for key in ("message", "Message"):
                if isinstance(body.get(key), str):
                    return ": " + self._redact(body[key][:_SNIPPET])
        return ""

    def _redact(self, text: str) -> str:
        return redact(text, self._secret_values)

    def _not_answered(self, reason: str, started: float | None = None) -> RemoteResult:
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.NOT_ANSWERED,
            method="media",
            reason=self._redact(reason),
            seconds=0.0 if started is None else time.monotonic() - started,
        )


def _operation_status(body: Any) -> tuple[int, str] | None:
    if not isinstance(body, dict):
        return None
    status = body.get("Status")
    if not isinstance(status, dict):
        return None
    code = status.get("Code")
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    description = status.get("Description")
    shown = description[:_SNIPPET] if isinstance(description, str) else "no description"
    return code, shown


def _flags(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Sources and violations of ``MatchDetails.MatchFlags``, each once, in order."""
    sources: list[str] = []
    violations: list[str] = []
    details = body.get("MatchDetails")
    flags = details.get("MatchFlags") if isinstance(details, dict) else None
    for flag in flags if isinstance(flags, list) else []:
        if not isinstance(flag, dict):
            continue
        source = flag.get("Source")
        if isinstance(source, str) and source and source not in sources:
            sources.append(source)
        found = flag.get("Violations")
        for violation in found if isinstance(found, list) else []:
            if isinstance(violation, str) and violation and violation not in violations:
                violations.append(violation)
    return sources, violations
