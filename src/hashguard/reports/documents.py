"""A report's documents (the XML sent, every answer) sealed like evidence.

Each report has its own 256-bit data key, wrapped by the master key bound to the case
and sink (``report case <id> sink <name>``: a case has one report per sink). Every
step's request and response are sealed with it by ``evidence.vault.seal_part``, bound
to the report and the step's part id, so a body copied onto another step or report
does not open. Only the step, the code and a line of detail are kept in clear.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hashguard.domain.reports import Report
from hashguard.evidence.vault import KEY_BYTES, open_part, seal_part
from hashguard.keys import MasterKey
from hashguard.store.reports import ReportStore, Sealed, new_part


def key_context(case_id: int, sink: str) -> str:
    return f"report case {case_id} sink {sink}"


def _item(case_id: int, sink: str) -> str:
    return f"report:{case_id}:{sink}"


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenedStep:
    part: str
    request: bytes | None
    response: bytes | None


class ReportKeys:
    """Seals and opens one store's report documents with the master key."""

    def __init__(self, reports: ReportStore, master_key: MasterKey) -> None:
        self._reports = reports
        self._master = master_key

    def new_key(self, case_id: int, sink: str) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form (what the store keeps)."""
        key = secrets.token_bytes(KEY_BYTES)
        return key, self._master.seal(key, context=key_context(case_id, sink))

    def _key(self, report: Report) -> bytes:
        wrapped = self._reports.data_key(report.id)
        return self._master.open(wrapped, context=key_context(report.case_id, report.sink))

    @staticmethod
    def seal_with(
        key: bytes,
        case_id: int,
        sink: str,
        *,
        request: bytes | None = None,
        response: bytes | None = None,
    ) -> Sealed:
        part = new_part()
        item = _item(case_id, sink)
        return Sealed(
            part=part,
            request=None if request is None else seal_part(key, item, f"{part}:request", request),
            response=(
                None if response is None else seal_part(key, item, f"{part}:response", response)
            ),
        )

    def sealed(
        self, report: Report, *, request: bytes | None = None, response: bytes | None = None
    ) -> Sealed | None:
        if request is None and not response:
            return None
        return self.seal_with(
            self._key(report), report.case_id, report.sink, request=request, response=response
        )

    def opened(self, report: Report) -> list[OpenedStep]:
        """Every sealed body of the report, opened (``EvidenceCorrupt`` if altered)."""
        key = self._key(report)
        item = _item(report.case_id, report.sink)
        return [
            OpenedStep(
                part=s.part,
                request=(
                    None
                    if s.request is None
                    else open_part(key, item, f"{s.part}:request", s.request)
                ),
                response=(
                    None
                    if s.response is None
                    else open_part(key, item, f"{s.part}:response", s.response)
                ),
            )
            for s in self._reports.sealed(report.id)
        ]

    def draft_document(self, report: Report) -> bytes:
        """The report document as drafted (the first step's request)."""
        for step in self.opened(report):
            if step.request is not None:
                return step.request
        raise LookupError(f"report #{report.id} has no draft document")
