"""Exchange changes, each committed with its audit entries in one transaction
(``Store.atomic``): add (with its bank), enable or disable, feedback on or off, manual
feedback queued, remove."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hashguard.actions.feedback import FeedbackRequest, feedback_action, plan_feedback
from hashguard.audit import record
from hashguard.banks.exchanges.sync import seal_credentials
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankKind
from hashguard.domain.exchanges import Exchange, FeedbackVerdict
from hashguard.domain.signals import Algorithm
from hashguard.keys import MasterKey
from hashguard.services.banks import create_bank
from hashguard.store import Store


class BankInUse(ValueError):
    """The bank already holds entries or another exchange's list."""

    def __init__(self, bank: str) -> None:
        super().__init__(f"bank {bank!r} already has entries or an exchange")
        self.bank = bank


def subject(name: str) -> str:
    """An exchange as the audit log names it."""
    return f"exchange:{name}"


def add_exchange(
    store: Store,
    actor: str,
    name: str,
    *,
    adapter: str,
    bank: str,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str],
    key: MasterKey | None,
    share_bank: bool = False,
    feedback: bool = False,
    feedback_reason: str | None = None,
) -> Exchange:
    """Configure an exchange (``exchange.added``), its credentials sealed with ``key``.
    The bank is created if missing (``bank.created``); an existing one must be empty and
    no other exchange's unless ``share_bank`` (``BankInUse``), so that a list of adult
    NCII is never mixed into a CSAM bank by accident. ``feedback``: final review
    decisions are told back to it (off by default). Raises ``InvalidBankName``,
    ``ExchangeExists``."""
    if secrets and key is None:
        raise ValueError("sealing credentials needs the master key")
    sealed = seal_credentials(key, name, secrets) if key and secrets else None
    with store.atomic() as unit:  # the bank made for it goes if the exchange is refused
        if unit.banks.find(bank) is None:
            create_bank(
                unit,
                actor,
                bank,
                kind=BankKind.KNOWN,
                source=f"exchange {name} ({adapter})",
                exchange=name,
            )
        elif not share_bank and (
            unit.banks.stats(bank).total_active or unit.exchanges.users_of_bank(bank)
        ):
            raise BankInUse(bank)
        exchange = unit.exchanges.create(
            name,
            adapter=adapter,
            bank=bank,
            settings=settings,
            credential_names=sorted(secrets),
            credentials=sealed,
            feedback=feedback,
            feedback_reason=_reason(feedback_reason),
        )
        record(
            unit,
            actor,
            AuditAction.EXCHANGE_ADDED,
            subject(name),
            adapter=adapter,
            bank=bank,
            settings=dict(settings),
            credential_names=sorted(secrets),
            feedback=feedback,
            feedback_reason=exchange.feedback_reason,
        )
    return exchange


def set_exchange_enabled(store: Store, actor: str, name: str, *, enabled: bool) -> None:
    """Switch syncing on or off (``exchange.enabled`` / ``exchange.disabled``). Raises
    ``UnknownExchange``."""
    action = AuditAction.EXCHANGE_ENABLED if enabled else AuditAction.EXCHANGE_DISABLED
    with store.atomic() as unit:
        unit.exchanges.set_enabled(name, enabled)
        record(unit, actor, action, subject(name))


def _reason(text: str | None) -> str | None:
    return (text or "").strip()[:200] or None


def set_exchange_feedback(
    store: Store, actor: str, name: str, *, on: bool, reason: str | None = None
) -> Exchange:
    """Switch automatic feedback on or off (``exchange.feedback_on`` /
    ``exchange.feedback_off``): with it on, the decision that makes a case ``confirmed``
    or ``false_positive`` queues feedback on each of this exchange's entries the case
    matched. ``reason`` is what a false positive is sent with (for NCMEC, the name of
    one of its reasons); without it, the reviewer's. ``reason`` ``None`` keeps the one
    set, ``""`` clears it. Raises ``UnknownExchange``."""
    action = AuditAction.EXCHANGE_FEEDBACK_ON if on else AuditAction.EXCHANGE_FEEDBACK_OFF
    with store.atomic() as unit:
        kept = unit.exchanges.get(name).feedback_reason if reason is None else _reason(reason)
        unit.exchanges.set_feedback(name, on, kept)
        exchange = unit.exchanges.get(name)
        record(unit, actor, action, subject(name), reason=exchange.feedback_reason)
    return exchange


class NothingToSend(ValueError):
    """Manual feedback that names no entry of the exchange."""


def queue_feedback(
    store: Store,
    actor: str,
    name: str,
    *,
    verdict: FeedbackVerdict,
    reason: str | None = None,
    case_id: int | None = None,
    entry_id: str | None = None,
    algorithm: Algorithm | None = None,
) -> list[tuple[int, FeedbackRequest]]:
    """Feedback asked for by hand, through the same outbox as a decision's
    (``exchange.feedback_queued`` each): on every entry of exchange ``name`` that case
    ``case_id`` matched (of ``algorithm`` if given), whether its feedback is switched
    on or not; or on entry ``entry_id`` of ``algorithm``. Returns each outbox entry's
    id with its request: an id already there means the same feedback was queued
    before (it is not queued twice). Raises ``UnknownExchange``, ``UnknownCase``,
    ``NothingToSend``."""
    exchange = store.exchanges.get(name)
    if case_id is not None:
        case = store.cases.get(case_id)
        requests = [
            r
            for r in plan_feedback(case, [exchange], verdict, reason=reason, only=name, manual=True)
            if (algorithm is None or r.algorithm is algorithm)
            and (entry_id is None or r.entry_id == entry_id)
        ]
        if not requests:
            raise NothingToSend(f"case {case_id} matched no entry of {name}")
    else:
        if entry_id is None or algorithm is None:
            raise NothingToSend("name the entry (--entry-id and --algorithm) or a case")
        if store.exchanges.entry_value(exchange.bank, algorithm, entry_id) is None:
            raise NothingToSend(f"bank {exchange.bank} holds no live {algorithm} entry {entry_id}")
        given = (reason or "").strip() or None
        requests = [
            FeedbackRequest(
                exchange=name,
                bank=exchange.bank,
                algorithm=algorithm,
                verdict=verdict,
                entry_id=entry_id,
                reason=(given or exchange.feedback_reason)
                if verdict is FeedbackVerdict.FALSE_POSITIVE
                else None,
                manual=True,
            )
        ]
    with store.atomic() as unit:
        with unit.actions.transaction() as outbox:
            queued = [(outbox.enqueue(feedback_action(r)), r) for r in requests]
        for action_id, request in queued:
            record(
                unit,
                actor,
                AuditAction.EXCHANGE_FEEDBACK_QUEUED,
                subject(name),
                outbox_action=action_id,
                **request.audit_details(),
            )
    return queued


def remove_exchange(store: Store, actor: str, name: str) -> None:
    """Forget an exchange and its credentials; its bank keeps its entries
    (``exchange.removed``). Raises ``UnknownExchange``."""
    with store.atomic() as unit:
        unit.exchanges.delete(name)
        record(unit, actor, AuditAction.EXCHANGE_REMOVED, subject(name))
