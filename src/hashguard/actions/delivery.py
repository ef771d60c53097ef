"""What delivering one action can come to, and the interface every deliverer implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hashguard.domain.actions import NewAction, OutboxAction


@dataclass(frozen=True, slots=True)
class Delivered:
    """Done. ``followups`` are enqueued in the same transaction that records it."""

    followups: tuple[NewAction, ...] = ()


@dataclass(frozen=True, slots=True)
class Retry:
    """Failed in a way that trying later may fix (5xx, timeout, dropped connection)."""

    error: str


@dataclass(frozen=True, slots=True)
class Permanent:
    """Failed in a way retrying cannot fix (no such endpoint, file gone): a dead letter."""

    error: str


DeliveryResult = Delivered | Retry | Permanent


class Deliverer(Protocol):
    def deliver(self, action: OutboxAction) -> DeliveryResult: ...
