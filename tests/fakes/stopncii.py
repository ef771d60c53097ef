"""A loopback fake of StopNCII.org's hash API, written from its documented contract.

The shapes follow ``reference/services.md`` and python-threatexchange's
``exchanges/clients/stopncii/api.py``: ``GET /v1/FetchHashes?startTimestamp&pageSize
&nextPageToken`` answers ``{count, nextPageToken, nextSetTimestamp, hasMoreRecords,
hashRecords[{lastModtimestamp, signalType, hashValue, hashStatus, caseNumbers,
CSPFeedbacks}]}``; ``POST /v1/SubmitFeedback {count, hashFeedbacks[{hashValue,
feedbackValue, tags}]}``. Every call carries ``Ocp-Apim-Subscription-Key``, and the
``x-functions-key`` of its endpoint.

The fake lists records with ``lastModtimestamp >= startTimestamp`` in time order;
``nextSetTimestamp`` is one past the newest listed. Page tokens are opaque to the client
and stay valid until ``expire_tokens()``. Every value is made up (random hex from a
seeded generator); nothing here is a real hash.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from typing import Any, ClassVar

from tests.fakes import FakeService, Recorded, Reply

SUBSCRIPTION_KEY = "made-up-subscription-key-5c1e"
FETCH_KEY = "made-up-fetch-function-key-82d0"
FEEDBACK_KEY = "made-up-feedback-function-key-4a7b"
FIRST_TIMESTAMP = 1_600_000_000


def made_up_hex(rng: random.Random, digits: int) -> str:
    value = rng.getrandbits(digits * 4) | 1  # never all zeros
    return f"{value:0{digits}x}"


def record(
    signal_type: str,
    hash_value: Any,
    *,
    timestamp: int,
    status: str = "Active",
    feedbacks: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "lastModtimestamp": timestamp,
        "signalType": signal_type,
        "hashValue": hash_value,
        "hashStatus": status,
        "caseNumbers": {f"case-{timestamp}": status},
        "CSPFeedbacks": [
            {"feedbackValue": value, "tags": [], "source": f"platform-{n}"}
            for n, value in enumerate(feedbacks)
        ],
    }


def sample_records(seed: int = 5) -> list[dict[str, Any]]:
    """Twelve ImagePDQ and four VideoMD5 hashes, two Withdrawn/Deleted tombstones, a
    VideoTMK and a Text record (skipped), and three malformed records."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    when = iter(range(FIRST_TIMESTAMP, FIRST_TIMESTAMP + 1000, 7))
    for n in range(12):
        feedback = ("Blocked",) if n % 4 == 0 else ()
        records.append(
            record("ImagePDQ", made_up_hex(rng, 64), timestamp=next(when), feedbacks=feedback)
        )
    for _ in range(4):
        records.append(record("VideoMD5", made_up_hex(rng, 32), timestamp=next(when)))
    records.append(
        record("ImagePDQ", made_up_hex(rng, 64), timestamp=next(when), status="Withdrawn")
    )
    records.append(record("VideoMD5", made_up_hex(rng, 32), timestamp=next(when), status="Deleted"))
    records.append(record("VideoTMK", made_up_hex(rng, 64), timestamp=next(when)))
    records.append(record("Text", "made-up text", timestamp=next(when)))
    records.append(record("ImagePDQ", "not a hash", timestamp=next(when)))
    records.append(record("ImagePDQ", "0" * 64, timestamp=next(when)))
    records.append({"lastModtimestamp": next(when), "signalType": "ImagePDQ"})
    # a timestamp shared by two records: paging must not split them badly
    records.append(
        record("ImagePDQ", made_up_hex(rng, 64), timestamp=records[-1]["lastModtimestamp"])
    )
    return records


class FakeStopNcii(FakeService):
    """``behaviour`` (default ``ok``) or the queued ``script``: ``unauthorized`` (401),
    ``rate_limited`` (429), ``server_error`` (500), ``timeout``, ``malformed`` (a 200
    that is not JSON), ``shapeless`` (JSON without the documented fields).
    ``feedback`` holds every accepted SubmitFeedback body."""

    hang_seconds: ClassVar[float] = 2.0

    def __init__(
        self,
        records: list[dict[str, Any]] | None = None,
        *,
        subscription_key: str = SUBSCRIPTION_KEY,
        fetch_key: str = FETCH_KEY,
        feedback_key: str = FEEDBACK_KEY,
    ) -> None:
        super().__init__()
        self.behaviour = "ok"
        self.records = list(sample_records() if records is None else records)
        self.keys = {"subscription": subscription_key, "fetch": fetch_key}
        self.keys["feedback"] = feedback_key
        self.feedback: list[Any] = []
        self._generation = 0

    # -- changing the list ---------------------------------------------------------------

    def newest(self) -> int:
        return max(int(r["lastModtimestamp"]) for r in self.records)

    def set_status(self, hash_value: str, status: str) -> None:
        """A case changes: the record moves to the end of the listing."""
        with self._lock:
            for item in self.records:
                if item.get("hashValue") == hash_value:
                    item["hashStatus"] = status
                    item["lastModtimestamp"] = self.newest() + 1
                    return
        raise KeyError("no such record")

    def add(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.records.append(item)

    def expire_tokens(self) -> None:
        with self._lock:
            self._generation += 1

    def fetches(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/FetchHashes"]

    # -- answering -----------------------------------------------------------------------

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        if behaviour == "unauthorized":
            return _denied()
        if behaviour == "rate_limited":
            return self.throttled({"statusCode": 429, "message": "Rate limit is exceeded."})
        if behaviour == "server_error":
            return Reply.json(500, {"message": "internal error"})
        if behaviour == "malformed":
            return Reply(status=200, body=b"<html>gateway", headers={"Content-Type": "text/html"})
        if behaviour == "shapeless":
            return Reply.json(200, {"records": []})
        if request.headers.get("ocp-apim-subscription-key") != self.keys["subscription"]:
            return _denied()
        if request.method == "GET" and request.path == "/v1/FetchHashes":
            if request.headers.get("x-functions-key") != self.keys["fetch"]:
                return _denied()
            return self._fetch(request)
        if request.method == "POST" and request.path == "/v1/SubmitFeedback":
            if request.headers.get("x-functions-key") != self.keys["feedback"]:
                return _denied()
            return self._submit_feedback(request)
        return Reply.json(404, {"statusCode": 404, "message": "Resource not found"})

    def _fetch(self, request: Recorded) -> Reply:
        try:
            start = int(request.query["startTimestamp"][0])
            size = int(request.query.get("pageSize", ["800"])[0])
        except (KeyError, ValueError):
            return Reply.json(400, {"message": "startTimestamp and pageSize must be integers"})
        offset = 0
        if "nextPageToken" in request.query:
            cursor = self._cursor(request.query["nextPageToken"][0])
            if cursor is None or cursor[0] != start:
                return Reply.json(400, {"message": "invalid or expired nextPageToken"})
            offset = cursor[1]
        with self._lock:
            listed = sorted(
                (r for r in self.records if int(r["lastModtimestamp"]) >= start),
                key=lambda r: (int(r["lastModtimestamp"]), str(r.get("hashValue"))),
            )
            generation = self._generation
        page = listed[offset : offset + size]
        more = offset + size < len(listed)
        token = None
        if more:
            raw = json.dumps({"g": generation, "s": start, "o": offset + size}).encode()
            token = base64.urlsafe_b64encode(raw).decode()
        newest = max((int(r["lastModtimestamp"]) for r in listed), default=start - 1)
        return Reply.json(
            200,
            {
                "count": len(page),
                "nextPageToken": token,
                "nextSetTimestamp": newest + 1,
                "hasMoreRecords": more,
                "hashRecords": page,
            },
        )

    def _cursor(self, token: str) -> tuple[int, int] | None:
        try:
            saved = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (binascii.Error, ValueError):
            return None
        with self._lock:
            if not isinstance(saved, dict) or saved.get("g") != self._generation:
                return None
        return int(saved["s"]), int(saved["o"])

    def _submit_feedback(self, request: Recorded) -> Reply:
        try:
            body = json.loads(request.body)
        except ValueError:
            return Reply.json(400, {"message": "body is not JSON"})
        items = body.get("hashFeedbacks") if isinstance(body, dict) else None
        if not isinstance(items, list) or body.get("count") != len(items):
            return Reply.json(400, {"message": "count must equal len(hashFeedbacks)"})
        for item in items:
            if set(item) != {"hashValue", "feedbackValue", "tags"}:
                return Reply.json(400, {"message": "unexpected feedback fields"})
        with self._lock:
            self.feedback.append(body)
        return Reply.json(200, {"count": len(items)})


def _denied() -> Reply:
    return Reply.json(
        401,
        {
            "statusCode": 401,
            "message": "Access denied due to invalid subscription key or function key.",
        },
    )
