"""A loopback proxy in front of the moto S3 server: logs every request the store receives
and answers chosen ones itself (503 SlowDown, 403 AccessDenied, a body cut short), as a
real S3 endpoint would."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


@dataclass
class Faults:
    """What the proxy answers itself: ``slowdowns`` GET requests get 503 SlowDown;
    GETs of a path in ``denied`` get 403; of a path in ``truncated``, half a body."""

    slowdowns: int = 0
    denied: set[str] = field(default_factory=set)
    truncated: set[str] = field(default_factory=set)


@dataclass
class Proxy:
    url: str
    log: list[tuple[str, str, int]]
    faults: Faults

    def requests(self, method: str, path_prefix: str = "") -> list[str]:
        return [p for m, p, _ in self.log if m == method and p.startswith(path_prefix)]


@contextmanager
def s3_proxy(target: str) -> Iterator[Proxy]:
    upstream = urlsplit(target)
    log: list[tuple[str, str, int]] = []
    faults = Faults()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _answer(self, status: int, body: bytes, length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(length if length is not None else len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(size) if size else b""
            path = urlsplit(self.path).path
            with lock:
                slow = (
                    self.command == "GET" and faults.slowdowns > 0 and "list-type" not in self.path
                )
                if slow:
                    faults.slowdowns -= 1
            if slow:
                log.append((self.command, self.path, 503))
                self._answer(503, SLOWDOWN)
                return
            if self.command in ("GET", "HEAD") and path in faults.denied:
                log.append((self.command, self.path, 403))
                self._answer(403, DENIED if self.command == "GET" else b"")
                return
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = upstream.netloc
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            conn.close()
            log.append((self.command, self.path, answer.status))
            cut = self.command == "GET" and path in faults.truncated and answer.status == 200
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            if cut:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data[: len(data) // 2] if cut else data)
            if cut:
                self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Proxy(url=f"http://127.0.0.1:{server.server_address[1]}", log=log, faults=faults)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
