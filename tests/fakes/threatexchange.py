"""A loopback fake of Meta ThreatExchange's Graph API, written from its documented contract.

The shapes follow ``reference/services.md``, Meta's public ``/threat_updates`` page and
python-threatexchange's ``exchanges/clients/fb_threatexchange/``: ``GET /{version}/
{privacy_group}/threat_updates?start_time&stop_time&types&limit&fields`` answers
``{"data": [updates], "paging": {"cursors": {...}, "next": url}}``, ordered by update
time, where each update is a ThreatIndicator with ``should_delete``;
``GET /{version}/{indicator}?fields=descriptors{id}``; ``POST /{version}/{descriptor}
?reactions=NAME``. The app token is accepted as ``Authorization: Bearer``/``OAuth`` or
as ``access_token``; a wrong one gets Graph's 400 ``OAuthException`` (code 190).

Like Graph API, ``paging.next`` echoes ``access_token`` (always, here: the worst case).
The fake's window is ``start_time <= last_updated < stop_time``; cursors are keyset
cursors, valid until ``expire_cursors()``. Every value is made up (random hex from a
seeded generator); nothing here is a real hash.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from tests.fakes import FakeService, Recorded, Reply

APP_TOKEN = "100000000000042|made-up-app-secret-not-real-7f3e"
PRIVACY_GROUP = 990_000_123
FIRST_TIME = 1_650_000_000
_THREAT_UPDATES = re.compile(r"^/(v\d+\.\d+)/(\d+)/threat_updates/?$")
_NODE = re.compile(r"^/(v\d+\.\d+)/(\d+)/?$")


@dataclass(kw_only=True)
class FakeUpdate:
    """One ThreatIndicator update. ``time_format`` says how ``last_updated`` is written
    (``int``, ``digits`` or ``iso``); ``overrides`` replace fields (to make one
    malformed)."""

    id: int
    indicator: str
    type: str
    last_updated: int
    should_delete: bool = False
    tags: list[str] = field(default_factory=list)
    descriptors: list[int] = field(default_factory=list)
    time_format: str = "int"
    overrides: dict[str, Any] = field(default_factory=dict)

    def json(self, fields: set[str]) -> dict[str, Any]:
        when: Any = self.last_updated
        if self.time_format == "digits":
            when = str(self.last_updated)
        elif self.time_format == "iso":
            when = datetime.fromtimestamp(self.last_updated, UTC).strftime("%Y-%m-%dT%H:%M:%S%z")
        full: dict[str, Any] = {
            "id": str(self.id),
            "indicator": self.indicator,
            "type": self.type,
            "last_updated": when,
            "should_delete": self.should_delete,
            "tags": list(self.tags),
        }
        if self.descriptors:
            full["descriptors"] = {"data": [{"id": str(d)} for d in self.descriptors]}
        full.update(self.overrides)
        return {k: v for k, v in full.items() if k in fields}


def made_up_hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4) | 1:0{digits}x}"


def sample_updates(seed: int = 11) -> list[FakeUpdate]:
    """Ten PDQ, three HASH_MD5 (one tagged as video), two HASH_VIDEO_MD5; two of them
    deleted later; one update without a visible descriptor; a malformed indicator, a
    malformed time and a URI (not asked for)."""
    rng = random.Random(seed)
    times = iter(range(FIRST_TIME, FIRST_TIME + 10_000, 13))
    updates: list[FakeUpdate] = []
    ids = iter(range(7_000_000_001, 7_000_001_000))

    def add(kind: str, indicator: str, **extra: Any) -> FakeUpdate:
        ident = next(ids)
        update = FakeUpdate(
            id=ident,
            indicator=indicator,
            type=kind,
            last_updated=next(times),
            tags=extra.pop("tags", ["made_up_tag"]),
            descriptors=extra.pop("descriptors", [ident + 500_000]),
            **extra,
        )
        updates.append(update)
        return update

    for n in range(10):
        fmt = ("int", "digits", "iso")[n % 3]
        add("HASH_PDQ", made_up_hex(rng, 64), time_format=fmt)
    add("HASH_MD5", made_up_hex(rng, 32))
    add("HASH_MD5", made_up_hex(rng, 32), tags=["media_type_video"])
    add("HASH_MD5", made_up_hex(rng, 32).upper())
    add("HASH_VIDEO_MD5", made_up_hex(rng, 32))
    add("HASH_VIDEO_MD5", made_up_hex(rng, 32))
    add("HASH_PDQ", made_up_hex(rng, 64), descriptors=[])
    add("HASH_PDQ", "not a pdq hash")
    add("HASH_PDQ", made_up_hex(rng, 64), overrides={"last_updated": "yesterday"})
    add("URI", "https://example.invalid/made-up")
    # deletions of two earlier ones, later in the update stream
    for earlier in (updates[1], updates[11]):
        updates.append(
            FakeUpdate(
                id=earlier.id,
                indicator=earlier.indicator,
                type=earlier.type,
                last_updated=next(times),
                should_delete=True,
            )
        )
    return updates


class FakeThreatExchange(FakeService):
    """``behaviour`` (default ``ok``) or the queued ``script``: ``unauthorized`` (401),
    ``rate_limited`` (429), ``graph_throttled`` (Graph's 400 with code 4),
    ``server_error`` (500), ``timeout``, ``malformed`` (a 200 that is not JSON).
    ``reactions`` holds every accepted (descriptor id, reaction)."""

    hang_seconds: ClassVar[float] = 2.0

    def __init__(
        self,
        updates: list[FakeUpdate] | None = None,
        *,
        token: str = APP_TOKEN,
        privacy_group: int = PRIVACY_GROUP,
    ) -> None:
        super().__init__()
        self.behaviour = "ok"
        self.updates = list(sample_updates() if updates is None else updates)
        self.token = token
        self.privacy_group = privacy_group
        #: ignore ``types`` (a server that sends everything)
        self.ignore_types = False
        #: where ``paging.next`` points (None: this fake)
        self.next_base: str | None = None
        self.reactions: list[tuple[str, str]] = []
        self._generation = 0

    def newest(self) -> int:
        return max(u.last_updated for u in self.updates)

    def add(self, update: FakeUpdate) -> None:
        with self._lock:
            self.updates.append(update)

    def expire_cursors(self) -> None:
        with self._lock:
            self._generation += 1

    def listings(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/threat_updates")]

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        if behaviour == "unauthorized":
            return _graph_error(401, "OAuthException", 190, "Error validating access token.")
        if behaviour == "rate_limited":
            return self.throttled(_error_body("OAuthException", 4, "Too many calls"))
        if behaviour == "graph_throttled":
            return _graph_error(400, "OAuthException", 4, "Application request limit reached")
        if behaviour == "server_error":
            return _graph_error(500, "OAuthException", 1, "An unknown error occurred")
        if behaviour == "malformed":
            return Reply(status=200, body=b"<html>oops", headers={"Content-Type": "text/html"})
        if _token_of(request) != self.token:
            return _graph_error(400, "OAuthException", 190, "Invalid OAuth access token.")
        listing = _THREAT_UPDATES.match(request.path)
        if request.method == "GET" and listing:
            if int(listing.group(2)) != self.privacy_group:
                return _graph_error(400, "GraphMethodException", 100, "Unsupported get request.")
            return self._threat_updates(request)
        node = _NODE.match(request.path)
        if node and request.method == "GET":
            return self._indicator(int(node.group(2)))
        if node and request.method == "POST":
            return self._react(node.group(2), request)
        return _graph_error(400, "GraphMethodException", 100, "Unknown path")

    def _threat_updates(self, request: Recorded) -> Reply:
        query = {k: v[0] for k, v in request.query.items()}
        try:
            start = int(query.get("start_time", "0"))
            stop = int(query["stop_time"]) if "stop_time" in query else None
            limit = int(query.get("limit", "25"))
        except ValueError:
            return _graph_error(400, "OAuthException", 100, "Invalid parameter")
        types = set(query["types"].split(",")) if "types" in query else None
        after = None
        if "after" in query:
            after = self._cursor(query["after"])
            if after is None:
                return _graph_error(400, "OAuthException", 100, "Invalid cursor")
        fields = _top_level(query.get("fields", "id"))
        with self._lock:
            listed = sorted(
                (
                    u
                    for u in self.updates
                    if start <= u.last_updated
                    and (stop is None or u.last_updated < stop)
                    and (types is None or self.ignore_types or u.type in types)
                    and (after is None or (u.last_updated, u.id) > after)
                ),
                key=lambda u: (u.last_updated, u.id),
            )
            generation = self._generation
        page = listed[:limit]
        body: dict[str, Any] = {"data": [u.json(fields) for u in page]}
        if page:
            last = page[-1]
            cursor = base64.urlsafe_b64encode(
                json.dumps([generation, last.last_updated, last.id]).encode()
            ).decode()
            body["paging"] = {"cursors": {"before": "MAZDZD", "after": cursor}}
            if len(listed) > limit:
                echoed = {k: v for k, v in query.items() if k not in ("after", "access_token")}
                echoed.update(access_token=self.token, after=cursor)
                base = self.next_base or self.url
                body["paging"]["next"] = f"{base}{request.path}?{urlencode(echoed)}"
        return Reply.json(200, body)

    def _cursor(self, text: str) -> tuple[int, int] | None:
        try:
            generation, when, ident = json.loads(base64.urlsafe_b64decode(text.encode()))
        except (binascii.Error, ValueError, TypeError):
            return None
        with self._lock:
            if generation != self._generation:
                return None
        return int(when), int(ident)

    def _indicator(self, ident: int) -> Reply:
        with self._lock:
            found = [u for u in self.updates if u.id == ident and not u.should_delete]
        if not found:
            return _graph_error(400, "GraphMethodException", 100, "Object does not exist")
        descriptors = [{"id": str(d)} for d in found[-1].descriptors]
        return Reply.json(200, {"id": str(ident), "descriptors": {"data": descriptors}})

    def _react(self, descriptor: str, request: Recorded) -> Reply:
        reaction = request.query.get("reactions", [""])[0]
        with self._lock:
            known = any(int(descriptor) in u.descriptors for u in self.updates)
            if known and reaction:
                self.reactions.append((descriptor, reaction))
        if not known or not reaction:
            return _graph_error(400, "GraphMethodException", 100, "Unsupported post request.")
        return Reply.json(200, {"success": True})


def _token_of(request: Recorded) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value:
        return value
    given = request.query.get("access_token")
    return given[0] if given else None


def _top_level(fields: str) -> set[str]:
    """``a,b{c,d},e`` -> {a, b, e}."""
    names, depth, current = set(), 0, ""
    for char in fields + ",":
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            names.add(current.strip())
            current = ""
        elif depth == 0:
            current += char
    return names


def _error_body(kind: str, code: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "FAKE"}}


def _graph_error(status: int, kind: str, code: int, message: str) -> Reply:
    return Reply.json(status, _error_body(kind, code, message))
