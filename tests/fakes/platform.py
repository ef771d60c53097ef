"""A loopback platform answering hashguard's notice callback (``notices/callback.py``):
what each URL or content id is (content bytes, missing, an error status, slow, held
until released, signed with the wrong secret, a local path, any answer given), answers
signed with Standard Webhooks like the platform's own."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


class Platform:
    """``content`` maps a URL (or content id) to ``(kind, value)``: ``bytes`` (the
    content), ``gone`` (not on the platform), ``status`` (that HTTP status), ``slow``
    (answers after ``release`` is set, at most 5 s), ``hold`` (sets ``arrived``, then
    waits for ``release`` before answering with ``value``'s bytes), ``badsig`` (bytes
    signed with ``wrong_secret``), ``location`` (a local path), ``answer`` (``value``
    is the whole JSON answer, signed). Anything not named is ``gone``."""

    def __init__(self, secret: str, *, wrong_secret: str) -> None:
        self.content: dict[str, tuple[str, Any]] = {}
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.requests: list[dict[str, Any]] = []
        #: how many callbacks asked for each URL (or content id)
        self.asked: Counter[str] = Counter()
        secret_ok, secret_wrong = secret, wrong_secret
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                data = Webhook(secret_ok).verify(body, dict(self.headers))["data"]
                platform.requests.append(data)
                name = data["url"] or data["content_id"]
                platform.asked[name] += 1
                kind, value = platform.content.get(name, ("gone", 0))
                if kind == "status":
                    self._send(value, {"error": "boom"})
                elif kind == "slow":
                    platform.release.wait(5)
                    self._send(200, {"found": False})
                elif kind == "gone":
                    self._send(200, {"found": False})
                elif kind == "location":
                    self._send(200, {"found": True, "content_id": "c-loc", "location": value})
                elif kind == "answer":
                    self._send(200, value)
                else:
                    if kind == "hold":
                        platform.arrived.set()
                        platform.release.wait(30)
                    answer = {
                        "found": True,
                        "content_id": f"c-{hashlib.sha256(value).hexdigest()[:8]}",
                        "data": base64.b64encode(value).decode(),
                    }
                    self._send(200, answer, secret_wrong if kind == "badsig" else secret_ok)

            def _send(self, status: int, answer: Any, secret: str = secret_ok) -> None:
                raw = json.dumps(answer).encode()
                msg_id = self.headers["webhook-id"]
                now = datetime.now(UTC)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.send_header("webhook-id", msg_id)
                self.send_header("webhook-timestamp", str(int(now.timestamp())))
                self.send_header(
                    "webhook-signature", Webhook(secret).sign(msg_id, now, raw.decode())
                )
                self.end_headers()
                self.wfile.write(raw)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *_: object) -> None:
                return None  # a client that gave up (a timeout, a killed resolver)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/resolve"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
