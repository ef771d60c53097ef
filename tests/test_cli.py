"""The banks and hash commands as an operator uses them; no command reveals a bank's hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hashguard.demo.corpus import Kind, encode, generate
from tests.cli import hashguard

MD5 = "0123456789abcdef0123456789abcdef"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.mark.usefixtures("home")
def test_banks_commands_never_print_hashes(tmp_path: Path) -> None:
    listing = tmp_path / "known.csv"
    listing.write_text(f"algorithm,hash,entry_id\nmd5,{MD5},a\npdq,{PDQ},b\n")
    imported = hashguard(
        "banks",
        "import",
        "demo-known",
        str(listing),
        "--format",
        "csv",
        "--source",
        "example list",
        "--licence",
        "test only",
    )
    assert "2 added" in imported.stderr
    outputs = [
        imported.stdout + imported.stderr,
        hashguard("banks", "list").stdout,
        hashguard("banks", "list", "--json").stdout,
        hashguard("banks", "show", "demo-known").stdout,
        hashguard("banks", "show", "demo-known", "--json").stdout,
    ]
    shown = json.loads(outputs[-1])
    assert shown["entries"] == {"md5": 1, "pdq": 1}
    assert (shown["source"], shown["licence"], shown["version"]) == (
        "example list",
        "test only",
        "1",
    )
    assert shown["kind"] == "known"
    for text in outputs:
        assert MD5 not in text
        assert PDQ not in text
        assert PDQ[:16] not in text


@pytest.mark.usefixtures("home")
def test_bank_settings_and_invalid_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{MD5}\nnot-a-hash\n{'0' * 40}\n")
    refused = hashguard("banks", "import", "fp", str(bad), "--kind", "allow", check=1)
    assert "bad.txt:2:" in refused.stderr
    assert "nothing imported" in refused.stderr
    hashguard("banks", "show", "fp", check=2)  # no bank was created
    hashguard("banks", "import", "fp", str(bad), "--kind", "allow", "--skip-invalid")
    shown = json.loads(hashguard("banks", "show", "fp", "--json").stdout)
    assert (shown["kind"], shown["entries"]) == ("allow", {"md5": 1, "sha1": 1})
    hashguard("banks", "set", "fp", "--disabled", "--threshold", "12")
    shown = json.loads(hashguard("banks", "show", "fp", "--json").stdout)
    assert (shown["enabled"], shown["pdq_threshold"]) == (False, 12)
    hashguard("banks", "set", "fp", "--threshold", "500", check=2)
    hashguard("banks", "create", "fp", check=2)
    hashguard("banks", "delete", "fp", "--yes")
    assert json.loads(hashguard("banks", "list", "--json").stdout) == []


@pytest.mark.usefixtures("home")
def test_hash_prints_the_files_signals(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encode(generate(Kind.PHOTO, seed=4, width=320, height=240)))
    shown = json.loads(hashguard("hash", str(photo), "--dihedral").stdout)
    assert shown["md5"] == hashlib.md5(photo.read_bytes()).hexdigest()
    assert shown["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    (pdq,) = shown["pdq"]
    assert len(pdq["hash"]) == 64
    assert pdq["quality"] == 100
    assert pdq["low_quality"] is False
    assert len(pdq["dihedral"]) == 7
    (tmp_path / "note.txt").write_text("hi")
    lines = hashguard("hash", str(photo), str(tmp_path / "note.txt")).stdout.splitlines()
    assert [json.loads(line).get("problem") for line in lines] == [None, "unsupported"]
    missing = hashguard("hash", str(tmp_path / "missing.jpg"), check=2)
    assert json.loads(missing.stdout)["problem"] == "error"


@pytest.mark.usefixtures("home")
def test_tokens_are_shown_once_and_stored_as_a_hash(home: Path) -> None:
    created = hashguard("tokens", "create", "uploader", "--scope", "scan", "--expires", "30d")
    secret = created.stdout.strip()
    assert secret.startswith("hgt_")
    assert "not kept" in created.stderr
    listed = json.loads(hashguard("tokens", "list", "--json").stdout)
    assert [(t["name"], t["scopes"], t["revoked_at"]) for t in listed] == [
        ("uploader", ["scan"], None)
    ]
    assert listed[0]["expires_at"] is not None
    assert secret not in (home / "hashguard.db").read_bytes().decode("latin-1")
    hashguard("tokens", "revoke", str(listed[0]["id"]))
    assert json.loads(hashguard("tokens", "list", "--json").stdout)[0]["revoked_at"]
    hashguard("tokens", "revoke", "99", check=2)
    hashguard("tokens", "create", "x", "--scope", "scan", "--expires", "soon", check=2)


@pytest.mark.usefixtures("home")
def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", "postgresql+psycopg://u:hunter2@db/hg")
    shown = hashguard("config", "show").stdout
    assert "hunter2" not in shown
    assert json.loads(shown)["database_url"] == "**********"
