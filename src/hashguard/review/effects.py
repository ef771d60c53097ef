"""What a review decision sets off: the case's webhooks, and files put back from
quarantine when their match was a false positive."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hashguard.actions.outbox import derived_key, webhook_actions
from hashguard.actions.quarantine import RestoreRefused, restore
from hashguard.domain.actions import EventType, NewAction, WebhookEndpoint
from hashguard.domain.cases import Case, CaseState, SourceKind
from hashguard.store import Store

log = logging.getLogger("hashguard.review")


def case_webhooks(
    case: Case, state: CaseState, event: EventType, endpoints: Sequence[WebhookEndpoint]
) -> list[NewAction]:
    """``event`` about ``case`` (now in ``state``) for every endpoint that wants it: the
    case id, its state and decision, never the content. Idempotent per case and event;
    they go into the outbox in the same transaction as the case's change."""
    data = {
        "case": case.id,
        "state": str(state),
        "content_sha256": case.content_key,
        "decision": {"action": str(case.decision.action), "rule": case.decision.rule},
    }
    return webhook_actions(
        event, data, endpoints, key=f"case:{case.id}:{event}", subject=f"case:{case.id}"
    )


def restore_quarantined(store: Store, case: Case, *, actor: str) -> list[str]:
    """Put back every file of ``case`` that a scan quarantined; one line per file said
    what happened (a file now at the original path is never overwritten)."""
    done = []
    for source in case.sources:
        if source.kind is not SourceKind.SCAN or source.path is None:
            continue
        key = derived_key(f"scan:{source.ref}:{source.path}", "quarantine")
        action = store.actions.find_by_key(key)
        if action is None:
            continue
        try:
            restored = restore(store.actions, action.id, actor=actor)
        except RestoreRefused as exc:
            done.append(f"{source.path}: not restored: {exc}")
        else:
            done.append(f"{restored.original_path}: restored from quarantine")
    return done
