"""A loopback webhook receiver that verifies Standard Webhooks signatures and applies each
event once per ``webhook-id``, and can fail, drop connections or answer slowly on request.

``script`` queues what the next deliveries meet: ``fail`` (500, nothing applied),
``drop`` (connection reset before anything is applied), ``apply_drop`` (the event is
applied, then the connection is reset: the sender never learns it succeeded) and
``ok``. A request whose signature does not verify is refused with 401.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError

from tests.fakes.loopback import LoopbackServer


@dataclass(frozen=True, kw_only=True)
class Delivery:
    headers: dict[str, str]  # lower-case names
    body: bytes
    verified: bool


class WebhookReceiver(LoopbackServer):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.script: list[str] = []
        #: seconds each delivery takes before it is applied (a slow receiver)
        self.delay_seconds = 0.0
        self.deliveries: list[Delivery] = []
        #: webhook-id -> the payload applied for it (the receiver's effect)
        self.applied: dict[str, Any] = {}
        #: how many times each webhook-id's effect was applied (must stay 1)
        self.effects: Counter[str] = Counter()
        self.refused = 0
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks"

    def count(self, webhook_id: str) -> int:
        with self._lock:
            return sum(1 for d in self.deliveries if d.headers.get("webhook-id") == webhook_id)

    def _next(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else "ok"

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[str, int]:
        """What to do with one delivery: ("answer" | "drop", status)."""
        try:
            payload = Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            payload, verified = None, False
        with self._lock:
            self.deliveries.append(Delivery(headers=headers, body=body, verified=verified))
            if not verified:
                self.refused += 1
        if not verified:
            return "answer", 401
        behaviour = self._next()
        if behaviour == "fail":
            return "answer", 500
        if behaviour == "drop":
            return "drop", 0
        if self.delay_seconds:
            self._stopping.wait(self.delay_seconds)
        msg_id = headers["webhook-id"]
        with self._lock:
            if msg_id not in self.applied:  # the idempotency key makes retries harmless
                self.applied[msg_id] = payload
                self.effects[msg_id] += 1
        if behaviour == "apply_drop":
            return "drop", 0
        return "answer", 204


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            what, status = receiver.receive(headers, body)
            try:
                if what == "drop":
                    # RST instead of an answer: the sender sees the connection dropped
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender went away (killed mid-delivery)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
