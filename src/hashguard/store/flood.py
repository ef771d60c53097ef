"""Flood guard persistence: per-bank limits, per-entry distinct-content counters, flags.

``observe(conn, matches, sha256, now=...)`` runs inside the transaction that records a
matched item (the pipeline's), so a count, a flag, its alert and its audit event commit
with the item's decision or not at all. Each observation first updates the entry's row
in ``flood_entries``: on PostgreSQL that row lock orders concurrent observers of one
entry (entries are taken in ``entry_ref`` order, so two observers never deadlock); on
SQLite the first write takes the database's write lock. So an entry is flagged once,
however many servers match it at the same moment.

Nothing here stores or returns a list entry's hash: an entry is named by its store
reference and the list's own entry id. The matched items' SHA-256 are kept only within
the window (pruned as the entry is observed) and dropped when a lead releases it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hashguard.domain.actions import NewAction
from hashguard.domain.audit import AuditAction
from hashguard.domain.flood import (
    NOTHING_PAUSED,
    FloodCounts,
    FloodFlag,
    FloodLimit,
    FloodObservation,
    FloodState,
)
from hashguard.domain.matches import Match
from hashguard.policy.flood import counted, floods, window_start
from hashguard.store._util import aware, now, stamp, utc
from hashguard.store.actions import enqueue
from hashguard.store.audit import append_event
from hashguard.store.banks import UnknownBank, _next_seq
from hashguard.store.schema import (
    bank_entries,
    banks,
    flood_entries,
    flood_flags,
    flood_limits,
    flood_seen,
)

#: Who flags an entry: the guard itself.
GUARD_ACTOR = "system:flood_guard"
#: What ``removed_version`` says of an entry a lead tombstoned through the guard.
TOMBSTONE_VERSION = "flood-guard"

#: What a newly raised flag leads to besides its audit event (webhooks for leads).
Alerts = Callable[[FloodFlag], Sequence[NewAction]]


class UnknownFlag(LookupError):
    def __init__(self, flag_id: int) -> None:
        super().__init__(f"there is no flood flag #{flag_id}")
        self.flag_id = flag_id


class FlagNotActive(ValueError):
    """The flag no longer pauses its entry (released, or its entry is gone)."""

    def __init__(self, flag_id: int, why: str) -> None:
        super().__init__(f"flood flag #{flag_id} {why}")
        self.flag_id = flag_id


def _flag(row: Row[Any]) -> FloodFlag:
    return FloodFlag(
        id=row.id,
        entry_ref=row.entry_ref,
        bank=row.bank,
        entry_id=row.entry_id,
        category=row.category,
        state=FloodState(row.state),
        flagged_at=stamp(row.flagged_at),
        distinct_items=row.distinct_items,
        limit=FloodLimit(max_items=row.max_items, window=timedelta(seconds=row.window_seconds)),
        paused_matches=row.paused_matches,
        last_paused_at=aware(row.last_paused_at),
        resolved_at=aware(row.resolved_at),
        resolved_by=row.resolved_by,
    )


def _limit_of(row: Any) -> FloodLimit:
    if row is None:
        return FloodLimit()
    return FloodLimit(max_items=row.max_items, window=timedelta(seconds=row.window_seconds))


def _bank_limit(conn: Connection, bank_id: int) -> FloodLimit:
    return _limit_of(
        conn.execute(
            select(flood_limits.c.max_items, flood_limits.c.window_seconds).where(
                flood_limits.c.bank_id == bank_id
            )
        ).first()
    )


def _insert_ignore(conn: Connection, table: Any, **values: Any) -> None:
    maker = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(maker(table).values(**values).on_conflict_do_nothing())


def _touch(conn: Connection, entry_ref: int, at: datetime) -> Row[Any] | None:
    """Lock the entry's flood row (created on its first match); its bank and flag.
    ``None``: the entry no longer exists."""
    bump = (
        update(flood_entries)
        .where(flood_entries.c.entry_ref == entry_ref)
        .values(observed_at=at)
        .returning(flood_entries.c.bank_id, flood_entries.c.flag_id)
    )
    row = conn.execute(bump).first()
    if row is not None:
        return row
    bank_id = conn.execute(
        select(bank_entries.c.bank_id).where(bank_entries.c.id == entry_ref)
    ).scalar()
    if bank_id is None:
        return None
    _insert_ignore(conn, flood_entries, entry_ref=entry_ref, bank_id=bank_id, observed_at=at)
    return conn.execute(bump).first()


def _see(conn: Connection, entry_ref: int, sha256: str, at: datetime, limit: FloodLimit) -> int:
    """Record the item for the entry, forget items past the window; the distinct count."""
    values = {"entry_ref": entry_ref, "sha256": sha256, "seen_at": at}
    if conn.dialect.name == "postgresql":
        pg = pg_insert(flood_seen).values(**values)
        conn.execute(
            pg.on_conflict_do_update(index_elements=["entry_ref", "sha256"], set_={"seen_at": at})
        )
    else:
        lite = sqlite_insert(flood_seen).values(**values)
        conn.execute(
            lite.on_conflict_do_update(index_elements=["entry_ref", "sha256"], set_={"seen_at": at})
        )
    conn.execute(
        delete(flood_seen).where(
            flood_seen.c.entry_ref == entry_ref,
            flood_seen.c.seen_at < utc(window_start(at, limit)),
        )
    )
    return int(
        conn.execute(
            select(func.count()).select_from(flood_seen).where(flood_seen.c.entry_ref == entry_ref)
        ).scalar_one()
    )


def _raise_flag(
    conn: Connection, match: Match, bank_id: int, distinct: int, limit: FloodLimit, at: datetime
) -> FloodFlag:
    assert match.entry_ref is not None
    assert limit.max_items is not None
    flag_id = conn.execute(
        insert(flood_flags)
        .values(
            entry_ref=match.entry_ref,
            bank_id=bank_id,
            bank=match.bank,
            entry_id=match.entry_id,
            category=match.category,
            state=str(FloodState.FLAGGED),
            flagged_at=at,
            distinct_items=distinct,
            max_items=limit.max_items,
            window_seconds=int(limit.window.total_seconds()),
            paused_matches=1,  # the item that tipped it over is paused too
            last_paused_at=at,
        )
        .returning(flood_flags.c.id)
    ).scalar_one()
    conn.execute(
        update(flood_entries)
        .where(flood_entries.c.entry_ref == match.entry_ref)
        .values(flag_id=flag_id)
    )
    row = conn.execute(select(flood_flags).where(flood_flags.c.id == flag_id)).one()
    return _flag(row)


def flag_details(flag: FloodFlag) -> dict[str, Any]:
    """What an audit event or an alert says of a flag: counts and names, never a hash."""
    return {
        "flag": flag.id,
        "bank": flag.bank,
        "entry_ref": flag.entry_ref,
        "entry_id": flag.entry_id,
        "distinct_items": flag.distinct_items,
        "max_items": flag.limit.max_items,
        "window_seconds": int(flag.limit.window.total_seconds()),
        "paused_matches": flag.paused_matches,
    }


def observe(
    conn: Connection,
    matches: Iterable[Match],
    sha256: str,
    *,
    now: datetime,
    alerts: Alerts | None = None,
    actor: str = GUARD_ACTOR,
    audit: bool = True,
) -> FloodObservation:
    """Count one matched item (its ``sha256``) for every entry it matched, inside the
    caller's transaction; the entries whose automatic actions are paused for it (pass
    them to ``policy.decide(..., paused=...)``) and the flags it raised. A raised flag's
    alerts (``alerts(flag)``, e.g. webhooks) go into the outbox and its audit event
    into the log, in the same transaction. A caller that takes other locks after this
    (cases, evidence) passes ``audit=False`` and calls ``audit_flags`` last: the audit
    log's lock is best taken last (see ``store.audit.append_event``)."""
    entries = counted(matches)
    if not entries:
        return NOTHING_PAUSED
    at = utc(now)
    paused: set[int] = set()
    raised: list[FloodFlag] = []
    for entry_ref in sorted(entries):
        row = _touch(conn, entry_ref, at)
        if row is None:
            continue
        if row.flag_id is not None:
            conn.execute(
                update(flood_flags)
                .where(flood_flags.c.id == row.flag_id)
                .values(paused_matches=flood_flags.c.paused_matches + 1, last_paused_at=at)
            )
            paused.add(entry_ref)
            continue
        limit = _bank_limit(conn, row.bank_id)
        if not limit.enabled:
            continue
        distinct = _see(conn, entry_ref, sha256, at, limit)
        if floods(distinct, limit):
            raised.append(_raise_flag(conn, entries[entry_ref], row.bank_id, distinct, limit, at))
            paused.add(entry_ref)
    for flag in raised:
        for action in alerts(flag) if alerts is not None else ():
            enqueue(conn, action, at=at)
    observation = FloodObservation(paused=frozenset(paused), flagged=tuple(raised))
    if audit:  # the audit log's lock last (see store.audit.append_event)
        audit_flags(conn, observation, now=at, actor=actor)
    return observation


def audit_flags(
    conn: Connection, observation: FloodObservation, *, now: datetime, actor: str = GUARD_ACTOR
) -> None:
    """The ``bank.entry_flooded`` events of the flags ``observe(..., audit=False)``
    raised, inside the caller's transaction."""
    for flag in observation.flagged:
        append_event(
            conn,
            actor,
            AuditAction.BANK_ENTRY_FLOODED,
            f"bank:{flag.bank}",
            flag_details(flag),
            at=utc(now),
        )


_ACTIVE = select(flood_flags).join(flood_entries, flood_entries.c.flag_id == flood_flags.c.id)


class FloodStore:
    """The flood guard's limits, flags and counts. Changes a person makes (limits,
    release, tombstone) are audited in the same transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- the pipeline ----------------------------------------------------------------

    def observe(
        self,
        matches: Iterable[Match],
        sha256: str,
        *,
        now: datetime,
        alerts: Alerts | None = None,
        actor: str = GUARD_ACTOR,
    ) -> FloodObservation:
        """``observe`` in a transaction of its own."""
        found = counted(matches)
        if not found:  # no write transaction for the common case
            return NOTHING_PAUSED
        with self._engine.begin() as conn:
            return observe(conn, found.values(), sha256, now=now, alerts=alerts, actor=actor)

    # -- limits ----------------------------------------------------------------------

    def limit(self, bank: str) -> FloodLimit:
        with self._engine.connect() as conn:
            return _bank_limit(conn, _bank_id(conn, bank))

    def set_limit(
        self, bank: str, limit: FloodLimit, *, actor: str, at: datetime | None = None
    ) -> FloodLimit:
        """Set the bank's limit (audited: ``bank.flood_configured``). A lower limit
        applies from the entry's next match; flags already raised stay."""
        moment = utc(at or now())
        values = {
            "max_items": limit.max_items,
            "window_seconds": int(limit.window.total_seconds()),
            "updated_at": moment,
        }
        with self._engine.begin() as conn:
            bank_id = _bank_id(conn, bank)
            done = conn.execute(
                update(flood_limits).where(flood_limits.c.bank_id == bank_id).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(insert(flood_limits).values(bank_id=bank_id, **values))
            append_event(
                conn,
                actor,
                AuditAction.BANK_FLOOD_CONFIGURED,
                f"bank:{bank}",
                {
                    "flood_guard": limit.describe(),
                    "max_items": limit.max_items,
                    "window_seconds": values["window_seconds"],
                },
                at=moment,
            )
        return limit

    # -- flags -----------------------------------------------------------------------

    def get(self, flag_id: int) -> FloodFlag:
        with self._engine.connect() as conn:
            row = conn.execute(select(flood_flags).where(flood_flags.c.id == flag_id)).first()
        if row is None:
            raise UnknownFlag(flag_id)
        return _flag(row)

    def paused(self, *, bank: str | None = None, limit: int = 1000) -> builtins.list[FloodFlag]:
        """The flags that pause an entry now (flagged, or tombstoned), newest first."""
        query = _ACTIVE
        if bank is not None:
            query = query.where(flood_flags.c.bank == bank)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(flood_flags.c.id.desc()).limit(limit))
            return [_flag(row) for row in rows]

    def history(self, *, bank: str | None = None, limit: int = 1000) -> builtins.list[FloodFlag]:
        """Every flag ever raised, newest first."""
        query = select(flood_flags)
        if bank is not None:
            query = query.where(flood_flags.c.bank == bank)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(flood_flags.c.id.desc()).limit(limit))
            return [_flag(row) for row in rows]

    def release(self, flag_id: int, *, actor: str, at: datetime | None = None) -> FloodFlag:
        """Let the flag's entry act again and restart its counter (audited:
        ``bank.entry_released``). A tombstoned entry's flag keeps its state; releasing
        it only lets the entry act should an import bring it back."""
        moment = utc(at or now())
        with self._engine.begin() as conn:
            flag = self._lock_active(conn, flag_id, moment)
            conn.execute(
                update(flood_entries)
                .where(flood_entries.c.entry_ref == flag.entry_ref)
                .values(flag_id=None)
            )
            if flag.state is FloodState.FLAGGED:
                conn.execute(
                    update(flood_flags)
                    .where(flood_flags.c.id == flag_id)
                    .values(state=str(FloodState.RELEASED), resolved_at=moment, resolved_by=actor)
                )
            conn.execute(delete(flood_seen).where(flood_seen.c.entry_ref == flag.entry_ref))
            append_event(
                conn,
                actor,
                AuditAction.BANK_ENTRY_RELEASED,
                f"bank:{flag.bank}",
                {**flag_details(flag), "was": str(flag.state)},
                at=moment,
            )
        return self.get(flag_id)

    def tombstone(self, flag_id: int, *, actor: str, at: datetime | None = None) -> FloodFlag:
        """Remove the flagged entry from its bank (a tombstone, as a list's removal is:
        the match indexes drop it at their next refresh) and keep it paused should a
        later import restore it (audited: ``bank.entry_tombstoned``)."""
        moment = utc(at or now())
        with self._engine.begin() as conn:
            flag = self._lock_active(conn, flag_id, moment)
            if flag.state is not FloodState.FLAGGED:
                raise FlagNotActive(flag_id, f"is already {flag.state}")
            live = conn.execute(
                select(bank_entries.c.id).where(
                    bank_entries.c.id == flag.entry_ref, bank_entries.c.removed_at.is_(None)
                )
            ).first()
            if live is not None:
                seq = _next_seq(conn)
                conn.execute(
                    update(bank_entries)
                    .where(bank_entries.c.id == flag.entry_ref)
                    .values(removed_at=moment, removed_version=TOMBSTONE_VERSION, change_seq=seq)
                )
            conn.execute(
                update(flood_flags)
                .where(flood_flags.c.id == flag_id)
                .values(state=str(FloodState.TOMBSTONED), resolved_at=moment, resolved_by=actor)
            )
            conn.execute(delete(flood_seen).where(flood_seen.c.entry_ref == flag.entry_ref))
            append_event(
                conn,
                actor,
                AuditAction.BANK_ENTRY_TOMBSTONED,
                f"bank:{flag.bank}",
                flag_details(flag),
                at=moment,
            )
        return self.get(flag_id)

    @staticmethod
    def _lock_active(conn: Connection, flag_id: int, at: datetime) -> FloodFlag:
        row = conn.execute(select(flood_flags).where(flood_flags.c.id == flag_id)).first()
        if row is None:
            raise UnknownFlag(flag_id)
        flag = _flag(row)
        entry = conn.execute(
            update(flood_entries)
            .where(flood_entries.c.entry_ref == flag.entry_ref)
            .values(observed_at=at)
            .returning(flood_entries.c.flag_id)
        ).first()
        if entry is None:
            raise FlagNotActive(flag_id, "belongs to an entry that no longer exists")
        if entry.flag_id != flag_id:
            raise FlagNotActive(flag_id, f"no longer pauses its entry ({flag.state})")
        return flag

    # -- counts ----------------------------------------------------------------------

    def counts(self, *, since: datetime | None = None, bank: str | None = None) -> FloodCounts:
        """Flags raised (since ``since``), how they ended, the entries paused now and the
        matched items whose actions were paused: what the statistics report."""
        with self._engine.connect() as conn:
            where = []
            if since is not None:
                where.append(flood_flags.c.flagged_at >= utc(since))
            if bank is not None:
                where.append(flood_flags.c.bank == bank)
            by_state: dict[str, int] = {
                str(state): int(count)
                for state, count in conn.execute(
                    select(flood_flags.c.state, func.count())
                    .where(*where)
                    .group_by(flood_flags.c.state)
                )
            }
            paused_matches = conn.execute(
                select(func.coalesce(func.sum(flood_flags.c.paused_matches), 0)).where(*where)
            ).scalar_one()
            active = select(func.count()).select_from(_ACTIVE.subquery())
            if bank is not None:
                active = select(func.count()).select_from(
                    _ACTIVE.where(flood_flags.c.bank == bank).subquery()
                )
            paused_now = conn.execute(active).scalar_one()
        return FloodCounts(
            flagged=sum(by_state.values()),
            released=int(by_state.get(str(FloodState.RELEASED), 0)),
            tombstoned=int(by_state.get(str(FloodState.TOMBSTONED), 0)),
            paused_now=int(paused_now),
            paused_matches=int(paused_matches),
        )


def _bank_id(conn: Connection, name: str) -> int:
    bank_id = conn.execute(select(banks.c.id).where(banks.c.name == name)).scalar()
    if bank_id is None:
        raise UnknownBank(name)
    return int(bank_id)
