"""Small conversions shared by the stores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def stamp(value: datetime | None) -> datetime:
    """A timestamp column that is never NULL, as an aware UTC datetime."""
    stamped = aware(value)
    assert stamped is not None
    return stamped


def utc(value: datetime) -> datetime:
    """A datetime given by a caller, as UTC (for comparisons in queries)."""
    return value.astimezone(UTC)


def chunked(items: Sequence[T], size: int = 5000) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
