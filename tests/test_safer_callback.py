"""Thorn Safer's asynchronous answers for bulk scans: a scan submits each file to Hive's
async endpoint with a signed callback URL (the item waits, ``not_answered``); the fake
calls back like Hive; the server checks the signature and deadline and joins the answer
to the scan item through the pipeline (result replaced, case opened). A forged, a late
and a replayed callback are refused. Real HTTP on loopback; the signing clock given."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from hashguard.demo.run import demo_settings, scan_like_the_cli
from hashguard.domain.remote import RemoteStatus
from hashguard.domain.scans import Outcome, ScanOptions
from hashguard.plugins import PluginError
from hashguard.remote.safer import SaferMatcher
from hashguard.remote.safer_callback import (
    PENDING,
    CallbackRefused,
    callback_url,
    check,
    takes_safer_callbacks,
)
from hashguard.remote.service import RemoteMatching
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.fakes import benign_image
from tests.fakes.safer import FakeSafer
from tests.server import running_server

KEY = "canary-hive-key-async-41c2"
SECRET = "canary-callback-secret-9d3e"
SHA = "ab" * 32
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def test_the_signature_and_the_deadline() -> None:
    expires = int((T0 + timedelta(hours=1)).timestamp())
    url = callback_url("https://hg.example.test/", SECRET, "safer", SHA, expires)
    assert url.startswith(f"https://hg.example.test/v1/callbacks/safer/safer/{SHA}?expires=")
    sig = httpx.URL(url).params["sig"]
    check(SECRET, "safer", SHA, expires, sig, now=T0)  # in time, signed: taken
    refusals = {
        "forged": (SECRET, "safer", SHA, expires, "0" * 64, T0),
        "other secret": ("not-the-secret", "safer", SHA, expires, sig, T0),
        "other file": (SECRET, "safer", "cd" * 32, expires, sig, T0),
        "other service": (SECRET, "thorn", SHA, expires, sig, T0),
        "altered expiry": (SECRET, "safer", SHA, expires + 3600, sig, T0),
        "late": (SECRET, "safer", SHA, expires, sig, T0 + timedelta(hours=2)),
    }
    for name, (secret, service, sha256, until, signed, now) in refusals.items():
        with pytest.raises(CallbackRefused) as refused:
            check(secret, service, sha256, until, signed, now=now)
        assert refused.value.status == (410 if name == "late" else 403), name


def test_callbacks_need_their_secret_and_mount_the_route_only_when_asked() -> None:
    with pytest.raises(PluginError, match="callback_secret"):
        SaferMatcher.configure(
            {"allow_media": True, "callback_base_url": "https://hg.example.test"},
            {"api_key": SecretStr(KEY)},
        )
    assert not takes_safer_callbacks({"safer": {"allow_media": True}})
    assert takes_safer_callbacks({"thorn": {"adapter": "safer", "callback_base_url": "x"}})
    assert not takes_safer_callbacks({"pdna": {"adapter": "photodna", "callback_base_url": "x"}})


@pytest.fixture
def fake() -> Iterator[FakeSafer]:
    with FakeSafer(KEY) as running:
        yield running


def _settings(home: Path, fake: FakeSafer) -> Settings:
    return demo_settings(
        home,
        workers=1,
        remote={
            "safer": {
                "base_url": fake.url,
                "allow_media": True,
                "test_mode": False,
                # the server only checks callbacks: the URL it is reached at is the scan's
                "callback_base_url": "http://127.0.0.1:1",
            }
        },
        remote_secrets={"safer": {"api_key": KEY, "callback_secret": SECRET}},
    )


def _scan(settings: Settings, folder: Path, base: str, clock: Any) -> dict[str, Any]:
    matcher = SaferMatcher(
        SaferMatcher.Settings.model_validate(
            {**settings.remote["safer"], "callback_base_url": base}
        ),
        {"api_key": SecretStr(KEY), "callback_secret": SecretStr(SECRET)},
        clock=clock,
    )
    with (
        contextlib.closing(open_store(settings.resolved_database_url)) as store,
        RemoteMatching([matcher], 5) as remote,
    ):
        done = scan_like_the_cli(
            store, settings, folder, ScanOptions(max_pixels=10**7), remote=remote
        )
    return {Path(name).name: result for name, result in done.results.items()}


def test_a_bulk_scan_item_gets_its_answer_by_signed_callback(
    tmp_path: Path, fake: FakeSafer
) -> None:
    settings = _settings(tmp_path / "home", fake)
    with contextlib.closing(open_store(settings.resolved_database_url, migrate=True)):
        pass
    now_folder, late_folder = tmp_path / "bulk", tmp_path / "late"
    now_folder.mkdir()
    late_folder.mkdir()
    (now_folder / "a.png").write_bytes(benign_image(seed=51))
    (late_folder / "b.png").write_bytes(benign_image(seed=52))
    with running_server(settings) as base:
        # submitted: the item waits, not_answered (never no_match), with Hive's task id
        (waiting,) = _scan(settings, now_folder, base, lambda: datetime.now(UTC)).values()
        assert waiting.outcome is Outcome.NOT_ANSWERED
        (pending,) = waiting.remote
        assert (pending.status, pending.tracking_id) == (
            RemoteStatus.NOT_ANSWERED,
            "made-up-task-1",
        )
        assert PENDING in (pending.reason or "")
        task, url, _ = fake.callbacks[0]
        assert url.startswith(f"{base}/v1/callbacks/safer/safer/")

        # a forged callback (the signature altered) is refused; nothing changes
        forged = httpx.post(url[:-4] + "0000", json={"id": task}, timeout=30)
        assert forged.status_code == 403, forged.text

        # Hive calls back: joined to the scan item, a case opened for review
        assert fake.deliver("match", 0).status_code == 204
        with contextlib.closing(open_store(settings.resolved_database_url)) as store:
            (run,) = [r for r in store.scans.list_runs() if str(now_folder) in r.roots[0]]
            (result,) = list(store.scans.results(run.id))
            assert result.outcome is Outcome.MATCHED
            (answer,) = result.remote
            assert (answer.status, answer.tracking_id) == (RemoteStatus.MATCHED, task)
            assert answer.source == "thorn-made-up-set:made-up-source-0001"
            (case,) = store.cases.list()
            assert any(r.status is RemoteStatus.MATCHED for r in case.remote)
            events = [e for e in store.audit.events() if e.action == "scan.decision"]
            assert any(e.details.get("late_remote_answer") for e in events)

        # the same answer again: nothing awaits it any more
        replay = fake.deliver("match", 0)
        assert replay.status_code == 409, replay.text

        # signed at a moment long past: its deadline is gone, the item still waits
        _scan(settings, late_folder, base, lambda: T0)
        late = fake.deliver("match", 1)
        assert late.status_code == 410, late.text
        with contextlib.closing(open_store(settings.resolved_database_url)) as store:
            (run,) = [r for r in store.scans.list_runs() if str(late_folder) in r.roots[0]]
            (result,) = list(store.scans.results(run.id))
            assert result.outcome is Outcome.NOT_ANSWERED
