"""The review demo's remote services: one loopback fake answering as PhotoDNA Cloud,
Thorn Safer (Hive's combined CSAM endpoint) and Google's Content Safety API do in their
public documentation (services.md §1, safer-hive.md), and the adapters configured
against it in test mode.

The fake answers by the content it is sent (the MD5 of the image): images the demo
names ``matched`` are matches of the services' *test* sources (PhotoDNA's ``Test``
source, Safer's ``test`` hash set), images named ``scored`` get a high classifier
prediction from Safer and ``VERY_HIGH`` from Content Safety; everything else is no
match (Safer's prediction low, Content Safety ``VERY_LOW``). Source ids, tracking ids
and keys are made up; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Collection
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any

from pydantic import SecretStr

from hashguard.classify.content_safety import CLASSIFY_PATH, ContentSafetyClassifier
from hashguard.demo.loopback import LoopbackServer
from hashguard.remote.base import RemoteMatcher
from hashguard.remote.photodna import MATCH_PATH, PhotoDnaMatcher
from hashguard.remote.safer import SYNC_PATH, SaferMatcher

#: what the demo's classifiers say about an image no list matched (Safer's prediction,
#: Content Safety's review priority); the ``scored`` images get the high ones
LOW, HIGH = (0.08, "VERY_LOW"), (0.93, "VERY_HIGH")
#: the review demo opens a case ("classifier, no list match") at this priority
REVIEW_PRIORITY = "HIGH"


class DemoRemote(LoopbackServer):
    """``with DemoRemote(matched=md5s, scored=md5s) as fake: fake.matchers()``."""

    def __init__(self, matched: Collection[str], scored: Collection[str]) -> None:
        super().__init__()
        self.matched = frozenset(matched)
        self.scored = frozenset(scored)
        self.keys = {name: secrets.token_urlsafe(16) for name in ("photodna", "safer", "google")}
        #: (service, md5) of every call, in order
        self.calls: list[tuple[str, str]] = []

    def matchers(self, *, budget_timeout: float = 5.0) -> list[RemoteMatcher]:
        """PhotoDNA, Safer and Content Safety configured against the fake, in test mode;
        Content Safety opens a review case at ``REVIEW_PRIORITY``."""
        common = {"base_url": self.base_url, "allow_media": True, "test_mode": True}
        common |= {"timeout_seconds": budget_timeout, "requests_per_second": 100.0}
        built = [
            PhotoDnaMatcher.configure(common, {"subscription_key": self._key("photodna")}),
            SaferMatcher.configure(common, {"api_key": self._key("safer")}),
            ContentSafetyClassifier.configure(
                common | {"review_priority": REVIEW_PRIORITY}, {"api_key": self._key("google")}
            ),
        ]
        return [m for m in built if isinstance(m, RemoteMatcher)]

    def _key(self, name: str) -> SecretStr:
        return SecretStr(self.keys[name])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- the answers, by service ------------------------------------------------------

    def photodna(self, image: bytes) -> tuple[int, dict[str, Any]]:
        md5 = self._seen("photodna", image)
        answer: dict[str, Any] = {
            "TrackingId": f"demo-{uuid.uuid4()}",
            "Status": {"Code": 3000, "Description": "OK"},
            "ContentId": None,
            "IsMatch": md5 in self.matched,
            "MatchDetails": None,
        }
        if md5 in self.matched:
            answer["MatchDetails"] = {
                "AdvancedInfo": [],
                "MatchFlags": [
                    {
                        "AdvancedInfo": [{"Key": "MatchId", "Value": f"demo-{md5[:8]}"}],
                        "Source": "Test",
                        "Violations": ["A1"],
                    }
                ],
            }
        return 200, answer

    def safer(self, image: bytes) -> tuple[int, dict[str, Any]]:
        md5 = self._seen("safer", image)
        matched = md5 in self.matched
        score = HIGH[0] if md5 in self.scored else LOW[0]
        source = {
            "hashSet": "test",
            "matches": [
                {
                    "sourceId": f"demo-source-{md5[:8]}",
                    "matchDistance": 2,
                    "matchMetadata": {},
                    "matchTransformations": [],
                }
            ],
        }
        output = {
            "file": {
                "fileType": "image",
                "reasons": ["matched"] if matched else [],
                "classifierPrediction": None if matched else {"csam": score, "other": 1 - score},
            },
            "hashes": [
                {
                    "hashType": "saferhashv0",
                    "matchTypes": ["CSAM"] if matched else [],
                    "reasons": ["matched"] if matched else [],
                    "sources": [source] if matched else [],
                    "isLetterboxed": False,
                    "startTimestamp": None,
                    "endTimestamp": None,
                    "frameIndex": None,
                }
            ],
        }
        task = f"demo-task-{uuid.uuid4()}"
        return 200, {
            "id": task,
            "code": 200,
            "status": [
                {
                    "status": {"code": 200, "message": "SUCCESS"},
                    "response": {"input": {"id": task}, "output": output},
                }
            ],
        }

    def content_safety(self, images: list[bytes]) -> tuple[int, dict[str, Any]]:
        levels = [
            HIGH[1] if self._seen("content_safety", image) in self.scored else LOW[1]
            for image in images
        ]
        return 200, {"reviewPriorities": levels, "modelVersion": "demo-model"}

    def _seen(self, service: str, image: bytes) -> str:
        md5 = hashlib.md5(image, usedforsecurity=False).hexdigest()
        self.calls.append((service, md5))
        return md5


def _multipart_media(content_type: str, body: bytes) -> bytes | None:
    """The ``media`` part of a multipart form (Hive's upload)."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "media":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


def _handler_for(fake: DemoRemote) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            status, answer = self._answer(path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
            if path == MATCH_PATH:
                if self.headers.get("Ocp-Apim-Subscription-Key") != fake.keys["photodna"]:
                    return 401, {"statusCode": 401, "message": "Access denied"}
                return fake.photodna(body)
            if path == SYNC_PATH:
                if self.headers.get("Authorization") != f"Token {fake.keys['safer']}":
                    return 401, {"message": "Invalid API key"}
                media = _multipart_media(self.headers.get("Content-Type", ""), body)
                if media is None:
                    return 400, {"message": "exactly one of media or url is required"}
                return fake.safer(media)
            if path == CLASSIFY_PATH:
                if self.headers.get("x-goog-api-key") != fake.keys["google"]:
                    return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}}
                try:
                    images = [base64.b64decode(i) for i in json.loads(body)["images"]]
                except (ValueError, KeyError, TypeError):
                    return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}}
                return fake.content_safety(images)
            return 404, {"message": "Not found"}

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
