"""Exchange persistence: configuration, sealed credentials, checkpoint, progress, lease,
the feedback switch, and the look-ups feedback needs (a matched entry's own value)."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, Row, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hashguard.domain.exchanges import Exchange, ExchangeState
from hashguard.domain.signals import Algorithm
from hashguard.store._util import aware, now
from hashguard.store.banks import UnknownBank
from hashguard.store.schema import bank_entries, banks, exchanges

#: a sync's error message is kept this long at most
ERROR_LIMIT = 2000


class UnknownExchange(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no exchange named {name!r}")
        self.name = name


class ExchangeExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"an exchange named {name!r} already exists")
        self.name = name


def _exchange(row: Row[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any]) -> Exchange:
    created = aware(row.created_at)
    assert created is not None
    return Exchange(
        id=row.id,
        name=row.name,
        adapter=row.adapter,
        bank=row.bank,
        settings=dict(row.settings),
        enabled=row.enabled,
        created_at=created,
        credential_names=tuple(row.credential_names),
        feedback=bool(row.feedback),
        feedback_reason=row.feedback_reason,
    )


_COLUMNS = (
    exchanges.c.id,
    exchanges.c.name,
    exchanges.c.adapter,
    banks.c.name.label("bank"),
    exchanges.c.settings,
    exchanges.c.enabled,
    exchanges.c.created_at,
    exchanges.c.credential_names,
    exchanges.c.feedback,
    exchanges.c.feedback_reason,
)


class ExchangeStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        name: str,
        *,
        adapter: str,
        bank: str,
        settings: Mapping[str, Any],
        credential_names: Sequence[str],
        credentials: bytes | None,
        feedback: bool = False,
        feedback_reason: str | None = None,
    ) -> Exchange:
        """``credentials`` is already sealed (``keys.MasterKey``); the store never sees
        them in clear."""
        with self._engine.begin() as conn:
            bank_id = conn.execute(select(banks.c.id).where(banks.c.name == bank)).scalar()
            if bank_id is None:
                raise UnknownBank(bank)
            try:
                conn.execute(
                    insert(exchanges).values(
                        name=name,
                        adapter=adapter,
                        bank_id=bank_id,
                        settings=dict(settings),
                        credential_names=list(credential_names),
                        credentials=credentials,
                        enabled=True,
                        feedback=feedback,
                        feedback_reason=feedback_reason,
                        created_at=now(),
                        upserted=0,
                        removed=0,
                        skipped=0,
                    )
                )
            except IntegrityError as exc:
                raise ExchangeExists(name) from exc
        return self.get(name)

    def list(self) -> list[Exchange]:
        query = select(*_COLUMNS).join(banks).order_by(exchanges.c.name)
        with self._engine.connect() as conn:
            return [_exchange(row) for row in conn.execute(query)]

    def get(self, name: str) -> Exchange:
        query = select(*_COLUMNS).join(banks).where(exchanges.c.name == name)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise UnknownExchange(name)
        return _exchange(row)

    def users_of_bank(self, bank: str) -> builtins.list[str]:
        query = select(exchanges.c.name).join(banks).where(banks.c.name == bank)
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def sealed_credentials(self, name: str) -> bytes | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(exchanges.c.credentials).where(exchanges.c.name == name)
            ).first()
        if row is None:
            raise UnknownExchange(name)
        return None if row.credentials is None else bytes(row.credentials)

    def state(self, name: str) -> ExchangeState:
        with self._engine.connect() as conn:
            row = conn.execute(select(exchanges).where(exchanges.c.name == name)).first()
        if row is None:
            raise UnknownExchange(name)
        return ExchangeState(
            checkpoint=row.checkpoint,
            last_started_at=aware(row.last_started_at),
            last_success_at=aware(row.last_success_at),
            last_error=row.last_error,
            upserted=row.upserted,
            removed=row.removed,
            skipped=row.skipped,
        )

    def _update(self, name: str, **values: Any) -> None:
        with self._engine.begin() as conn:
            changed = conn.execute(
                update(exchanges).where(exchanges.c.name == name).values(**values)
            ).rowcount
        if not changed:
            raise UnknownExchange(name)

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._update(name, enabled=enabled)

    def set_feedback(self, name: str, on: bool, reason: str | None = None) -> None:
        """Switch feedback on or off; ``reason`` is what a false positive is sent with."""
        self._update(name, feedback=on, feedback_reason=reason)

    # -- what feedback needs: a matched entry's own value, read at delivery, never shown

    def entry_value(
        self, bank: str, algorithm: Algorithm, entry_id: str
    ) -> tuple[str, dict[str, Any]] | None:
        """The value and metadata of the live entry ``entry_id`` (of ``algorithm``) in
        ``bank``; ``None`` when the list no longer holds it. For the exchange's own
        use only (feedback names the entry it is about): never shown or logged."""
        query = (
            select(bank_entries.c.value, bank_entries.c.meta)
            .join(banks, banks.c.id == bank_entries.c.bank_id)
            .where(
                banks.c.name == bank,
                bank_entries.c.algorithm == str(algorithm),
                bank_entries.c.entry_id == entry_id,
                bank_entries.c.removed_at.is_(None),
            )
            .order_by(bank_entries.c.id)
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.value, dict(row.meta or {}))

    def holds(self, bank: str, algorithm: Algorithm, value: str) -> bool:
        """Whether ``bank`` holds ``value`` live (an exact match's entry is the content's
        own hash)."""
        query = (
            select(bank_entries.c.id)
            .join(banks, banks.c.id == bank_entries.c.bank_id)
            .where(
                banks.c.name == bank,
                bank_entries.c.algorithm == str(algorithm),
                bank_entries.c.value == value,
                bank_entries.c.removed_at.is_(None),
            )
        )
        with self._engine.connect() as conn:
            return conn.execute(query).first() is not None

    def live_values(
        self, bank: str, algorithm: Algorithm, batch: int = 50_000
    ) -> Iterator[builtins.list[str]]:
        """Every live value of ``algorithm`` in ``bank``, in batches: for finding the
        PDQ entry a near match was made with when the list names its entries by hash
        alone (StopNCII)."""
        query = (
            select(bank_entries.c.value)
            .join(banks, banks.c.id == bank_entries.c.bank_id)
            .where(
                banks.c.name == bank,
                bank_entries.c.algorithm == str(algorithm),
                bank_entries.c.removed_at.is_(None),
            )
            .order_by(bank_entries.c.id)
            .execution_options(yield_per=batch)
        )
        with self._engine.connect() as conn:
            for rows in conn.execute(query).partitions():
                yield [row.value for row in rows]

    def delete(self, name: str) -> None:
        with self._engine.begin() as conn:
            if not conn.execute(delete(exchanges).where(exchanges.c.name == name)).rowcount:
                raise UnknownExchange(name)

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take the exchange's sync lease unless another owner holds an unexpired one."""
        stamp = now()
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(exchanges)
                .where(
                    exchanges.c.name == name,
                    or_(
                        exchanges.c.lease_until.is_(None),
                        exchanges.c.lease_until < stamp,
                        exchanges.c.lease_owner == owner,
                    ),
                )
                .values(lease_owner=owner, lease_until=stamp + timedelta(seconds=seconds))
            ).rowcount
        return bool(taken)

    def lease_owner(self, name: str) -> str | None:
        """Who holds the sync lease (expired or not), if anyone."""
        with self._engine.connect() as conn:
            return conn.execute(
                select(exchanges.c.lease_owner).where(exchanges.c.name == name)
            ).scalar()

    def release_lease(self, name: str, owner: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(exchanges)
                .where(exchanges.c.name == name, exchanges.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def record_started(self, name: str) -> None:
        self._update(name, last_started_at=now())

    def record_batch(
        self, name: str, *, checkpoint: str | None, upserted: int, removed: int, skipped: int
    ) -> None:
        """Called after a batch's entries are stored: its checkpoint becomes the resume
        point (``None`` keeps the previous one)."""
        values: dict[str, Any] = {
            "upserted": exchanges.c.upserted + upserted,
            "removed": exchanges.c.removed + removed,
            "skipped": exchanges.c.skipped + skipped,
        }
        if checkpoint is not None:
            values["checkpoint"] = checkpoint
        self._update(name, **values)

    def record_finished(self, name: str, *, error: str | None) -> None:
        if error is None:
            self._update(name, last_success_at=now(), last_error=None)
        else:
            self._update(name, last_error=error[:ERROR_LIMIT])
