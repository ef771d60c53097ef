"""The dispatcher: takes due outbox entries (webhooks, quarantine, feedback to the
exchanges), delivers them at least once, backs off, gives up.

Each round leases due entries (so several dispatchers can run; a killed one's entries
come back when its lease runs out), delivers them and records the outcome. A failure
is retried after a random wait of up to ``min(cap, base * 2**attempts)`` ("full
jitter", so retries from many entries do not arrive in step) until the entry has been
failing for longer than the horizon (24 hours by default, counted from its creation or
from a manual retry); then, or at once for a failure retrying cannot fix, it becomes a
dead letter (``hashguard actions dead``, ``hashguard actions retry ID``).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hashguard.actions.delivery import Delivered, Deliverer, DeliveryResult, Permanent, Retry
from hashguard.actions.feedback import FeedbackDeliverer, KeyLoader
from hashguard.actions.objquarantine import ObjectQuarantineDeliverer, ObjectRestoreDeliverer
from hashguard.actions.outbox import endpoints_of
from hashguard.actions.quarantine import QuarantineDeliverer
from hashguard.actions.webhooks import WebhookDeliverer
from hashguard.domain.actions import ActionKind, OriginalFate, OutboxAction, WebhookEndpoint
from hashguard.domain.backoff import Backoff
from hashguard.domain.cases import CaseState
from hashguard.plugins import Registry
from hashguard.settings import Settings
from hashguard.store import Store
from hashguard.store.actions import ActionStore, LeaseLost

log = logging.getLogger(__name__)

#: the actor of audit events the dispatcher records
ACTOR = "system:dispatcher"


#: kinds whose delivery is recorded with their outbox entry (and audited)
_RECORDED = frozenset(
    {ActionKind.QUARANTINE, ActionKind.OBJECT_QUARANTINE, ActionKind.OBJECT_RESTORE}
)

#: an action that still fails this long after its first try is a dead letter
DEFAULT_BACKOFF = Backoff(
    first=timedelta(seconds=10), longest=timedelta(hours=1), give_up_after=timedelta(hours=24)
)


@dataclass(kw_only=True, slots=True)
class RoundReport:
    delivered: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return len(self.delivered) + len(self.retried) + len(self.dead) + len(self.lost)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    def __init__(
        self,
        store: ActionStore,
        deliverers: Mapping[ActionKind, Deliverer],
        *,
        backoff: Backoff | None = None,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 20,
        owner: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._deliverers = dict(deliverers)
        self._backoff = backoff or DEFAULT_BACKOFF
        self._lease = lease
        self._batch = batch
        self.owner = owner or default_owner()
        self._clock = clock
        self._rng = rng or random.Random()

    def run_once(self, now: datetime | None = None) -> RoundReport:
        """One round: every entry due at ``now`` (the clock's time by default) is tried
        once, in batches of ``batch``."""
        at = now or self._clock()
        report = RoundReport()
        while True:
            claimed = self._store.claim_due(self.owner, at, limit=self._batch, lease=self._lease)
            if not claimed:
                return report
            for action in claimed:
                self._handle(action, at if now is not None else self._clock(), report)

    def run_forever(self, stop: threading.Event, *, poll_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:
                # the database went away for a moment: keep the loop, try again later
                log.exception("dispatch round failed")
                report = RoundReport()
            if report.handled == 0:
                stop.wait(poll_seconds)

    def _outcome(self, action: OutboxAction) -> DeliveryResult:
        deliverer = self._deliverers.get(action.kind)
        if deliverer is None:
            return Retry(f"no deliverer for {action.kind} actions in this dispatcher")
        try:
            return deliverer.deliver(action)
        except Exception as exc:  # a bug or an unexpected failure: retry, keep the type
            log.exception("delivering action %s failed", action.id)
            return Retry(f"{type(exc).__name__} while delivering")

    def _complete(self, action: OutboxAction, at: datetime, outcome: Delivered) -> None:
        """Record a quarantine or a restore with its outbox entry and audit event."""
        if action.kind is ActionKind.QUARANTINE:
            self._store.complete_quarantine(
                action.id, self.owner, at, followups=outcome.followups, actor=ACTOR
            )
        elif action.kind is ActionKind.OBJECT_QUARANTINE:
            self._store.complete_object_quarantine(
                action.id, self.owner, at, followups=outcome.followups, actor=ACTOR
            )
        else:
            self._store.complete_object_restore(
                action.id,
                int(action.payload["quarantine_action"]),
                self.owner,
                at,
                actor=ACTOR,
                restored_by=str(action.payload.get("by") or ACTOR),
            )

    def _handle(self, action: OutboxAction, at: datetime, report: RoundReport) -> None:
        outcome = self._outcome(action)
        if isinstance(outcome, Delivered):
            if action.kind in _RECORDED:
                try:
                    self._complete(action, at, outcome)
                    done = True
                except LeaseLost:
                    done = False
            else:
                done = self._store.mark_delivered(action.id, self.owner, at)
            (report.delivered if done else report.lost).append(action.id)
            return
        if isinstance(outcome, Permanent):
            done = self._store.mark_dead(action.id, self.owner, outcome.error, at)
            (report.dead if done else report.lost).append(action.id)
            return
        since = action.retried_at or action.created_at
        next_at = at + self._backoff.jittered(action.attempts + 1, self._rng)
        if at - since >= (self._backoff.give_up_after or timedelta.max):
            error = f"{outcome.error} (gave up after {action.attempts + 1} attempts)"
            done = self._store.mark_dead(action.id, self.owner, error, at)
            (report.dead if done else report.lost).append(action.id)
        else:
            done = self._store.mark_failed(action.id, self.owner, outcome.error, next_at)
            (report.retried if done else report.lost).append(action.id)


def no_master_key() -> None:
    return None


def s3_client(settings: Settings) -> Callable[[], Any]:
    """The S3 client the settings configure, opened at first use (so a dispatcher with
    no object action needs no s3 extra)."""
    opened: list[Any] = []

    def client() -> Any:
        if not opened:
            from hashguard.scan.objects import ObjectStore  # noqa: PLC0415 - the s3 extra

            opened.append(ObjectStore(endpoint_url=settings.s3_endpoint_url).client)
        return opened[0]

    return client


def object_deliverers(
    settings: Settings, store: Store, endpoints: Mapping[str, WebhookEndpoint]
) -> dict[ActionKind, Deliverer]:
    """Quarantine in object storage and its restore, as the settings configure them. A
    quarantine whose content was decided a false positive before the move moves nothing."""
    client = s3_client(settings)

    def cleared(sha256: str) -> bool:
        case = store.cases.find(sha256)
        return case is not None and case.state is CaseState.FALSE_POSITIVE

    return {
        ActionKind.OBJECT_QUARANTINE: ObjectQuarantineDeliverer(
            store.actions,
            client,
            bucket=settings.quarantine_bucket,
            prefix=settings.quarantine_prefix,
            original=OriginalFate(settings.quarantine_original),
            legal_hold=settings.quarantine_legal_hold,
            endpoints=endpoints,
            cleared=cleared,
        ),
        ActionKind.OBJECT_RESTORE: ObjectRestoreDeliverer(store.actions, client),
    }


def dispatcher_from_settings(
    settings: Settings,
    store: Store,
    registry: Registry,
    *,
    key: KeyLoader = no_master_key,
    owner: str | None = None,
) -> tuple[Dispatcher, WebhookDeliverer]:
    """A dispatcher for webhooks, quarantine and feedback to the exchanges as
    ``settings`` configure them, and its webhook deliverer (close it when done).
    Feedback builds each exchange's adapter from ``registry`` and opens its sealed
    credentials with the master key ``key`` loads (when one is needed)."""
    endpoints = {e.name: e for e in endpoints_of(settings)}
    webhooks = WebhookDeliverer(endpoints, timeout=settings.webhook_timeout_seconds)
    deliverers: dict[ActionKind, Deliverer] = {
        ActionKind.WEBHOOK: webhooks,
        ActionKind.QUARANTINE: QuarantineDeliverer(
            store.actions, settings.resolved_quarantine_dir, endpoints
        ),
        ActionKind.FEEDBACK: FeedbackDeliverer(store, registry, key, actor=ACTOR),
        **object_deliverers(settings, store, endpoints),
    }
    backoff = Backoff(
        first=timedelta(seconds=settings.actions_backoff_base_seconds),
        longest=timedelta(seconds=settings.actions_backoff_max_seconds),
        give_up_after=timedelta(hours=settings.actions_retry_hours),
    )
    dispatcher = Dispatcher(
        store.actions,
        deliverers,
        backoff=backoff,
        lease=timedelta(seconds=settings.actions_lease_seconds),
        owner=owner,
    )
    return dispatcher, webhooks
