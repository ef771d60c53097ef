"""The HTTP API over real loopback HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import httpx

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.server import running_server


def test_scan_upload_matches_a_bank_added_through_the_api(api_settings: Settings) -> None:
    store = open_store(api_settings.resolved_database_url)
    _, secret = store.tokens.create("t", [Scope.ADMIN])
    store.close()
    photo = encode(generate(Kind.PHOTO, 5, 400, 300))
    auth = {"Authorization": f"Bearer {secret}"}
    with running_server(api_settings) as base, httpx.Client(base_url=base, headers=auth) as http:
        clean = http.post("/v1/scan", files={"file": ("p.jpg", photo)}).json()
        assert clean["outcome"] == "no_match"
        md5 = clean["signals"]["md5"]
        created = http.post("/v1/banks", json={"name": "ngo"})
        assert created.status_code == 201
        added = http.post(
            "/v1/banks/ngo/entries",
            json={"entries": [{"algorithm": "md5", "hash": md5, "entry_id": "x1"}]},
        )
        assert added.json()["added"] == 1
        deadline = time.monotonic() + 5
        while True:
            answer = http.post("/v1/scan", content=photo, params={"content_id": "c-1"}).json()
            if answer["outcome"] == "matched" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert answer["outcome"] == "matched"
        assert answer["decision"]["matched"] is True
        assert answer["content"]["content_id"] == "c-1"
        assert [(m["bank"], m["algorithm"], m["entry_id"]) for m in answer["matches"]] == [
            ("ngo", "md5", "x1")
        ]
        shown = http.get("/v1/banks/ngo").json()
        assert shown["entries"] == {"md5": 1}
        assert md5 not in http.get("/v1/banks").text
