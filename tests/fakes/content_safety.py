"""A fake of Google's Content Safety API, from its documented request and answer
(services.md §1: ``POST /v1beta1/images:classify?key=<key>``, or the key in the
``x-goog-api-key`` header, with ``{"images":
[<base64>]}`` → ``{"reviewPriorities": [<level>], "modelVersion": ...}``). Errors take
Google's JSON error shape (``{"error": {"code", "message", "status"}}``).

Behaviours: ``scored`` (every image ``priority``, by default ``VERY_HIGH``),
``no_match`` (``VERY_LOW``), and the contract's ``timeout``, ``unauthorized`` (403),
``rate_limited`` (429 with Retry-After), ``server_error`` (503), ``malformed``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tests.fakes import FakeService, Recorded, Reply

CLASSIFY = "/v1beta1/images:classify"
MODEL_VERSION = "made-up-model-0001"


def _error(code: int, status: str, message: str) -> Reply:
    return Reply.json(code, {"error": {"code": code, "message": message, "status": status}})


class FakeContentSafety(FakeService):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.priority = "VERY_HIGH"

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        # Google APIs take the key as ``?key=`` or in the ``x-goog-api-key`` header
        given = request.query.get("key", [request.headers.get("x-goog-api-key", "")])
        if given != [self.api_key]:
            return _error(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."
            )
        if behaviour == "unauthorized":
            return _error(403, "PERMISSION_DENIED", "The caller does not have permission")
        if request.method != "POST" or request.path != CLASSIFY:
            return _error(404, "NOT_FOUND", "Not found")
        try:
            body: Any = json.loads(request.body)
            images = [base64.b64decode(i, validate=True) for i in body["images"]]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _error(400, "INVALID_ARGUMENT", "images must be a list of base64 strings")
        if behaviour == "rate_limited":
            headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
            return Reply.json(
                429,
                {
                    "error": {
                        "code": 429,
                        "message": "Quota exceeded",
                        "status": "RESOURCE_EXHAUSTED",
                    }
                },
                **headers,
            )
        if behaviour == "server_error":
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        if behaviour == "malformed":
            return Reply(status=200, body=b"<html>not json", headers={"Content-Type": "text/html"})
        if behaviour not in ("scored", "no_match", "match"):
            raise ValueError(f"unknown behaviour {behaviour!r}")
        level = "VERY_LOW" if behaviour == "no_match" else self.priority
        return Reply.json(
            200, {"reviewPriorities": [level for _ in images], "modelVersion": MODEL_VERSION}
        )
