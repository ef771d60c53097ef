"""A loopback fake of NCMEC's CyberTipline reporting API (ESP), from its documented
contract (``reference/services.md`` §3): HTTP Basic auth; XML bodies validated against
NCMEC's XSD when it is given (``xsd``); ``/submit``, ``/upload`` (multipart, answering the
MD5 of the file it received), ``/fileinfo``, ``/finish``, ``/retract``, ``/status``,
``/xsd``; NCMEC's response codes; unfinished reports that expire after ``expire_after``
seconds without a change (by the fake's own ``clock``).

The review demo files its reports against it, and the tests drive the sink with it.
NCMEC's XSD is not part of hashguard (it is fetched from NCMEC with credentials, never
vendored): the fake serves ``GET /xsd`` and validates only with a copy it is given.

``down`` makes every call a 503 without a body; ``fail_codes`` answers the next calls
with those response codes (e.g. ``[1000]``); ``wrong_md5`` answers that many uploads
with an MD5 other than the received file's (a transfer gone wrong).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs
from xml.etree import ElementTree as ET

import xmlschema

_SCHEMAS: dict[Path, xmlschema.XMLSchema10] = {}
_SCHEMAS_LOCK = threading.Lock()


def load_schema(xsd: Path) -> xmlschema.XMLSchema10:
    """NCMEC's XSD at ``xsd``, parsed once per process."""
    with _SCHEMAS_LOCK:
        if xsd not in _SCHEMAS:
            _SCHEMAS[xsd] = xmlschema.XMLSchema10(str(xsd))
        return _SCHEMAS[xsd]


@dataclass
class FakeReport:
    id: int
    document: bytes
    state: str = "open"  # open, finished, retracted
    files: dict[str, bytes] = field(default_factory=dict)
    details: dict[str, bytes] = field(default_factory=dict)
    changed: float = 0.0


class FakeCyberTipline:
    """Listens on 127.0.0.1 (a free port) in a daemon thread: ``with FakeCyberTipline(...)
    as fake: fake.base_url``. Without ``xsd``, documents are checked for their root
    element only and ``GET /xsd`` answers 404."""

    def __init__(
        self,
        *,
        username: str = "esp-user",
        password: str = "esp-pass",  # noqa: S107 - a fake's default, nothing real
        expire_after: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        xsd: Path | None = None,
    ) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.xsd = xsd
        #: what a client authenticates with (Basic auth)
        self.credentials = (username, password)
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.expire_after = expire_after
        self.clock = clock
        self.lock = threading.Lock()
        self.reports: dict[int, FakeReport] = {}
        self.next_id = 4564654
        self.down = False
        self.fail_codes: list[int] = []
        #: answer the next uploads with an MD5 that is not the received file's
        self.wrong_md5 = 0
        self.calls: list[str] = []

    def finished(self) -> list[FakeReport]:
        return [r for r in self.reports.values() if r.state == "finished"]

    def valid(self, tree: ET.Element) -> bool:
        return self.xsd is None or load_schema(self.xsd).is_valid(tree)

    # -- the server --

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-cybertipline",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                return None

            def _answer(self, code: int, status: int = 200, **fields: str) -> None:
                root = ET.Element("reportResponse")
                ET.SubElement(root, "responseCode").text = str(code)
                ET.SubElement(root, "responseDescription").text = "" if code == 0 else f"e{code}"
                for tag in ("reportId", "fileId", "hash"):
                    if tag in fields:
                        ET.SubElement(root, tag).text = fields[tag]
                self._send(status, ET.tostring(root))

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                fake.calls.append(f"GET {self.path}")
                if self.headers.get("Authorization") != fake.auth:
                    return self._answer(2000, 401)
                if self.path == "/xsd":
                    if fake.xsd is None:
                        return self._answer(1210, 404)
                    return self._send(200, fake.xsd.read_bytes())
                if self.path == "/status":
                    return self._answer(0)
                return self._answer(1210, 404)

            def do_POST(self) -> None:
                body = self._body()
                path = self.path
                fake.calls.append(f"POST {path}")
                if fake.down:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if self.headers.get("Authorization") != fake.auth:
                    return self._answer(2000, 401)
                with fake.lock:
                    if fake.fail_codes:
                        return self._answer(fake.fail_codes.pop(0))
                    fake.expire()
                    handler = {
                        "/submit": self._submit,
                        "/upload": self._upload,
                        "/fileinfo": self._fileinfo,
                        "/finish": self._finish,
                        "/retract": self._retract,
                    }.get(path)
                    if handler is None:
                        return self._answer(1210, 404)
                    return handler(body)

            def _xml(self, body: bytes, root: str) -> ET.Element | None:
                if not self.headers.get("Content-Type", "").startswith("text/xml"):
                    self._answer(4000, 400)
                    return None
                try:
                    # hashguard's own documents, over loopback
                    tree = ET.fromstring(body)  # noqa: S314
                except ET.ParseError:
                    self._answer(4110, 400)
                    return None
                if tree.tag != root or not fake.valid(tree):
                    self._answer(4100, 400)
                    return None
                return tree

            def _open(self, report_id: str | None) -> FakeReport | None:
                report = fake.reports.get(int(report_id)) if report_id else None
                if report is None:
                    self._answer(5001)
                    return None
                return report

            def _submit(self, body: bytes) -> None:
                if self._xml(body, "report") is None:
                    return None
                fake.next_id += 1
                report = FakeReport(id=fake.next_id, document=body, changed=fake.clock())
                fake.reports[report.id] = report
                return self._answer(0, reportId=str(report.id))

            def _form(self, body: bytes) -> dict[str, bytes]:
                kind = self.headers.get("Content-Type", "")
                if kind.startswith("application/x-www-form-urlencoded"):
                    return {k: v[0].encode() for k, v in parse_qs(body.decode()).items()}
                message = BytesParser(policy=HTTP).parsebytes(
                    f"Content-Type: {kind}\r\n\r\n".encode() + body
                )
                found: dict[str, bytes] = {}
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    payload = part.get_payload(decode=True)
                    if isinstance(name, str) and isinstance(payload, bytes):
                        found[name] = payload
                return found

            def _upload(self, body: bytes) -> None:
                form = self._form(body)
                report = self._open(form.get("id", b"").decode() or None)
                if report is None:
                    return None
                if report.state != "open":
                    return self._answer(5102 if report.state == "finished" else 5101)
                if "file" not in form:
                    return self._answer(4200)
                file_id = uuid.uuid4().hex
                report.files[file_id] = form["file"]
                report.changed = fake.clock()
                md5 = hashlib.md5(form["file"]).hexdigest()
                if fake.wrong_md5:
                    fake.wrong_md5 -= 1
                    md5 = "0" * 32
                return self._answer(0, reportId=str(report.id), fileId=file_id, hash=md5)

            def _fileinfo(self, body: bytes) -> None:
                tree = self._xml(body, "fileDetails")
                if tree is None:
                    return None
                report = self._open(tree.findtext("reportId"))
                if report is None:
                    return None
                file_id = tree.findtext("fileId") or ""
                if file_id not in report.files:
                    return self._answer(5002)
                report.details[file_id] = body
                report.changed = fake.clock()
                return self._answer(0, reportId=str(report.id))

            def _finish(self, body: bytes) -> None:
                report = self._open(self._form(body).get("id", b"").decode() or None)
                if report is None:
                    return None
                if report.state != "open":
                    return self._answer(5102 if report.state == "finished" else 5101)
                report.state = "finished"
                root = ET.Element("reportDoneResponse")
                ET.SubElement(root, "responseCode").text = "0"
                ET.SubElement(root, "reportId").text = str(report.id)
                files = ET.SubElement(root, "files")
                for file_id in report.files:
                    ET.SubElement(files, "fileId").text = file_id
                return self._send(200, ET.tostring(root))

            def _retract(self, body: bytes) -> None:
                report = self._open(self._form(body).get("id", b"").decode() or None)
                if report is None:
                    return None
                if report.state != "open":
                    return self._answer(5102 if report.state == "finished" else 5101)
                report.state = "retracted"
                return self._answer(0, reportId=str(report.id))

        return Handler

    def expire(self) -> None:
        """Unfinished reports untouched for ``expire_after`` are cancelled (forgotten)."""
        now = self.clock()
        for report_id, report in list(self.reports.items()):
            if report.state == "open" and now - report.changed >= self.expire_after:
                del self.reports[report_id]
