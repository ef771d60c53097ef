"""The list-source adapter kind: an exchange that a bank is kept in sync with."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import ClassVar

from hashguard.domain.exchanges import Feedback, SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.plugins import Adapter, AdapterKind


class FeedbackUnsupported(Exception):
    """The exchange takes no feedback (or none of this kind)."""


class ExchangeError(Exception):
    """The exchange failed (refused, unreachable, malformed answer). The message never
    holds a credential; the sync keeps its last checkpoint."""


class ListSource(Adapter):
    """An exchange (NCMEC, StopNCII, ThreatExchange...) that a bank syncs from.

    ``fetch(checkpoint)`` yields batches from where the checkpoint left off (from the
    start with ``None``). The sync engine stores each batch, then its checkpoint; so a
    batch must be safe to apply twice (upserts and tombstones are), and a checkpoint
    must only be emitted where resuming from it loses nothing. A malformed record is
    skipped and counted in its batch, never raised.
    """

    kind: ClassVar[AdapterKind] = AdapterKind.LIST_SOURCE
    #: the algorithms its entries may carry
    algorithms: ClassVar[frozenset[Algorithm]]
    #: what its lists hold; a bank never mixes two audiences unless the operator says so
    audience: ClassVar[str] = "csam"

    @abstractmethod
    def fetch(self, checkpoint: str | None) -> Iterator[SyncBatch]: ...

    def send_feedback(self, feedback: Feedback) -> None:
        """Tell the exchange what we concluded about one of its entries."""
        raise FeedbackUnsupported(f"{self.name} takes no feedback")

    def close(self) -> None:
        """Release connections."""
