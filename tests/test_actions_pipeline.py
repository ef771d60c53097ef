"""A scan that acts: its decision's webhooks and quarantine are in the outbox with the
result, and the dispatcher delivers them (signed) and moves the file."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings, WebhookEndpointSettings
from tests.api_support import bearer, make_token, wait_until
from tests.cli import hashguard, write_known_list
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.server import running_server


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


SECRET = "whsec_" + base64.b64encode(b"pipeline-test-secret-of-32-bytes").decode()


def test_a_scan_that_acts_notifies_and_quarantines(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = tmp_path / "up"
    uploads.mkdir()
    known = encode(generate(Kind.PHOTO, 41, 320, 240))
    (uploads / "known.jpg").write_bytes(known)
    (uploads / "clean.jpg").write_bytes(encode(generate(Kind.PHOTO, 42, 320, 240)))
    md5 = hashlib.md5(known).hexdigest()
    hashguard(
        "banks", "import", "known", str(write_known_list(tmp_path / "l.csv", [("md5", md5, "e")]))
    )
    with WebhookReceiver(SECRET) as receiver:
        monkeypatch.setenv(
            "HASHGUARD_WEBHOOKS",
            json.dumps([{"name": "ops", "url": receiver.url, "secret": SECRET}]),
        )
        monkeypatch.setenv("HASHGUARD_QUARANTINE_LOCAL", "true")
        hashguard("scan", str(uploads), "--no-keep-evidence", check=1)
        queued = _lines(hashguard("actions", "list", "--json").stdout)
        kinds = sorted((a["kind"], a["event"]) for a in queued)
        assert kinds == [("quarantine", None), ("webhook", "match.detected")], queued
        hashguard("actions", "dispatch", "--once")
        (payload,) = receiver.applied.values()
    assert payload["type"] == "match.detected"
    assert payload["data"]["content"]["md5"] == md5
    assert not (uploads / "known.jpg").exists(), "quarantined: no copy left behind"
    assert (uploads / "clean.jpg").exists()
    (record,) = _lines(hashguard("actions", "quarantined", "--json").stdout)
    assert record["original_path"].endswith("known.jpg")

    # review finds it a false positive: the file comes back, and the endpoint is told
    (case,) = json.loads(hashguard("cases", "list", "--json").stdout)
    done = hashguard(
        "cases", "false-positive", str(case["id"]), "--reason", "our own logo",
        "--allow-bank", "ours",
    )  # fmt: skip
    assert "restored from quarantine" in done.stderr
    assert (uploads / "known.jpg").read_bytes() == known
    events = sorted(str(a["event"]) for a in _lines(hashguard("actions", "list", "--json").stdout))
    assert events == ["None", "case.false_positive", "content.quarantined", "match.detected"]


def test_an_upload_the_policy_acts_on_is_announced_by_the_server(api_settings: Settings) -> None:
    known = encode(generate(Kind.PHOTO, 43, 320, 240))
    md5 = hashlib.md5(known).hexdigest()
    with WebhookReceiver(SECRET) as receiver:
        endpoint = WebhookEndpointSettings(name="ops", url=receiver.url, secret=SECRET)
        settings = api_settings.model_copy(
            update={"webhooks": (endpoint,), "actions_poll_seconds": 0.1}
        )
        auth = bearer(make_token(settings, Scope.ADMIN))
        with running_server(settings) as base, httpx.Client(base_url=base, headers=auth) as http:
            assert http.post("/v1/banks", json={"name": "known"}).status_code == 201
            entry = {"algorithm": "md5", "hash": md5}
            assert http.post("/v1/banks/known/entries", json={"entries": [entry]}).is_success
            answer = wait_until(
                lambda: http.post("/v1/scan", content=known).json(),
                lambda got: got["outcome"] == "matched",
            )
            assert answer["decision"]["action"] == "act"
            # the server's own dispatcher delivers it, signed
            (payload,) = wait_until(lambda: list(receiver.applied.values()), bool)
    assert payload["type"] == "match.detected"
    assert payload["data"]["content"]["md5"] == md5
