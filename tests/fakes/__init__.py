"""Loopback fakes of the vetted remote services, written from their documented contracts.

Each fake is a small threaded HTTP server on 127.0.0.1 that checks credentials, records
every request (so tests can assert what left the platform) and answers according to
``behaviour`` (or, first, the behaviours queued in ``script``).
"""

from __future__ import annotations

import io
import json
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from hashguard.domain.signals import FileSignals, PdqMode
from hashguard.hashing.kernel import HashOptions, hash_data
from tests.fakes.loopback import LoopbackServer

#: what every fake can be told to do (the contract's behaviours)
BEHAVIOURS = (
    "match",
    "no_match",
    "timeout",
    "unauthorized",
    "rate_limited",
    "server_error",
    "malformed",
)


@dataclass(frozen=True, kw_only=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True, kw_only=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, **headers: str) -> Reply:
        return cls(
            status=status,
            body=json.dumps(value).encode(),
            headers={"Content-Type": "application/json; charset=utf-8", **headers},
        )


class FakeService(LoopbackServer, ABC):
    """Base of the fakes: ``with Fake(...) as fake: fake.url``."""

    #: how long a ``timeout`` request hangs (ended early when the fake stops)
    hang_seconds: ClassVar[float] = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.behaviour = "no_match"
        self.script: list[str] = []
        #: seconds to wait before answering any request (a slow service)
        self.delay_seconds = 0.0
        #: the Retry-After header sent with 429 (and 503) answers; None: left out
        self.retry_after: str | None = "0"
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def url(self) -> str:
        return self.base_url

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def _next_behaviour(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else self.behaviour

    def _serve(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
        behaviour = self._next_behaviour()
        if self.delay_seconds:
            self._stopping.wait(self.delay_seconds)
        if behaviour == "timeout":
            self._stopping.wait(self.hang_seconds)
            behaviour = "no_match"
        return self.answer(request, behaviour)

    def throttled(self, body: Any, status: int = 429) -> Reply:
        headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
        return Reply.json(status, body, **headers)

    @abstractmethod
    def answer(self, request: Recorded, behaviour: str) -> Reply:
        """The reply to ``request`` when the fake behaves as ``behaviour``."""


def _handler_for(service: FakeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so no idle keep-alive threads linger
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            recorded = Recorded(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            reply = service._serve(recorded)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:
                pass  # the client gave up (a timeout test): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; requests are recorded instead

    return Handler


# -- benign media for the clients of the fakes ---------------------------------------------


def benign_image(
    width: int = 256, height: int = 256, image_format: str = "PNG", seed: int = 7
) -> bytes:
    """A generated gradient with noise: benign, and textured enough for a good PDQ."""
    rng = np.random.default_rng(seed)
    gradient = np.add.outer(np.arange(height), np.arange(width)) * 255 // (width + height)
    noisy = gradient[..., None] + rng.integers(0, 60, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, image_format)
    return buffer.getvalue()


def flat_image(width: int = 256, height: int = 256) -> bytes:
    """One grey: PDQ gives it quality 0, so no hash of good quality."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def signals_of(data: bytes) -> FileSignals:
    """The signals hashguard's own hashing gives ``data``."""
    output = hash_data(data, HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE))
    assert output.signals is not None
    return output.signals
