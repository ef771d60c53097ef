"""Exchange changes and their audit entries: add, enable or disable, remove."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hashguard.audit import record
from hashguard.banks.exchanges.sync import seal_credentials
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankKind
from hashguard.domain.exchanges import Exchange
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
) -> Exchange:
    """Configure an exchange (``exchange.added``), its credentials sealed with ``key``.
    The bank is created if missing (``bank.created``); an existing one must be empty and
    no other exchange's unless ``share_bank`` (``BankInUse``), so that a list of adult
    NCII is never mixed into a CSAM bank by accident. Raises ``InvalidBankName``,
    ``ExchangeExists``."""
    if secrets and key is None:
        raise ValueError("sealing credentials needs the master key")
    if store.banks.find(bank) is None:
        create_bank(
            store,
            actor,
            bank,
            kind=BankKind.KNOWN,
            source=f"exchange {name} ({adapter})",
            exchange=name,
        )
    elif not share_bank and (
        store.banks.stats(bank).total_active or store.exchanges.users_of_bank(bank)
    ):
        raise BankInUse(bank)
    exchange = store.exchanges.create(
        name,
        adapter=adapter,
        bank=bank,
        settings=settings,
        credential_names=sorted(secrets),
        credentials=seal_credentials(key, name, secrets) if key and secrets else None,
    )
    record(
        store,
        actor,
        AuditAction.EXCHANGE_ADDED,
        subject(name),
        adapter=adapter,
        bank=bank,
        settings=dict(settings),
        credential_names=sorted(secrets),
    )
    return exchange


def set_exchange_enabled(store: Store, actor: str, name: str, *, enabled: bool) -> None:
    """Switch syncing on or off (``exchange.enabled`` / ``exchange.disabled``). Raises
    ``UnknownExchange``."""
    store.exchanges.set_enabled(name, enabled)
    action = AuditAction.EXCHANGE_ENABLED if enabled else AuditAction.EXCHANGE_DISABLED
    record(store, actor, action, subject(name))


def remove_exchange(store: Store, actor: str, name: str) -> None:
    """Forget an exchange and its credentials; its bank keeps its entries
    (``exchange.removed``). Raises ``UnknownExchange``."""
    store.exchanges.delete(name)
    record(store, actor, AuditAction.EXCHANGE_REMOVED, subject(name))
