"""Reading an HMA (OpenMediaMatch) PostgreSQL database, read-only, for ``import-hma``.

The tables and columns are those of HMA's models and migrations (facebook/ThreatExchange,
hasher-matcher-actioner/src/OpenMediaMatch/storage/postgres/database.py, commit
baefb4ed67b6cdc1d4c82dbaef858d50866ac424): ``bank``, ``bank_content``,
``content_signal`` and ``exchange``. Credentials (``exchange_api_config``) are never
read, and keys of an exchange's config that look like secrets are dropped."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, text

#: config keys never carried over from an exchange's typed_config
_SECRET_KEY = re.compile(r"(?i)(credential|secret|token|password|passwd|key|auth)")


@dataclass(frozen=True, kw_only=True, slots=True)
class HmaExchange:
    name: str
    api: str
    enabled: bool
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class HmaBank:
    name: str
    enabled_ratio: float
    exchange: HmaExchange | None


@dataclass(frozen=True, kw_only=True, slots=True)
class HmaContent:
    id: int
    bank: str
    disabled: bool
    #: signal type name -> value, as HMA stores them
    signals: Mapping[str, str]
    #: the exchange and fetch id it was imported from, if any
    fetched_from: tuple[str, str] | None = None


def _clean(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {}
    return {
        k: (_clean(v) if isinstance(v, dict) else v)
        for k, v in config.items()
        if not _SECRET_KEY.search(str(k))
    }


class HmaDatabase:
    """An HMA database opened read-only (every query runs in a read-only transaction)."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        self._engine = create_engine(url, pool_pre_ping=True)

    def close(self) -> None:
        self._engine.dispose()

    def banks(self) -> list[HmaBank]:
        with self._engine.connect() as conn:
            conn.execute(text("SET TRANSACTION READ ONLY"))
            rows = conn.execute(
                text(
                    "SELECT b.name, b.enabled_ratio, e.name AS ex_name, e.api_cls, "
                    "e.fetching_enabled, e.typed_config FROM bank b "
                    "LEFT JOIN exchange e ON e.id = b.import_from_exchange_id ORDER BY b.id"
                )
            ).all()
        return [
            HmaBank(
                name=row.name,
                enabled_ratio=float(row.enabled_ratio),
                exchange=None
                if row.ex_name is None
                else HmaExchange(
                    name=row.ex_name,
                    api=row.api_cls,
                    enabled=bool(row.fetching_enabled),
                    config=_clean(row.typed_config),
                ),
            )
            for row in rows
        ]

    def content(self, batch: int = 10_000) -> Iterator[HmaContent]:
        """Every bank content item with its signals, in id order."""
        query = text(
            "SELECT c.id, b.name AS bank, c.disable_until_ts, s.signal_type, s.signal_val, "
            "e.name AS ex_name, d.fetch_id FROM bank_content c "
            "JOIN bank b ON b.id = c.bank_id "
            "JOIN content_signal s ON s.content_id = c.id "
            "LEFT JOIN exchange_data d ON d.id = c.imported_from_id "
            "LEFT JOIN exchange e ON e.id = d.collab_id ORDER BY c.id"
        )
        with self._engine.connect() as conn:
            conn.execute(text("SET TRANSACTION READ ONLY"))
            current: dict[str, Any] | None = None
            for row in conn.execution_options(yield_per=batch).execute(query):
                if current is not None and current["id"] != row.id:
                    yield HmaContent(**current)
                    current = None
                if current is None:
                    current = {
                        "id": int(row.id),
                        "bank": row.bank,
                        "disabled": int(row.disable_until_ts) != 0,
                        "signals": {},
                        "fetched_from": (row.ex_name, row.fetch_id) if row.ex_name else None,
                    }
                current["signals"][row.signal_type] = row.signal_val
            if current is not None:
                yield HmaContent(**current)
