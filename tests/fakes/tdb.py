"""A loopback fake of the DSA Transparency Database API (services.md §4), following the
source's validation rules: a bearer token, ``POST /api/v1/statements`` with 1 to 100
statements, the required fields per decision ground, the enums, the lengths, the puid's
pattern, and a duplicate puid (in the request or already stored) refused with 422
``existing_puids`` — in every refusal nothing of the batch is stored.

``down`` answers 503; ``fail_next`` answers 500 to that many requests; ``stored`` maps
each puid to the statement stored; ``stores`` counts how often each puid was stored
(must stay 1); ``posts`` counts the batches received.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer

VISIBILITY = {
    "DECISION_VISIBILITY_CONTENT_REMOVED", "DECISION_VISIBILITY_CONTENT_DISABLED",
    "DECISION_VISIBILITY_CONTENT_DEMOTED", "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
    "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED", "DECISION_VISIBILITY_CONTENT_LABELLED",
    "DECISION_VISIBILITY_OTHER",
}  # fmt: skip
CONTENT_TYPES = {
    "CONTENT_TYPE_APP", "CONTENT_TYPE_AUDIO", "CONTENT_TYPE_IMAGE", "CONTENT_TYPE_PRODUCT",
    "CONTENT_TYPE_SYNTHETIC_MEDIA", "CONTENT_TYPE_TEXT", "CONTENT_TYPE_VIDEO", "CONTENT_TYPE_OTHER",
}  # fmt: skip
SOURCES = {
    "SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER", "SOURCE_TYPE_OTHER_NOTIFICATION",
    "SOURCE_VOLUNTARY",
}  # fmt: skip
DECISIONS = {
    "AUTOMATED_DECISION_FULLY", "AUTOMATED_DECISION_PARTIALLY", "AUTOMATED_DECISION_NOT_AUTOMATED",
}  # fmt: skip
GROUNDS = {"DECISION_GROUND_ILLEGAL_CONTENT", "DECISION_GROUND_INCOMPATIBLE_CONTENT"}
COUNTRIES = {
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
}  # fmt: skip
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def problems(statement: Any) -> dict[str, list[str]]:
    """What the Database's rules say of one statement (empty: valid)."""
    if not isinstance(statement, dict):
        return {"statement": ["must be an object"]}
    found: dict[str, list[str]] = {}

    def bad(field: str, message: str) -> None:
        found.setdefault(field, []).append(message)

    required = (
        "decision_ground", "content_type", "category", "content_date", "application_date",
        "decision_facts", "source_type", "automated_detection", "automated_decision", "puid",
    )  # fmt: skip
    for name in required:
        if statement.get(name) in (None, "", []):
            bad(name, f"The {name} field is required.")
    decisions = (
        "decision_visibility",
        "decision_monetary",
        "decision_provision",
        "decision_account",
    )
    if not any(statement.get(d) for d in decisions):
        bad("decision_visibility", "One of the decision fields is required.")
    visibility = statement.get("decision_visibility") or []
    if not isinstance(visibility, list) or set(visibility) - VISIBILITY:
        bad("decision_visibility", "The selected decision visibility is invalid.")
    if "DECISION_VISIBILITY_OTHER" in visibility and not statement.get("decision_visibility_other"):
        bad("decision_visibility_other", "required when decision visibility is other")
    ground = statement.get("decision_ground")
    if ground is not None and ground not in GROUNDS:
        bad("decision_ground", "The selected decision ground is invalid.")
    if ground == "DECISION_GROUND_ILLEGAL_CONTENT":
        for name, most in (
            ("illegal_content_legal_ground", 500),
            ("illegal_content_explanation", 2000),
        ):
            value = statement.get(name)
            if not value:
                bad(name, f"The {name} field is required when decision ground is illegal content.")
            elif len(value) > most:
                bad(name, f"may not be greater than {most} characters")
    if ground == "DECISION_GROUND_INCOMPATIBLE_CONTENT":
        for name in ("incompatible_content_ground", "incompatible_content_explanation"):
            if not statement.get(name):
                bad(name, f"The {name} field is required.")
    types = statement.get("content_type") or []
    if not isinstance(types, list) or set(types) - CONTENT_TYPES:
        bad("content_type", "The selected content type is invalid.")
    if "CONTENT_TYPE_OTHER" in types and not statement.get("content_type_other"):
        bad("content_type_other", "required when content is other")
    category = statement.get("category")
    if category is not None and not re.fullmatch(r"STATEMENT_CATEGORY_[A-Z_]+", str(category)):
        bad("category", "The selected category is invalid.")
    for keyword in statement.get("category_specification") or []:
        if not re.fullmatch(r"KEYWORD_[A-Z_]+", str(keyword)):
            bad("category_specification", "The selected category specification is invalid.")
    if set(statement.get("territorial_scope") or []) - COUNTRIES:
        bad("territorial_scope", "The selected territorial scope is invalid.")
    for name, low in (("content_date", "2000-01-01"), ("application_date", "2020-01-01")):
        value = statement.get(name)
        if value is not None and (
            not DATE.fullmatch(str(value)) or not low <= str(value) <= "2038-01-01"
        ):
            bad(name, f"The {name} does not match the format YYYY-MM-DD or is out of range.")
    if len(str(statement.get("decision_facts") or "")) > 5000:
        bad("decision_facts", "may not be greater than 5000 characters")
    source = statement.get("source_type")
    if source is not None and source not in SOURCES:
        bad("source_type", "The selected source type is invalid.")
    if statement.get("automated_detection") not in (None, "Yes", "No"):
        bad("automated_detection", "The selected automated detection is invalid.")
    decision = statement.get("automated_decision")
    if decision is not None and decision not in DECISIONS:
        bad("automated_decision", "The selected automated decision is invalid.")
    puid = statement.get("puid")
    if puid is not None and not re.fullmatch(r"[a-zA-Z0-9_-]{1,500}", str(puid)):
        bad("puid", "The puid format is invalid.")
    return found


class FakeTransparencyDatabase(LoopbackServer):
    def __init__(self, token: str = "tdb-test-token") -> None:
        super().__init__()
        self.token = token
        self.down = False
        self.fail_next = 0
        self.stored: dict[str, dict[str, Any]] = {}
        self.stores: Counter[str] = Counter()
        self.posts = 0
        #: how many statements each batch received held
        self.batch_sizes: list[int] = []
        self.refused_auth = 0
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def answer(self, body: Any) -> tuple[int, dict[str, Any]]:
        """The Database's answer to ``POST /api/v1/statements`` with ``body``."""
        statements = body.get("statements") if isinstance(body, dict) else None
        if not isinstance(statements, list) or not 1 <= len(statements) <= 100:
            message = "The statements field must have between 1 and 100 items."
            return 422, {"message": message, "errors": {"statements": [message]}}
        errors = {
            f"statement_{i}": found for i, s in enumerate(statements) if (found := problems(s))
        }
        if errors:
            return 422, {"errors": errors}
        puids = [s["puid"] for s in statements]
        with self._lock:
            duplicates = sorted({p for p in puids if p in self.stored or puids.count(p) > 1})
            if duplicates:
                message = "The platform identifier(s) are not all unique within this call."
                return 422, {
                    "message": message,
                    "errors": {"puid": [message], "existing_puids": duplicates},
                }
            out = []
            for statement in statements:
                echo = {**statement, "uuid": str(uuid.uuid4()), "platform_name": "Example"}
                self.stored[statement["puid"]] = statement
                self.stores[statement["puid"]] += 1
                out.append(echo)
        return 201, {"statements": out}


def _handler_for(fake: FakeTransparencyDatabase) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            return None

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _gate(self) -> bool:
            if fake.down:
                self._send(503, {"message": "Service Unavailable"})
                return False
            if fake.fail_next > 0:
                fake.fail_next -= 1
                self._send(500, {"message": "Server Error"})
                return False
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                fake.refused_auth += 1
                self._send(401, {"message": "Unauthenticated."})
                return False
            return True

        def do_GET(self) -> None:
            if not self._gate():
                return
            if self.path == "/api/ping":
                self._send(200, {"message": "pong"})
                return
            found = re.fullmatch(r"/api/v1/statement/existing-puid/([A-Za-z0-9_-]+)", self.path)
            if found:
                exists = found.group(1) in fake.stored
                self._send(302 if exists else 404, {"puid": found.group(1)})
                return
            self._send(404, {"message": "Not Found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self._gate():
                return
            if self.path != "/api/v1/statements":
                self._send(404, {"message": "Not Found"})
                return
            fake.posts += 1
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {"message": "malformed JSON"})
                return
            if isinstance(body, dict) and isinstance(body.get("statements"), list):
                fake.batch_sizes.append(len(body["statements"]))
            code, answer = fake.answer(body)
            self._send(code, answer)

    return Handler
