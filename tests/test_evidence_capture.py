"""/v1/scan keeps a matched upload that the policy acts on, encrypted, and nothing else."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import httpx

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.tokens import Scope
from hashguard.evidence import open_vault
from hashguard.keys import MasterKey
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.api_support import bearer, make_token
from tests.cli import hashguard, write_known_list
from tests.server import running_server


def test_a_matched_upload_becomes_evidence_and_a_clean_one_does_not(
    api_settings: Settings,
) -> None:
    known = encode(generate(Kind.PHOTO, 31, 320, 240))
    clean = encode(generate(Kind.PHOTO, 32, 320, 240))
    auth = bearer(make_token(api_settings, Scope.ADMIN))
    with running_server(api_settings) as base, httpx.Client(base_url=base, headers=auth) as http:
        assert http.post("/v1/banks", json={"name": "known"}).status_code == 201
        md5 = http.post("/v1/scan", content=known).json()["signals"]["md5"]
        entry = {"algorithm": "md5", "hash": md5, "entry_id": "e-1"}
        assert http.post("/v1/banks/known/entries", json={"entries": [entry]}).is_success
        deadline = time.monotonic() + 10
        while (answer := http.post(
            "/v1/scan", content=known, params={"content_id": "c-1", "uploader_ip": "192.0.2.7"}
        ).json())["outcome"] != "matched":  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert answer["decision"]["action"] == "act"
        evidence_id = answer["evidence_id"]
        assert evidence_id
        assert answer["case_id"] is not None
        clean_answer = http.post("/v1/scan", content=clean).json()
        assert (clean_answer["evidence_id"], clean_answer["case_id"]) == (None, None)
    store = open_store(api_settings.resolved_database_url)
    try:
        items = store.evidence.list()
        assert [item.id for item in items] == [evidence_id]
        case = store.cases.get(answer["case_id"])
        assert (case.evidence_id, case.state) == (evidence_id, "open")
        key, _ = MasterKey.load(
            value=None, file=None, default_file=api_settings.default_master_key_file
        )
        data, context = open_vault(api_settings, store, key).get(evidence_id, actor="cli:test")
    finally:
        store.close()
    assert data == known
    assert (context["content_id"], context["uploader_ip"]) == ("c-1", "192.0.2.7")
    assert context["matches"][0]["entry_id"] == "e-1"


def test_a_scan_of_local_storage_keeps_what_it_acts_on(home: Path, tmp_path: Path) -> None:
    known = encode(generate(Kind.PHOTO, 33, 320, 240))
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "known.jpg").write_bytes(known)
    (tmp_path / "up" / "clean.jpg").write_bytes(encode(generate(Kind.PHOTO, 34, 320, 240)))
    md5 = hashlib.md5(known).hexdigest()
    listed = write_known_list(tmp_path / "list.csv", [("md5", md5, "e-9")])
    hashguard("banks", "import", "known", str(listed))
    hashguard("scan", str(tmp_path / "up"), "--no-keep-evidence", check=1)
    assert json.loads(hashguard("evidence", "list", "--json").stdout) == []
    hashguard("scan", str(tmp_path / "up"), "--rescan", check=1)
    (item,) = json.loads(hashguard("evidence", "list", "--json").stdout)
    assert item["size"] == len(known)
    assert item["sha256"] == hashlib.sha256(known).hexdigest()
    (case,) = json.loads(hashguard("cases", "list", "--json").stdout)
    assert case["evidence_id"] == item["id"], "the case was opened by the scan itself"
