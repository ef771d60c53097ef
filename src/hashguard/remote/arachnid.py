"""The C3P Project Arachnid Shield adapter: a PDQ hash-only lookup, or the media itself.

Hash-only first: with a PDQ hash of good quality only ``POST /v1/pdq/`` is called and
no user content leaves the platform. Only reference-mode PDQ hashes are sent (what C3P
computes; a fast-mode hash never leaves): the hashing computes them for every file when
this matcher is configured (``HashOptions.also_reference``). A file whose only PDQ hashes
are fast ones is ``not_answered``, never sent as media instead. Without a PDQ hash the
media goes to ``POST /v1/media/`` only when the operator set ``allow_media``.
``/v1/media/submit`` (which uploads media for analyst retention) is never called.

In ``test_mode`` (on by default) every match is labelled ``test``, as PhotoDNA's are: a
test-mode answer is never taken for a real classification.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, Field, SecretStr

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals, PdqHash, leaving
from hashguard.httpclient import ServiceError, redact
from hashguard.remote.base import RemoteMatcher, RemoteSettings

log = logging.getLogger(__name__)

PDQ_PATH = "/v1/pdq/"
MEDIA_PATH = "/v1/media/"
NO_KNOWN_MATCH = "no-known-match"
TEST = "test"
#: classifications that are matches, most severe first
MATCHING = ("csam", "harmful-abusive-material", TEST)
MIME_TYPES: Mapping[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heif": "image/heic",
    "avif": "image/avif",
}
NO_MEDIA = "no PDQ hash of good quality, and media may not leave the platform (allow_media is off)"
NO_REFERENCE = (
    "only fast-mode PDQ hashes were computed and they never leave hashguard: hash with "
    "also_reference when Arachnid Shield is configured"
)
_SNIPPET = 200


class ArachnidShieldSettings(RemoteSettings):
    base_url: str = "https://shield.projectarachnid.com"
    #: Arachnid Shield's quota is not published; ask C3P and set it here
    requests_per_second: float = Field(default=5.0, gt=0)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Verdict:
    status: RemoteStatus
    classification: str | None = None
    match_type: str | None = None
    distance: int | None = None
    problem: str | None = None
    raw: str | None = None


class ArachnidShieldMatcher(RemoteMatcher):
    """Arachnid Shield's PDQ and media scans, HTTP Basic auth."""

    name: ClassVar[str] = "arachnid_shield"
    description: ClassVar[str] = (
        "C3P Project Arachnid Shield: PDQ hash-only lookup, or the media (allow_media) "
        "matched by SHA-1 and PhotoDNA"
    )
    Settings: ClassVar[type[BaseModel]] = ArachnidShieldSettings
    sends_pdq: ClassVar[bool] = True
    secrets: ClassVar[tuple[str, ...]] = ("username", "password")
    terms: ClassVar[str] = (
        "Free for eligible platforms; credentials from the Canadian Centre for Child "
        "Protection. Hash-only unless allow_media is set."
    )

    def __init__(
        self,
        settings: BaseModel,
        secrets: Mapping[str, SecretStr],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(settings, secrets)
        options = self.arachnid
        username = self.credentials["username"].get_secret_value()
        password = self.credentials["password"].get_secret_value()
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._secret_values = tuple(v for v in (password, username, basic) if v)
        self._client = options.client(self.label, transport, auth=(username, password))

    @property
    def arachnid(self) -> ArachnidShieldSettings:
        assert isinstance(self.settings, ArachnidShieldSettings)
        return self.settings

    def match(self, data: bytes, signals: FileSignals) -> RemoteResult:
        hashes = _pdq_b64(leaving(signals.reference_pdq))
        if hashes:
            result = self._call(
                "hash", PDQ_PATH, lambda body: _read_pdq(body, hashes), hashes=hashes
            )
        elif signals.needs_reference:
            result = self._not_answered("hash", NO_REFERENCE)
        elif not self.arachnid.allow_media:
            result = self._not_answered("hash", NO_MEDIA)
        elif (mime := MIME_TYPES.get(signals.image_format or "")) is None:
            result = self._not_answered(
                "media",
                "no PDQ hash of good quality, and the media type is unknown "
                f"({signals.image_format or 'not an image'})",
            )
        else:
            result = self._call("media", MEDIA_PATH, _read, content=data, mime=mime)
        if result.status is RemoteStatus.NOT_ANSWERED:
            log.warning("arachnid_shield did not answer: %s", result.reason)
        else:
            log.debug("arachnid_shield: %s in %.3f s", result.status, result.seconds)
        return result

    def close(self) -> None:
        self._client.close()

    # -- the call -------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        read: Callable[[dict[str, Any]], _Verdict],
        *,
        hashes: Sequence[str] | None = None,
        content: bytes | None = None,
        mime: str | None = None,
    ) -> RemoteResult:
        started = time.monotonic()
        try:
            if hashes is not None:
                response = self._client.request("POST", path, json={"hashes": list(hashes)})
            else:
                assert mime is not None
                response = self._client.request(
                    "POST", path, content=content, headers={"Content-Type": mime}
                )
            verdict = self._verdict(response, read)
        except ServiceError as exc:
            verdict = _Verdict(status=RemoteStatus.NOT_ANSWERED, problem=str(exc))
        except Exception as exc:  # noqa: BLE001 - a remote matcher never raises
            verdict = _Verdict(
                status=RemoteStatus.NOT_ANSWERED,
                problem=f"arachnid_shield: call failed ({type(exc).__name__})",
            )
        seconds = time.monotonic() - started
        if verdict.status is RemoteStatus.NOT_ANSWERED:
            return self._not_answered(method, verdict.problem or "no answer", seconds)
        matched = verdict.status is RemoteStatus.MATCHED
        classification = verdict.classification
        if matched and self.arachnid.test_mode:
            if classification != TEST:
                log.warning("arachnid_shield: test mode is on but a match said %s", classification)
            classification = TEST
        return RemoteResult(
            service=self.label,
            status=verdict.status,
            method=method,
            classification=classification,
            match_type=verdict.match_type,
            distance=verdict.distance,
            raw=self._redact(verdict.raw) if matched and verdict.raw is not None else None,
            seconds=seconds,
        )

    def _verdict(
        self, response: httpx.Response, read: Callable[[dict[str, Any]], _Verdict]
    ) -> _Verdict:
        status = response.status_code
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        if not 200 <= status < 300:
            detail = self._detail(body)
            if status in (401, 403):
                return _failed(
                    f"arachnid_shield: the credentials were refused (HTTP {status}){detail}"
                )
            return _failed(f"arachnid_shield: HTTP {status}{detail}")
        if not isinstance(body, dict):
            return _failed("arachnid_shield: the answer is not a JSON object")
        return replace(read(body), raw=response.text)

    def _detail(self, body: Any) -> str:
        """The service's ``{"detail": ...}``, short and without credentials."""
        if isinstance(body, dict) and "detail" in body:
            detail = body["detail"]
            text = detail if isinstance(detail, str) else json.dumps(detail)
            return ": " + self._redact(text[:_SNIPPET])
        return ""

    def _redact(self, text: str) -> str:
        return redact(text, self._secret_values)

    def _not_answered(self, method: str, reason: str, seconds: float = 0.0) -> RemoteResult:
        return RemoteResult(
            service=self.label,
            status=RemoteStatus.NOT_ANSWERED,
            method=method,
            reason=self._redact(reason),
            seconds=seconds,
        )


def _pdq_b64(hashes: Sequence[PdqHash]) -> list[str]:
    """Base64 of the 32 bytes of each PDQ hash of good quality, each once."""
    found: list[str] = []
    for pdq in hashes:
        if pdq.low_quality:
            continue
        try:
            raw = bytes.fromhex(pdq.value)
        except ValueError:
            continue
        if len(raw) == 32 and (value := base64.b64encode(raw).decode()) not in found:
            found.append(value)
    return found


def _read_pdq(body: dict[str, Any], sent: Sequence[str]) -> _Verdict:
    scanned = body.get("scanned_hashes")
    if not isinstance(scanned, dict):
        return _failed("arachnid_shield: the answer has no scanned_hashes")
    verdicts = []
    for value in sent:
        if value not in scanned:
            return _failed("arachnid_shield: a hash sent is missing from scanned_hashes")
        entry = scanned[value]
        # the Python SDK documents null for a hash without a match
        verdicts.append(_Verdict(status=RemoteStatus.NO_MATCH) if entry is None else _read(entry))
    return _combine(verdicts)


def _failed(problem: str) -> _Verdict:
    return _Verdict(status=RemoteStatus.NOT_ANSWERED, problem=problem)


def _read(entry: Any) -> _Verdict:
    """One ScannedMedia or scanned PDQ hash: a classification and its match details."""
    if not isinstance(entry, dict):
        return _failed("arachnid_shield: a scan result is not a JSON object")
    classification = entry.get("classification")
    if not isinstance(classification, str):
        return _failed("arachnid_shield: a scan result has no classification")
    if classification == NO_KNOWN_MATCH:
        return _Verdict(status=RemoteStatus.NO_MATCH)
    if classification not in MATCHING:
        return _failed(f"arachnid_shield: unknown classification {classification[:_SNIPPET]!r}")
    match_type = entry.get("match_type")
    return _Verdict(
        status=RemoteStatus.MATCHED,
        classification=classification,
        match_type=match_type if isinstance(match_type, str) else None,
        distance=_distance(entry.get("near_match_details")),
    )


def _distance(details: Any) -> int | None:
    """The smallest ``distance`` in the near-match details (a list for media, one object
    or null for a PDQ hash), if the service gave one."""
    items = details if isinstance(details, list) else [details]
    distances = [
        d["distance"]
        for d in items
        if isinstance(d, dict)
        and isinstance(d.get("distance"), int)
        and not isinstance(d["distance"], bool)
    ]
    return min(distances) if distances else None


def _combine(verdicts: Sequence[_Verdict]) -> _Verdict:
    """Several hashes of one file: the most severe match wins; any hash left unanswered
    makes a file without a match unanswered (never ``no_match``)."""
    matched = [v for v in verdicts if v.status is RemoteStatus.MATCHED]
    if matched:
        return min(matched, key=lambda v: MATCHING.index(v.classification or TEST))
    for verdict in verdicts:
        if verdict.status is RemoteStatus.NOT_ANSWERED:
            return verdict
    return _Verdict(status=RemoteStatus.NO_MATCH)
