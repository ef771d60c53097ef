"""The statement-sink adapter kind: where statements of reasons are filed in batches.

``ReportSink``'s shape (a report opened, files attached, finished) does not fit a
channel that takes whole statements 1 to 100 at a time, so statements have their own
kind, ``statement_sink``. A sink turns a statement into the channel's document
(validated locally: ``InvalidStatement`` means nothing was sent) and sends a batch;
every answer the channel gives ends in a ``BatchAnswer``, never an exception.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hashguard.domain.statements import StatementOfReasons
from hashguard.plugins import Adapter, AdapterKind


class InvalidStatement(ValueError):
    """A statement the channel's rules refuse: it is not sent."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchAnswer:
    """The channel's answer to one batch. ``created``: puid -> the channel's id (the
    batch was stored); ``existing``: puids it already held (nothing of the batch was
    stored); ``invalid``: the batch's positions it refused, with why (nothing stored);
    ``retryable``: no usable answer (down, 5xx, 429): send again later."""

    status: int | None
    description: str
    created: Mapping[str, str] = field(default_factory=dict)
    existing: tuple[str, ...] = ()
    invalid: Mapping[int, str] = field(default_factory=dict)
    retryable: bool = False

    @property
    def stored(self) -> bool:
        return self.status == 201


class StatementSink(Adapter):
    kind: ClassVar[AdapterKind] = AdapterKind.STATEMENT_SINK
    #: the channel's environment this instance talks to (``sandbox`` or ``production``)
    environment: str = "sandbox"
    #: most statements in one batch
    max_batch: ClassVar[int] = 100

    @abstractmethod
    def document(self, reasons: StatementOfReasons) -> dict[str, Any]:
        """The statement as the channel takes it, validated; ``InvalidStatement``
        otherwise. It holds no personal data."""

    @abstractmethod
    def submit(self, documents: Sequence[Mapping[str, Any]]) -> BatchAnswer:
        """Send one batch (1 to ``max_batch`` documents)."""

    @abstractmethod
    def status(self) -> BatchAnswer:
        """Whether the channel is reachable (its ping)."""

    def close(self) -> None:
        """Release connections."""
