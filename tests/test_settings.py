"""Settings: environment over TOML over defaults; secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hashguard.settings import Settings


def test_defaults_and_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.home == home
    assert settings.max_pixels == 50_000_000
    assert settings.resolved_database_url == f"sqlite:///{home / 'hashguard.db'}"
    monkeypatch.setenv("HASHGUARD_MAX_PIXELS", "1000")
    assert Settings().max_pixels == 1000
    monkeypatch.setenv("HASHGUARD_MAX_PIXELS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_toml_file_and_masking(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir(parents=True)
    (home / "hashguard.toml").write_text(
        'database_url = "postgresql+psycopg://u:pw-canary-71@db/hg"\nmax_frames = 4\nworkers = 3\n'
        '[remote_secrets.photodna]\nsubscription_key = "key-canary-72"\n'
    )
    monkeypatch.setenv("HASHGUARD_WORKERS", "5")
    settings = Settings()
    assert (settings.max_frames, settings.workers) == (4, 5)
    assert "pw-canary-71" in settings.resolved_database_url
    masked = settings.masked()
    assert masked["database_url"] == "**********"
    assert masked["remote_secrets"] == {"photodna": {"subscription_key": "**********"}}
    for shown in (repr(settings), str(masked)):
        assert "pw-canary-71" not in shown
        assert "key-canary-72" not in shown
    monkeypatch.setenv("HASHGUARD_CONFIG", str(home / "missing.toml"))
    with pytest.raises(FileNotFoundError):
        Settings()
