"""The additional-information request: the uploader's details, asked of the platform.

The platform holds its users' details, not hashguard. Before a report is drafted,
hashguard POSTs a JSON request signed per Standard Webhooks (``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` over ``id.timestamp.body``, the shared
secret) to the platform's URL, saying only which case and content it is about::

    {"type": "report.uploader_info", "case_id": 17, "content_sha256": "…",
     "uploader_id": "user-0001", "url": "https://…", "seen_at": ["2026-01-15T12:30:00Z"]}

The platform answers 200 with JSON signed with the same secret **under the request's
``webhook-id``** (so an answer to another request, or a replayed one, does not verify)
and a timestamp within five minutes of now::

    {"esp_user_id": "…", "screen_name": "…", "display_names": ["…"], "emails": ["…"],
     "ip_captures": [{"ip": "192.0.2.10", "event": "Login", "at": "…"}],
     "files": [{"sha256": "…", "uploaded_at": "…",
                "upload_ip": {"ip": "192.0.2.10", "event": "Upload", "at": "…"}}]}

Every field is optional; unknown fields are refused (hashguard takes no more than a
report uses). Anything else — no answer in time, an HTTP error, an unsigned, wrongly
signed, stale or unbound answer, a body that is not this shape — raises
``LookupFailed`` naming the problem, never a value of the answer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Annotated, Any, Literal

import httpx
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError

from hashguard.domain.reports import IpCapture, IpEvent, Uploader
from hashguard.httpclient import check_base_url

USER_AGENT = "hashguard-reports/1"
#: the largest answer read (a user's details are small)
MAX_ANSWER_BYTES = 256 * 1024
#: an answer's time may be ahead of ours by this much (clock skew), never more
SKEW = timedelta(minutes=5)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=254, pattern=r"^[^@\s<>]{1,64}@[^@\s<>]{1,253}$"
    ),
]
Sha256 = Annotated[str, StringConstraints(to_lower=True, pattern=r"^[0-9a-fA-F]{64}$")]


class LookupFailed(Exception):
    """The platform's details could not be had; ``reason`` is a short code
    (``unreachable``, ``http``, ``unsigned``, ``bad_signature``, ``malformed``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UploaderInfoSettings(BaseModel):
    """Where the platform answers; the secret is sealed apart (``uploader_info_secret``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_base_url(value)


class _Capture(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ip: str = Field(max_length=64)
    event: Literal["Login", "Registration", "Purchase", "Upload", "Other", "Unknown"] = "Unknown"
    at: AwareDatetime | None = None
    possible_proxy: bool | None = None
    port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("ip")
    @classmethod
    def _check_ip(cls, value: str) -> str:
        return str(ip_address(value.strip()))

    def domain(self) -> IpCapture:
        return IpCapture(
            ip=self.ip,
            event=IpEvent(self.event),
            at=self.at,
            possible_proxy=self.possible_proxy,
            port=self.port,
        )


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: Sha256
    uploaded_at: AwareDatetime | None = None
    upload_ip: _Capture | None = None


class Answer(BaseModel):
    """The platform's answer, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    esp_user_id: Text | None = None
    screen_name: Text | None = None
    display_names: list[Text] = Field(default_factory=list, max_length=10)
    emails: list[Email] = Field(default_factory=list, max_length=10)
    ip_captures: list[_Capture] = Field(default_factory=list, max_length=100)
    files: list[_File] = Field(default_factory=list, max_length=100)

    def times(self) -> list[datetime]:
        found = [c.at for c in self.ip_captures]
        for f in self.files:
            found += [f.uploaded_at, f.upload_ip.at if f.upload_ip else None]
        return [t for t in found if t is not None]

    def uploader(self) -> Uploader:
        return Uploader(
            esp_id=self.esp_user_id,
            screen_name=self.screen_name,
            display_names=tuple(self.display_names),
            emails=tuple(self.emails),
            ip_captures=tuple(c.domain() for c in self.ip_captures),
        )


class Details:
    """What the platform said: the uploader and, per content SHA-256, when and from
    where it was uploaded."""

    def __init__(self, answer: Answer) -> None:
        self.uploader = answer.uploader()
        self._files = {f.sha256: f for f in answer.files}

    def upload_of(self, sha256: str) -> tuple[datetime | None, IpCapture | None]:
        found = self._files.get(sha256.lower())
        if found is None:
            return None, None
        return found.uploaded_at, found.upload_ip.domain() if found.upload_ip else None


def _problems(exc: ValidationError) -> str:
    # the location and the kind of each problem, never the value given
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['type']}" for e in exc.errors()
    )


def request_body(
    *,
    case_id: int,
    content_sha256: str,
    uploader_id: str | None,
    url: str | None,
    seen_at: Sequence[datetime],
) -> bytes:
    """The request's exact bytes: only what identifies the case's content."""
    payload: dict[str, Any] = {
        "type": "report.uploader_info",
        "case_id": case_id,
        "content_sha256": content_sha256,
        "uploader_id": uploader_id,
        "url": url,
        "seen_at": [t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in seen_at],
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class UploaderLookup:
    """Asks the platform for a case's uploader details (module docstring)."""

    def __init__(
        self,
        settings: UploaderInfoSettings,
        secret: str,
        *,
        transport: httpx.BaseTransport | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._webhook = Webhook(secret)
        # signatures carry the real time of the request (the platform rejects stale
        # ones, and so do we: the library checks answers against the real time)
        self._wall_clock = wall_clock
        self._client = httpx.Client(
            timeout=settings.timeout_seconds,
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def ask(
        self,
        *,
        case_id: int,
        content_sha256: str,
        uploader_id: str | None,
        url: str | None,
        seen_at: Sequence[datetime],
    ) -> Details:
        """The platform's verified answer; ``LookupFailed`` otherwise."""
        body = request_body(
            case_id=case_id,
            content_sha256=content_sha256,
            uploader_id=uploader_id,
            url=url,
            seen_at=seen_at,
        )
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = self._wall_clock().astimezone(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(msg_id, now, body.decode()),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        try:
            with self._client.stream(
                "POST", self.settings.url, content=body, headers=headers
            ) as response:
                raw = b""
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > MAX_ANSWER_BYTES:
                        raise LookupFailed("malformed", "the platform's answer is too large")
        except httpx.HTTPError as exc:
            raise LookupFailed(
                "unreachable", f"the platform did not answer ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise LookupFailed("http", f"the platform answered HTTP {response.status_code}")
        return self._verified(raw, response.headers, msg_id, now)

    def _verified(self, raw: bytes, headers: httpx.Headers, msg_id: str, now: datetime) -> Details:
        signed = {k: headers.get(k, "") for k in ("webhook-id", "webhook-timestamp")}
        signed["webhook-signature"] = headers.get("webhook-signature", "")
        if not all(signed.values()):
            raise LookupFailed("unsigned", "the platform's answer is not signed")
        if signed["webhook-id"] != msg_id:
            raise LookupFailed(
                "bad_signature", "the platform's answer is not signed for this request"
            )
        try:
            data = self._webhook.verify(raw, signed)
        except (WebhookVerificationError, ValueError) as exc:
            why = str(exc) if isinstance(exc, WebhookVerificationError) else "unreadable"
            raise LookupFailed(
                "bad_signature", f"the platform's answer does not verify ({why})"
            ) from None
        try:
            answer = Answer.model_validate(data)
        except ValidationError as exc:
            raise LookupFailed(
                "malformed", f"the platform's answer is malformed: {_problems(exc)}"
            ) from None
        if any(t > now + SKEW for t in answer.times()):
            raise LookupFailed("malformed", "the platform's answer holds a time in the future")
        return Details(answer)
