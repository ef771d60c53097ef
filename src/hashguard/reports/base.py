"""The report-sink adapter kind: a national reporting channel a confirmed case goes to.

A sink builds its documents (validated locally before anything is sent) and makes one
call per step; every call ends in a ``SinkAnswer`` whose ``outcome`` maps the channel's
response code (OK, retryable, permanent, expired, already done). Nothing raises for an
answer the channel gave; the state machine (``reports.machine``) decides what follows.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from hashguard.domain.reports import ReportDraft, ReportFile, SinkAnswer
from hashguard.plugins import Adapter, AdapterKind


class InvalidReport(ValueError):
    """A document the channel's schema refuses: nothing was sent."""


class ReportSink(Adapter):
    kind: ClassVar[AdapterKind] = AdapterKind.REPORT_SINK
    #: the channel's environment this instance talks to (``test`` or ``production``)
    environment: str = "test"

    @abstractmethod
    def report_document(self, draft: ReportDraft) -> bytes:
        """The report as the channel takes it, validated; ``InvalidReport`` otherwise."""

    @abstractmethod
    def file_document(self, remote_id: str, file_id: str, file: ReportFile) -> bytes:
        """One file's details, validated; ``InvalidReport`` otherwise."""

    @abstractmethod
    def submit(self, document: bytes) -> SinkAnswer:
        """Open the report; ``remote_id`` on success."""

    @abstractmethod
    def upload(self, remote_id: str, name: str, data: bytes) -> SinkAnswer:
        """Attach one file; ``file_id`` and the channel's ``md5`` of what it received."""

    @abstractmethod
    def send_file_details(self, document: bytes) -> SinkAnswer: ...

    @abstractmethod
    def finish(self, remote_id: str) -> SinkAnswer:
        """Close the report; ``file_ids`` is the receipt's list of files."""

    @abstractmethod
    def retract(self, remote_id: str) -> SinkAnswer:
        """Cancel a report that is not finished."""

    @abstractmethod
    def status(self) -> SinkAnswer:
        """Whether the channel is reachable and accepts our credentials."""

    def close(self) -> None:
        """Release connections."""
