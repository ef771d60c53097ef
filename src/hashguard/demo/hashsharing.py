"""A loopback fake of NCMEC's hash-sharing API v2, written from its documented contract:
the review demo's list arrives through it and its feedback goes to it, and the tests
drive the ``ncmec`` exchange with it (``tests/fakes/ncmec.py``).

The shapes follow NCMEC's documentation as python-threatexchange reproduces it
(``threatexchange/exchanges/clients/ncmec/hash_api.py`` and its test data): namespace
``https://hashsharing.ncmec.org/hashsharing/v2``; ``GET /v2/entries?from&to`` answers a
``queryResult`` whose ``images``/``videos`` hold ``image``, ``video``, ``deletedImage``
and ``deletedVideo`` elements, not in time order, with ``paging/next`` carrying the
window's own ``from``/``to`` plus ``start``/``size``/``max``; ``GET /v2/status``;
``GET /v2/feedback/{TYPE}/reasons``; ``PUT /v2/entries/{esp}/{id}/{TYPE}/feedback``.
HTTP Basic auth on every call.

The fake serves only what it is given (the tests' made-up values, the demo's hashes of
its own generated benign images), never a real list. The fake's window is
``from <= timestamp < to``.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.etree import ElementTree as ET

from hashguard.demo.loopback import LoopbackServer

NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"
_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, kw_only=True)
class FakeEntry:
    """One entry as NCMEC lists it. ``None`` member or id omits the element (a
    malformed entry); ``large`` names fingerprints served from their own endpoint."""

    member_id: int | None
    entry_id: str | None
    timestamp: datetime
    media: str = "image"
    classification: str | None = "A1"
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    large: tuple[str, ...] = ()
    deleted: bool = False

    def element(self) -> ET.Element:
        tag = ("deleted" + self.media.capitalize()) if self.deleted else self.media
        entry = ET.Element(tag)
        member = ET.SubElement(entry, "member")
        member.text = f"Member {self.member_id}"
        if self.member_id is not None:
            member.set("id", str(self.member_id))
        ET.SubElement(entry, "timestamp").text = self.timestamp.strftime(_TIME)
        if self.entry_id is not None:
            ET.SubElement(entry, "id").text = self.entry_id
        if self.classification is not None and not self.deleted:
            ET.SubElement(entry, "classification").text = self.classification
        if self.fingerprints or self.large:
            prints = ET.SubElement(entry, "fingerprints")
            for name, value in self.fingerprints.items():
                ET.SubElement(prints, name).text = value
            for name in self.large:
                ET.SubElement(
                    prints,
                    name,
                    rel="self",
                    href=f"/v2/entries/{self.entry_id}/fingerprints/{name.upper()}",
                )
        return entry


@dataclass(frozen=True, kw_only=True)
class Recorded:
    method: str
    path: str
    query: Mapping[str, Sequence[str]]
    body: bytes
    authorised: bool


class Failure(StrEnum):
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    MALFORMED_XML = "malformed_xml"
    DTD = "dtd"


_DTD_BODY = b"""<?xml version="1.0"?>
<!DOCTYPE queryResult [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>
<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2"><paging><next>&b;</next>
</paging></queryResult>"""
_MALFORMED_BODY = (
    b'<?xml version="1.0"?><queryResult xmlns="' + NAMESPACE.encode() + b'"><images count="1">'
)

DEFAULT_REASONS = {
    "Not CSAM": "0b6a7f32-6d0e-4d8e-9a55-0c1b2d3e4f50",
    "Wrong classification": "1c7b8043-7e1f-4e9f-8b66-1d2c3e4f5a61",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (the timeout test) is not an error here


class FakeNcmec(LoopbackServer):
    """The fake, serving on 127.0.0.1 while open. ``fail(kind, times)`` makes the next
    ``times`` calls (every call with ``None``) fail so. ``requests`` records every call;
    ``feedback`` every accepted feedback submission (path parts, parsed body), each
    also handed to ``on_feedback`` when given (the demo prints it)."""

    server_class = _Server

    def __init__(
        self,
        entries: Sequence[FakeEntry],
        *,
        username: str = "hashguard-test",
        password: str = "not-a-real-password",  # noqa: S107 - a fake's default, nothing real
        page_size: int = 3,
        reasons: Mapping[str, str] = DEFAULT_REASONS,
        member_id: int = 7,
        delay_seconds: float = 1.0,
        on_feedback: Callable[[tuple[str, ...], ET.Element], None] | None = None,
    ) -> None:
        super().__init__()
        self.entries = list(entries)
        self.page_size = page_size
        self.reasons = dict(reasons)
        self.member_id = member_id
        self.delay_seconds = delay_seconds
        self.on_feedback = on_feedback
        self.requests: list[Recorded] = []
        self.feedback: list[tuple[tuple[str, ...], ET.Element]] = []
        #: what the fake accepts: (username, password)
        self.credentials = (username, password)
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._failure: Failure | None = None
        self._failures_left: int | None = None
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            owner = fake

        return Handler

    @property
    def url(self) -> str:
        return self.base_url

    def fail(self, failure: Failure | str | None, times: int | None = None) -> None:
        with self._lock:
            self._failure = Failure(failure) if failure is not None else None
            self._failures_left = times

    def paths(self, method: str = "GET") -> list[str]:
        return [r.path for r in self.requests if r.method == method]

    # -- serving ------------------------------------------------------------------------

    def _take_failure(self) -> Failure | None:
        with self._lock:
            failure = self._failure
            if failure is not None and self._failures_left is not None:
                self._failures_left -= 1
                if self._failures_left <= 0:
                    self._failure, self._failures_left = None, None
            return failure

    def handle(self, request: _Handler, method: str) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        authorised = request.headers.get("Authorization") == self._auth
        with self._lock:
            self.requests.append(
                Recorded(
                    method=method,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    body=body,
                    authorised=authorised,
                )
            )
        failure = self._take_failure()
        if failure is Failure.UNAUTHORIZED or not authorised:
            return 401, {"WWW-Authenticate": 'Basic realm="hashsharing"'}, b""
        if failure is Failure.RATE_LIMITED:
            return 429, {"Retry-After": "0"}, b""
        if failure is Failure.SERVER_ERROR:
            return 500, {"Retry-After": "0"}, b"<error>internal</error>"
        if failure is Failure.TIMEOUT:
            time.sleep(self.delay_seconds)
        if failure is Failure.MALFORMED_XML:
            return 200, {}, _MALFORMED_BODY
        if failure is Failure.DTD:
            return 200, {}, _DTD_BODY
        segments = tuple(unquote(s) for s in parts.path.split("/")[1:])
        query = parse_qs(parts.query)
        if method == "GET" and segments == ("v2", "status"):
            return 200, {}, self._status()
        if method == "GET" and segments == ("v2", "entries"):
            return self._entries(query)
        if method == "GET" and segments[:2] == ("v2", "feedback") and segments[3:] == ("reasons",):
            return 200, {}, self._reasons(segments[2])
        if method == "PUT" and len(segments) == 6 and segments[:2] == ("v2", "entries"):
            return self._feedback(segments[2:5], body)
        return 404, {}, b""

    def _status(self) -> bytes:
        root = ET.Element("status", xmlns=NAMESPACE)
        ET.SubElement(root, "ipAddress").text = "127.0.0.1"
        ET.SubElement(root, "username").text = "hashguard-test"
        ET.SubElement(root, "member", id=str(self.member_id)).text = "Fake ESP"
        return _xml(root)

    def _entries(self, query: Mapping[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        try:
            start_time = _time(query["from"][0])
            end_time = _time(query["to"][0])
            start = int(query.get("start", ["1"])[0])
            size = int(query.get("size", [str(self.page_size)])[0])
        except (KeyError, ValueError):
            return 400, {}, b""
        selected = [e for e in self.entries if start_time <= e.timestamp < end_time]
        # NCMEC's order is not time order: the fake orders by a hash of the id
        selected.sort(key=lambda e: hashlib.sha256(repr(e).encode()).hexdigest())
        page = selected[start - 1 : start - 1 + size]
        root = ET.Element("queryResult", xmlns=NAMESPACE)
        for media, container in (("image", "images"), ("video", "videos")):
            chosen = [e for e in page if e.media == media]
            if chosen:
                latest = max(e.timestamp for e in chosen).strftime(_TIME)
                holder = ET.SubElement(root, container, count=str(len(chosen)), maxTimestamp=latest)
                holder.extend(e.element() for e in chosen)
        if start - 1 + size < len(selected):
            window = (
                f"from={quote(_doc_time(start_time), safe='')}"
                f"&to={quote(_doc_time(end_time), safe='')}"
            )
            paging = ET.SubElement(root, "paging")
            ET.SubElement(
                paging, "next"
            ).text = f"/v2/entries?{window}&start={start + size}&size={size}&max={len(selected)}"
        return 200, {}, _xml(root)

    def _reasons(self, kind: str) -> bytes:
        root = ET.Element("availableFeedbackReasons", xmlns=NAMESPACE)
        for name, guid in self.reasons.items():
            ET.SubElement(root, "reason", guid=guid, name=name, type=kind.capitalize())
        return _xml(root)

    def _feedback(self, where: tuple[str, ...], body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            # expat (>= 2.4) caps entity amplification; the fake listens on 127.0.0.1 only
            parsed = ET.fromstring(body)  # noqa: S314
        except ET.ParseError:
            return 400, {}, b""
        if parsed.tag != f"{{{NAMESPACE}}}feedbackSubmission":
            return 400, {}, b""
        with self._lock:
            self.feedback.append((where, parsed))
        if self.on_feedback is not None:
            self.on_feedback(where, parsed)
        return 200, {}, _xml(ET.Element("submissionResult", xmlns=NAMESPACE))


class _Handler(BaseHTTPRequestHandler):
    owner: FakeNcmec
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits for a delayed ACK

    def do_GET(self) -> None:
        self._answer("GET")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def _answer(self, method: str) -> None:
        status, headers, body = self.owner.handle(self, method)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (a timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _xml(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _doc_time(moment: datetime) -> str:
    """NCMEC's documented ``next`` links carry milliseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
