"""A recording proxy in front of a real hashguard service: what a client sent, on the wire.

Not a fake of the service: ``forward`` passes each request to the real one and its answer
back. The failures a client must survive are made here: ``timeout`` (a stall),
``refuse`` (the connection closed without an answer), ``unauthorized``, ``rate_limited``,
``server_error`` and ``malformed`` (a 200 that is not a lookup answer).
"""

from __future__ import annotations

import httpx

from tests.fakes import FakeService, Recorded, Reply


class HashguardProxy(FakeService):
    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.behaviour = "forward"

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        if behaviour in ("forward", "match", "no_match"):
            forwarded = httpx.request(
                request.method,
                self.upstream + request.path,
                content=request.body,
                headers={
                    k: v
                    for k, v in request.headers.items()
                    if k in ("authorization", "content-type")
                },
                timeout=30,
            )
            return Reply(
                status=forwarded.status_code,
                body=forwarded.content,
                headers={"Content-Type": forwarded.headers.get("content-type", "")},
            )
        if behaviour == "refuse":
            raise ConnectionAbortedError("the proxy refuses")
        if behaviour == "unauthorized":
            return Reply.json(401, {"title": "Unauthorized", "detail": "unknown token"})
        if behaviour == "rate_limited":
            return self.throttled({"title": "Too many requests"})
        if behaviour == "server_error":
            return self.throttled({"title": "Not checked"}, status=503)
        return Reply.json(200, {"unexpected": True})
