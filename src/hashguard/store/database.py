"""Engines for SQLite (embedded default, WAL) and PostgreSQL, and migrations through Alembic."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from hashguard.permissions import private_file
from hashguard.store.actions import ActionStore
from hashguard.store.appeals import AppealStore
from hashguard.store.audit import AuditStore
from hashguard.store.banks import BankStore
from hashguard.store.cases import CaseStore
from hashguard.store.evidence import EvidenceStore
from hashguard.store.exchanges import ExchangeStore
from hashguard.store.exposure import ExposureStore
from hashguard.store.flood import FloodStore
from hashguard.store.kept import KeptStore
from hashguard.store.leases import LeaseStore
from hashguard.store.notices import NoticeStore
from hashguard.store.people import PeopleStore
from hashguard.store.referrals import ReferralStore
from hashguard.store.remote_secrets import RemoteSecretStore
from hashguard.store.reports import ReportStore
from hashguard.store.scans import ScanStore
from hashguard.store.statements import StatementStore
from hashguard.store.stats import StatsStore
from hashguard.store.tenants import TenantStore
from hashguard.store.tokens import TokenStore
from hashguard.store.unit import OneConnection, Writes, transaction

MIGRATIONS = str(Path(__file__).with_name("migrations"))


class SchemaOutOfDate(RuntimeError):
    """The database is behind this version of hashguard; run ``hashguard db upgrade``."""


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # created 0600 before SQLite opens it (its -wal and -shm files take the
            # database file's mode): it holds list hashes, token hashes and the audit log
            private_file(Path(parsed.database).expanduser())
        # SQLAlchemy's default pool for a file: connections are kept and reused across
        # threads (opening one and setting its pragmas cost a request ~10 ms of CPU)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class OneWriterAtATime:
    """An SQLite engine whose transactions (``begin``) take turns within the process.

    SQLite admits one writer at a time. A second one waits in SQLite's busy handler,
    which sleeps 1, 2, 5 … up to 100 ms between tries whatever the first one does: under
    a burst of notices a 2 ms insert waited hundreds of milliseconds (the notice
    benchmark's p99). Here writers of one process queue on a lock instead and start the
    moment the one before commits; other processes (a CLI, a worker) still meet the
    busy handler. Reads (``connect``) never wait for the lock: WAL lets them run beside
    the writer. Re-entrant, so a transaction that opens another on the same thread (as
    SQLite would refuse it anyway) fails as before rather than hanging here."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._turn = threading.RLock()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._turn, self._engine.begin() as conn:
            yield conn

    def connect(self) -> Connection:
        return self._engine.connect()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(_alembic_config(engine), revision)


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True, kw_only=True, slots=True)
class Store:
    engine: Engine
    banks: BankStore
    scans: ScanStore
    tokens: TokenStore
    exchanges: ExchangeStore
    audit: AuditStore
    evidence: EvidenceStore
    cases: CaseStore
    actions: ActionStore
    people: PeopleStore
    remote_secrets: RemoteSecretStore
    exposure: ExposureStore
    flood: FloodStore
    leases: LeaseStore
    reports: ReportStore
    referrals: ReferralStore
    notices: NoticeStore
    statements: StatementStore
    tenants: TenantStore
    appeals: AppealStore
    stats: StatsStore
    kept: KeptStore

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def atomic(self) -> Iterator[Store]:
        """Every store on one connection: what the block changes through them (a change
        and its audit entry, a token and its owner) commits together when it ends
        without an exception, else nothing does. Append the audit entry last (the log's
        lock is the last one a transaction takes). For short changes by the services,
        not for bulk work."""
        with self.engine.begin() as conn:
            # a unit's own atomic() and transaction() join the same connection
            yield stores_on(cast(Engine, OneConnection(conn)))

    def transaction(self, *, counting: bool = True) -> AbstractContextManager[Writes]:
        """Writes across stores (scan results, evidence, cases, outbox, audit) in one
        transaction: see ``hashguard.store.unit``."""
        return transaction(self.engine, counting=counting)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")


def stores_on(connectable: Engine) -> Store:
    """Every store over ``connectable`` (an engine, or one connection: ``Store.atomic``)."""
    return Store(
        engine=connectable,
        banks=BankStore(connectable),
        scans=ScanStore(connectable),
        tokens=TokenStore(connectable),
        exchanges=ExchangeStore(connectable),
        audit=AuditStore(connectable),
        evidence=EvidenceStore(connectable),
        cases=CaseStore(connectable),
        actions=ActionStore(connectable),
        people=PeopleStore(connectable),
        remote_secrets=RemoteSecretStore(connectable),
        exposure=ExposureStore(connectable),
        flood=FloodStore(connectable),
        leases=LeaseStore(connectable),
        reports=ReportStore(connectable),
        referrals=ReferralStore(connectable),
        notices=NoticeStore(connectable),
        statements=StatementStore(connectable),
        tenants=TenantStore(connectable),
        appeals=AppealStore(connectable),
        stats=StatsStore(connectable),
        kept=KeptStore(connectable),
    )


def open_store(url: str, *, migrate: bool | None = None) -> Store:
    """Open the store at ``url``.

    ``migrate`` defaults to True for SQLite (the embedded store upgrades itself) and
    False for PostgreSQL, where several servers share one database and migrations are
    an explicit ``hashguard db upgrade``; an out-of-date schema then raises
    ``SchemaOutOfDate`` instead of half-working.
    """
    engine = make_engine(url)
    if migrate is None:
        migrate = engine.dialect.name == "sqlite"
    if migrate:
        upgrade(engine)
    elif current_revision(engine) != head_revision(engine):
        engine.dispose()
        raise SchemaOutOfDate(
            "the database schema is not at this version's head: run `hashguard db upgrade`"
        )
    if engine.dialect.name == "sqlite":
        return stores_on(cast(Engine, OneWriterAtATime(engine)))
    return stores_on(engine)
