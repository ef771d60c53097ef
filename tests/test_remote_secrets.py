"""Remote matchers' credentials sealed in the store: ``hashguard remote set-secret`` and
``list``, the matcher built from the sealed value (PhotoDNA's loopback fake accepts only
the right key), plaintext settings still working with a deprecation warning, and a
canary secret that never shows in output, logs, audit events or the database file."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hashguard.domain.audit import AuditAction
from hashguard.domain.tokens import Scope
from hashguard.keys import MasterKey, generate, master_key_for
from hashguard.plugins import PluginError
from hashguard.remote.secrets import matcher_secrets, seal_secret
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.store.remote_secrets import UnknownRemoteSecret
from tests.api_support import bearer, make_token
from tests.cli import hashguard, json_lines
from tests.fakes import benign_image
from tests.fakes.photodna import FakePhotoDna
from tests.server import running_server

CANARY = "canary-sealed-remote-key-5d1c9"
ACTOR = "cli:test"


def _key(tmp_path: Path) -> MasterKey:
    return MasterKey.load(value=generate(), file=None, default_file=tmp_path / "unused")[0]


def _remote(fake: FakePhotoDna) -> dict[str, dict[str, object]]:
    return {"photodna": {"base_url": fake.url, "allow_media": True, "retries": 0}}


def test_the_store_keeps_sealed_values_by_name_and_key_and_audits_them(
    store: Store, tmp_path: Path
) -> None:
    key = _key(tmp_path)
    at = datetime.now(UTC)
    sealed = seal_secret(key, "photodna", "subscription_key", CANARY)
    assert CANARY.encode() not in sealed
    put = store.remote_secrets.put
    assert not put("photodna", "subscription_key", sealed, actor=ACTOR, at=at)
    assert not put("arachnid", "username", b"\x01" * 40, actor=ACTOR, at=at)
    again = seal_secret(key, "photodna", "subscription_key", CANARY + "2")
    assert put("photodna", "subscription_key", again, actor=ACTOR, at=at), "replaced"
    assert store.remote_secrets.keys() == {
        "arachnid": ["username"],
        "photodna": ["subscription_key"],
    }
    opened = matcher_secrets(
        ["photodna"], plaintext={}, stored=store.remote_secrets, master_key=lambda: key
    )
    assert opened["photodna"]["subscription_key"].get_secret_value() == CANARY + "2"

    store.remote_secrets.remove("arachnid", "username", actor=ACTOR, at=at)
    with pytest.raises(UnknownRemoteSecret):
        store.remote_secrets.remove("arachnid", "username", actor=ACTOR, at=at)
    events = [e for e in store.audit.events() if e.action.startswith("remote.")]
    set_, removed = AuditAction.REMOTE_SECRET_SET, AuditAction.REMOTE_SECRET_REMOVED
    assert [(e.action, e.subject, dict(e.details)) for e in events] == [
        (set_, "remote:photodna", {"key": "subscription_key", "replaced": False}),
        (set_, "remote:arachnid", {"key": "username", "replaced": False}),
        (set_, "remote:photodna", {"key": "subscription_key", "replaced": True}),
        (removed, "remote:arachnid", {"key": "username"}),
    ]


def test_a_sealed_value_opens_only_for_its_own_matcher_and_key(
    sqlite_store: Store, tmp_path: Path
) -> None:
    key = _key(tmp_path)
    at = datetime.now(UTC)
    # a value sealed for arachnid's password, copied onto photodna's key
    moved = seal_secret(key, "arachnid", "password", CANARY)
    sqlite_store.remote_secrets.put("photodna", "subscription_key", moved, actor=ACTOR, at=at)
    with pytest.raises(PluginError, match="photodna: its sealed secrets do not open") as raised:
        matcher_secrets(
            ["photodna"], plaintext={}, stored=sqlite_store.remote_secrets, master_key=lambda: key
        )
    assert CANARY not in str(raised.value)
    with pytest.raises(PluginError, match="does not open"):
        matcher_secrets(
            ["photodna"],
            plaintext={},
            stored=sqlite_store.remote_secrets,
            master_key=lambda: _key(tmp_path),  # another installation's key
        )
    with pytest.raises(PluginError, match="no master key"):
        matcher_secrets(
            ["photodna"], plaintext={}, stored=sqlite_store.remote_secrets, master_key=None
        )


def test_plaintext_settings_still_work_with_a_deprecation_warning(
    sqlite_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = _key(tmp_path)
    asked: list[int] = []

    def master_key() -> MasterKey:
        asked.append(1)
        return key

    plaintext = {"photodna": {"subscription_key": SecretStr(CANARY)}}
    with caplog.at_level(logging.WARNING):
        found = matcher_secrets(
            ["photodna", "arachnid"],
            plaintext=plaintext,
            stored=sqlite_store.remote_secrets,
            master_key=master_key,
        )
    assert found["photodna"]["subscription_key"].get_secret_value() == CANARY
    assert found["arachnid"] == {}
    assert asked == [], "no sealed secret: the master key is not even loaded"
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert "deprecated" in warning.getMessage()
    assert "hashguard remote set-secret photodna subscription_key" in warning.getMessage()

    # a sealed value of the same key wins over the plaintext one
    sealed = seal_secret(key, "photodna", "subscription_key", CANARY + "-sealed")
    sqlite_store.remote_secrets.put(
        "photodna", "subscription_key", sealed, actor=ACTOR, at=datetime.now(UTC)
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        found = matcher_secrets(
            ["photodna"],
            plaintext=plaintext,
            stored=sqlite_store.remote_secrets,
            master_key=master_key,
        )
    assert found["photodna"]["subscription_key"].get_secret_value() == CANARY + "-sealed"
    assert "is ignored" in caplog.text
    assert CANARY not in caplog.text


def test_set_secret_then_scan_uses_the_sealed_key_and_never_shows_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PDNA_KEY", CANARY)
    seen: list[str] = []

    def run(*args: str, check: int = 0) -> str:
        done = hashguard(*args, check=check)
        seen.extend((done.stdout, done.stderr))
        return done.stdout + done.stderr

    refused = run("remote", "set-secret", "photodna", "password", "--from", "env:PDNA_KEY", check=2)
    assert "photodna takes no secret named 'password'" in refused
    assert "pass --from env:VAR" in run(
        "remote", "set-secret", "photodna", "subscription_key", check=2
    )
    done = run("remote", "set-secret", "photodna", "subscription_key", "--from", "env:PDNA_KEY")
    assert "secret 'subscription_key' sealed and stored" in done
    (tmp_path / "key.txt").write_text(CANARY + "\n")
    replaced = run(
        "remote",
        "set-secret",
        "photodna",
        "subscription_key",
        "--from",
        f"file:{tmp_path / 'key.txt'}",
    )
    assert "replaces the previous value" in replaced

    rows = {row["name"]: row for row in json.loads(run("remote", "list", "--json").split("\n")[0])}
    assert rows["photodna"]["sealed"] == ["subscription_key"]
    assert rows["photodna"]["missing"] == []
    assert rows["photodna"]["plaintext"] == []
    assert rows["arachnid_shield"]["missing"] == ["username", "password"]

    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "photo.png").write_bytes(benign_image())
    with FakePhotoDna(CANARY) as fake:
        fake.behaviour = "match"
        monkeypatch.setenv("HASHGUARD_REMOTE", json.dumps(_remote(fake)))
        monkeypatch.setenv("HASHGUARD_REMOTE_BUDGET_SECONDS", "5")
        done_scan = hashguard("scan", str(tmp_path / "up"), "--json", check=1)
        seen.extend((done_scan.stdout, done_scan.stderr))
        assert fake.requests[0].headers["ocp-apim-subscription-key"] == CANARY
    (found,), _ = json_lines(done_scan.stdout)
    assert found["remote"][0]["status"] == "matched", "the matcher got the sealed key"
    assert "deprecated" not in done_scan.stderr

    # with the plaintext setting too: the sealed value is used, the plaintext one flagged
    monkeypatch.setenv(
        "HASHGUARD_REMOTE_SECRETS", json.dumps({"photodna": {"subscription_key": "wrong-key"}})
    )
    with FakePhotoDna(CANARY) as fake:
        fake.behaviour = "match"
        monkeypatch.setenv("HASHGUARD_REMOTE", json.dumps(_remote(fake)))
        again = hashguard("scan", str(tmp_path / "up"), "--json", check=1)
        seen.extend((again.stdout, again.stderr))
    assert "is ignored: remove it" in again.stderr

    run("remote", "unset-secret", "photodna", "subscription_key")
    for text in seen:
        assert CANARY not in text
    database = (home / "hashguard.db").read_bytes()
    for name in ("hashguard.db-wal",):
        if (home / name).exists():
            database += (home / name).read_bytes()
    assert CANARY.encode() not in database, "stored sealed, never in clear"
    with contextlib.closing(open_store(f"sqlite:///{home / 'hashguard.db'}")) as store_ctx:
        events = [e for e in store_ctx.audit.events() if e.action.startswith("remote.")]
    assert [e.action for e in events] == ["remote.secret_set"] * 2 + ["remote.secret_removed"]
    assert all(CANARY not in json.dumps(dict(e.details)) for e in events)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_server_builds_its_matchers_with_the_sealed_key(api_settings: Settings) -> None:
    key, _ = master_key_for(api_settings)
    with FakePhotoDna(CANARY) as fake:
        fake.behaviour = "match"
        settings = api_settings.model_copy(update={"remote": _remote(fake)})
        store = open_store(settings.resolved_database_url)
        try:
            store.remote_secrets.put(
                "photodna",
                "subscription_key",
                seal_secret(key, "photodna", "subscription_key", CANARY),
                actor=ACTOR,
                at=datetime.now(UTC),
            )
        finally:
            store.close()
        auth = bearer(make_token(settings, Scope.SCAN))
        with running_server(settings) as base, httpx.Client(base_url=base, headers=auth) as http:
            answer = http.post("/v1/scan", files={"file": ("a.png", benign_image(), "image/png")})
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["remote"][0]["status"] == "matched"
    assert CANARY not in answer.text
