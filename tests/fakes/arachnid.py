"""A fake C3P Arachnid Shield API, from its documented contract and public SDKs.

HTTP Basic auth; ``POST /v1/pdq/ {"hashes": [base64 of 32 bytes]}`` answers
``{"scanned_hashes": {b64: {classification, match_type, near_match_details}}}``;
``POST /v1/media/`` takes raw bytes with the media's Content-Type and answers a
ScannedMedia. Errors are ``{"detail": ...}``. Hashes and distances are made up.

Behaviours beyond the contract's: ``null_entry`` answers null for each PDQ hash (the
Python SDK's "no match"), ``missing_fields`` drops the classification. The refusal of
``unauthorized`` echoes the username, a worst case for the adapter's redaction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from tests.fakes import FakeService, Recorded, Reply

PDQ = "/v1/pdq/"
MEDIA = "/v1/media/"
MEDIA_PREFIXES = ("image/", "video/")


class FakeArachnidShield(FakeService):
    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self.username = username
        self.password = password
        #: the classification of a match
        self.classification = "csam"
        #: the distance put into near-match details (None: left out)
        self.distance: int | None = 1200

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        user = self._user(request)
        if user != (self.username, self.password):
            return Reply.json(401, {"detail": "Invalid username/password."})
        if behaviour == "unauthorized":
            return Reply.json(401, {"detail": f"User {user[0]} may not use this endpoint."})
        if request.method != "POST" or request.path not in (PDQ, MEDIA):
            return Reply.json(404, {"detail": "Not found."})
        if behaviour == "rate_limited":
            return self.throttled({"detail": "Request was throttled."})
        if behaviour == "server_error":
            return Reply.json(503, {"detail": "Service unavailable."})
        if behaviour == "malformed":
            return Reply(status=200, body=b"{not json", headers={"Content-Type": "text/plain"})
        if request.path == PDQ:
            return self._pdq(request, behaviour)
        return self._media(request, behaviour)

    def _user(self, request: Recorded) -> tuple[str, str] | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password

    def _pdq(self, request: Recorded, behaviour: str) -> Reply:
        try:
            hashes = json.loads(request.body)["hashes"]
            valid = all(len(base64.b64decode(h, validate=True)) == 32 for h in hashes)
        except (ValueError, KeyError, TypeError, binascii.Error):
            valid = False
        if not valid or not hashes:
            return Reply.json(422, {"detail": [{"loc": ["body", "hashes"], "msg": "invalid"}]})
        if behaviour == "null_entry":
            return Reply.json(200, {"scanned_hashes": dict.fromkeys(hashes)})
        return Reply.json(
            200, {"scanned_hashes": {h: self._verdict(behaviour, many=False) for h in hashes}}
        )

    def _media(self, request: Recorded, behaviour: str) -> Reply:
        if not request.headers.get("content-type", "").startswith(MEDIA_PREFIXES):
            return Reply.json(415, {"detail": "Unsupported media type."})
        sha1 = base64.b32encode(hashlib.sha1(request.body).digest()).decode()
        scanned = {
            "sha1_base32": sha1,
            "sha256_hex": hashlib.sha256(request.body).hexdigest(),
            "size_bytes": len(request.body),
            **self._verdict(behaviour, many=True),
        }
        return Reply.json(200, scanned)

    def _verdict(self, behaviour: str, *, many: bool) -> dict[str, Any]:
        if behaviour == "no_match":
            return {
                "classification": "no-known-match",
                "match_type": None,
                "near_match_details": [] if many else None,
            }
        if behaviour == "missing_fields":
            return {"match_type": None}
        if behaviour != "match":
            raise ValueError(f"unknown behaviour {behaviour!r}")
        detail: dict[str, Any] = {
            "timestamp": 0.0,
            "sha1_base32": "MADEUPMADEUPMADEUPMADEUPMADEUP22",
            "sha256_hex": "0" * 63 + "1",
            "classification": self.classification,
        }
        if self.distance is not None:
            detail["distance"] = self.distance
        return {
            "classification": self.classification,
            "match_type": "near",
            "near_match_details": [detail] if many else detail,
        }
