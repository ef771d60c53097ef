"""Webhook delivery signed per the Standard Webhooks specification (``standardwebhooks``).

Each delivery is a JSON POST with ``webhook-id`` (the action's idempotency key, the same
on every retry, so a receiver applies an event once), ``webhook-timestamp`` (the time of
this attempt) and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 over
``id.timestamp.body``). A 2xx answer is delivered; anything else, a timeout or a dropped
connection is worth retrying. Errors name the endpoint and the status or exception type,
never the secret or the URL's credentials.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from hashguard.actions.delivery import Delivered, DeliveryResult, Permanent, Retry
from hashguard.domain.actions import OutboxAction, WebhookEndpoint

USER_AGENT = "hashguard-webhooks/1"


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The exact body sent (compact, sorted keys: the same bytes on every retry)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(
    endpoint: WebhookEndpoint, msg_id: str, body: bytes, at: datetime
) -> dict[str, str]:
    when = at.astimezone(UTC)
    signature = Webhook(endpoint.secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> Any:
    """What a receiver does: the parsed body, or ``WebhookVerificationError``."""
    return Webhook(secret).verify(body, dict(headers))


class WebhookDeliverer:
    """Delivers webhook actions to the configured endpoints (by name)."""

    def __init__(
        self,
        endpoints: Mapping[str, WebhookEndpoint],
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._endpoints = dict(endpoints)
        # the signature's timestamp is the real time of the attempt (receivers reject
        # stale ones), independent of the dispatcher's scheduling clock
        self._wall_clock = wall_clock
        self._client = httpx.Client(
            timeout=timeout, transport=transport, follow_redirects=False, trust_env=False
        )

    def close(self) -> None:
        self._client.close()

    def deliver(self, action: OutboxAction) -> DeliveryResult:
        endpoint = self._endpoints.get(action.target or "")
        if endpoint is None:
            return Permanent(f"no webhook endpoint named {action.target!r} is configured")
        body = body_bytes(action.payload)
        headers = signed_headers(endpoint, action.idempotency_key, body, self._wall_clock())
        try:
            response = self._client.post(endpoint.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Retry(f"{endpoint.name}: {type(exc).__name__}")
        if 200 <= response.status_code < 300:
            return Delivered()
        return Retry(f"{endpoint.name}: HTTP {response.status_code}")
