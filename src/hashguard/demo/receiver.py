"""The review demo's webhook receiver: a loopback endpoint that checks each delivery's
Standard Webhooks signature and says what arrived, so a decision's webhooks are visible."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hashguard.actions.webhooks import verify

#: the largest delivery the receiver reads
MAX_BODY = 1 << 20


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def describe(event: dict[str, Any]) -> str:
    """One line about a delivered event: its type and what it is about."""
    data = event.get("data") or {}
    kind = str(event.get("type", "?"))
    if "ncmec_report_id" in data:
        return (
            f"{kind}: case #{data['case']} reported to NCMEC ({data.get('environment')}), "
            f"report id {data['ncmec_report_id']}; preserve the account's data until "
            f"{str(data.get('preserve_until'))[:10]}"
        )
    if "case" in data:
        return f"{kind}: case #{data['case']} now {data.get('state')}"
    if "path" in data:
        decision = (data.get("decision") or {}).get("action")
        return f"{kind}: {data['path']}" + (f" ({decision})" if decision else "")
    return kind


@dataclass
class WebhookReceiver:
    """Listens on 127.0.0.1 (a free port unless given) in a daemon thread until ``stop``."""

    say: Callable[[str], None]
    secret: str = field(default_factory=new_secret)
    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if not 0 < length <= MAX_BODY:
                    self.send_error(413 if length else 400)
                    return
                body = self.rfile.read(length)
                try:
                    verify(receiver.secret, body, dict(self.headers.items()))
                    event = json.loads(body)
                except Exception:  # noqa: BLE001 - any bad delivery is refused the same way
                    receiver.say("webhook refused: bad signature or body")
                    self.send_error(400)
                    return
                receiver.received.append(event)
                receiver.say(f"webhook {describe(event)}")
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the line above says what arrived

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, name="demo-webhooks", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
