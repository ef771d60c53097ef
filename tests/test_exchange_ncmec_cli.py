"""The operator's path, end to end: ``hashguard exchanges add ncmec`` against the fake
NCMEC server, a sync, a scan that matches a synced entry; then NCMEC deletes the entry
and the next sync and scan no longer match it."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli import hashguard, json_lines
from tests.fakes import benign_image
from tests.fakes.ncmec import FakeEntry, FakeNcmec

PASSWORD = "canary-ncmec-password-5d2e"


def test_sync_from_ncmec_then_scan_matches_and_a_deletion_unmatches(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = benign_image(seed=11)
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "upload.png").write_bytes(image)
    listed = FakeEntry(
        member_id=42,
        entry_id="img-benign",
        timestamp=datetime.now(UTC) - timedelta(days=2),
        classification="A1",
        fingerprints={"md5": hashlib.md5(image).hexdigest()},
    )
    other = FakeEntry(
        member_id=42,
        entry_id="img-other",
        timestamp=datetime.now(UTC) - timedelta(days=3),
        fingerprints={"md5": "0" * 31 + "7"},
    )
    monkeypatch.setenv("NCMEC_USER", "hashguard-test")
    monkeypatch.setenv("NCMEC_PASSWORD", PASSWORD)
    with FakeNcmec([listed, other], password=PASSWORD, delay_seconds=0) as fake:
        start = (datetime.now(UTC) - timedelta(days=10)).isoformat()
        hashguard("exchanges", "add", "ncmec-csam", "--adapter", "ncmec",
                  "--setting", f"base_url={fake.url}", "--setting", f"start={start}",
                  "--setting", "settle_seconds=0",
                  "--credential", "username=env:NCMEC_USER",
                  "--credential", "password=env:NCMEC_PASSWORD")  # fmt: skip
        synced = hashguard("exchanges", "sync", "--json")
        (report,) = json.loads(synced.stdout)
        assert report["ok"], report
        assert report["upserted"] == 2
        files, _ = json_lines(hashguard("scan", str(tmp_path / "up"), "--json", check=1).stdout)
        (match,) = files[0]["matches"]
        assert (match["bank"], match["entry_id"], match["category"]) == (
            "ncmec-csam",
            "42:img-benign",
            "A1",
        )

        # NCMEC withdraws the entry: its deletion names the entry only
        time.sleep(1.1)  # NCMEC's timestamps have whole seconds
        fake.entries = [replace(listed, deleted=True, fingerprints={}, timestamp=datetime.now(UTC))]
        time.sleep(1.1)
        (report,) = json.loads(hashguard("exchanges", "sync", "--json").stdout)
        assert report["removed"] == 1, report
        files, _ = json_lines(
            hashguard("scan", str(tmp_path / "up"), "--json", "--rescan", check=0).stdout
        )
        assert files[0]["outcome"] == "no_match"
        everything = synced.stdout + synced.stderr
    assert PASSWORD not in everything
    db = (home / "hashguard.db").read_bytes()
    assert PASSWORD.encode() not in db, "credentials are sealed in the store"
