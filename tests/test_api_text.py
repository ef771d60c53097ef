"""Text no store can keep (a NUL character, a lone surrogate) is refused with 422 on every
route, before anything is hashed or stored, on SQLite and on PostgreSQL (issue 19, item 4).

PostgreSQL's text cannot hold NUL: a NUL in ``content_id`` used to turn a match into a
500 with no case. A lone surrogate arrives as a JSON ``\\ud800`` escape; a URL or a
multipart field cannot carry one (their bytes are decoded as UTF-8, invalid bytes
replaced), so there it must simply never cause a 5xx.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import httpx

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.api_support import assert_problem, bearer, make_token, wait_until
from tests.server import running_server

IMAGE = encode(generate(Kind.PHOTO, 7, 320, 240))
MD5 = hashlib.md5(IMAGE).hexdigest()
NUL = "a\x00b"
SURROGATE = "a\ud800b"
#: what a URL or a multipart field can send for a surrogate: its WTF-8 bytes
SURROGATE_BYTES = "a%ED%A0%80b"
JSON_HEADERS = {"Content-Type": "application/json"}

_NOTICE: dict[str, Any] = {
    "category": "scams_and_fraud",
    "explanation": "e",
    "notifier": {"name": "n", "email": "n@example.test", "reference": "r"},
    "good_faith": True,
}
_NOTICES = [
    {**_NOTICE, "urls": ["https://x.test/BAD"]},
    {**_NOTICE, "content_ids": ["BAD"]},
    {**_NOTICE, "content_ids": ["c"], "explanation": "BAD"},
    *(
        {**_NOTICE, "content_ids": ["c"], "notifier": {**_NOTICE["notifier"], k: v}}
        for k, v in (("name", "BAD"), ("email", "BAD@example.test"), ("reference", "BAD"))
    ),
]

_APPEAL = {"statement": "hg-c1-confirmed", "reference": "P-1", "explanation": "e"}

#: Every JSON text field of every route: (method, path, body with "BAD" where the text goes).
JSON_FIELDS: list[tuple[str, str, Any]] = [
    ("POST", "/v1/lookup", {"hashes": [{"algorithm": "md5", "hash": "BAD"}]}),
    ("POST", "/v1/banks", {"name": "BAD"}),
    ("POST", "/v1/banks", {"name": "fresh", "source": "BAD"}),
    ("POST", "/v1/banks", {"name": "fresh", "licence": "BAD"}),
    ("PATCH", "/v1/banks/target", {"source": "BAD"}),
    ("PATCH", "/v1/banks/target", {"licence": "BAD"}),
    (
        "POST",
        "/v1/banks/target/entries",
        {"entries": [{"algorithm": "md5", "hash": "1" * 32, "entry_id": "BAD"}]},
    ),
    (
        "POST",
        "/v1/banks/target/entries",
        {"entries": [{"algorithm": "md5", "hash": "1" * 32, "category": "BAD"}]},
    ),
    (
        "POST",
        "/v1/banks/target/entries",
        {"entries": [{"algorithm": "md5", "hash": "1" * 32, "metadata": {"k": "BAD"}}]},
    ),
    (
        "POST",
        "/v1/banks/target/entries",
        {"entries": [{"algorithm": "md5", "hash": "1" * 32, "metadata": {"BAD": 1}}]},
    ),
    (
        "POST",
        "/v1/banks/target/entries",
        {"entries": [{"algorithm": "md5", "hash": "1" * 32, "metadata": {"k": [{"BAD": "BAD"}]}}]},
    ),
    ("POST", "/v1/banks/target/entries/remove", {"entries": [{"algorithm": "md5", "hash": "BAD"}]}),
    ("POST", "/v1/cases/1/decisions", {"verdict": "escalate", "reason": "BAD"}),
    ("POST", "/v1/cases/1/decisions", {"verdict": "escalate", "reason": "r", "allow_bank": "BAD"}),
    ("POST", "/v1/cases/1/assignee", {"assignee": "BAD"}),
    ("POST", "/v1/cases/1/assignee", {"assignee": None, "reason": "BAD"}),
    ("POST", "/v1/runs", {"paths": ["/BAD"]}),
    *(("POST", "/v1/notices", notice) for notice in _NOTICES),
    *(
        ("POST", "/v1/cases/1/appeals", {**_APPEAL, name: "BAD"})
        for name in ("statement", "reference", "explanation")
    ),
]

#: Every text query or path parameter: (method, path, params) with "BAD" for the text.
QUERY_FIELDS: list[tuple[str, str, dict[str, str]]] = [
    *(("POST", "/v1/scan", {name: "BAD"}) for name in ("content_id", "uploader_id", "url")),
    ("POST", "/v1/scan", {"uploader_ip": "BAD"}),
    *(
        ("POST", "/v1/banks/target/import", {"format": "plain", name: "BAD"})
        for name in ("version", "source", "licence")
    ),
    ("POST", "/v1/banks/target/import", {"format": "csv", "columns": "hash=BAD"}),
    ("GET", "/v1/banks/BAD", {}),
    ("PATCH", "/v1/banks/BAD", {}),
    ("DELETE", "/v1/banks/BAD", {}),
    ("POST", "/v1/banks/BAD/entries", {}),
    ("GET", "/v1/cases", {"assignee": "BAD"}),
]

#: Multipart text fields, by route.
FORM_FIELDS: list[tuple[str, str, dict[str, str]]] = [
    *(("/v1/scan", name, {}) for name in ("content_id", "uploader_id", "url", "uploader_ip")),
    ("/v1/banks/target/import", "filename", {"format": "plain"}),
]


def _filled(template: Any, text: str) -> Any:
    if template == "BAD":
        return text
    if isinstance(template, str) and "BAD" in template:
        return template.replace("BAD", text)
    if isinstance(template, list):
        return [_filled(item, text) for item in template]
    if isinstance(template, dict):
        return {_filled(k, text): _filled(v, text) for k, v in template.items()}
    return template


def _url(path: str, params: dict[str, str], raw: str) -> str:
    """The path and query with ``raw`` (already percent-encoded) where "BAD" is."""
    quoted = "&".join(f"{k}={v}" for k, v in params.items()).replace("BAD", raw)
    return path.replace("BAD", raw) + (f"?{quoted}" if quoted else "")


def _body(path: str) -> dict[str, Any]:
    if path == "/v1/scan":
        return {"content": IMAGE}
    if path.endswith("/import"):
        return {"content": f"{'2' * 32}\n".encode()}
    if path.startswith("/v1/banks/") and path.endswith("/entries"):
        return {"json": {"entries": [{"algorithm": "md5", "hash": "3" * 32}]}}
    return {}


def test_text_no_store_can_keep_is_refused_on_every_route(api_settings: Settings) -> None:
    admin = bearer(make_token(api_settings, Scope.ADMIN))
    with (
        running_server(api_settings) as base,
        httpx.Client(base_url=base, headers=admin, timeout=30) as http,
    ):
        assert http.post("/v1/banks", json={"name": "target"}).status_code == 201
        failures: list[str] = []

        def expect(answer: httpx.Response, what: str, *, refused: bool) -> None:
            if (refused and answer.status_code != 422) or answer.status_code >= 500:
                failures.append(f"{what}: {answer.status_code} {answer.text[:200]}")
            elif answer.status_code == 422:
                assert_problem(answer, 422)

        for method, path, template in JSON_FIELDS:
            for text in (NUL, SURROGATE):
                # ensure_ascii: the surrogate travels as the JSON escape \ud800
                content = json.dumps(_filled(template, text))
                answer = http.request(method, path, content=content, headers=JSON_HEADERS)
                expect(answer, f"{method} {path} {template} {text!r}", refused=True)
        for method, path, params in QUERY_FIELDS:
            for raw, refused in (("a%00b", True), (SURROGATE_BYTES, False)):
                url = _url(path, params, raw)
                answer = http.request(method, url, **_body(path))
                expect(answer, f"{method} {url}", refused=refused)
        for path, name, params in FORM_FIELDS:
            for value, refused in ((NUL.encode(), True), (b"a\xed\xa0\x80b", False)):
                answer = http.post(
                    path,
                    params=params,
                    files={"file": ("x", _body(path)["content"]), name: (None, value)},
                )
                expect(answer, f"POST {path} form {name}={value!r}", refused=refused)
        assert not failures, "\n".join(failures)

        # nothing refused reached a store (only the replaced WTF-8 bytes, as U+FFFD)
        shown = http.get("/v1/banks/target").json()
        assert (shown["source"], shown["licence"]) == ("a\ufffd\ufffd\ufffdb",) * 2
        assert [bank["name"] for bank in http.get("/v1/banks").json()] == ["target"]


def test_a_match_with_a_nul_in_its_content_id_is_refused_before_hashing(
    api_settings: Settings,
) -> None:
    """The probe's finding: NUL in content_id made a match a 500 on PostgreSQL, with no
    case. Now it is a 422 (nothing hashed, nothing kept), and the same upload with clean
    text matches and opens its case."""
    admin = bearer(make_token(api_settings, Scope.ADMIN))
    with (
        running_server(api_settings) as base,
        httpx.Client(base_url=base, headers=admin, timeout=30) as http,
    ):
        assert http.post("/v1/banks", json={"name": "known"}).status_code == 201
        added = http.post(
            "/v1/banks/known/entries", json={"entries": [{"algorithm": "md5", "hash": MD5}]}
        )
        assert added.status_code == 200, added.text
        wait_until(
            lambda: http.post("/v1/scan", content=IMAGE).json(),
            lambda body: body.get("outcome") == "matched",
        )
        with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
            before = len(store.cases.list(limit=500))
        for field in ("content_id", "uploader_id", "url"):
            assert_problem(http.post(f"/v1/scan?{field}=x%00y", content=IMAGE), 422)
            refused = http.post("/v1/scan", files={"file": ("f", IMAGE), field: (None, b"x\x00y")})
            assert_problem(refused, 422)
        with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
            assert len(store.cases.list(limit=500)) == before
        clean = http.post("/v1/scan?content_id=post-1&url=https://example.org/1", content=IMAGE)
        assert clean.status_code == 200, clean.text
        assert clean.json()["outcome"] == "matched"
        assert clean.json()["content"]["content_id"] == "post-1"
