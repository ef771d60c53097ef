"""Remote matchers in the pipeline: ``hashguard scan`` and ``/v1/scan`` put files to
PhotoDNA Cloud (a loopback fake from its documented contract), and a service that does
not answer makes the file ``not_answered``, never ``no_match``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from tests.api_support import bearer, make_token
from tests.cli import hashguard, json_lines
from tests.fakes import benign_image
from tests.fakes.photodna import FakePhotoDna
from tests.server import running_server

KEY = "canary-photodna-key-77e1"


def _remote(fake: FakePhotoDna) -> dict[str, dict[str, object]]:
    # its own timeout (3 s) ends a call before a hanging fake answers (5 s): the scan
    # waits for calls past the budget, so a slow answer would count
    return {
        "photodna": {"base_url": fake.url, "allow_media": True, "retries": 0, "timeout_seconds": 3}
    }


def _scan(folder: Path, fake: FakePhotoDna, monkeypatch: pytest.MonkeyPatch, code: int):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HASHGUARD_REMOTE", json.dumps(_remote(fake)))
    monkeypatch.setenv(
        "HASHGUARD_REMOTE_SECRETS", json.dumps({"photodna": {"subscription_key": KEY}})
    )
    monkeypatch.setenv("HASHGUARD_REMOTE_BUDGET_SECONDS", "1.5")
    done = hashguard("scan", str(folder), "--json", check=code)
    assert KEY not in done.stdout + done.stderr
    return json_lines(done.stdout)


def test_a_remote_match_is_a_match_with_its_evidence(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "photo.png").write_bytes(benign_image())
    with FakePhotoDna(KEY) as fake:
        fake.behaviour = "match"
        files, summary = _scan(tmp_path / "up", fake, monkeypatch, code=1)
    (found,) = files
    assert found["outcome"] == "matched"
    assert found["matches"] == []
    (remote,) = found["remote"]
    assert remote["service"] == "photodna"
    assert remote["status"] == "matched"
    assert remote["method"] == "media"
    assert remote["classification"] == "test"  # test mode, the "Test" source
    assert remote["tracking_id"]
    assert remote["raw"], "the service's response is kept as evidence"
    assert summary["counts"]["matched"] == 1


def test_a_remote_service_that_does_not_answer_is_never_no_match(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "photo.png").write_bytes(benign_image())
    with FakePhotoDna(KEY) as fake:
        fake.behaviour = "timeout"
        files, summary = _scan(tmp_path / "up", fake, monkeypatch, code=2)
    (found,) = files
    assert found["outcome"] == "not_answered"
    assert "photodna" in found["reason"]
    assert found["remote"][0]["raw"] is None
    assert summary["counts"]["no_match"] == 0
    assert summary["counts"]["not_answered"] == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_scan_api_asks_the_remote_matchers_too(api_settings: Settings) -> None:
    with FakePhotoDna(KEY) as fake:
        fake.behaviour = "match"
        settings = api_settings.model_copy(
            update={
                "remote": _remote(fake),
                "remote_secrets": {"photodna": {"subscription_key": SecretStr(KEY)}},
            }
        )
        auth = bearer(make_token(settings, Scope.SCAN))
        with running_server(settings) as base, httpx.Client(base_url=base, headers=auth) as http:
            answer = http.post("/v1/scan", files={"file": ("a.png", benign_image(), "image/png")})
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["outcome"] == "matched"
    assert body["decision"]["matched"] is True
    assert body["remote"][0]["classification"] == "test"
    assert KEY not in answer.text
