"""What a report file's row does not hold: its reviewers' annotations and
classification, and what the platform said of its upload (time, IP address).

They are sealed with the draft (as the draft step's response, beside the report
document) and put back before the file's details are built (``SealedFileDetails``),
so the plaintext row holds the file's name and hashes only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from hashguard.domain.reports import (
    FileAnnotation,
    IndustryClassification,
    IpCapture,
    IpEvent,
    ReportDraft,
    ReportFile,
    ReportState,
    SinkAnswer,
)
from hashguard.reports.base import InvalidReport, ReportSink
from hashguard.reports.documents import ReportKeys
from hashguard.store import Store


def _capture_json(capture: IpCapture | None) -> dict[str, Any] | None:
    if capture is None:
        return None
    return {
        "ip": capture.ip,
        "event": str(capture.event),
        "at": capture.at.isoformat() if capture.at else None,
        "possible_proxy": capture.possible_proxy,
        "port": capture.port,
    }


def _capture_from(data: Mapping[str, Any] | None) -> IpCapture | None:
    if not data:
        return None
    return IpCapture(
        ip=data["ip"],
        event=IpEvent(data["event"]),
        at=datetime.fromisoformat(data["at"]) if data.get("at") else None,
        possible_proxy=data.get("possible_proxy"),
        port=data.get("port"),
    )


def sealed_file_details(files: Sequence[ReportFile]) -> bytes:
    """The part of each file's details its row never holds, by evidence id (sealed as
    the draft step's response)."""
    return json.dumps(
        {
            "files": {
                f.evidence_id: {
                    "annotations": [str(a) for a in f.annotations],
                    "classification": str(f.classification) if f.classification else None,
                    "uploaded_at": f.uploaded_at.isoformat() if f.uploaded_at else None,
                    "upload_ip": _capture_json(f.upload_ip),
                }
                for f in files
            }
        },
        sort_keys=True,
    ).encode()


def with_sealed_details(file: ReportFile, document: bytes | None) -> ReportFile:
    """``file`` as its row holds it, completed from ``sealed_file_details``."""
    if not document:
        return file
    found = json.loads(document).get("files", {}).get(file.evidence_id)
    if not found:
        return file
    uploaded = found.get("uploaded_at")
    classification = found.get("classification")
    return replace(
        file,
        annotations=tuple(FileAnnotation(a) for a in found.get("annotations", ())),
        classification=IndustryClassification(classification) if classification else None,
        uploaded_at=datetime.fromisoformat(uploaded) if uploaded else None,
        upload_ip=_capture_from(found.get("upload_ip")),
    )


def row_of(file: ReportFile) -> ReportFile:
    """What a file's row may hold: no reviewer labels, nothing the platform said."""
    return replace(file, annotations=(), classification=None, uploaded_at=None, upload_ip=None)


class SealedFileDetails(ReportSink):
    """The sink, with each file's sealed details (``with_sealed_details``) put back
    before its document is built; every other call goes to the sink as it is."""

    def __init__(self, sink: ReportSink, store: Store, keys: ReportKeys) -> None:
        super().__init__(sink.settings, {})
        # ``name`` is a class attribute of adapters: this wrapper answers to its sink's
        object.__setattr__(self, "name", sink.name)
        self.environment = sink.environment
        self._sink = sink
        self._store = store
        self._keys = keys

    def _complete(self, remote_id: str, file: ReportFile) -> ReportFile:
        """``file`` with the sealed details of the open report ``remote_id``;
        ``InvalidReport`` when no such report is found (fail visibly: a file's details
        never go without what its draft said)."""
        for state in (ReportState.UPLOADED, ReportState.SUBMITTED, ReportState.DESCRIBED):
            found = [
                r
                for r in self._store.reports.list(state=state)
                if r.remote_id == remote_id and r.sink == self._sink.name
            ]
            if found:
                for step in self._keys.opened(found[0]):
                    if step.request is not None:  # the draft step: the first with a request
                        return with_sealed_details(file, step.response)
                return file
        raise InvalidReport(f"no open report {remote_id}: its files' sealed details are not found")

    def report_document(self, draft: ReportDraft) -> bytes:
        return self._sink.report_document(draft)

    def file_document(self, remote_id: str, file_id: str, file: ReportFile) -> bytes:
        return self._sink.file_document(remote_id, file_id, self._complete(remote_id, file))

    def submit(self, document: bytes) -> SinkAnswer:
        return self._sink.submit(document)

    def upload(self, remote_id: str, name: str, data: bytes) -> SinkAnswer:
        return self._sink.upload(remote_id, name, data)

    def send_file_details(self, document: bytes) -> SinkAnswer:
        return self._sink.send_file_details(document)

    def finish(self, remote_id: str) -> SinkAnswer:
        return self._sink.finish(remote_id)

    def retract(self, remote_id: str) -> SinkAnswer:
        return self._sink.retract(remote_id)

    def status(self) -> SinkAnswer:
        return self._sink.status()

    def close(self) -> None:
        self._sink.close()
