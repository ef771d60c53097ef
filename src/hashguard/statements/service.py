"""Statements of reasons issued where decisions happen, and their settings.

``issue_in`` runs inside the transaction that records a decision (the pipeline's
automatic act) and ``decided`` right after a reviewer's final decision
(``review.decide``): a statement for the restriction (when the host switched
statements on), its ``statement.issued`` webhook and audit event, and, when the case
came from a notice, the notifier's answer (``notice.decided``) — all in one
transaction. The settings (``hashguard statements settings``) are held in the store,
the Transparency Database's token sealed with the master key.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import SecretStr

from hashguard.actions.outbox import webhook_actions
from hashguard.domain.actions import EventType, NewAction, WebhookEndpoint
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import Case, CaseSource, CaseState
from hashguard.domain.statements import (
    EU_EEA,
    NotifierOf,
    Statement,
    StatementConfig,
    StatementKind,
    StatementOfReasons,
)
from hashguard.keys import MasterKey
from hashguard.plugins import AdapterKind, PluginError, Registry
from hashguard.statements.reasons import build, notice_sources, notifier_text, uploader_text
from hashguard.statements.sink import InvalidStatement, StatementSink
from hashguard.store import Store

log = logging.getLogger("hashguard.statements")

#: the stored settings' names: what statements say, and the Database sink
STATEMENTS = "statements"
SINK = "tdb"
TOKEN = "token"  # noqa: S105 (a name)
STATEMENT_FIELDS = ("legal_ground", "redress", "reference_url")


class StatementWrites(Protocol):
    """What issuing needs of the transaction it joins (``store.unit.Writes``)."""

    def add_statement(
        self, reasons: StatementOfReasons, text: str, *, at: datetime
    ) -> tuple[Statement, bool]: ...

    def statement_settings(self, name: str) -> tuple[dict[str, Any], dict[str, str]]: ...

    def enqueue(self, action: NewAction, *, at: datetime | None = None) -> int: ...

    def audit(
        self, actor: str, action: AuditAction, subject: str | None, details: Mapping[str, Any]
    ) -> None: ...


# -- settings -----------------------------------------------------------------------------


def config_of(stored: Mapping[str, Any]) -> StatementConfig:
    """The statements' configuration from its stored settings (defaults when unset)."""
    given = {k: v for k, v in stored.items() if k in StatementConfig.__dataclass_fields__}
    if "territorial_scope" in given:
        given["territorial_scope"] = tuple(given["territorial_scope"])
    return StatementConfig(**given)


def _check_statements(merged: Mapping[str, Any]) -> None:
    scope = merged.get("territorial_scope")
    if scope is not None and (unknown := set(scope) - set(EU_EEA)):
        raise ValueError(f"territorial_scope: {sorted(unknown)} are not EU/EEA country codes")
    if len(merged.get("legal_ground") or "") > 500:
        raise ValueError("legal_ground: at most 500 characters")
    url = merged.get("reference_url")
    if url and (len(url) > 500 or not re.fullmatch(r"https?://\S+", url)):
        raise ValueError("reference_url: an http(s) URL of at most 500 characters")


def secret_context(key: str) -> str:
    return f"statements:{SINK}:{key}"


def change_settings(
    store: Store,
    master_key: Callable[[], MasterKey],
    *,
    statements: Mapping[str, Any],
    sink_settings: Mapping[str, Any],
    token: str | None,
    actor: str,
    at: datetime,
    tdb: bool | None = None,
) -> list[str]:
    """Merge the given values (``None``: unchanged; an empty string clears) into the
    stored settings; the token sealed with the master key. Returns the names changed;
    ``ValueError`` names a value that cannot be used (never a secret)."""
    changed: list[str] = []
    stored, _ = store.statements.settings(STATEMENTS)
    merged = dict(stored)
    for key, value in statements.items():
        if value is not None:
            merged[key] = value if value != "" else None
            changed.append(key)
    _check_statements(merged)
    if statements.get("issue") and not stored.get("issue"):
        merged["issue_since"] = at.astimezone(UTC).isoformat()
    merged.setdefault("prefix", f"hg{secrets.token_hex(3)}")
    if changed:
        merged = {k: v for k, v in merged.items() if v is not None}
        store.statements.put_settings(STATEMENTS, merged, {}, changed=changed, actor=actor, at=at)
    sink_changed: list[str] = []
    stored_sink, sealed = store.statements.settings(SINK)
    merged_sink = dict(stored_sink.get("sink", {}))
    for key, value in sink_settings.items():
        if value is not None:
            merged_sink[key] = value
            sink_changed.append(key)
    enabled = bool(stored_sink.get("enabled", False))
    if tdb is not None:
        enabled = tdb
        sink_changed.append("enabled")
    new_sealed = dict(sealed)
    if token is not None:
        new_sealed[TOKEN] = base64.b64encode(
            master_key().seal(token.encode(), context=secret_context(TOKEN))
        ).decode()
        sink_changed.append(TOKEN)
    if sink_changed:
        store.statements.put_settings(
            SINK,
            {"enabled": enabled, "sink": merged_sink},
            new_sealed,
            changed=sink_changed,
            actor=actor,
            at=at,
        )
    return changed + sink_changed


def sink_configured(store: Store) -> bool:
    """Whether the Database sink is switched on with its token stored (read without
    the master key: a host that files nothing never needs one)."""
    stored, sealed = store.statements.settings(SINK)
    return bool(stored.get("enabled")) and TOKEN in sealed


def open_sink(
    store: Store, registry: Registry, master_key: Callable[[], MasterKey], *, name: str = SINK
) -> StatementSink:
    """The configured sink with its token opened; ``PluginError`` says what is missing."""
    adapter = registry.get(name, AdapterKind.STATEMENT_SINK)
    stored, sealed = store.statements.settings(SINK)
    if not stored.get("enabled"):
        raise PluginError(f"{name} is off (`hashguard statements settings --tdb`)")
    wanted = set(adapter.secrets) | set(adapter.optional_secrets)
    mine = {k: v for k, v in sealed.items() if k in wanted}
    key = master_key() if mine else None
    opened = {
        k: SecretStr(key.open(base64.b64decode(v), context=secret_context(k)).decode())
        for k, v in mine.items()
        if key is not None
    }
    try:
        configured = adapter.configure(stored.get("sink", {}), opened)
    except InvalidStatement as exc:
        raise PluginError(f"{name}: {exc}") from None
    if not isinstance(configured, StatementSink):
        raise PluginError(f"{name} is not a statement sink")
    return configured


# -- issuing ------------------------------------------------------------------------------


def notifier_from_store(store: object) -> NotifierOf:
    """Who sent a case's notice, from the notices' store when this installation has
    one (``store.notices.get(id).notifier.kind``); None otherwise or when unknown."""

    def kind(case: Case) -> str | None:
        notices: Any = getattr(store, "notices", None)
        if notices is None:
            return None
        for source in notice_sources(case):
            try:
                # a CSAM notice may come without a notifier (Art. 16(2)): no kind then
                found = getattr(notices.get(int(source.ref)).notifier, "kind", None)
            except Exception:  # noqa: BLE001 - an unknown notice is a notice all the same
                log.warning("case %s: notice %s could not be read", case.id, source.ref)
                continue
            return None if found is None else str(found)
        return None

    return kind


def statement_data(case: Case, statement: Statement) -> dict[str, Any]:
    """``statement.issued``'s data: the statement, for the platform to show the
    uploader. Never the content; of hashes only the content's SHA-256."""
    sor = statement.reasons
    return {
        "statement": statement.id,
        "puid": sor.puid,
        "case": case.id,
        "content_sha256": case.content_key,
        "content_id": case.content.content_id,
        "kind": str(sor.kind),
        "decision_visibility": str(sor.visibility),
        "automated_detection": sor.automated_detection,
        "automated_decision": str(sor.automated_decision),
        "text": statement.text,
    }


def _answer_notifiers(
    writes: StatementWrites,
    case: Case,
    notices: Sequence[CaseSource],
    reasons: StatementOfReasons | None,
    *,
    at: datetime,
    actor: str,
    endpoints: Sequence[WebhookEndpoint],
) -> None:
    text = notifier_text(case.id, reasons, at=at)
    outcome = "not_restricted" if reasons is None else "restricted"
    for notice in notices:
        data = {
            "notice": notice.ref,
            "case": case.id,
            "outcome": outcome,
            "statement_puid": reasons.puid if reasons else None,
            "automated_decision": str(reasons.automated_decision) if reasons else None,
            "text": text,
        }
        actions = webhook_actions(
            EventType.NOTICE_DECIDED,
            data,
            endpoints,
            # one answer per decision: a notice naming two items gets both outcomes
            key=f"notice:{notice.ref}:decided:case:{case.id}:{outcome}",
            subject=f"case:{case.id}",
            at=at,
        )
        for action in actions:
            writes.enqueue(action, at=at)
        writes.audit(
            actor,
            AuditAction.NOTICE_DECIDED,
            f"notice:{notice.ref}",
            {"case": case.id, "outcome": outcome, "webhooks": len(actions)},
        )


def issue_in(
    writes: StatementWrites,
    case: Case,
    *,
    kind: StatementKind,
    at: datetime,
    actor: str,
    endpoints: Sequence[WebhookEndpoint],
    notifier: NotifierOf,
    source: CaseSource | None = None,
    key: str = "",
) -> Statement | None:
    """The statement of ``case``'s restriction (``kind``; for an automated act the
    sighting's ``source`` and action ``key``) with its webhook and audit event, when
    statements are on; and the answer to the notices behind it. Issuing the same
    decision again adds nothing. The statement, or None when statements are off."""
    stored, _ = writes.statement_settings(STATEMENTS)
    config = config_of(stored)
    noticed = (
        ((source,) if source is not None and str(source.kind) == "notice" else ())
        if kind is StatementKind.AUTOMATED
        else notice_sources(case)
    )
    who = notifier(case) if noticed else None
    statement: Statement | None = None
    if config.issue:
        reasons = build(case, config, kind=kind, at=at, notifier=who, source=source, key=key)
        statement, new = writes.add_statement(reasons, uploader_text(reasons), at=at)
        if new:
            for action in webhook_actions(
                EventType.STATEMENT_ISSUED,
                statement_data(case, statement),
                endpoints,
                key=f"statement:{reasons.puid}",
                subject=f"case:{case.id}",
                at=at,
            ):
                writes.enqueue(action, at=at)
            writes.audit(
                actor,
                AuditAction.STATEMENT_ISSUED,
                f"case:{case.id}",
                {
                    "statement": statement.id,
                    "puid": reasons.puid,
                    "kind": str(kind),
                    "source_type": str(reasons.source_type),
                    "automated_decision": str(reasons.automated_decision),
                },
            )
    if noticed:
        reasons_sent = statement.reasons if statement is not None else None
        if reasons_sent is None:
            # statements off: the notifier still learns the outcome
            reasons_sent = build(case, config, kind=kind, at=at, notifier=who, source=source)
        _answer_notifiers(
            writes, case, noticed, reasons_sent, at=at, actor=actor, endpoints=endpoints
        )
    return statement


def decided(
    store: Store,
    case: Case,
    *,
    actor: str,
    endpoints: Sequence[WebhookEndpoint],
    notifier: NotifierOf | None = None,
) -> Statement | None:
    """After a reviewer's final decision on ``case`` (committed): for ``confirmed``, the
    statement of the removal (unless an automated act already restricted the content
    and has its statement) and the notifiers' answers; for ``false_positive``, the
    notifiers' answers alone (nothing was restricted). One transaction."""
    who = notifier or notifier_from_store(store)
    at = case.updated_at
    if case.state is CaseState.FALSE_POSITIVE:
        notices = notice_sources(case)
        if notices:
            with store.transaction() as writes:
                _answer_notifiers(
                    writes, case, notices, None, at=at, actor=actor, endpoints=endpoints
                )
        return None
    if case.state is not CaseState.CONFIRMED:
        return None
    if any(s.reasons.kind is StatementKind.AUTOMATED for s in store.statements.for_case(case.id)):
        return None
    with store.transaction() as writes:
        return issue_in(
            writes,
            case,
            kind=StatementKind.CONFIRMED,
            at=at,
            actor=actor,
            endpoints=endpoints,
            notifier=who,
        )


def issue_missing(
    store: Store,
    *,
    actor: str,
    endpoints: Sequence[WebhookEndpoint],
    notifier: NotifierOf | None = None,
    limit: int = 100,
) -> int:
    """Issue the statements of confirmed cases that have none, decided since statements
    were switched on: a process killed between a reviewer's decision and its statement's
    transaction leaves one so (the statements job runs this). How many were issued."""
    stored, _ = store.statements.settings(STATEMENTS)
    if not stored.get("issue") or not stored.get("issue_since"):
        return 0
    since = datetime.fromisoformat(stored["issue_since"])
    done = 0
    for case_id in store.statements.confirmed_without(since, limit=limit):
        case = store.cases.get(case_id)
        if decided(store, case, actor=actor, endpoints=endpoints, notifier=notifier) is not None:
            done += 1
    return done
