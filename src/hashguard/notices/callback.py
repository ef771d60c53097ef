"""The platform's callback: a notice's URL or content id resolved to the content it names.

hashguard never fetches a URL a notice names (no SSRF): it asks the platform, which
knows its own URLs. The request is a signed Standard Webhooks POST (``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` over the body, with the callback's secret)
of ``{"type": "notice.resolve", "timestamp", "data": {"notice_id", "item", "url",
"content_id"}}``. The platform answers 200 with a body signed the same way (the same
three headers, the same secret) that is one of:

- ``{"found": false}``: the URL is not on the platform;
- ``{"found": true, "content_id": "...", "data": "<base64 bytes>"}``;
- ``{"found": true, "content_id": "...", "location": "/abs/path"}``: a file under one of
  ``notices_content_roots`` (opened without following a symlink out of them).

Anything else (another status, a timeout, a missing or wrong signature, a malformed
body, content over the size limit, a location outside the roots) is
``CallbackFailed``: the notice is retried, never taken as "not found" or "no match".
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError

from hashguard.actions.outbox import derived_key
from hashguard.actions.webhooks import body_bytes
from hashguard.domain.notices import NoticeItem
from hashguard.safefs import OutsideRoots, open_resolved
from hashguard.settings import Settings

USER_AGENT = "hashguard-notices/1"
EVENT = "notice.resolve"


class CallbackFailed(Exception):
    """The callback gave no usable answer (retry later). The message never holds the
    secret or the content."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NotFound:
    """The platform says the item is not on it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Found:
    content_id: str | None
    data: bytes = b""


Answer = NotFound | Found


@dataclass(frozen=True, kw_only=True)
class PlatformCallback:
    url: str
    secret: str
    timeout: float
    max_bytes: int
    roots: Sequence[str] = ()
    transport: httpx.BaseTransport | None = None
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @classmethod
    def configured(cls, settings: Settings) -> PlatformCallback | None:
        """The callback the settings configure (``None``: no URL or no secret)."""
        if settings.notices_callback_url is None or settings.notices_callback_secret is None:
            return None
        return cls(
            url=settings.notices_callback_url,
            secret=settings.notices_callback_secret.get_secret_value(),
            timeout=settings.notices_callback_timeout_seconds,
            max_bytes=int(settings.notices_max_content_mb * 1024 * 1024),
            roots=tuple(os.path.realpath(r) for r in settings.notices_content_roots),
        )

    def resolve(self, notice_id: int, index: int, item: NoticeItem) -> Answer:
        """What the platform says item ``index`` of notice ``notice_id`` is."""
        msg_id = derived_key("notice", str(notice_id), str(index))
        body = body_bytes(
            {
                "type": EVENT,
                "timestamp": self.wall_clock().astimezone(UTC).isoformat(),
                "data": {
                    "notice_id": notice_id,
                    "item": index,
                    "url": item.url,
                    "content_id": item.content_id,
                },
            }
        )
        hook = Webhook(self.secret)
        when = self.wall_clock().astimezone(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": hook.sign(msg_id, when, body.decode()),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        limit = self.max_bytes * 4 // 3 + 4096  # base64 and the JSON around it
        try:
            with (
                httpx.Client(
                    timeout=self.timeout,
                    transport=self.transport,
                    follow_redirects=False,
                    trust_env=False,
                ) as client,
                client.stream("POST", self.url, content=body, headers=headers) as response,
            ):
                raw = bytearray()
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > limit:
                        raise CallbackFailed("the callback's answer is larger than the limit")
                status = response.status_code
                answer_headers = dict(response.headers)
        except httpx.HTTPError as exc:
            raise CallbackFailed(f"the callback did not answer: {type(exc).__name__}") from None
        if status != 200:
            raise CallbackFailed(f"the callback answered HTTP {status}")
        # the answer is signed for this request (its webhook-id), so no other answer
        # (an old one replayed) is taken for it
        if answer_headers.get("webhook-id") != msg_id:
            raise CallbackFailed("the callback's answer is not signed for this request")
        try:
            parsed = hook.verify(bytes(raw), answer_headers)
        except (WebhookVerificationError, ValueError):
            raise CallbackFailed("the callback's answer is not signed with its secret") from None
        return self._answer(parsed)

    def _answer(self, parsed: Any) -> Answer:
        if not isinstance(parsed, dict) or not isinstance(parsed.get("found"), bool):
            raise CallbackFailed("the callback's answer has no boolean 'found'")
        if not parsed["found"]:
            return NotFound()
        content_id = parsed.get("content_id")
        if content_id is not None and (not isinstance(content_id, str) or len(content_id) > 500):
            raise CallbackFailed("the callback's content_id is not a short text")
        data, location = parsed.get("data"), parsed.get("location")
        if isinstance(data, str) and location is None:
            if len(data) > self.max_bytes * 4 // 3 + 4:
                raise CallbackFailed("the content is larger than the limit")
            try:
                return Found(content_id=content_id, data=base64.b64decode(data, validate=True))
            except (binascii.Error, ValueError):
                raise CallbackFailed("the callback's data is not base64") from None
        if isinstance(location, str) and data is None:
            return Found(content_id=content_id, data=self._read(location))
        raise CallbackFailed("the callback's answer has neither 'data' nor 'location'")

    def _read(self, location: str) -> bytes:
        """The file at ``location``, only under the content roots; never a URL."""
        if not self.roots:
            raise CallbackFailed("a location was given but no notices_content_roots are set")
        if not os.path.isabs(location) or "\x00" in location:
            raise CallbackFailed("the location is not an absolute local path")
        try:
            fd = open_resolved(location, confine=self.roots)
        except OutsideRoots:
            raise CallbackFailed("the location is outside notices_content_roots") from None
        except OSError as exc:
            raise CallbackFailed(f"the location cannot be read: {type(exc).__name__}") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise CallbackFailed("the content is larger than the limit")
        return data
