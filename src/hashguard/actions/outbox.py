"""What goes into the outbox: webhook events and quarantine requests, planned from decisions.

Planning is pure; enqueueing goes through an ``ActionSink`` (``store.actions`` in its
own transaction, or ``store.actions.transaction()`` / ``BoundOutbox`` inside the
transaction that stores the decision), so a decision and its actions commit together.

Idempotency keys are derived from what the action is about (``key``: e.g. the scan run
and the file) and the endpoint, so enqueueing the same decision twice adds nothing and a
receiver sees one ``webhook-id`` however often the delivery is retried.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from hashguard.domain.actions import ActionKind, EventType, NewAction, WebhookEndpoint
from hashguard.domain.matches import Match
from hashguard.domain.objects import ObjectRef
from hashguard.domain.policy import decision_to_json
from hashguard.domain.scans import FileResult, printable_path
from hashguard.domain.signals import leaving, pdq_to_json
from hashguard.settings import Settings


class ActionSink(Protocol):
    def enqueue(self, action: NewAction) -> int: ...


def endpoints_of(settings: Settings) -> tuple[WebhookEndpoint, ...]:
    return tuple(
        WebhookEndpoint(
            name=e.name,
            url=e.url,
            secret=e.secret.get_secret_value(),
            events=frozenset(e.events),
        )
        for e in settings.webhooks
    )


def derived_key(*parts: str) -> str:
    """A Standard Webhooks message id (``msg_`` + 32 hex) derived from ``parts``."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return f"msg_{digest[:32]}"


def webhook_timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def webhook_body(event: EventType, data: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """The Standard Webhooks payload shape: ``type``, ``timestamp`` and ``data``."""
    return {"type": str(event), "timestamp": webhook_timestamp(at), "data": dict(data)}


def webhook_actions(
    event: EventType,
    data: Mapping[str, Any],
    endpoints: Iterable[WebhookEndpoint],
    *,
    key: str,
    subject: str | None = None,
    at: datetime | None = None,
) -> list[NewAction]:
    """One webhook per endpoint that wants ``event``; ``key`` names what it is about."""
    body = webhook_body(event, data, at or datetime.now(UTC))
    return [
        NewAction(
            kind=ActionKind.WEBHOOK,
            idempotency_key=derived_key(key, str(event), endpoint.name),
            payload=body,
            event=event,
            target=endpoint.name,
            subject=subject,
        )
        for endpoint in endpoints
        if endpoint.wants(event)
    ]


def _match_json(match: Match) -> dict[str, Any]:
    # the bank, how and how closely it matched; never the list entry itself
    return {
        "bank": match.bank,
        "algorithm": str(match.algorithm),
        "distance": match.distance,
        "category": match.category,
    }


def match_data(result: FileResult, *, scan_run: int | None = None) -> dict[str, Any]:
    """``match.detected``'s data: where, the decision, which banks, and the content's own
    hashes. Never the file's bytes and never any other hash of a list.

    ``content.pdq`` holds reference-mode PDQ hashes only, each as
    ``{"value", "quality", "frame", "mode": "reference"}``: a hash made in fast mode never
    leaves (the pipeline computes reference hashes first: ``hashing.reference``); without
    them the list is empty."""
    signals = result.signals
    return {
        "path": printable_path(result.path),
        "scan_run": scan_run,
        "decision": decision_to_json(result.decision),
        "matches": [_match_json(m) for m in result.matches if m.effective],
        "content": None
        if signals is None
        else {
            "size": signals.size,
            "md5": signals.md5,
            "sha1": signals.sha1,
            "sha256": signals.sha256,
            "pdq": [pdq_to_json(p) for p in leaving(signals.reference_pdq)],
        },
    }


def quarantine_action(
    path: str, *, key: str, subject: str | None = None, sha256: str | None = None
) -> NewAction:
    """Move the local file ``path`` into quarantine (the exact bytes of its name kept),
    if it still holds the matched content: ``sha256`` is that content's SHA-256, and the
    deliverer moves only a file with those bytes (without it, it moves nothing)."""
    raw = os.fsencode(path)
    return NewAction(
        kind=ActionKind.QUARANTINE,
        idempotency_key=derived_key(key, "quarantine"),
        payload={
            "path": printable_path(path),
            "path_b64": base64.b64encode(raw).decode(),
            "sha256": sha256,
        },
        subject=subject,
    )


def plan_for_decision(
    result: FileResult,
    *,
    endpoints: Sequence[WebhookEndpoint],
    quarantine_local: bool,
    key: str,
    scan_run: int | None = None,
    at: datetime | None = None,
    quarantine_object: ObjectRef | None = None,
) -> list[NewAction]:
    """The actions ``result``'s decision leads to: ``match.detected`` to each endpoint
    that wants it and, when ``quarantine_local``, quarantine of the local file (or, with
    ``quarantine_object``, of that object in object storage). Nothing for review,
    ignore or shadow decisions. ``key`` names the file's decision uniquely (e.g.
    ``scan:<run>:<path>``)."""
    if not result.decision.acts:
        return []
    subject = f"scan:{scan_run}" if scan_run is not None else None
    planned = webhook_actions(
        EventType.MATCH_DETECTED,
        match_data(result, scan_run=scan_run),
        endpoints,
        key=key,
        subject=subject,
        at=at,
    )
    if quarantine_local:
        sha256 = result.signals.sha256 if result.signals else None
        planned.append(quarantine_action(result.path, key=key, subject=subject, sha256=sha256))
    if quarantine_object is not None:
        from hashguard.actions.objquarantine import object_quarantine_action  # noqa: PLC0415

        sha256 = result.signals.sha256 if result.signals else None
        planned.append(
            object_quarantine_action(quarantine_object, key=key, subject=subject, sha256=sha256)
        )
    return planned


def enqueue_all(sink: ActionSink, actions: Iterable[NewAction]) -> list[int]:
    return [sink.enqueue(action) for action in actions]


def enqueue_for_decision(
    sink: ActionSink,
    result: FileResult,
    *,
    endpoints: Sequence[WebhookEndpoint],
    quarantine_local: bool,
    key: str,
    scan_run: int | None = None,
    at: datetime | None = None,
) -> list[int]:
    """Enqueue what ``result``'s decision leads to into ``sink``; pass the sink of the
    transaction that stores the result so both commit together."""
    return enqueue_all(
        sink,
        plan_for_decision(
            result,
            endpoints=endpoints,
            quarantine_local=quarantine_local,
            key=key,
            scan_run=scan_run,
            at=at,
        ),
    )
