"""Graph API versions: the ThreatExchange default is a current version, and an ending
version is warned about (the pure rule at fixed dates; ``exchanges sync`` over loopback)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from hashguard.banks.exchanges.fbtx import ThreatExchangeSettings
from hashguard.banks.exchanges.graph_api import (
    DEFAULT_VERSION,
    END_OF_LIFE,
    WARN_DAYS,
    end_of_life,
    graph_api_warning,
)
from tests.cli import hashguard
from tests.fakes.threatexchange import APP_TOKEN, PRIVACY_GROUP, FakeThreatExchange

V21_END = date(2027, 1, 21)


def test_the_default_version_has_no_end_date_and_v21_ends_as_meta_lists() -> None:
    assert ThreatExchangeSettings(privacy_group=1).api_version == DEFAULT_VERSION
    assert DEFAULT_VERSION not in END_OF_LIFE, "the current version has no end date yet"
    assert end_of_life(DEFAULT_VERSION) is None
    assert end_of_life("v21.0") == V21_END
    assert end_of_life("v2.12") == date.min, "older than the table: ended"
    assert end_of_life("v27.0") is None, "newer than the table: no end yet"
    # the table is ordered: a later version never ends before an earlier one
    ends = [END_OF_LIFE[v] for v in sorted(END_OF_LIFE, key=lambda v: float(v[1:]))]
    assert ends == sorted(ends)


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (V21_END - timedelta(days=WARN_DAYS + 1), None),
        (V21_END - timedelta(days=WARN_DAYS), "60 days left"),
        (V21_END - timedelta(days=1), "1 day left"),
        (V21_END, "today is its last day"),
        (V21_END + timedelta(days=1), "ended on 2027-01-21; syncs fail"),
    ],
)
def test_v21_is_warned_about_from_60_days_before_its_end(today: date, expected: str | None) -> None:
    warning = graph_api_warning("v21.0", today)
    if expected is None:
        assert warning is None
        return
    assert warning is not None
    assert expected in warning
    assert "2027-01-21" in warning
    assert f"api_version to {DEFAULT_VERSION}" in warning


def test_other_versions() -> None:
    day = date(2026, 12, 3)
    assert graph_api_warning(DEFAULT_VERSION, day) is None
    assert graph_api_warning(DEFAULT_VERSION, date(2040, 1, 1)) is None, "no end named"
    assert graph_api_warning("v22.0", day) is None
    assert "until 2027-05-20 (48 days left)" in (graph_api_warning("v22.0", date(2027, 4, 2)) or "")
    assert "no longer available" in (graph_api_warning("v9.0", day) or "")
    assert "not a Graph API version" in (graph_api_warning("latest", day) or "")


@pytest.fixture
def fake() -> Iterator[FakeThreatExchange]:
    with FakeThreatExchange() as running:
        yield running


def test_sync_warns_about_an_ended_version_and_not_about_the_default(
    fake: FakeThreatExchange, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", f"sqlite:///{home / 'hg.db'}")
    monkeypatch.setenv("TX_TOKEN", APP_TOKEN)
    for name, version in (("old", ["--setting", "api_version=v16.0"]), ("current", [])):
        hashguard(
            "exchanges", "add", name, "--adapter", "threatexchange",
            "--setting", f"privacy_group={PRIVACY_GROUP}", "--setting", f"base_url={fake.url}",
            *version, "--credential", "app_token=env:TX_TOKEN",
        )  # fmt: skip
    old = hashguard("exchanges", "sync", "old").stderr
    assert "warning: old: Graph API v16.0 ended on 2025-05-14" in " ".join(old.split())
    current = hashguard("exchanges", "sync", "current").stderr
    assert "warning" not in current
    assert "Graph API" not in current
    assert {r.path.split("/")[1] for r in fake.listings()} == {"v16.0", DEFAULT_VERSION}
    assert os.environ["TX_TOKEN"] not in old + current
