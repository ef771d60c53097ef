"""Pushing a signed feed to the hotlines and NGOs that subscribed to it: a Standard
Webhooks delivery through the outbox (``stats.feed``), enqueued with its audit entry."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hashguard.actions.outbox import webhook_actions
from hashguard.audit import record
from hashguard.domain.actions import EventType, NewAction, WebhookEndpoint
from hashguard.domain.audit import AuditAction
from hashguard.stats.signing import canonical
from hashguard.store import Store


def subscribers(
    endpoints: Sequence[WebhookEndpoint], names: Sequence[str] = ()
) -> list[WebhookEndpoint]:
    """The endpoints that list ``stats.feed`` by name (an endpoint that takes every
    event is a platform's, not a collector's); with ``names``, only those."""
    chosen = [e for e in endpoints if EventType.STATS_FEED in e.events]
    if names:
        unknown = sorted(set(names) - {e.name for e in chosen})
        if unknown:
            raise ValueError(
                f"no webhook endpoint subscribed to stats.feed is named {', '.join(unknown)}"
            )
        chosen = [e for e in chosen if e.name in names]
    return chosen


def feed_actions(
    envelope: Mapping[str, Any], endpoints: Sequence[WebhookEndpoint], *, at: datetime
) -> list[NewAction]:
    """One webhook per endpoint. The idempotency key names the period and the feed's
    content: pushing the same feed twice delivers it once; a changed feed is new."""
    payload = envelope["payload"]
    digest = hashlib.sha256(canonical(payload)).hexdigest()[:16]
    period = str(payload["period"]["name"])
    return webhook_actions(
        EventType.STATS_FEED,
        envelope,
        endpoints,
        key=f"stats-feed:{period}:{digest}",
        subject=f"stats:{period}",
        at=at,
    )


def push(
    store: Store,
    envelope: Mapping[str, Any],
    endpoints: Sequence[WebhookEndpoint],
    *,
    actor: str,
    at: datetime,
) -> list[int]:
    """Enqueue the feed for ``endpoints`` and record ``stats.feed_pushed`` in one
    transaction; the outbox ids (an id already there for a feed pushed before)."""
    actions = feed_actions(envelope, endpoints, at=at)
    payload = envelope["payload"]
    with store.atomic() as unit:
        ids = [unit.actions.enqueue(action, at=at) for action in actions]
        record(
            unit,
            actor,
            AuditAction.STATS_FEED_PUSHED,
            f"stats:{payload['period']['name']}",
            endpoints=[e.name for e in endpoints],
            key_id=envelope["signature"]["key_id"],
            k=payload["suppression"]["k"],
        )
    return ids
