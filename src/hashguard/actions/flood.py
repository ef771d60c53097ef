"""What the flood guard sends when it pauses a list entry: ``bank.entry_flooded`` to each
webhook endpoint that wants it, for the leads who release or tombstone the entry."""

from __future__ import annotations

from collections.abc import Sequence

from hashguard.actions.outbox import webhook_actions
from hashguard.domain.actions import EventType, NewAction, WebhookEndpoint
from hashguard.domain.flood import FloodFlag
from hashguard.store.flood import Alerts, flag_details


def flood_alerts(endpoints: Sequence[WebhookEndpoint]) -> Alerts:
    """The alerts of a newly raised flag (pass to ``store.flood.observe``): the entry,
    its bank and the counts, never the entry's hash or the matched content."""

    def plan(flag: FloodFlag) -> list[NewAction]:
        return webhook_actions(
            EventType.BANK_ENTRY_FLOODED,
            {**flag_details(flag), "flagged_at": flag.flagged_at.isoformat()},
            endpoints,
            key=f"flood:{flag.id}",
            subject=f"bank:{flag.bank}",
            at=flag.flagged_at,
        )

    return plan
